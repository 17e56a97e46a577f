//! Settings shared by both providers: reading the environment and normalizing public URLs.
//!
//! Public URLs (the MCP resource, metadata locations, issuer) come from configuration only,
//! never from `Host` or `X-Forwarded-*` headers, so a client cannot make us advertise a URL of
//! its choosing (RFC 9700 §4.13).

use serde::de::DeserializeOwned;
use url::Url;

use crate::error::ConfigError;

/// Reads a settings struct whose field names are the lower-cased environment variable names
/// (`workos_authkit_domain` for `WORKOS_AUTHKIT_DOMAIN`), from any list of variables: the process
/// environment in production, a literal list in tests (`set_var` is `unsafe` in edition 2024).
pub(crate) fn load_env<T, I, K, V>(vars: I) -> Result<T, ConfigError>
where
    T: DeserializeOwned,
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    envy::from_iter(vars.into_iter().map(|(k, v)| (k.into(), v.into()))).map_err(|e| match e {
        envy::Error::MissingValue(field) => ConfigError::Missing(field.to_ascii_uppercase()),
        envy::Error::Custom(msg) => ConfigError::invalid("environment", msg),
    })
}

/// `value` unless it is blank (an empty variable counts as unset).
pub(crate) fn non_blank(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A required variable: present and not blank.
pub(crate) fn required(name: &str, value: String) -> Result<String, ConfigError> {
    non_blank(Some(value)).ok_or_else(|| ConfigError::Missing(name.to_owned()))
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

/// Splits a scope list given as space- and/or comma-separated words, dropping duplicates
/// while keeping order.
pub(crate) fn parse_scope_list(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in value.split([' ', ',', '\t']).filter(|s| !s.is_empty()) {
        if !out.iter().any(|s| s == scope) {
            out.push(scope.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
            parse_scope_list("openid, profile email,,openid"),
            vec!["openid", "profile", "email"]
        );
        assert!(parse_scope_list(" , ").is_empty());
    }
}
