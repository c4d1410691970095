-- Which instance holds each 2025-era MCP session, so that a request for it that reaches
-- another instance (a load balancer without stickiness) is forwarded there.

CREATE TABLE mcp_sessions (
    session_id   TEXT PRIMARY KEY,
    instance_url TEXT NOT NULL,
    user_id      TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX mcp_sessions_by_instance ON mcp_sessions (instance_url);
