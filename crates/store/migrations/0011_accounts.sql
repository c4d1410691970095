-- Accounts an operator can disable, and one-time links where a person sets their own
-- password: an invitation (creates the account) or a reset (replaces its password).
-- Link tokens are stored only as SHA-256 hashes.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

CREATE TABLE password_links (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    purpose    TEXT NOT NULL,              -- 'invite' or 'reset'
    is_admin   BIGINT NOT NULL DEFAULT 0,  -- for invites: the account's role
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
