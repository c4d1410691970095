-- The full-text index holds live notes only: trashing a note takes it out, restoring puts it
-- back. A search then ranks inside the index alone, without looking up every match in the
-- notes table to skip the trashed ones (half the time of a search over common words).

DROP TRIGGER notes_ai;
CREATE TRIGGER notes_ai AFTER INSERT ON notes WHEN new.deleted_at IS NULL BEGIN
    INSERT INTO notes_fts (rowid, owner, title, body) VALUES (new.rowid, hex(new.user_id), new.title, new.body);
END;
CREATE TRIGGER notes_trashed AFTER UPDATE OF deleted_at ON notes
WHEN old.deleted_at IS NULL AND new.deleted_at IS NOT NULL BEGIN
    DELETE FROM notes_fts WHERE rowid = new.rowid;
END;
CREATE TRIGGER notes_restored AFTER UPDATE OF deleted_at ON notes
WHEN old.deleted_at IS NOT NULL AND new.deleted_at IS NULL BEGIN
    INSERT INTO notes_fts (rowid, owner, title, body) VALUES (new.rowid, hex(new.user_id), new.title, new.body);
END;
DELETE FROM notes_fts WHERE rowid IN (SELECT rowid FROM notes WHERE deleted_at IS NOT NULL);
