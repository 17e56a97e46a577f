//! Browser tests: the consent page in headless Chromium, driven through chromedriver
//! (WebDriver), the way a person meets it: a client registers, the browser opens
//! `/authorize`, reads our page, clicks, passes the (emulated) AuthKit login and lands on the
//! client's redirect URI, a loopback listener of the test.
//!
//! Run alone with `cargo test --test browser`. The browser only talks to loopback (see
//! [`browser::chromium_args`]).
//!
//! Without Chromium and chromedriver (Debian: `apt-get install chromium chromium-driver`), every
//! test is reported as ignored, with the reason on stderr; in CI (`CI` set) the binary fails
//! instead, so a missing browser can never pass as green.

mod app;
mod browser;
mod contrast;
mod scenarios;

use std::io::Write as _;

use libtest_mimic::{Arguments, Failed, Trial};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn main() {
    let args = Arguments::from_args();
    let tools = browser::Tools::find();
    let trials: Vec<Trial> = scenarios::ALL
        .iter()
        .map(|&(name, scenario)| Trial::test(name, move || scenarios::run(scenario)))
        .collect();
    let missing = match &tools {
        Ok(_) => None,
        Err(reason) => Some(reason.clone()),
    };
    let trials = match missing {
        None => trials,
        Some(reason) if in_ci() => {
            // Each test fails with the reason, so the summary counts them as failed.
            let _ = writeln!(
                std::io::stderr(),
                "browser tests cannot run in CI: {reason}"
            );
            scenarios::ALL
                .iter()
                .map(|&(name, _)| {
                    let reason = reason.clone();
                    Trial::test(name, move || {
                        Err(Failed::from(format!("no browser in CI: {reason}")))
                    })
                })
                .collect()
        }
        Some(reason) => {
            let _ = writeln!(
                std::io::stderr(),
                "IGNORED (browser tests): {reason}; install them with \
                 `apt-get install chromium chromium-driver`"
            );
            trials
                .into_iter()
                .map(|t| t.with_ignored_flag(true))
                .collect()
        }
    };
    let driver = match tools {
        Ok(tools) if !args.list => Some(browser::Chromedriver::start(&tools)),
        _ => None,
    };
    let conclusion = libtest_mimic::run(&args, trials);
    drop(driver);
    conclusion.exit();
}
