//! The audit log (`mcp_auth_audit`): an append-only record of what happened to grants and
//! logins, kept for the store's audit retention (see
//! [`StoreOptions::audit_retention`](super::StoreOptions::audit_retention)) and then swept.
//!
//! Entries carry identifiers (user subject, client id, grant id) and a small JSON detail, never a
//! token, code, secret or a digest of one. Writers that change state in a transaction append
//! their entry in the same transaction (`insert_entry`), so the log never claims something that
//! was rolled back; others use [`Store::append_audit`].

use sqlx::{
    Any,
    any::{AnyArguments, AnyRow},
    query::Query,
};

use super::{OpConn, Statement, Store, StoreError, col, from_json, to_json};

/// What an audit entry records (serialized as its stored name, e.g. `grant_created`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditKind {
    /// A user authorized a client: a grant and its first code were created.
    GrantCreated,
    /// A refresh token of the grant was exchanged for a new pair.
    GrantRefreshed,
    /// The grant was revoked (by its client, its user, an operator, or a replay).
    GrantRevoked,
    /// A login was refused by the login policy; no grant was created.
    LoginDenied,
    /// A used authorization code or rotated refresh token was presented again.
    ReplayDetected,
}

impl AuditKind {
    /// The stored name, e.g. `grant_created`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GrantCreated => "grant_created",
            Self::GrantRefreshed => "grant_refreshed",
            Self::GrantRevoked => "grant_revoked",
            Self::LoginDenied => "login_denied",
            Self::ReplayDetected => "replay_detected",
        }
    }

    fn parse(stored: &str) -> Option<Self> {
        [
            Self::GrantCreated,
            Self::GrantRefreshed,
            Self::GrantRevoked,
            Self::LoginDenied,
            Self::ReplayDetected,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == stored)
    }
}

/// Who caused an audited event (serialized as its stored name, e.g. `admin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditActor {
    /// The user, through the login or the connected-apps page.
    User,
    /// The MCP client, through `/token` or `/revoke`.
    Client,
    /// An operator, through the admin API or the store API.
    Admin,
    /// The library itself (e.g. revoking a grant after a replay).
    System,
}

impl AuditActor {
    /// The stored name, e.g. `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Client => "client",
            Self::Admin => "admin",
            Self::System => "system",
        }
    }

    fn parse(stored: &str) -> Option<Self> {
        [Self::User, Self::Client, Self::Admin, Self::System]
            .into_iter()
            .find(|actor| actor.as_str() == stored)
    }
}

/// One audit entry, as written or read back (serialized with the field names below, as the
/// admin API shows it).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    /// Random id of the entry (set by the store when appending).
    pub event_id: String,
    /// When it happened (unix seconds, by the store's clock).
    pub occurred_at: i64,
    /// What happened.
    pub kind: AuditKind,
    /// Who caused it.
    pub actor: AuditActor,
    /// The user concerned, when known.
    pub subject: Option<String>,
    /// The MCP client concerned, when known.
    pub client_id: Option<String>,
    /// The grant concerned, when there is one.
    pub grant_id: Option<String>,
    /// Further facts (a JSON object, e.g. the reason of a denial); never a secret.
    pub detail: Option<serde_json::Value>,
}

impl AuditEntry {
    /// A new entry of `kind` caused by `actor`; the store fills in the id and the time.
    pub fn new(kind: AuditKind, actor: AuditActor) -> Self {
        Self {
            event_id: String::new(),
            occurred_at: 0,
            kind,
            actor,
            subject: None,
            client_id: None,
            grant_id: None,
            detail: None,
        }
    }

    /// Names the user.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Names the client.
    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Names the grant.
    pub fn grant(mut self, grant_id: impl Into<String>) -> Self {
        self.grant_id = Some(grant_id.into());
        self
    }

    /// Adds facts (a JSON object). Never put a token, code or secret here.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    fn from_row(row: &AnyRow, op: &'static str) -> Result<Self, StoreError> {
        let kind: String = col(row, "kind", op)?;
        let actor: String = col(row, "actor", op)?;
        let detail: Option<String> = col(row, "detail", op)?;
        Ok(Self {
            event_id: col(row, "event_id", op)?,
            occurred_at: col(row, "occurred_at", op)?,
            kind: AuditKind::parse(&kind)
                .ok_or_else(|| StoreError::corrupt(op, "unknown audit kind"))?,
            actor: AuditActor::parse(&actor)
                .ok_or_else(|| StoreError::corrupt(op, "unknown audit actor"))?,
            subject: col(row, "subject", op)?,
            client_id: col(row, "client_id", op)?,
            grant_id: col(row, "grant_id", op)?,
            detail: detail.map(|d| from_json(&d, op, "detail")).transpose()?,
        })
    }
}

/// Which audit entries [`Store::audit_entries`] returns, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct AuditQuery {
    subject: Option<String>,
    client_id: Option<String>,
    grant_id: Option<String>,
    limit: Option<u32>,
}

impl AuditQuery {
    /// Every entry (up to the limit).
    pub fn all() -> Self {
        Self::default()
    }

    /// Only entries about this user.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Only entries about this client.
    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Only entries about this grant.
    pub fn grant(mut self, grant_id: impl Into<String>) -> Self {
        self.grant_id = Some(grant_id.into());
        self
    }

    /// At most `limit` entries (default and maximum 1,000).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// Most entries one [`Store::audit_entries`] call returns.
const MAX_ENTRIES: u32 = 1_000;

/// The statement that appends `entry`, filling in its id and time: run it inside the caller's
/// transaction (`execute_in`, or `OpConn::execute_and_commit` as its last statement).
pub(crate) fn entry_insert(
    entry: &AuditEntry,
    now: i64,
    retention_secs: i64,
) -> Query<'static, Any, AnyArguments> {
    sqlx::query(
        "INSERT INTO mcp_auth_audit (event_id, occurred_at, kind, subject, client_id, grant_id, \
         actor, detail, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(crate::oauth::tokens::random_value())
    .bind(now)
    .bind(entry.kind.as_str())
    .bind(entry.subject.clone())
    .bind(entry.client_id.clone())
    .bind(entry.grant_id.clone())
    .bind(entry.actor.as_str())
    .bind(entry.detail.as_ref().map(to_json))
    .bind(now.saturating_add(retention_secs))
}

/// Appends `entry` on `conn` (inside the caller's transaction), filling in its id and time.
pub(crate) async fn insert_entry(
    conn: &mut OpConn,
    entry: &AuditEntry,
    now: i64,
    retention_secs: i64,
) -> Result<(), sqlx::Error> {
    entry_insert(entry, now, retention_secs)
        .execute_in(conn)
        .await?;
    Ok(())
}

/// The statement that appends an entry of `kind` by `actor` about grant `grant_id`, naming the
/// grant's user and client as stored (nothing when the grant is unknown); see [`entry_insert`].
pub(crate) fn grant_entry_insert(
    entry: &AuditEntry,
    grant_id: &str,
    now: i64,
    retention_secs: i64,
) -> Query<'static, Any, AnyArguments> {
    sqlx::query(
        "INSERT INTO mcp_auth_audit (event_id, occurred_at, kind, subject, client_id, grant_id, \
         actor, detail, expires_at) \
         SELECT $1, $2, $3, subject, client_id, grant_id, $4, $5, $6 \
         FROM mcp_auth_grants WHERE grant_id = $7",
    )
    .bind(crate::oauth::tokens::random_value())
    .bind(now)
    .bind(entry.kind.as_str())
    .bind(entry.actor.as_str())
    .bind(entry.detail.as_ref().map(to_json))
    .bind(now.saturating_add(retention_secs))
    .bind(grant_id.to_owned())
}

/// Appends an entry of `kind` by `actor` about grant `grant_id` on `conn` (inside the caller's
/// transaction); see [`grant_entry_insert`].
pub(crate) async fn insert_grant_entry(
    conn: &mut OpConn,
    entry: &AuditEntry,
    grant_id: &str,
    now: i64,
    retention_secs: i64,
) -> Result<(), sqlx::Error> {
    grant_entry_insert(entry, grant_id, now, retention_secs)
        .execute_in(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Appends an entry to the audit log (its own statement; writers that change state append
    /// inside their transaction instead).
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        const OP: &str = "append_audit";
        let _turn = self.write_turn().await;
        insert_entry(
            &mut self.conn(OP).await?,
            entry,
            self.now(),
            self.audit_retention_secs(),
        )
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))
    }

    /// Audit entries matching `query`, newest first (entries of the same second in no
    /// particular order); expired entries are left out.
    pub async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        const OP: &str = "audit_entries";
        // Absent filters bind NULL and match everything: one statement text for all queries.
        let rows = sqlx::query(
            "SELECT event_id, occurred_at, kind, subject, client_id, grant_id, actor, detail \
             FROM mcp_auth_audit WHERE expires_at > $1 \
             AND ($2 IS NULL OR subject = $2) AND ($3 IS NULL OR client_id = $3) \
             AND ($4 IS NULL OR grant_id = $4) \
             ORDER BY occurred_at DESC, event_id LIMIT $5",
        )
        .bind(self.now())
        .bind(query.subject.as_deref())
        .bind(query.client_id.as_deref())
        .bind(query.grant_id.as_deref())
        .bind(i64::from(
            query.limit.unwrap_or(MAX_ENTRIES).min(MAX_ENTRIES),
        ))
        .fetch_all_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        rows.iter().map(|r| AuditEntry::from_row(r, OP)).collect()
    }
}
