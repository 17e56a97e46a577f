//! Headless Chromium through chromedriver: finding both, starting chromedriver on a free
//! loopback port, one WebDriver session (a fresh browser profile) per [`Browser`], and the few
//! Chromium-specific commands the tests need (DevTools calls, the console log).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::Duration,
};

use fantoccini::{
    Client, ClientBuilder, Locator, elements::Element, wd::WebDriverCompatibleCommand,
};
use serde_json::{Value, json};

/// The URL of the running chromedriver (set once by [`Chromedriver::start`]).
static DRIVER_URL: OnceLock<String> = OnceLock::new();
/// The Chromium binary chromedriver starts.
static CHROMIUM: OnceLock<PathBuf> = OnceLock::new();
/// Sessions not closed yet (a failed test leaves its browsers open): ended before chromedriver
/// stops, so no Chromium outlives the tests.
static OPEN_SESSIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The browser and its driver, found on this machine.
pub struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The file named by `variable` when it is set (and then only that one), else the first of
/// `candidates` that exists; the error says where we looked.
fn explicit_or(variable: &str, candidates: &[&str]) -> Result<PathBuf, String> {
    match std::env::var_os(variable) {
        Some(path) => {
            let path = PathBuf::from(path);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("{variable}={} is not a file", path.display()))
            }
        }
        None => first_existing(candidates)
            .ok_or_else(|| format!("none of {}; or set {variable}", candidates.join(", "))),
    }
}

impl Tools {
    /// Chromium (`CHROME_BIN` or Debian's paths) and chromedriver (`CHROMEDRIVER` or
    /// Debian's); the error says what is missing.
    pub fn find() -> Result<Self, String> {
        let chromium = explicit_or(
            "CHROME_BIN",
            &["/usr/lib/chromium/chromium", "/usr/bin/chromium"],
        )
        .map_err(|where_| format!("Chromium is not installed ({where_})"))?;
        let chromedriver = explicit_or(
            "CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        )
        .map_err(|where_| format!("chromedriver is not installed ({where_})"))?;
        Ok(Self {
            chromium,
            chromedriver,
        })
    }
}

/// The chromedriver process of this test binary; killed when dropped.
pub struct Chromedriver {
    child: Child,
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port (it picks one: `--port=0`) and waits for
    /// the line announcing it.
    pub fn start(tools: &Tools) -> Self {
        let mut child = Command::new(&tools.chromedriver)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.chromedriver.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("chromedriver exited before announcing its port");
            };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_owned();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let _ = DRIVER_URL.set(format!("http://127.0.0.1:{port}"));
        let _ = CHROMIUM.set(tools.chromium.clone());
        Self { child }
    }
}

/// `DELETE /session/{id}` with a plain blocking request (no runtime is left at this point).
fn end_session(driver_url: &str, session: &str) {
    use std::io::{Read as _, Write as _};
    let Some(addr) = driver_url.strip_prefix("http://") else {
        return;
    };
    if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = write!(
            stream,
            "DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Some(url) = DRIVER_URL.get() {
            let left =
                std::mem::take(&mut *OPEN_SESSIONS.lock().unwrap_or_else(|e| e.into_inner()));
            for session in left {
                end_session(url, &session);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium's flags: headless, and no traffic except to loopback (every host name resolves
/// to nothing except 127.0.0.1; no background, update or first-run requests).
pub fn chromium_args(javascript: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-dev-shm-usage",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1280,1000",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !javascript {
        args.push("--blink-settings=scriptEnabled=false".to_owned());
    }
    args
}

/// Options of a browser session.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Turn JavaScript off in pages.
    pub no_javascript: bool,
}

/// One browser with its own fresh profile (a WebDriver session).
pub struct Browser {
    pub client: Client,
}

/// A DevTools protocol call through chromedriver (`goog/cdp/execute`).
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"cmd": self.cmd, "params": self.params}).to_string()),
        )
    }
}

/// Reads (and clears) the browser's console log (`goog:loggingPrefs`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// How long a test waits for something the browser is doing.
const PATIENCE: Duration = Duration::from_secs(20);

impl Browser {
    /// A new browser (new profile, no cookies) with the console log recorded.
    pub async fn open(options: Options) -> Self {
        let url = DRIVER_URL.get().expect("chromedriver is running");
        let chromium = CHROMIUM.get().expect("chromium found");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium.display().to_string(),
                "args": chromium_args(!options.no_javascript),
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"));
        if let Ok(Some(id)) = client.session_id().await {
            OPEN_SESSIONS.lock().unwrap().push(id);
        }
        Self { client }
    }

    /// Ends the session (and the browser process).
    pub async fn close(self) {
        if let Ok(Some(id)) = self.client.session_id().await {
            OPEN_SESSIONS.lock().unwrap().retain(|s| *s != id);
        }
        let _ = self.client.close().await;
    }

    /// A DevTools protocol command's result.
    pub async fn cdp(&self, cmd: &'static str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp { cmd, params })
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// `prefers-color-scheme` as the page sees it.
    pub async fn color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
    }

    /// A viewport of `width` × `height` CSS pixels, as a phone (or back to desktop).
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// The console messages since the last call (each `LEVEL message`).
    pub async fn console(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or_else(|e| panic!("reading the browser log: {e}"));
        log.as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                format!(
                    "{} {}",
                    entry["level"].as_str().unwrap_or_default(),
                    entry["message"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    /// Fails if the console reported any Content-Security-Policy violation.
    pub async fn assert_no_csp_violation(&self, page: &str) {
        let violations: Vec<String> = self
            .console()
            .await
            .into_iter()
            .filter(|m| m.contains("Content Security Policy") || m.contains("Content-Security"))
            .collect();
        assert!(
            violations.is_empty(),
            "{page}: CSP violations: {violations:#?}"
        );
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("current URL")
    }

    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no {css} on {}: {e}", self.url_string().await),
        }
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|all| all.len())
            .unwrap_or(0)
    }

    async fn url_string(&self) -> String {
        self.client
            .current_url()
            .await
            .map(String::from)
            .unwrap_or_default()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.find("body").await.text().await.expect("body text")
    }

    /// Waits until the page's visible text contains `needle` and returns that text. A click
    /// that submits a form returns before the next page loads: reading the body at once can
    /// see the old page or a body the navigation has just detached (a stale element).
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let text = match self.client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the page never showed {needle:?}; at {}: {text}",
                self.url_string().await
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the current URL starts with `prefix`.
    pub async fn wait_for_url(&self, prefix: &str) -> url::Url {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let url = self.url().await;
            if url.as_str().starts_with(prefix) {
                return url;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the browser never reached {prefix}; it is at {url}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Presses a key (a WebDriver key code such as `\u{E004}` for Tab).
    pub async fn press(&self, key: char) {
        use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
        let actions = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client
            .perform_actions(actions)
            .await
            .expect("key press");
    }

    /// Presses Shift+Tab (focus moves backwards).
    pub async fn press_shift_tab(&self) {
        use fantoccini::{
            actions::{InputSource as _, KeyAction, KeyActions},
            key::Key,
        };
        let (shift, tab) = (char::from(Key::Shift), char::from(Key::Tab));
        let actions = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: shift })
            .then(KeyAction::Down { value: tab })
            .then(KeyAction::Up { value: tab })
            .then(KeyAction::Up { value: shift });
        self.client
            .perform_actions(actions)
            .await
            .expect("key press");
    }

    /// A PNG of the whole page.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG")
    }
}

/// Writes `png` to `dir/name` when `dir` is set (the screenshots script).
pub fn save(dir: Option<&Path>, name: &str, png: &[u8]) {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).expect("screenshot directory");
        std::fs::write(dir.join(name), png).expect("write screenshot");
    }
}
