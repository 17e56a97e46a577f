//! Fetched client id metadata documents (`mcp_auth_cimd_documents`) and the client rows made
//! from them.
//!
//! The document cache lives in the database so every replica shares it: a publisher sees one
//! fetch per document lifetime, not one per replica. Saving a document and the client row it
//! describes happens in one transaction, so a replica never sees a fresh document next to stale
//! client metadata.

use sqlx::any::AnyRow;

use super::{ClientRecord, Statement, Store, StoreError, col, now, to_json};

/// A cached metadata document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedDocument {
    /// The client id URL the document was fetched from.
    pub url: String,
    /// The document as fetched (JSON text, already validated once).
    pub document: String,
    /// When it was fetched (unix seconds).
    pub fetched_at: i64,
    /// Fetch again after this (unix seconds).
    pub fresh_until: i64,
    /// Never use it after this, not even when its host is down (unix seconds).
    pub expires_at: i64,
}

impl CachedDocument {
    fn from_row(row: &AnyRow, op: &'static str) -> Result<Self, StoreError> {
        Ok(Self {
            url: col(row, "url", op)?,
            document: col(row, "document", op)?,
            fetched_at: col(row, "fetched_at", op)?,
            fresh_until: col(row, "fresh_until", op)?,
            expires_at: col(row, "expires_at", op)?,
        })
    }
}

impl Store {
    /// The cached document of `url`, fresh or stale, unless past its `expires_at`.
    pub(crate) async fn get_cimd_document(
        &self,
        url: &str,
    ) -> Result<Option<CachedDocument>, StoreError> {
        const OP: &str = "get_cimd_document";
        let row = sqlx::query(
            "SELECT url, document, fetched_at, fresh_until, expires_at \
             FROM mcp_auth_cimd_documents WHERE url = $1 AND expires_at > $2",
        )
        .bind(url)
        .bind(now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| CachedDocument::from_row(&r, OP)).transpose()
    }

    /// Saves the client described by a metadata document (inserted, or its metadata replaced
    /// and its expiry extended), and the document itself unless it must not be stored
    /// (`document` is `None`: `Cache-Control: no-store`, or a stale copy being reused). One
    /// transaction.
    pub(crate) async fn save_cimd_client(
        &self,
        client: &ClientRecord,
        document: Option<&CachedDocument>,
    ) -> Result<(), StoreError> {
        const OP: &str = "save_cimd_client";
        let err = |e| StoreError::from_sqlx(OP, e);
        let _turn = self.write_turn().await;
        let mut tx = self.begin(OP).await?;
        sqlx::query(
            "INSERT INTO mcp_auth_clients (client_id, client_secret_hash, client_name, \
             redirect_uris, grant_types, token_endpoint_auth_method, scope, metadata, \
             created_at, last_used_at, expires_at) \
             VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $8, $9) \
             ON CONFLICT (client_id) DO UPDATE SET client_name = excluded.client_name, \
             redirect_uris = excluded.redirect_uris, grant_types = excluded.grant_types, \
             token_endpoint_auth_method = excluded.token_endpoint_auth_method, \
             scope = excluded.scope, metadata = excluded.metadata, \
             expires_at = CASE WHEN mcp_auth_clients.expires_at < excluded.expires_at \
             THEN excluded.expires_at ELSE mcp_auth_clients.expires_at END",
        )
        .bind(&client.client_id)
        .bind(client.client_name.as_deref())
        .bind(to_json(&client.redirect_uris))
        .bind(to_json(&client.grant_types))
        .bind(&client.token_endpoint_auth_method)
        .bind(client.scope.as_deref())
        .bind(client.metadata.as_ref().map(to_json))
        .bind(client.created_at)
        .bind(client.expires_at)
        .execute_in(&mut tx)
        .await
        .map_err(err)?;
        if let Some(doc) = document {
            sqlx::query(
                "INSERT INTO mcp_auth_cimd_documents (url, document, fetched_at, fresh_until, \
                 expires_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (url) DO UPDATE SET document = excluded.document, \
                 fetched_at = excluded.fetched_at, fresh_until = excluded.fresh_until, \
                 expires_at = excluded.expires_at",
            )
            .bind(&doc.url)
            .bind(&doc.document)
            .bind(doc.fetched_at)
            .bind(doc.fresh_until)
            .bind(doc.expires_at)
            .execute_in(&mut tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    /// Forgets the cached document of `url` (the client row stays: its grants depend on it).
    pub(crate) async fn delete_cimd_document(&self, url: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_cimd_document";
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM mcp_auth_cimd_documents WHERE url = $1")
            .bind(url)
            .execute_in(&mut self.conn(OP).await?)
            .await
            .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(done.rows_affected() == 1)
    }
}
