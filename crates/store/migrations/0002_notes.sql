-- The built-in notes toolset: each user's notes. Deleted notes stay in a trash
-- (deleted_at) until purged after the restore window. Search is migration 3, per backend.

CREATE TABLE notes (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX notes_by_user ON notes (user_id, updated_at, id);
