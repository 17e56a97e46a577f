//! The builder of proxy mode ([`WorkOsProvider`](super::WorkOsProvider)): its environment
//! variables, its setters, and their validation into [`ProxySettings`]. The settings shared with
//! AuthKit mode are read and checked by [`SharedSettings`].

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use rustls::pki_types::{CertificateDer, pem::PemObject};
use url::Url;

use crate::{
    error::ConfigError,
    oauth::{
        login_policy::{
            Denial, LoginPolicy, UpstreamIdentity, parse_domain, parse_name, parse_organization,
        },
        redirect_uri::{RedirectPattern, RedirectUriPolicy},
    },
    proxy::{
        ProxySettings,
        branding::{Branding, default_server_name, load_icon},
        cimd::{CimdSettings, HostResolver, SystemResolver},
        login_policy::{DEFAULT_HOOK_TIMEOUT, LoginHook, LoginSettings},
    },
    rate_limit::RateLimits,
    settings::{Env, Setting, SharedSettings, normalize_mcp_path, setting},
};

/// Default of [`WorkOsProviderBuilder::http_timeout`].
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

const CLIENT_ID: Setting = setting("WORKOS_CLIENT_ID", "client_id");
const CLIENT_SECRET: Setting = setting("WORKOS_CLIENT_SECRET", "client_secret");
const REDIRECT_PATH: Setting = setting("WORKOS_REDIRECT_PATH", "redirect_path");
const REDIRECT_PATTERNS: Setting = setting(
    "WORKOS_ALLOWED_CLIENT_REDIRECT_URIS",
    "allowed_client_redirect_uris",
);
const REFRESH_GRACE: Setting = setting("MCP_AUTH_REFRESH_GRACE_SECONDS", "refresh_grace");
const IPV6_PREFIX: Setting = setting("MCP_AUTH_RATE_LIMIT_IPV6_PREFIX", "RateLimits::ipv6_prefix");
const MAX_UNUSED_CLIENTS: Setting = setting("MCP_AUTH_MAX_UNUSED_CLIENTS", "max_unused_clients");
const CIMD_EXTRA_CA_FILE: Setting = setting("MCP_AUTH_CIMD_EXTRA_CA_FILE", "cimd_extra_ca_file");
const SERVER_NAME: Setting = setting("MCP_AUTH_SERVER_NAME", "server_name");
const SERVER_ICON_FILE: Setting = setting("MCP_AUTH_SERVER_ICON_FILE", "server_icon_file");
const EMAIL_DOMAINS: Setting = setting("MCP_AUTH_ALLOWED_EMAIL_DOMAINS", "allowed_email_domains");
const ORGANIZATIONS: Setting = setting("MCP_AUTH_ALLOWED_ORGANIZATIONS", "allowed_organizations");
const ROLES: Setting = setting("MCP_AUTH_REQUIRED_ROLES", "required_roles");
const PERMISSIONS: Setting = setting("MCP_AUTH_REQUIRED_PERMISSIONS", "required_permissions");

/// Builder of a [`WorkOsProvider`](super::WorkOsProvider). Client id and secret, AuthKit
/// domain and public base URL are required; everything else has a secure default.
#[must_use]
#[derive(Debug, Clone)]
pub struct WorkOsProviderBuilder {
    /// Domain, base URL, MCP path, required scopes, HTTP timeout (shared with AuthKit mode).
    shared: SharedSettings,
    client_id: Option<String>,
    client_secret: Option<String>,
    redirect_path: String,
    allowed_redirect_patterns: Option<Vec<String>>,
    private_schemes: Vec<String>,
    access_token_ttl: Duration,
    refresh_token_ttl: Duration,
    refresh_grace: Duration,
    userinfo_cache_ttl: Duration,
    token_cache_ttl: Duration,
    token_cache_capacity: u64,
    grant_cache_capacity: u64,
    consent_required: bool,
    remember_consent: Duration,
    sweep_interval: Duration,
    rate_limits: RateLimits,
    unused_client_ttl: Duration,
    max_unused_clients: u64,
    cimd: bool,
    cimd_allow_loopback: bool,
    cimd_extra_ca_file: Option<PathBuf>,
    cimd_timeout: Duration,
    cimd_resolver: Option<ResolverHandle>,
    server_name: Option<String>,
    server_icon_file: Option<PathBuf>,
    /// Who may log in: the allow-lists as given (validated by `settings`).
    allowed_email_domains: Vec<String>,
    allowed_organizations: Vec<String>,
    required_roles: Vec<String>,
    required_permissions: Vec<String>,
    login_hook: Option<LoginHook>,
    login_hook_timeout: Duration,
}

/// A [`HostResolver`] in the builder (which is `Debug` and `Clone`).
#[derive(Clone)]
struct ResolverHandle(Arc<dyn HostResolver>);

impl std::fmt::Debug for ResolverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostResolver")
    }
}

impl Default for WorkOsProviderBuilder {
    fn default() -> Self {
        Self {
            shared: SharedSettings::new(DEFAULT_HTTP_TIMEOUT),
            client_id: None,
            client_secret: None,
            redirect_path: "/auth/callback".to_owned(),
            allowed_redirect_patterns: None,
            private_schemes: Vec::new(),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: DEFAULT_REFRESH_GRACE,
            userinfo_cache_ttl: Duration::from_secs(30),
            token_cache_ttl: Duration::from_secs(30),
            token_cache_capacity: 100_000,
            grant_cache_capacity: 10_000,
            consent_required: true,
            remember_consent: Duration::ZERO,
            sweep_interval: Duration::from_secs(300),
            rate_limits: RateLimits::default(),
            unused_client_ttl: Duration::from_secs(24 * 3600),
            max_unused_clients: 10_000,
            cimd: true,
            cimd_allow_loopback: false,
            cimd_extra_ca_file: None,
            cimd_timeout: Duration::from_secs(5),
            cimd_resolver: None,
            server_name: None,
            server_icon_file: None,
            allowed_email_domains: Vec::new(),
            allowed_organizations: Vec::new(),
            required_roles: Vec::new(),
            required_permissions: Vec::new(),
            login_hook: None,
            login_hook_timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

fn valid_ipv6_prefix(bits: &u8) -> bool {
    (1..=128).contains(bits)
}

/// Default of [`WorkOsProviderBuilder::refresh_grace`].
const DEFAULT_REFRESH_GRACE: Duration = Duration::from_secs(10);
/// Longest refresh grace accepted: a grace is for lost answers and concurrent requests, not a
/// second life for stolen tokens.
const MAX_REFRESH_GRACE: Duration = Duration::from_secs(300);

impl WorkOsProviderBuilder {
    /// Reads the process environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `WORKOS_CLIENT_ID`, `WORKOS_CLIENT_SECRET` | required: the WorkOS Connect OAuth application |
    /// | `WORKOS_AUTHKIT_DOMAIN` | required: `tenant.authkit.app` or a URL |
    /// | `MCP_BASE_URL` | required: public URL of this server; also our OAuth issuer |
    /// | `MCP_PATH` | path of the MCP endpoint, default `/mcp` |
    /// | `WORKOS_REDIRECT_PATH` | our callback path registered in WorkOS, default `/auth/callback` |
    /// | `WORKOS_REQUIRED_SCOPES` | scopes every token carries and clients may ask for |
    /// | `MCP_AUTH_TOOL_SCOPES` | per-tool scopes, see [`ScopePolicy`](crate::ScopePolicy) |
    /// | `WORKOS_TIMEOUT_SECONDS` | timeout of calls to AuthKit, default 10 |
    /// | `WORKOS_ALLOWED_CLIENT_REDIRECT_URIS` | optional patterns client redirect URIs must match |
    /// | `WORKOS_ALLOWED_CLIENT_REDIRECT_SCHEMES` | private-use schemes clients may register (e.g. `cursor`) |
    /// | `MCP_AUTH_ACCESS_TOKEN_TTL_SECONDS` | lifetime of our access tokens, default 3600 |
    /// | `MCP_AUTH_REFRESH_TOKEN_TTL_SECONDS` | lifetime of our refresh tokens, default 30 days |
    /// | `MCP_AUTH_REFRESH_GRACE_SECONDS` | how long a rotated refresh token may be retried for the same new pair, default 10, 0 = never, at most 300 |
    /// | `MCP_AUTH_USERINFO_CACHE_SECONDS` | how long an upstream session check is trusted, default 30 |
    /// | `MCP_AUTH_TOKEN_CACHE_SECONDS` | how long a verified access token is cached in-process, default 30 |
    /// | `MCP_AUTH_SWEEP_INTERVAL_SECONDS` | how often expired rows are deleted, default 300 |
    /// | `MCP_AUTH_TOKEN_CACHE_CAPACITY` | most tokens cached per process, default 100000 |
    /// | `MCP_AUTH_GRANT_CACHE_CAPACITY` | most grants (sessions) cached per process, default 10000 |
    /// | `MCP_AUTH_REMEMBER_CONSENT_SECONDS` | offer "remember this approval" for that long (off by default) |
    /// | `MCP_AUTH_RATE_LIMITS` | `on` (default) or `off`: per-client-IP limits of the OAuth endpoints |
    /// | `MCP_AUTH_TRUSTED_PROXIES` | reverse proxies whose `X-Forwarded-For` is believed (IP addresses) |
    /// | `MCP_AUTH_RATE_LIMIT_IPV6_PREFIX` | IPv6 clients share a rate-limit budget per prefix of this length, default 64 |
    /// | `MCP_AUTH_UNUSED_CLIENT_TTL_SECONDS` | a registration that never completes a login expires after this, default 86400 |
    /// | `MCP_AUTH_MAX_UNUSED_CLIENTS` | most live never-used registrations (then `/register` answers 503), default 10000 |
    /// | `MCP_AUTH_CIMD` | `on` (default) or `off`: accept client ids that are metadata-document URLs |
    /// | `MCP_AUTH_CIMD_ALLOW_LOOPBACK` | development and tests only: also accept and fetch loopback client id URLs (`http` too) |
    /// | `MCP_AUTH_CIMD_EXTRA_CA_FILE` | development and tests only: PEM certificates the document fetcher also trusts |
    /// | `MCP_AUTH_SERVER_NAME` | this server's name on the consent page, default the MCP URL's host |
    /// | `MCP_AUTH_SERVER_ICON_FILE` | a .png/.jpg/.gif/.webp/.svg/.ico file (at most 256 KiB) shown beside the name |
    /// | `MCP_AUTH_ALLOWED_EMAIL_DOMAINS` | only users with a (not unverified) email of these domains log in, see [`allowed_email_domains`](Self::allowed_email_domains) |
    /// | `MCP_AUTH_ALLOWED_ORGANIZATIONS` | only users signed in to these WorkOS organizations (`org_…`) log in |
    /// | `MCP_AUTH_REQUIRED_ROLES` | only users with one of these roles log in |
    /// | `MCP_AUTH_REQUIRED_PERMISSIONS` | only users with all of these permissions log in |
    ///
    /// Lists are separated by commas and/or spaces.
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
        let shared = SharedSettings::from_env(&env, DEFAULT_HTTP_TIMEOUT);
        // The Connect application's credentials are reported first when missing.
        let mut b = Self::default()
            .client_id(env.required(CLIENT_ID.env)?)
            .client_secret(env.required(CLIENT_SECRET.env)?);
        b.shared = shared?;
        if let Some(path) = env.optional(REDIRECT_PATH.env) {
            b = b.redirect_path(path);
        }
        if let Some(patterns) = env.list(REDIRECT_PATTERNS.env) {
            b = b.allowed_client_redirect_uris(patterns);
        }
        if let Some(schemes) = env.list("WORKOS_ALLOWED_CLIENT_REDIRECT_SCHEMES") {
            b = b.allowed_client_redirect_schemes(schemes);
        }
        b.read_lifetimes(&env)?;
        b.read_caches(&env)?;
        b.read_rate_limits(&env)?;
        b.read_clients(&env)?;
        b.read_login_policy(&env);
        if let Some(name) = env.optional(SERVER_NAME.env) {
            b = b.server_name(name);
        }
        if let Some(path) = env.optional(SERVER_ICON_FILE.env) {
            b = b.server_icon_file(path);
        }
        Ok(b)
    }

    /// Token lifetimes, the refresh grace and the sweep interval.
    fn read_lifetimes(&mut self, env: &Env) -> Result<(), ConfigError> {
        if let Some(ttl) = env.seconds("MCP_AUTH_ACCESS_TOKEN_TTL_SECONDS")? {
            self.access_token_ttl = ttl;
        }
        if let Some(ttl) = env.seconds("MCP_AUTH_REFRESH_TOKEN_TTL_SECONDS")? {
            self.refresh_token_ttl = ttl;
        }
        // Zero is allowed here: strict one-time use.
        if let Some(grace) = env.parsed(
            REFRESH_GRACE.env,
            |secs: &u64| Duration::from_secs(*secs) <= MAX_REFRESH_GRACE,
            "expected a number of seconds from 0 to 300",
        )? {
            self.refresh_grace = Duration::from_secs(grace);
        }
        if let Some(interval) = env.seconds("MCP_AUTH_SWEEP_INTERVAL_SECONDS")? {
            self.sweep_interval = interval;
        }
        if let Some(duration) = env.seconds("MCP_AUTH_REMEMBER_CONSENT_SECONDS")? {
            self.remember_consent = duration;
        }
        Ok(())
    }

    /// TTLs and capacities of the in-process caches.
    fn read_caches(&mut self, env: &Env) -> Result<(), ConfigError> {
        if let Some(ttl) = env.seconds("MCP_AUTH_USERINFO_CACHE_SECONDS")? {
            self.userinfo_cache_ttl = ttl;
        }
        if let Some(ttl) = env.seconds("MCP_AUTH_TOKEN_CACHE_SECONDS")? {
            self.token_cache_ttl = ttl;
        }
        if let Some(capacity) = env.positive("MCP_AUTH_TOKEN_CACHE_CAPACITY")? {
            self.token_cache_capacity = capacity;
        }
        if let Some(capacity) = env.positive("MCP_AUTH_GRANT_CACHE_CAPACITY")? {
            self.grant_cache_capacity = capacity;
        }
        Ok(())
    }

    /// `MCP_AUTH_RATE_LIMITS`, the trusted proxies and the IPv6 prefix.
    fn read_rate_limits(&mut self, env: &Env) -> Result<(), ConfigError> {
        const RATE_LIMITS: &str = "MCP_AUTH_RATE_LIMITS";
        match env.optional(RATE_LIMITS).as_deref() {
            None | Some("on") => {}
            Some("off") => self.rate_limits = RateLimits::disabled(),
            Some(_) => return Err(ConfigError::invalid(RATE_LIMITS, "expected on or off")),
        }
        if let Some(proxies) = env.list("MCP_AUTH_TRUSTED_PROXIES") {
            let proxies = proxies
                .iter()
                .map(|p| p.parse())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    ConfigError::invalid("MCP_AUTH_TRUSTED_PROXIES", "expected IP addresses")
                })?;
            self.rate_limits = self.rate_limits.clone().trusted_proxies(proxies);
        }
        if let Some(prefix) = env.parsed(
            IPV6_PREFIX.env,
            valid_ipv6_prefix,
            "expected a prefix length from 1 to 128",
        )? {
            self.rate_limits = self.rate_limits.clone().ipv6_prefix(prefix);
        }
        Ok(())
    }

    /// Registration bounds and client id metadata documents.
    fn read_clients(&mut self, env: &Env) -> Result<(), ConfigError> {
        if let Some(ttl) = env.seconds("MCP_AUTH_UNUSED_CLIENT_TTL_SECONDS")? {
            self.unused_client_ttl = ttl;
        }
        if let Some(max) = env.positive(MAX_UNUSED_CLIENTS.env)? {
            self.max_unused_clients = max;
        }
        if let Some(on) = env.flag("MCP_AUTH_CIMD")? {
            self.cimd = on;
        }
        if let Some(on) = env.flag("MCP_AUTH_CIMD_ALLOW_LOOPBACK")? {
            self.cimd_allow_loopback = on;
        }
        if let Some(file) = env.optional(CIMD_EXTRA_CA_FILE.env) {
            self.cimd_extra_ca_file = Some(file.into());
        }
        Ok(())
    }

    /// The allow-lists of the login policy (validated when the provider is built).
    fn read_login_policy(&mut self, env: &Env) {
        let list = |setting: Setting| env.list(setting.env).unwrap_or_default();
        self.allowed_email_domains = list(EMAIL_DOMAINS);
        self.allowed_organizations = list(ORGANIZATIONS);
        self.required_roles = list(ROLES);
        self.required_permissions = list(PERMISSIONS);
    }

    /// The WorkOS Connect application's client id.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The WorkOS Connect application's client secret.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// The AuthKit domain (`tenant.authkit.app`, a custom domain, or a full URL).
    pub fn authkit_domain(mut self, domain: impl Into<String>) -> Self {
        self.shared.authkit_domain = Some(domain.into());
        self
    }

    /// Public URL of this server (scheme, host, optional port and path prefix); also the OAuth
    /// issuer MCP clients see.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.shared.base_url = Some(url.into());
        self
    }

    /// Path of the MCP endpoint below the base URL (default `/mcp`).
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        self.shared.mcp_path = path.into();
        self
    }

    /// Our callback path, registered as redirect URI of the WorkOS application (default
    /// `/auth/callback`).
    pub fn redirect_path(mut self, path: impl Into<String>) -> Self {
        self.redirect_path = path.into();
        self
    }

    /// Scopes every token carries and clients may request.
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Per-method and per-tool scopes (see [`ScopePolicy`](crate::ScopePolicy)): enforced by
    /// [`bearer`](super::WorkOsProvider::bearer) before the MCP service runs, accepted by
    /// `/authorize` and listed in both metadata documents, so a client refused with 403
    /// `insufficient_scope` can ask for them. From the environment: `MCP_AUTH_TOOL_SCOPES`.
    pub fn tool_scopes(mut self, policy: crate::ScopePolicy) -> Self {
        self.shared.tool_scopes = Some(policy);
        self
    }

    /// Timeout of each call to AuthKit (default 10 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.shared.http_timeout = timeout;
        self
    }

    /// Patterns client redirect URIs must match: absolute URIs where `*` may stand for the whole
    /// port (`http://127.0.0.1:*/cb`), the leftmost host label (`https://*.example.com/cb`) or
    /// the end of the path (`https://app.example.com/oauth/*`).
    pub fn allowed_client_redirect_uris<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_redirect_patterns = Some(patterns.into_iter().map(Into::into).collect());
        self
    }

    /// Private-use URI schemes clients may register (`cursor`, `vscode`...).
    pub fn allowed_client_redirect_schemes<I, S>(mut self, schemes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.private_schemes = schemes
            .into_iter()
            .map(|s| s.into().to_ascii_lowercase())
            .collect();
        self
    }

    /// Lifetime of the access tokens we issue (default 1 h).
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }

    /// Lifetime of the refresh tokens we issue (default 30 days).
    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_token_ttl = ttl;
        self
    }

    /// How long a rotated refresh token may be retried (default 10 s, at most 5 min; zero:
    /// strict one-time use). Within it every retry with the old token, concurrent or not, on any
    /// replica, gets the same new pair (kept sealed in the database until then), covering a
    /// lost answer or a client refreshing from two addresses at once. After it, or once the new
    /// refresh token was used, the old one is a replay: the whole grant is revoked and a WARN
    /// logged with the grant and client ids.
    pub fn refresh_grace(mut self, grace: Duration) -> Self {
        self.refresh_grace = grace;
        self
    }

    /// How long a successful upstream session check (userinfo) is trusted (default 30 s): the
    /// longest time a session ended at AuthKit keeps working here.
    pub fn userinfo_cache_ttl(mut self, ttl: Duration) -> Self {
        self.userinfo_cache_ttl = ttl;
        self
    }

    /// How long a verified access token is cached in-process (default 30 s): the longest time a
    /// token revoked on another replica keeps working on this one.
    pub fn token_cache_ttl(mut self, ttl: Duration) -> Self {
        self.token_cache_ttl = ttl;
        self
    }

    /// How often expired rows should be deleted from the database (default 5 min), read back
    /// with [`WorkOsProvider::sweep_interval`](crate::WorkOsProvider::sweep_interval). Building
    /// the provider starts no background task: the application starts the sweeper explicitly
    /// with [`Store::spawn_sweeper`](crate::store::Store::spawn_sweeper). `Duration::ZERO` says
    /// it is off (use [`Store::purge_expired`](crate::store::Store::purge_expired) from a cron
    /// job instead).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Most verified access tokens cached per process (default 100 000). A token costs a few
    /// hundred bytes: what belongs to its grant (user, claims, scopes, client) is kept once per
    /// grant, see [`grant_cache_capacity`](Self::grant_cache_capacity). A miss costs one
    /// database lookup.
    pub fn token_cache_capacity(mut self, capacity: u64) -> Self {
        self.token_cache_capacity = capacity;
        self
    }

    /// Most grants whose AuthKit session is cached per process (default 10 000: about 1-2 KB
    /// each with a typical profile). Set it to the number of sessions active within
    /// `userinfo_cache_ttl`: the tokens of a grant that falls out verify again (one database
    /// lookup and one userinfo call).
    pub fn grant_cache_capacity(mut self, capacity: u64) -> Self {
        self.grant_cache_capacity = capacity.max(1);
        self
    }

    /// Offers a "remember" box on the consent page: an approval is then reused, in the same
    /// browser and for the same client, scopes and resource, for `duration` (default: never
    /// offered, every login asks). Reuse needs a first-party navigation (`Sec-Fetch-Site` of
    /// `none`, `same-origin` or `same-site`), so a cross-site page cannot trigger it silently.
    pub fn remember_consent(mut self, duration: Duration) -> Self {
        self.remember_consent = duration;
        self
    }

    /// Per-client-IP limits of the OAuth endpoints (on by default; see [`RateLimits`]).
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// How long a registration that never completes a login lives (default 24 h). A login
    /// extends the registration to the life of its grant.
    pub fn unused_client_ttl(mut self, ttl: Duration) -> Self {
        self.unused_client_ttl = ttl;
        self
    }

    /// Most live registrations that never completed a login (default 10 000): beyond it
    /// `/register` answers 503 `temporarily_unavailable` with `Retry-After` until the oldest
    /// expire. Bounds what a registration flood can store, whatever addresses it comes from.
    pub fn max_unused_clients(mut self, max: u64) -> Self {
        self.max_unused_clients = max;
        self
    }

    /// This server's name on the consent and error pages (default: the MCP URL's host, e.g.
    /// `mcp.example.com`).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// An icon shown beside the server's name on the consent page: a `.png`, `.jpg`, `.gif`,
    /// `.webp`, `.svg` or `.ico` file of at most 256 KiB, read once when the provider is built
    /// and served by us (same origin) at `/branding/icon` under the base URL.
    pub fn server_icon_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.server_icon_file = Some(path.into());
        self
    }

    /// Whether users must approve each client on our consent page (default `true`). Turning it
    /// off re-opens the confused-deputy attack the page prevents; only for first-party setups.
    pub fn dangerously_skip_consent(mut self) -> Self {
        self.consent_required = false;
        self
    }

    /// Whether clients may use a client id metadata document URL as `client_id` (CIMD, the MCP
    /// spec's preferred registration; default on). Off: such ids are refused, only registered
    /// clients log in.
    pub fn client_id_metadata_documents(mut self, enabled: bool) -> Self {
        self.cimd = enabled;
        self
    }

    /// **Development and tests only.** Also accepts client id URLs on loopback (`localhost`,
    /// `127.0.0.1`, `[::1]`, over `https` or `http`, any port) and fetches them. Off by default;
    /// logged at WARN when the provider is built. Other private addresses stay refused.
    pub fn dangerously_allow_loopback_client_id_urls(mut self) -> Self {
        self.cimd_allow_loopback = true;
        self
    }

    /// **Development and tests only.** PEM file of certificates the metadata-document fetcher
    /// trusts in addition to the public roots (a test server's certificate).
    pub fn cimd_extra_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cimd_extra_ca_file = Some(path.into());
        self
    }

    /// Bound of one metadata-document fetch, connection included (default 5 s).
    pub fn cimd_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.cimd_timeout = timeout;
        self
    }

    /// The resolver of metadata-document hosts (default: the system's). Every address it
    /// returns is still checked before connecting.
    pub fn cimd_resolver(mut self, resolver: Arc<dyn HostResolver>) -> Self {
        self.cimd_resolver = Some(ResolverHandle(resolver));
        self
    }

    /// Only users whose email address is in one of these domains may log in (default: any).
    /// Exact match, case-insensitive, Unicode or punycode: `example.com` admits
    /// `alice@Example.com` but neither `bob@eng.example.com` (list subdomains too) nor
    /// `eve@example.com.evil.org`. The address must not be marked unverified by AuthKit
    /// (`email_verified: false`). From the environment: `MCP_AUTH_ALLOWED_EMAIL_DOMAINS`.
    ///
    /// Checked at the callback, for every login: a refused user gets no grant, the client gets
    /// `access_denied` saying why, and the audit log a `login_denied` entry. Grants made before
    /// a list changed stay until they end or are revoked.
    pub fn allowed_email_domains<I, S>(mut self, domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_email_domains = domains.into_iter().map(Into::into).collect();
        self
    }

    /// Only users who signed in to one of these WorkOS organizations (the `org_id` of AuthKit's
    /// access token, e.g. `org_01H...`) may log in (default: any, with or without an
    /// organization). From the environment: `MCP_AUTH_ALLOWED_ORGANIZATIONS`.
    pub fn allowed_organizations<I, S>(mut self, organizations: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_organizations = organizations.into_iter().map(Into::into).collect();
        self
    }

    /// Only users with at least **one** of these roles in their organization (AuthKit's
    /// `role` and `roles` claims) may log in (default: any). From the environment:
    /// `MCP_AUTH_REQUIRED_ROLES`.
    pub fn required_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Only users with **all** of these permissions (AuthKit's `permissions` claim) may log in
    /// (default: none required). From the environment: `MCP_AUTH_REQUIRED_PERMISSIONS`.
    pub fn required_permissions<I, S>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_permissions = permissions.into_iter().map(Into::into).collect();
        self
    }

    /// The application's own say on who may log in, asked at the callback after the
    /// allow-lists admitted the user: `Ok(())` admits, `Err(`[`Denial::new`]`)` refuses with a
    /// reason the person reads, `Err(`[`Denial::failed`]`)` says the check could not be made.
    /// The hook gets its own copy of the [`UpstreamIdentity`] (so its future may keep it) and
    /// runs on the actix worker serving the callback (its future need not be `Send`).
    ///
    /// Fails closed: an error, a panic or no answer within
    /// [`login_hook_timeout`](Self::login_hook_timeout) refuses the login with a generic
    /// "try again" reason and a WARN log.
    ///
    /// ```
    /// use actix_mcp_auth::{Denial, WorkOsProvider};
    ///
    /// let builder = WorkOsProvider::builder().login_hook(|user| async move {
    ///     match user.email.as_deref() {
    ///         Some(email) if email.ends_with("@example.com") => Ok(()),
    ///         _ => Err(Denial::new("not_staff", "Only Example staff may use this server.")),
    ///     }
    /// });
    /// # let _ = builder;
    /// ```
    pub fn login_hook<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(UpstreamIdentity) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Denial>> + 'static,
    {
        self.login_hook = Some(LoginHook::new(hook));
        self
    }

    /// How long the [`login_hook`](Self::login_hook) may take before the login is refused
    /// (default 5 s).
    pub fn login_hook_timeout(mut self, timeout: Duration) -> Self {
        self.login_hook_timeout = timeout;
        self
    }

    /// The login policy: every list entry validated, or an error naming the setting and entry.
    fn login_settings(&self) -> Result<LoginSettings, ConfigError> {
        let parse = |setting: Setting, list: &[String], parse: fn(&str) -> Result<String, &str>| {
            let mut parsed: Vec<String> = Vec::new();
            for entry in list {
                let value = parse(entry).map_err(|reason| {
                    ConfigError::invalid(self.name(setting), format!("`{entry}` {reason}"))
                })?;
                if !parsed.contains(&value) {
                    parsed.push(value);
                }
            }
            Ok::<_, ConfigError>(parsed)
        };
        if self.login_hook_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "login_hook_timeout",
                "must be positive",
            ));
        }
        Ok(LoginSettings {
            policy: LoginPolicy {
                email_domains: parse(EMAIL_DOMAINS, &self.allowed_email_domains, parse_domain)?,
                organizations: parse(
                    ORGANIZATIONS,
                    &self.allowed_organizations,
                    parse_organization,
                )?,
                roles: parse(ROLES, &self.required_roles, parse_name)?,
                permissions: parse(PERMISSIONS, &self.required_permissions, parse_name)?,
            },
            hook: self.login_hook.clone(),
            hook_timeout: self.login_hook_timeout,
        })
    }

    /// The client redirect URI patterns, parsed.
    fn redirect_patterns(&self) -> Result<Option<Vec<RedirectPattern>>, ConfigError> {
        let name = self.name(REDIRECT_PATTERNS);
        self.allowed_redirect_patterns
            .as_ref()
            .map(|list| {
                list.iter()
                    .map(|p| {
                        RedirectPattern::parse(p).ok_or_else(|| {
                            ConfigError::invalid(name, format!("`{p}` is not a valid pattern"))
                        })
                    })
                    .collect()
            })
            .transpose()
    }

    /// The metadata-document fetcher's settings (TLS roots included).
    fn cimd_settings(&self) -> Result<CimdSettings, ConfigError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &self.cimd_extra_ca_file {
            let name = self.name(CIMD_EXTRA_CA_FILE);
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::invalid(name, format!("cannot read {}: {e}", path.display()))
            })?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert =
                    cert.map_err(|_| ConfigError::invalid(name, "not a PEM certificate file"))?;
                roots.add(cert).map_err(|e| {
                    ConfigError::invalid(name, format!("unusable certificate: {e}"))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(ConfigError::invalid(name, "no certificate in the file"));
            }
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            crate::backend::rustls_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("the crypto provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(CimdSettings {
            enabled: self.cimd,
            allow_loopback: self.cimd_allow_loopback,
            timeout: self.cimd_timeout,
            tls: Arc::new(tls),
            resolver: self.cimd_resolver.as_ref().map_or_else(
                || Arc::new(SystemResolver) as Arc<dyn HostResolver>,
                |r| r.0.clone(),
            ),
        })
    }

    /// The name of `setting` in error messages: the variable or the builder method.
    fn name(&self, setting: Setting) -> &'static str {
        self.shared.name(setting)
    }

    pub(crate) fn settings(self) -> Result<ProxySettings, ConfigError> {
        let missing = |setting| ConfigError::Missing(self.name(setting).to_owned());
        let client_id = self.client_id.clone().ok_or_else(|| missing(CLIENT_ID))?;
        let client_secret = self
            .client_secret
            .clone()
            .ok_or_else(|| missing(CLIENT_SECRET))?;
        let urls = self.shared.resolve()?;
        if self.refresh_grace > MAX_REFRESH_GRACE {
            return Err(ConfigError::invalid(
                self.name(REFRESH_GRACE),
                "must be at most 300 seconds",
            ));
        }
        let redirect_name = self.name(REDIRECT_PATH);
        let redirect_path = normalize_mcp_path(redirect_name, &self.redirect_path)?;
        if redirect_path.is_empty() {
            return Err(ConfigError::invalid(redirect_name, "must not be empty"));
        }
        let resource = Url::parse(&urls.resource_url).map_err(|e| {
            ConfigError::invalid(self.name(crate::settings::MCP_PATH), e.to_string())
        })?;
        let patterns = self.redirect_patterns()?;
        if !valid_ipv6_prefix(&self.rate_limits.ipv6_prefix) {
            return Err(ConfigError::invalid(
                self.name(IPV6_PREFIX),
                "expected a prefix length from 1 to 128",
            ));
        }
        if self.unused_client_ttl.is_zero() || self.max_unused_clients == 0 {
            return Err(ConfigError::invalid(
                self.name(MAX_UNUSED_CLIENTS),
                "the unused-client TTL and ceiling must be positive",
            ));
        }
        let mut upstream_scopes: Vec<String> = ["openid", "profile", "email", "offline_access"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for scope in &self.shared.required_scopes {
            if !upstream_scopes.contains(scope) {
                upstream_scopes.push(scope.clone());
            }
        }
        let cimd = self.cimd_settings()?;
        let login = self.login_settings()?;
        let name_setting = self.name(SERVER_NAME);
        let server_name = match self.server_name.as_deref().map(str::trim) {
            None => default_server_name(&resource),
            Some("") => return Err(ConfigError::invalid(name_setting, "must not be blank")),
            Some(name) if name.chars().count() > 80 => {
                return Err(ConfigError::invalid(
                    name_setting,
                    "must be at most 80 characters",
                ));
            }
            Some(name) => name.to_owned(),
        };
        let icon = self
            .server_icon_file
            .as_deref()
            .map(|path| load_icon(self.name(SERVER_ICON_FILE), path))
            .transpose()?;
        Ok(ProxySettings {
            cimd,
            client_id,
            client_secret: client_secret.into(),
            authkit: urls.authkit,
            issuer: urls.issuer,
            resource_metadata_url: urls.resource_metadata_url,
            resource_metadata_path: urls.resource_metadata_path,
            mount_path: urls.mount_path,
            base_url: urls.base_url,
            base_path: urls.base_path,
            resource_url: urls.resource_url,
            resource,
            redirect_path,
            required_scopes: self.shared.required_scopes,
            tool_scopes: self.shared.tool_scopes,
            upstream_scopes,
            timeout: self.shared.http_timeout,
            redirect_policy: RedirectUriPolicy {
                patterns,
                private_schemes: self.private_schemes,
            },
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            refresh_grace: self.refresh_grace,
            userinfo_cache_ttl: self.userinfo_cache_ttl,
            token_cache_ttl: self.token_cache_ttl,
            token_cache_capacity: self.token_cache_capacity,
            grant_cache_capacity: self.grant_cache_capacity,
            consent_required: self.consent_required,
            remember_consent: self.remember_consent,
            sweep_interval: self.sweep_interval,
            rate_limits: self.rate_limits,
            unused_client_ttl: self.unused_client_ttl,
            max_unused_clients: self.max_unused_clients,
            branding: Branding {
                name: server_name,
                icon,
            },
            login,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        [
            ("WORKOS_CLIENT_ID", "client_123"),
            ("WORKOS_CLIENT_SECRET", "sk_test"),
            ("WORKOS_AUTHKIT_DOMAIN", "tenant.authkit.app"),
            ("MCP_BASE_URL", "https://mcp.example.com/"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_from_env() {
        let s = WorkOsProviderBuilder::from_vars(env(&[]))
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.issuer, "https://mcp.example.com");
        assert_eq!(s.resource_url, "https://mcp.example.com/mcp");
        assert_eq!(s.authkit, "https://tenant.authkit.app");
        assert_eq!(s.redirect_path, "/auth/callback");
        assert!(s.upstream_scopes.contains(&"offline_access".to_owned()));
        assert!(s.consent_required);
        assert_eq!(s.rate_limits.ipv6_prefix, 64);
        assert_eq!(s.unused_client_ttl, Duration::from_secs(86_400));
        assert_eq!(s.max_unused_clients, 10_000);
        let s = WorkOsProviderBuilder::from_vars(env(&[
            ("MCP_AUTH_RATE_LIMIT_IPV6_PREFIX", "56"),
            ("MCP_AUTH_UNUSED_CLIENT_TTL_SECONDS", "3600"),
            ("MCP_AUTH_MAX_UNUSED_CLIENTS", "50"),
        ]))
        .unwrap()
        .settings()
        .unwrap();
        assert_eq!(s.rate_limits.ipv6_prefix, 56);
        assert_eq!(s.unused_client_ttl, Duration::from_secs(3600));
        assert_eq!(s.max_unused_clients, 50);
        assert!(
            !format!("{s:?}").contains("sk_test"),
            "the secret never prints"
        );
    }

    #[test]
    fn cimd_variables() {
        let s = WorkOsProviderBuilder::from_vars(env(&[]))
            .unwrap()
            .settings()
            .unwrap();
        assert!(s.cimd.enabled && !s.cimd.allow_loopback, "on, loopback off");
        let s = WorkOsProviderBuilder::from_vars(env(&[
            ("MCP_AUTH_CIMD", "off"),
            ("MCP_AUTH_CIMD_ALLOW_LOOPBACK", "1"),
        ]))
        .unwrap()
        .settings()
        .unwrap();
        assert!(!s.cimd.enabled && s.cimd.allow_loopback);
        let err = WorkOsProviderBuilder::from_vars(env(&[("MCP_AUTH_CIMD", "maybe")]))
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("MCP_AUTH_CIMD"), "{err}");
        for content in [None, Some("not a certificate")] {
            let path = std::env::temp_dir().join(format!("cimd_ca_{}.pem", rand::random::<u64>()));
            if let Some(text) = content {
                std::fs::write(&path, text).unwrap();
            }
            let err = WorkOsProviderBuilder::from_vars(env(&[(
                "MCP_AUTH_CIMD_EXTRA_CA_FILE",
                path.to_str().unwrap(),
            )]))
            .unwrap()
            .settings()
            .unwrap_err();
            let _ = std::fs::remove_file(&path);
            assert!(
                err.to_string().starts_with("MCP_AUTH_CIMD_EXTRA_CA_FILE"),
                "{err}"
            );
        }
    }

    #[test]
    fn refresh_grace_defaults_to_ten_seconds_and_is_bounded() {
        let grace = |extra: &[(&str, &str)]| {
            WorkOsProviderBuilder::from_vars(env(extra))
                .and_then(WorkOsProviderBuilder::settings)
                .map(|s| s.refresh_grace)
        };
        assert_eq!(grace(&[]).unwrap(), Duration::from_secs(10));
        let set = |v| grace(&[("MCP_AUTH_REFRESH_GRACE_SECONDS", v)]);
        assert_eq!(set("30").unwrap(), Duration::from_secs(30));
        assert_eq!(set("0").unwrap(), Duration::ZERO, "0 turns the grace off");
        for bad in ["301", "-1", "ten"] {
            let err = set(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("MCP_AUTH_REFRESH_GRACE_SECONDS"),
                "{bad}: {err}"
            );
        }
        let err = WorkOsProviderBuilder::from_vars(env(&[]))
            .unwrap()
            .refresh_grace(Duration::from_secs(3600))
            .settings()
            .unwrap_err();
        assert!(err.to_string().contains("300"), "{err}");
    }

    #[test]
    fn a_base_url_path_prefixes_issuer_routes_and_resource() {
        let s =
            WorkOsProviderBuilder::from_vars(env(&[("MCP_BASE_URL", "https://h.example/api/")]))
                .unwrap()
                .settings()
                .unwrap();
        assert_eq!(s.issuer, "https://h.example/api");
        assert_eq!(s.route("/token"), "/api/token");
        assert_eq!(s.endpoint("/token"), "https://h.example/api/token");
        assert_eq!(s.resource_url, "https://h.example/api/mcp");
    }

    #[test]
    fn branding_defaults_to_the_resource_host_and_names_its_variables() {
        let s = WorkOsProviderBuilder::from_vars(env(&[]))
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.branding.name, "mcp.example.com");
        assert!(s.branding.icon.is_none());
        let s = WorkOsProviderBuilder::from_vars(env(&[("MCP_AUTH_SERVER_NAME", " Acme Docs ")]))
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.branding.name, "Acme Docs");
        let err = WorkOsProviderBuilder::from_vars(env(&[(
            "MCP_AUTH_SERVER_ICON_FILE",
            "/nonexistent/icon.png",
        )]))
        .unwrap()
        .settings()
        .unwrap_err();
        assert!(
            err.to_string().starts_with("MCP_AUTH_SERVER_ICON_FILE"),
            "{err}"
        );
        let err = WorkOsProviderBuilder::from_vars(env(&[]))
            .unwrap()
            .server_name("x".repeat(81))
            .settings()
            .unwrap_err();
        assert!(err.to_string().starts_with("MCP_AUTH_SERVER_NAME"), "{err}");
        let err = WorkOsProviderBuilder::default()
            .client_id("c")
            .client_secret("s")
            .authkit_domain("tenant.authkit.app")
            .base_url("https://mcp.example.com")
            .server_name("   ")
            .settings()
            .unwrap_err();
        assert!(err.to_string().starts_with("server_name"), "{err}");
    }

    #[test]
    fn every_proxy_variable_names_itself_in_its_error() {
        let long_name = "n".repeat(81);
        let cases: &[(&str, &str)] = &[
            ("WORKOS_REDIRECT_PATH", "/a/../b"),
            ("WORKOS_REDIRECT_PATH", "/cb?x=1"),
            (
                "WORKOS_ALLOWED_CLIENT_REDIRECT_URIS",
                "https://a*b.example/cb",
            ),
            ("MCP_AUTH_ACCESS_TOKEN_TTL_SECONDS", "0"),
            ("MCP_AUTH_REFRESH_TOKEN_TTL_SECONDS", "1h"),
            ("MCP_AUTH_REFRESH_GRACE_SECONDS", "301"),
            ("MCP_AUTH_USERINFO_CACHE_SECONDS", "-5"),
            ("MCP_AUTH_TOKEN_CACHE_SECONDS", "0"),
            ("MCP_AUTH_SWEEP_INTERVAL_SECONDS", "often"),
            ("MCP_AUTH_REMEMBER_CONSENT_SECONDS", "0"),
            ("MCP_AUTH_TOKEN_CACHE_CAPACITY", "0"),
            ("MCP_AUTH_GRANT_CACHE_CAPACITY", "many"),
            ("MCP_AUTH_RATE_LIMITS", "sometimes"),
            ("MCP_AUTH_TRUSTED_PROXIES", "10.0.0.1, proxy.example"),
            ("MCP_AUTH_RATE_LIMIT_IPV6_PREFIX", "129"),
            ("MCP_AUTH_UNUSED_CLIENT_TTL_SECONDS", "0"),
            ("MCP_AUTH_MAX_UNUSED_CLIENTS", "0"),
            ("MCP_AUTH_CIMD", "maybe"),
            ("MCP_AUTH_CIMD_ALLOW_LOOPBACK", "2"),
            ("MCP_AUTH_CIMD_EXTRA_CA_FILE", "/nonexistent/ca.pem"),
            ("MCP_AUTH_SERVER_NAME", &long_name),
            ("MCP_AUTH_SERVER_ICON_FILE", "/nonexistent/icon.png"),
            ("WORKOS_AUTHKIT_DOMAIN", "ftp://tenant.authkit.app"),
            ("MCP_BASE_URL", "https://h.example/#top"),
            ("MCP_PATH", "/m cp"),
            ("WORKOS_TIMEOUT_SECONDS", "0"),
        ];
        for (var, value) in cases {
            let err = WorkOsProviderBuilder::from_vars(env(&[(var, value)]))
                .and_then(WorkOsProviderBuilder::settings)
                .err()
                .unwrap_or_else(|| panic!("{var}={value} accepted"));
            assert!(
                err.to_string().starts_with(&format!("{var} is invalid")),
                "{var}={value}: {err}"
            );
        }
        for var in [
            "WORKOS_CLIENT_ID",
            "WORKOS_CLIENT_SECRET",
            "WORKOS_AUTHKIT_DOMAIN",
            "MCP_BASE_URL",
        ] {
            let mut vars = env(&[]);
            vars.insert(var.to_owned(), "  ".to_owned());
            let err = WorkOsProviderBuilder::from_vars(vars).err().unwrap();
            assert_eq!(err.to_string(), format!("{var} is not set"));
        }
    }

    #[test]
    fn every_proxy_variable_is_read() {
        let s = WorkOsProviderBuilder::from_vars(env(&[
            ("WORKOS_TIMEOUT_SECONDS", "4"),
            ("WORKOS_REQUIRED_SCOPES", "openid docs:read"),
            ("WORKOS_ALLOWED_CLIENT_REDIRECT_SCHEMES", "Cursor"),
            ("MCP_AUTH_ACCESS_TOKEN_TTL_SECONDS", "60"),
            ("MCP_AUTH_REFRESH_TOKEN_TTL_SECONDS", "120"),
            ("MCP_AUTH_USERINFO_CACHE_SECONDS", "7"),
            ("MCP_AUTH_TOKEN_CACHE_SECONDS", "8"),
            ("MCP_AUTH_SWEEP_INTERVAL_SECONDS", "9"),
            ("MCP_AUTH_REMEMBER_CONSENT_SECONDS", "600"),
            ("MCP_AUTH_TOKEN_CACHE_CAPACITY", "11"),
            ("MCP_AUTH_GRANT_CACHE_CAPACITY", "12"),
            ("MCP_AUTH_RATE_LIMITS", "off"),
        ]))
        .and_then(WorkOsProviderBuilder::settings)
        .unwrap();
        assert_eq!(s.timeout, Duration::from_secs(4));
        assert_eq!(s.required_scopes, vec!["openid", "docs:read"]);
        assert!(s.upstream_scopes.contains(&"docs:read".to_owned()));
        assert_eq!(s.redirect_policy.private_schemes, vec!["cursor"]);
        assert_eq!(s.access_token_ttl, Duration::from_secs(60));
        assert_eq!(s.refresh_token_ttl, Duration::from_secs(120));
        assert_eq!(s.userinfo_cache_ttl, Duration::from_secs(7));
        assert_eq!(s.token_cache_ttl, Duration::from_secs(8));
        assert_eq!(s.sweep_interval, Duration::from_secs(9));
        assert_eq!(s.remember_consent, Duration::from_secs(600));
        assert_eq!(s.token_cache_capacity, 11);
        assert_eq!(s.grant_cache_capacity, 12);
        assert_eq!(
            format!("{:?}", s.rate_limits),
            format!("{:?}", RateLimits::disabled())
        );
    }

    #[test]
    fn login_policy_variables_are_read_and_name_themselves_and_the_entry() {
        let s = WorkOsProviderBuilder::from_vars(env(&[]))
            .and_then(WorkOsProviderBuilder::settings)
            .unwrap();
        assert!(s.login.policy.is_open() && s.login.hook.is_none());
        assert_eq!(s.login.hook_timeout, Duration::from_secs(5));
        let s = WorkOsProviderBuilder::from_vars(env(&[
            (
                "MCP_AUTH_ALLOWED_EMAIL_DOMAINS",
                "Example.com, bücher.example example.com",
            ),
            ("MCP_AUTH_ALLOWED_ORGANIZATIONS", "org_01A,org_01B"),
            ("MCP_AUTH_REQUIRED_ROLES", "admin editor"),
            ("MCP_AUTH_REQUIRED_PERMISSIONS", "docs:read"),
        ]))
        .and_then(WorkOsProviderBuilder::settings)
        .unwrap();
        let policy = &s.login.policy;
        assert_eq!(
            policy.email_domains,
            ["example.com", "xn--bcher-kva.example"]
        );
        assert_eq!(policy.organizations, ["org_01A", "org_01B"]);
        assert_eq!(policy.roles, ["admin", "editor"]);
        assert_eq!(policy.permissions, ["docs:read"]);

        // Each variable's errors name it and the entry: tests/integration/proxy_login_policy.rs.
        let err = WorkOsProviderBuilder::from_vars(env(&[]))
            .unwrap()
            .allowed_email_domains(["https://example.com"])
            .settings()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("MCP_AUTH_ALLOWED_EMAIL_DOMAINS is invalid"),
            "from the environment, errors name the variable: {err}"
        );
        let builder = || {
            WorkOsProviderBuilder::default()
                .client_id("c")
                .client_secret("s")
                .authkit_domain("tenant.authkit.app")
                .base_url("https://mcp.example.com")
        };
        let err = builder()
            .allowed_organizations(["org 1"])
            .settings()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("allowed_organizations is invalid: `org 1`"),
            "{err}"
        );
        let err = builder()
            .login_hook_timeout(Duration::ZERO)
            .settings()
            .unwrap_err();
        assert!(err.to_string().starts_with("login_hook_timeout"), "{err}");
        let s = builder()
            .required_roles(["admin"])
            .required_permissions(["a", "b"])
            .login_hook(|_| async { Ok(()) })
            .login_hook_timeout(Duration::from_secs(1))
            .settings()
            .unwrap();
        assert!(s.login.hook.is_some());
        assert_eq!(s.login.hook_timeout, Duration::from_secs(1));
        assert_eq!(s.login.policy.permissions, ["a", "b"]);
    }

    #[test]
    fn errors_name_the_variable() {
        let mut vars = env(&[]);
        vars.remove("WORKOS_CLIENT_SECRET");
        assert_eq!(
            WorkOsProviderBuilder::from_vars(vars)
                .err()
                .unwrap()
                .to_string(),
            "WORKOS_CLIENT_SECRET is not set"
        );
        for (var, value) in [
            ("WORKOS_TIMEOUT_SECONDS", "x"),
            ("MCP_AUTH_ACCESS_TOKEN_TTL_SECONDS", "0"),
        ] {
            let err = WorkOsProviderBuilder::from_vars(env(&[(var, value)]))
                .err()
                .unwrap();
            assert!(err.to_string().starts_with(var), "{err}");
        }
        let err = WorkOsProviderBuilder::from_vars(env(&[(
            "WORKOS_ALLOWED_CLIENT_REDIRECT_URIS",
            "https://a*b.example/cb",
        )]))
        .unwrap()
        .settings()
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("WORKOS_ALLOWED_CLIENT_REDIRECT_URIS"),
            "{err}"
        );
        for (var, value) in [
            ("MCP_AUTH_RATE_LIMIT_IPV6_PREFIX", "0"),
            ("MCP_AUTH_RATE_LIMIT_IPV6_PREFIX", "129"),
            ("MCP_AUTH_RATE_LIMIT_IPV6_PREFIX", "/64"),
            ("MCP_AUTH_UNUSED_CLIENT_TTL_SECONDS", "0"),
            ("MCP_AUTH_MAX_UNUSED_CLIENTS", "-1"),
        ] {
            let err = WorkOsProviderBuilder::from_vars(env(&[(var, value)]))
                .err()
                .unwrap_or_else(|| panic!("{var}={value} accepted"));
            assert!(err.to_string().starts_with(var), "{err}");
        }
        let err =
            WorkOsProviderBuilder::from_vars(env(&[("MCP_BASE_URL", "http://h.example/api")]))
                .unwrap()
                .settings()
                .unwrap_err();
        assert!(err.to_string().starts_with("MCP_BASE_URL"), "{err}");
    }
}
