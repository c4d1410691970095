-- SQLite only (its full-text index keys the owner as one token from here on); nothing to
-- change in PostgreSQL, where the owner is an ordinary column.
SELECT 1;
