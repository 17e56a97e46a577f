//! Pending authorizations (`mcp_auth_pending`): an MCP client's authorization request between
//! `/authorize` and AuthKit's callback.
//!
//! Life cycle: [`Store::create_pending`] at `/authorize`; [`Store::get_pending`] to render the
//! consent page (with its client: [`Store::get_pending_with_client`]); [`Store::approve_pending`] when the consent form comes back (checks the browser
//! binding, consumes the form's single-use CSRF token and marks the request approved in one
//! statement); [`Store::claim_approved_pending`] at the callback (checks the binding and the
//! approval, deletes and returns the row in one statement, so a callback is honoured once);
//! [`Store::consume_pending`] when the user denies.
//! A request approved through a remembered consent is created with `consented_at` already set.

use sqlx::any::AnyRow;

use super::{
    ClientRecord, Durability, Secret, Statement, Store, StoreError, TokenHash,
    clients::client_columns_c,
    col,
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

/// The same columns of the alias `p`, for joins (read back under their plain names).
macro_rules! pending_columns_p {
    () => {
        "p.txn_id, p.client_id, p.redirect_uri, p.client_state, p.code_challenge, p.scopes, \
         p.resource, p.key_id, p.upstream_verifier, p.upstream_nonce, p.browser_binding_hash, \
         p.consent_token_hash, p.consented_at, p.created_at, p.expires_at, p.redirect_uri_sent"
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
        .execute_in(&mut self.conn_with(OP, Durability::Relaxed).await?)
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

    /// The pending authorization, unless unknown or expired, with its client (`None` when the
    /// client is unknown or expired), in one read: what the consent page shows.
    pub(crate) async fn get_pending_with_client(
        &self,
        txn_id: &str,
    ) -> Result<Option<(PendingAuthorization, Option<ClientRecord>)>, StoreError> {
        const OP: &str = "get_pending_with_client";
        let row = sqlx::query(concat!(
            "SELECT ",
            pending_columns_p!(),
            ", ",
            client_columns_c!(),
            " FROM mcp_auth_pending p LEFT JOIN mcp_auth_clients c \
             ON c.client_id = p.client_id AND c.expires_at > $2 \
             WHERE p.txn_id = $1 AND p.expires_at > $2"
        ))
        .bind(txn_id)
        .bind(now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        let Some(row) = row else { return Ok(None) };
        let pending = self.pending_from_row(&row, OP)?;
        let client = match col::<Option<String>>(&row, "c_client_id", OP)? {
            Some(_) => Some(ClientRecord::from_prefixed_row(&row, "c_", OP)?),
            None => None,
        };
        Ok(Some((pending, client)))
    }

    /// Records the user's approval if `consent_token` is the request's unused CSRF token and
    /// `browser_binding` its browser-binding digest: clears the token and sets `consented_at` in
    /// one statement, so a form submitted twice (or by two replicas at once) is approved once,
    /// and only from the browser that started the request. Returns the approved request, or
    /// `None` when the token or binding does not match, the token was used, or the request
    /// expired (nothing changed; [`Store::get_pending`] tells which).
    pub(crate) async fn approve_pending(
        &self,
        txn_id: &str,
        consent_token: &TokenHash,
        browser_binding: &TokenHash,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        const OP: &str = "approve_pending";
        let _turn = self.write_turn().await;
        let row = sqlx::query(concat!(
            "UPDATE mcp_auth_pending SET consented_at = $3, consent_token_hash = NULL \
             WHERE txn_id = $1 AND consent_token_hash = $2 AND browser_binding_hash = $4 \
             AND consented_at IS NULL AND expires_at > $3 RETURNING ",
            pending_columns!()
        ))
        .bind(txn_id)
        .bind(consent_token.as_str())
        .bind(now())
        .bind(browser_binding.as_str())
        .fetch_optional_in(&mut self.conn_with(OP, Durability::Relaxed).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| self.pending_from_row(&r, OP)).transpose()
    }

    /// At the upstream callback: deletes and returns the pending authorization if it was
    /// approved and `browser_binding` is its browser-binding digest, in one statement. Of
    /// concurrent callers exactly one gets it; `None` (nothing changed) when it is unknown,
    /// already consumed, expired, not approved or bound to another browser
    /// ([`Store::get_pending`] tells which).
    pub(crate) async fn claim_approved_pending(
        &self,
        txn_id: &str,
        browser_binding: &TokenHash,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        const OP: &str = "claim_approved_pending";
        let _turn = self.write_turn().await;
        let row = sqlx::query(concat!(
            "DELETE FROM mcp_auth_pending WHERE txn_id = $1 AND expires_at > $2 \
             AND browser_binding_hash = $3 AND consented_at IS NOT NULL RETURNING ",
            pending_columns!()
        ))
        .bind(txn_id)
        .bind(now())
        .bind(browser_binding.as_str())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| self.pending_from_row(&r, OP)).transpose()
    }

    /// Deletes and returns the pending authorization (a denied consent). Of concurrent callers
    /// exactly one gets it; `None` when unknown, already consumed or expired. The caller must
    /// have checked the browser binding.
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

#[cfg(test)]
mod tests {
    #[test]
    fn joined_columns_match() {
        let plain: Vec<&str> = pending_columns!().split(", ").map(str::trim).collect();
        let joined: Vec<&str> = pending_columns_p!()
            .split(", ")
            .map(|c| c.trim().trim_start_matches("p."))
            .collect();
        assert_eq!(plain, joined);
    }
}
