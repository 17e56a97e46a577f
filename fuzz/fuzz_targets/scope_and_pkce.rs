//! Scope lists and PKCE values on arbitrary input: never panic; parsed scopes round-trip; a
//! malformed verifier never verifies.
#![no_main]

use actix_mcp_auth::__fuzzing::{pkce, scope, tokens};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(scopes) = scope::parse(text) {
        assert_eq!(scope::parse(&scope::join(&scopes)), Some(scopes));
    }
    if !pkce::is_valid_verifier(text) {
        assert!(!pkce::verify_s256(text, &pkce::s256_challenge(text)));
    }
    let _ = tokens::has_shape(text, tokens::ACCESS_TOKEN_PREFIX);
});
