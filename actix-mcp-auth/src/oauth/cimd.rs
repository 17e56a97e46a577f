//! Client ID Metadata Documents (CIMD: draft-ietf-oauth-client-id-metadata-document, MCP
//! SEP-991): a client whose `client_id` is an `https` URL publishes its metadata there.
//!
//! This module holds the decisions, free of I/O: which client ids are metadata-document URLs,
//! which addresses we may connect to when fetching one (the SSRF guard), whether a fetched
//! document is acceptable, and how long it may be cached.
//!
//! Threat model: anyone can type any URL into `client_id`, so fetching it makes our server an
//! HTTP client for strangers. The guard therefore refuses every address that is not globally
//! routable (loopback, private, link-local, multicast, unspecified, documentation, benchmarking,
//! and the IPv6 forms that embed such an IPv4 address), refuses IP literals, user info, fragments
//! and non-default ports, follows no redirects, and reads at most a few KiB. The caller resolves
//! the name itself, checks every address with [`forbidden_address`], and connects to a checked
//! address, so a DNS answer cannot change between the check and the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};
use url::{Host, Url};

use super::{
    client_metadata::{self, MAX_REDIRECT_URIS},
    redirect_uri::{MAX_REDIRECT_URI_LEN, RedirectUriPolicy},
};

/// Largest metadata document we read (the draft suggests 5 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Shortest time a fetched document is cached (seconds), whatever its headers say.
pub const MIN_CACHE_SECS: i64 = 5 * 60;
/// Longest time a fetched document is cached (seconds), whatever its headers say.
pub const MAX_CACHE_SECS: i64 = 24 * 3600;
/// Cache lifetime of a document whose answer has no caching headers (seconds).
pub const DEFAULT_CACHE_SECS: i64 = 3600;
/// How long past its expiry a cached document may still be used when its host is down.
pub const STALE_GRACE_SECS: i64 = 24 * 3600;
/// Longest client name we show.
const MAX_NAME_LEN: usize = 200;

/// Why a client id URL or its document was refused. The text is safe to show to the user and
/// to return to the client; it never contains the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CimdError {
    /// Not an acceptable client id URL (scheme, shape, port, IP literal...).
    #[error("the client_id URL is not acceptable: {0}")]
    BadUrl(&'static str),
    /// The host resolves to an address we never connect to.
    #[error(
        "the client_id host resolves to a {0} address; metadata documents are only fetched from public addresses"
    )]
    ForbiddenAddress(AddressClass),
    /// The host name does not resolve.
    #[error("the client_id host could not be resolved")]
    Resolve,
    /// Connection failed, timed out, or the answer did not arrive in time.
    #[error("the client metadata document could not be fetched (unreachable or too slow)")]
    Unreachable,
    /// The host answered with a redirect, which we never follow.
    #[error("the client metadata document URL redirects; redirects are not followed")]
    Redirect,
    /// The host answered with another non-200 status.
    #[error("the client metadata document URL answered HTTP {0}")]
    Status(u16),
    /// The document is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("the client metadata document is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    /// The answer's media type is not `application/json`.
    #[error("the client metadata document is not served as application/json")]
    ContentType,
    /// The document is not acceptable metadata.
    #[error("the client metadata document is invalid: {0}")]
    Invalid(String),
    /// The document's `client_id` differs from the URL it was fetched from.
    #[error("the client metadata document's client_id does not match its URL")]
    ClientIdMismatch,
    /// Client id metadata documents are switched off on this server.
    #[error("this server does not accept URL client ids")]
    Disabled,
}

impl CimdError {
    /// Whether the failure says nothing about the document itself (the host is down, slow or
    /// erroring), so a stale cached copy may be used instead.
    pub fn host_unavailable(&self) -> bool {
        matches!(self, Self::Unreachable | Self::Resolve)
            || matches!(self, Self::Status(s) if *s >= 500 || *s == 429 || *s == 408)
    }
}

/// Kinds of addresses the fetcher never connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressClass {
    /// `127.0.0.0/8`, `::1`.
    #[error("loopback")]
    Loopback,
    /// RFC 1918, shared address space (`100.64.0.0/10`), IPv6 unique-local and site-local.
    #[error("private")]
    Private,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    #[error("link-local")]
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    #[error("multicast")]
    Multicast,
    /// `0.0.0.0/8`, `::`.
    #[error("unspecified")]
    Unspecified,
    /// Other special-purpose ranges (documentation, benchmarking, reserved, broadcast, Teredo,
    /// discard, anything outside IPv6 global unicast).
    #[error("special-purpose")]
    Reserved,
}

/// Whether `client_id` is meant as a metadata-document URL (rather than an id we assigned at
/// registration, which never contains `://`).
pub fn is_url_client_id(client_id: &str) -> bool {
    let lower = client_id.get(..8).unwrap_or(client_id).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// A client id URL that passed [`parse_client_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdUrl {
    /// The URL (its serialization equals the client id exactly).
    pub url: Url,
    /// The host name (lower case), shown to users as the document's publisher.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// A loopback host, accepted only in loopback development mode.
    pub loopback: bool,
}

/// Checks a client id URL: `https`, a host name (no IP literal), no user info, no fragment, no
/// dot segments, no explicit port, and a path (the bare origin is not a document URL). With
/// `allow_loopback` (development and tests only), `http` and `https` URLs on `localhost` or a
/// loopback IP literal, with any port, are accepted too.
///
/// Non-default ports are refused: publishers serve their document on 443, and an arbitrary port
/// would let anyone make us probe services of a public host that were never meant to be reached
/// by us.
pub fn parse_client_id(client_id: &str, allow_loopback: bool) -> Result<ClientIdUrl, CimdError> {
    if client_id.len() > MAX_REDIRECT_URI_LEN
        || client_id.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(CimdError::BadUrl("malformed"));
    }
    if client_id.contains('#') {
        return Err(CimdError::BadUrl("it must not have a fragment"));
    }
    let url = Url::parse(client_id).map_err(|_| CimdError::BadUrl("malformed"))?;
    // One spelling per client: the URL parser's serialization must be the id itself (no
    // upper-case scheme or host, no default port, no dot segments resolved away).
    if url.as_str() != client_id {
        return Err(CimdError::BadUrl("it is not in normalized form"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CimdError::BadUrl("it must not contain user info"));
    }
    if matches!(url.path(), "" | "/") {
        return Err(CimdError::BadUrl("it must have a path"));
    }
    let loopback = match url.host() {
        Some(Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(CimdError::BadUrl("it has no host")),
    };
    if loopback && !allow_loopback {
        return Err(CimdError::ForbiddenAddress(AddressClass::Loopback));
    }
    if !loopback {
        if url.scheme() != "https" {
            return Err(CimdError::BadUrl("it must use https"));
        }
        if !matches!(url.host(), Some(Host::Domain(_))) {
            return Err(CimdError::BadUrl(
                "its host must be a name, not an IP address",
            ));
        }
        if url.port().is_some() {
            return Err(CimdError::BadUrl("it must use the default port"));
        }
    } else if !matches!(url.scheme(), "https" | "http") {
        return Err(CimdError::BadUrl("it must use https"));
    }
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(443);
    Ok(ClientIdUrl {
        url,
        host,
        port,
        loopback,
    })
}

/// The class of `ip` if the fetcher must not connect to it; `None` for a public address.
/// Loopback addresses are allowed only with `allow_loopback` (development mode).
pub fn forbidden_address(ip: IpAddr, allow_loopback: bool) -> Option<AddressClass> {
    let class = match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    };
    match class {
        Some(AddressClass::Loopback) if allow_loopback => None,
        other => other,
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    let class = match (a, b, c) {
        (0, _, _) => AddressClass::Unspecified,
        (127, _, _) => AddressClass::Loopback,
        (10, _, _) | (192, 168, _) => AddressClass::Private,
        (172, 16..=31, _) => AddressClass::Private,
        // Shared address space (carrier-grade NAT), RFC 6598.
        (100, 64..=127, _) => AddressClass::Private,
        (169, 254, _) => AddressClass::LinkLocal,
        (224..=239, _, _) => AddressClass::Multicast,
        // Reserved for future use, and the limited broadcast address.
        (240..=255, _, _) => AddressClass::Reserved,
        // IETF protocol assignments, documentation nets, 6to4 relay anycast, benchmarking.
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (192, 88, 99) => {
            AddressClass::Reserved
        }
        (198, 18..=19, _) => AddressClass::Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d): the IPv4 address decides.
    if seg[..5] == [0; 5] && (seg[5] == 0xffff || seg[5] == 0) {
        return classify_v4(embedded(seg[6], seg[7]));
    }
    // NAT64 (64:ff9b::/96): a gateway translates to the embedded IPv4 address.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded(seg[6], seg[7]));
    }
    // Local-use NAT64 (64:ff9b:1::/48) only reaches the operator's own networks.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1 {
        return Some(AddressClass::Private);
    }
    // 6to4 (2002::/16): the relay connects to the IPv4 address in bits 16..48.
    if seg[0] == 0x2002 {
        return classify_v4(embedded(seg[1], seg[2]));
    }
    let class = match seg[0] {
        s if s & 0xff00 == 0xff00 => AddressClass::Multicast,
        s if s & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        // Unique local (fc00::/7) and the deprecated site-local (fec0::/10).
        s if s & 0xfe00 == 0xfc00 || s & 0xffc0 == 0xfec0 => AddressClass::Private,
        // IETF protocol assignments (2001::/23: Teredo, which hides an IPv4 address,
        // benchmarking, ORCHID...) and documentation (2001:db8::/32).
        0x2001 if seg[1] < 0x0200 || seg[1] == 0x0db8 => AddressClass::Reserved,
        // Documentation (3fff::/20), SRv6 SIDs (5f00::/16).
        s if s & 0xfff0 == 0x3ff0 || s == 0x5f00 => AddressClass::Reserved,
        // Only global unicast (2000::/3) is routable on the internet.
        s if s & 0xe000 != 0x2000 => AddressClass::Reserved,
        _ => return None,
    };
    Some(class)
}

/// A validated client metadata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CimdDocument {
    /// Equals the URL the document was fetched from.
    pub client_id: String,
    /// The publisher's name for the client (self-asserted).
    pub client_name: Option<String>,
    /// Where codes may go; each passed the registration rules.
    pub redirect_uris: Vec<String>,
    /// `authorization_code`, optionally `refresh_token`.
    pub grant_types: Vec<String>,
    /// `native` or `web` (given, or derived from the redirect URIs).
    pub application_type: String,
    /// The requested scopes we support, if any.
    pub scope: Option<String>,
    /// Other metadata worth keeping (`client_uri`, `logo_uri`, `software_id`...).
    pub extra: Map<String, Value>,
}

fn invalid(description: impl Into<String>) -> CimdError {
    CimdError::Invalid(description.into())
}

fn string_list(doc: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, CimdError> {
    client_metadata::string_list(doc, name).map_err(CimdError::Invalid)
}

fn text<'a>(doc: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, CimdError> {
    match doc.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("`{name}` must be a string"))),
    }
}

/// Validates a fetched document against the URL it came from (`client_id`), with the same
/// redirect-URI rules as registration. `supported_scopes` filters the requested scope.
///
/// Only public clients are accepted: `token_endpoint_auth_method` must be `none` (its default
/// here, since a document cannot carry a shared secret). `private_key_jwt` is refused with a
/// clear message: we do not verify client assertions.
pub fn validate_document(
    client_id: &str,
    body: &[u8],
    policy: &RedirectUriPolicy,
    supported_scopes: &[String],
) -> Result<CimdDocument, CimdError> {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("it is not a JSON object"));
    };
    if text(&doc, "client_id")? != Some(client_id) {
        return Err(CimdError::ClientIdMismatch);
    }
    if doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at") {
        return Err(invalid("it must not contain a client secret"));
    }
    match text(&doc, "token_endpoint_auth_method")?.unwrap_or("none") {
        "none" => {}
        "private_key_jwt" => {
            return Err(invalid(
                "token_endpoint_auth_method private_key_jwt is not supported by this server; \
                 use none",
            ));
        }
        _ => return Err(invalid("token_endpoint_auth_method must be none")),
    }
    let redirect_uris = string_list(&doc, "redirect_uris")?
        .filter(|uris| !uris.is_empty())
        .ok_or_else(|| invalid("`redirect_uris` is required"))?;
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(invalid(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs"
        )));
    }
    for uri in &redirect_uris {
        policy
            .check_registration(uri)
            .map_err(|e| invalid(e.to_string()))?;
    }
    let grant_types = client_metadata::grant_types(&doc).map_err(CimdError::Invalid)?;
    client_metadata::check_response_types(&doc).map_err(CimdError::Invalid)?;
    let application_type = match text(&doc, "application_type")? {
        Some(kind @ ("native" | "web")) => kind.to_owned(),
        Some(_) => return Err(invalid("`application_type` must be native or web")),
        None => super::provenance::default_application_type(&redirect_uris).to_owned(),
    };
    let client_name = match text(&doc, "client_name")? {
        Some(name) if name.chars().count() > MAX_NAME_LEN => {
            return Err(invalid("`client_name` is too long"));
        }
        Some(name) if name.chars().any(char::is_control) => {
            return Err(invalid("`client_name` contains control characters"));
        }
        Some(name) if !name.trim().is_empty() => Some(name.trim().to_owned()),
        _ => None,
    };
    let scope = text(&doc, "scope")?
        .and_then(super::scope::parse)
        .map(|scopes| {
            scopes
                .into_iter()
                .filter(|s| supported_scopes.contains(s))
                .collect::<Vec<_>>()
        })
        .filter(|kept| !kept.is_empty())
        .map(|kept| kept.join(" "));
    let mut extra = Map::new();
    for field in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        // Links are optional decoration: keep only https ones, drop anything else.
        if let Some(uri) = text(&doc, field)?
            && uri.starts_with("https://")
            && uri.len() <= MAX_REDIRECT_URI_LEN
            && Url::parse(uri).is_ok()
        {
            extra.insert(field.to_owned(), Value::String(uri.to_owned()));
        }
    }
    for field in ["software_id", "software_version"] {
        if let Some(value) = text(&doc, field)?
            && value.chars().count() <= MAX_NAME_LEN
        {
            extra.insert(field.to_owned(), Value::String(value.to_owned()));
        }
    }
    Ok(CimdDocument {
        client_id: client_id.to_owned(),
        client_name,
        redirect_uris,
        grant_types,
        application_type,
        scope,
        extra,
    })
}

/// How long a fetched document may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// `Cache-Control: no-store`: use for this request only, keep no copy.
    NoStore,
    /// Fresh for this many seconds (already clamped to [`MIN_CACHE_SECS`] ..= [`MAX_CACHE_SECS`]).
    Seconds(i64),
}

/// The cache lifetime of an answer from its `Cache-Control` and `Expires` headers (the latter
/// as unix seconds, relative to `date`, the answer's `Date`, or `now`): `no-store` wins, then
/// `s-maxage` (we are a shared cache), then `max-age`, then `Expires`, else
/// [`DEFAULT_CACHE_SECS`]. `no-cache` asks for revalidation on every use, which we approximate
/// with the shortest lifetime. The result is clamped to [5 min, 24 h]: a few minutes spare the
/// publisher a fetch per login, a day bounds how long a withdrawn document keeps working.
pub fn freshness(
    cache_control: Option<&str>,
    expires: Option<i64>,
    date: Option<i64>,
    now: i64,
) -> Freshness {
    let mut max_age = None;
    let mut s_maxage = None;
    let mut no_cache = false;
    for directive in cache_control.unwrap_or_default().split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        let seconds = || value.and_then(|v| v.parse::<i64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" => return Freshness::NoStore,
            "no-cache" => no_cache = true,
            "max-age" => max_age = seconds().or(Some(0)),
            "s-maxage" => s_maxage = seconds().or(Some(0)),
            _ => {}
        }
    }
    let lifetime = if no_cache {
        0
    } else if let Some(secs) = s_maxage.or(max_age) {
        secs
    } else if let Some(expires) = expires {
        expires - date.unwrap_or(now)
    } else {
        DEFAULT_CACHE_SECS
    };
    Freshness::Seconds(lifetime.clamp(MIN_CACHE_SECS, MAX_CACHE_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn url_client_ids_are_recognized() {
        assert!(is_url_client_id("https://vscode.dev/oauth/client.json"));
        assert!(is_url_client_id("HTTP://x"));
        assert!(!is_url_client_id("mcp_client_abc"));
        assert!(!is_url_client_id("https:"));
    }

    #[test]
    fn client_id_urls_are_strict() {
        let ok = parse_client_id("https://vscode.dev/oauth/client-metadata.json", false).unwrap();
        assert_eq!(ok.host, "vscode.dev");
        assert_eq!(ok.port, 443);
        assert!(!ok.loopback);
        for (bad, why) in [
            ("https://vscode.dev", "it is not in normalized form"),
            ("https://vscode.dev/", "it must have a path"),
            ("http://vscode.dev/c.json", "it must use https"),
            (
                "https://user@vscode.dev/c.json",
                "it must not contain user info",
            ),
            ("https://vscode.dev/c.json#x", "it must not have a fragment"),
            (
                "https://vscode.dev:8443/c.json",
                "it must use the default port",
            ),
            ("https://VSCODE.dev/c.json", "it is not in normalized form"),
            (
                "https://vscode.dev/a/../c.json",
                "it is not in normalized form",
            ),
            (
                "https://93.184.216.34/c.json",
                "its host must be a name, not an IP address",
            ),
            (
                "https://[2606:2800::1]/c.json",
                "its host must be a name, not an IP address",
            ),
            ("ftp://vscode.dev/c.json", "it must use https"),
            ("https://vscode.dev/c json", "malformed"),
        ] {
            assert_eq!(
                parse_client_id(bad, false).unwrap_err(),
                CimdError::BadUrl(why),
                "{bad}"
            );
        }
        for loopback in [
            "https://localhost/c.json",
            "http://127.0.0.1:8080/c.json",
            "https://[::1]:9/c.json",
            "https://a.localhost/c.json",
        ] {
            assert_eq!(
                parse_client_id(loopback, false).unwrap_err(),
                CimdError::ForbiddenAddress(AddressClass::Loopback),
                "{loopback}"
            );
            let dev = parse_client_id(loopback, true).unwrap();
            assert!(dev.loopback, "{loopback}");
        }
        // Development mode still refuses other private hosts and schemes.
        assert!(parse_client_id("http://10.0.0.1/c.json", true).is_err());
        assert!(parse_client_id("ftp://127.0.0.1/c.json", true).is_err());
    }

    #[test]
    fn the_guard_refuses_every_special_purpose_address() {
        use AddressClass::*;
        for (addr, class) in [
            ("127.0.0.1", Loopback),
            ("127.8.9.10", Loopback),
            ("::1", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("fd00::1", Private),
            ("fec0::1", Private),
            ("169.254.169.254", LinkLocal),
            ("fe80::1", LinkLocal),
            ("224.0.0.1", Multicast),
            ("ff02::1", Multicast),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("255.255.255.255", Reserved),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Reserved),
            ("198.18.0.1", Reserved),
            ("2001:db8::1", Reserved),
            ("2001::1", Reserved),
            ("100::1", Reserved),
            // IPv4 inside IPv6: the IPv4 address decides.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::127.0.0.1", Loopback),
            ("::10.0.0.1", Private),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b:1::1", Private),
            ("2002:7f00:1::1", Loopback),
            ("2002:0a00:1::1", Private),
        ] {
            assert_eq!(forbidden_address(ip(addr), false), Some(class), "{addr}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:93.184.216.34",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert_eq!(forbidden_address(ip(public), false), None, "{public}");
        }
        // Development mode lets loopback through, nothing else.
        assert_eq!(forbidden_address(ip("127.0.0.1"), true), None);
        assert_eq!(forbidden_address(ip("::1"), true), None);
        assert_eq!(forbidden_address(ip("::ffff:127.0.0.1"), true), None);
        assert_eq!(
            forbidden_address(ip("10.0.0.1"), true),
            Some(AddressClass::Private)
        );
    }

    fn policy() -> RedirectUriPolicy {
        RedirectUriPolicy::default()
    }

    const ID: &str = "https://app.example/client.json";

    fn doc(extra: Value) -> Vec<u8> {
        let mut base = serde_json::json!({
            "client_id": ID,
            "client_name": "Example",
            "redirect_uris": ["http://127.0.0.1:3000/callback"],
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::to_vec(&base).unwrap()
    }

    #[test]
    fn documents_are_validated() {
        let scopes = vec!["offline_access".to_owned()];
        let ok = validate_document(
            ID,
            &doc(serde_json::json!({"scope": "offline_access admin", "grant_types": ["authorization_code", "refresh_token"]})),
            &policy(),
            &scopes,
        )
        .unwrap();
        assert_eq!(ok.application_type, "native", "loopback only: native");
        assert_eq!(ok.scope.as_deref(), Some("offline_access"));
        assert_eq!(ok.client_name.as_deref(), Some("Example"));

        let web = validate_document(
            ID,
            &doc(serde_json::json!({"redirect_uris": ["https://app.example/cb"]})),
            &policy(),
            &scopes,
        )
        .unwrap();
        assert_eq!(web.application_type, "web");

        for (extra, expected) in [
            (
                serde_json::json!({"client_id": "https://app.example/other.json"}),
                CimdError::ClientIdMismatch,
            ),
            (
                serde_json::json!({"client_id": "https://app.example/client.json/"}),
                CimdError::ClientIdMismatch,
            ),
            (
                serde_json::json!({"token_endpoint_auth_method": "private_key_jwt"}),
                invalid(
                    "token_endpoint_auth_method private_key_jwt is not supported by this \
                     server; use none",
                ),
            ),
            (
                serde_json::json!({"token_endpoint_auth_method": "client_secret_basic"}),
                invalid("token_endpoint_auth_method must be none"),
            ),
            (
                serde_json::json!({"client_secret": "x"}),
                invalid("it must not contain a client secret"),
            ),
            (
                serde_json::json!({"redirect_uris": ["javascript:alert(1)"]}),
                invalid("redirect URI scheme is not allowed"),
            ),
            (
                serde_json::json!({"redirect_uris": []}),
                invalid("`redirect_uris` is required"),
            ),
            (
                serde_json::json!({"grant_types": ["client_credentials"]}),
                invalid(
                    "`grant_types` must include authorization_code and may add refresh_token only",
                ),
            ),
            (
                serde_json::json!({"application_type": "desktop"}),
                invalid("`application_type` must be native or web"),
            ),
        ] {
            assert_eq!(
                validate_document(ID, &doc(extra.clone()), &policy(), &scopes).unwrap_err(),
                expected,
                "{extra}"
            );
        }
        assert_eq!(
            validate_document(ID, b"[1]", &policy(), &scopes).unwrap_err(),
            invalid("it is not a JSON object")
        );
    }

    #[test]
    fn freshness_honours_headers_within_bounds() {
        let now = 1_000_000;
        let f = |cc: Option<&str>, expires: Option<i64>| freshness(cc, expires, None, now);
        assert_eq!(f(Some("no-store"), None), Freshness::NoStore);
        assert_eq!(
            f(Some("public, max-age=3600"), None),
            Freshness::Seconds(3600)
        );
        assert_eq!(
            f(Some("max-age=10"), None),
            Freshness::Seconds(MIN_CACHE_SECS)
        );
        assert_eq!(
            f(Some("max-age=999999"), None),
            Freshness::Seconds(MAX_CACHE_SECS)
        );
        assert_eq!(
            f(Some("max-age=600, s-maxage=1200"), None),
            Freshness::Seconds(1200)
        );
        assert_eq!(
            f(Some("no-cache"), None),
            Freshness::Seconds(MIN_CACHE_SECS)
        );
        assert_eq!(f(None, Some(now + 7200)), Freshness::Seconds(7200));
        assert_eq!(f(None, Some(now - 5)), Freshness::Seconds(MIN_CACHE_SECS));
        assert_eq!(
            freshness(None, Some(now + 1000), Some(now - 1000), now),
            Freshness::Seconds(2000)
        );
        assert_eq!(
            f(Some("max-age=900"), Some(now + 7200)),
            Freshness::Seconds(900),
            "max-age wins over Expires"
        );
        assert_eq!(f(None, None), Freshness::Seconds(DEFAULT_CACHE_SECS));
        assert_eq!(
            f(Some("max-age=oops"), None),
            Freshness::Seconds(MIN_CACHE_SECS)
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn url_like() -> impl Strategy<Value = String> {
        let scheme = prop_oneof![Just("https"), Just("http"), Just("HTTPS"), Just("ftp")];
        let host = prop_oneof![
            Just("vscode.dev".to_owned()),
            Just("localhost".to_owned()),
            Just("127.0.0.1".to_owned()),
            Just("[::1]".to_owned()),
            Just("10.0.0.1".to_owned()),
            Just("u:p@h.example".to_owned()),
            "[a-z0-9.%@:\\[\\]-]{0,20}",
        ];
        let port = prop_oneof![
            Just(String::new()),
            Just(":443".to_owned()),
            Just(":8443".to_owned())
        ];
        let path = "(/[a-zA-Z0-9.%#?=&\\\\-]{0,8}){0,3}";
        (scheme, host, port, path).prop_map(|(s, h, p, path)| format!("{s}://{h}{p}{path}"))
    }

    proptest! {
        /// Whatever the input, an accepted client id is https on the default port with a host
        /// name (or loopback in development mode), one spelling, no user info or fragment.
        #[test]
        fn accepted_client_ids_are_safe(id in url_like(), dev in any::<bool>()) {
            if let Ok(parsed) = parse_client_id(&id, dev) {
                prop_assert_eq!(parsed.url.as_str(), id.as_str());
                prop_assert!(parsed.url.fragment().is_none());
                prop_assert!(parsed.url.username().is_empty() && parsed.url.password().is_none());
                prop_assert!(!matches!(parsed.url.path(), "" | "/"));
                if parsed.loopback {
                    prop_assert!(dev);
                } else {
                    prop_assert_eq!(parsed.url.scheme(), "https");
                    prop_assert!(parsed.url.port().is_none());
                    prop_assert!(matches!(parsed.url.host(), Some(Host::Domain(_))));
                }
            }
        }

        /// IPv4 addresses carried in IPv6 (mapped, NAT64, 6to4) are judged like the address
        /// itself: a forbidden one is never let through in disguise.
        #[test]
        fn embedded_ipv4_is_judged_as_ipv4(octets in any::<[u8; 4]>()) {
            let v4 = Ipv4Addr::from(octets);
            let [a, b, c, d] = octets;
            let hi = u16::from_be_bytes([a, b]);
            let lo = u16::from_be_bytes([c, d]);
            for v6 in [
                v4.to_ipv6_mapped(),
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
                Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
            ] {
                prop_assert_eq!(
                    forbidden_address(IpAddr::V6(v6), false),
                    forbidden_address(IpAddr::V4(v4), false),
                    "{}", v6
                );
            }
        }

        /// Arbitrary documents never panic the validator; an accepted one is for this URL.
        #[test]
        fn documents_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let id = "https://app.example/c.json";
            if let Ok(doc) = validate_document(id, &body, &RedirectUriPolicy::default(), &[]) {
                prop_assert_eq!(doc.client_id, id);
            }
        }
    }
}
