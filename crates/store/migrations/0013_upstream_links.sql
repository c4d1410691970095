-- Accounts that sign in through an upstream identity provider (federated login): the
-- provider's issuer and its subject for the person name one local account. A person is
-- recognised by this pair only, never by an e-mail address, which providers let change.
CREATE TABLE upstream_links (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(id),
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX IF NOT EXISTS upstream_links_by_user ON upstream_links (user_id);
