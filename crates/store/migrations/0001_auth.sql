-- Everything the embedded authorization server must remember across restarts.
-- Codes, refresh tokens and browser sessions are stored only as SHA-256 hashes; private
-- keys and server secrets only encrypted under the master key. Times are Unix seconds.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE clients (
    client_id    TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,            -- 'registered' (DCR)
    settings     TEXT NOT NULL,            -- validated client metadata, JSON
    secret_hash  TEXT,                     -- confidential clients only
    dedup_key    TEXT,                     -- identical public registrations share a client
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX clients_dedup ON clients (dedup_key);

CREATE TABLE browser_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE auth_requests (
    id_hash      TEXT PRIMARY KEY,
    session_hash TEXT NOT NULL,
    params       TEXT NOT NULL,            -- the validated authorization request, JSON
    expires_at   BIGINT NOT NULL
);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,            -- absolute end of the refresh chain
    revoked_at BIGINT
);
CREATE INDEX grants_revoked ON grants (revoked_at);

CREATE TABLE auth_codes (
    code_hash      TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash      TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    issued_at       BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    rotated_at      BIGINT,                -- set once, when this token was exchanged
    next_scopes     TEXT,                  -- what the exchange issued, to replay it in the grace window
    next_jti        TEXT,
    next_iat        BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_enc BLOB NOT NULL,
    public_key  BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value_enc  BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
