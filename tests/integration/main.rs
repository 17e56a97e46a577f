//! Integration tests: real HTTP servers on loopback, against `FakeAuthKit`.
//!
//! One binary (faster to link), one module per area.

/// Prints why a test leg does not run, past the test harness's output capture (`eprintln!` is
/// captured and hidden for passing tests; a skip must be visible).
macro_rules! skip_notice {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod app;
mod authkit_discovery;
mod authkit_login;
mod authkit_tokens;
mod proxy_app;
mod proxy_flow;
mod proxy_negative;
mod proxy_single_flight;
mod store;
mod store_breaker;
mod store_migrations;
mod store_races;
mod store_support;
