-- Full-text search over notes with SQLite FTS5.

-- The owner is an indexed column so a search is restricted to one user inside FTS itself.
-- The index keeps its own copy of the text (simpler and sturdier than external content);
-- its rowid is the note's rowid, kept in step by the triggers.
CREATE VIRTUAL TABLE notes_fts USING fts5(owner, title, body, tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, owner, title, body) VALUES (new.rowid, new.user_id, new.title, new.body);
END;
CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
    DELETE FROM notes_fts WHERE rowid = old.rowid;
END;
CREATE TRIGGER notes_au AFTER UPDATE OF title, body ON notes BEGIN
    UPDATE notes_fts SET title = new.title, body = new.body WHERE rowid = new.rowid;
END;
