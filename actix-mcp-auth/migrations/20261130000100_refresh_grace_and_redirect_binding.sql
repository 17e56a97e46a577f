-- actix-mcp-auth store, version 2: the refresh-token grace and the redirect-URI binding of codes.
--
-- A rotated refresh token keeps its successor pair sealed (AES-256-GCM with the store's keyring,
-- `successor_key_id` names the key, the old token's digest and the column name are the
-- associated data) until `reuse_until`: a retry within that grace gets the same pair again.
-- Afterwards the sealed copy is cleared (by the sweeper, or at once when the successor is used or
-- the grant revoked) and only digests remain.
--
-- `redirect_uri_sent` (0/1) records whether the authorization request carried `redirect_uri`:
-- then the token request must repeat it (RFC 6749 §4.1.3). Rows from version 1 default to 1.

ALTER TABLE mcp_auth_tokens ADD COLUMN reuse_until BIGINT;
ALTER TABLE mcp_auth_tokens ADD COLUMN successor_key_id TEXT;
ALTER TABLE mcp_auth_tokens ADD COLUMN successor_access_token TEXT;   -- sealed
ALTER TABLE mcp_auth_tokens ADD COLUMN successor_refresh_token TEXT;  -- sealed
CREATE INDEX IF NOT EXISTS mcp_auth_tokens_reuse_until ON mcp_auth_tokens (reuse_until);

ALTER TABLE mcp_auth_pending ADD COLUMN redirect_uri_sent BIGINT NOT NULL DEFAULT 1;
ALTER TABLE mcp_auth_codes ADD COLUMN redirect_uri_sent BIGINT NOT NULL DEFAULT 1;
