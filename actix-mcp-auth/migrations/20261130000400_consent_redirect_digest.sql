-- Remembered consent records a digest of the client's redirect URIs at approval time, so an
-- approval is never reused silently for a client whose redirect URIs changed since. Existing
-- rows keep NULL, which never matches: those users are asked once more.
ALTER TABLE mcp_auth_consents ADD COLUMN redirect_uris_digest TEXT;
