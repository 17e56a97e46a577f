//! Redirect-URI registration, matching and operator patterns on arbitrary input: never panic,
//! and nothing accepted is ever unsafe.
#![no_main]

use actix_mcp_auth::__fuzzing::redirect_uri::{
    RedirectPattern, RedirectUriPolicy, matches_registered,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, ""));
    let policy = RedirectUriPolicy {
        patterns: RedirectPattern::parse(second).map(|p| vec![p]),
        private_schemes: vec!["cursor".into()],
    };
    if let Ok(url) = policy.check_registration(first) {
        assert!(url.fragment().is_none());
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(matches!(url.scheme(), "https" | "http" | "cursor"));
        assert!(matches_registered(first, &[first.to_owned()]));
    }
    let _ = matches_registered(second, &[first.to_owned()]);
});
