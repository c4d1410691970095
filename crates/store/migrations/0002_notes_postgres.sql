-- The built-in notes toolset: each user's notes, with full-text search (PostgreSQL
-- tsvector with a GIN index). Deleted notes stay in a trash (deleted_at) until purged.

CREATE TABLE notes (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    search     tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', body), 'B')
    ) STORED
);
CREATE INDEX notes_by_user ON notes (user_id, updated_at, id);
CREATE INDEX notes_search ON notes USING GIN (search);
