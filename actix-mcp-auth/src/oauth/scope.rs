//! Scope lists (RFC 6749 §3.3): space-delimited, case-sensitive tokens.

/// Parses a `scope` parameter. `None` when a token has characters RFC 6749 §3.3 forbids
/// (controls, space inside a token, `"` or `\`). Duplicates are dropped, order kept.
pub fn parse(value: &str) -> Option<Vec<String>> {
    let mut scopes: Vec<String> = Vec::new();
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        if !token.bytes().all(is_scope_char) {
            return None;
        }
        if !scopes.iter().any(|s| s == token) {
            scopes.push(token.to_owned());
        }
    }
    Some(scopes)
}

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

/// Whether every scope of `requested` is in `allowed`.
pub fn is_subset(requested: &[String], allowed: &[String]) -> bool {
    requested.iter().all(|s| allowed.contains(s))
}

/// The scopes of `requested` missing from `allowed`.
pub fn missing<'a>(requested: &'a [String], allowed: &[String]) -> Vec<&'a str> {
    requested
        .iter()
        .filter(|s| !allowed.contains(s))
        .map(String::as_str)
        .collect()
}

/// Scopes clients may ask for: the configured ones, plus `offline_access`.
pub fn supported(configured: &[String]) -> Vec<String> {
    let mut scopes = configured.to_vec();
    if !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".to_owned());
    }
    scopes
}

/// Joins scopes for a `scope` parameter.
#[cfg(any(test, feature = "__fuzzing"))] // the parsers' round-trip property
pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// Splits a scope list given as space- and/or comma-separated words, dropping duplicates
/// while keeping order.
pub fn parse_list(value: &str) -> Vec<String> {
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

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn offline_access_is_always_supported_once() {
        let configured = vec!["mcp".to_owned()];
        assert_eq!(supported(&configured), ["mcp", "offline_access"]);
        let both = vec!["offline_access".to_owned(), "mcp".to_owned()];
        assert_eq!(supported(&both), ["offline_access", "mcp"]);
        assert_eq!(supported(&[]), ["offline_access"]);
    }

    #[test]
    fn parses_and_dedupes() {
        assert_eq!(
            parse("openid  profile openid").unwrap(),
            v(&["openid", "profile"])
        );
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse("mcp:read https://x/y").unwrap(),
            v(&["mcp:read", "https://x/y"])
        );
    }

    #[test]
    fn rejects_forbidden_characters() {
        for bad in ["a\"b", "a\\b", "a\tb", "é", "a\nb"] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn subsets() {
        assert!(is_subset(&v(&["a"]), &v(&["a", "b"])));
        assert!(!is_subset(&v(&["a", "c"]), &v(&["a", "b"])));
        assert_eq!(missing(&v(&["a", "c"]), &v(&["a"])), vec!["c"]);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parsing_is_stable_and_tokens_are_legal(value in any::<String>()) {
            if let Some(scopes) = parse(&value) {
                prop_assert_eq!(parse(&join(&scopes)), Some(scopes.clone()));
                for s in &scopes {
                    prop_assert!(!s.is_empty() && s.bytes().all(is_scope_char));
                }
                prop_assert!(is_subset(&scopes, &scopes));
                prop_assert!(missing(&scopes, &scopes).is_empty());
            }
        }
    }
}
