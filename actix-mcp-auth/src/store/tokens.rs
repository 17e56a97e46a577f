//! Access and refresh tokens we issued (`mcp_auth_tokens`), stored as SHA-256 digests.
//!
//! * Issuing (with a code's redemption, [`Store::consume_code`]) inserts the pair in one
//!   transaction, and only while the grant is live; each token's expiry is capped at the grant's.
//! * Rotation ([`Store::rotate_refresh_token`]) is a compare-and-swap: `UPDATE … SET rotated_at
//!   = now WHERE rotated_at IS NULL …` on the old refresh token, then the insert of the new pair
//!   (`parent_hash` = the old token), in one transaction that first locks the grant's row, as a
//!   revocation does. Of any number of concurrent rotations
//!   (on any replicas) exactly one changes the row, so exactly one pair is minted.
//! * Grace: the same statement seals the new pair onto the old token's row (AES-256-GCM with the
//!   store's keyring; the old token's digest is the associated data) with `reuse_until = now +
//!   grace`. A rotation that loses the compare-and-swap, or a later retry, gets that same pair
//!   back ([`Rotation::Reissued`]) while `now < reuse_until` and the successor is unused. The
//!   sealed copy is cleared when the successor rotates, when the grant is revoked, and by the
//!   sweeper once the grace is over; outside it only digests remain.
//! * Replay: a rotated token used after its grace (or after its successor was used), or a
//!   refresh token revoked while its grant lives, is reported as [`Rotation::Replayed`] so the
//!   caller revokes the grant (RFC 9700 §4.14.2). A token of another client is
//!   [`Rotation::NotFound`] and revokes nothing.
//! * Issuing and rotating record the grant's `last_used_at`; a rotation appends a
//!   `grant_refreshed` audit entry in its transaction.
//! * The bearer check ([`Store::lookup_access_token`]) joins the grant, so a revoked or expired
//!   grant disables its tokens without touching them.

use std::{collections::HashSet, fmt, time::Duration};

use sqlx::{
    Any,
    any::{AnyArguments, AnyRow},
    query::Query,
};

use super::{
    Grant, OpConn, Secret, Statement, Store, StoreError, TokenHash,
    audit::{AuditActor, AuditEntry, AuditKind, grant_entry_insert},
    col,
    crypto::{Sealed, aad},
    grants::{grant_columns, grant_columns_g},
    join_scopes, split_scopes,
};

const TABLE: &str = "mcp_auth_tokens";

/// `SET` list that drops a sealed successor pair and ends its grace, for `concat!`.
macro_rules! clear_successor {
    () => {
        "reuse_until = NULL, successor_key_id = NULL, successor_access_token = NULL, \
         successor_refresh_token = NULL"
    };
}
pub(super) use clear_successor;

/// Access or refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An access token (`mcp_at_…`).
    Access,
    /// A refresh token (`mcp_rt_…`).
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "access" => Some(Self::Access),
            "refresh" => Some(Self::Refresh),
            _ => None,
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// SHA-256 of the token.
    pub token_hash: TokenHash,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The grant it belongs to.
    pub grant_id: String,
    /// The MCP client it was issued to.
    pub client_id: String,
    /// Its scopes (a subset of the grant's).
    pub scopes: Vec<String>,
    /// The refresh token whose rotation produced it, if any.
    pub parent_hash: Option<TokenHash>,
    /// Issue time (unix seconds).
    pub created_at: i64,
    /// Expiry (unix seconds), never after the grant's.
    pub expires_at: i64,
    /// Refresh tokens: when it was exchanged for a new pair.
    pub rotated_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// Digests and lifetimes of a token pair about to be handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTokens {
    /// SHA-256 of the new access token.
    pub access_hash: TokenHash,
    /// Its requested expiry (capped at the grant's).
    pub access_expires_at: i64,
    /// SHA-256 of the new refresh token; required for rotation.
    pub refresh_hash: Option<TokenHash>,
    /// Its requested expiry (capped at the grant's); ignored without `refresh_hash`.
    pub refresh_expires_at: i64,
}

/// The pair a refresh-token rotation hands out, in clear. The store keeps only digests, plus a
/// sealed copy during the grace so a retry gets the same pair (see [`Store::rotate_refresh_token`]).
#[derive(Clone, Debug)]
#[cfg_attr(test, derive(PartialEq, Eq))] // holds a `Secret`: compared in tests only
pub struct SuccessorTokens {
    /// The new access token.
    pub access_token: Secret,
    /// Its requested expiry (capped at the grant's).
    pub access_expires_at: i64,
    /// The new refresh token.
    pub refresh_token: Secret,
    /// Its requested expiry (capped at the grant's).
    pub refresh_expires_at: i64,
}

impl SuccessorTokens {
    /// The digests and lifetimes that are stored.
    pub(crate) fn digests(&self) -> NewTokens {
        NewTokens {
            access_hash: TokenHash::of(self.access_token.expose()),
            access_expires_at: self.access_expires_at,
            refresh_hash: Some(TokenHash::of(self.refresh_token.expose())),
            refresh_expires_at: self.refresh_expires_at,
        }
    }
}

/// What was issued: the values a token response needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The grant.
    pub grant_id: String,
    /// The MCP client.
    pub client_id: String,
    /// Scopes of the new tokens.
    pub scopes: Vec<String>,
    /// Expiry of the access token after capping (unix seconds).
    pub access_expires_at: i64,
    /// Expiry of the refresh token after capping, if one was issued.
    pub refresh_expires_at: Option<i64>,
}

/// The outcome of [`Store::rotate_refresh_token`].
#[derive(Clone, Debug)]
#[cfg_attr(test, derive(PartialEq, Eq))] // holds a `Secret`: compared in tests only
pub enum Rotation {
    /// The old token is spent; the new pair is stored: answer with it.
    Rotated(IssuedTokens),
    /// The old token was rotated within the grace (by a concurrent request, on any replica, or
    /// an earlier one whose answer was lost) and its successor is unused: answer with the pair
    /// that rotation issued, given here. Nothing new was stored.
    Reissued {
        /// What the pair carries.
        issued: IssuedTokens,
        /// The successor access token.
        access_token: Secret,
        /// The successor refresh token.
        refresh_token: Secret,
    },
    /// A replay: the token was rotated and its grace is over or its successor was used, or it
    /// was revoked while its grant lives. Revoke the grant.
    Replayed {
        /// The grant of the replayed token.
        grant_id: String,
    },
    /// The requested scopes exceed the token's; nothing changed (the old token stays valid).
    InvalidScope,
    /// The grant's stored upstream session cannot be read (its key was removed, or the row is
    /// damaged); nothing changed. End the grant: the client must log in again.
    Unusable {
        /// The unreadable grant.
        grant_id: String,
    },
    /// Unknown, expired or revoked token, a token of another client, or a dead grant.
    NotFound,
}

/// A live access token and its live grant: what the bearer check needs.
#[derive(Clone, Debug)]
#[cfg_attr(test, derive(PartialEq))] // holds a `Secret`: compared in tests only
pub struct AccessGrant {
    /// The token row.
    pub token: IssuedToken,
    /// Its grant, with the upstream tokens opened.
    pub grant: Grant,
    /// When a token of the grant was last used, as stored (see `Store::note_grant_use`).
    pub grant_last_used_at: Option<i64>,
}

/// The token columns, as a literal for `concat!`.
macro_rules! token_columns {
    () => {
        "token_hash, kind, grant_id, client_id, scopes, parent_hash, created_at, expires_at, \
         rotated_at, revoked_at"
    };
}

/// Column names as read back, either plain or with the `t_` alias used in joins.
struct TokenNames([&'static str; 10]);

const PLAIN: TokenNames = TokenNames([
    "token_hash",
    "kind",
    "grant_id",
    "client_id",
    "scopes",
    "parent_hash",
    "created_at",
    "expires_at",
    "rotated_at",
    "revoked_at",
]);

const ALIASED: TokenNames = TokenNames([
    "t_token_hash",
    "t_kind",
    "t_grant_id",
    "t_client_id",
    "t_scopes",
    "t_parent_hash",
    "t_created_at",
    "t_expires_at",
    "t_rotated_at",
    "t_revoked_at",
]);

fn digest(value: String, op: &'static str) -> Result<TokenHash, StoreError> {
    TokenHash::from_hex(&value).ok_or_else(|| StoreError::corrupt(op, "token digest is malformed"))
}

impl IssuedToken {
    fn from_row(row: &AnyRow, names: &TokenNames, op: &'static str) -> Result<Self, StoreError> {
        let [
            hash,
            kind,
            grant,
            client,
            scopes,
            parent,
            created,
            expires,
            rotated,
            revoked,
        ] = names.0;
        let kind: String = col(row, kind, op)?;
        let parent: Option<String> = col(row, parent, op)?;
        Ok(Self {
            token_hash: digest(col(row, hash, op)?, op)?,
            kind: TokenKind::parse(&kind)
                .ok_or_else(|| StoreError::corrupt(op, "unknown token kind"))?,
            grant_id: col(row, grant, op)?,
            client_id: col(row, client, op)?,
            scopes: split_scopes(&col::<String>(row, scopes, op)?),
            parent_hash: parent.map(|p| digest(p, op)).transpose()?,
            created_at: col(row, created, op)?,
            expires_at: col(row, expires, op)?,
            rotated_at: col(row, rotated, op)?,
            revoked_at: col(row, revoked, op)?,
        })
    }
}

/// `INSERT` of an access token alone under a grant.
const INSERT_ACCESS: &str = "INSERT INTO mcp_auth_tokens (token_hash, kind, grant_id, client_id, \
     scopes, parent_hash, created_at, expires_at) VALUES ($1, 'access', $2, $3, $4, $5, $6, $7)";
/// `INSERT` of an access and a refresh token under a grant, in one statement.
const INSERT_PAIR: &str = "INSERT INTO mcp_auth_tokens (token_hash, kind, grant_id, client_id, \
     scopes, parent_hash, created_at, expires_at) \
     VALUES ($1, 'access', $2, $3, $4, $5, $6, $7), ($8, 'refresh', $2, $3, $4, $5, $6, $9)";

/// Which live grant [`lock_live_grant`] takes.
pub(super) enum GrantOf<'a> {
    /// The grant with this id.
    Id(&'a str),
    /// The grant of refresh token `hash` presented by client `client_id` (a rotation, which
    /// knows the token, not yet its grant).
    RefreshToken {
        hash: &'a TokenHash,
        client_id: &'a str,
    },
}

/// Records a use of the live grant `which` names (`last_used_at`, what a "connected apps" list
/// shows) and returns its row (its columns as [`Store::grant_from_row`] reads them), or `None`
/// (nothing written) when the grant is revoked, expired or unknown.
///
/// One `UPDATE`, whose `WHERE` is the liveness check. On PostgreSQL it also locks the grant's
/// row, so a concurrent revocation waits for this transaction and then cuts off its new tokens
/// too. Every transaction that writes both a grant and its tokens takes the grant first (a
/// revocation: grant, then tokens; a rotation: this, then the old token's compare-and-swap):
/// one lock order, so they queue instead of deadlocking.
pub(super) async fn lock_live_grant(
    conn: &mut OpConn,
    which: GrantOf<'_>,
    now: i64,
) -> Result<Option<AnyRow>, sqlx::Error> {
    match which {
        GrantOf::Id(grant_id) => {
            sqlx::query(concat!(
                "UPDATE mcp_auth_grants SET last_used_at = $2 \
                 WHERE grant_id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING ",
                grant_columns!()
            ))
            .bind(grant_id)
            .bind(now)
            .fetch_optional_in(conn)
            .await
        }
        GrantOf::RefreshToken { hash, client_id } => {
            sqlx::query(concat!(
                "UPDATE mcp_auth_grants SET last_used_at = $3 \
                 WHERE grant_id = (SELECT grant_id FROM mcp_auth_tokens \
                 WHERE token_hash = $1 AND kind = 'refresh' AND client_id = $2) \
                 AND revoked_at IS NULL AND expires_at > $3 RETURNING ",
                grant_columns!()
            ))
            .bind(hash.as_str())
            .bind(client_id)
            .bind(now)
            .fetch_optional_in(conn)
            .await
        }
    }
}

/// Inserts the pair in `tokens` under `grant_id` inside the caller's transaction, if the grant
/// is live, and records the grant's use: [`lock_live_grant`], then [`insert_under`]. Returns
/// what was issued and the grant's row, or `None` (nothing written) when the grant is revoked,
/// expired or unknown.
#[cfg(any(test, feature = "__bench"))]
pub(super) async fn insert_pair(
    conn: &mut OpConn,
    grant_id: &str,
    scopes: &[String],
    tokens: &NewTokens,
    now: i64,
) -> Result<Option<(IssuedTokens, AnyRow)>, sqlx::Error> {
    let Some(grant) = lock_live_grant(conn, GrantOf::Id(grant_id), now).await? else {
        return Ok(None);
    };
    let issued = insert_under(conn, &grant, scopes, tokens, None, now).await?;
    Ok(Some((issued, grant)))
}

/// Inserts the pair in `tokens` under the grant whose row [`lock_live_grant`] returned, both
/// token rows in one `INSERT`, their expiries capped at the grant's as read under its lock.
pub(super) async fn insert_under(
    conn: &mut OpConn,
    grant: &AnyRow,
    scopes: &[String],
    tokens: &NewTokens,
    parent: Option<&TokenHash>,
    now: i64,
) -> Result<IssuedTokens, sqlx::Error> {
    let (issued, insert) = token_insert(grant, scopes, tokens, parent, now)?;
    insert.execute_in(conn).await?;
    Ok(issued)
}

/// The `INSERT` of [`insert_under`] and what it issues, for a caller that runs it as its
/// transaction's last statement (`OpConn::execute_and_commit`).
pub(super) fn token_insert(
    grant: &AnyRow,
    scopes: &[String],
    tokens: &NewTokens,
    parent: Option<&TokenHash>,
    now: i64,
) -> Result<(IssuedTokens, Query<'static, Any, AnyArguments>), sqlx::Error> {
    use sqlx::Row as _;
    let grant_id: String = grant.try_get("grant_id")?;
    let grant_expires_at: i64 = grant.try_get("expires_at")?;
    let client_id: String = grant.try_get("client_id")?;
    let cap = |at: i64| at.min(grant_expires_at);
    let access_expires_at = cap(tokens.access_expires_at);
    let refresh_expires_at = tokens
        .refresh_hash
        .as_ref()
        .map(|_| cap(tokens.refresh_expires_at));
    let insert = sqlx::query(match refresh_expires_at {
        Some(_) => INSERT_PAIR,
        None => INSERT_ACCESS,
    })
    .bind(tokens.access_hash.as_str().to_owned())
    .bind(grant_id.clone())
    .bind(client_id.clone())
    .bind(join_scopes(scopes))
    .bind(parent.map(|p| p.as_str().to_owned()))
    .bind(now)
    .bind(access_expires_at);
    let insert = match (&tokens.refresh_hash, refresh_expires_at) {
        (Some(hash), Some(expires_at)) => insert.bind(hash.as_str().to_owned()).bind(expires_at),
        _ => insert,
    };
    let issued = IssuedTokens {
        grant_id,
        client_id,
        scopes: scopes.to_vec(),
        access_expires_at,
        refresh_expires_at,
    };
    Ok((issued, insert))
}

fn is_subset(requested: &[String], granted: &[String]) -> bool {
    let granted: HashSet<&str> = granted.iter().map(String::as_str).collect();
    requested.iter().all(|s| granted.contains(s.as_str()))
}

impl Store {
    /// Stores a new access token (and refresh token, if given) under a live grant, in one
    /// transaction, with `scopes`. `None` (and nothing stored) when the grant is unknown,
    /// expired or revoked. (The token endpoint issues with [`Store::consume_code`] and
    /// [`Store::rotate_refresh_token`]; this is for tests and benches.)
    #[cfg(any(test, feature = "__bench"))]
    pub(crate) async fn issue_tokens(
        &self,
        grant_id: &str,
        scopes: &[String],
        tokens: &NewTokens,
    ) -> Result<Option<IssuedTokens>, StoreError> {
        const OP: &str = "issue_tokens";
        let _turn = self.write_turn().await;
        let err = |e| StoreError::from_sqlx(OP, e);
        let mut tx = self.begin(OP).await?;
        let issued = insert_pair(&mut tx, grant_id, scopes, tokens, self.now())
            .await
            .map_err(err)?;
        if issued.is_some() {
            tx.commit().await.map_err(err)?;
        }
        Ok(issued.map(|(issued, _)| issued))
    }

    /// Exchanges refresh token `old` (presented by `client_id`) for the pair in `new`, keeping the
    /// old scopes or narrowing them to `requested_scopes`. See [`Rotation`] for the outcomes.
    ///
    /// The winning rotation keeps `new` sealed on `old`'s row for `grace`: until then, a retry
    /// with `old` (a lost answer, concurrent refreshes on any replica) gets that same pair back
    /// ([`Rotation::Reissued`]) and nothing new is minted. After the grace, once the successor has
    /// been used itself, or for a refresh token revoked while its grant lives, the use of `old`
    /// is a replay ([`Rotation::Replayed`]).
    pub(crate) async fn rotate_refresh_token(
        &self,
        old: &TokenHash,
        client_id: &str,
        requested_scopes: Option<&[String]>,
        new: &SuccessorTokens,
        grace: Duration,
    ) -> Result<Rotation, StoreError> {
        const OP: &str = "rotate_refresh_token";
        let _turn = self.write_turn().await;
        let err = |e| StoreError::from_sqlx(OP, e);
        let now = self.now();
        // No grace, nothing sealed: a retry is a replay at once.
        let reuse_until = (!grace.is_zero())
            .then(|| now.saturating_add(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX)));
        let sealed = reuse_until.map(|_| self.seal_successor(old, new));
        let (key_id, sealed_access, sealed_refresh) = match sealed {
            Some((key_id, access, refresh)) => (Some(key_id), Some(access), Some(refresh)),
            None => (None, None, None),
        };
        let mut tx = self.begin(OP).await?;
        // The grant first, the token second: the lock order of a revocation (see
        // `lock_live_grant`). A write, so on SQLite the transaction's first statement takes
        // the write lock (see the module docs of `store`). No live grant: nothing to rotate.
        let grant = lock_live_grant(
            &mut tx,
            GrantOf::RefreshToken {
                hash: old,
                client_id,
            },
            now,
        )
        .await
        .map_err(err)?;
        let Some(grant) = grant else {
            drop(tx);
            return self.classify_failed_rotation(old, client_id, now, OP).await;
        };
        // The compare-and-swap.
        let spent = sqlx::query(
            "UPDATE mcp_auth_tokens SET rotated_at = $3, reuse_until = $4, \
             successor_key_id = $5, successor_access_token = $6, successor_refresh_token = $7 \
             WHERE token_hash = $1 AND kind = 'refresh' AND client_id = $2 \
             AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $3 \
             RETURNING grant_id, scopes, parent_hash",
        )
        .bind(old.as_str())
        .bind(client_id)
        .bind(now)
        .bind(reuse_until)
        .bind(key_id)
        .bind(sealed_access)
        .bind(sealed_refresh)
        .fetch_optional_in(&mut tx)
        .await
        .map_err(err)?;
        let Some(spent) = spent else {
            drop(tx);
            return self.classify_failed_rotation(old, client_id, now, OP).await;
        };
        let grant_id: String = col(&spent, "grant_id", OP)?;
        let granted = split_scopes(&col::<String>(&spent, "scopes", OP)?);
        let scopes = match requested_scopes {
            Some(requested) if !is_subset(requested, &granted) => {
                return Ok(Rotation::InvalidScope);
            }
            Some(requested) => requested.to_vec(),
            None => granted,
        };
        let issued = insert_under(&mut tx, &grant, &scopes, &new.digests(), Some(old), now)
            .await
            .map_err(err)?;
        // The grant's upstream session must still be readable (its encryption key may have
        // been removed): otherwise the new tokens would be useless, and the client should log
        // in again now rather than loop through refreshes. Checked on the row the update
        // returned, so the answer needs no second read of the grant.
        if let Err(error) = self.grant_from_row(&grant, OP) {
            tracing::warn!(%error, "grant cannot be read; nothing rotated");
            return Ok(Rotation::Unusable { grant_id });
        }
        // `old` has now been used: its parent's grace ends here (a later use of the parent is a
        // replay), and the parent's sealed copy of `old` goes.
        if let Some(parent) = col::<Option<String>>(&spent, "parent_hash", OP)? {
            sqlx::query(concat!(
                "UPDATE mcp_auth_tokens SET ",
                clear_successor!(),
                " WHERE token_hash = $1 AND reuse_until IS NOT NULL"
            ))
            .bind(parent)
            .execute_in(&mut tx)
            .await
            .map_err(err)?;
        }
        let refreshed = AuditEntry::new(AuditKind::GrantRefreshed, AuditActor::Client)
            .detail(serde_json::json!({ "scopes": issued.scopes }));
        tx.execute_and_commit(grant_entry_insert(
            &refreshed,
            &grant_id,
            now,
            self.audit_retention_secs(),
        ))
        .await
        .map_err(err)?;
        Ok(Rotation::Rotated(issued))
    }

    /// Seals a successor pair on its parent's row: (key id, access token, refresh token).
    fn seal_successor(&self, old: &TokenHash, new: &SuccessorTokens) -> (String, String, String) {
        let seal = |column: &str, secret: &Secret| {
            self.keys
                .seal_secret(&aad(TABLE, column, old.as_str()), secret)
                .ciphertext
        };
        (
            self.keys.sealing_key_id().to_owned(),
            seal("successor_access_token", &new.access_token),
            seal("successor_refresh_token", &new.refresh_token),
        )
    }

    /// Why a rotation's compare-and-swap matched nothing: a retry within the grace, a replay, or
    /// a dead or foreign token.
    async fn classify_failed_rotation(
        &self,
        old: &TokenHash,
        client_id: &str,
        now: i64,
        op: &'static str,
    ) -> Result<Rotation, StoreError> {
        let err = |e| StoreError::from_sqlx(op, e);
        let row = sqlx::query(
            "SELECT t.grant_id, t.client_id, t.rotated_at, t.revoked_at, t.reuse_until, \
             t.successor_key_id, t.successor_access_token, t.successor_refresh_token \
             FROM mcp_auth_tokens t JOIN mcp_auth_grants g ON g.grant_id = t.grant_id \
             WHERE t.token_hash = $1 AND t.kind = 'refresh' AND t.expires_at > $2 \
             AND g.revoked_at IS NULL AND g.expires_at > $2",
        )
        .bind(old.as_str())
        .bind(now)
        .fetch_optional_in(&mut self.conn(op).await?)
        .await
        .map_err(err)?;
        // A stranger's attempt neither learns anything nor revokes anything.
        let Some(row) =
            row.filter(|r| col::<String>(r, "client_id", op).ok().as_deref() == Some(client_id))
        else {
            return Ok(Rotation::NotFound);
        };
        let grant_id: String = col(&row, "grant_id", op)?;
        // Only a rotation revokes a refresh token of a live grant (`/revoke` ends the grant).
        if col::<Option<i64>>(&row, "revoked_at", op)?.is_some() {
            return Ok(Rotation::Replayed { grant_id });
        }
        if col::<Option<i64>>(&row, "rotated_at", op)?.is_none() {
            return Ok(Rotation::NotFound);
        }
        let within_grace = col::<Option<i64>>(&row, "reuse_until", op)?.is_some_and(|t| t > now);
        let sealed = (
            col::<Option<String>>(&row, "successor_key_id", op)?,
            col::<Option<String>>(&row, "successor_access_token", op)?,
            col::<Option<String>>(&row, "successor_refresh_token", op)?,
        );
        let (true, (Some(key_id), Some(access), Some(refresh))) = (within_grace, sealed) else {
            return Ok(Rotation::Replayed { grant_id });
        };
        let open = |column: &str, ciphertext: String| {
            let sealed = Sealed {
                key_id: key_id.clone(),
                ciphertext,
            };
            self.keys
                .open_secret(&sealed, &aad(TABLE, column, old.as_str()))
                .map_err(|e| StoreError::sealed(op, e))
        };
        let access_token = open("successor_access_token", access)?;
        let refresh_token = open("successor_refresh_token", refresh)?;
        self.reissue(old, grant_id, access_token, refresh_token, now, op)
            .await
    }

    /// The successor pair of `old`, handed out again if both tokens are still live and unused.
    async fn reissue(
        &self,
        old: &TokenHash,
        grant_id: String,
        access_token: Secret,
        refresh_token: Secret,
        now: i64,
        op: &'static str,
    ) -> Result<Rotation, StoreError> {
        let access_hash = TokenHash::of(access_token.expose());
        let refresh_hash = TokenHash::of(refresh_token.expose());
        let rows = sqlx::query(
            "SELECT token_hash, client_id, scopes, expires_at, rotated_at FROM mcp_auth_tokens \
             WHERE token_hash IN ($1, $2) AND parent_hash = $3 AND grant_id = $4 \
             AND revoked_at IS NULL AND expires_at > $5",
        )
        .bind(access_hash.as_str())
        .bind(refresh_hash.as_str())
        .bind(old.as_str())
        .bind(&grant_id)
        .bind(now)
        .fetch_all_in(&mut self.conn(op).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(op, e))?;
        let find = |hash: &TokenHash| {
            rows.iter()
                .find(|r| col::<String>(r, "token_hash", op).ok().as_deref() == Some(hash.as_str()))
        };
        let (Some(access), Some(refresh)) = (find(&access_hash), find(&refresh_hash)) else {
            // The client revoked the successor's access token itself: nothing to hand out.
            return Ok(Rotation::NotFound);
        };
        if col::<Option<i64>>(refresh, "rotated_at", op)?.is_some() {
            // The successor was used meanwhile: `old` is a replay after all.
            return Ok(Rotation::Replayed { grant_id });
        }
        let issued = IssuedTokens {
            client_id: col(refresh, "client_id", op)?,
            scopes: split_scopes(&col::<String>(refresh, "scopes", op)?),
            access_expires_at: col(access, "expires_at", op)?,
            refresh_expires_at: Some(col(refresh, "expires_at", op)?),
            grant_id,
        };
        Ok(Rotation::Reissued {
            issued,
            access_token,
            refresh_token,
        })
    }

    /// The bearer check: the access token with this digest and its grant, if both are live
    /// (unexpired, unrevoked).
    pub(crate) async fn lookup_access_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<AccessGrant>, StoreError> {
        const OP: &str = "lookup_access_token";
        let row = sqlx::query(concat!(
            "SELECT ",
            grant_columns_g!(),
            ", t.token_hash AS t_token_hash, t.kind AS t_kind, t.grant_id AS t_grant_id, \
             t.client_id AS t_client_id, t.scopes AS t_scopes, t.parent_hash AS t_parent_hash, \
             t.created_at AS t_created_at, t.expires_at AS t_expires_at, \
             t.rotated_at AS t_rotated_at, t.revoked_at AS t_revoked_at, \
             g.last_used_at AS g_last_used_at \
             FROM mcp_auth_tokens t JOIN mcp_auth_grants g ON g.grant_id = t.grant_id \
             WHERE t.token_hash = $1 AND t.kind = 'access' AND t.revoked_at IS NULL \
             AND t.expires_at > $2 AND g.revoked_at IS NULL AND g.expires_at > $2"
        ))
        .bind(token_hash.as_str())
        .bind(self.now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(AccessGrant {
            token: IssuedToken::from_row(&row, &ALIASED, OP)?,
            grant: self.grant_from_row(&row, OP)?,
            grant_last_used_at: col(&row, "g_last_used_at", OP)?,
        }))
    }

    /// The unexpired token with this digest, of either kind, revoked or not (for `/revoke`,
    /// which must check the client before acting).
    pub(crate) async fn find_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<IssuedToken>, StoreError> {
        const OP: &str = "find_token";
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM mcp_auth_tokens WHERE token_hash = $1 AND expires_at > $2"
        ))
        .bind(token_hash.as_str())
        .bind(self.now())
        .fetch_optional_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        row.map(|r| IssuedToken::from_row(&r, &PLAIN, OP))
            .transpose()
    }

    /// Revokes one token. Returns `false` when it was unknown or already revoked. (To revoke a
    /// refresh token together with everything derived from it, revoke its grant.)
    pub(crate) async fn revoke_token(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        const OP: &str = "revoke_token";
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "UPDATE mcp_auth_tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash.as_str())
        .bind(self.now())
        .execute_in(&mut self.conn(OP).await?)
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_column_list() {
        let listed: Vec<&str> = token_columns!().split(", ").map(str::trim).collect();
        assert_eq!(listed, PLAIN.0);
        let aliased: Vec<String> = PLAIN.0.iter().map(|c| format!("t_{c}")).collect();
        assert_eq!(aliased, ALIASED.0);
    }

    #[test]
    fn subset() {
        let granted = vec!["a".to_owned(), "b".to_owned()];
        assert!(is_subset(&["a".to_owned()], &granted));
        assert!(is_subset(&[], &granted));
        assert!(!is_subset(&["c".to_owned()], &granted));
    }
}
