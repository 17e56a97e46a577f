//! What a person does with the consent page, in a real browser.

use std::{future::Future, path::PathBuf, pin::Pin, time::Duration};

use actix_mcp_auth_testing::{AuthorizationCode, AuthorizationRequest, RegisteredClient};
use libtest_mimic::Failed;
use serde_json::{Value, json};

use crate::{
    app::Lab,
    browser::{self, Browser, Options},
    contrast,
};

/// A scenario: an async test body that panics on failure.
pub type Scenario = fn() -> Pin<Box<dyn Future<Output = ()>>>;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        /// Every scenario, by name.
        pub const ALL: &[(&str, Scenario)] = &[
            $((stringify!($name), || Box::pin($name()))),*
        ];
    };
}

scenarios!(
    contrast_math_is_right,
    allow_lands_on_the_client_with_a_code_that_redeems,
    deny_by_keyboard_lands_with_access_denied,
    a_second_browser_cannot_approve,
    works_with_javascript_off,
    long_rtl_emoji_and_markup_names_stay_in_the_card_on_a_phone_and_a_desktop,
    text_contrast_is_at_least_4_5_in_light_and_dark,
    the_server_icon_comes_from_our_origin,
    connected_apps_lists_and_revokes_after_an_authkit_sign_in,
    connected_apps_refuses_a_cross_site_revoke,
    screenshots,
);

/// Runs one scenario on its own actix system; a panic is the failure message.
pub fn run(scenario: Scenario) -> Result<(), Failed> {
    let outcome = std::panic::catch_unwind(|| actix_web::rt::System::new().block_on(scenario()));
    outcome.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".to_owned());
        Failed::from(message)
    })
}

// ---- helpers ---------------------------------------------------------------------------------

const TAB: char = '\u{E004}';
const ENTER: char = '\u{E007}';

/// Opens `/authorize` for `client` in `browser` and waits for our consent page.
async fn open_consent(
    lab: &Lab,
    browser: &Browser,
    client: &RegisteredClient,
) -> AuthorizationRequest {
    let request = lab.request(client);
    browser.goto(&request.url).await;
    browser
        .wait_for_url(&format!("{}/consent?txn_id=", lab.base_url))
        .await;
    request
}

/// The query parameters of the URL the browser landed on.
fn params(url: &url::Url) -> std::collections::BTreeMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// Waits for the client's redirect URI and returns its parameters (checked against what the
/// listener itself received).
async fn landed(lab: &Lab, browser: &Browser) -> std::collections::BTreeMap<String, String> {
    let url = browser.wait_for_url(&lab.redirect_uri).await;
    let query = url.query().unwrap_or_default().to_owned();
    assert!(
        lab.received.lock().unwrap().contains(&query),
        "the client's listener received {query}"
    );
    params(&url)
}

/// Redeems the code the browser brought back and calls the MCP endpoint with the token.
async fn redeem(
    lab: &Lab,
    client: &RegisteredClient,
    request: &AuthorizationRequest,
    answer: &std::collections::BTreeMap<String, String>,
) {
    assert_eq!(answer.get("state"), Some(&request.state));
    assert_eq!(answer.get("iss"), Some(&lab.base_url));
    let code = AuthorizationCode {
        code: answer.get("code").expect("a code").clone(),
        code_verifier: request.pkce.verifier.clone(),
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
        iss: answer.get("iss").cloned(),
        resource: request.resource.clone(),
    };
    let tokens = lab
        .client()
        .exchange_code(client, &code)
        .await
        .unwrap_or_else(|e| panic!("token request: {e}"));
    assert!(tokens.access_token.starts_with("mcp_at_"));
    assert!(tokens.refresh_token.is_some(), "offline_access was granted");
    let me = lab
        .client()
        .call_tool(&tokens.access_token, "whoami", json!({}))
        .await
        .expect("MCP call");
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json().unwrap()["subject"], "user_01TEST");
}

/// Whether the page's focus is on the Allow button.
async fn allow_is_focused(browser: &Browser) -> bool {
    browser
        .eval("return document.activeElement === document.querySelector('button[value=approve]');")
        .await
        == Value::Bool(true)
}

// ---- scenarios -------------------------------------------------------------------------------

async fn contrast_math_is_right() {
    contrast::self_check();
}

async fn allow_lands_on_the_client_with_a_code_that_redeems() {
    let lab = Lab::start(|b| b).await;
    let client = lab.register(json!("Claude Code")).await;
    let browser = Browser::open(Options::default()).await;

    // The console check can fail: a page of the client's site that breaks its own CSP is seen.
    browser
        .goto(&format!("{}/csp-probe", lab.client_site))
        .await;
    let console = browser.console().await;
    assert!(
        console
            .iter()
            .any(|m| m.contains("Content Security Policy")),
        "the probe's violation is in the console: {console:?}"
    );

    let request = open_consent(&lab, &browser, &client).await;
    let text = browser.text().await;
    let h1 = browser.find("h1").await.text().await.unwrap();
    assert!(h1.contains("Claude Code"), "{h1}");
    assert!(
        text.contains("Unverified"),
        "a DCR name is self-asserted: {text}"
    );
    assert!(
        text.contains("Stay signed in"),
        "offline_access explained: {text}"
    );
    assert!(
        text.contains(&format!("{}/mcp", lab.base_url)),
        "the MCP server's URL"
    );
    let port = url::Url::parse(&lab.redirect_uri).unwrap().port().unwrap();
    assert_eq!(
        browser.find(".host").await.text().await.unwrap(),
        format!("127.0.0.1:{port}"),
        "the redirect host is emphasised"
    );
    assert!(
        text.contains(&lab.redirect_uri),
        "the full redirect URI is shown"
    );
    assert!(
        !allow_is_focused(&browser).await,
        "Allow is not focused on load"
    );
    assert_eq!(
        browser.eval("return document.activeElement.tagName;").await,
        json!("BODY")
    );
    browser.assert_no_csp_violation("consent page").await;

    browser
        .find("button[value=approve]")
        .await
        .click()
        .await
        .unwrap();
    let answer = landed(&lab, &browser).await;
    browser.assert_no_csp_violation("after Allow").await;
    redeem(&lab, &client, &request, &answer).await;
    browser.close().await;
}

async fn deny_by_keyboard_lands_with_access_denied() {
    let lab = Lab::start(|b| b.remember_consent(Duration::from_secs(30 * 86_400))).await;
    let client = lab.register(json!("Keyboard user's client")).await;
    let browser = Browser::open(Options::default()).await;
    let request = open_consent(&lab, &browser, &client).await;

    // Tab order: the "remember" box, then Deny, then Allow.
    let focused = || async {
        browser
            .eval(
                "const e = document.activeElement; \
                 return (e.name || e.tagName) + ':' + (e.value || '');",
            )
            .await
    };
    let mut order = Vec::new();
    for _ in 0..3 {
        browser.press(TAB).await;
        order.push(focused().await);
    }
    assert_eq!(
        order,
        vec![
            json!("remember:1"),
            json!("action:deny"),
            json!("action:approve")
        ]
    );
    // Back to Deny; its focus ring is visible.
    browser.press_shift_tab().await;
    assert_eq!(focused().await, json!("action:deny"));
    let outline = browser
        .eval("return getComputedStyle(document.activeElement).outlineStyle;")
        .await;
    assert_ne!(outline, json!("none"), "the focused button shows a ring");
    browser.press(ENTER).await;

    let answer = landed(&lab, &browser).await;
    assert_eq!(
        answer.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(answer.get("state"), Some(&request.state));
    assert!(!answer.contains_key("code"));
    browser.assert_no_csp_violation("deny").await;
    browser.close().await;
}

async fn a_second_browser_cannot_approve() {
    let lab = Lab::start(|b| b).await;
    let client = lab.register(json!("Shared link")).await;
    let first = Browser::open(Options::default()).await;
    let request = open_consent(&lab, &first, &client).await;
    let consent_url = first.url().await;

    // Someone else's browser (a new profile, without the first one's cookie) opens the link.
    let second = Browser::open(Options::default()).await;
    second.goto(consent_url.as_str()).await;
    assert_eq!(second.count("button[value=approve]").await, 0, "no Allow");
    assert_eq!(second.count("form").await, 0, "no form at all");
    let text = second.text().await.to_lowercase();
    assert!(text.contains("browser you started in"), "{text}");
    assert!(text.contains("what to do next"), "{text}");
    second.assert_no_csp_violation("other-browser page").await;
    second.close().await;

    // The request is still there for the browser that started it.
    first
        .find("button[value=approve]")
        .await
        .click()
        .await
        .unwrap();
    let answer = landed(&lab, &first).await;
    redeem(&lab, &client, &request, &answer).await;
    first.close().await;
}

async fn works_with_javascript_off() {
    let lab = Lab::start(|b| b).await;
    let client = lab.register(json!("No-script client")).await;
    let browser = Browser::open(Options {
        no_javascript: true,
    })
    .await;
    // Scripts really are off: the probe page's script would rename it.
    browser.goto(&format!("{}/js-probe", lab.client_site)).await;
    assert_eq!(browser.client.title().await.unwrap(), "js-off");
    browser.console().await;

    let request = open_consent(&lab, &browser, &client).await;
    browser
        .find("button[value=approve]")
        .await
        .click()
        .await
        .unwrap();
    let answer = landed(&lab, &browser).await;
    redeem(&lab, &client, &request, &answer).await;
    browser.close().await;
}

/// Everything inside the card stays inside it, and the page does not scroll sideways.
const LAYOUT_PROBLEMS: &str = r#"
const card = document.querySelector('.card').getBoundingClientRect();
const problems = [];
if (document.documentElement.scrollWidth > window.innerWidth) {
  problems.push('horizontal scroll: ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
}
for (const el of document.querySelectorAll('.card *')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (r.left < card.left - 0.5 || r.right > card.right + 0.5) {
    problems.push(el.tagName + '.' + el.className + ' spans ' + r.left + '..' + r.right +
      ' outside ' + card.left + '..' + card.right);
  }
}
return problems;
"#;

async fn long_rtl_emoji_and_markup_names_stay_in_the_card_on_a_phone_and_a_desktop() {
    let lab = Lab::start(|b| b.remember_consent(Duration::from_secs(7 * 86_400))).await;
    let names = [
        "W".repeat(200),
        "מנהל הקבצים של הצוות — تطبيق المساعد الذكي للمطورين (MCP)".to_owned(),
        "🚀✨ Rocket 👩‍💻 Assistant 🦀🦀🦀 🇺🇳".to_owned(),
        "<img src=x onerror=alert(1)><b>bold</b> \"quoted\" & 'single'".to_owned(),
    ];
    let browser = Browser::open(Options::default()).await;
    for name in &names {
        let client = lab.register(json!(name)).await;
        for (width, height, mobile) in [(375, 812, true), (1280, 1000, false)] {
            browser.viewport(width, height, mobile).await;
            open_consent(&lab, &browser, &client).await;
            assert_eq!(
                browser.eval("return window.innerWidth;").await,
                json!(width),
                "the viewport is {width} px wide"
            );
            let problems = browser.eval(LAYOUT_PROBLEMS).await;
            assert_eq!(problems, json!([]), "{name} at {width} px");
            let shown = browser.find("h1 .client").await.text().await.unwrap();
            // (Bidi control marks such as U+200F are refused at registration.)
            assert_eq!(shown.trim(), name.trim(), "the name is shown as given");
            assert_eq!(
                browser.count(".card img").await,
                0,
                "no markup from the name"
            );
            assert!(!allow_is_focused(&browser).await);
            browser.assert_no_csp_violation(name).await;
        }
    }
    browser.close().await;
}

/// The lowest contrast of the current page, with every element under 4.5:1.
async fn contrast_failures(browser: &Browser) -> (f64, Vec<String>) {
    let report = browser.eval(contrast::COLLECT_TEXT_COLORS).await;
    let white = contrast::parse("rgb(255, 255, 255)").unwrap();
    let measured = contrast::measure(&report, white);
    assert!(measured.len() >= 4, "text was measured: {report}");
    let lowest = measured
        .iter()
        .map(|m| m.ratio)
        .fold(f64::INFINITY, f64::min);
    let failures = measured
        .iter()
        .filter(|m| m.ratio < 4.5)
        .map(|m| {
            format!(
                "{:.2}:1 {} ({:?} on {:?})",
                m.ratio, m.text, m.foreground, m.background
            )
        })
        .collect();
    (lowest, failures)
}

/// Luminance of the page's background.
async fn page_luminance(browser: &Browser) -> f64 {
    let bg = browser
        .eval("return getComputedStyle(document.body).backgroundColor;")
        .await;
    contrast::luminance(contrast::parse(bg.as_str().unwrap()).unwrap())
}

async fn text_contrast_is_at_least_4_5_in_light_and_dark() {
    let lab = Lab::start(|b| b.remember_consent(Duration::from_secs(30 * 86_400))).await;
    let client = lab.register(json!("Contrast 🎨 client")).await;
    let browser = Browser::open(Options::default()).await;
    let pages = [
        ("consent", None),
        (
            "error",
            Some(format!("{}/consent?txn_id=unknown", lab.base_url)),
        ),
    ];
    for (page, url) in &pages {
        match url {
            None => {
                open_consent(&lab, &browser, &client).await;
            }
            Some(url) => browser.goto(url).await,
        }
        for scheme in ["light", "dark"] {
            browser.color_scheme(scheme).await;
            let luminance = page_luminance(&browser).await;
            match scheme {
                "light" => assert!(luminance > 0.6, "light background: {luminance}"),
                _ => assert!(luminance < 0.05, "dark background: {luminance}"),
            }
            let (lowest, failures) = contrast_failures(&browser).await;
            assert!(
                failures.is_empty(),
                "{page} page, {scheme}: text under 4.5:1: {failures:#?}"
            );
            assert!(lowest >= 4.5, "{page} {scheme}: {lowest}");
        }
        browser.assert_no_csp_violation(page).await;
    }
    browser.close().await;
}

/// Opens the connected-apps page: AuthKit's (emulated) sign-in, then back on the page.
async fn open_connected_apps(lab: &Lab, browser: &Browser) {
    browser
        .goto(&format!("{}/connected-apps", lab.base_url))
        .await;
    browser
        .wait_for_url(&format!("{}/connected-apps", lab.base_url))
        .await;
    browser.find("h1").await;
}

async fn connected_apps_lists_and_revokes_after_an_authkit_sign_in() {
    let lab = Lab::start(|b| b).await;
    let first = lab.connect_app("Claude Desktop").await;
    let second = lab.connect_app("Cursor <b>bold</b>").await;
    assert_eq!(lab.mcp_status(&first).await, 200);
    let browser = Browser::open(Options::default()).await;
    open_connected_apps(&lab, &browser).await;
    let text = browser.text().await;
    assert!(text.contains("Connected apps"), "{text}");
    assert!(text.contains("user_01TEST"), "who is signed in: {text}");
    assert!(
        text.contains("Claude Desktop") && text.contains("Cursor <b>bold</b>"),
        "{text}"
    );
    assert!(text.contains("127.0.0.1"), "the client's host: {text}");
    assert_eq!(browser.count("li.app").await, 2);
    assert_eq!(browser.count("b").await, 0, "a client's markup is text");
    browser.assert_no_csp_violation("connected apps").await;
    for scheme in ["light", "dark"] {
        browser.color_scheme(scheme).await;
        let (lowest, failures) = contrast_failures(&browser).await;
        assert!(
            failures.is_empty(),
            "connected apps, {scheme}: {failures:#?}"
        );
        assert!(lowest >= 4.5, "connected apps {scheme}: {lowest}");
    }

    // Revoke the first app (the newest is listed first: find it by name).
    let clicked = browser
        .eval(
            "const li = [...document.querySelectorAll('li.app')]\
               .find(e => e.textContent.includes('Claude Desktop'));\
             li.querySelector('button.revoke').click(); return true;",
        )
        .await;
    assert_eq!(clicked, json!(true));
    browser
        .wait_for_url(&format!("{}/connected-apps?revoked=1", lab.base_url))
        .await;
    let text = browser.wait_for_text("Access revoked.").await;
    assert_eq!(browser.count("li.app").await, 1);
    assert!(!text.contains("Claude Desktop"), "{text}");
    // This replica dropped the revoked grant's token at once; the other app keeps working.
    assert_eq!(lab.mcp_status(&first).await, 401);
    assert_eq!(lab.mcp_status(&second).await, 200);

    // Signing out ends the page's session: the page asks AuthKit again.
    browser.find("#sign-out").await.click().await.unwrap();
    browser.wait_for_text("Signed out").await;
    let calls = lab.fake.calls(actix_mcp_auth_testing::Endpoint::Token);
    open_connected_apps(&lab, &browser).await;
    assert_eq!(
        lab.fake.calls(actix_mcp_auth_testing::Endpoint::Token),
        calls + 1,
        "a new AuthKit sign-in"
    );
    assert_eq!(
        lab.mcp_status(&second).await,
        200,
        "signing out revokes nothing"
    );
    browser.close().await;
}

async fn connected_apps_refuses_a_cross_site_revoke() {
    let lab = Lab::start(|b| b).await;
    let token = lab.connect_app("Victim's app").await;
    let browser = Browser::open(Options::default()).await;
    open_connected_apps(&lab, &browser).await;
    let grant = browser
        .eval("return document.querySelector('li.app').dataset.grant;")
        .await;
    let grant = grant.as_str().expect("a grant id").to_owned();
    // Another site's page posts the revoke form without the session's token: first with the
    // browser's cookies left to SameSite, then with a guessed token.
    for csrf in ["", "guessed"] {
        let page = format!(
            "data:text/html,<form method=post action='{}/connected-apps/revoke'>\
             <input name=grant_id value='{grant}'><input name=csrf_token value='{csrf}'>\
             <button id=go>go</button></form>",
            lab.base_url
        );
        browser.goto(&page).await;
        browser.find("#go").await.click().await.unwrap();
        // Waits through the navigation; a page without the refusal fails after the patience.
        browser.wait_for_text("Open the page again").await;
        assert!(
            browser
                .url()
                .await
                .as_str()
                .starts_with(&format!("{}/connected-apps/revoke", lab.base_url)),
            "the refusal is our page's"
        );
    }
    assert_eq!(lab.mcp_status(&token).await, 200, "nothing was revoked");
    open_connected_apps(&lab, &browser).await;
    assert_eq!(browser.count("li.app").await, 1);
    browser.close().await;
}

const ICON_SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"40\" \
                        viewBox=\"0 0 40 40\"><rect width=\"40\" height=\"40\" rx=\"9\" \
                        fill=\"#0f766e\"/><path d=\"M11 28 20 12l9 16z\" fill=\"#fff\"/></svg>";

async fn the_server_icon_comes_from_our_origin() {
    let icon =
        std::env::temp_dir().join(format!("mcp_auth_icon_{:016x}.svg", rand::random::<u64>()));
    std::fs::write(&icon, ICON_SVG).unwrap();
    let path = icon.clone();
    let lab = Lab::start(move |b| b.server_name("Acme Tools").server_icon_file(path)).await;
    std::fs::remove_file(&icon).unwrap(); // read once at start-up
    let client = lab.register(json!("Icon viewer")).await;
    let browser = Browser::open(Options::default()).await;
    open_consent(&lab, &browser, &client).await;
    let src = browser
        .find(".brand img")
        .await
        .prop("src")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(src, format!("{}/branding/icon", lab.base_url));
    assert_eq!(
        browser
            .eval("return document.querySelector('.brand img').naturalWidth;")
            .await,
        json!(40),
        "the icon loaded"
    );
    assert!(
        browser
            .find("h1")
            .await
            .text()
            .await
            .unwrap()
            .contains("Acme Tools")
    );
    assert!(browser.client.title().await.unwrap().contains("Acme Tools"));
    browser
        .assert_no_csp_violation("branded consent page")
        .await;
    let served = lab.client().get(&src).await.unwrap();
    assert_eq!(served.header("content-type"), Some("image/svg+xml"));
    assert_eq!(served.body.as_ref(), ICON_SVG.as_bytes());
    browser.close().await;
}

/// Screenshots of the page (light, dark, phone) and of an error page, written to
/// `SCREENSHOT_DIR` when it is set (`scripts/consent-screenshots.sh`).
async fn screenshots() {
    let dir = std::env::var_os("SCREENSHOT_DIR").map(PathBuf::from);
    let lab = Lab::start(|b| {
        b.server_name("Acme Docs")
            .remember_consent(Duration::from_secs(30 * 86_400))
    })
    .await;
    let client = lab.register(json!("Claude Code")).await;
    let browser = Browser::open(Options::default()).await;
    let mut shots = Vec::new();

    open_consent(&lab, &browser, &client).await;
    browser.color_scheme("light").await;
    shots.push(("consent-light.png", browser.screenshot().await));
    browser.color_scheme("dark").await;
    shots.push(("consent-dark.png", browser.screenshot().await));
    browser.color_scheme("light").await;
    browser.viewport(375, 812, true).await;
    open_consent(&lab, &browser, &client).await;
    shots.push(("consent-phone.png", browser.screenshot().await));
    browser.color_scheme("dark").await;
    shots.push(("consent-phone-dark.png", browser.screenshot().await));

    browser.color_scheme("light").await;
    browser.viewport(1280, 1000, false).await;
    let expired = format!("{}/consent?txn_id=expired", lab.base_url);
    browser.goto(&expired).await;
    shots.push(("error-light.png", browser.screenshot().await));
    browser.color_scheme("dark").await;
    shots.push(("error-dark.png", browser.screenshot().await));

    for (name, png) in &shots {
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is a PNG");
        browser::save(dir.as_deref(), name, png);
    }
    browser.close().await;
}
