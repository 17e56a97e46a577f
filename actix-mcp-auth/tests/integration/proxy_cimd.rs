//! Client ID Metadata Documents (CIMD) and DCR `application_type` in proxy mode: logins with a
//! URL client id served from loopback (http and https), the database cache (no second fetch,
//! expiry, stale copy while the publisher is down, clamping), the SSRF guard (one test per
//! class, with a stub resolver: refused before any connection), and the consent page's facts.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_mcp_auth::{HostResolver, WorkOsProviderBuilder};
use actix_mcp_auth_testing::{AuthorizeOptions, FakeAuthKit, OAuthTestClient, RegisteredClient};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sqlx::Row as _;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    proxy_app::{Browser, ProxyApp},
    store_support::{TestDb, stored_client},
};

// ---- a publisher of metadata documents, on loopback -----------------------------------------

/// What the document server answers at `/client.json`.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Wait this long before answering (a slow host).
    delay: Option<Duration>,
}

impl Answer {
    fn json(document: &Value, cache_control: Option<&str>) -> Self {
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        if let Some(cc) = cache_control {
            headers.push(("Cache-Control".to_owned(), cc.to_owned()));
        }
        Self {
            status: 200,
            headers,
            body: serde_json::to_vec(document).unwrap(),
            delay: None,
        }
    }

    fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: vec![],
            delay: None,
        }
    }
}

/// A tiny HTTP/1.1 server (optionally over TLS) that serves one configurable answer and
/// counts requests per path.
struct DocServer {
    origin: String,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<Mutex<Vec<String>>>,
}

impl DocServer {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>, host: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let answer = Arc::new(Mutex::new(Answer::status(404)));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (a, h) = (answer.clone(), hits.clone());
        actix_web::rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (a, h, tls) = (a.clone(), h.clone(), tls.clone());
                actix_web::rt::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, a, h).await;
                            }
                        }
                        None => serve(stream, a, h).await,
                    }
                });
            }
        });
        Self {
            origin: format!("{scheme}://{host}:{port}"),
            answer,
            hits,
        }
    }

    fn url(&self) -> String {
        format!("{}/client.json", self.origin)
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Serves a valid document for its own URL.
    fn serve_document(&self, cache_control: Option<&str>) {
        self.answer(Answer::json(
            &OAuthTestClient::client_metadata_document(&self.url()),
            cache_control,
        ));
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

async fn serve<S>(mut stream: S, answer: Arc<Mutex<Answer>>, hits: Arc<Mutex<Vec<String>>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
    hits.lock().unwrap().push(path.clone());
    let answer = if path == "/client.json" {
        answer.lock().unwrap().clone()
    } else {
        Answer::status(404)
    };
    if let Some(delay) = answer.delay {
        tokio::time::sleep(delay).await;
    }
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&answer.body).await;
    let _ = stream.shutdown().await;
}

/// A certificate for `localhost` and `127.0.0.1`, its PEM file (for the fetcher to trust) and
/// a TLS acceptor serving it.
fn test_tls() -> (tokio_rustls::TlsAcceptor, tempfile_path::TempPem) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_der = certified.cert.der().clone();
    let key_der =
        rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der], key_der)
    .unwrap();
    let pem = tempfile_path::TempPem::write(&certified.cert.pem());
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), pem)
}

mod tempfile_path {
    /// A PEM file in the temp directory, removed on drop.
    pub struct TempPem(pub std::path::PathBuf);

    impl TempPem {
        pub fn write(pem: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "mcp_auth_cimd_ca_{}.pem",
                crate::store_support::random_id()
            ));
            std::fs::write(&path, pem).unwrap();
            Self(path)
        }
    }

    impl Drop for TempPem {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Maps names to chosen addresses and records what it was asked.
#[derive(Default)]
struct StubResolver {
    names: HashMap<String, Vec<IpAddr>>,
    asked: Mutex<Vec<String>>,
}

impl StubResolver {
    fn with(entries: &[(&str, &[&str])]) -> Arc<Self> {
        Arc::new(Self {
            names: entries
                .iter()
                .map(|(name, ips)| {
                    (
                        name.to_string(),
                        ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                    )
                })
                .collect(),
            asked: Mutex::default(),
        })
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl HostResolver for StubResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        self.asked.lock().unwrap().push(host.to_owned());
        let found = self.names.get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

fn dev_mode(b: WorkOsProviderBuilder) -> WorkOsProviderBuilder {
    b.dangerously_allow_loopback_client_id_urls()
        .cimd_fetch_timeout(Duration::from_secs(2))
}

/// The `/authorize` URL for a URL client id with the default redirect URI.
fn authorize_url(app: &ProxyApp, client_id: &str) -> String {
    app.client()
        .authorization_request(
            &RegisteredClient::metadata_document(client_id),
            &AuthorizeOptions::default(),
        )
        .url
}

/// `/authorize` must answer with an error page that says `expected`, and never redirect.
async fn assert_refused(app: &ProxyApp, client_id: &str, expected: &str) {
    let reply = Browser::default().get(&authorize_url(app, client_id)).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.header("location").is_none(), "never a redirect");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "an error page"
    );
    assert!(
        reply.text().contains(expected),
        "expected {expected:?} in {}",
        reply.text()
    );
}

async fn cimd_row(db: &TestDb, url: &str) -> Option<(i64, i64, i64)> {
    sqlx::query(
        "SELECT fetched_at, fresh_until, expires_at FROM mcp_auth_cimd_documents WHERE url = $1",
    )
    .bind(url)
    .fetch_optional(db.sql().await)
    .await
    .unwrap()
    .map(|r| {
        (
            r.get::<i64, _>("fetched_at"),
            r.get::<i64, _>("fresh_until"),
            r.get::<i64, _>("expires_at"),
        )
    })
}

/// Moves the cached document's clock: fresh until `fresh_until`, unusable after `expires_at`
/// (relative to now, in seconds).
async fn age_document(db: &TestDb, url: &str, fresh_in: i64, expires_in: i64) {
    let now = crate::store_support::now();
    sqlx::query(
        "UPDATE mcp_auth_cimd_documents SET fresh_until = $2, expires_at = $3 WHERE url = $1",
    )
    .bind(url)
    .bind(now + fresh_in)
    .bind(now + expires_in)
    .execute(db.sql().await)
    .await
    .unwrap();
}

crate::store_support::http_tests!(
    cimd_login_over_http_from_loopback_and_second_login_uses_the_cache,
    cimd_login_over_https_with_a_test_certificate,
    cimd_cache_honours_expiry_clamps_and_serves_stale_while_the_host_is_down,
    cimd_bad_documents_get_clear_errors_at_authorize_and_token,
    cimd_refuses_loopback_hosts,
    cimd_refuses_private_addresses,
    cimd_refuses_link_local_addresses,
    cimd_refuses_ipv6_mapped_addresses,
    cimd_does_not_follow_redirects,
    cimd_refuses_oversized_documents,
    cimd_gives_up_on_slow_hosts,
    cimd_refuses_a_document_for_another_client_id,
    cimd_can_be_switched_off,
    dcr_records_application_type_and_the_consent_page_describes_the_client,
);

async fn cimd_login_over_http_from_loopback_and_second_login_uses_the_cache(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let docs = DocServer::start(None, "127.0.0.1").await;
    docs.serve_document(None);
    let app = ProxyApp::spawn(&fake, db.store().await, dev_mode).await;
    let client = RegisteredClient::metadata_document(docs.url());

    let mut oauth = app.client();
    let login = oauth.full_login_as(&client).await.unwrap();
    assert_eq!(
        login.discovery.authorization_server["client_id_metadata_document_supported"],
        json!(true)
    );
    let me = oauth
        .call_tool(&login.tokens.access_token, "whoami", json!({}))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        me["client_id"],
        json!(docs.url()),
        "the URL is the client id"
    );
    assert_eq!(docs.hits("/client.json"), 1);

    // A second login (and its token exchange) reads the shared cache: no second fetch.
    let code = oauth
        .authorize_and_consent(&client, &AuthorizeOptions::default())
        .await
        .unwrap();
    let tokens = oauth.exchange_code(&client, &code).await.unwrap();
    assert!(tokens.access_token.starts_with("mcp_at_"));
    let refreshed = oauth
        .refresh(&client, tokens.refresh_token.as_deref().unwrap(), None)
        .await
        .unwrap();
    assert!(refreshed.access_token.starts_with("mcp_at_"));
    assert_eq!(docs.hits("/client.json"), 1, "served from the cache");

    // The consent page names the publisher, and never vouches for a loopback redirect.
    let request = oauth.authorization_request(&client, &AuthorizeOptions::default());
    let consent_url = oauth.start_authorization(&request).await.unwrap();
    let page = oauth.consent_form(&consent_url).await.unwrap().page.text();
    assert!(
        page.contains("From <bdi>127.0.0.1</bdi>, not verified"),
        "{page}"
    );
    assert!(
        page.contains("Any program running here could use its name"),
        "{page}"
    );
    assert!(!page.contains("Verified by"), "{page}");
    assert!(page.contains("<p class=\"host\">127.0.0.1:"), "{page}");
    // A connection went only to the loopback publisher.
    assert!(
        app.provider
            .cimd_connection_attempts()
            .iter()
            .all(|a| a.ip().is_loopback())
    );
}

async fn cimd_login_over_https_with_a_test_certificate(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let (acceptor, pem) = test_tls();
    let docs = DocServer::start(Some(acceptor), "localhost").await;
    docs.serve_document(Some("max-age=600"));
    let ca = pem.0.clone();
    let app = ProxyApp::spawn(&fake, db.store().await, move |b| {
        dev_mode(b).cimd_extra_ca_file(ca)
    })
    .await;
    let login = app
        .client()
        .full_login_as(&RegisteredClient::metadata_document(docs.url()))
        .await
        .unwrap();
    assert!(login.tokens.access_token.starts_with("mcp_at_"));
    assert_eq!(docs.hits("/client.json"), 1);
    assert!(docs.url().starts_with("https://localhost:"));

    // Without the extra CA the certificate is not trusted: a clear error, no login.
    let other = DocServer::start(Some(test_tls().0), "localhost").await;
    other.serve_document(None);
    let app = ProxyApp::spawn(&fake, db.store().await, dev_mode).await;
    assert_refused(&app, &other.url(), "could not be fetched").await;
}

async fn cimd_cache_honours_expiry_clamps_and_serves_stale_while_the_host_is_down(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let docs = DocServer::start(None, "127.0.0.1").await;
    let app = ProxyApp::spawn(&fake, db.store().await, dev_mode).await;
    let url = docs.url();
    let client = RegisteredClient::metadata_document(&url);
    let oauth = app.client();
    let login = || async {
        let code = oauth
            .authorize_and_consent(&client, &AuthorizeOptions::default())
            .await?;
        oauth.exchange_code(&client, &code).await
    };

    // max-age below the floor: cached for 5 minutes.
    docs.serve_document(Some("public, max-age=10"));
    login().await.unwrap();
    let (fetched, fresh, expires) = cimd_row(db, &url).await.expect("cached");
    assert_eq!(fresh - fetched, 300, "clamped up to 5 min");
    assert_eq!(expires - fresh, 24 * 3600, "stale copy kept one more day");
    assert_eq!(docs.hits("/client.json"), 1);

    // Expired: fetched again; max-age above the ceiling is clamped down to a day.
    age_document(db, &url, -1, 3600).await;
    docs.serve_document(Some("max-age=31536000"));
    login().await.unwrap();
    assert_eq!(docs.hits("/client.json"), 2);
    let (fetched, fresh, _) = cimd_row(db, &url).await.unwrap();
    assert_eq!(fresh - fetched, 24 * 3600, "clamped down to 24 h");

    // Expires header (no Cache-Control): honoured.
    age_document(db, &url, -1, 3600).await;
    let mut answer = Answer::json(&OAuthTestClient::client_metadata_document(&url), None);
    let in_two_hours = std::time::SystemTime::now() + Duration::from_secs(7200);
    answer.headers.push((
        "Expires".into(),
        actix_web::http::header::HttpDate::from(in_two_hours).to_string(),
    ));
    docs.answer(answer);
    login().await.unwrap();
    let (fetched, fresh, _) = cimd_row(db, &url).await.unwrap();
    assert!(
        (7199..=7201).contains(&(fresh - fetched)),
        "{}",
        fresh - fetched
    );

    // Expired and the publisher is down: the stale copy still serves logins.
    age_document(db, &url, -60, 3600).await;
    docs.answer(Answer::status(503));
    login().await.unwrap();
    assert_eq!(
        docs.hits("/client.json"),
        5,
        "the authorization and token requests each tried the publisher first"
    );

    // More than a day past expiry: no copy left, a clear error.
    age_document(db, &url, -25 * 3600, -3600).await;
    assert_refused(&app, &url, "answered HTTP 503").await;

    // no-store: used for the request, never kept.
    docs.serve_document(Some("no-store"));
    login().await.unwrap();
    assert_eq!(cimd_row(db, &url).await, None, "no copy kept");
    let before = docs.hits("/client.json");
    login().await.unwrap();
    assert!(docs.hits("/client.json") > before, "fetched again");
}

async fn cimd_bad_documents_get_clear_errors_at_authorize_and_token(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let docs = DocServer::start(None, "127.0.0.1").await;
    let app = ProxyApp::spawn(&fake, db.store().await, dev_mode).await;
    let url = docs.url();
    let client = RegisteredClient::metadata_document(&url);
    let mut document = OAuthTestClient::client_metadata_document(&url);

    for (change, expected) in [
        (
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "private_key_jwt is not supported",
        ),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "http redirect URIs are only allowed for loopback hosts",
        ),
        (
            json!({"client_secret": "s"}),
            "must not contain a client secret",
        ),
    ] {
        let mut bad = document.clone();
        bad.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        docs.answer(Answer::json(&bad, Some("no-store")));
        assert_refused(&app, &url, expected).await;
    }
    let mut html = Answer::json(&document, Some("no-store"));
    html.headers[0].1 = "text/html".into();
    docs.answer(html);
    assert_refused(&app, &url, "not served as application/json").await;
    docs.answer(Answer::status(404));
    assert_refused(&app, &url, "answered HTTP 404").await;

    // A redirect URI the document does not list: an error page, not a redirect.
    docs.serve_document(Some("no-store"));
    let mut request = app
        .client()
        .authorization_request(&client, &AuthorizeOptions::default());
    request.url = request.url.replace("%2Fcallback", "%2Fother");
    let reply = Browser::default().get(&request.url).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.header("location").is_none());

    // A login, then the publisher changes the document to something invalid: the token
    // endpoint refuses the client with JSON (no 500).
    let oauth = app.client();
    let code = oauth
        .authorize_and_consent(&client, &AuthorizeOptions::default())
        .await
        .unwrap();
    document["token_endpoint_auth_method"] = json!("client_secret_post");
    docs.answer(Answer::json(&document, None));
    let error = oauth.exchange_code(&client, &code).await.unwrap_err();
    assert_eq!(error.status(), Some(401), "{error}");
    assert_eq!(error.oauth_error().as_deref(), Some("invalid_client"));
    assert!(
        error
            .body()
            .is_some_and(|b| b.contains("token_endpoint_auth_method must be none")),
        "{error}"
    );
}

// ---- the SSRF guard: one test per class; the decision is taken before any connection -------

/// A provider whose fetcher resolves names with `resolver` (development mode on, so that even
/// then only loopback *URLs* may reach loopback).
async fn guarded_app(db: &TestDb, resolver: Arc<StubResolver>) -> ProxyApp {
    let fake = FakeAuthKit::start();
    ProxyApp::spawn(&fake, db.store().await, move |b| {
        dev_mode(b).cimd_resolver(resolver)
    })
    .await
}

async fn assert_guarded(app: &ProxyApp, client_id: &str, expected: &str) {
    assert_refused(app, client_id, expected).await;
    assert!(
        app.provider.cimd_connection_attempts().is_empty(),
        "no connection was attempted: {:?}",
        app.provider.cimd_connection_attempts()
    );
}

async fn cimd_refuses_loopback_hosts(db: &TestDb) {
    let resolver = StubResolver::with(&[("loopback.cimd.test", &["127.0.0.1"])]);
    let app = guarded_app(db, resolver.clone()).await;
    // A public name resolving to loopback, even in development mode.
    assert_guarded(
        &app,
        "https://loopback.cimd.test/client.json",
        "resolves to a loopback address",
    )
    .await;
    assert_eq!(resolver.asked(), ["loopback.cimd.test"]);
    // Loopback URLs without development mode: refused before any lookup.
    let fake = FakeAuthKit::start();
    let strict = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    assert_guarded(
        &strict,
        "http://127.0.0.1:9/client.json",
        "resolves to a loopback address",
    )
    .await;
    assert_guarded(
        &strict,
        "https://localhost/client.json",
        "resolves to a loopback address",
    )
    .await;
}

async fn cimd_refuses_private_addresses(db: &TestDb) {
    let resolver = StubResolver::with(&[
        ("private.cimd.test", &["10.0.0.7"]),
        ("cgnat.cimd.test", &["100.64.1.1"]),
        ("ula.cimd.test", &["fd12:3456::1"]),
        // One bad address spoils the answer: no connection even to the public one.
        ("mixed.cimd.test", &["93.184.216.34", "192.168.1.10"]),
    ]);
    let app = guarded_app(db, resolver.clone()).await;
    for host in [
        "private.cimd.test",
        "cgnat.cimd.test",
        "ula.cimd.test",
        "mixed.cimd.test",
    ] {
        assert_guarded(
            &app,
            &format!("https://{host}/client.json"),
            "resolves to a private address",
        )
        .await;
    }
    assert_eq!(resolver.asked().len(), 4);
}

async fn cimd_refuses_link_local_addresses(db: &TestDb) {
    let resolver = StubResolver::with(&[
        ("metadata.cimd.test", &["169.254.169.254"]),
        ("ll6.cimd.test", &["fe80::1"]),
    ]);
    let app = guarded_app(db, resolver).await;
    for host in ["metadata.cimd.test", "ll6.cimd.test"] {
        assert_guarded(
            &app,
            &format!("https://{host}/client.json"),
            "resolves to a link-local address",
        )
        .await;
    }
}

async fn cimd_refuses_ipv6_mapped_addresses(db: &TestDb) {
    let resolver = StubResolver::with(&[
        ("mapped.cimd.test", &["::ffff:10.1.2.3"]),
        ("mapped-lo.cimd.test", &["::ffff:127.0.0.1"]),
        ("nat64.cimd.test", &["64:ff9b::a9fe:a9fe"]),
        ("sixtofour.cimd.test", &["2002:c0a8:0101::1"]),
    ]);
    let app = guarded_app(db, resolver).await;
    for (host, class) in [
        ("mapped.cimd.test", "private"),
        ("mapped-lo.cimd.test", "loopback"),
        ("nat64.cimd.test", "link-local"),
        ("sixtofour.cimd.test", "private"),
    ] {
        assert_guarded(
            &app,
            &format!("https://{host}/client.json"),
            &format!("resolves to a {class} address"),
        )
        .await;
    }
    // IP literals are refused outright (a client id names its publisher).
    assert_guarded(
        &app,
        "https://[::ffff:a01:203]/client.json",
        "the client_id URL is not acceptable",
    )
    .await;
}

async fn cimd_does_not_follow_redirects(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let docs = DocServer::start(None, "127.0.0.1").await;
    let app = ProxyApp::spawn(&fake, db.store().await, dev_mode).await;
    let mut answer = Answer::status(302);
    answer
        .headers
        .push(("Location".into(), format!("{}/moved.json", docs.origin)));
    docs.answer(answer);
    assert_refused(&app, &docs.url(), "redirects are not followed").await;
    assert_eq!(docs.hits("/client.json"), 1);
    assert_eq!(docs.hits("/moved.json"), 0, "the redirect was not followed");
}

async fn cimd_refuses_oversized_documents(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let docs = DocServer::start(None, "127.0.0.1").await;
    let app = ProxyApp::spawn(&fake, db.store().await, dev_mode).await;
    let mut document = OAuthTestClient::client_metadata_document(&docs.url());
    document["software_version"] = json!("x".repeat(6000));
    docs.answer(Answer::json(&document, None));
    assert_refused(&app, &docs.url(), "larger than 5120 bytes").await;
    assert_eq!(cimd_row(db, &docs.url()).await, None);
}

async fn cimd_gives_up_on_slow_hosts(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let slow = DocServer::start(None, "127.0.0.1").await;
    let fast = DocServer::start(None, "127.0.0.1").await;
    let app = ProxyApp::spawn(&fake, db.store().await, |b| {
        dev_mode(b).cimd_fetch_timeout(Duration::from_millis(300))
    })
    .await;
    let mut answer = Answer::json(
        &OAuthTestClient::client_metadata_document(&slow.url()),
        None,
    );
    answer.delay = Some(Duration::from_secs(30));
    slow.answer(answer);
    fast.serve_document(None);
    // The slow publisher's login fails cleanly while another publisher's login completes.
    let slow_url = authorize_url(&app, &slow.url());
    let browser = Browser::default();
    let fast_client = RegisteredClient::metadata_document(fast.url());
    let mut oauth = app.client();
    let (slow_reply, fast_login) =
        futures_util::future::join(browser.get(&slow_url), oauth.full_login_as(&fast_client)).await;
    assert_eq!(slow_reply.status, 400);
    assert!(
        slow_reply.text().contains("unreachable or too slow"),
        "{}",
        slow_reply.text()
    );
    assert!(
        fast_login
            .unwrap()
            .tokens
            .access_token
            .starts_with("mcp_at_")
    );
}

async fn cimd_refuses_a_document_for_another_client_id(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let docs = DocServer::start(None, "127.0.0.1").await;
    let app = ProxyApp::spawn(&fake, db.store().await, dev_mode).await;
    // Someone else's document, e.g. copied from its publisher.
    docs.answer(Answer::json(
        &OAuthTestClient::client_metadata_document("https://vscode.dev/oauth/client.json"),
        None,
    ));
    assert_refused(&app, &docs.url(), "client_id does not match its URL").await;
    assert_eq!(cimd_row(db, &docs.url()).await, None);
}

async fn cimd_can_be_switched_off(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let docs = DocServer::start(None, "127.0.0.1").await;
    docs.serve_document(None);
    let app = ProxyApp::spawn(&fake, db.store().await, |b| {
        dev_mode(b).client_id_metadata_documents(false)
    })
    .await;
    let metadata = Browser::default()
        .get(&app.url("/.well-known/oauth-authorization-server"))
        .await;
    assert_eq!(
        metadata.json()["client_id_metadata_document_supported"],
        json!(false)
    );
    assert_refused(&app, &docs.url(), "does not accept URL client ids").await;
    assert_eq!(docs.hits("/client.json"), 0);
}

async fn dcr_records_application_type_and_the_consent_page_describes_the_client(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    let oauth = app.client();
    let mut metadata = OAuthTestClient::default_client_metadata();

    // Missing: native when every redirect URI is loopback.
    let native = oauth.register(&metadata).await.unwrap();
    // Web with a loopback redirect URI: accepted (clients send exactly that), flagged.
    metadata["application_type"] = json!("web");
    let web = oauth.register(&metadata).await.unwrap();
    metadata["application_type"] = json!("desktop");
    let error = oauth.register(&metadata).await.unwrap_err();
    assert_eq!(
        error.oauth_error().as_deref(),
        Some("invalid_client_metadata")
    );
    // Missing with an https redirect URI: web.
    let https = oauth
        .register(&json!({
            "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "none",
        }))
        .await
        .unwrap();

    // The `application_type` recorded in the stored client's metadata.
    let stored = |id: String| async move {
        let metadata = stored_client(db, &id).await.expect("stored").metadata;
        metadata?
            .get("application_type")?
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(
        stored(native.client_id.clone()).await.as_deref(),
        Some("native")
    );
    assert_eq!(stored(web.client_id.clone()).await.as_deref(), Some("web"));
    assert_eq!(
        stored(https.client_id.clone()).await.as_deref(),
        Some("web")
    );

    let page = |client: RegisteredClient| {
        let oauth = app.client();
        async move {
            let request = oauth.authorization_request(&client, &AuthorizeOptions::default());
            let url = oauth.start_authorization(&request).await.unwrap();
            oauth.consent_form(&url).await.unwrap().page.text()
        }
    };
    let native_page = page(native).await;
    assert!(
        native_page.contains("Unverified: the application chose this name itself"),
        "{native_page}"
    );
    assert!(
        native_page.contains("Any program running here could use its name"),
        "{native_page}"
    );
    let web_page = page(web).await;
    assert!(
        web_page.contains("registered as a web application, yet it receives your sign-in"),
        "{web_page}"
    );
}
