//! Authorization codes (`mcp_auth_codes`), stored as SHA-256 digests.
//!
//! Redemption is two steps. [`Store::find_code`] reads the code, so the caller can check the
//! client, redirect URI and PKCE verifier first: a wrong guess must neither burn the code nor
//! revoke its grant. Then [`Store::consume_code`] consumes it by one statement, `UPDATE … SET
//! used_at = now WHERE used_at IS NULL AND client_id = … AND redirect_uri = … AND code_challenge
//! = … RETURNING`, so of two concurrent redemptions (on any replicas) exactly one wins, and only
//! with the values that were checked; the token pair is stored in the same transaction, so a
//! code is never spent without its tokens. The row stays until it expires, which makes a second
//! redemption recognizable: it is reported as [`CodeConsumed::Replayed`] so the caller can revoke
//! the grant (RFC 9700 §4.5: a replayed code means the first redemption may have been an
//! attacker's).

use sqlx::any::AnyRow;

use super::{
    ClientRecord, IssuedTokens, NewTokens, OpConn, ScalarStatement, Statement, Store, StoreError,
    TokenHash,
    clients::client_columns_c,
    col, join_scopes, now, split_scopes,
    tokens::{GrantOf, lock_live_grant, token_insert},
};

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
    /// Whether the authorization request carried `redirect_uri` (rather than relying on the
    /// client's only registered one): then the token request must repeat it (RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
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

/// What the token request proved about a code, checked by the caller against the code read with
/// `Store::find_code`: the code is consumed only if it still carries these values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeRedemption<'a> {
    /// The authenticated client.
    pub client_id: &'a str,
    /// The code's redirect URI, which the request matched (or, when the authorization request
    /// did not carry one, may omit).
    pub redirect_uri: &'a str,
    /// The code's PKCE challenge, which the request's verifier matched.
    pub code_challenge: &'a str,
}

/// The outcome of `Store::consume_code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeConsumed {
    /// First redemption: the code is now marked used, and this was issued for it.
    Consumed(IssuedTokens),
    /// The code was already redeemed, with the same client, redirect URI and challenge: revoke
    /// its grant.
    Replayed {
        /// The grant of the replayed code.
        grant_id: String,
    },
    /// Unknown or expired code, its grant was revoked, or the code does not carry the values of
    /// the [`CodeRedemption`].
    NotFound,
    /// The code's grant was revoked while the code was being redeemed; nothing changed.
    GrantEnded,
}

macro_rules! code_columns {
    () => {
        "code_hash, grant_id, client_id, redirect_uri, code_challenge, scopes, resource, \
         created_at, expires_at, used_at, redirect_uri_sent"
    };
}

/// The same columns of the alias `k`, named `k_…`, for joins.
macro_rules! code_columns_k {
    () => {
        "k.code_hash AS k_code_hash, k.grant_id AS k_grant_id, k.client_id AS k_client_id, \
         k.redirect_uri AS k_redirect_uri, k.code_challenge AS k_code_challenge, \
         k.scopes AS k_scopes, k.resource AS k_resource, k.created_at AS k_created_at, \
         k.expires_at AS k_expires_at, k.used_at AS k_used_at, \
         k.redirect_uri_sent AS k_redirect_uri_sent"
    };
}

/// Column names as read back, plain or with the `k_` alias of joins.
struct CodeNames([&'static str; 11]);

const PLAIN: CodeNames = CodeNames([
    "code_hash",
    "grant_id",
    "client_id",
    "redirect_uri",
    "code_challenge",
    "scopes",
    "resource",
    "created_at",
    "expires_at",
    "used_at",
    "redirect_uri_sent",
]);

const ALIASED: CodeNames = CodeNames([
    "k_code_hash",
    "k_grant_id",
    "k_client_id",
    "k_redirect_uri",
    "k_code_challenge",
    "k_scopes",
    "k_resource",
    "k_created_at",
    "k_expires_at",
    "k_used_at",
    "k_redirect_uri_sent",
]);

impl AuthorizationCode {
    fn from_row(row: &AnyRow, op: &'static str) -> Result<Self, StoreError> {
        Self::from_named_row(row, &PLAIN, op)
    }

    fn from_named_row(
        row: &AnyRow,
        names: &CodeNames,
        op: &'static str,
    ) -> Result<Self, StoreError> {
        let [
            hash,
            grant,
            client,
            redirect,
            challenge,
            scopes,
            resource,
            created,
            expires,
            used,
            sent,
        ] = names.0;
        let hash: String = col(row, hash, op)?;
        Ok(Self {
            code_hash: TokenHash::from_hex(&hash)
                .ok_or_else(|| StoreError::corrupt(op, "code_hash is not a digest"))?,
            grant_id: col(row, grant, op)?,
            client_id: col(row, client, op)?,
            redirect_uri: col(row, redirect, op)?,
            code_challenge: col(row, challenge, op)?,
            scopes: split_scopes(&col::<String>(row, scopes, op)?),
            resource: col(row, resource, op)?,
            created_at: col(row, created, op)?,
            expires_at: col(row, expires, op)?,
            used_at: col(row, used, op)?,
            redirect_uri_sent: col::<i64>(row, sent, op)? != 0,
        })
    }
}

/// Inserts a code inside the caller's transaction ([`Store::create_grant`]).
pub(super) async fn insert_code(
    conn: &mut OpConn,
    code: &AuthorizationCode,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO mcp_auth_codes (",
        code_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)"
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
    .bind(i64::from(code.redirect_uri_sent))
    .execute_in(conn)
    .await?;
    Ok(())
}

impl Store {
    /// The unexpired code with this digest, used or not, if its grant is live: for the caller
    /// to check the client, redirect URI and PKCE verifier before `Store::consume_code`.
    pub(crate) async fn find_code(
        &self,
        code_hash: &TokenHash,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        const OP: &str = "find_code";
        let row = sqlx::query(concat!(
            "SELECT ",
            code_columns!(),
            " FROM mcp_auth_codes WHERE code_hash = $1 AND expires_at > $2 \
             AND EXISTS (SELECT 1 FROM mcp_auth_grants g \
             WHERE g.grant_id = mcp_auth_codes.grant_id AND g.revoked_at IS NULL \
             AND g.expires_at > $2)"
        ))
        .bind(code_hash.as_str())
        .bind(self.now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| AuthorizationCode::from_row(&r, OP)).transpose()
    }

    /// The client with this id (unless unknown or expired, as [`Store::get_client`]) and the
    /// code with this digest (as [`Store::find_code`]), in one read: what a code redemption at
    /// the token endpoint looks at first.
    pub(crate) async fn get_client_and_code(
        &self,
        client_id: &str,
        code_hash: &TokenHash,
    ) -> Result<(Option<ClientRecord>, Option<AuthorizationCode>), StoreError> {
        const OP: &str = "get_client_and_code";
        // One row whatever matches: both sides are optional.
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns_c!(),
            ", ",
            code_columns_k!(),
            " FROM (SELECT 1 AS one) o \
             LEFT JOIN mcp_auth_clients c ON c.client_id = $1 AND c.expires_at > $3 \
             LEFT JOIN mcp_auth_codes k ON k.code_hash = $2 AND k.expires_at > $4 \
             AND EXISTS (SELECT 1 FROM mcp_auth_grants g \
             WHERE g.grant_id = k.grant_id AND g.revoked_at IS NULL AND g.expires_at > $4)"
        ))
        .bind(client_id)
        .bind(code_hash.as_str())
        // Clients follow the system clock, codes the store's (see `StoreOptions::clock`).
        .bind(now())
        .bind(self.now())
        .fetch_one_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        let client = match col::<Option<String>>(&row, "c_client_id", OP)? {
            Some(_) => Some(ClientRecord::from_prefixed_row(&row, "c_", OP)?),
            None => None,
        };
        let code = match col::<Option<String>>(&row, "k_code_hash", OP)? {
            Some(_) => Some(AuthorizationCode::from_named_row(&row, &ALIASED, OP)?),
            None => None,
        };
        Ok((client, code))
    }

    /// Redeems a code the caller has checked and issues its tokens, in one transaction: marks
    /// the code used if it is unused and still carries the values of `checked`, then stores the
    /// pair in `tokens` under the code's grant with the code's scopes, while the grant is live,
    /// each expiry capped at the grant's. Either both happen or neither does.
    pub(crate) async fn consume_code(
        &self,
        code_hash: &TokenHash,
        checked: &CodeRedemption<'_>,
        tokens: &NewTokens,
    ) -> Result<CodeConsumed, StoreError> {
        const OP: &str = "consume_code";
        let err = |e| StoreError::from_sqlx(OP, e);
        let _turn = self.write_turn().await;
        let now = self.now();
        let mut tx = self.begin(OP).await?;
        // The single-use update is the transaction's first statement (see the module docs of
        // `store`). A correlated EXISTS, not `grant_id IN (SELECT …)`: SQLite would build the
        // whole list of live grants for every call.
        let row = sqlx::query(concat!(
            "UPDATE mcp_auth_codes SET used_at = $2 \
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             AND client_id = $3 AND redirect_uri = $4 AND code_challenge = $5 \
             AND EXISTS (SELECT 1 FROM mcp_auth_grants g \
             WHERE g.grant_id = mcp_auth_codes.grant_id AND g.revoked_at IS NULL \
             AND g.expires_at > $2) RETURNING ",
            code_columns!()
        ))
        .bind(code_hash.as_str())
        .bind(now)
        .bind(checked.client_id)
        .bind(checked.redirect_uri)
        .bind(checked.code_challenge)
        .fetch_optional_in(&mut tx)
        .await
        .map_err(err)?;
        if let Some(row) = row {
            let code = AuthorizationCode::from_row(&row, OP)?;
            let grant = lock_live_grant(&mut tx, GrantOf::Id(&code.grant_id), now)
                .await
                .map_err(err)?;
            let Some(grant) = grant else {
                // The grant was revoked between the two statements (PostgreSQL): dropping the
                // transaction leaves the code unused, under a dead grant.
                return Ok(CodeConsumed::GrantEnded);
            };
            let (issued, insert) =
                token_insert(&grant, &code.scopes, tokens, None, now).map_err(err)?;
            tx.execute_and_commit(insert).await.map_err(err)?;
            return Ok(CodeConsumed::Consumed(issued));
        }
        // Lost the race or a replay: a used row with the same values says which grant to revoke.
        // Asked on the same connection; the transaction changed nothing and is rolled back.
        let grant_id: Option<String> = sqlx::query_scalar(
            "SELECT grant_id FROM mcp_auth_codes WHERE code_hash = $1 AND used_at IS NOT NULL \
             AND client_id = $2 AND redirect_uri = $3 AND code_challenge = $4",
        )
        .bind(code_hash.as_str())
        .bind(checked.client_id)
        .bind(checked.redirect_uri)
        .bind(checked.code_challenge)
        .fetch_optional_in(&mut tx)
        .await
        .map_err(err)?;
        Ok(match grant_id {
            Some(grant_id) => CodeConsumed::Replayed { grant_id },
            None => CodeConsumed::NotFound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_column_lists() {
        let listed: Vec<&str> = code_columns!().split(", ").map(str::trim).collect();
        assert_eq!(listed, PLAIN.0);
        let aliased: Vec<String> = code_columns_k!()
            .split(", ")
            .map(|c| c.trim().split_once(" AS ").expect("aliased").1.to_owned())
            .collect();
        assert_eq!(aliased, ALIASED.0);
        let prefixed: Vec<String> = PLAIN.0.iter().map(|c| format!("k_{c}")).collect();
        assert_eq!(prefixed, ALIASED.0);
    }
}
