-- Single-use values shared by every instance on one database: the nonce of each MRTR
-- requestState that has been answered, kept until the state would have expired anyway.

CREATE TABLE spent_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX spent_nonces_by_expiry ON spent_nonces (expires_at);
