//! Proxy mode's login rate: complete MCP client logins per second, over real HTTP on loopback.
//!
//! One flow is what a new MCP client does before its first tool call: `POST /register` →
//! `GET /authorize` (PKCE S256) → `GET /consent` → `POST /consent` (approve) → FakeAuthKit's
//! `/oauth2/authorize` (signs the user in without UI) → `GET /auth/callback` (which calls
//! FakeAuthKit's token and userinfo endpoints) → `POST /token`, driven one at a time by
//! `actix_mcp_auth_testing::OAuthTestClient`. Throughput is reported in flows per second (criterion's
//! `elem/s`, and a summary line per engine).
//!
//! The server is a `WorkOsProvider` in an `HttpServer` (2 workers) in this process, against
//! FakeAuthKit, over SQLite always (a temp file, WAL mode) and over PostgreSQL when
//! `TEST_DATABASE_URL` is set (in a fresh database, dropped afterwards).
//!
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench proxy_flow`

use std::{
    cell::Cell,
    net::TcpListener,
    time::{Duration, Instant},
};

use actix_mcp_auth::{
    Authenticated, WorkOsProvider,
    store::{Keyring, Store},
};
use actix_mcp_auth_testing::{AuthorizeOptions, FakeAuthKit, OAuthTestClient};
use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, rt::System, web};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sqlx::{Any, migrate::MigrateDatabase};

const CONNECT_CLIENT_ID: &str = "client_01BENCH";
const CONNECT_SECRET: &str = "sk_bench_connect_secret";

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
    sqlite_file: Option<std::path::PathBuf>,
}

impl BenchDb {
    fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("mcp_auth_bench_flow_{}.db", random_id()));
        Self {
            name: "sqlite",
            url: format!("sqlite://{}", path.display()),
            sqlite_file: Some(path),
        }
    }

    async fn postgres() -> Option<Self> {
        let base = std::env::var("TEST_DATABASE_URL").ok()?;
        sqlx::any::install_default_drivers();
        let mut url = url::Url::parse(&base).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&format!("/mcp_auth_bench_flow_{}", random_id()));
        let url = url.to_string();
        Any::create_database(&url)
            .await
            .expect("CREATE DATABASE on the TEST_DATABASE_URL server");
        Some(Self {
            name: "postgres",
            url,
            sqlite_file: None,
        })
    }

    async fn remove(self) {
        match &self.sqlite_file {
            Some(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            None => {
                if let Err(e) = Any::force_drop_database(&self.url).await {
                    eprintln!("could not drop the bench database: {e}");
                }
            }
        }
    }
}

/// The MCP endpoint of the bench server: echoes the caller (unused by the flow itself).
async fn whoami(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "subject": user.subject() }))
}

/// A proxy-mode server on a random loopback port over `store`, against `fake`.
fn spawn_server(fake: &FakeAuthKit, store: Store) -> (String, ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let provider = WorkOsProvider::builder()
        .client_id(CONNECT_CLIENT_ID)
        .client_secret(CONNECT_SECRET)
        .authkit_domain(fake.issuer())
        .base_url(&base_url)
        // Every flow comes from 127.0.0.1, far beyond the default per-address limits.
        .rate_limits(actix_mcp_auth::RateLimits::disabled())
        .build(store)
        .expect("provider");
    fake.register_connect_app(
        CONNECT_CLIENT_ID,
        CONNECT_SECRET,
        &[&format!("{}/auth/callback", provider.issuer())],
    );
    let server = HttpServer::new(move || {
        App::new().service(provider.routes()).service(
            web::scope(provider.mcp_path())
                .wrap(provider.bearer())
                .route("", web::to(whoami)),
        )
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (base_url, handle)
}

/// One complete login of a new client; panics with the server's answer on any failure.
async fn one_flow(client: &OAuthTestClient) {
    let registered = client
        .register(&OAuthTestClient::default_client_metadata())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let code = client
        .authorize_and_consent(&registered, &AuthorizeOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tokens = client
        .exchange_code(&registered, &code)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(tokens.access_token.starts_with("mcp_at_"));
}

fn bench_engine(c: &mut Criterion, system: &actix_web::rt::SystemRunner, db: &BenchDb) {
    let fake = FakeAuthKit::start();
    let (store, handle, client) = system.block_on(async {
        let store = Store::connect(&db.url, Keyring::ephemeral())
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let (base_url, handle) = spawn_server(&fake, store.clone());
        let client = OAuthTestClient::new(&base_url);
        // Warm up connections and check the flow works before measuring.
        one_flow(&client).await;
        (store, handle, client)
    });

    let flows = Cell::new(0u64);
    let spent = Cell::new(Duration::ZERO);
    let mut group = c.benchmark_group(format!("proxy_flow/{}", db.name));
    group.throughput(Throughput::Elements(1));
    group.bench_function("register_authorize_consent_callback_token", |b| {
        b.iter_custom(|iters| {
            let elapsed = system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    one_flow(&client).await;
                }
                start.elapsed()
            });
            flows.set(flows.get() + iters);
            spent.set(spent.get() + elapsed);
            elapsed
        })
    });
    group.finish();
    let seconds = spent.get().as_secs_f64();
    if seconds > 0.0 {
        println!(
            "proxy_flow/{}: {} flows in {seconds:.2} s = {:.1} flows/s (mean {:.2} ms per flow, \
             warm-up included)",
            db.name,
            flows.get(),
            flows.get() as f64 / seconds,
            1000.0 * seconds / flows.get() as f64,
        );
    }

    system.block_on(async {
        handle.stop(true).await;
        store.close().await;
    });
    fake.stop();
}

fn proxy_flow_benches(c: &mut Criterion) {
    let system = System::new();

    let sqlite = BenchDb::sqlite();
    bench_engine(c, &system, &sqlite);
    system.block_on(sqlite.remove());

    match system.block_on(BenchDb::postgres()) {
        Some(pg) => {
            bench_engine(c, &system, &pg);
            system.block_on(pg.remove());
        }
        None => eprintln!("proxy_flow/postgres skipped: TEST_DATABASE_URL is not set"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = proxy_flow_benches
}
criterion_main!(benches);
