-- The full-text index stores each word with its owner's mark in front (hex of the user id,
-- then "x"; see owner_mark in src/notes.rs), so a search reads one user's postings only:
-- before, every search merged the postings of its words for all users with the owner
-- column's, and a prefix query expanded over every user's words. The index keeps no copy
-- of the text (contentless; snippets are cut from the notes table). The marking is done in
-- Rust, which fills the index after this script (Store::reindex_notes) and adds each note
-- that is created, changed or restored; the triggers below take notes out.
--
-- The notes table is rebuilt with an INTEGER PRIMARY KEY, so its rowid, which keys the
-- index, is stable: VACUUM may renumber the rowids of a table without one.

CREATE TABLE notes_v8 (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
INSERT INTO notes_v8 (seq, id, user_id, title, body, created_at, updated_at, deleted_at)
    SELECT rowid, id, user_id, title, body, created_at, updated_at, deleted_at FROM notes;
DROP TABLE notes;
ALTER TABLE notes_v8 RENAME TO notes;
CREATE INDEX notes_by_user ON notes (user_id, updated_at, id);

DROP TABLE notes_fts;
CREATE VIRTUAL TABLE notes_words USING fts5(
    title, body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER notes_words_deleted AFTER DELETE ON notes WHEN old.deleted_at IS NULL BEGIN
    DELETE FROM notes_words WHERE rowid = old.rowid;
END;
CREATE TRIGGER notes_words_changed AFTER UPDATE OF title, body, deleted_at ON notes
WHEN old.deleted_at IS NULL BEGIN
    DELETE FROM notes_words WHERE rowid = old.rowid;
END;
