//! The store's hot paths on real databases: the bearer check's token lookup and the token
//! endpoint's code redemption, one at a time (latency) and 16 at once (throughput).
//!
//! SQLite always (a temp file in WAL mode); PostgreSQL too when `TEST_DATABASE_URL` is set (in a
//! fresh database that is dropped afterwards).
//!
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench store`

use std::{hint::black_box, time::Duration};

// The store's record types and operations are crate-private; the hidden `__bench` feature
// (on through the dev-dependency) exposes them to this bench only.
use actix_mcp_auth::{
    __bench::{
        self as internals, AuthorizationCode, ClientRecord, CodeConsumed, CodeRedemption, Grant,
        NewTokens, Secret, TokenHash, UpstreamTokens,
    },
    store::{Keyring, Store},
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use sqlx::{Any, migrate::MigrateDatabase};
use tokio::runtime::Runtime;

const CONCURRENCY: usize = 16;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn random_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// A database for the run, removed at the end.
struct BenchDb {
    name: &'static str,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Database,
}

impl BenchDb {
    fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("mcp_auth_bench_{}.db", random_id()));
        Self {
            name: "sqlite",
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::File(path),
        }
    }

    async fn postgres() -> Option<Self> {
        let base = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        sqlx::any::install_default_drivers();
        let mut url = url::Url::parse(&base).expect("TEST_DATABASE_URL");
        url.set_path(&format!("/mcp_auth_bench_{}", random_id()));
        let url = url.to_string();
        Any::create_database(&url).await.expect("create database");
        Some(Self {
            name: "postgres",
            url,
            cleanup: Cleanup::Database,
        })
    }

    async fn remove(self) {
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Database => {
                let _ = Any::force_drop_database(&self.url).await;
            }
        }
    }
}

fn client(client_id: &str) -> ClientRecord {
    ClientRecord {
        client_id: client_id.to_owned(),
        client_secret_hash: None,
        client_name: Some("bench".into()),
        redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        token_endpoint_auth_method: "none".into(),
        scope: None,
        metadata: None,
        created_at: now(),
        last_used_at: now(),
        expires_at: now() + 86_400,
    }
}

/// A grant with realistic upstream tokens (a JWT-sized access token) and its code; returns the
/// code's hash.
async fn grant_with_code(store: &Store, client_id: &str) -> (Grant, TokenHash) {
    let grant = Grant {
        grant_id: random_id(),
        subject: "user_01BENCH".into(),
        client_id: client_id.to_owned(),
        scopes: vec!["openid".into(), "profile".into()],
        resource: Some("https://mcp.example.com/mcp".into()),
        upstream: UpstreamTokens {
            access_token: Secret::new("a".repeat(900)),
            refresh_token: Some(Secret::new("r".repeat(40))),
            id_token: None,
            expires_at: Some(now() + 300),
        },
        upstream_version: 0,
        profile: Some(serde_json::json!({"email": "bench@example.com"})),
        created_at: now(),
        expires_at: now() + 86_400,
    };
    let raw = format!("mcp_code_{}", random_id());
    let code = AuthorizationCode {
        code_hash: TokenHash::of(&raw),
        grant_id: grant.grant_id.clone(),
        client_id: client_id.to_owned(),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        redirect_uri_sent: true,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scopes: grant.scopes.clone(),
        resource: grant.resource.clone(),
        created_at: now(),
        expires_at: now() + 300,
        used_at: None,
    };
    internals::create_grant(store, &grant, &code)
        .await
        .expect("grant");
    (grant, code.code_hash)
}

/// What the bench codes were issued for (the checks a token endpoint makes first).
fn redemption(client_id: &str) -> CodeRedemption<'_> {
    CodeRedemption {
        client_id,
        redirect_uri: "http://127.0.0.1:9/cb",
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    }
}

/// Digests of a fresh access and refresh token (1 h, 1 day).
fn new_tokens() -> NewTokens {
    NewTokens {
        access_hash: TokenHash::of(&format!("mcp_at_{}", random_id())),
        access_expires_at: now() + 3600,
        refresh_hash: Some(TokenHash::of(&format!("mcp_rt_{}", random_id()))),
        refresh_expires_at: now() + 86_400,
    }
}

fn bench_engine(c: &mut Criterion, rt: &Runtime, db: &BenchDb) {
    let store = rt.block_on(async {
        let store = Store::connect(&db.url, Keyring::ephemeral())
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        store
    });
    let client_id = "bench-client";
    rt.block_on(internals::register_client(&store, &client(client_id)))
        .expect("client");

    // Many live tokens, so the lookup goes through a real index.
    let access_hashes: Vec<TokenHash> = rt.block_on(async {
        let mut hashes = Vec::new();
        for _ in 0..200 {
            let (grant, _) = grant_with_code(&store, client_id).await;
            let tokens = new_tokens();
            let access = tokens.access_hash.clone();
            internals::issue_tokens(&store, &grant.grant_id, &grant.scopes, &tokens)
                .await
                .expect("issue")
                .expect("live grant");
            hashes.push(access);
        }
        hashes
    });

    let mut group = c.benchmark_group(format!("store/{}", db.name));
    group.throughput(Throughput::Elements(1));
    group.bench_function("lookup_access_token", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % access_hashes.len();
            let found = rt
                .block_on(internals::lookup_access_token(
                    &store,
                    black_box(&access_hashes[i]),
                ))
                .expect("lookup");
            assert!(found);
        })
    });
    group.bench_function("consume_code", |b| {
        b.iter_batched(
            || {
                (
                    rt.block_on(grant_with_code(&store, client_id)).1,
                    new_tokens(),
                )
            },
            |(hash, tokens)| {
                let outcome = rt
                    .block_on(internals::consume_code(
                        &store,
                        &hash,
                        &redemption(client_id),
                        &tokens,
                    ))
                    .expect("consume");
                assert!(matches!(outcome, CodeConsumed::Consumed(_)));
            },
            BatchSize::SmallInput,
        )
    });

    group.throughput(Throughput::Elements(CONCURRENCY as u64));
    group.bench_function(format!("lookup_access_token_x{CONCURRENCY}"), |b| {
        let mut i = 0;
        b.iter(|| {
            let lookups = (0..CONCURRENCY).map(|_| {
                i = (i + 1) % access_hashes.len();
                let (store, hash) = (store.clone(), access_hashes[i].clone());
                tokio::spawn(async move { internals::lookup_access_token(&store, &hash).await })
            });
            let lookups: Vec<_> = lookups.collect();
            for result in rt.block_on(join_all(lookups)) {
                assert!(result.unwrap().expect("lookup"));
            }
        })
    });
    group.bench_function(format!("consume_code_x{CONCURRENCY}"), |b| {
        b.iter_batched(
            || {
                rt.block_on(async {
                    let mut hashes = Vec::with_capacity(CONCURRENCY);
                    for _ in 0..CONCURRENCY {
                        hashes.push((grant_with_code(&store, client_id).await.1, new_tokens()));
                    }
                    hashes
                })
            },
            |hashes| {
                let consumes: Vec<_> = hashes
                    .into_iter()
                    .map(|(hash, tokens)| {
                        let store = store.clone();
                        rt.spawn(async move {
                            internals::consume_code(&store, &hash, &redemption(client_id), &tokens)
                                .await
                        })
                    })
                    .collect();
                for result in rt.block_on(join_all(consumes)) {
                    let outcome = result.unwrap().expect("consume");
                    assert!(matches!(outcome, CodeConsumed::Consumed(_)));
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    rt.block_on(store.close());
}

fn store_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();

    let sqlite = BenchDb::sqlite();
    bench_engine(c, &rt, &sqlite);
    rt.block_on(sqlite.remove());

    match rt.block_on(BenchDb::postgres()) {
        Some(pg) => {
            bench_engine(c, &rt, &pg);
            rt.block_on(pg.remove());
        }
        None => eprintln!("store/postgres skipped: TEST_DATABASE_URL is not set"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = store_benches
}
criterion_main!(benches);
