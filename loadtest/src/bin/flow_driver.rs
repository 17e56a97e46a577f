//! **FOR LOAD AND FAULT TESTS ONLY.** Drives proxy-mode replicas (`loadtest/src/bin/replica.rs`,
//! `loadtest/src/bin/bench_proxy_server.rs`) through the real OAuth flow with
//! `testing::OAuthTestClient`, step by step, sending each step to a chosen replica.
//!
//! All replicas share one public base URL (`--public`, their `MCP_BASE_URL`: the issuer, the
//! resource and the callback AuthKit redirects to) but listen on their own ports (`--servers`).
//! Every URL the flow hands the browser under the public origin (consent page, form action,
//! callback) is rewritten to the replica chosen for that step, as a load balancer would route
//! it.
//!
//! ```text
//! flow_driver login      --public URL [--servers A,...]
//!     one login (register, authorize, consent, AuthKit, callback, token, whoami) on the first
//!     server; prints CLIENT_ID=, ACCESS_TOKEN=, REFRESH_TOKEN=, SUBJECT=. On failure prints
//!     LOGIN_FAILED step=<step> status=<status|none> error=<oauth error|none> and exits 3.
//! flow_driver kill-login --public URL --first A --second B --kill-after STEP --wait-file F
//!     a login whose steps up to STEP (authorize | consent-page | consent-post | callback) run
//!     on A; then prints PAUSED_AFTER=<STEP>, waits until file F exists (the caller kills A
//!     meanwhile), and runs the rest on B: consent page, consent POST, AuthKit, callback, token,
//!     MCP whoami, refresh, whoami with the refreshed token. Prints LOGIN_COMPLETED on success.
//! flow_driver tokens     --public URL --servers A,B --count N [--concurrency C] --out FILE
//!     N distinct access tokens: C logins (one registered client, C grants), then refresh
//!     chains (each refresh issues a new access token; earlier ones stay valid) spread over the
//!     servers. Writes one token per line to FILE.
//! flow_driver flows      --public URL --servers A,B [--duration S] [--concurrency C]
//!     full logins (register → whoami) for S seconds, alternating the servers; prints
//!     FLOWS ok=.. errors=.. seconds=.. rate=.. p50_ms=.. p99_ms=..
//! flow_driver touch      --servers A[,B] --tokens FILE [--concurrency C] [--mcp-path /mcp]
//!     one MCP tools/list per token (every token once, servers alternating); prints
//!     TOUCH requests=.. ok=.. seconds=.. rate=.. p50_ms=.. p99_ms=.. statuses=<status:count,..>
//! flow_driver logins     --public URL --servers A[,B] --count N [--concurrency C] --out FILE
//!     N full logins (register → token, each with its own client and browser; the token is
//!     not used), C at a time; writes `CLIENT_ID ACCESS_TOKEN REFRESH_TOKEN` per line to FILE
//!     and prints LOGINS ok=.. seconds=.. rate=.. p50_ms=.. p99_ms=..
//! flow_driver refreshes  --public URL --servers A[,B] --logins FILE [--concurrency C] --out F2
//!     one refresh-token grant per line of a `logins` (or `refreshes`) file, C at a time;
//!     writes the rotated pairs to F2 in the same format and prints REFRESHES ok=.. seconds=..
//! ```
//!
//! `logins`, `refreshes` and `touch` (with the access tokens of a `logins` file) are the three
//! units of work whose server CPU `scripts/cost-per-login.sh` measures one after the other.
//!
//! `--mcp-path` (default `/mcp`) is the MCP path below the public base URL. The servers need
//! `MCP_AUTH_RATE_LIMITS=off` for the bulk commands (every request comes from one address).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_mcp_auth_testing::{
    AuthorizeOptions, ConsentDecision, DEFAULT_REDIRECT_URI, Endpoints, OAuthClientError,
    OAuthTestClient, RegisteredClient, TokenSet,
};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, String>;

fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let mut options = HashMap::new();
    while let Some(key) = args.next() {
        let Some(name) = key.strip_prefix("--") else {
            fail(format!("unexpected argument {key:?}"));
        };
        let value = args
            .next()
            .unwrap_or_else(|| fail(format!("--{name} needs a value")));
        options.insert(name.to_owned(), value);
    }
    let opts = Options(options);
    let outcome = actix_web::rt::System::new().block_on(async move {
        match command.as_str() {
            "login" => login(&opts).await,
            "kill-login" => kill_login(&opts).await,
            "tokens" => tokens(&opts).await,
            "flows" => flows(&opts).await,
            "touch" => touch(&opts).await,
            "logins" => logins(&opts).await,
            "refreshes" => refreshes(&opts).await,
            other => Err(format!(
                "unknown command {other:?} (login, kill-login, tokens, flows, touch, logins, \
                 refreshes)"
            )),
        }
    });
    if let Err(e) = outcome {
        fail(e);
    }
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

struct Options(HashMap<String, String>);

impl Options {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn number(&self, name: &str, default: u64) -> Result<u64> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| format!("--{name} must be a number, got {raw:?}")),
        }
    }

    fn servers(&self) -> Result<Vec<String>> {
        let servers: Vec<String> = self
            .required("servers")?
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            return Err("--servers lists no server".to_owned());
        }
        Ok(servers)
    }

    fn site(&self) -> Result<Site> {
        Ok(Site {
            public: self.required("public")?.trim_end_matches('/').to_owned(),
            mcp_path: self.get("mcp-path").unwrap_or("/mcp").to_owned(),
        })
    }
}

/// The public face shared by the replicas.
#[derive(Clone)]
struct Site {
    public: String,
    mcp_path: String,
}

impl Site {
    /// The endpoints of replica `server` (`http://127.0.0.1:PORT`) with the public issuer and
    /// resource.
    fn endpoints(&self, server: &str) -> Endpoints {
        Endpoints {
            issuer: self.public.clone(),
            resource: format!("{}{}", self.public, self.mcp_path),
            mcp_url: format!("{server}{}", self.mcp_path),
            authorization_endpoint: format!("{server}/authorize"),
            token_endpoint: format!("{server}/token"),
            registration_endpoint: Some(format!("{server}/register")),
            revocation_endpoint: Some(format!("{server}/revoke")),
        }
    }

    /// `url` routed to replica `server` when it points at the public origin.
    fn route(&self, url: &str, server: &str) -> String {
        match url.strip_prefix(&self.public) {
            Some(rest) if rest.is_empty() || rest.starts_with(['/', '?']) => {
                format!("{server}{rest}")
            }
            _ => url.to_owned(),
        }
    }

    /// A client (browser) of replica `server` with an empty cookie jar.
    fn client(&self, server: &str) -> OAuthTestClient {
        OAuthTestClient::new(server).with_endpoints(self.endpoints(server))
    }

    /// Another tab of `browser`'s browser, talking to replica `server`.
    fn tab(&self, browser: &OAuthTestClient, server: &str) -> OAuthTestClient {
        browser
            .for_server(server)
            .with_endpoints(self.endpoints(server))
    }
}

/// A failed step, with what the server answered.
struct StepError {
    step: &'static str,
    error: OAuthClientError,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step {}: {}", self.step, self.error)
    }
}

fn at(step: &'static str) -> impl FnOnce(OAuthClientError) -> StepError {
    move |error| StepError { step, error }
}

/// The points after which `kill-login` pauses and moves to the second replica.
const KILL_POINTS: [&str; 4] = ["authorize", "consent-page", "consent-post", "callback"];

/// Where `kill-login` moves to the second replica: after the step named first, once the pause
/// (the caller killing the first replica) is over, on the server named last.
type Switch<'a> = (
    &'a str,
    &'a dyn Fn() -> futures_util::future::LocalBoxFuture<'static, ()>,
    &'a str,
);

/// What a login produced.
struct LoginResult {
    client: RegisteredClient,
    tokens: TokenSet,
    subject: String,
}

/// One whole login. Steps run on `first`; with `switch = Some((step, pause, second))` the
/// steps after `step` run on `second`, once `pause` has completed. `client` reuses a registered
/// client instead of registering one. With `use_token` the new access token calls `whoami`
/// (the login's `subject` is then the caller's; empty otherwise).
async fn run_login(
    site: &Site,
    first: &str,
    client: Option<RegisteredClient>,
    switch: Option<Switch<'_>>,
    use_token: bool,
) -> std::result::Result<LoginResult, StepError> {
    let browser = site.client(first);
    let trace = switch.is_some();
    let mut current = (site.tab(&browser, first), first.to_owned());
    let checkpoint = async |done: &str, current: &mut (OAuthTestClient, String)| {
        if trace {
            println!("STEP {done} served by {}", current.1);
        }
        if let Some((step, pause, second)) = &switch
            && *step == done
        {
            pause().await;
            *current = (site.tab(&browser, second), (*second).to_owned());
        }
    };

    let registered = match client {
        Some(client) => client,
        None => current
            .0
            .register(&OAuthTestClient::default_client_metadata())
            .await
            .map_err(at("register"))?,
    };
    checkpoint("register", &mut current).await;
    let request = current
        .0
        .authorization_request(&registered, &AuthorizeOptions::default());
    let consent_url = current
        .0
        .start_authorization(&request)
        .await
        .map_err(at("authorize"))?;
    checkpoint("authorize", &mut current).await;

    let mut form = current
        .0
        .consent_form(&site.route(&consent_url, &current.1))
        .await
        .map_err(at("consent page"))?;
    checkpoint("consent-page", &mut current).await;

    form.action = site.route(&form.action, &current.1);
    let upstream = current
        .0
        .submit_consent(&form, ConsentDecision::Approve)
        .await
        .map_err(at("consent POST"))?;
    checkpoint("consent-post", &mut current).await;

    let callback = current
        .0
        .follow(&upstream)
        .await
        .map_err(at("AuthKit authorize"))?;
    if trace {
        println!("STEP authkit-login served by {}", origin(&upstream));
    }
    let code = current
        .0
        .finish_authorization(&request, &site.route(&callback, &current.1))
        .await
        .map_err(at("callback"))?;
    checkpoint("callback", &mut current).await;

    let tokens = current
        .0
        .exchange_code(&registered, &code)
        .await
        .map_err(at("token"))?;
    checkpoint("token", &mut current).await;
    if !use_token {
        return Ok(LoginResult {
            client: registered,
            tokens,
            subject: String::new(),
        });
    }
    let subject = whoami(&current.0, &tokens.access_token)
        .await
        .map_err(at("MCP whoami"))?;
    checkpoint("whoami", &mut current).await;
    Ok(LoginResult {
        client: registered,
        tokens,
        subject,
    })
}

/// The scheme, host and port of `url`.
fn origin(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.origin().ascii_serialization())
}

/// Calls `whoami` and returns the subject; anything but a 200 with a subject is an error.
async fn whoami(
    client: &OAuthTestClient,
    token: &str,
) -> std::result::Result<String, OAuthClientError> {
    let answer = client.call_tool(token, "whoami", json!({})).await?;
    let subject = (answer.status == 200)
        .then(|| answer.json().ok())
        .flatten()
        .and_then(|doc| {
            let text = doc.pointer("/result/content/0/text")?.as_str()?.to_owned();
            let caller: Value = serde_json::from_str(&text).ok()?;
            caller.get("subject")?.as_str().map(str::to_owned)
        });
    subject.ok_or_else(|| OAuthClientError::Status {
        step: "mcp whoami",
        url: client.endpoints().mcp_url.clone(),
        status: answer.status,
        body: answer.text(),
        location: None,
    })
}

fn print_failure(error: &StepError) {
    println!(
        "LOGIN_FAILED step={} status={} error={}",
        error.step.replace(' ', "_"),
        error
            .error
            .status()
            .map_or_else(|| "none".to_owned(), |s| s.to_string()),
        error
            .error
            .oauth_error()
            .unwrap_or_else(|| "none".to_owned()),
    );
    eprintln!("login failed: {error}");
}

// ---- login ----------------------------------------------------------------------------------

async fn login(opts: &Options) -> Result<()> {
    let site = opts.site()?;
    let servers = match opts.get("servers") {
        Some(_) => opts.servers()?,
        None => vec![site.public.clone()],
    };
    match run_login(&site, &servers[0], None, None, true).await {
        Ok(login) => {
            println!("CLIENT_ID={}", login.client.client_id);
            println!("ACCESS_TOKEN={}", login.tokens.access_token);
            println!(
                "REFRESH_TOKEN={}",
                login.tokens.refresh_token.unwrap_or_default()
            );
            println!("SUBJECT={}", login.subject);
            Ok(())
        }
        Err(error) => {
            print_failure(&error);
            std::process::exit(3);
        }
    }
}

// ---- kill-login -----------------------------------------------------------------------------

async fn kill_login(opts: &Options) -> Result<()> {
    let site = opts.site()?;
    let first = opts.required("first")?.trim_end_matches('/').to_owned();
    let second = opts.required("second")?.trim_end_matches('/').to_owned();
    let kill_after = opts.get("kill-after").unwrap_or("consent-page").to_owned();
    if !KILL_POINTS.contains(&kill_after.as_str()) {
        return Err(format!(
            "--kill-after must be one of {KILL_POINTS:?}, got {kill_after:?}"
        ));
    }
    let wait_file = opts.required("wait-file")?.to_owned();
    let timeout = Duration::from_secs(opts.number("wait-seconds", 60)?);

    let paused_after = kill_after.clone();
    let pause = move || -> futures_util::future::LocalBoxFuture<'static, ()> {
        let (wait_file, paused_after) = (wait_file.clone(), paused_after.clone());
        Box::pin(async move {
            println!("PAUSED_AFTER={paused_after}");
            let _ = std::io::stdout().flush();
            let started = Instant::now();
            while !std::path::Path::new(&wait_file).exists() {
                if started.elapsed() > timeout {
                    fail(format!("{wait_file} did not appear within {timeout:?}"));
                }
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            println!("RESUMED_ON_SECOND");
            let _ = std::io::stdout().flush();
        })
    };
    let started = Instant::now();
    let login = match run_login(
        &site,
        &first,
        None,
        Some((kill_after.as_str(), &pause, second.as_str())),
        true,
    )
    .await
    {
        Ok(login) => login,
        Err(error) => {
            print_failure(&error);
            std::process::exit(3);
        }
    };
    // The session keeps working on the surviving replica: refresh, then use the new token.
    let client = site.client(&second);
    let refresh = login
        .tokens
        .refresh_token
        .clone()
        .ok_or("the token answer has no refresh token")?;
    let refreshed = client
        .refresh(&login.client, &refresh, None)
        .await
        .map_err(|e| format!("refresh on the second replica: {e}"))?;
    println!("STEP refresh served by {second}");
    let subject = whoami(&client, &refreshed.access_token)
        .await
        .map_err(|e| format!("whoami with the refreshed token: {e}"))?;
    println!("STEP whoami-refreshed served by {second}");
    if subject != login.subject {
        return Err(format!(
            "the refreshed token is {subject}'s, not {}'s",
            login.subject
        ));
    }
    println!(
        "LOGIN_COMPLETED kill_after={kill_after} subject={} client_id={} seconds={:.3}",
        login.subject,
        login.client.client_id,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---- tokens ---------------------------------------------------------------------------------

async fn tokens(opts: &Options) -> Result<()> {
    let site = opts.site()?;
    let servers = opts.servers()?;
    let count = opts.number("count", 1)? as usize;
    let concurrency = (opts.number("concurrency", 16)? as usize).clamp(1, count.max(1));
    let out = opts.required("out")?.to_owned();
    let started = Instant::now();

    // One registered client, `concurrency` grants.
    let registered = site
        .client(&servers[0])
        .register(&OAuthTestClient::default_client_metadata())
        .await
        .map_err(|e| format!("register: {e}"))?;
    let mut logins = Vec::new();
    for i in 0..concurrency {
        let (site, server, client) = (
            site.clone(),
            servers[i % servers.len()].clone(),
            registered.clone(),
        );
        logins.push(actix_web::rt::spawn(async move {
            run_login(&site, &server, Some(client), None, true)
                .await
                .map(|login| login.tokens)
                .map_err(|e| e.to_string())
        }));
    }
    let mut chains = Vec::new();
    for handle in logins {
        chains.push(handle.await.map_err(|e| e.to_string())??);
    }
    let logged_in = started.elapsed();

    // Refresh chains: chain i issues its share of the remaining tokens.
    let remaining = count - chains.len();
    let tokens = Rc::new(RefCell::new(
        chains
            .iter()
            .map(|t| t.access_token.clone())
            .collect::<Vec<_>>(),
    ));
    let mut handles = Vec::new();
    let chain_count = chains.len();
    for (i, first) in chains.into_iter().enumerate() {
        let share = remaining / chain_count + usize::from(i < remaining % chain_count);
        let client = site.client(&servers[i % servers.len()]);
        let (registered, tokens) = (registered.clone(), tokens.clone());
        handles.push(actix_web::rt::spawn(async move {
            let mut refresh = first.refresh_token.ok_or("no refresh token")?;
            for _ in 0..share {
                let set = client
                    .refresh(&registered, &refresh, None)
                    .await
                    .map_err(|e| format!("refresh: {e}"))?;
                refresh = set.refresh_token.ok_or("no rotated refresh token")?;
                tokens.borrow_mut().push(set.access_token);
            }
            Ok::<(), String>(())
        }));
    }
    for handle in handles {
        handle.await.map_err(|e| e.to_string())??;
    }
    let tokens = tokens.borrow();
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&out).map_err(|e| format!("cannot write {out}: {e}"))?,
    );
    for token in tokens.iter() {
        writeln!(file, "{token}").map_err(|e| e.to_string())?;
    }
    file.flush().map_err(|e| e.to_string())?;
    let total = started.elapsed();
    println!(
        "TOKENS count={} logins={chain_count} login_seconds={:.3} seconds={:.3} refresh_rate={:.1}",
        tokens.len(),
        logged_in.as_secs_f64(),
        total.as_secs_f64(),
        remaining as f64 / (total - logged_in).as_secs_f64().max(1e-9),
    );
    Ok(())
}

// ---- flows ----------------------------------------------------------------------------------

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

async fn flows(opts: &Options) -> Result<()> {
    let site = opts.site()?;
    let servers = opts.servers()?;
    let duration = Duration::from_secs_f64(
        opts.get("duration")
            .unwrap_or("5")
            .trim_end_matches('s')
            .parse::<f64>()
            .map_err(|_| "--duration must be seconds")?,
    );
    let concurrency = opts.number("concurrency", 8)?.max(1) as usize;
    let started = Instant::now();
    let deadline = started + duration;
    let latencies = Rc::new(RefCell::new(Vec::new()));
    let errors = Rc::new(RefCell::new(BTreeMap::<String, usize>::new()));
    let mut handles = Vec::new();
    for worker in 0..concurrency {
        let (site, servers) = (site.clone(), servers.clone());
        let (latencies, errors) = (latencies.clone(), errors.clone());
        handles.push(actix_web::rt::spawn(async move {
            let mut n = worker;
            while Instant::now() < deadline {
                let server = &servers[n % servers.len()];
                n += 1;
                let begun = Instant::now();
                match run_login(&site, server, None, None, true).await {
                    Ok(_) => latencies.borrow_mut().push(begun.elapsed()),
                    Err(e) => {
                        let key = format!(
                            "{}:{}",
                            e.step,
                            e.error
                                .status()
                                .map_or("none".to_owned(), |s| s.to_string())
                        );
                        if errors.borrow().is_empty() {
                            eprintln!("first flow error: {e}");
                        }
                        *errors.borrow_mut().entry(key).or_default() += 1;
                    }
                }
            }
        }));
    }
    for handle in handles {
        handle.await.map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = latencies.borrow().clone();
    latencies.sort();
    let errors = errors.borrow();
    println!(
        "FLOWS ok={} errors={} seconds={seconds:.3} rate={:.1} p50_ms={:.2} p99_ms={:.2} error_kinds={}",
        latencies.len(),
        errors.values().sum::<usize>(),
        latencies.len() as f64 / seconds,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        },
    );
    Ok(())
}

// ---- touch ----------------------------------------------------------------------------------

async fn touch(opts: &Options) -> Result<()> {
    let servers = opts.servers()?;
    let mcp_path = opts.get("mcp-path").unwrap_or("/mcp").to_owned();
    let path = opts.required("tokens")?;
    let tokens: Rc<Vec<String>> = Rc::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {path}: {e}"))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    );
    let concurrency = opts.number("concurrency", 32)?.max(1) as usize;
    let next = Rc::new(Cell::new(0usize));
    let latencies = Rc::new(RefCell::new(Vec::with_capacity(tokens.len())));
    let statuses = Rc::new(RefCell::new(BTreeMap::<String, usize>::new()));
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        // One client (connection pool) per worker and server.
        let clients: Vec<OAuthTestClient> = servers
            .iter()
            .map(|server| {
                OAuthTestClient::new(server)
                    .with_endpoints(Endpoints::for_server(server, &mcp_path))
            })
            .collect();
        let (tokens, next, latencies, statuses, message) = (
            tokens.clone(),
            next.clone(),
            latencies.clone(),
            statuses.clone(),
            message.clone(),
        );
        handles.push(actix_web::rt::spawn(async move {
            loop {
                let index = next.get();
                if index >= tokens.len() {
                    break;
                }
                next.set(index + 1);
                let client = &clients[index % clients.len()];
                let begun = Instant::now();
                let status = match client.mcp_request(Some(&tokens[index]), &message).await {
                    Ok(answer) => answer.status.to_string(),
                    Err(_) => "transport".to_owned(),
                };
                latencies.borrow_mut().push(begun.elapsed());
                *statuses.borrow_mut().entry(status).or_default() += 1;
            }
        }));
    }
    for handle in handles {
        handle.await.map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = latencies.borrow().clone();
    latencies.sort();
    let statuses = statuses.borrow();
    println!(
        "TOUCH requests={} ok={} seconds={seconds:.3} rate={:.1} p50_ms={:.2} p99_ms={:.2} statuses={}",
        latencies.len(),
        statuses.get("200").copied().unwrap_or(0),
        latencies.len() as f64 / seconds,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        statuses
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    Ok(())
}

// ---- logins and refreshes -------------------------------------------------------------------

/// One line of a `logins` or `refreshes` file: a public client and the pair it holds.
struct Held {
    client_id: String,
    access_token: String,
    refresh_token: String,
}

impl Held {
    fn line(&self) -> String {
        format!(
            "{} {} {}",
            self.client_id, self.access_token, self.refresh_token
        )
    }

    fn parse(line: &str) -> Result<Self> {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(client_id), Some(access), Some(refresh)) => Ok(Self {
                client_id: client_id.to_owned(),
                access_token: access.to_owned(),
                refresh_token: refresh.to_owned(),
            }),
            _ => Err(format!("malformed line {line:?}")),
        }
    }
}

/// Runs `job(i)` for i in 0..count, `concurrency` at a time; returns the successes with their
/// latencies, and the number of failures (the first one is printed to stderr).
async fn run_jobs<F, Fut>(
    count: usize,
    concurrency: usize,
    job: F,
) -> Result<(Vec<(usize, Held)>, Vec<Duration>, usize, f64)>
where
    F: Fn(usize) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = std::result::Result<Held, String>> + 'static,
{
    let next = Rc::new(Cell::new(0usize));
    let done = Rc::new(RefCell::new(Vec::with_capacity(count)));
    let latencies = Rc::new(RefCell::new(Vec::with_capacity(count)));
    let failures = Rc::new(Cell::new(0usize));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (next, done, latencies, failures, job) = (
            next.clone(),
            done.clone(),
            latencies.clone(),
            failures.clone(),
            job.clone(),
        );
        handles.push(actix_web::rt::spawn(async move {
            loop {
                let index = next.get();
                if index >= count {
                    break;
                }
                next.set(index + 1);
                let begun = Instant::now();
                match job(index).await {
                    Ok(held) => {
                        latencies.borrow_mut().push(begun.elapsed());
                        done.borrow_mut().push((index, held));
                    }
                    Err(e) => {
                        if failures.get() == 0 {
                            eprintln!("first failure: {e}");
                        }
                        failures.set(failures.get() + 1);
                    }
                }
            }
        }));
    }
    for handle in handles {
        handle.await.map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut done = done.take();
    done.sort_by_key(|(index, _)| *index);
    let mut latencies = latencies.take();
    latencies.sort();
    Ok((done, latencies, failures.get(), seconds))
}

/// Writes the lines of `held` to `out` and prints the summary line `LABEL ok=.. ...`.
fn report(
    label: &str,
    out: &str,
    held: &[(usize, Held)],
    latencies: &[Duration],
    failures: usize,
    seconds: f64,
) -> Result<()> {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).map_err(|e| format!("cannot write {out}: {e}"))?,
    );
    for (_, held) in held {
        writeln!(file, "{}", held.line()).map_err(|e| e.to_string())?;
    }
    file.flush().map_err(|e| e.to_string())?;
    println!(
        "{label} ok={} errors={failures} seconds={seconds:.3} rate={:.1} p50_ms={:.2} p99_ms={:.2}",
        held.len(),
        held.len() as f64 / seconds,
        percentile(latencies, 50.0),
        percentile(latencies, 99.0),
    );
    if failures > 0 {
        return Err(format!("{failures} of the {label} failed"));
    }
    Ok(())
}

async fn logins(opts: &Options) -> Result<()> {
    let site = opts.site()?;
    let servers = opts.servers()?;
    let count = opts.number("count", 1)? as usize;
    let concurrency = opts.number("concurrency", 4)? as usize;
    let out = opts.required("out")?.to_owned();
    let (held, latencies, failures, seconds) = run_jobs(count, concurrency, move |index| {
        let (site, server) = (site.clone(), servers[index % servers.len()].clone());
        async move {
            let login = run_login(&site, &server, None, None, false)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Held {
                client_id: login.client.client_id,
                access_token: login.tokens.access_token,
                refresh_token: login.tokens.refresh_token.ok_or("no refresh token")?,
            })
        }
    })
    .await?;
    report("LOGINS", &out, &held, &latencies, failures, seconds)
}

async fn refreshes(opts: &Options) -> Result<()> {
    let site = opts.site()?;
    let servers = opts.servers()?;
    let path = opts.required("logins")?;
    let concurrency = opts.number("concurrency", 4)? as usize;
    let out = opts.required("out")?.to_owned();
    let held: Rc<Vec<Held>> = Rc::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {path}: {e}"))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(Held::parse)
            .collect::<Result<_>>()?,
    );
    let count = held.len();
    let (rotated, latencies, failures, seconds) = run_jobs(count, concurrency, move |index| {
        let (site, server, held) = (
            site.clone(),
            servers[index % servers.len()].clone(),
            held.clone(),
        );
        async move {
            let old = &held[index];
            let client = RegisteredClient::public(&old.client_id, DEFAULT_REDIRECT_URI);
            let set = site
                .client(&server)
                .refresh(&client, &old.refresh_token, None)
                .await
                .map_err(|e| format!("refresh: {e}"))?;
            Ok(Held {
                client_id: old.client_id.clone(),
                access_token: set.access_token,
                refresh_token: set.refresh_token.ok_or("no rotated refresh token")?,
            })
        }
    })
    .await?;
    report("REFRESHES", &out, &rotated, &latencies, failures, seconds)
}
