//! Proxy mode: client input that could mislead a user or break the server. Redirect URIs whose
//! text differs from where the browser goes, client names with control or bidi characters, NUL
//! characters bound for the database, registrations a web page could send without a CORS
//! preflight; and the SQLite file's permissions.

use actix_mcp_auth::store::Store;
use actix_mcp_auth_testing::FakeAuthKit;
use serde_json::{Value, json};

use crate::{
    app::Reply,
    proxy_app::{Browser, McpClient, ProxyApp, authorize_url, pkce},
    store_support::{TestDb, insert_client, stored_client, test_keys},
};

crate::store_support::http_tests!(
    redirect_uris_are_stored_and_shown_as_the_browser_uses_them,
    client_text_with_control_or_bidi_characters_is_refused_or_stripped,
    nul_characters_get_a_400_never_a_500,
    registration_requires_a_json_content_type,
    access_logs_never_record_query_secrets,
);

async fn setup(db: &TestDb) -> (FakeAuthKit, ProxyApp, Browser) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    (fake, app, Browser::default())
}

async fn post_json(app: &ProxyApp, body: &Value) -> Reply {
    let res = awc::Client::default()
        .post(app.url("/register"))
        .send_json(body)
        .await
        .unwrap();
    Reply::read(res).await
}

/// Registers a public client with `redirect_uris` (and `extra` metadata); 201 expected.
async fn register(app: &ProxyApp, redirect_uris: &[&str], extra: Value) -> Value {
    let mut body = json!({"redirect_uris": redirect_uris, "token_endpoint_auth_method": "none"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let reply = post_json(app, &body).await;
    assert_eq!(reply.status, 201, "{body}: {}", reply.text());
    reply.json()
}

/// The consent page of a request of `client_id` for `redirect_uri`.
async fn consent_page(
    app: &ProxyApp,
    browser: &Browser,
    client_id: &str,
    redirect_uri: &str,
) -> Reply {
    let client = McpClient {
        client_id: client_id.to_owned(),
        client_secret: None,
        redirect_uri: redirect_uri.to_owned(),
    };
    let (_, challenge) = pkce();
    let authorize = browser
        .get(&authorize_url(app, &client, &challenge, "s"))
        .await;
    assert_eq!(authorize.status, 302, "{}", authorize.text());
    let location = authorize.header("location").unwrap();
    assert!(location.contains("/consent?"), "{location}");
    let page = browser.get(&location).await;
    assert_eq!(page.status, 200, "{}", page.text());
    page
}

async fn redirect_uris_are_stored_and_shown_as_the_browser_uses_them(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    // Refused: the text names one host, the browser would go to another.
    for evil in [
        "https://evil.example\\@app.example/cb",
        "https://app.example%2eevil.example/cb",
        "https://user@app.example/cb",
        "https://@app.example/cb",
        "http://127.0.0.1\\@evil.example/cb",
    ] {
        let reply = post_json(&app, &json!({"redirect_uris": [evil]})).await;
        assert_eq!(reply.status, 400, "{evil}: {}", reply.text());
        assert_eq!(reply.json()["error"], "invalid_redirect_uri", "{evil}");
    }
    // Links of the metadata follow the same rule.
    let reply = post_json(
        &app,
        &json!({"redirect_uris": ["https://app.example/cb"],
                "client_uri": "https://app.example%2eevil.example/"}),
    )
    .await;
    assert_eq!(reply.json()["error"], "invalid_client_metadata");

    // Stored (and answered) in the parsed, serialized form; the client's own spelling still
    // matches it at /authorize.
    let doc = register(
        &app,
        &["https://App.Example:443/cb", "http://127.0.0.1:4000"],
        json!({"client_uri": "https://App.Example"}),
    )
    .await;
    assert_eq!(
        doc["redirect_uris"],
        json!(["https://app.example/cb", "http://127.0.0.1:4000/"])
    );
    assert_eq!(doc["client_uri"], "https://app.example/");
    let client_id = doc["client_id"].as_str().unwrap();
    let stored = stored_client(db, client_id).await.unwrap();
    assert_eq!(
        stored.redirect_uris,
        ["https://app.example/cb", "http://127.0.0.1:4000/"]
    );
    let page = consent_page(&app, &browser, client_id, "https://App.Example:443/cb").await;
    assert!(
        page.text().contains(
            "<p class=\"host\">app.example</p><p class=\"uri\"><code>https://app.example/cb</code>"
        ),
        "{}",
        page.text()
    );
    // Loopback port variance still applies to the serialized form.
    consent_page(&app, &browser, client_id, "http://127.0.0.1:5555").await;

    // A look-alike Unicode host: shown in punycode, emphasised, its Unicode form beside it.
    let doc = register(&app, &["https://\u{0430}pp.example/cb"], json!({})).await;
    assert_eq!(
        doc["redirect_uris"],
        json!(["https://xn--pp-6kc.example/cb"])
    );
    let page = consent_page(
        &app,
        &browser,
        doc["client_id"].as_str().unwrap(),
        "https://\u{0430}pp.example/cb",
    )
    .await;
    let text = page.text();
    assert!(
        text.contains("<p class=\"host\">xn--pp-6kc.example</p>"),
        "{text}"
    );
    assert!(
        text.contains("<bdi>\u{0430}pp.example</bdi> (international name)"),
        "{text}"
    );
    assert!(
        text.contains("<code>https://xn--pp-6kc.example/cb</code>"),
        "{text}"
    );

    // A registration stored before these rules no longer matches anything, so it cannot be
    // used to send a code to the host its text hides.
    let mut old =
        crate::store_support::client(&format!("old_{}", crate::store_support::random_id()));
    old.redirect_uris = vec!["https://evil.example\\@app.example/cb".into()];
    insert_client(db, &old).await;
    for requested in [
        "https://evil.example\\@app.example/cb",
        "https://evil.example/@app.example/cb",
    ] {
        let client = McpClient {
            client_id: old.client_id.clone(),
            client_secret: None,
            redirect_uri: requested.to_owned(),
        };
        let (_, challenge) = pkce();
        let reply = browser
            .get(&authorize_url(&app, &client, &challenge, "s"))
            .await;
        assert_eq!(reply.status, 400, "{requested}");
        assert!(reply.header("location").is_none(), "{requested}");
    }
}

async fn client_text_with_control_or_bidi_characters_is_refused_or_stripped(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    for (field, value) in [
        ("client_name", "Good\u{202E}lanoitan"),
        ("client_name", "a\u{2066}b"),
        ("client_name", "left\u{200F}mark"),
        ("client_name", "line\nbreak"),
        ("client_name", "bell\u{7}"),
        ("software_id", "id\u{202D}"),
        ("software_version", "1\u{0}"),
    ] {
        let body = json!({"redirect_uris": ["https://app.example/cb"], field: value});
        let reply = post_json(&app, &body).await;
        assert_eq!(reply.status, 400, "{field}={value:?}: {}", reply.text());
        assert_eq!(
            reply.json()["error"],
            "invalid_client_metadata",
            "{value:?}"
        );
    }
    // Ordinary Unicode names are fine.
    let doc = register(
        &app,
        &["https://app.example/cb"],
        json!({"client_name": "Café 👩\u{200D}💻 العربية"}),
    )
    .await;
    assert_eq!(doc["client_name"], "Café 👩\u{200D}💻 العربية");

    // A name stored before the rule is shown without its hidden characters.
    let mut old =
        crate::store_support::client(&format!("old_{}", crate::store_support::random_id()));
    old.client_name = Some("Trusted\u{202E}ppa live\u{0007}".into());
    old.redirect_uris = vec!["https://app.example/cb".into()];
    insert_client(db, &old).await;
    let page = consent_page(&app, &browser, &old.client_id, "https://app.example/cb").await;
    let text = page.text();
    assert!(text.contains(">Trustedppa live</bdi>"), "{text}");
    assert!(
        !text.contains('\u{202E}') && !text.contains('\u{7}'),
        "{text}"
    );
}

async fn nul_characters_get_a_400_never_a_500(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    // Registration: every stored string.
    for body in [
        json!({"redirect_uris": ["https://app.example/cb"], "client_name": "a\u{0}b"}),
        json!({"redirect_uris": ["https://app.example/cb\u{0}"]}),
        json!({"redirect_uris": ["https://app.example/cb"], "scope": "openid\u{0}"}),
        json!({"redirect_uris": ["https://app.example/cb"], "client_uri": "https://app.example/\u{0}"}),
        json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["authorization_code\u{0}"]}),
        json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none\u{0}"}),
        json!({"redirect_uris": ["https://app.example/cb"], "application_type": "web\u{0}"}),
    ] {
        let reply = post_json(&app, &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error == "invalid_client_metadata" || error == "invalid_redirect_uri",
            "{body}: {error}"
        );
    }

    // /authorize: the client id is looked up, `state` and the rest are stored.
    let doc = register(&app, &["http://127.0.0.1:9999/callback"], json!({})).await;
    let client_id = doc["client_id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let good = McpClient {
        client_id: client_id.to_owned(),
        client_secret: None,
        redirect_uri: "http://127.0.0.1:9999/callback".into(),
    };
    let authorize = authorize_url(&app, &good, &challenge, "s");
    for (name, value) in [
        ("client_id", "%00"),
        ("client_id", "abc%00"),
        ("state", "st%00ate"),
        ("scope", "openid%00"),
        ("resource", "http%3A%2F%2F127.0.0.1%00"),
        ("nonce", "%00"),
    ] {
        let url = replace_param(&authorize, name, value);
        let reply = browser.get(&url).await;
        assert_eq!(reply.status, 400, "{name}: {}", reply.text());
        assert!(reply.header("location").is_none(), "{name}");
    }
    // The consent page and the callback look the transaction up.
    for path in [
        "/consent?txn_id=abc%00",
        "/auth/callback?state=abc%00&code=x",
    ] {
        let reply = browser.get(&app.url(path)).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
    }
    let reply = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("txn_id", "abc\0"),
                ("csrf_token", "x"),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());

    // /token and /revoke: JSON errors.
    for (path, form) in [
        (
            "/token",
            vec![
                ("grant_type", "authorization_code"),
                ("code", "mcp_code_x"),
                ("client_id", "abc\0"),
            ],
        ),
        (
            "/token",
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "mcp_rt_\0"),
                ("client_id", client_id),
            ],
        ),
        ("/revoke", vec![("token", "x"), ("client_id", "\0")]),
    ] {
        let reply = browser.post_form(&app.url(path), &form).await;
        assert_eq!(reply.status, 400, "{path} {form:?}: {}", reply.text());
        assert_eq!(reply.json()["error"], "invalid_request", "{path} {form:?}");
    }
    // A NUL smuggled through HTTP Basic credentials.
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("abc%00:secret");
    let res = awc::Client::default()
        .post(app.url("/token"))
        .insert_header(("Authorization", format!("Basic {basic}")))
        .send_form(&[("grant_type", "authorization_code"), ("code", "mcp_code_x")])
        .await
        .unwrap();
    let reply = Reply::read(res).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(reply.json()["error"], "invalid_client");
}

/// `url` with parameter `name` set to the raw (already encoded) `value`.
fn replace_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| p.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    pairs.push(format!("{name}={value}"));
    format!("{base}?{}", pairs.join("&"))
}

async fn registration_requires_a_json_content_type(db: &TestDb) {
    let (_fake, app, _browser) = setup(db).await;
    let body = json!({"redirect_uris": ["https://app.example/cb"]}).to_string();
    // What a web page can send cross-origin without a preflight, and no type at all.
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut request = awc::Client::default().post(app.url("/register"));
        if let Some(content_type) = content_type {
            request = request.insert_header(("Content-Type", content_type));
        }
        let reply = Reply::read(request.send_body(body.clone()).await.unwrap()).await;
        assert_eq!(reply.status, 400, "{content_type:?}: {}", reply.text());
        assert_eq!(
            reply.json()["error"],
            "invalid_client_metadata",
            "{content_type:?}"
        );
        assert_eq!(
            reply.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "a browser client can read why"
        );
    }
    for content_type in ["application/json", "application/json; charset=utf-8"] {
        let res = awc::Client::default()
            .post(app.url("/register"))
            .insert_header(("Content-Type", content_type))
            .send_body(body.clone())
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201, "{content_type}");
    }
}

/// The SQLite file, its WAL and shared-memory files are readable by their owner only.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_created_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = TestDb::sqlite();
    let path = db.url().trim_start_matches("sqlite://").to_owned();
    assert!(!std::path::Path::new(&path).exists());
    let store = Store::connect(db.url(), test_keys()).await.unwrap();
    store.migrate().await.unwrap();
    // A write through the store, so the WAL and shared-memory files exist.
    store.purge_expired(100).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}: {:o}", mode & 0o777);
    }
    store.close().await;
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A proxy-mode server with the examples' access log (`TracingLogger` with span `B`), logging
/// into `captured`: the subscriber is the default of the server's worker thread.
async fn logged_server<B: tracing_actix_web::RootSpanBuilder + 'static>(
    fake: &FakeAuthKit,
    store: Store,
    captured: &Captured,
) -> String {
    use actix_web::{App, HttpServer};
    use tracing_subscriber::fmt::format::FmtSpan;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let provider = crate::proxy_app::builder(fake, &base_url)
        .build(store)
        .unwrap();
    let captured = captured.clone();
    let server = HttpServer::new(move || {
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_span_events(FmtSpan::CLOSE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // The factory runs on the worker thread: make the capture its default for good.
        std::mem::forget(tracing::subscriber::set_default(subscriber));
        App::new()
            .wrap(tracing_actix_web::TracingLogger::<B>::new())
            .service(provider.routes())
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    base_url
}

async fn access_logs_never_record_query_secrets(db: &TestDb) {
    use actix_mcp_auth::access_log::RedactingRootSpanBuilder;
    let fake = FakeAuthKit::start();
    let targets = [
        "/auth/callback?code=secret&state=secret",
        "/auth/callback?code=secret-code-1&state=secret-state-1",
        "/authorize?client_id=client-1&state=secret-state-2&code_challenge=secret-challenge",
        "/token?access_token=secret-at&refresh_token=secret-rt&client_secret=secret-cs",
        "/.well-known/oauth-protected-resource?token=secret-t&id_token=secret-id",
    ];
    let request_all = |base: String| async move {
        for target in targets {
            let res = awc::Client::default()
                .get(format!("{base}{target}"))
                .send()
                .await
                .unwrap();
            assert!(res.status().as_u16() < 500, "{target}: {}", res.status());
        }
    };

    // The default span builder records the secrets: the capture works.
    let default_log = Captured::default();
    let base = logged_server::<tracing_actix_web::DefaultRootSpanBuilder>(
        &fake,
        db.store().await,
        &default_log,
    )
    .await;
    request_all(base).await;
    assert!(
        default_log.text().contains("code=secret-code-1"),
        "{}",
        default_log.text()
    );

    // The examples' builder does not.
    let log = Captured::default();
    let base = logged_server::<RedactingRootSpanBuilder>(&fake, db.store().await, &log).await;
    request_all(base).await;
    let text = log.text();
    for path in ["/auth/callback?", "/authorize?", "/token?", "/.well-known/"] {
        assert!(
            text.contains(&format!("http.target={path}")),
            "{path}: {text}"
        );
    }
    // (`client_secret=[redacted]` names a parameter; no value may appear.)
    assert!(
        !text.contains("=secret") && !text.contains("secret-"),
        "{text}"
    );
    assert!(
        text.contains("/auth/callback?code=[redacted]&state=[redacted]"),
        "{text}"
    );
    assert!(text.contains("client_id=client-1"), "{text}");
}

/// Every example that writes an access log writes it through the redacting span builder, and
/// every example server sets the client timeouts (the library's examples and the load harness's
/// servers, which share their code).
#[test]
fn examples_redact_their_access_logs_and_set_client_timeouts() {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = crate_dir.join("examples");
    let rust_files = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect()
    };
    let mut files = rust_files(&dir);
    files.extend(rust_files(&crate_dir.join("../loadtest/src/bin")));
    files.push(dir.join("support/mod.rs"));
    let mut servers = 0;
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        let name = file.display();
        for forbidden in [
            "TracingLogger::default()",
            "DefaultRootSpanBuilder",
            "Logger::default()",
        ] {
            assert!(!source.contains(forbidden), "{name} uses {forbidden}");
        }
        if source.contains(".wrap(TracingLogger") {
            assert!(source.contains("RedactingRootSpanBuilder"), "{name}");
        }
        if source.contains("HttpServer::new(") {
            servers += 1;
            assert!(source.contains(".client_request_timeout("), "{name}");
            assert!(source.contains(".client_disconnect_timeout("), "{name}");
        }
    }
    assert!(servers >= 5, "found {servers} example servers");
}

/// A server built like the examples (client timeouts, body deadline) cuts off a client that
/// sends its body one byte every 2 s: the connection is answered and closed long before the
/// body could be complete.
#[actix_web::test]
async fn a_dribbled_body_is_cut_off() {
    use std::{
        io::{Read as _, Write as _},
        time::Duration,
    };

    use actix_web::{App, HttpServer, dev::Service as _};
    let db = TestDb::sqlite();
    let fake = FakeAuthKit::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let provider = crate::proxy_app::builder(&fake, &format!("http://{addr}"))
        .build(db.store().await)
        .unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .wrap_fn(|mut req, srv| {
                actix_mcp_auth::body_deadline::set_body_deadline(&mut req, Duration::from_secs(1));
                srv.call(req)
            })
            .service(provider.routes())
    })
    .client_request_timeout(Duration::from_secs(5))
    .client_disconnect_timeout(Duration::from_secs(2))
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);

    const BODY_LEN: usize = 100;
    let (sent, answer) = actix_web::rt::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(addr).unwrap();
        write!(
            socket,
            "POST /register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {BODY_LEN}\r\n\r\n"
        )
        .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut answer = Vec::new();
        let mut sent = 0;
        while sent < BODY_LEN {
            if socket.write_all(b" ").is_err() {
                break;
            }
            sent += 1;
            // Waiting for an answer paces the dribble: one byte per 2 s read timeout.
            let mut buf = [0u8; 4096];
            match socket.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        // Read what is left until the server closes.
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = socket.read_to_end(&mut answer);
        (sent, String::from_utf8_lossy(&answer).into_owned())
    })
    .await
    .unwrap();
    assert!(sent < BODY_LEN / 2, "the server waited for {sent} bytes");
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
}
