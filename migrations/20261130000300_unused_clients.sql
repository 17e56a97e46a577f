-- actix-mcp-auth store: registrations that never completed a login.
--
-- `first_login_at` stays NULL until the client's first grant is created (the first completed
-- login). Never-used registrations expire sooner than used ones and are capped in number
-- (`MCP_AUTH_MAX_UNUSED_CLIENTS`), so open registration cannot fill the database.

ALTER TABLE mcp_auth_clients ADD COLUMN first_login_at BIGINT;

-- Clients registered before this migration that did log in.
UPDATE mcp_auth_clients SET first_login_at = last_used_at
WHERE first_login_at IS NULL
  AND (last_used_at > created_at
       OR client_id IN (SELECT client_id FROM mcp_auth_grants));

-- Counting the live never-used registrations at each /register reads only this index.
CREATE INDEX IF NOT EXISTS mcp_auth_clients_unused
    ON mcp_auth_clients (expires_at) WHERE first_login_at IS NULL;
