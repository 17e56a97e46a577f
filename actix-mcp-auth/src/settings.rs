//! One settings type for both providers: the environment reader, the settings AuthKit mode and
//! proxy mode share, and the validation of public URLs.
//!
//! * [`Env`] reads a list of variables (the process environment in production, a literal list
//!   in tests: `set_var` is `unsafe` in edition 2024) and parses each value with an error that
//!   names its variable.
//! * [`SharedSettings`] holds what both providers read the same way (`WORKOS_AUTHKIT_DOMAIN`,
//!   `MCP_BASE_URL`, `MCP_PATH`, `WORKOS_REQUIRED_SCOPES`, `WORKOS_TIMEOUT_SECONDS`); both
//!   builders delegate their setters for these to it, and [`SharedSettings::resolve`] turns it
//!   into the [`PublicUrls`] both modes derive from it.
//! * Errors name the environment variable when the value came from the environment, the builder
//!   method otherwise ([`Source`]).
//!
//! Public URLs (the MCP resource, metadata locations, issuer) come from configuration only,
//! never from `Host` or `X-Forwarded-*` headers, so a client cannot make us advertise a URL of
//! its choosing (RFC 9700 §4.13).

use std::{collections::BTreeMap, str::FromStr, time::Duration};

use url::Url;

use crate::{
    ScopePolicy, error::ConfigError, metadata::protected_resource_path, oauth::scope::parse_list,
};

/// A setting as the operator knows it: its environment variable and its builder method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The environment variable.
    pub env: &'static str,
    /// The builder method.
    pub method: &'static str,
}

/// Builds a [`Setting`].
pub(crate) const fn setting(env: &'static str, method: &'static str) -> Setting {
    Setting { env, method }
}

pub(crate) const AUTHKIT_DOMAIN: Setting = setting("WORKOS_AUTHKIT_DOMAIN", "authkit_domain");
pub(crate) const BASE_URL: Setting = setting("MCP_BASE_URL", "base_url");
pub(crate) const MCP_PATH: Setting = setting("MCP_PATH", "mcp_path");
/// The per-tool scope policy of both modes (see [`ScopePolicy`]).
pub(crate) const TOOL_SCOPES_VAR: &str = "MCP_AUTH_TOOL_SCOPES";
pub(crate) const REQUIRED_SCOPES: Setting = setting("WORKOS_REQUIRED_SCOPES", "required_scopes");
pub(crate) const HTTP_TIMEOUT: Setting = setting("WORKOS_TIMEOUT_SECONDS", "http_timeout");

/// Where the settings came from: decides which name an error uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Source {
    /// The environment (`from_env`, `from_vars`): errors name the variable.
    Env,
    /// Builder methods: errors name the method.
    #[default]
    Builder,
}

impl Source {
    /// The name of `setting` for an error message.
    pub(crate) fn name(self, setting: Setting) -> &'static str {
        match self {
            Self::Env => setting.env,
            Self::Builder => setting.method,
        }
    }
}

/// A list of environment variables, read by name. Names match case-insensitively (as they did
/// when `envy` read them); a blank value counts as unset.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Collects `vars` (later duplicates win).
    pub(crate) fn from_iter<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into().to_ascii_uppercase(), v.into()))
            .collect();
        Self { vars }
    }

    /// The value as given, blank or not.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The trimmed value, `None` when unset or blank.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        non_blank(self.raw(name).map(str::to_owned))
    }

    /// A variable that must be set and not blank.
    pub(crate) fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::Missing(name.to_owned()))
    }

    /// A value parsed as `T` and accepted by `valid`; `reason` tells the operator what is
    /// expected.
    pub(crate) fn parsed<T: FromStr>(
        &self,
        name: &str,
        valid: impl Fn(&T) -> bool,
        reason: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.optional(name)
            .map(|v| {
                v.parse::<T>()
                    .ok()
                    .filter(|parsed| valid(parsed))
                    .ok_or_else(|| ConfigError::invalid(name, reason))
            })
            .transpose()
    }

    /// A positive whole number.
    pub(crate) fn positive(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        self.parsed(name, |n: &u64| *n > 0, "expected a positive number")
    }

    /// A positive whole number of seconds.
    pub(crate) fn seconds(&self, name: &str) -> Result<Option<Duration>, ConfigError> {
        Ok(self
            .parsed(
                name,
                |n: &u64| *n > 0,
                "expected a positive number of seconds",
            )?
            .map(Duration::from_secs))
    }

    /// `1`/`true`/`on`/`yes` or `0`/`false`/`off`/`no`.
    pub(crate) fn flag(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self
            .optional(name)
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None => Ok(None),
            Some("1" | "true" | "on" | "yes") => Ok(Some(true)),
            Some("0" | "false" | "off" | "no") => Ok(Some(false)),
            Some(_) => Err(ConfigError::invalid(name, "expected on or off")),
        }
    }

    /// A list of words separated by spaces and/or commas (duplicates dropped).
    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        self.optional(name).map(|v| parse_list(&v))
    }
}

/// The settings both providers share, as given (validated by [`resolve`](Self::resolve)).
#[derive(Debug, Clone)]
pub(crate) struct SharedSettings {
    /// Which names errors use.
    pub source: Source,
    pub authkit_domain: Option<String>,
    pub base_url: Option<String>,
    pub mcp_path: String,
    pub required_scopes: Vec<String>,
    /// Timeout of each call to AuthKit.
    pub http_timeout: Duration,
    /// Per-method and per-tool scopes enforced by the bearer check (`MCP_AUTH_TOOL_SCOPES`).
    pub tool_scopes: Option<ScopePolicy>,
}

impl SharedSettings {
    /// Defaults of a builder: MCP endpoint at `/mcp`, no required scopes, `http_timeout`.
    pub(crate) fn new(http_timeout: Duration) -> Self {
        Self {
            source: Source::Builder,
            authkit_domain: None,
            base_url: None,
            mcp_path: "/mcp".to_owned(),
            required_scopes: Vec::new(),
            http_timeout,
            tool_scopes: None,
        }
    }

    /// Reads the five shared variables from `env`; `http_timeout` is the mode's default.
    pub(crate) fn from_env(env: &Env, http_timeout: Duration) -> Result<Self, ConfigError> {
        let mut shared = Self::new(http_timeout);
        shared.source = Source::Env;
        shared.authkit_domain = Some(env.required(AUTHKIT_DOMAIN.env)?);
        shared.base_url = Some(env.required(BASE_URL.env)?);
        // A blank MCP_PATH is the base URL itself, not "unset".
        if let Some(path) = env.raw(MCP_PATH.env) {
            shared.mcp_path = path.to_owned();
        }
        if let Some(scopes) = env.list(REQUIRED_SCOPES.env) {
            shared.required_scopes = scopes;
        }
        if let Some(timeout) = env.seconds(HTTP_TIMEOUT.env)? {
            shared.http_timeout = timeout;
        }
        if let Some(policy) = env.optional(TOOL_SCOPES_VAR) {
            shared.tool_scopes = Some(ScopePolicy::parse(TOOL_SCOPES_VAR, &policy)?);
        }
        Ok(shared)
    }

    /// Scopes the server deals in: the required ones, then those the per-tool policy names.
    pub(crate) fn all_scopes(&self, base: &[String]) -> Vec<String> {
        let mut scopes = base.to_vec();
        if let Some(policy) = &self.tool_scopes {
            policy.add_scopes_to(&mut scopes);
        }
        scopes
    }

    /// The name of `setting` in an error message.
    pub(crate) fn name(&self, setting: Setting) -> &'static str {
        self.source.name(setting)
    }

    /// Validates the domain, base URL and MCP path and derives the public URLs.
    pub(crate) fn resolve(&self) -> Result<PublicUrls, ConfigError> {
        let missing = |setting| ConfigError::Missing(self.name(setting).to_owned());
        let domain_name = self.name(AUTHKIT_DOMAIN);
        let domain = self
            .authkit_domain
            .as_deref()
            .ok_or_else(|| missing(AUTHKIT_DOMAIN))?;
        let authkit_url = normalize_public_url(domain_name, domain, true)?;
        if !matches!(authkit_url.path(), "" | "/") {
            return Err(ConfigError::invalid(domain_name, "must not have a path"));
        }
        let base_name = self.name(BASE_URL);
        let base = self.base_url.as_deref().ok_or_else(|| missing(BASE_URL))?;
        let base_url = normalize_public_url(base_name, base, false)?;
        let mcp_path = normalize_mcp_path(self.name(MCP_PATH), &self.mcp_path)?;
        let issuer = url_without_trailing_slash(&base_url);
        let base_path = base_url.path().trim_end_matches('/').to_owned();
        let mount_path = format!("{base_path}{mcp_path}");
        // RFC 9728 §3.1: the well-known segment goes between the origin and the resource path.
        let resource_metadata_path = protected_resource_path(&mount_path);
        let origin = base_url.origin().ascii_serialization();
        Ok(PublicUrls {
            authkit: url_without_trailing_slash(&authkit_url),
            resource_url: format!("{issuer}{mcp_path}"),
            resource_metadata_url: format!("{origin}{resource_metadata_path}"),
            resource_metadata_path,
            issuer,
            base_url,
            base_path,
            mcp_path,
            mount_path,
        })
    }
}

/// The URLs both modes derive from the shared settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicUrls {
    /// AuthKit's issuer, without trailing slash.
    pub authkit: String,
    /// The public base URL of this server.
    pub base_url: Url,
    /// The base URL without trailing slash (our issuer in proxy mode).
    pub issuer: String,
    /// Path of the base URL (`""` at the host root): prefix of every route we serve.
    pub base_path: String,
    /// The MCP endpoint's path below the base URL (`""` for the base URL itself).
    pub mcp_path: String,
    /// Local path of the MCP endpoint: base path followed by MCP path.
    pub mount_path: String,
    /// Canonical URL of the MCP endpoint: the resource tokens are bound to.
    pub resource_url: String,
    /// Local path of the protected-resource metadata.
    pub resource_metadata_path: String,
    /// Absolute URL of the protected-resource metadata, as announced in challenges.
    pub resource_metadata_url: String,
}

/// `value` unless it is blank (an empty variable counts as unset).
pub(crate) fn non_blank(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Whether `url` may use plain `http`: only loopback hosts (tests, local development).
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses an absolute `https` URL (or `http` on loopback) without query or fragment, and
/// returns it without a trailing slash. `default_https` prefixes `https://` when the value has
/// no scheme (so `tenant.authkit.app` works).
pub(crate) fn normalize_public_url(
    setting: &str,
    value: &str,
    default_https: bool,
) -> Result<Url, ConfigError> {
    let value = value.trim();
    let with_scheme = if default_https && !value.contains("://") {
        format!("https://{value}")
    } else {
        value.to_owned()
    };
    let mut url = Url::parse(&with_scheme)
        .map_err(|e| ConfigError::invalid(setting, format!("not an absolute URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(ConfigError::invalid(
                setting,
                "plain http is only allowed for loopback hosts; use https",
            ));
        }
        other => {
            return Err(ConfigError::invalid(
                setting,
                format!("unsupported scheme `{other}`"),
            ));
        }
    }
    if url.host().is_none() {
        return Err(ConfigError::invalid(setting, "no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            setting,
            "must not have a query or fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            setting,
            "must not contain credentials",
        ));
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

/// `url` as a string without the trailing slash `Url` adds to an empty path.
pub(crate) fn url_without_trailing_slash(url: &Url) -> String {
    let s = url.as_str();
    s.strip_suffix('/').unwrap_or(s).to_owned()
}

/// Normalizes the MCP endpoint path: leading `/`, no trailing `/`, no dot segments, query or
/// fragment. The empty path means the base URL itself.
pub(crate) fn normalize_mcp_path(setting: &str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    if value.contains(['?', '#', '\\', ' ']) || value.chars().any(|c| c.is_control()) {
        return Err(ConfigError::invalid(
            setting,
            "must be a plain path without query, fragment or spaces",
        ));
    }
    let trimmed = value.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(ConfigError::invalid(
            setting,
            "must not contain empty or dot segments",
        ));
    }
    Ok(format!("/{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two required shared variables, with `extra` added or overriding.
    fn env(extra: &[(&str, &str)]) -> Env {
        Env::from_iter(
            [
                ("WORKOS_AUTHKIT_DOMAIN", "tenant.authkit.app/"),
                ("MCP_BASE_URL", "https://MCP.example.com/"),
            ]
            .iter()
            .chain(extra)
            .copied(),
        )
    }

    fn shared(extra: &[(&str, &str)]) -> Result<SharedSettings, ConfigError> {
        SharedSettings::from_env(&env(extra), Duration::from_secs(7))
    }

    /// The error `extra` causes, from reading or from resolving.
    fn error(extra: &[(&str, &str)]) -> String {
        shared(extra)
            .and_then(|s| s.resolve())
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn defaults_and_derived_urls() {
        let s = shared(&[]).unwrap();
        assert_eq!(s.http_timeout, Duration::from_secs(7), "the mode's default");
        assert!(s.required_scopes.is_empty());
        let urls = s.resolve().unwrap();
        assert_eq!(urls.authkit, "https://tenant.authkit.app");
        assert_eq!(urls.issuer, "https://mcp.example.com");
        assert_eq!(urls.resource_url, "https://mcp.example.com/mcp");
        assert_eq!(urls.mount_path, "/mcp");
        assert_eq!(
            urls.resource_metadata_url,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn the_tool_scope_policy_is_shared_and_named_in_errors() {
        let s = shared(&[("MCP_AUTH_TOOL_SCOPES", "tools/call:deploy=ops;*=mcp")]).unwrap();
        assert!(s.tool_scopes.is_some());
        assert_eq!(
            s.all_scopes(&["openid".to_owned()]),
            ["openid", "ops", "mcp"]
        );
        let err = error(&[("MCP_AUTH_TOOL_SCOPES", "tools/call:deploy")]);
        assert!(err.starts_with("MCP_AUTH_TOOL_SCOPES"), "{err}");
    }

    #[test]
    fn every_shared_variable_is_read() {
        let s = shared(&[
            ("MCP_BASE_URL", "https://h.example/api/"),
            ("MCP_PATH", "tools/"),
            ("WORKOS_REQUIRED_SCOPES", "openid,profile email"),
            ("WORKOS_TIMEOUT_SECONDS", "3"),
        ])
        .unwrap();
        assert_eq!(s.required_scopes, vec!["openid", "profile", "email"]);
        assert_eq!(s.http_timeout, Duration::from_secs(3));
        let urls = s.resolve().unwrap();
        assert_eq!(urls.base_path, "/api");
        assert_eq!(urls.mount_path, "/api/tools");
        assert_eq!(urls.resource_url, "https://h.example/api/tools");
        assert_eq!(
            urls.resource_metadata_url,
            "https://h.example/.well-known/oauth-protected-resource/api/tools"
        );
        let root = shared(&[("MCP_PATH", "")]).unwrap().resolve().unwrap();
        assert_eq!(
            root.resource_url, "https://mcp.example.com",
            "blank: base URL"
        );
    }

    #[test]
    fn names_match_case_insensitively_and_blank_is_unset() {
        let s = SharedSettings::from_env(
            &Env::from_iter([
                ("workos_authkit_domain", "t.authkit.app"),
                ("Mcp_Base_Url", "https://a.example"),
                ("WORKOS_REQUIRED_SCOPES", "  "),
            ]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(s.authkit_domain.as_deref(), Some("t.authkit.app"));
        assert!(s.required_scopes.is_empty());
    }

    #[test]
    fn each_shared_variable_names_itself_in_its_error() {
        let missing = |name: &str| {
            let mut vars = vec![
                ("WORKOS_AUTHKIT_DOMAIN", "t.authkit.app"),
                ("MCP_BASE_URL", "https://a.example"),
            ];
            vars.retain(|(n, _)| *n != name);
            SharedSettings::from_env(&Env::from_iter(vars), Duration::from_secs(5))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            missing("WORKOS_AUTHKIT_DOMAIN"),
            "WORKOS_AUTHKIT_DOMAIN is not set"
        );
        assert_eq!(missing("MCP_BASE_URL"), "MCP_BASE_URL is not set");
        assert_eq!(
            error(&[("MCP_BASE_URL", " ")]),
            "MCP_BASE_URL is not set",
            "blank is unset"
        );
        for (name, bad) in [
            ("WORKOS_AUTHKIT_DOMAIN", "tenant.authkit.app/path"),
            ("WORKOS_AUTHKIT_DOMAIN", "http://tenant.authkit.app"),
            ("MCP_BASE_URL", "http://public.example"),
            ("MCP_BASE_URL", "https://a.example/?q=1"),
            ("MCP_PATH", "/a/../b"),
            ("WORKOS_TIMEOUT_SECONDS", "soon"),
            ("WORKOS_TIMEOUT_SECONDS", "0"),
        ] {
            let err = error(&[(name, bad)]);
            assert!(
                err.starts_with(&format!("{name} is invalid")),
                "{name}={bad}: {err}"
            );
        }
    }

    #[test]
    fn builder_values_name_the_method() {
        let mut s = SharedSettings::new(Duration::from_secs(5));
        assert_eq!(
            s.resolve().unwrap_err().to_string(),
            "authkit_domain is not set"
        );
        s.authkit_domain = Some("t.authkit.app".into());
        assert_eq!(s.resolve().unwrap_err().to_string(), "base_url is not set");
        s.base_url = Some("ftp://a.example".into());
        assert!(
            s.resolve()
                .unwrap_err()
                .to_string()
                .starts_with("base_url is invalid")
        );
    }

    #[test]
    fn env_value_parsers_name_the_variable() {
        let e = Env::from_iter([
            ("N", "12"),
            ("Z", "0"),
            ("F", "Off"),
            ("BAD_FLAG", "maybe"),
            ("L", "a, b,a"),
        ]);
        assert_eq!(e.positive("N").unwrap(), Some(12));
        assert!(
            e.positive("Z")
                .unwrap_err()
                .to_string()
                .starts_with("Z is invalid")
        );
        assert_eq!(e.seconds("N").unwrap(), Some(Duration::from_secs(12)));
        assert_eq!(e.seconds("UNSET").unwrap(), None);
        assert_eq!(e.flag("F").unwrap(), Some(false));
        assert!(
            e.flag("BAD_FLAG")
                .unwrap_err()
                .to_string()
                .starts_with("BAD_FLAG")
        );
        assert_eq!(e.list("L").unwrap(), vec!["a", "b"]);
        assert!(e.required("UNSET").is_err());
    }

    #[test]
    fn domain_without_scheme_gets_https_and_loses_trailing_slash() {
        let url = normalize_public_url("D", "Tenant.AuthKit.app/", true).unwrap();
        assert_eq!(
            url_without_trailing_slash(&url),
            "https://tenant.authkit.app"
        );
    }

    #[test]
    fn loopback_http_is_allowed_but_remote_http_is_not() {
        assert!(normalize_public_url("D", "http://127.0.0.1:9000", true).is_ok());
        assert!(normalize_public_url("D", "http://localhost:9000/", true).is_ok());
        assert!(normalize_public_url("D", "http://[::1]:9000/", true).is_ok());
        let err = normalize_public_url("MCP_BASE_URL", "http://example.com", false).unwrap_err();
        assert!(err.to_string().starts_with("MCP_BASE_URL is invalid"));
    }

    #[test]
    fn queries_fragments_credentials_and_odd_schemes_are_rejected() {
        for bad in [
            "https://a.example/?x=1",
            "https://a.example/#f",
            "https://u:p@a.example",
            "ftp://a.example",
            "not a url",
        ] {
            assert!(normalize_public_url("X", bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_url_path_keeps_its_path_without_trailing_slash() {
        let url = normalize_public_url("B", "https://host.example/api/", false).unwrap();
        assert_eq!(url_without_trailing_slash(&url), "https://host.example/api");
    }

    #[test]
    fn mcp_path_normalization() {
        assert_eq!(normalize_mcp_path("P", "mcp").unwrap(), "/mcp");
        assert_eq!(normalize_mcp_path("P", "/mcp/").unwrap(), "/mcp");
        assert_eq!(normalize_mcp_path("P", "/").unwrap(), "");
        assert_eq!(normalize_mcp_path("P", "/a/b").unwrap(), "/a/b");
        for bad in ["/a/../b", "/a//b", "/mcp?x", "/m cp"] {
            assert!(normalize_mcp_path("P", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_lists_accept_spaces_and_commas() {
        assert_eq!(
            parse_list("openid, profile email,,openid"),
            vec!["openid", "profile", "email"]
        );
        assert!(parse_list(" , ").is_empty());
    }
}
