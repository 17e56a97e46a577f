//! [`Authenticated`]: the verified caller, as handlers see it.
//!
//! [`BearerAuth`](crate::BearerAuth) puts one `Authenticated` into the request extensions after a
//! token passes verification. Handlers take it as an extractor, or read it through
//! [`AuthenticatedExt`] from an `HttpRequest` or `ServiceRequest`.

use std::{
    future::{Ready, ready},
    sync::Arc,
};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, dev::ServiceRequest};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::BearerError;

/// The verified caller of a protected route: who the user is, which client acts for them, and
/// what the token allows.
///
/// Cloning is cheap (one `Arc`). The value never contains the bearer token itself.
///
/// ```no_run
/// use actix_mcp_auth::Authenticated;
///
/// async fn whoami(user: Authenticated) -> String {
///     format!("hello {}", user.subject())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Authenticated(Arc<Inner>);

impl Serialize for Authenticated {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[derive(Debug, Serialize)]
struct Inner {
    subject: String,
    client_id: Option<String>,
    scopes: Vec<String>,
    expires_at: Option<u64>,
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
        Self(Arc::new(Inner {
            subject: subject.into(),
            client_id,
            scopes,
            expires_at,
            claims,
        }))
    }

    /// The user (`sub`).
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The OAuth client acting for the user (`client_id`, else `azp`), when known.
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// Scopes granted to the token.
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }

    /// Expiry of the token in unix seconds, when it has one.
    pub fn expires_at(&self) -> Option<u64> {
        self.0.expires_at
    }

    /// All claims of the token (AuthKit mode) or of the user profile (proxy mode).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0.claims
    }

    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.0.claims.get(name)
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
