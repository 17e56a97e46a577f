//! Grants (`mcp_auth_grants`): one user's authorization of one MCP client, holding the upstream
//! (AuthKit) tokens behind it, sealed.
//!
//! A grant is created together with its first authorization code ([`Store::create_grant`], one
//! transaction). Every token we issue points at a grant, and every token check joins the grant,
//! so revoking the grant ([`Store::revoke_grants`], `store/revocation.rs`) cuts off all of its tokens at once even if a
//! token is being issued concurrently.
//!
//! After an upstream refresh the new upstream tokens are written with a compare-and-swap on
//! `upstream_version` ([`Store::update_upstream_tokens`]): when two replicas refresh upstream at
//! once, the second write is refused ([`UpstreamUpdate::Stale`]) and that replica re-reads the
//! grant instead of overwriting a newer refresh token with an older one.

use sqlx::any::AnyRow;

use super::{
    AuthorizationCode, Durability, OpConn, Secret, Statement, Store, StoreError,
    audit::{AuditActor, AuditEntry, AuditKind, entry_insert},
    col,
    crypto::{Sealed, aad},
    from_json, join_scopes, split_scopes, to_json,
};

/// The upstream (AuthKit) tokens of a grant; sealed at rest.
#[derive(Clone, Debug)]
#[cfg_attr(test, derive(PartialEq, Eq))] // holds a `Secret`: compared in tests only
pub struct UpstreamTokens {
    /// AuthKit access token.
    pub access_token: Secret,
    /// AuthKit refresh token.
    pub refresh_token: Option<Secret>,
    /// AuthKit id token.
    pub id_token: Option<Secret>,
    /// When the AuthKit access token expires (unix seconds).
    pub expires_at: Option<i64>,
}

/// A user's authorization of an MCP client.
#[derive(Clone, Debug)]
#[cfg_attr(test, derive(PartialEq))] // holds a `Secret`: compared in tests only
pub struct Grant {
    /// Our grant id.
    pub grant_id: String,
    /// The user (AuthKit `sub`).
    pub subject: String,
    /// The MCP client.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The resource (RFC 8707) tokens of this grant are bound to.
    pub resource: Option<String>,
    /// The upstream session.
    pub upstream: UpstreamTokens,
    /// Compare-and-swap counter of `upstream`; the store sets it (0 on creation).
    pub upstream_version: i64,
    /// The user's profile (a JSON object), for `Authenticated` claims.
    pub profile: Option<serde_json::Value>,
    /// Creation time (unix seconds).
    pub created_at: i64,
    /// End of the session: no token of this grant outlives it (unix seconds).
    pub expires_at: i64,
}

/// The outcome of [`Store::update_upstream_tokens`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamUpdate {
    /// Written; the grant's new `upstream_version`.
    Updated {
        /// The new version.
        version: i64,
    },
    /// Not written: another replica updated the tokens first, or the grant is revoked, expired
    /// or gone. Re-read the grant.
    Stale,
}

pub(super) const TABLE: &str = "mcp_auth_grants";

/// The columns [`Store::grant_from_row`] reads, as a literal for `concat!`.
macro_rules! grant_columns {
    () => {
        "grant_id, subject, client_id, scopes, resource, key_id, upstream_access_token, \
         upstream_refresh_token, upstream_id_token, upstream_expires_at, upstream_version, \
         profile, created_at, expires_at"
    };
}

/// The same columns qualified with the alias `g`, for joins.
macro_rules! grant_columns_g {
    () => {
        "g.grant_id, g.subject, g.client_id, g.scopes, g.resource, g.key_id, \
         g.upstream_access_token, g.upstream_refresh_token, g.upstream_id_token, \
         g.upstream_expires_at, g.upstream_version, g.profile, g.created_at, g.expires_at"
    };
}
pub(super) use {grant_columns, grant_columns_g};

/// Sealed upstream tokens, ready to bind.
struct SealedUpstream {
    key_id: String,
    access: String,
    refresh: Option<String>,
    id: Option<String>,
}

impl Store {
    fn seal_upstream(&self, grant_id: &str, upstream: &UpstreamTokens) -> SealedUpstream {
        let seal = |column: &str, secret: &Secret| {
            self.keys
                .seal_secret(&aad(TABLE, column, grant_id), secret)
                .ciphertext
        };
        SealedUpstream {
            key_id: self.keys.sealing_key_id().to_owned(),
            access: seal("upstream_access_token", &upstream.access_token),
            refresh: upstream
                .refresh_token
                .as_ref()
                .map(|s| seal("upstream_refresh_token", s)),
            id: upstream
                .id_token
                .as_ref()
                .map(|s| seal("upstream_id_token", s)),
        }
    }

    fn open_upstream(
        &self,
        grant_id: &str,
        key_id: &str,
        column: &str,
        ciphertext: String,
        op: &'static str,
    ) -> Result<Secret, StoreError> {
        let sealed = Sealed {
            key_id: key_id.to_owned(),
            ciphertext,
        };
        self.keys
            .open_secret(&sealed, &aad(TABLE, column, grant_id))
            .map_err(|e| StoreError::sealed(op, e))
    }

    pub(super) fn grant_from_row(
        &self,
        row: &AnyRow,
        op: &'static str,
    ) -> Result<Grant, StoreError> {
        let grant_id: String = col(row, "grant_id", op)?;
        let key_id: String = col(row, "key_id", op)?;
        let open = |column: &'static str, value: Option<String>| {
            value
                .map(|c| self.open_upstream(&grant_id, &key_id, column, c, op))
                .transpose()
        };
        let upstream = UpstreamTokens {
            access_token: self.open_upstream(
                &grant_id,
                &key_id,
                "upstream_access_token",
                col(row, "upstream_access_token", op)?,
                op,
            )?,
            refresh_token: open(
                "upstream_refresh_token",
                col(row, "upstream_refresh_token", op)?,
            )?,
            id_token: open("upstream_id_token", col(row, "upstream_id_token", op)?)?,
            expires_at: col(row, "upstream_expires_at", op)?,
        };
        let profile: Option<String> = col(row, "profile", op)?;
        Ok(Grant {
            subject: col(row, "subject", op)?,
            client_id: col(row, "client_id", op)?,
            scopes: split_scopes(&col::<String>(row, "scopes", op)?),
            resource: col(row, "resource", op)?,
            upstream,
            upstream_version: col(row, "upstream_version", op)?,
            profile: profile.map(|p| from_json(&p, op, "profile")).transpose()?,
            created_at: col(row, "created_at", op)?,
            expires_at: col(row, "expires_at", op)?,
            grant_id,
        })
    }

    /// Stores a new grant and its authorization code in one transaction with its
    /// `grant_created` audit entry, and extends the
    /// client's expiry to cover the grant (its first grant marks the client as used: it no
    /// longer counts among [`Store::unused_clients`]). `code.grant_id` must be `grant.grant_id`;
    /// `grant.upstream_version` is ignored (a new grant is at version 0, live).
    pub(crate) async fn create_grant(
        &self,
        grant: &Grant,
        code: &AuthorizationCode,
    ) -> Result<(), StoreError> {
        const OP: &str = "create_grant";
        let _turn = self.write_turn().await;
        if code.grant_id != grant.grant_id || code.client_id != grant.client_id {
            return Err(StoreError::Invalid {
                op: OP,
                reason: "the code belongs to another grant or client",
            });
        }
        let sealed = self.seal_upstream(&grant.grant_id, &grant.upstream);
        let err = |e| StoreError::from_sqlx(OP, e);
        // Relaxed: a grant and code undone by an OS crash make the code's redemption fail with
        // `invalid_grant`, and the client logs in again. The redemption's own commit is full,
        // and syncs this one with it (see `Durability`).
        let mut tx = self.begin_with(OP, Durability::Relaxed).await?;
        self.insert_grant(&mut tx, grant, sealed)
            .await
            .map_err(err)?;
        super::codes::insert_code(&mut tx, code)
            .await
            .map_err(err)?;
        sqlx::query(
            "UPDATE mcp_auth_clients SET last_used_at = $2, \
             expires_at = CASE WHEN expires_at < $3 THEN $3 ELSE expires_at END \
             WHERE client_id = $1",
        )
        .bind(&grant.client_id)
        .bind(self.now())
        .bind(grant.expires_at)
        .execute_in(&mut tx)
        .await
        .map_err(err)?;
        sqlx::query("DELETE FROM mcp_auth_unused_clients WHERE client_id = $1")
            .bind(&grant.client_id)
            .execute_in(&mut tx)
            .await
            .map_err(err)?;
        let created = AuditEntry::new(AuditKind::GrantCreated, AuditActor::User)
            .subject(&grant.subject)
            .client(&grant.client_id)
            .grant(&grant.grant_id)
            .detail(serde_json::json!({ "scopes": grant.scopes }));
        tx.execute_and_commit(entry_insert(
            &created,
            self.now(),
            self.audit_retention_secs(),
        ))
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn insert_grant(
        &self,
        conn: &mut OpConn,
        grant: &Grant,
        sealed: SealedUpstream,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(concat!(
            "INSERT INTO mcp_auth_grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13)"
        ))
        .bind(&grant.grant_id)
        .bind(&grant.subject)
        .bind(&grant.client_id)
        .bind(join_scopes(&grant.scopes))
        .bind(grant.resource.as_deref())
        .bind(sealed.key_id)
        .bind(sealed.access)
        .bind(sealed.refresh)
        .bind(sealed.id)
        .bind(grant.upstream.expires_at)
        .bind(grant.profile.as_ref().map(to_json))
        .bind(grant.created_at)
        .bind(grant.expires_at)
        .execute_in(conn)
        .await?;
        Ok(())
    }

    /// The grant, unless unknown, expired or revoked.
    pub(crate) async fn get_grant(&self, grant_id: &str) -> Result<Option<Grant>, StoreError> {
        const OP: &str = "get_grant";
        let row = sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM mcp_auth_grants WHERE grant_id = $1 AND expires_at > $2 AND revoked_at IS NULL"
        ))
        .bind(grant_id)
        .bind(self.now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| self.grant_from_row(&r, OP)).transpose()
    }

    /// Replaces the upstream tokens if the grant is still at `expected_version` (the
    /// `upstream_version` read before refreshing upstream), sealing them with the current key.
    pub(crate) async fn update_upstream_tokens(
        &self,
        grant_id: &str,
        expected_version: i64,
        upstream: &UpstreamTokens,
    ) -> Result<UpstreamUpdate, StoreError> {
        const OP: &str = "update_upstream_tokens";
        let _turn = self.write_turn().await;
        let sealed = self.seal_upstream(grant_id, upstream);
        let row = sqlx::query(
            "UPDATE mcp_auth_grants SET key_id = $3, upstream_access_token = $4, \
             upstream_refresh_token = $5, upstream_id_token = $6, upstream_expires_at = $7, \
             upstream_version = upstream_version + 1 \
             WHERE grant_id = $1 AND upstream_version = $2 AND revoked_at IS NULL \
             AND expires_at > $8 RETURNING upstream_version",
        )
        .bind(grant_id)
        .bind(expected_version)
        .bind(sealed.key_id)
        .bind(sealed.access)
        .bind(sealed.refresh)
        .bind(sealed.id)
        .bind(upstream.expires_at)
        .bind(self.now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        match row {
            Some(row) => Ok(UpstreamUpdate::Updated {
                version: col(&row, "upstream_version", OP)?,
            }),
            None => Ok(UpstreamUpdate::Stale),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn joined_columns_match() {
        let plain: Vec<&str> = grant_columns!().split(", ").map(str::trim).collect();
        let joined: Vec<&str> = grant_columns_g!()
            .split(", ")
            .map(|c| c.trim().trim_start_matches("g."))
            .collect();
        assert_eq!(plain, joined);
    }
}
