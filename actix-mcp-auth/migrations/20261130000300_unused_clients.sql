-- actix-mcp-auth store: registrations that never completed a login.
--
-- A registration made through `/register` gets a row here; its first grant (the first completed
-- login) deletes it. Never-used registrations expire sooner than used ones and are capped in
-- number (`MCP_AUTH_MAX_UNUSED_CLIENTS`), so open registration cannot fill the database.
-- `expires_at` is the client's own expiry at registration. Registrations made before this
-- migration are not tracked (they keep the expiry they were given).

CREATE TABLE IF NOT EXISTS mcp_auth_unused_clients (
    client_id TEXT NOT NULL PRIMARY KEY REFERENCES mcp_auth_clients (client_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- Counting the live ones at each /register reads only this index.
CREATE INDEX IF NOT EXISTS mcp_auth_unused_clients_expires_at
    ON mcp_auth_unused_clients (expires_at);
