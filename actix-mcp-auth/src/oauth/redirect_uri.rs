//! Client redirect URIs: what may be registered, and whether a requested URI matches.
//!
//! Threat model: a redirect URI decides where an authorization code goes. An attacker who gets
//! an open redirect through us steals codes; so registration is strict and matching is exact,
//! with one standard exception: native apps listening on a loopback IP literal may use any port
//! (RFC 8252 §7.3 and §8.3).
//!
//! Allowed at registration:
//! * `https` URLs on any host;
//! * `http` URLs on loopback (`127.0.0.0/8`, `[::1]`, `localhost`);
//! * private-use schemes (`cursor://…`, `com.example.app:/cb`) only when the operator
//!   allow-lists the scheme.
//!
//! Never: `javascript:`, `data:`, `file:` and friends, fragments, user info, dot segments,
//! over-long values. When the operator configures patterns
//! (`WORKOS_ALLOWED_CLIENT_REDIRECT_URIS`), a URI must also match one of them.
//!
//! What a user reads must be where the browser goes. URL parsers repair input silently: a
//! backslash counts as a slash (`https://evil.example\@app.example/cb` goes to `evil.example`),
//! percent-encoding in the host is decoded (`https://app.example%2eevil.example/cb` goes to
//! `app.example.evil.example`), Unicode hosts become punycode. So the authority (user info, host,
//! port) must be plain text: no `@`, `%` or `\` in it, no backslash anywhere; a URI is stored in
//! its parsed, serialized form (what [`Url`] prints, the string the browser is sent to), and a
//! requested URI is compared with the registered ones in that form. Pages show it through
//! [`crate::oauth::display::redirect_uri_display`].

use url::{Host, Url};

/// Longest redirect URI we store.
pub const MAX_REDIRECT_URI_LEN: usize = 2_000;

/// Schemes that are never acceptable, whatever the configuration.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "file",
    "vbscript",
    "blob",
    "about",
    "filesystem",
    "ftp",
    "ws",
    "wss",
];

/// Why a redirect URI was refused. The text is safe to return to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectUriError {
    /// Not an absolute URI, or too long.
    #[error("redirect URI is not a valid absolute URI")]
    Malformed,
    /// A scheme we never redirect to, or a private-use scheme not allow-listed.
    #[error("redirect URI scheme is not allowed")]
    Scheme,
    /// Plain http to a non-loopback host.
    #[error("http redirect URIs are only allowed for loopback hosts")]
    InsecureHttp,
    /// Fragment, user info or dot segments.
    #[error("redirect URI must not contain a fragment, user info or dot segments")]
    Shape,
    /// User info, percent-encoding or a backslash in the authority (host and port): the
    /// displayed host would differ from the one the browser connects to.
    #[error("redirect URI host must be plain text: no user info, percent-encoding or backslash")]
    Authority,
    /// Does not match the operator's allowed patterns.
    #[error("redirect URI is not allowed by this server")]
    NotAllowed,
}

/// A pattern from `WORKOS_ALLOWED_CLIENT_REDIRECT_URIS`.
///
/// Syntax: an absolute URI where `*` may stand for the whole port (`http://127.0.0.1:*/cb`), for
/// the leftmost host label (`https://*.example.com/cb`, never matching the bare domain's
/// parent), or end the path (`https://app.example.com/oauth/*`). Scheme and host are compared
/// case-insensitively, the path exactly. Patterns are parsed structurally, so
/// `https://good.example*` cannot be satisfied by `https://good.example.evil.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectPattern {
    scheme: String,
    host: HostPattern,
    port: PortPattern,
    path: PathPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: one or more labels before `.suffix`.
    Subdomain(String),
    /// Private-use scheme URIs have no host.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exact(Option<u16>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathPattern {
    Exact(String),
    Prefix(String),
}

impl RedirectPattern {
    /// Parses one pattern; `None` if it is not of the documented form.
    pub fn parse(pattern: &str) -> Option<Self> {
        let (scheme, rest) = pattern.split_once(':')?;
        let scheme = scheme.to_ascii_lowercase();
        if FORBIDDEN_SCHEMES.contains(&scheme.as_str()) || pattern.contains('#') {
            return None;
        }
        let Some(after_slashes) = rest.strip_prefix("//") else {
            // Private-use scheme without authority: `com.example.app:/callback`.
            return Some(Self {
                scheme,
                host: HostPattern::None,
                port: PortPattern::Exact(None),
                path: path_pattern(rest)?,
            });
        };
        let (authority, path) = match after_slashes.find('/') {
            Some(i) => (&after_slashes[..i], &after_slashes[i..]),
            None => (after_slashes, "/"),
        };
        if authority.contains('@') {
            return None;
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            None => PortPattern::Exact(None),
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(Some(p.parse().ok()?)),
        };
        let host = host.to_ascii_lowercase();
        let host = match host.strip_prefix("*.") {
            Some(suffix) if !suffix.contains('*') && suffix.contains('.') => {
                HostPattern::Subdomain(suffix.to_owned())
            }
            Some(_) => return None,
            None if host.contains('*') || host.is_empty() => return None,
            None => HostPattern::Exact(host),
        };
        Some(Self {
            scheme,
            host,
            port,
            path: path_pattern(path)?,
        })
    }

    fn matches(&self, uri: &Url) -> bool {
        if uri.scheme() != self.scheme {
            return false;
        }
        let host = uri.host_str().map(str::to_ascii_lowercase);
        let host_ok = match (&self.host, host.as_deref()) {
            (HostPattern::None, None | Some("")) => true,
            (HostPattern::Exact(h), Some(actual)) => h == actual,
            (HostPattern::Subdomain(suffix), Some(actual)) => actual
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            _ => false,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => uri.port() == p,
        };
        let path = uri.path();
        let path_ok = match &self.path {
            PathPattern::Exact(p) => path == p && uri.query().is_none(),
            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
        };
        host_ok && port_ok && path_ok
    }
}

fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((&authority[..host.len() + 2], Some(port))),
            None if after.is_empty() => Some((&authority[..host.len() + 2], None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

fn path_pattern(path: &str) -> Option<PathPattern> {
    if has_dot_segment(path) || path.contains('?') {
        return None;
    }
    match path.strip_suffix('*') {
        Some(prefix) if !prefix.contains('*') => Some(PathPattern::Prefix(prefix.to_owned())),
        Some(_) => None,
        None if path.contains('*') => None,
        None => Some(PathPattern::Exact(path.to_owned())),
    }
}

/// The operator's rules for client redirect URIs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedirectUriPolicy {
    /// When set, a URI must match one of these (in addition to the built-in rules).
    pub patterns: Option<Vec<RedirectPattern>>,
    /// Private-use schemes clients may register (lower case, e.g. `cursor`).
    pub private_schemes: Vec<String>,
}

impl RedirectUriPolicy {
    /// Checks a URI a client wants to register, returning it parsed. Store
    /// `url.as_str()` (the serialized form), not the text the client sent.
    pub fn check_registration(&self, uri: &str) -> Result<Url, RedirectUriError> {
        check_raw_text(uri)?;
        // Dot segments are checked on the raw text: the parser would silently resolve them.
        if uri.contains('#') || has_dot_segment(raw_path(uri)) {
            return Err(RedirectUriError::Shape);
        }
        let url = Url::parse(uri).map_err(|_| RedirectUriError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectUriError::Shape);
        }
        // The stored form must pass too: a Unicode host of a private-use scheme serializes
        // percent-encoded (`cursor://b%C3%BCcher.example/`).
        check_raw_text(url.as_str())?;
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" if is_loopback_host(&url) => {}
            "http" => return Err(RedirectUriError::InsecureHttp),
            scheme if FORBIDDEN_SCHEMES.contains(&scheme) || scheme == "https" => {
                return Err(RedirectUriError::Scheme);
            }
            scheme if self.private_schemes.iter().any(|s| s == scheme) => {}
            _ => return Err(RedirectUriError::Scheme),
        }
        if let Some(patterns) = &self.patterns
            && !patterns.iter().any(|p| p.matches(&url))
        {
            return Err(RedirectUriError::NotAllowed);
        }
        Ok(url)
    }
}

/// Refusals that apply to the raw text of any redirect URI, registered or requested: too long,
/// control characters or spaces, a backslash anywhere (RFC 3986 has none; parsers read it as a
/// slash), and anything but plain host and port in the authority.
fn check_raw_text(uri: &str) -> Result<(), RedirectUriError> {
    if uri.len() > MAX_REDIRECT_URI_LEN || uri.chars().any(|c| c.is_control() || c == ' ') {
        return Err(RedirectUriError::Malformed);
    }
    if raw_authority(uri).is_some_and(|a| a.contains(['@', '%', '\\'])) {
        return Err(RedirectUriError::Authority);
    }
    if uri.contains('\\') {
        return Err(RedirectUriError::Malformed);
    }
    Ok(())
}

/// The URI a browser would be sent to for `uri` (parsed and serialized), if its raw text passes
/// the checks every redirect URI must pass. Registered URIs are stored in this form; two URIs
/// are the same redirect target when their canonical forms are equal.
pub fn canonical(uri: &str) -> Option<Url> {
    check_raw_text(uri).ok()?;
    let url = Url::parse(uri).ok()?;
    check_raw_text(url.as_str()).ok()?;
    (url.username().is_empty() && url.password().is_none() && url.fragment().is_none())
        .then_some(url)
}

/// Whether `requested` may be used by a client that registered `registered`: the same URI once
/// both are parsed and serialized ([`canonical`]), or, for `http` on a loopback IP literal or
/// `localhost`, the same URI with another port. A URI whose raw text would be refused at
/// registration never matches, even if an older registration stored it.
pub fn matches_registered(requested: &str, registered: &[String]) -> bool {
    let Some(req) = canonical(requested) else {
        return false;
    };
    let loopback_http = req.scheme() == "http" && is_loopback_host(&req);
    registered.iter().filter_map(|r| canonical(r)).any(|reg| {
        reg == req
            || (loopback_http
                && reg.scheme() == "http"
                && reg.host() == req.host()
                && reg.path() == req.path()
                && reg.query() == req.query())
    })
}

pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The authority of a raw URI string (RFC 3986 §3.2: after `//`, up to the first `/`, `?` or
/// `#`), if it has one. Backslashes do not end it here, unlike in WHATWG parsers: that
/// difference is exactly what `https://evil.example\@app.example/` exploits.
fn raw_authority(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(':')?;
    let rest = rest.strip_prefix("//")?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or_default())
}

/// The path part of a raw URI string (after the authority), without query.
fn raw_path(uri: &str) -> &str {
    let after_scheme = uri.split_once(':').map_or(uri, |(_, rest)| rest);
    let after_authority = match after_scheme.strip_prefix("//") {
        Some(rest) => rest.find('/').map_or("", |i| &rest[i..]),
        None => after_scheme,
    };
    after_authority.split('?').next().unwrap_or_default()
}

/// `.` or `..` segments, also percent-encoded (`%2e`).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RedirectUriPolicy {
        RedirectUriPolicy {
            patterns: None,
            private_schemes: vec!["cursor".into()],
        }
    }

    #[test]
    fn accepts_https_loopback_http_and_allowed_private_schemes() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:33418/callback",
            "http://[::1]:8080/cb",
            "http://localhost/cb",
            "cursor://anysphere.cursor-retrieval/oauth/callback",
        ] {
            assert!(policy().check_registration(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_dangerous_uris() {
        use RedirectUriError::*;
        for (bad, why) in [
            ("javascript:alert(1)", Scheme),
            ("data:text/html,hi", Scheme),
            ("file:///etc/passwd", Scheme),
            ("http://evil.example.com/cb", InsecureHttp),
            ("https://app.example.com/cb#frag", Shape),
            ("https://user@app.example.com/cb", Authority),
            ("https://app.example.com/a/../cb", Shape),
            ("https://app.example.com/a/%2E%2E/cb", Shape),
            ("other-app://cb", Scheme),
            ("/relative", Malformed),
            ("https://app.example.com/c b", Malformed),
        ] {
            assert_eq!(policy().check_registration(bad).unwrap_err(), why, "{bad}");
        }
        let long = format!("https://a.example/{}", "a".repeat(MAX_REDIRECT_URI_LEN));
        assert_eq!(policy().check_registration(&long).unwrap_err(), Malformed);
    }

    #[test]
    fn authority_must_be_what_the_browser_uses() {
        use RedirectUriError::*;
        for (bad, why) in [
            // Sent to evil.example: the backslash counts as a slash.
            ("https://evil.example\\@app.example/cb", Authority),
            // Sent to app.example.evil.example: the host is percent-decoded.
            ("https://app.example%2eevil.example/cb", Authority),
            ("https://app.example%2Eevil.example/cb", Authority),
            ("https://%61pp.example/cb", Authority),
            ("https://app.example:44%33/cb", Authority),
            ("https://@app.example/cb", Authority),
            ("https://:@app.example/cb", Authority),
            ("https://user:pw@app.example/cb", Authority),
            ("http://127.0.0.1\\@evil.example/cb", Authority),
            ("https://app.example\\cb", Authority),
            ("https://app.example/a\\b", Malformed),
            ("https://app.example/cb?x=\\", Malformed),
            ("cursor:/cb\\x", Malformed),
            ("cursor://bücher.example/cb", Authority),
        ] {
            assert_eq!(policy().check_registration(bad).unwrap_err(), why, "{bad}");
            assert!(canonical(bad).is_none(), "{bad}");
        }
        // Percent-encoding stays allowed outside the authority.
        assert!(
            policy()
                .check_registration("https://app.example/c%20b?x=%2F")
                .is_ok()
        );
    }

    #[test]
    fn registration_returns_the_form_the_browser_uses() {
        for (raw, stored) in [
            ("https://APP.Example.com/cb", "https://app.example.com/cb"),
            ("https://app.example.com", "https://app.example.com/"),
            (
                "https://app.example.com:443/cb",
                "https://app.example.com/cb",
            ),
            (
                "https://bücher.example/cb",
                "https://xn--bcher-kva.example/cb",
            ),
            ("http://127.0.0.1:33418", "http://127.0.0.1:33418/"),
        ] {
            let url = policy().check_registration(raw).unwrap();
            assert_eq!(url.as_str(), stored, "{raw}");
            // The client keeps sending its own spelling; it matches the stored form.
            assert!(matches_registered(raw, &[stored.to_owned()]), "{raw}");
            assert!(matches_registered(stored, &[raw.to_owned()]), "{raw}");
        }
    }

    #[test]
    fn registrations_stored_before_hardening_no_longer_match() {
        let old = vec!["https://evil.example\\@app.example/cb".to_owned()];
        assert!(!matches_registered(&old[0], &old));
        assert!(!matches_registered(
            "https://evil.example/@app.example/cb",
            &old
        ));
        let old = vec!["https://app.example%2eevil.example/cb".to_owned()];
        assert!(!matches_registered(&old[0], &old));
        assert!(!matches_registered(
            "https://app.example.evil.example/cb",
            &old
        ));
    }

    #[test]
    fn loopback_port_may_vary_but_nothing_else() {
        let registered = vec!["http://127.0.0.1:33418/callback".to_owned()];
        assert!(matches_registered(
            "http://127.0.0.1:33418/callback",
            &registered
        ));
        assert!(matches_registered(
            "http://127.0.0.1:9999/callback",
            &registered
        ));
        assert!(!matches_registered(
            "http://127.0.0.1:9999/other",
            &registered
        ));
        assert!(!matches_registered(
            "http://localhost:9999/callback",
            &registered
        ));
        assert!(!matches_registered(
            "http://127.0.0.1:9999/callback?x=1",
            &registered
        ));
        let https = vec!["https://app.example.com/cb".to_owned()];
        assert!(matches_registered("https://app.example.com/cb", &https));
        assert!(!matches_registered(
            "https://app.example.com:8443/cb",
            &https
        ));
        assert!(!matches_registered("https://app.example.com/cb/", &https));
    }

    #[test]
    fn patterns_are_structural() {
        let p = |s: &str| RedirectPattern::parse(s).unwrap();
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(p("https://*.example.com/cb").matches(&url("https://a.example.com/cb")));
        assert!(!p("https://*.example.com/cb").matches(&url("https://example.com/cb")));
        assert!(!p("https://*.example.com/cb").matches(&url("https://a.example.com.evil/cb")));
        assert!(!p("https://*.example.com/cb").matches(&url("https://evilexample.com/cb")));
        assert!(p("http://127.0.0.1:*/cb").matches(&url("http://127.0.0.1:5555/cb")));
        assert!(
            p("https://app.example.com/oauth/*").matches(&url("https://app.example.com/oauth/x"))
        );
        assert!(
            !p("https://app.example.com/oauth/*").matches(&url("https://app.example.com/other"))
        );
        assert!(!p("https://good.example/cb").matches(&url("https://good.example.evil.com/cb")));
        assert!(p("cursor:/callback").matches(&url("cursor:/callback")));
        for bad in [
            "https://a*b.example/cb",
            "javascript:*",
            "https://u@h/cb",
            "https://*/cb",
            "https://h/a/../b",
        ] {
            assert!(RedirectPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn patterns_restrict_registration() {
        let policy = RedirectUriPolicy {
            patterns: Some(vec![
                RedirectPattern::parse("https://*.example.com/cb").unwrap(),
            ]),
            private_schemes: vec![],
        };
        assert!(
            policy
                .check_registration("https://a.example.com/cb")
                .is_ok()
        );
        assert_eq!(
            policy
                .check_registration("https://other.test/cb")
                .unwrap_err(),
            RedirectUriError::NotAllowed
        );
        assert_eq!(
            policy
                .check_registration("http://evil.example.com/cb")
                .unwrap_err(),
            RedirectUriError::InsecureHttp,
            "patterns never relax the built-in rules"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn policy() -> RedirectUriPolicy {
        RedirectUriPolicy {
            patterns: None,
            private_schemes: vec!["cursor".into()],
        }
    }

    /// Strings that look like URIs (scheme, authority, path, query, fragment pieces mixed with
    /// hostile characters), so the interesting branches are reached.
    fn uri_like() -> impl Strategy<Value = String> {
        let scheme = prop_oneof![
            Just("https".to_owned()),
            Just("http".to_owned()),
            Just("HTTP".to_owned()),
            Just("javascript".to_owned()),
            Just("data".to_owned()),
            Just("file".to_owned()),
            Just("cursor".to_owned()),
            Just("x-app".to_owned())
        ];
        let host = prop_oneof![
            Just("127.0.0.1".to_owned()),
            Just("localhost".to_owned()),
            Just("[::1]".to_owned()),
            Just("example.com".to_owned()),
            Just("user@evil.com".to_owned()),
            Just("localhost@evil.com".to_owned()),
            Just("evil.com\\@example.com".to_owned()),
            Just("example.com%2eevil.com".to_owned()),
            Just("bücher.example".to_owned()),
            "[a-z0-9.-]{0,12}"
        ];
        let path = proptest::collection::vec(
            prop_oneof![
                Just("..".to_owned()),
                Just(".".to_owned()),
                Just("%2e%2E".to_owned()),
                Just("cb".to_owned()),
                "[a-zA-Z0-9%._~-]{0,6}"
            ],
            0..4,
        );
        let tail = prop_oneof![
            Just("".to_owned()),
            Just("?x=1".to_owned()),
            Just("#frag".to_owned()),
            Just("?a=b#c".to_owned())
        ];
        (scheme, host, proptest::option::of(1u16..), path, tail).prop_map(
            |(scheme, host, port, path, tail)| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{scheme}://{host}{port}/{}{tail}", path.join("/"))
            },
        )
    }

    proptest! {
        #[test]
        fn accepted_uris_are_always_safe(uri in prop_oneof![uri_like(), any::<String>()]) {
            if let Ok(url) = policy().check_registration(&uri) {
                prop_assert!(url.fragment().is_none());
                prop_assert!(url.username().is_empty() && url.password().is_none());
                prop_assert!(!FORBIDDEN_SCHEMES.contains(&url.scheme()));
                match url.scheme() {
                    "https" => prop_assert!(url.host().is_some()),
                    "http" => prop_assert!(is_loopback_host(&url)),
                    other => prop_assert_eq!(other, "cursor"),
                }
                prop_assert!(!has_dot_segment(raw_path(&uri)));
                prop_assert!(!uri.contains('\\'));
                prop_assert!(!raw_authority(&uri).is_some_and(|a| a.contains(['@', '%'])));
                // The stored form is itself acceptable and means the same URI.
                prop_assert_eq!(policy().check_registration(url.as_str()), Ok(url.clone()));
                // A registered URI always matches itself.
                prop_assert!(matches_registered(&uri, std::slice::from_ref(&uri)));
            }
        }

        #[test]
        fn only_loopback_http_may_change_port(uri in uri_like(), port in 1u16..) {
            if let Ok(url) = policy().check_registration(&uri) {
                let mut moved = url.clone();
                if moved.set_port(Some(port)).is_ok() && moved != url {
                    let allowed = matches_registered(moved.as_str(), std::slice::from_ref(&uri));
                    let loopback_http = url.scheme() == "http" && is_loopback_host(&url);
                    prop_assert_eq!(allowed, loopback_http && moved.path() == url.path()
                        && moved.query() == url.query());
                }
            }
        }

        #[test]
        fn patterns_never_panic_and_never_match_other_hosts(
            pattern in any::<String>(),
            uri in uri_like(),
        ) {
            if let Some(p) = RedirectPattern::parse(&pattern)
                && let Ok(url) = Url::parse(&uri)
                && p.matches(&url)
            {
                prop_assert_eq!(url.scheme(), p.scheme.as_str());
            }
        }
    }
}
