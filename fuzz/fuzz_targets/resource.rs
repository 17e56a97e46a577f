//! RFC 8707 resource matching on arbitrary input: never panic, and a match always binds our own
//! canonical URL.
#![no_main]

use actix_mcp_auth::__fuzzing::resource::{canonical, match_resource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = url::Url::parse("https://mcp.example.com/mcp").expect("a valid URL");
    if let Ok(bound) = match_resource(text, &ours) {
        assert_eq!(bound, canonical(&ours));
    }
});
