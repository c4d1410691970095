-- Full-text search over notes with PostgreSQL: a weighted tsvector (title above body)
-- kept by the database itself, and a GIN index.

ALTER TABLE notes ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', body), 'B')
) STORED;
CREATE INDEX notes_search ON notes USING GIN (search);
