//! Remembered consent (`mcp_auth_consents`): who approved which MCP client, so the consent page
//! can be skipped next time.
//!
//! "Who" is whatever the caller can identify when it decides to show the page: at `/authorize`
//! the user is not known yet, so it is typically the hash of a browser-binding cookie; after the
//! callback it can be the user's subject. One approval per (who, client); remembering again
//! replaces it. The single-use consent CSRF token lives on the pending authorization instead
//! (see [`Store::approve_pending`]).

use sqlx::any::AnyRow;

use super::{Statement, Store, StoreError, col, join_scopes, now, split_scopes};

/// A remembered approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentApproval {
    /// Who approved: a user subject or a browser-binding hash.
    pub subject: String,
    /// The approved MCP client.
    pub client_id: String,
    /// The approved scopes; a request for more must ask again.
    pub scopes: Vec<String>,
    /// The approved resource, if the request named one.
    pub resource: Option<String>,
    /// When the approval was given (unix seconds).
    pub created_at: i64,
    /// When it must be asked again (unix seconds).
    pub expires_at: i64,
    /// Digest of the client's redirect URIs when it was approved (see
    /// [`redirect_uris_digest`](crate::oauth::consent::redirect_uris_digest)); an approval is
    /// not reused once they changed. `None` for approvals recorded before version
    /// 20261130000400.
    pub redirect_uris_digest: Option<String>,
}

impl ConsentApproval {
    fn from_row(row: &AnyRow, op: &'static str) -> Result<Self, StoreError> {
        Ok(Self {
            subject: col(row, "subject", op)?,
            client_id: col(row, "client_id", op)?,
            scopes: split_scopes(&col::<String>(row, "scopes", op)?),
            resource: col(row, "resource", op)?,
            created_at: col(row, "created_at", op)?,
            expires_at: col(row, "expires_at", op)?,
            redirect_uris_digest: col(row, "redirect_uris_digest", op)?,
        })
    }
}

impl Store {
    /// Remembers an approval, replacing an earlier one for the same subject and client.
    pub(crate) async fn remember_consent(
        &self,
        approval: &ConsentApproval,
    ) -> Result<(), StoreError> {
        const OP: &str = "remember_consent";
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO mcp_auth_consents (subject, client_id, scopes, resource, created_at, \
             expires_at, redirect_uris_digest) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (subject, client_id) DO UPDATE SET scopes = excluded.scopes, \
             resource = excluded.resource, created_at = excluded.created_at, \
             expires_at = excluded.expires_at, \
             redirect_uris_digest = excluded.redirect_uris_digest",
        )
        .bind(&approval.subject)
        .bind(&approval.client_id)
        .bind(join_scopes(&approval.scopes))
        .bind(approval.resource.as_deref())
        .bind(approval.created_at)
        .bind(approval.expires_at)
        .bind(approval.redirect_uris_digest.as_deref())
        .execute_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(())
    }

    /// The unexpired approval of `client_id` by `subject`, if any.
    pub(crate) async fn find_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ConsentApproval>, StoreError> {
        const OP: &str = "find_consent";
        let row = sqlx::query(
            "SELECT subject, client_id, scopes, resource, created_at, expires_at, \
             redirect_uris_digest FROM mcp_auth_consents \
             WHERE subject = $1 AND client_id = $2 AND expires_at > $3",
        )
        .bind(subject)
        .bind(client_id)
        .bind(now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| ConsentApproval::from_row(&r, OP)).transpose()
    }

    /// Forgets an approval (after a denied login, so a browser keeps no approval for a client
    /// its user may not use). Returns whether there was one.
    pub(crate) async fn forget_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "forget_consent";
        let _turn = self.write_turn().await;
        let done =
            sqlx::query("DELETE FROM mcp_auth_consents WHERE subject = $1 AND client_id = $2")
                .bind(subject)
                .bind(client_id)
                .execute_in(&mut self.conn(OP).await?)
                .await
                .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(done.rows_affected() == 1)
    }
}
