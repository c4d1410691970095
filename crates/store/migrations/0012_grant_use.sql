-- When each grant last got tokens (a code exchange or a refresh), for the account page and
-- the admin commands; NULL until its first token. Lookups of one user's or one client's
-- grants, and of one user's browser sessions (ended when the password changes).

ALTER TABLE grants ADD COLUMN last_used_at BIGINT;
CREATE INDEX IF NOT EXISTS grants_by_user ON grants (user_id, client_id);
CREATE INDEX IF NOT EXISTS grants_by_client ON grants (client_id);
CREATE INDEX IF NOT EXISTS browser_sessions_by_user ON browser_sessions (user_id);
