-- actix-mcp-auth store, version 1.
--
-- One portable file for PostgreSQL and SQLite, applied unchanged by `sqlx migrate run` and by
-- `Store::migrate()`. Portable types only (the sqlx Any driver cannot read BOOLEAN, TIMESTAMP,
-- UUID or JSONB): TEXT keys, BIGINT unix seconds, BIGINT 0/1 flags, base64 TEXT ciphertext.
-- Every table is prefixed `mcp_auth_` so it can live in the application's own database.
--
-- Secrets are never stored in clear: codes and tokens as SHA-256 hex (`*_hash`), upstream
-- tokens and PKCE verifiers sealed with AES-256-GCM (`key_id` names the key, the row id and
-- column name are the associated data).
--
-- Every row has `expires_at`; reads ignore expired rows and the sweeper deletes them. Child
-- rows reference their parent with ON DELETE CASCADE, and every such column is indexed so a
-- cascade never scans a table.

-- Registered MCP clients (dynamic client registration).
CREATE TABLE IF NOT EXISTS mcp_auth_clients (
    client_id TEXT NOT NULL PRIMARY KEY,
    client_secret_hash TEXT,
    client_name TEXT,
    redirect_uris TEXT NOT NULL,                -- JSON array of strings
    grant_types TEXT NOT NULL,                  -- JSON array of strings
    token_endpoint_auth_method TEXT NOT NULL,
    scope TEXT,
    metadata TEXT,                              -- other registered metadata, JSON object
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mcp_auth_clients_expires_at ON mcp_auth_clients (expires_at);

-- Authorization requests between /authorize and the upstream callback.
CREATE TABLE IF NOT EXISTS mcp_auth_pending (
    txn_id TEXT NOT NULL PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES mcp_auth_clients (client_id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    client_state TEXT,
    code_challenge TEXT NOT NULL,               -- S256, from the MCP client
    scopes TEXT NOT NULL,                       -- space-separated
    resource TEXT,
    key_id TEXT NOT NULL,
    upstream_verifier TEXT NOT NULL,            -- sealed PKCE verifier for the upstream login
    upstream_nonce TEXT,
    browser_binding_hash TEXT,
    consent_token_hash TEXT,                    -- single-use CSRF token of the consent form
    consented_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mcp_auth_pending_expires_at ON mcp_auth_pending (expires_at);
CREATE INDEX IF NOT EXISTS mcp_auth_pending_client_id ON mcp_auth_pending (client_id);

-- Remembered consent: who (user subject or browser binding) approved which client.
CREATE TABLE IF NOT EXISTS mcp_auth_consents (
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES mcp_auth_clients (client_id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    resource TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (subject, client_id)
);
CREATE INDEX IF NOT EXISTS mcp_auth_consents_expires_at ON mcp_auth_consents (expires_at);
CREATE INDEX IF NOT EXISTS mcp_auth_consents_client_id ON mcp_auth_consents (client_id);

-- A user's authorization of one MCP client, with the upstream (AuthKit) session behind it.
CREATE TABLE IF NOT EXISTS mcp_auth_grants (
    grant_id TEXT NOT NULL PRIMARY KEY,
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES mcp_auth_clients (client_id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    resource TEXT,
    key_id TEXT NOT NULL,
    upstream_access_token TEXT NOT NULL,        -- sealed
    upstream_refresh_token TEXT,                -- sealed
    upstream_id_token TEXT,                     -- sealed
    upstream_expires_at BIGINT,
    upstream_version BIGINT NOT NULL,           -- compare-and-swap counter of the upstream tokens
    profile TEXT,                               -- user profile, JSON object
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX IF NOT EXISTS mcp_auth_grants_expires_at ON mcp_auth_grants (expires_at);
CREATE INDEX IF NOT EXISTS mcp_auth_grants_client_id ON mcp_auth_grants (client_id);
CREATE INDEX IF NOT EXISTS mcp_auth_grants_subject ON mcp_auth_grants (subject);

-- Authorization codes we issued; `used_at` makes a replay detectable.
CREATE TABLE IF NOT EXISTS mcp_auth_codes (
    code_hash TEXT NOT NULL PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES mcp_auth_grants (grant_id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scopes TEXT NOT NULL,
    resource TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX IF NOT EXISTS mcp_auth_codes_expires_at ON mcp_auth_codes (expires_at);
CREATE INDEX IF NOT EXISTS mcp_auth_codes_grant_id ON mcp_auth_codes (grant_id);

-- Access and refresh tokens we issued. `parent_hash` is the refresh token whose rotation
-- produced the row; `rotated_at` marks a refresh token that has been exchanged.
CREATE TABLE IF NOT EXISTS mcp_auth_tokens (
    token_hash TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id TEXT NOT NULL REFERENCES mcp_auth_grants (grant_id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    parent_hash TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX IF NOT EXISTS mcp_auth_tokens_expires_at ON mcp_auth_tokens (expires_at);
CREATE INDEX IF NOT EXISTS mcp_auth_tokens_grant_id ON mcp_auth_tokens (grant_id);
CREATE INDEX IF NOT EXISTS mcp_auth_tokens_parent_hash ON mcp_auth_tokens (parent_hash);
