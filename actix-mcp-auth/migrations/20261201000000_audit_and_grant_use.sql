-- actix-mcp-auth store: the audit log and when a grant was last used.
--
-- `mcp_auth_audit` is append-only: the library inserts rows and the sweeper deletes them once
-- `expires_at` (the event's time plus the configured retention) has passed; nothing updates
-- them. Rows name the grant, client and user they concern but reference nothing, so an entry
-- outlives the grant it describes. No secret is ever written here: no token, code or digest of
-- one, only identifiers and a short JSON detail.
CREATE TABLE IF NOT EXISTS mcp_auth_audit (
    event_id TEXT NOT NULL PRIMARY KEY,         -- random, URL-safe
    occurred_at BIGINT NOT NULL,                -- unix seconds
    kind TEXT NOT NULL,                         -- grant_created, grant_refreshed, grant_revoked,
                                                -- login_denied, replay_detected
    subject TEXT,                               -- the user, when known
    client_id TEXT,                             -- the MCP client, when known
    grant_id TEXT,                              -- the grant, when there is one
    actor TEXT NOT NULL,                        -- who caused it: user, client, admin, system
    detail TEXT,                                -- JSON object, no secrets
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mcp_auth_audit_expires_at ON mcp_auth_audit (expires_at);
CREATE INDEX IF NOT EXISTS mcp_auth_audit_subject ON mcp_auth_audit (subject, occurred_at);
CREATE INDEX IF NOT EXISTS mcp_auth_audit_client_id ON mcp_auth_audit (client_id, occurred_at);
CREATE INDEX IF NOT EXISTS mcp_auth_audit_grant_id ON mcp_auth_audit (grant_id);
CREATE INDEX IF NOT EXISTS mcp_auth_audit_occurred_at ON mcp_auth_audit (occurred_at);

-- When a token of the grant was last issued or first looked up (unix seconds); NULL until then.
ALTER TABLE mcp_auth_grants ADD COLUMN last_used_at BIGINT;
