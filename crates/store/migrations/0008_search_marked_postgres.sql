-- SQLite only (its full-text index marks each word with its owner from here on);
-- PostgreSQL's index is a generated column filtered by user_id.
SELECT 1;
