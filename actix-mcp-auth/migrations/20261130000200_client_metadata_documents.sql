-- actix-mcp-auth store: client id metadata documents.
--
-- A client's `application_type` (SEP-837) is kept in mcp_auth_clients.metadata (JSON) with its
-- other registered metadata: no ALTER TABLE, which has no IF NOT EXISTS on SQLite and would
-- break replicas migrating at once.

-- Fetched client id metadata documents, shared by every replica. A client whose id is a URL
-- also has a row in mcp_auth_clients (the validated metadata, referenced by its grants); this
-- table only remembers the document and when to fetch it again.
CREATE TABLE IF NOT EXISTS mcp_auth_cimd_documents (
    url TEXT NOT NULL PRIMARY KEY,              -- the client id
    document TEXT NOT NULL,                     -- the document as fetched (JSON text)
    fetched_at BIGINT NOT NULL,
    fresh_until BIGINT NOT NULL,                -- fetch again after this
    expires_at BIGINT NOT NULL                  -- fresh_until + stale grace: never used after
);
CREATE INDEX IF NOT EXISTS mcp_auth_cimd_documents_expires_at ON mcp_auth_cimd_documents (expires_at);
