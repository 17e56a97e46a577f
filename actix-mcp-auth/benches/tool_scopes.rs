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
//! A second measure, the issue's, runs both over real HTTP on loopback in interleaved rounds and
//! prints the median throughput ratio.
//!
//! `cargo bench --bench tool_scopes` (compare `bearer/plain*` with `bearer/tool_scopes*`, and
//! read the `interleaved over HTTP` line)

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
    // Every case sends the same request shape; `plain` ignores the headers.
    let cases: [(&str, Option<ScopePolicy>, bool); 4] = [
        ("plain", None, false),
        ("tool_scopes", Some(POLICY.parse().unwrap()), false),
        ("plain_with_headers", None, true),
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

/// The measure: requests per second over real HTTP on loopback, plain bearer against
/// bearer with the policy, in interleaved rounds (so machine noise hits both alike); prints the
/// median of the per-round ratios.
fn interleaved_http(_: &mut Criterion) {
    const ROUNDS: usize = 9;
    const REQUESTS: usize = 2_000;
    let fake = FakeAuthKit::start();
    let body = tools_call_body();
    System::new().block_on(async {
        let mut servers = Vec::new();
        for policy in [None, Some(POLICY.parse().unwrap())] {
            let provider = provider(&fake, policy);
            let token =
                fake.mint(json!({"aud": provider.resource_url(), "scope": "mcp repo:read"}));
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let url = format!("http://{}/mcp", listener.local_addr().unwrap());
            let p = provider.clone();
            let server = actix_web::HttpServer::new(move || {
                App::new().service(
                    web::scope("/mcp")
                        .wrap(p.bearer())
                        .route("", web::post().to(mcp_service)),
                )
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
            actix_web::rt::spawn(server);
            servers.push((url, format!("Bearer {token}")));
        }
        let client = awc::Client::default();
        let run = |url: String, auth: String| {
            let (client, body) = (client.clone(), body.clone());
            async move {
                let start = std::time::Instant::now();
                for _ in 0..REQUESTS {
                    let mut res = client
                        .post(&url)
                        .insert_header(("authorization", auth.as_str()))
                        .insert_header(("content-type", "application/json"))
                        .send_body(body.clone())
                        .await
                        .expect("request");
                    assert!(res.status().is_success());
                    res.body().await.expect("body");
                }
                REQUESTS as f64 / start.elapsed().as_secs_f64()
            }
        };
        // Warm-up: connections, JWKS, token caches.
        for (url, auth) in &servers {
            run(url.clone(), auth.clone()).await;
        }
        let mut ratios = Vec::new();
        let (mut plain_rates, mut policy_rates) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let plain = run(servers[0].0.clone(), servers[0].1.clone()).await;
            let policy = run(servers[1].0.clone(), servers[1].1.clone()).await;
            plain_rates.push(plain);
            policy_rates.push(policy);
            ratios.push(policy / plain);
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "interleaved over HTTP ({ROUNDS} rounds of {REQUESTS} sequential tools/call): plain \
             {:.0} req/s, tool_scopes {:.0} req/s, median ratio {:.3}",
            median(plain_rates),
            median(policy_rates),
            median(ratios),
        );
    });
}

criterion_group!(benches, bearer, interleaved_http);
criterion_main!(benches);
