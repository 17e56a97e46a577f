//! [`Authenticated`]: the verified caller, as handlers see it.
//!
//! [`BearerAuth`](crate::BearerAuth) puts one `Authenticated` into the request extensions after a
//! token passes verification. Handlers take it as an extractor, or read it through
//! [`AuthenticatedExt`] from an `HttpRequest` or `ServiceRequest`.

use std::{
    future::{Ready, ready},
    num::NonZeroU64,
    sync::Arc,
};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, dev::ServiceRequest};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::BearerError;

/// The verified caller of a protected route: who the user is, which client acts for them, and
/// what the token allows.
///
/// Cloning is cheap (one `Arc` and the expiry). What belongs to the user and the grant (subject,
/// client, scopes, claims) is shared by every token of the same grant; only the expiry is the
/// token's own. The value never contains the bearer token itself.
///
/// ```no_run
/// use actix_mcp_auth::Authenticated;
///
/// async fn whoami(user: Authenticated) -> String {
///     format!("hello {}", user.subject())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Authenticated {
    who: Arc<Who>,
    /// Unix seconds; `None` when the token has no expiry (0 is stored as `None`: no real token
    /// expires at the epoch).
    expires_at: Option<NonZeroU64>,
}

impl Serialize for Authenticated {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut out = serializer.serialize_struct("Authenticated", 5)?;
        out.serialize_field("subject", &self.who.subject)?;
        out.serialize_field("client_id", &self.who.client_id)?;
        out.serialize_field("scopes", &self.who.scopes)?;
        out.serialize_field("expires_at", &self.expires_at())?;
        out.serialize_field("claims", &self.who.claims)?;
        out.end()
    }
}

/// What tokens of one grant have in common.
#[derive(Debug)]
struct Who {
    subject: String,
    client_id: Option<String>,
    scopes: Vec<String>,
    claims: Map<String, Value>,
}

impl Authenticated {
    /// Builds a principal. Verifiers call this; applications normally only read it.
    ///
    /// `expires_at` is in unix seconds; `claims` are the token's claims (or, in proxy mode, the
    /// user's profile), exposed as-is to handlers.
    pub fn new(
        subject: impl Into<String>,
        client_id: Option<String>,
        scopes: Vec<String>,
        expires_at: Option<u64>,
        claims: Map<String, Value>,
    ) -> Self {
        Self {
            who: Arc::new(Who {
                subject: subject.into(),
                client_id,
                scopes,
                claims,
            }),
            expires_at: expires_at.and_then(NonZeroU64::new),
        }
    }

    /// The same caller (sharing subject, client, scopes and claims) for another token of the
    /// same grant, expiring at `expires_at`.
    pub(crate) fn with_expiry(&self, expires_at: Option<u64>) -> Self {
        Self {
            who: self.who.clone(),
            expires_at: expires_at.and_then(NonZeroU64::new),
        }
    }

    /// Whether `self` and `other` share what belongs to the grant (the same allocation).
    #[cfg(test)]
    pub(crate) fn shares_grant_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.who, &other.who)
    }

    /// The user (`sub`).
    pub fn subject(&self) -> &str {
        &self.who.subject
    }

    /// The OAuth client acting for the user (`client_id`, else `azp`), when known.
    pub fn client_id(&self) -> Option<&str> {
        self.who.client_id.as_deref()
    }

    /// Scopes granted to the token.
    pub fn scopes(&self) -> &[String] {
        &self.who.scopes
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.who.scopes.iter().any(|s| s == scope)
    }

    /// Expiry of the token in unix seconds, when it has one.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at.map(NonZeroU64::get)
    }

    /// All claims of the token (AuthKit mode) or of the user profile (proxy mode).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.who.claims
    }

    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.who.claims.get(name)
    }
}

/// Reads the [`Authenticated`] caller from a request, in the style of actix-identity's
/// `IdentityExt`.
pub trait AuthenticatedExt {
    /// The verified caller, or `None` when the request did not pass through
    /// [`BearerAuth`](crate::BearerAuth).
    fn authenticated(&self) -> Option<Authenticated>;
}

impl AuthenticatedExt for HttpRequest {
    fn authenticated(&self) -> Option<Authenticated> {
        self.extensions().get::<Authenticated>().cloned()
    }
}

impl AuthenticatedExt for ServiceRequest {
    fn authenticated(&self) -> Option<Authenticated> {
        self.extensions().get::<Authenticated>().cloned()
    }
}

impl FromRequest for Authenticated {
    type Error = BearerError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.authenticated().ok_or_else(|| {
            // A handler asked for a caller on a route that BearerAuth does not wrap: a wiring
            // mistake, answered as "no credentials" so nothing leaks.
            tracing::warn!(path = %req.path(), "Authenticated extractor used without BearerAuth");
            BearerError::unwired()
        }))
    }
}
