//! AuthKit mode: AuthKit is the authorization server; we are a resource server.
//!
//! MCP clients register with AuthKit (dynamic client registration or client ID metadata
//! documents switched on in the WorkOS dashboard), log in there, and present AuthKit's RS256 JWTs
//! to the MCP endpoint. We publish protected-resource metadata naming AuthKit, forward AuthKit's
//! authorization-server metadata for older clients, and verify the JWTs against AuthKit's JWKS.

use std::{sync::Arc, time::Duration};

use actix_web::{
    dev::{AppService, HttpServiceFactory},
    web::Bytes,
};
use url::Url;

use crate::{
    BearerAuth, JwtVerifier,
    clock::Clock,
    error::ConfigError,
    metadata::{
        AuthorizationServerMetadata, DiscoveryRoutes, MetadataForwarder, ProtectedResourceMetadata,
    },
    settings::{
        Env, Setting, SharedSettings, normalize_public_url, setting, url_without_trailing_slash,
    },
};

/// Protects an MCP endpoint with tokens issued by WorkOS AuthKit (FastMCP's `AuthKitProvider`).
///
/// ```no_run
/// use actix_mcp_auth::AuthKitProvider;
/// use actix_web::{App, HttpResponse, HttpServer, web};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     // WORKOS_AUTHKIT_DOMAIN=tenant.authkit.app MCP_BASE_URL=https://mcp.example.com
///     let auth = AuthKitProvider::from_env().expect("AuthKit configuration");
///     HttpServer::new(move || {
///         App::new().service(auth.routes()).service(
///             web::scope(auth.mcp_path())
///                 .wrap(auth.bearer())
///                 .route("", web::post().to(|| async { HttpResponse::Ok().finish() })),
///         )
///     })
///     .bind(("127.0.0.1", 8000))?
///     .run()
///     .await
/// }
/// ```
#[derive(Clone)]
pub struct AuthKitProvider {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    base_url: Url,
    mcp_path: String,
    resource_url: String,
    resource_metadata_url: String,
    required_scopes: Vec<String>,
    tool_scopes: Option<crate::ScopePolicy>,
    resource_metadata: ProtectedResourceMetadata,
    verifier: JwtVerifier,
    /// Our protected-resource metadata and AuthKit's forwarded metadata, and their routes.
    discovery: DiscoveryRoutes,
}

impl std::fmt::Debug for AuthKitProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKitProvider")
            .field("issuer", &self.inner.issuer)
            .field("resource_url", &self.inner.resource_url)
            .field("required_scopes", &self.inner.required_scopes)
            .finish_non_exhaustive()
    }
}

/// Default of [`AuthKitProviderBuilder::http_timeout`].
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);

const JWKS_URI: Setting = setting("WORKOS_JWKS_URI", "jwks_uri");

/// Builder of an [`AuthKitProvider`]. Only the AuthKit domain and the public base URL are
/// required; every other setting has a secure default.
#[must_use]
#[derive(Debug, Clone)]
pub struct AuthKitProviderBuilder {
    /// Domain, base URL, MCP path, required scopes, HTTP timeout (shared with proxy mode).
    shared: SharedSettings,
    scopes_supported: Option<Vec<String>>,
    jwks_uri: Option<String>,
    extra_audiences: Vec<String>,
    accept_any_audience: bool,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    metadata_cache_ttl: Duration,
    leeway: Duration,
    jwks_cache_ttl: Duration,
    jwks_min_refresh_interval: Duration,
    token_cache_capacity: u64,
    token_cache_max_ttl: Duration,
    clock: Clock,
}

impl Default for AuthKitProviderBuilder {
    fn default() -> Self {
        Self {
            shared: SharedSettings::new(DEFAULT_HTTP_TIMEOUT),
            scopes_supported: None,
            jwks_uri: None,
            extra_audiences: Vec::new(),
            accept_any_audience: false,
            resource_name: None,
            resource_documentation: None,
            metadata_cache_ttl: Duration::from_secs(300),
            leeway: Duration::from_secs(5),
            jwks_cache_ttl: Duration::from_secs(3600),
            jwks_min_refresh_interval: Duration::from_secs(15),
            token_cache_capacity: 10_000,
            token_cache_max_ttl: Duration::from_secs(300),
            clock: Clock::system(),
        }
    }
}

impl AuthKitProviderBuilder {
    /// Reads the process environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `WORKOS_AUTHKIT_DOMAIN` | required; `tenant.authkit.app` or a full URL (`https://` is assumed) |
    /// | `MCP_BASE_URL` | required; public URL of this server, e.g. `https://mcp.example.com` |
    /// | `MCP_PATH` | path of the MCP endpoint, default `/mcp` |
    /// | `WORKOS_REQUIRED_SCOPES` | scopes every token must carry, space- or comma-separated |
    /// | `WORKOS_JWKS_URI` | overrides `{domain}/oauth2/jwks` |
    /// | `WORKOS_ACCEPTED_AUDIENCES` | extra accepted `aud` values besides the MCP URL |
    /// | `WORKOS_TIMEOUT_SECONDS` | timeout of calls to AuthKit, default 5 |
    /// | `MCP_AUTH_TOOL_SCOPES` | per-tool scopes, see [`ScopePolicy`](crate::ScopePolicy) |
    ///
    /// It does not read `.env` files: call `dotenvy::dotenv()` first if you use one.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Like [`from_env`](Self::from_env), from an explicit list of variables (for tests).
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env = Env::from_iter(vars);
        let mut builder = Self {
            shared: SharedSettings::from_env(&env, DEFAULT_HTTP_TIMEOUT)?,
            ..Self::default()
        };
        if let Some(uri) = env.optional(JWKS_URI.env) {
            builder = builder.jwks_uri(uri);
        }
        for audience in env.list("WORKOS_ACCEPTED_AUDIENCES").unwrap_or_default() {
            builder = builder.accept_audience(audience);
        }
        Ok(builder)
    }

    /// The AuthKit domain (`tenant.authkit.app`, a custom domain, or a full URL). It is the
    /// issuer of the tokens and the authorization server announced to clients.
    pub fn authkit_domain(mut self, domain: impl Into<String>) -> Self {
        self.shared.authkit_domain = Some(domain.into());
        self
    }

    /// The public URL of this server (scheme, host, optional port and path prefix).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.shared.base_url = Some(url.into());
        self
    }

    /// Path of the MCP endpoint below the base URL (default `/mcp`).
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        self.shared.mcp_path = path.into();
        self
    }

    /// Scopes every token must carry; also announced in challenges and metadata.
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Per-method and per-tool scopes (see [`ScopePolicy`](crate::ScopePolicy)), enforced by
    /// [`bearer`](AuthKitProvider::bearer) before the MCP service runs (403
    /// `insufficient_scope` for a token lacking one). The scopes are AuthKit's; they are added
    /// to the protected-resource metadata. From the environment: `MCP_AUTH_TOOL_SCOPES`.
    pub fn tool_scopes(mut self, policy: crate::ScopePolicy) -> Self {
        self.shared.tool_scopes = Some(policy);
        self
    }

    /// Scopes listed in the protected-resource metadata (default: the required scopes).
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Overrides the JWKS location (default `{domain}/oauth2/jwks`).
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Accepts tokens whose `aud` is `audience`, in addition to the MCP URL.
    pub fn accept_audience(mut self, audience: impl Into<String>) -> Self {
        self.extra_audiences.push(audience.into());
        self
    }

    /// Accepts tokens whatever their `aud`. **Dangerous**: tokens AuthKit issued for other
    /// applications of the environment then work here too. Only for AuthKit setups without
    /// resource indicators; logged at WARN.
    pub fn dangerously_accept_any_audience(mut self) -> Self {
        self.accept_any_audience = true;
        self
    }

    /// `resource_name` in the protected-resource metadata.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// `resource_documentation` in the protected-resource metadata.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// Timeout of each call to AuthKit (default 5 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.shared.http_timeout = timeout;
        self
    }

    /// How long AuthKit's authorization-server metadata is cached (default 5 min).
    pub fn metadata_cache_ttl(mut self, ttl: Duration) -> Self {
        self.metadata_cache_ttl = ttl;
        self
    }

    /// Clock-skew tolerance for `exp`/`nbf` (default 5 s, at most 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How long AuthKit's keys are used before they are fetched again (default 1 h).
    pub fn jwks_cache_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_cache_ttl = ttl;
        self
    }

    /// Smallest interval between JWKS fetches caused by unknown keys (default 15 s).
    pub fn jwks_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_min_refresh_interval = interval;
        self
    }

    /// Capacity of the verified-token cache (default 10 000).
    pub fn token_cache_capacity(mut self, capacity: u64) -> Self {
        self.token_cache_capacity = capacity;
        self
    }

    /// Longest time a verified token is cached, whatever its expiry (default 5 min; counted in
    /// whole seconds, so less than one second turns the cache off).
    pub fn token_cache_max_ttl(mut self, ttl: Duration) -> Self {
        self.token_cache_max_ttl = ttl;
        self
    }

    /// The time source of token expiry, the token cache, the JWKS refresh intervals and the
    /// metadata cache and its error back-off (default: the system clock). Tests pass a
    /// [`Clock::adjustable`](crate::Clock::adjustable) and move it past an expiry or a
    /// back-off instead of sleeping.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the configuration and builds the provider.
    pub fn build(self) -> Result<AuthKitProvider, ConfigError> {
        let urls = self.shared.resolve()?;
        let issuer = urls.authkit.clone();
        let jwks_uri = match self.jwks_uri.as_deref() {
            Some(uri) => url_without_trailing_slash(&normalize_public_url(
                self.shared.name(JWKS_URI),
                uri,
                false,
            )?),
            None => format!("{issuer}/oauth2/jwks"),
        };
        let mut verifier = JwtVerifier::builder(jwks_uri, issuer.clone())
            .audience(urls.resource_url.clone())
            .leeway(self.leeway)
            .jwks_timeout(self.shared.http_timeout)
            .jwks_cache_ttl(self.jwks_cache_ttl)
            .jwks_min_refresh_interval(self.jwks_min_refresh_interval)
            .cache_capacity(self.token_cache_capacity)
            .cache_max_ttl(self.token_cache_max_ttl)
            .clock(self.clock.clone());
        for audience in self.extra_audiences {
            verifier = verifier.audience(audience);
        }
        if self.accept_any_audience {
            verifier = verifier.accept_any_audience();
        }
        let verifier = verifier.build()?;

        let scopes_supported = self.shared.all_scopes(
            self.scopes_supported
                .as_ref()
                .unwrap_or(&self.shared.required_scopes),
        );
        let required_scopes = self.shared.required_scopes;
        let tool_scopes = self.shared.tool_scopes;
        let mut resource_metadata = ProtectedResourceMetadata::new(
            urls.resource_url.clone(),
            issuer.clone(),
            &scopes_supported,
        );
        resource_metadata.resource_name = self.resource_name;
        resource_metadata.resource_documentation = self.resource_documentation;
        let forwarder = MetadataForwarder::new(
            format!("{issuer}/.well-known/oauth-authorization-server"),
            self.shared.http_timeout,
            self.metadata_cache_ttl,
        )
        .clock(self.clock);
        let discovery = DiscoveryRoutes {
            resource_metadata_path: urls.resource_metadata_path,
            resource_metadata: Bytes::from(
                serde_json::to_vec(&resource_metadata).expect("metadata serializes to JSON"),
            ),
            authorization_server_path: "/.well-known/oauth-authorization-server".to_owned(),
            authorization_server: AuthorizationServerMetadata::Forwarded(Arc::new(forwarder)),
        };
        Ok(AuthKitProvider {
            inner: Arc::new(Inner {
                issuer,
                base_url: urls.base_url,
                mcp_path: urls.mount_path,
                resource_url: urls.resource_url,
                resource_metadata_url: urls.resource_metadata_url,
                required_scopes,
                tool_scopes,
                resource_metadata,
                verifier,
                discovery,
            }),
        })
    }
}

impl AuthKitProvider {
    /// Starts a builder.
    pub fn builder() -> AuthKitProviderBuilder {
        AuthKitProviderBuilder::default()
    }

    /// Builds the provider from the process environment; see
    /// [`AuthKitProviderBuilder::from_env`] for the variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        AuthKitProviderBuilder::from_env()?.build()
    }

    /// The issuer of accepted tokens (the AuthKit domain, without trailing slash).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The public base URL of this server.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// Where to mount the MCP endpoint in the application: the base URL's path followed by
    /// `MCP_PATH` (`/mcp` by default). The application is expected to see request paths as
    /// clients send them (a reverse proxy in front must not strip a prefix).
    pub fn mcp_path(&self) -> &str {
        &self.inner.mcp_path
    }

    /// Canonical URL of the MCP endpoint: the `resource` of the metadata and the audience
    /// tokens must carry.
    pub fn resource_url(&self) -> &str {
        &self.inner.resource_url
    }

    /// Absolute URL of the protected-resource metadata, as announced in challenges.
    pub fn resource_metadata_url(&self) -> &str {
        &self.inner.resource_metadata_url
    }

    /// The protected-resource metadata document we serve.
    pub fn resource_metadata(&self) -> &ProtectedResourceMetadata {
        &self.inner.resource_metadata
    }

    /// The JWT verifier (for direct use, or to inspect its cache).
    pub fn verifier(&self) -> &JwtVerifier {
        &self.inner.verifier
    }

    /// The bearer-check middleware for the MCP endpoint.
    pub fn bearer(&self) -> BearerAuth {
        let bearer = BearerAuth::new(
            Arc::new(self.inner.verifier.clone()),
            self.inner.resource_metadata_url.clone(),
        )
        .required_scopes(self.inner.required_scopes.clone());
        match &self.inner.tool_scopes {
            Some(policy) => bearer.tool_scopes(policy.clone()),
            None => bearer,
        }
    }

    /// The discovery routes, registered at the host root:
    /// * `GET /.well-known/oauth-protected-resource{path of the MCP URL}` and
    ///   `GET /.well-known/oauth-protected-resource`: protected-resource metadata;
    /// * `GET /.well-known/oauth-authorization-server`: AuthKit's metadata, forwarded.
    pub fn routes(&self) -> AuthKitRoutes {
        AuthKitRoutes {
            provider: self.clone(),
        }
    }
}

/// The routes of an [`AuthKitProvider`]; register with `App::service`.
///
/// Resources are registered one by one (not as a scope), so the application's own routes stay
/// reachable.
pub struct AuthKitRoutes {
    provider: AuthKitProvider,
}

impl HttpServiceFactory for AuthKitRoutes {
    fn register(self, config: &mut AppService) {
        self.provider.inner.discovery.register(config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The minimal environment, with `extra` added or overriding.
    fn vars(extra: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        let mut v: std::collections::BTreeMap<String, String> = [
            ("WORKOS_AUTHKIT_DOMAIN", "tenant.authkit.app/"),
            ("MCP_BASE_URL", "https://MCP.example.com/"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        v.retain(|_, value| value != "<unset>");
        v
    }

    #[test]
    fn from_vars_normalizes_urls() {
        let p = AuthKitProviderBuilder::from_vars(vars(&[]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(p.issuer(), "https://tenant.authkit.app");
        assert_eq!(p.resource_url(), "https://mcp.example.com/mcp");
        assert_eq!(
            p.resource_metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            p.resource_metadata().authorization_servers,
            vec!["https://tenant.authkit.app"]
        );
    }

    #[test]
    fn base_url_path_prefix_is_part_of_the_resource() {
        let p = AuthKitProviderBuilder::from_vars(vars(&[
            ("MCP_BASE_URL", "https://h.example/api/"),
            ("MCP_PATH", "tools/"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(p.resource_url(), "https://h.example/api/tools");
        assert_eq!(
            p.resource_metadata_url(),
            "https://h.example/.well-known/oauth-protected-resource/api/tools"
        );
    }

    #[test]
    fn missing_and_malformed_settings_name_the_variable() {
        let err = AuthKitProviderBuilder::from_vars(vec![("MCP_BASE_URL", "https://a.example")])
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "WORKOS_AUTHKIT_DOMAIN is not set");
        let err = AuthKitProviderBuilder::from_vars(vars(&[("MCP_BASE_URL", "")]))
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "MCP_BASE_URL is not set");
        let err =
            AuthKitProviderBuilder::from_vars(vars(&[("MCP_BASE_URL", "http://public.example")]))
                .unwrap()
                .build()
                .unwrap_err();
        assert!(
            err.to_string().starts_with("MCP_BASE_URL is invalid"),
            "{err}"
        );
        let err = AuthKitProviderBuilder::from_vars(vars(&[("MCP_PATH", "/a/../b")]))
            .unwrap()
            .build()
            .unwrap_err();
        assert!(err.to_string().starts_with("MCP_PATH is invalid"), "{err}");
        let err = AuthKitProviderBuilder::from_vars(vars(&[("WORKOS_TIMEOUT_SECONDS", "soon")]))
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("WORKOS_TIMEOUT_SECONDS"),
            "{err}"
        );
    }

    #[test]
    fn authkit_only_variables_are_read_and_named() {
        let p = AuthKitProviderBuilder::from_vars(vars(&[
            ("WORKOS_JWKS_URI", "https://keys.example/jwks/"),
            ("WORKOS_ACCEPTED_AUDIENCES", "client_a, client_b"),
            ("WORKOS_TIMEOUT_SECONDS", "2"),
        ]))
        .unwrap();
        assert_eq!(p.jwks_uri.as_deref(), Some("https://keys.example/jwks/"));
        assert_eq!(p.extra_audiences, vec!["client_a", "client_b"]);
        assert_eq!(p.shared.http_timeout, Duration::from_secs(2));
        assert!(p.build().is_ok());
        let err = AuthKitProviderBuilder::from_vars(vars(&[(
            "WORKOS_JWKS_URI",
            "http://keys.example/jwks",
        )]))
        .unwrap()
        .build()
        .unwrap_err();
        assert!(
            err.to_string().starts_with("WORKOS_JWKS_URI is invalid"),
            "{err}"
        );
    }

    #[test]
    fn scopes_parse_from_spaces_or_commas() {
        let p = AuthKitProviderBuilder::from_vars(vars(&[(
            "WORKOS_REQUIRED_SCOPES",
            "openid,profile email offline_access",
        )]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(
            p.inner.required_scopes,
            vec!["openid", "profile", "email", "offline_access"]
        );
        assert_eq!(
            p.resource_metadata().scopes_supported,
            vec!["openid", "profile", "email"]
        );
    }

    #[test]
    fn builder_errors_name_the_method() {
        let err = AuthKitProvider::builder()
            .base_url("https://a.example")
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "authkit_domain is not set");
    }
}
