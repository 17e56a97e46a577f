//! The validated settings of proxy mode, as the handlers read them. Built by
//! [`WorkOsProviderBuilder`](crate::WorkOsProviderBuilder) (the environment and builder side
//! lives with the provider; this module depends on nothing of it).

use std::time::Duration;

use url::Url;

use super::{branding::Branding, cimd::CimdSettings, login_policy::LoginSettings};
use crate::{oauth::redirect_uri::RedirectUriPolicy, rate_limit::RateLimits};

/// Validated settings of proxy mode.
#[derive(Debug, Clone)]
pub(crate) struct ProxySettings {
    pub client_id: String,
    pub client_secret: crate::store::Secret,
    /// AuthKit's issuer (no trailing slash).
    pub authkit: String,
    /// Our issuer: the base URL without trailing slash.
    pub issuer: String,
    /// Absolute URL of our protected-resource metadata (RFC 9728 path insertion).
    pub resource_metadata_url: String,
    /// Local path of that document.
    pub resource_metadata_path: String,
    /// Local path of the MCP endpoint (base path + MCP path).
    pub mount_path: String,
    pub base_url: Url,
    /// Path of the base URL (`""` at the host root): prefix of every route we serve.
    pub base_path: String,
    pub resource_url: String,
    pub resource: Url,
    pub redirect_path: String,
    pub required_scopes: Vec<String>,
    /// Per-tool scopes: enforced by the bearer check, accepted by `/authorize`.
    pub tool_scopes: Option<crate::ScopePolicy>,
    /// Scopes asked from AuthKit (always includes `openid` and `offline_access`).
    pub upstream_scopes: Vec<String>,
    /// Timeout of each call to AuthKit (`WORKOS_TIMEOUT_SECONDS`, `http_timeout`).
    pub timeout: Duration,
    pub redirect_policy: RedirectUriPolicy,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long a rotated refresh token may be retried for the same successor pair.
    pub refresh_grace: Duration,
    pub userinfo_cache_ttl: Duration,
    pub token_cache_ttl: Duration,
    /// Most access tokens cached per process.
    pub token_cache_capacity: u64,
    /// Most grants (confirmed upstream sessions, shared by their tokens) cached per process.
    pub grant_cache_capacity: u64,
    pub consent_required: bool,
    /// How long an approval given with "remember" is reused (zero: never offered).
    pub remember_consent: Duration,
    pub sweep_interval: Duration,
    pub rate_limits: RateLimits,
    /// How long a registration that never completed a login lives.
    pub unused_client_ttl: Duration,
    /// Most live registrations that never completed a login (`/register` answers 503 beyond).
    pub max_unused_clients: u64,
    /// Clients identified by a metadata-document URL.
    pub cimd: CimdSettings,
    /// Name and icon of this server on its pages.
    pub branding: Branding,
    /// Who may log in: allow-lists and the application's hook, checked at the callback.
    pub login: LoginSettings,
}

impl ProxySettings {
    /// Scopes clients may ask for and metadata lists: the required ones, then those the
    /// per-tool policy names (a client refused with 403 `insufficient_scope` asks for them).
    pub(crate) fn client_scopes(&self) -> Vec<String> {
        let mut scopes = self.required_scopes.clone();
        if let Some(policy) = &self.tool_scopes {
            policy.add_scopes_to(&mut scopes);
        }
        scopes
    }

    /// Absolute URL of an endpoint of ours (`path` relative to the base URL).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// Local route of an endpoint of ours (`path` relative to the base URL).
    pub fn route(&self, path: &str) -> String {
        format!("{}{}", self.base_path, path)
    }
}
