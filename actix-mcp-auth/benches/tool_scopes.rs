//! What per-tool scopes cost: the bearer middleware with a `ScopePolicy` against the plain
//! bearer path, per request, at a typical `tools/call` body.
//!
//! Both run the whole actix service in process (no network): `BearerAuth` with AuthKit's JWT
//! verifier (a cache hit, as for every request after a token's first), in front of a handler
//! that reads the body as an MCP service does. The policy case also reads the body in the
//! middleware, classifies it (with and without SEP-2243 headers) and checks the scopes. The
//! network, rmcp and the tool itself are left out, so the ratio is an upper bound of what the
//! check adds to a real server's throughput.
//!
//! `cargo bench --bench tool_scopes` (compare `bearer/plain` with `bearer/tool_scopes*`)

use std::hint::black_box;

use actix_mcp_auth::{AuthKitProvider, AuthKitProviderBuilder, ScopePolicy, TokenVerifier};
use actix_mcp_auth_testing::FakeAuthKit;
use actix_web::{
    App, HttpResponse,
    dev::{Service, ServiceResponse},
    rt::System,
    test, web,
};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

/// A `tools/call` as MCP clients send it (about 300 bytes).
fn tools_call_body() -> String {
    json!({
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "search_issues",
            "arguments": {"repository": "acme/widgets", "query": "label:bug is:open sort:updated",
                          "limit": 20, "include_comments": false},
            "_meta": {"progressToken": "c0ffee", "io.modelcontextprotocol/protocolVersion": "2026-07-28"},
        },
    })
    .to_string()
}

const POLICY: &str = "tools/call:delete_repo=repo:admin; tools/call:search_issues=repo:read; \
                      resources/read=files:read; *=mcp; repo:admin>repo:read";

fn provider(fake: &FakeAuthKit, policy: Option<ScopePolicy>) -> AuthKitProvider {
    let builder: AuthKitProviderBuilder = AuthKitProvider::builder()
        .authkit_domain(fake.issuer())
        .base_url("http://127.0.0.1:8000");
    match policy {
        Some(policy) => builder.tool_scopes(policy),
        None => builder,
    }
    .build()
    .expect("provider")
}

async fn mcp_service(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(format!("{}", body.len()))
}

fn bearer(c: &mut Criterion) {
    let fake = FakeAuthKit::start();
    let body = tools_call_body();
    let system = System::new();
    let mut group = c.benchmark_group("bearer");
    let cases: [(&str, Option<ScopePolicy>, bool); 3] = [
        ("plain", None, false),
        ("tool_scopes", Some(POLICY.parse().unwrap()), false),
        (
            "tool_scopes_with_headers",
            Some(POLICY.parse().unwrap()),
            true,
        ),
    ];
    for (name, policy, headers) in cases {
        let provider = provider(&fake, policy);
        let token = fake.mint(json!({"aud": provider.resource_url(), "scope": "mcp repo:read"}));
        let service = system.block_on(async {
            // Warm the JWKS and the token cache.
            provider.verifier().verify(&token).await.expect("valid");
            test::init_service(
                App::new().service(
                    web::scope("/mcp")
                        .wrap(provider.bearer())
                        .route("", web::post().to(mcp_service)),
                ),
            )
            .await
        });
        let authorization = format!("Bearer {token}");
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut req = test::TestRequest::post()
                    .uri("/mcp")
                    .insert_header(("authorization", authorization.as_str()))
                    .insert_header(("content-type", "application/json"))
                    .set_payload(body.clone());
                if headers {
                    req = req
                        .insert_header(("mcp-method", "tools/call"))
                        .insert_header(("mcp-name", "search_issues"));
                }
                let res: ServiceResponse<_> = system
                    .block_on(service.call(req.to_request()))
                    .expect("service");
                assert!(res.status().is_success());
                black_box(res)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bearer);
criterion_main!(benches);
