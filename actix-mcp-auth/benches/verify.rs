//! The bearer check's verification path: a cached token (through `verify`'s future and through
//! `verify_cached`, the middleware's hot path) versus a full JWT verification (signature,
//! claims) with the keys already fetched.
//!
//! `cargo bench --bench verify`

use std::hint::black_box;

use actix_mcp_auth::{AuthKitProvider, TokenVerifier};
use actix_mcp_auth_testing::FakeAuthKit;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use serde_json::json;

fn verification(c: &mut Criterion) {
    let fake = FakeAuthKit::start();
    let provider = AuthKitProvider::builder()
        .authkit_domain(fake.issuer())
        .base_url("http://127.0.0.1:8000")
        .build()
        .expect("provider");
    let verifier = provider.verifier().clone();
    let token = fake.mint(json!({"aud": provider.resource_url(), "scope": "openid profile"}));

    // The first verification fetches the JWKS over HTTP, which needs an actix runtime.
    actix_web::rt::System::new().block_on(async {
        verifier.verify(&token).await.expect("token verifies");
    });

    let mut group = c.benchmark_group("verify");
    group.bench_function("cache_hit", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(&token))
                .now_or_never()
                .expect("a cache hit never waits")
                .expect("valid")
        })
    });
    group.bench_function("cached", |b| {
        b.iter(|| {
            verifier
                .verify_cached(black_box(&token))
                .expect("verified above")
        })
    });
    group.bench_function("cache_miss", |b| {
        b.iter(|| {
            actix_mcp_auth::__bench::verify_uncached(&verifier, black_box(&token))
                .now_or_never()
                .expect("keys are cached, nothing to wait for")
                .expect("valid")
        })
    });
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
