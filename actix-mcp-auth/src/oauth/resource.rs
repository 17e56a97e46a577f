//! Resource indicators (RFC 8707): which MCP server a token is for.
//!
//! Clients spell our URL in many ways (trailing slash, upper-case host, default port, an added
//! query). We compare canonical forms: lower-case scheme and host (the `url` crate does that),
//! no default port, no trailing slash, no fragment; the query is ignored unless our own URL has
//! one (some clients append tracking parameters).

use url::Url;

/// Why a `resource` parameter was refused (`invalid_target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceError {
    /// Not an absolute URI, or it has a fragment (RFC 8707 §2).
    Malformed,
    /// A valid URI, but not this server's MCP endpoint.
    NotThisServer,
}

/// Canonical text of `url`: scheme, host, non-default port and path without trailing slash.
fn canonical_without_query(url: &Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path().trim_end_matches('/'));
    out
}

/// Checks a client's `resource` against our canonical resource URL and returns the value to
/// bind the grant to (always our canonical URL, so later comparisons are exact).
pub fn match_resource(requested: &str, ours: &Url) -> Result<String, ResourceError> {
    let requested = Url::parse(requested).map_err(|_| ResourceError::Malformed)?;
    if requested.fragment().is_some() || requested.cannot_be_a_base() {
        return Err(ResourceError::Malformed);
    }
    let same_place = canonical_without_query(&requested) == canonical_without_query(ours);
    let same_query = ours.query().is_none() || requested.query() == ours.query();
    if same_place && same_query {
        Ok(canonical(ours))
    } else {
        Err(ResourceError::NotThisServer)
    }
}

/// Our canonical resource URL as text.
pub fn canonical(ours: &Url) -> String {
    let mut out = canonical_without_query(ours);
    if let Some(query) = ours.query() {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Url {
        Url::parse("https://mcp.example.com/mcp").unwrap()
    }

    #[test]
    fn spellings_of_our_url_match() {
        for spelling in [
            "https://mcp.example.com/mcp",
            "https://MCP.example.com/mcp/",
            "HTTPS://mcp.example.com:443/mcp",
            "https://mcp.example.com/mcp?kb_name=x",
        ] {
            assert_eq!(
                match_resource(spelling, &ours()).unwrap(),
                "https://mcp.example.com/mcp",
                "{spelling}"
            );
        }
    }

    #[test]
    fn other_servers_and_malformed_values_do_not() {
        for other in [
            "https://mcp.example.com/other",
            "https://evil.example/mcp",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com:8443/mcp",
            "https://mcp.example.com/MCP",
        ] {
            assert_eq!(
                match_resource(other, &ours()),
                Err(ResourceError::NotThisServer),
                "{other}"
            );
        }
        for bad in ["mcp", "https://mcp.example.com/mcp#x", "mailto:a@b"] {
            assert_eq!(
                match_resource(bad, &ours()),
                Err(ResourceError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn root_resource_with_and_without_slash() {
        let root = Url::parse("https://mcp.example.com").unwrap();
        assert_eq!(
            match_resource("https://mcp.example.com/", &root).unwrap(),
            "https://mcp.example.com"
        );
        assert_eq!(
            match_resource("https://mcp.example.com", &root).unwrap(),
            "https://mcp.example.com"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_match_always_binds_our_canonical_url(requested in any::<String>(), suffix in "[a-zA-Z/?#=.%-]{0,12}") {
            let ours = Url::parse("https://mcp.example.com/mcp").unwrap();
            for candidate in [requested.clone(), format!("https://mcp.example.com/mcp{suffix}")] {
                if let Ok(bound) = match_resource(&candidate, &ours) {
                    prop_assert_eq!(bound, canonical(&ours));
                    prop_assert!(!candidate.contains('#'));
                }
            }
        }
    }
}
