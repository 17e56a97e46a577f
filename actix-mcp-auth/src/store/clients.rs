//! Registered MCP clients (`mcp_auth_clients`).
//!
//! Clients registered through open dynamic registration are never told when to go away, so each
//! row carries an `expires_at`: unused registrations expire, and creating a grant extends the
//! client's expiry to the grant's so a client never disappears under a live session (deleting a
//! client cascades to its grants, tokens, pending authorizations and consents).

use std::borrow::Cow;

use sqlx::any::AnyRow;

use super::{Statement, Store, StoreError, TokenHash, col, from_json, now, to_json};

/// A registered MCP client.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientRecord {
    /// The client id we issued (or the client's metadata-document URL).
    pub client_id: String,
    /// SHA-256 of the client secret, for confidential clients.
    pub client_secret_hash: Option<TokenHash>,
    /// Human-readable name shown on the consent page.
    pub client_name: Option<String>,
    /// Registered redirect URIs (stored as a JSON array).
    pub redirect_uris: Vec<String>,
    /// Registered grant types (stored as a JSON array).
    pub grant_types: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub token_endpoint_auth_method: String,
    /// Space-separated scopes the client registered, if any.
    pub scope: Option<String>,
    /// Other registered metadata (a JSON object), echoed back on registration reads.
    pub metadata: Option<serde_json::Value>,
    /// Registration time (unix seconds).
    pub created_at: i64,
    /// Last time the client was used (unix seconds).
    pub last_used_at: i64,
    /// When an unused registration may be deleted (unix seconds).
    pub expires_at: i64,
}

/// The registrations that never completed a login and have not expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnusedClients {
    /// How many there are.
    pub live: u64,
    /// When the first of them expires (unix seconds), if any.
    pub next_expiry: Option<i64>,
}

/// The columns [`ClientRecord::from_row`] reads, as a literal for `concat!`.
macro_rules! client_columns {
    () => {
        "client_id, client_secret_hash, client_name, redirect_uris, grant_types, \
         token_endpoint_auth_method, scope, metadata, created_at, last_used_at, expires_at"
    };
}

/// The same columns of the alias `c`, named `c_…`, for joins (read back with
/// `ClientRecord::from_prefixed_row(row, "c_", …)`).
macro_rules! client_columns_c {
    () => {
        "c.client_id AS c_client_id, c.client_secret_hash AS c_client_secret_hash, \
         c.client_name AS c_client_name, c.redirect_uris AS c_redirect_uris, \
         c.grant_types AS c_grant_types, \
         c.token_endpoint_auth_method AS c_token_endpoint_auth_method, c.scope AS c_scope, \
         c.metadata AS c_metadata, c.created_at AS c_created_at, \
         c.last_used_at AS c_last_used_at, c.expires_at AS c_expires_at"
    };
}
pub(super) use client_columns_c;

impl ClientRecord {
    /// `native` or `web` (SEP-837), recorded in [`metadata`](Self::metadata) at registration
    /// or from the metadata document; `None` for clients registered before it was recorded.
    pub(crate) fn application_type(&self) -> Option<&str> {
        self.metadata
            .as_ref()?
            .get("application_type")?
            .as_str()
            .filter(|t| matches!(*t, "native" | "web"))
    }

    fn from_row(row: &AnyRow, op: &'static str) -> Result<Self, StoreError> {
        Self::from_prefixed_row(row, "", op)
    }

    /// A client read from columns named `{prefix}{column}` (joins alias them, see
    /// `client_columns_c!`).
    pub(super) fn from_prefixed_row(
        row: &AnyRow,
        prefix: &str,
        op: &'static str,
    ) -> Result<Self, StoreError> {
        let name = |column: &'static str| -> Cow<'static, str> {
            if prefix.is_empty() {
                Cow::Borrowed(column)
            } else {
                Cow::Owned(format!("{prefix}{column}"))
            }
        };
        let secret: Option<String> = col(row, &name("client_secret_hash"), op)?;
        let metadata: Option<String> = col(row, &name("metadata"), op)?;
        Ok(Self {
            client_id: col(row, &name("client_id"), op)?,
            client_secret_hash: secret
                .map(|h| {
                    TokenHash::from_hex(&h).ok_or_else(|| {
                        StoreError::corrupt(op, "client_secret_hash is not a digest")
                    })
                })
                .transpose()?,
            client_name: col(row, &name("client_name"), op)?,
            redirect_uris: from_json(
                &col::<String>(row, &name("redirect_uris"), op)?,
                op,
                "redirect_uris",
            )?,
            grant_types: from_json(
                &col::<String>(row, &name("grant_types"), op)?,
                op,
                "grant_types",
            )?,
            token_endpoint_auth_method: col(row, &name("token_endpoint_auth_method"), op)?,
            scope: col(row, &name("scope"), op)?,
            metadata: metadata
                .map(|m| from_json(&m, op, "metadata"))
                .transpose()?,
            created_at: col(row, &name("created_at"), op)?,
            last_used_at: col(row, &name("last_used_at"), op)?,
            expires_at: col(row, &name("expires_at"), op)?,
        })
    }
}

impl Store {
    /// Stores a new client, counted among the [`unused`](Store::unused_clients) ones until its
    /// first grant. A `client_id` that already exists is a [`StoreError::Constraint`].
    #[cfg(any(test, feature = "__bench"))] // the tests' and benches' registrations: no ceiling
    pub(crate) async fn register_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let stored = self
            .register_client_within(client, u64::try_from(i64::MAX).unwrap_or(u64::MAX))
            .await?;
        debug_assert!(stored, "no ceiling");
        Ok(())
    }

    /// Stores a new client, counted among the [`unused`](Store::unused_clients) ones until its
    /// first grant, unless `max_unused` live unused registrations exist already: then nothing is
    /// stored and the answer is `false`. One transaction, the count inside the insert, so a
    /// registration costs no separate read. (Concurrent registrations on PostgreSQL may each
    /// see the others' rows uncommitted: the ceiling can be passed by a few, as with any count
    /// taken before an insert.) A `client_id` that already exists is a
    /// [`StoreError::Constraint`].
    pub(crate) async fn register_client_within(
        &self,
        client: &ClientRecord,
        max_unused: u64,
    ) -> Result<bool, StoreError> {
        const OP: &str = "register_client";
        let _turn = self.write_turn().await;
        let err = |e| StoreError::from_sqlx(OP, e);
        let max_unused = i64::try_from(max_unused).unwrap_or(i64::MAX);
        let mut tx = self.begin(OP).await?;
        sqlx::query(concat!(
            "INSERT INTO mcp_auth_clients (",
            client_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&client.client_id)
        .bind(client.client_secret_hash.as_ref().map(TokenHash::as_str))
        .bind(client.client_name.as_deref())
        .bind(to_json(&client.redirect_uris))
        .bind(to_json(&client.grant_types))
        .bind(&client.token_endpoint_auth_method)
        .bind(client.scope.as_deref())
        .bind(client.metadata.as_ref().map(to_json))
        .bind(client.created_at)
        .bind(client.last_used_at)
        .bind(client.expires_at)
        .execute_in(&mut tx)
        .await
        .map_err(err)?;
        let counted = sqlx::query(
            "INSERT INTO mcp_auth_unused_clients (client_id, created_at, expires_at) \
             SELECT $1, $2, $3 WHERE (SELECT COUNT(*) FROM mcp_auth_unused_clients \
             WHERE expires_at > $4) < $5",
        )
        .bind(&client.client_id)
        .bind(client.created_at)
        .bind(client.expires_at)
        .bind(now())
        .bind(max_unused)
        .execute_in(&mut tx)
        .await
        .map_err(err)?;
        if counted.rows_affected() == 0 {
            // At the ceiling: dropping the transaction takes the client row back out.
            return Ok(false);
        }
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    /// The client with this id, unless it is unknown or expired.
    pub(crate) async fn get_client(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        const OP: &str = "get_client";
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM mcp_auth_clients WHERE client_id = $1 AND expires_at > $2"
        ))
        .bind(client_id)
        .bind(now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| ClientRecord::from_row(&r, OP)).transpose()
    }

    /// Counts the live registrations that never completed a login (no grant was ever created
    /// for them), and when the first of them expires. Rows of metadata-document clients (their
    /// id is a URL) are caches of a document, not registrations, and do not count.
    pub(crate) async fn unused_clients(&self) -> Result<UnusedClients, StoreError> {
        const OP: &str = "unused_clients";
        let row = sqlx::query(
            "SELECT COUNT(*) AS live, MIN(expires_at) AS next_expiry \
             FROM mcp_auth_unused_clients WHERE expires_at > $1",
        )
        .bind(now())
        .fetch_one_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        let live: i64 = col(&row, "live", OP)?;
        Ok(UnusedClients {
            live: u64::try_from(live).unwrap_or(0),
            next_expiry: col(&row, "next_expiry", OP)?,
        })
    }

    /// Records a use of the client: `last_used_at` = now, and `expires_at` pushed to at least
    /// `keep_until`. Returns `false` when the client is unknown or expired.
    #[cfg(test)] // only the tests call it
    pub(crate) async fn touch_client(
        &self,
        client_id: &str,
        keep_until: i64,
    ) -> Result<bool, StoreError> {
        const OP: &str = "touch_client";
        let _turn = self.write_turn().await;
        let now = now();
        let done = sqlx::query(
            "UPDATE mcp_auth_clients SET last_used_at = $2, \
             expires_at = CASE WHEN expires_at < $3 THEN $3 ELSE expires_at END \
             WHERE client_id = $1 AND expires_at > $2",
        )
        .bind(client_id)
        .bind(now)
        .bind(keep_until)
        .execute_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the client and, by cascade, everything issued to it. Returns whether it existed.
    #[cfg(test)] // only the tests call it
    pub(crate) async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_client";
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM mcp_auth_clients WHERE client_id = $1")
            .bind(client_id)
            .execute_in(&mut self.conn(OP).await?)
            .await
            .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn joined_columns_match() {
        let plain: Vec<&str> = client_columns!().split(", ").map(str::trim).collect();
        let joined: Vec<String> = client_columns_c!()
            .split(", ")
            .map(|c| {
                let (column, alias) = c.trim().split_once(" AS ").expect("aliased");
                assert_eq!(
                    column.trim_start_matches("c."),
                    alias.trim_start_matches("c_")
                );
                alias.trim_start_matches("c_").to_owned()
            })
            .collect();
        assert_eq!(plain, joined);
    }
}
