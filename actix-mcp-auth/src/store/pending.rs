//! Pending authorizations (`mcp_auth_pending`): an MCP client's authorization request between
//! `/authorize` and AuthKit's callback.
//!
//! Life cycle: [`Store::create_pending`] at `/authorize`; [`Store::get_pending`] to render the
//! consent page; [`Store::approve_pending`] when the consent form comes back (consumes the form's
//! single-use CSRF token and marks the request approved in one statement); [`Store::consume_pending`]
//! at the callback (deletes and returns the row in one statement, so a callback is honoured once).
//! A request approved through a remembered consent is created with `consented_at` already set.

use sqlx::any::AnyRow;

use super::{
    Secret, Statement, Store, StoreError, TokenHash, col,
    crypto::{Sealed, aad},
    join_scopes, now, split_scopes,
};

/// An authorization request waiting for the user.
#[derive(Clone, Debug)]
#[cfg_attr(test, derive(PartialEq))] // holds a `Secret`: compared in tests only
pub struct PendingAuthorization {
    /// Our transaction id: the `state` we send upstream.
    pub txn_id: String,
    /// The MCP client.
    pub client_id: String,
    /// Where the MCP client wants the code.
    pub redirect_uri: String,
    /// Whether the request carried `redirect_uri` (rather than relying on the client's only
    /// registered one): then the token request must repeat it (RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
    /// The MCP client's `state`, returned with the code.
    pub client_state: Option<String>,
    /// The MCP client's S256 PKCE challenge.
    pub code_challenge: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Requested resource (RFC 8707), canonical form.
    pub resource: Option<String>,
    /// The PKCE verifier of our own login at AuthKit (sealed at rest).
    pub upstream_verifier: Secret,
    /// The nonce sent upstream, if any.
    pub upstream_nonce: Option<String>,
    /// SHA-256 of the browser-binding cookie set at `/authorize`.
    pub browser_binding: Option<TokenHash>,
    /// SHA-256 of the consent form's single-use CSRF token.
    pub consent_token: Option<TokenHash>,
    /// When the user approved (or a remembered consent applied).
    pub consented_at: Option<i64>,
    /// Creation time (unix seconds).
    pub created_at: i64,
    /// Expiry (unix seconds).
    pub expires_at: i64,
}

const TABLE: &str = "mcp_auth_pending";

/// The columns [`PendingAuthorization::from_row`] reads, as a literal for `concat!`.
macro_rules! pending_columns {
    () => {
        "txn_id, client_id, redirect_uri, client_state, code_challenge, scopes, resource, key_id, \
         upstream_verifier, upstream_nonce, browser_binding_hash, consent_token_hash, \
         consented_at, created_at, expires_at, redirect_uri_sent"
    };
}

fn verifier_aad(txn_id: &str) -> Vec<u8> {
    aad(TABLE, "upstream_verifier", txn_id)
}

fn optional_hash(
    value: Option<String>,
    op: &'static str,
    column: &'static str,
) -> Result<Option<TokenHash>, StoreError> {
    value
        .map(|h| {
            TokenHash::from_hex(&h)
                .ok_or_else(|| StoreError::corrupt(op, format!("{column} is not a digest")))
        })
        .transpose()
}

impl Store {
    fn pending_from_row(
        &self,
        row: &AnyRow,
        op: &'static str,
    ) -> Result<PendingAuthorization, StoreError> {
        let txn_id: String = col(row, "txn_id", op)?;
        let sealed = Sealed {
            key_id: col(row, "key_id", op)?,
            ciphertext: col(row, "upstream_verifier", op)?,
        };
        let upstream_verifier = self
            .keys
            .open_secret(&sealed, &verifier_aad(&txn_id))
            .map_err(|e| StoreError::sealed(op, e))?;
        Ok(PendingAuthorization {
            client_id: col(row, "client_id", op)?,
            redirect_uri: col(row, "redirect_uri", op)?,
            redirect_uri_sent: col::<i64>(row, "redirect_uri_sent", op)? != 0,
            client_state: col(row, "client_state", op)?,
            code_challenge: col(row, "code_challenge", op)?,
            scopes: split_scopes(&col::<String>(row, "scopes", op)?),
            resource: col(row, "resource", op)?,
            upstream_verifier,
            upstream_nonce: col(row, "upstream_nonce", op)?,
            browser_binding: optional_hash(
                col(row, "browser_binding_hash", op)?,
                op,
                "browser_binding_hash",
            )?,
            consent_token: optional_hash(
                col(row, "consent_token_hash", op)?,
                op,
                "consent_token_hash",
            )?,
            consented_at: col(row, "consented_at", op)?,
            created_at: col(row, "created_at", op)?,
            expires_at: col(row, "expires_at", op)?,
            txn_id,
        })
    }

    /// Stores a new pending authorization (the verifier is sealed). The client must exist.
    pub(crate) async fn create_pending(
        &self,
        pending: &PendingAuthorization,
    ) -> Result<(), StoreError> {
        const OP: &str = "create_pending";
        let _turn = self.write_turn().await;
        let sealed = self
            .keys
            .seal_secret(&verifier_aad(&pending.txn_id), &pending.upstream_verifier);
        sqlx::query(concat!(
            "INSERT INTO mcp_auth_pending (",
            pending_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&pending.txn_id)
        .bind(&pending.client_id)
        .bind(&pending.redirect_uri)
        .bind(pending.client_state.as_deref())
        .bind(&pending.code_challenge)
        .bind(join_scopes(&pending.scopes))
        .bind(pending.resource.as_deref())
        .bind(sealed.key_id)
        .bind(sealed.ciphertext)
        .bind(pending.upstream_nonce.as_deref())
        .bind(pending.browser_binding.as_ref().map(TokenHash::as_str))
        .bind(pending.consent_token.as_ref().map(TokenHash::as_str))
        .bind(pending.consented_at)
        .bind(pending.created_at)
        .bind(pending.expires_at)
        .bind(i64::from(pending.redirect_uri_sent))
        .execute_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(())
    }

    /// The pending authorization, unless unknown or expired. Does not consume it.
    pub(crate) async fn get_pending(
        &self,
        txn_id: &str,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        const OP: &str = "get_pending";
        let row = sqlx::query(concat!(
            "SELECT ",
            pending_columns!(),
            " FROM mcp_auth_pending WHERE txn_id = $1 AND expires_at > $2"
        ))
        .bind(txn_id)
        .bind(now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| self.pending_from_row(&r, OP)).transpose()
    }

    /// Records the user's approval if `consent_token` is the request's unused CSRF token:
    /// clears the token and sets `consented_at` in one statement, so a form submitted twice (or
    /// by two replicas at once) is approved once. Returns the approved request, or `None` when
    /// the token does not match, was used, or the request expired.
    pub(crate) async fn approve_pending(
        &self,
        txn_id: &str,
        consent_token: &TokenHash,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        const OP: &str = "approve_pending";
        let _turn = self.write_turn().await;
        let row = sqlx::query(concat!(
            "UPDATE mcp_auth_pending SET consented_at = $3, consent_token_hash = NULL \
             WHERE txn_id = $1 AND consent_token_hash = $2 AND consented_at IS NULL \
             AND expires_at > $3 RETURNING ",
            pending_columns!()
        ))
        .bind(txn_id)
        .bind(consent_token.as_str())
        .bind(now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| self.pending_from_row(&r, OP)).transpose()
    }

    /// Deletes and returns the pending authorization (at the upstream callback). Of concurrent
    /// callers exactly one gets it; `None` when unknown, already consumed or expired. The caller
    /// must still check `consented_at` and the browser binding.
    pub(crate) async fn consume_pending(
        &self,
        txn_id: &str,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        const OP: &str = "consume_pending";
        let _turn = self.write_turn().await;
        let row = sqlx::query(concat!(
            "DELETE FROM mcp_auth_pending WHERE txn_id = $1 AND expires_at > $2 RETURNING ",
            pending_columns!()
        ))
        .bind(txn_id)
        .bind(now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| self.pending_from_row(&r, OP)).transpose()
    }
}
