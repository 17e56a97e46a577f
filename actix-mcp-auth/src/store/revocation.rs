//! What a user and an operator see of grants and how they end them: [`Store::user_grants`]
//! lists a user's live grants as [`GrantSummary`]s, [`Store::revoke_grants`] ends the grants a
//! [`GrantSelection`] names, and the library's own revocations (a client's `/revoke`, a replay, an
//! upstream session that ended) go through the same transaction.
//!
//! A revocation is one transaction: the grants are marked revoked (the first statement, so on
//! SQLite the transaction holds the write lock from the start), their tokens too (sealed
//! successor pairs are cleared: only digests stay behind), and a `grant_revoked` audit entry per
//! grant is appended, with a `replay_detected` entry first when a replay caused it. Either all of
//! it is stored or none.
//!
//! The store reaches no replica's token cache: a token verified recently keeps answering on a
//! replica for up to its cache window (`MCP_AUTH_TOKEN_CACHE_SECONDS`, capped by
//! `MCP_AUTH_USERINFO_CACHE_SECONDS`; 30 s by default). `WorkOsProvider::grants()` revokes
//! through the store *and* drops the grants from its own process's cache at once.

use sqlx::AssertSqlSafe;

use super::{
    Durability, OpConn, Statement, Store, StoreError,
    audit::{AuditActor, AuditEntry, AuditKind, insert_entry, insert_grant_entry},
    col, from_json, split_scopes,
};

/// Which grants [`Store::revoke_grants`] ends. Only live (unexpired, unrevoked) grants are
/// revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantSelection {
    /// One grant, whoever it belongs to (an operator's choice).
    Grant(String),
    /// One grant, only if it belongs to this user (what a user may end from their own page).
    UserGrant {
        /// The user (AuthKit `sub`).
        subject: String,
        /// The grant.
        grant_id: String,
    },
    /// Every grant of a user.
    User(String),
    /// Every grant of a client.
    Client(String),
}

impl GrantSelection {
    /// The `WHERE` condition on `mcp_auth_grants` and its values (`$2`, and `$3` when there
    /// is one; `$1` is now).
    fn condition(&self) -> (&'static str, &str, Option<&str>) {
        match self {
            Self::Grant(grant_id) => ("grant_id = $2", grant_id, None),
            Self::UserGrant { subject, grant_id } => {
                ("grant_id = $2 AND subject = $3", grant_id, Some(subject))
            }
            Self::User(subject) => ("subject = $2", subject, None),
            Self::Client(client_id) => ("client_id = $2", client_id, None),
        }
    }
}

/// A live grant as a "connected apps" list shows it. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct GrantSummary {
    /// The grant id (what [`GrantSelection`] takes).
    pub grant_id: String,
    /// The MCP client.
    pub client_id: String,
    /// The client's registered name (self-asserted; control and bidirectional-formatting
    /// characters removed), if it gave one.
    pub client_name: Option<String>,
    /// The host that stands for the client: its metadata document's publisher for a URL client
    /// id, else the host of its first redirect URI (`scheme:` for a private-use URI).
    pub client_host: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When the user authorized the client (unix seconds).
    pub created_at: i64,
    /// When a token of the grant was last issued or verified (unix seconds), to within
    /// [`LAST_USED_RESOLUTION_SECS`]; `None` before the first token.
    pub last_used_at: Option<i64>,
    /// When the grant ends unless refreshed tokens keep it (unix seconds).
    pub expires_at: i64,
}

/// How fresh [`GrantSummary::last_used_at`] is kept: issuing tokens always records the time; a
/// bearer check that reaches the database records it only when the stored time is older than
/// this, so verifying tokens writes at most once a minute per grant (and cached checks never).
pub const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// Why the library ends a grant: the actor and reason its audit entries record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RevokeCause {
    actor: AuditActor,
    reason: &'static str,
    /// A replay caused it: a `replay_detected` entry comes first.
    replay: bool,
}

impl RevokeCause {
    /// The client revoked a refresh token (RFC 7009), which ends its grant.
    pub(crate) const CLIENT_REQUEST: Self = Self::new(AuditActor::Client, "client_request");
    /// A used authorization code was presented again.
    pub(crate) const CODE_REPLAYED: Self = Self {
        replay: true,
        ..Self::new(AuditActor::System, "authorization_code_replayed")
    };
    /// A rotated (or revoked) refresh token was presented again.
    pub(crate) const REFRESH_REPLAYED: Self = Self {
        replay: true,
        ..Self::new(AuditActor::System, "refresh_token_replayed")
    };
    /// AuthKit no longer accepts the grant's session.
    pub(crate) const UPSTREAM_ENDED: Self = Self::new(AuditActor::System, "upstream_session_ended");
    /// The grant cannot be read any more (e.g. its encryption key was removed).
    pub(crate) const UNREADABLE: Self = Self::new(AuditActor::System, "grant_unreadable");

    const fn new(actor: AuditActor, reason: &'static str) -> Self {
        Self {
            actor,
            reason,
            replay: false,
        }
    }

    /// A revocation asked for through the API by `actor`.
    pub(crate) const fn requested_by(actor: AuditActor) -> Self {
        let reason = match actor {
            AuditActor::User => "user_request",
            AuditActor::Client => "client_request",
            AuditActor::Admin => "admin_request",
            AuditActor::System => "system",
        };
        Self::new(actor, reason)
    }

    fn detail(self) -> serde_json::Value {
        serde_json::json!({ "reason": self.reason })
    }
}

impl Store {
    /// The live (unexpired, unrevoked) grants of user `subject`, newest first, with what a
    /// "connected apps" page shows of their clients.
    pub async fn user_grants(&self, subject: &str) -> Result<Vec<GrantSummary>, StoreError> {
        const OP: &str = "user_grants";
        let rows = sqlx::query(
            "SELECT g.grant_id, g.client_id, g.scopes, g.created_at, g.last_used_at, \
             g.expires_at, c.client_name, c.redirect_uris \
             FROM mcp_auth_grants g LEFT JOIN mcp_auth_clients c ON c.client_id = g.client_id \
             WHERE g.subject = $1 AND g.revoked_at IS NULL AND g.expires_at > $2 \
             ORDER BY g.created_at DESC, g.grant_id",
        )
        .bind(subject)
        .bind(self.now())
        .fetch_all_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        rows.iter().map(|row| summary_from_row(row, OP)).collect()
    }

    /// Revokes the live grants `which` names and every token issued under them, in one
    /// transaction that also appends a `grant_revoked` audit entry per grant with `actor`.
    /// Returns the ids of the grants revoked (empty when none matched).
    ///
    /// Replicas that verified one of their tokens recently keep accepting it for up to their
    /// token-cache window; revoke through `WorkOsProvider::grants()` to drop them from this
    /// process's cache at once.
    pub async fn revoke_grants(
        &self,
        which: &GrantSelection,
        actor: AuditActor,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_selected(which, RevokeCause::requested_by(actor))
            .await
    }

    /// Revokes grant `grant_id` for `cause` (see [`Store::revoke_grants`]). Returns `false`
    /// when the grant was unknown, expired or already revoked; a replay is recorded either way.
    pub(crate) async fn revoke_grant(
        &self,
        grant_id: &str,
        cause: RevokeCause,
    ) -> Result<bool, StoreError> {
        let revoked = self
            .revoke_selected(&GrantSelection::Grant(grant_id.to_owned()), cause)
            .await?;
        Ok(!revoked.is_empty())
    }

    async fn revoke_selected(
        &self,
        which: &GrantSelection,
        cause: RevokeCause,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "revoke_grants";
        let _turn = self.write_turn().await;
        let err = |e| StoreError::from_sqlx(OP, e);
        let now = self.now();
        let mut tx = self.begin(OP).await?;
        let revoked = revoke_rows(&mut tx, which, now).await.map_err(err)?;
        if cause.replay
            && let GrantSelection::Grant(grant_id) = which
        {
            let replay =
                AuditEntry::new(AuditKind::ReplayDetected, cause.actor).detail(cause.detail());
            let retention = self.audit_retention_secs();
            insert_grant_entry(&mut tx, &replay, grant_id, now, retention)
                .await
                .map_err(err)?;
        }
        for (grant_id, subject, client_id) in &revoked {
            let entry = AuditEntry::new(AuditKind::GrantRevoked, cause.actor)
                .subject(subject)
                .client(client_id)
                .grant(grant_id)
                .detail(cause.detail());
            insert_entry(&mut tx, &entry, now, self.audit_retention_secs())
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(revoked.into_iter().map(|(grant_id, ..)| grant_id).collect())
    }

    /// Records that a token of grant `grant_id` was just verified from the database, unless
    /// `last_used_at` (as the lookup read it) is recent enough (see
    /// [`LAST_USED_RESOLUTION_SECS`]): most lookups write nothing.
    pub(crate) async fn note_grant_use(
        &self,
        grant_id: &str,
        last_used_at: Option<i64>,
    ) -> Result<(), StoreError> {
        const OP: &str = "note_grant_use";
        let now = self.now();
        let stale_before = now.saturating_sub(LAST_USED_RESOLUTION_SECS);
        if last_used_at.is_some_and(|t| t > stale_before) {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        // The condition again: another replica may have written meanwhile.
        sqlx::query(
            "UPDATE mcp_auth_grants SET last_used_at = $2 WHERE grant_id = $1 \
             AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(grant_id)
        .bind(now)
        .bind(stale_before)
        // A use's time only informs the connected-apps page: losing it to an OS crash shows
        // an older time.
        .execute_in(&mut self.conn_with(OP, Durability::Relaxed).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(())
    }
}

/// Marks the selected live grants and their tokens revoked; returns (grant, subject, client)
/// of each grant revoked.
async fn revoke_rows(
    conn: &mut OpConn,
    which: &GrantSelection,
    now: i64,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    use sqlx::Row as _;
    let (condition, first, second) = which.condition();
    // The condition is one of our constant texts; the values are bound.
    let rows = sqlx::query(AssertSqlSafe(format!(
        "UPDATE mcp_auth_grants SET revoked_at = $1 \
         WHERE revoked_at IS NULL AND expires_at > $1 AND {condition} \
         RETURNING grant_id, subject, client_id"
    )))
    .bind(now)
    .bind(first);
    let rows = bind_second(rows, second).fetch_all_in(conn).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Sealed successor pairs go too: only digests stay behind a revoked grant. The grants of
    // the selection revoked earlier have no live tokens left, so selecting all of its revoked
    // grants (rather than listing the ids just returned) changes nothing else.
    let tokens = sqlx::query(AssertSqlSafe(format!(
        concat!(
            "UPDATE mcp_auth_tokens SET revoked_at = $1, ",
            super::tokens::clear_successor!(),
            " WHERE revoked_at IS NULL AND grant_id IN (SELECT grant_id FROM mcp_auth_grants \
             WHERE revoked_at IS NOT NULL AND {condition})"
        ),
        condition = condition
    )))
    .bind(now)
    .bind(first);
    bind_second(tokens, second).execute_in(conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Binds the selection's second value when it has one (a statement must get exactly the
/// parameters it uses).
fn bind_second<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    second: Option<&'q str>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    match second {
        Some(value) => query.bind(value),
        None => query,
    }
}

fn summary_from_row(row: &sqlx::any::AnyRow, op: &'static str) -> Result<GrantSummary, StoreError> {
    use crate::oauth::{display::strip_unsafe_for_display, provenance::client_host};
    let client_id: String = col(row, "client_id", op)?;
    let redirect_uris: Vec<String> = col::<Option<String>>(row, "redirect_uris", op)?
        .map(|text| from_json(&text, op, "redirect_uris"))
        .transpose()?
        .unwrap_or_default();
    let client_name: Option<String> = col(row, "client_name", op)?;
    Ok(GrantSummary {
        grant_id: col(row, "grant_id", op)?,
        client_host: client_host(&client_id, &redirect_uris),
        client_name: client_name.map(|n| strip_unsafe_for_display(&n).into_owned()),
        client_id,
        scopes: split_scopes(&col::<String>(row, "scopes", op)?),
        created_at: col(row, "created_at", op)?,
        last_used_at: col(row, "last_used_at", op)?,
        expires_at: col(row, "expires_at", op)?,
    })
}
