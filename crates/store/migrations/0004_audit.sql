-- Every tool call: who, through which client, what, how it ended, how long it took, and a
-- digest of the arguments (the arguments themselves only when the operator asks for them).

CREATE TABLE audit (
    event_id    TEXT PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    user_id     TEXT,
    client_id   TEXT,
    tool        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    duration_us BIGINT NOT NULL,
    args_digest TEXT NOT NULL,
    args        TEXT
);
CREATE INDEX audit_by_time ON audit (at_ms);
CREATE INDEX audit_by_user ON audit (user_id, at_ms);
