-- The owner in the full-text index becomes one token: hex(user_id). A user id such as
-- "u_TeVM7..." was split by the tokenizer into "u" and the rest, so restricting a search to
-- its owner was a phrase query that read the position list of "u", a token every note has.
-- The index is rebuilt from the notes table.

DROP TRIGGER notes_ai;
DROP TRIGGER notes_au;
CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, owner, title, body) VALUES (new.rowid, hex(new.user_id), new.title, new.body);
END;
CREATE TRIGGER notes_au AFTER UPDATE OF title, body ON notes BEGIN
    UPDATE notes_fts SET title = new.title, body = new.body WHERE rowid = new.rowid;
END;
DELETE FROM notes_fts;
INSERT INTO notes_fts (rowid, owner, title, body) SELECT rowid, hex(user_id), title, body FROM notes;
