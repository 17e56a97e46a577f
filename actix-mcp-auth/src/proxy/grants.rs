//! [`Grants`]: what a user and an operator can see and end of proxy mode's grants, over the
//! store *and* this process's token cache.
//!
//! Revoking through [`Grants`] commits the revocation (grants, their tokens and audit entries in
//! one transaction) and then drops the grants from this replica's token cache, so this replica
//! refuses their tokens at once. Other replicas refuse them once their cached check lapses: at
//! most the token-cache window, `MCP_AUTH_TOKEN_CACHE_SECONDS` capped by
//! `MCP_AUTH_USERINFO_CACHE_SECONDS` (30 s by default).

use crate::{
    proxy::bearer::ProxyVerifier,
    store::{
        GrantSelection, GrantSummary, Store, StoreError,
        audit::{AuditActor, AuditEntry, AuditQuery},
    },
};

/// The grants of proxy mode, for an operator (actions audited as `admin`) or, through
/// [`Grants::for_user`], for one signed-in user. Get it with
/// [`WorkOsProvider::grants`](crate::WorkOsProvider::grants); cheap to clone.
///
/// ```no_run
/// # async fn run(auth: actix_mcp_auth::WorkOsProvider) -> Result<(), actix_mcp_auth::store::StoreError> {
/// let grants = auth.grants();
/// for grant in grants.list_for_user("user_01H...").await? {
///     println!("{} ({:?}) last used {:?}", grant.client_id, grant.client_host, grant.last_used_at);
/// }
/// let ended = grants.revoke_client("mcp_client_id").await?; // ids of the grants revoked
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Grants {
    store: Store,
    bearer: ProxyVerifier,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants").finish_non_exhaustive()
    }
}

impl Grants {
    pub(crate) fn new(store: Store, bearer: ProxyVerifier) -> Self {
        Self { store, bearer }
    }

    /// The live grants of user `subject`, newest first.
    pub async fn list_for_user(&self, subject: &str) -> Result<Vec<GrantSummary>, StoreError> {
        self.store.user_grants(subject).await
    }

    /// Revokes one grant, whoever it belongs to. Returns `false` when it was unknown, expired or
    /// already revoked.
    pub async fn revoke(&self, grant_id: &str) -> Result<bool, StoreError> {
        let ended = self
            .end(
                GrantSelection::Grant(grant_id.to_owned()),
                AuditActor::Admin,
            )
            .await?;
        Ok(!ended.is_empty())
    }

    /// Revokes every live grant of user `subject`; returns their ids.
    pub async fn revoke_user(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        self.end(GrantSelection::User(subject.to_owned()), AuditActor::Admin)
            .await
    }

    /// Revokes every live grant of client `client_id`; returns their ids.
    pub async fn revoke_client(&self, client_id: &str) -> Result<Vec<String>, StoreError> {
        self.end(
            GrantSelection::Client(client_id.to_owned()),
            AuditActor::Admin,
        )
        .await
    }

    /// Audit entries matching `query`, newest first (see [`Store::audit_entries`]).
    pub async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.store.audit_entries(query).await
    }

    /// The grants of one user as that user may handle them (e.g. on a "connected apps" page
    /// for the signed-in user): only theirs, actions audited as `user`.
    pub fn for_user(&self, subject: impl Into<String>) -> UserGrants {
        UserGrants {
            grants: self.clone(),
            subject: subject.into(),
        }
    }

    /// Revokes the selection in the store, then forgets the grants in this process's cache.
    async fn end(
        &self,
        which: GrantSelection,
        actor: AuditActor,
    ) -> Result<Vec<String>, StoreError> {
        let ended = self.store.revoke_grants(&which, actor).await?;
        for grant_id in &ended {
            self.bearer.forget_grant(grant_id);
        }
        Ok(ended)
    }
}

/// One user's grants, from [`Grants::for_user`]: every action is limited to grants of that
/// user and audited with the actor `user`.
#[derive(Clone, Debug)]
pub struct UserGrants {
    grants: Grants,
    subject: String,
}

impl UserGrants {
    /// The user (AuthKit `sub`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The user's live grants, newest first.
    pub async fn list(&self) -> Result<Vec<GrantSummary>, StoreError> {
        self.grants.list_for_user(&self.subject).await
    }

    /// Revokes grant `grant_id` if it is one of the user's live grants; `false` otherwise
    /// (another user's grant is left alone).
    pub async fn revoke(&self, grant_id: &str) -> Result<bool, StoreError> {
        let which = GrantSelection::UserGrant {
            subject: self.subject.clone(),
            grant_id: grant_id.to_owned(),
        };
        let ended = self.grants.end(which, AuditActor::User).await?;
        Ok(!ended.is_empty())
    }

    /// Revokes all of the user's live grants; returns their ids.
    pub async fn revoke_all(&self) -> Result<Vec<String>, StoreError> {
        self.grants
            .end(GrantSelection::User(self.subject.clone()), AuditActor::User)
            .await
    }
}
