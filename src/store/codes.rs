//! Authorization codes (`mcp_auth_codes`), stored as SHA-256 digests.
//!
//! A code is consumed by one statement, `UPDATE … SET used_at = now WHERE used_at IS NULL …
//! RETURNING`, so of two concurrent redemptions (on any replicas) exactly one wins. The row stays
//! until it expires, which makes a second redemption recognizable: it is reported as
//! [`CodeConsumed::Replayed`] so the caller can revoke the grant (RFC 9700 §4.5: a replayed code
//! means the first redemption may have been an attacker's).

use sqlx::{AnyConnection, any::AnyRow};

use super::{Store, StoreError, TokenHash, col, join_scopes, now, split_scopes};

/// An authorization code we issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 of the code.
    pub code_hash: TokenHash,
    /// The grant the code redeems.
    pub grant_id: String,
    /// The MCP client the code was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request (must match at the token endpoint).
    pub redirect_uri: String,
    /// The client's S256 PKCE challenge.
    pub code_challenge: String,
    /// Scopes of the tokens the code yields.
    pub scopes: Vec<String>,
    /// Resource (RFC 8707) of the tokens the code yields.
    pub resource: Option<String>,
    /// Issue time (unix seconds).
    pub created_at: i64,
    /// Expiry (unix seconds).
    pub expires_at: i64,
    /// When the code was redeemed.
    pub used_at: Option<i64>,
}

/// The outcome of [`Store::consume_code`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeConsumed {
    /// First redemption: the code, now marked used.
    Consumed(AuthorizationCode),
    /// The code was already redeemed: revoke its grant.
    Replayed {
        /// The grant of the replayed code.
        grant_id: String,
    },
    /// Unknown or expired code, or its grant was revoked.
    NotFound,
}

macro_rules! code_columns {
    () => {
        "code_hash, grant_id, client_id, redirect_uri, code_challenge, scopes, resource, \
         created_at, expires_at, used_at"
    };
}

impl AuthorizationCode {
    fn from_row(row: &AnyRow, op: &'static str) -> Result<Self, StoreError> {
        let hash: String = col(row, "code_hash", op)?;
        Ok(Self {
            code_hash: TokenHash::from_hex(&hash)
                .ok_or_else(|| StoreError::corrupt(op, "code_hash is not a digest"))?,
            grant_id: col(row, "grant_id", op)?,
            client_id: col(row, "client_id", op)?,
            redirect_uri: col(row, "redirect_uri", op)?,
            code_challenge: col(row, "code_challenge", op)?,
            scopes: split_scopes(&col::<String>(row, "scopes", op)?),
            resource: col(row, "resource", op)?,
            created_at: col(row, "created_at", op)?,
            expires_at: col(row, "expires_at", op)?,
            used_at: col(row, "used_at", op)?,
        })
    }
}

/// Inserts a code inside the caller's transaction ([`Store::create_grant`]).
pub(super) async fn insert_code(
    conn: &mut AnyConnection,
    code: &AuthorizationCode,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO mcp_auth_codes (",
        code_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)"
    ))
    .bind(code.code_hash.as_str())
    .bind(&code.grant_id)
    .bind(&code.client_id)
    .bind(&code.redirect_uri)
    .bind(&code.code_challenge)
    .bind(join_scopes(&code.scopes))
    .bind(code.resource.as_deref())
    .bind(code.created_at)
    .bind(code.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Redeems a code: marks it used and returns it, atomically. The caller then checks the
    /// client, redirect URI and PKCE verifier, and issues tokens with [`Store::issue_tokens`].
    pub async fn consume_code(&self, code_hash: &TokenHash) -> Result<CodeConsumed, StoreError> {
        const OP: &str = "consume_code";
        // A correlated EXISTS, not `grant_id IN (SELECT …)`: SQLite would build the whole list
        // of live grants for every call.
        let _turn = self.write_turn().await;
        let row = sqlx::query(concat!(
            "UPDATE mcp_auth_codes SET used_at = $2 \
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             AND EXISTS (SELECT 1 FROM mcp_auth_grants g \
             WHERE g.grant_id = mcp_auth_codes.grant_id AND g.revoked_at IS NULL \
             AND g.expires_at > $2) RETURNING ",
            code_columns!()
        ))
        .bind(code_hash.as_str())
        .bind(now())
        .fetch_optional(&mut *self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        if let Some(row) = row {
            return Ok(CodeConsumed::Consumed(AuthorizationCode::from_row(
                &row, OP,
            )?));
        }
        // Lost the race or a replay: a used row says which grant to revoke.
        let grant_id: Option<String> = sqlx::query_scalar(
            "SELECT grant_id FROM mcp_auth_codes WHERE code_hash = $1 AND used_at IS NOT NULL",
        )
        .bind(code_hash.as_str())
        .fetch_optional(&mut *self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(match grant_id {
            Some(grant_id) => CodeConsumed::Replayed { grant_id },
            None => CodeConsumed::NotFound,
        })
    }
}
