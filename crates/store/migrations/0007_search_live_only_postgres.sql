-- SQLite only (its full-text index leaves trashed notes out from here on); PostgreSQL's
-- search filters on deleted_at in the same index scan.
SELECT 1;
