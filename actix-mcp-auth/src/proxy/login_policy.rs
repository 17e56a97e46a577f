//! Who may log in, at the callback: runs the allow-lists of [`crate::oauth::login_policy`] and
//! the application's login hook on the user AuthKit just signed in, before the grant is stored.
//!
//! A denied login leaves no grant, code or token behind: the grant built from AuthKit's answer
//! is dropped unsaved (with AuthKit's tokens in it), and the pending request was already
//! consumed. What remains is one `login_denied` audit row (user, client, reason code, email and
//! organization; never a token) and, for the client, an `access_denied` redirect whose
//! description says why. An approval this browser asked us to remember for the client is
//! forgotten, so the next attempt (perhaps with another account) shows the consent page again.
//!
//! The hook is the application's code: it runs within a time limit, and an error, a panic or
//! a time-out denies the login (fail closed) with a generic reason and a WARN log.

use std::{fmt, future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use actix_web::HttpRequest;
use futures_util::{FutureExt as _, future::LocalBoxFuture};
use serde_json::{Map, Value, json};

use super::{ProxyState, cookies};
use crate::{
    error::OAuthError,
    oauth::{
        error::{ErrorCode, Rejection},
        login_policy::{Denial, LoginPolicy, UpstreamIdentity, unverified_claims},
    },
    store::{
        Grant, PendingAuthorization,
        audit::{AuditActor, AuditEntry, AuditKind},
    },
};

/// Default of [`WorkOsProviderBuilder::login_hook_timeout`](crate::WorkOsProviderBuilder::login_hook_timeout).
pub(crate) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

type HookFn = dyn Fn(UpstreamIdentity) -> LocalBoxFuture<'static, Result<(), Denial>> + Send + Sync;

/// The application's login hook, boxed (the builder is `Clone` and `Debug`).
#[derive(Clone)]
pub(crate) struct LoginHook(Arc<HookFn>);

impl LoginHook {
    /// Boxes `hook`; its future may be `!Send` (it runs on the worker that serves the callback).
    pub(crate) fn new<F, Fut>(hook: F) -> Self
    where
        F: Fn(UpstreamIdentity) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Denial>> + 'static,
    {
        Self(Arc::new(move |identity| hook(identity).boxed_local()))
    }

    /// Runs the hook within `limit`; an error, a panic or a time-out is a denial.
    async fn run(&self, identity: UpstreamIdentity, limit: Duration) -> Result<(), Denial> {
        let hook = &self.0;
        let call = AssertUnwindSafe(async move { hook(identity).await }).catch_unwind();
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(_panic)) => Err(Denial::failed("the login hook panicked")),
            Err(_elapsed) => Err(Denial::timed_out()),
        }
    }
}

impl fmt::Debug for LoginHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginHook")
    }
}

/// Who may log in: the allow-lists, the hook and its time limit.
#[derive(Clone, Debug)]
pub(crate) struct LoginSettings {
    pub policy: LoginPolicy,
    pub hook: Option<LoginHook>,
    pub hook_timeout: Duration,
}

impl LoginSettings {
    /// Whether every login is admitted without looking.
    fn is_open(&self) -> bool {
        self.policy.is_open() && self.hook.is_none()
    }

    /// The allow-lists, then the hook (only for users the lists admit).
    async fn decide(&self, identity: &UpstreamIdentity) -> Result<(), Denial> {
        self.policy.check(identity)?;
        match &self.hook {
            Some(hook) => hook.run(identity.clone(), self.hook_timeout).await,
            None => Ok(()),
        }
    }
}

/// Admits the user of `grant` (built from AuthKit's answer, not stored yet), or records the
/// denial and returns the `access_denied` error to send back to the client.
pub(crate) async fn admit(
    req: &HttpRequest,
    state: &ProxyState,
    pending: &PendingAuthorization,
    grant: &Grant,
) -> Result<(), OAuthError> {
    let settings = &state.settings.login;
    if settings.is_open() {
        return Ok(());
    }
    let identity = identity_of(grant)?;
    let Err(denial) = settings.decide(&identity).await else {
        return Ok(());
    };
    if let Some(failure) = denial.failure() {
        tracing::warn!(
            code = denial.code(),
            %failure,
            client_id = %pending.client_id,
            "login hook failed; login denied"
        );
    } else {
        tracing::info!(
            code = denial.code(),
            subject = %identity.subject,
            client_id = %pending.client_id,
            "login denied by the login policy"
        );
    }
    audit(state, pending, &identity, &denial).await;
    forget_remembered_consent(req, state, pending).await;
    Err(Rejection::new(ErrorCode::AccessDenied, denial.reason().to_owned()).into())
}

/// The identity of the grant's user: its userinfo profile and the claims of AuthKit's access
/// token (read without a signature check, see `unverified_claims`).
fn identity_of(grant: &Grant) -> Result<UpstreamIdentity, OAuthError> {
    let profile = match &grant.profile {
        Some(Value::Object(profile)) => profile.clone(),
        _ => Map::new(),
    };
    let claims = unverified_claims(grant.upstream.access_token.expose());
    UpstreamIdentity::from_parts(profile, claims).ok_or_else(|| {
        Rejection::new(ErrorCode::ServerError, "the identity provider sent no user").into()
    })
}

/// Appends the `login_denied` row. A database failure is logged (WARN or ERROR) and the login
/// is denied all the same: the client is told why, whatever the audit log's state.
async fn audit(
    state: &ProxyState,
    pending: &PendingAuthorization,
    identity: &UpstreamIdentity,
    denial: &Denial,
) {
    let mut detail = json!({ "reason": denial.code() });
    if let Some(email) = &identity.email {
        detail["email"] = json!(email);
    }
    if let Some(org) = &identity.organization_id {
        detail["organization_id"] = json!(org);
    }
    let entry = AuditEntry::new(AuditKind::LoginDenied, AuditActor::System)
        .subject(identity.subject.clone())
        .client(pending.client_id.clone())
        .detail(detail);
    if let Err(error) = state.store.append_audit(&entry).await {
        tracing::warn!(%error, code = denial.code(), "could not audit a denied login");
    }
}

/// Forgets the approval of `pending`'s client remembered for this browser, if any. A failure
/// is logged: the remembered approval admits nobody by itself (every login meets the policy).
async fn forget_remembered_consent(
    req: &HttpRequest,
    state: &ProxyState,
    pending: &PendingAuthorization,
) {
    let secure = state.settings.base_url.scheme() == "https";
    let Some(device) = cookies::device_secret(req, secure) else {
        return;
    };
    let subject = cookies::device_subject(&device);
    if let Err(error) = state
        .store
        .forget_consent(&subject, &pending.client_id)
        .await
    {
        tracing::warn!(%error, "could not forget a remembered consent after a denied login");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> UpstreamIdentity {
        let profile = json!({"sub": "user_1", "email": "alice@example.com"});
        UpstreamIdentity::from_parts(profile.as_object().unwrap().clone(), Map::new()).unwrap()
    }

    fn settings(hook: LoginHook, timeout: Duration) -> LoginSettings {
        LoginSettings {
            policy: LoginPolicy::default(),
            hook: Some(hook),
            hook_timeout: timeout,
        }
    }

    #[actix_web::test]
    async fn the_hook_decides_after_the_lists() {
        let hook = LoginHook::new(|identity: UpstreamIdentity| async move {
            match identity.email.as_deref() {
                Some("alice@example.com") => Ok(()),
                _ => Err(Denial::new("not_alice", "Only Alice may sign in.")),
            }
        });
        let s = settings(hook, DEFAULT_HOOK_TIMEOUT);
        assert!(!s.is_open());
        assert_eq!(s.decide(&alice()).await, Ok(()));
        let mut bob = alice();
        bob.email = Some("bob@example.com".into());
        assert_eq!(s.decide(&bob).await.unwrap_err().code(), "not_alice");
        // The lists run first: a user they refuse never reaches the hook.
        let mut listed = s.clone();
        listed.policy.organizations = vec!["org_A".into()];
        assert_eq!(
            listed.decide(&alice()).await.unwrap_err().code(),
            "organization_missing"
        );
    }

    #[actix_web::test]
    async fn a_failing_panicking_or_silent_hook_denies() {
        let failing = LoginHook::new(|_| async { Err(Denial::failed("directory unreachable")) });
        let denial = settings(failing, DEFAULT_HOOK_TIMEOUT)
            .decide(&alice())
            .await
            .unwrap_err();
        assert_eq!(denial.code(), "check_failed");
        assert_eq!(denial.failure(), Some("directory unreachable"));

        let panicking = LoginHook::new(|identity: UpstreamIdentity| async move {
            assert!(identity.subject.is_empty(), "boom");
            Ok(())
        });
        let denial = settings(panicking, DEFAULT_HOOK_TIMEOUT)
            .decide(&alice())
            .await
            .unwrap_err();
        assert_eq!(denial.code(), "check_failed");
        assert!(!denial.reason().contains("panick"));

        // A hook that never answers is cut off at its limit (a virtual-time-free short one).
        let silent = LoginHook::new(|_| std::future::pending());
        let denial = settings(silent, Duration::from_millis(20))
            .decide(&alice())
            .await
            .unwrap_err();
        assert_eq!(denial.code(), "check_timed_out");
        assert!(denial.reason().contains("try again"));
    }

    #[test]
    fn without_lists_or_hook_nothing_is_checked() {
        let open = LoginSettings {
            policy: LoginPolicy::default(),
            hook: None,
            hook_timeout: DEFAULT_HOOK_TIMEOUT,
        };
        assert!(open.is_open());
        assert_eq!(
            format!("{:?}", LoginHook::new(|_| async { Ok(()) })),
            "LoginHook"
        );
    }
}
