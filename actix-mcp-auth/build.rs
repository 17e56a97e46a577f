//! Tells the test suite which optional services this build was asked to use, so a test whose
//! service is absent is reported as *ignored* (with its reason) instead of passing silently.
//!
//! * `TEST_DATABASE_URL` set: the PostgreSQL legs of the integration tests run (cfg
//!   `mcp_auth_test_postgres`); unset, they are ignored.
//! * `MCP_AUTH_REQUIRE_SQLX_CLI` set: the sqlx-cli migration tests run and fail without the CLI
//!   (cfg `mcp_auth_test_sqlx_cli`); unset, they are ignored. CI sets both.
//!
//! Nothing here affects the library's code; the cfgs are read by the tests only (`tests/` and
//! the store's unit tests in `src/store/tests/`).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for (variable, cfg) in [
        ("TEST_DATABASE_URL", "mcp_auth_test_postgres"),
        ("MCP_AUTH_REQUIRE_SQLX_CLI", "mcp_auth_test_sqlx_cli"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={variable}");
        if std::env::var(variable).is_ok_and(|value| !value.trim().is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
