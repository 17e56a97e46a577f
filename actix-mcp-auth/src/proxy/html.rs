//! The few HTML pages a browser sees (consent, errors): one layout, one stylesheet.
//!
//! Everything interpolated is escaped; pages cannot be framed and load nothing from elsewhere.
//! The stylesheet is static and inlined, and the Content-Security-Policy allows exactly that
//! stylesheet by its SHA-256 hash (no `'unsafe-inline'`, no scripts at all), images only from
//! our own origin (the optional server icon), and form submissions only to ourselves and to the
//! places our form's answer redirects to (Chromium applies `form-action` to those redirects).

use std::sync::LazyLock;

use actix_web::{HttpResponse, http::StatusCode};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

/// The stylesheet of every page. Light and dark palettes (`prefers-color-scheme`); every text
/// colour has a contrast of at least 4.5:1 on the background it is drawn on (the browser tests
/// measure it).
pub(crate) const STYLESHEET: &str = include_str!("page.css");

/// `'sha256-…'` of [`STYLESHEET`], the only style the CSP allows.
static STYLE_HASH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(STYLESHEET.as_bytes()))
    )
});

/// The Content-Security-Policy of a page whose form may lead to `form_targets` (CSP source
/// expressions: origins such as `https://tenant.authkit.app`, or schemes such as `cursor:`).
pub(crate) fn content_security_policy(form_targets: &[String]) -> String {
    let mut form_action = String::from("'self'");
    for target in form_targets.iter().filter(|t| is_source_expression(t)) {
        form_action.push(' ');
        form_action.push_str(target);
    }
    format!(
        "default-src 'none'; style-src {style}; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'",
        style = *STYLE_HASH,
    )
}

/// Whether `value` can go into a CSP directive unchanged (no separators, quotes or controls).
fn is_source_expression(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'\'' | b'"'))
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// The complete document: head (charset, viewport, colour schemes, the stylesheet) and
/// `main_html` inside the page's card.
pub(crate) fn document(title: &str, main_html: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{STYLESHEET}</style></head>\
         <body><main class=\"card\">{main_html}</main></body></html>",
        title = escape(title),
    )
}

/// A complete page with our security headers; its form may lead to `form_targets`.
pub(crate) fn page_with_targets(
    status: u16,
    title: &str,
    main_html: &str,
    form_targets: &[String],
) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("text/html; charset=utf-8")
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header((
            "Content-Security-Policy",
            content_security_policy(form_targets),
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-store"))
        .body(document(title, main_html))
}

/// A complete page with our security headers (its forms, if any, post to us only).
pub(crate) fn page(status: u16, title: &str, main_html: &str) -> HttpResponse {
    page_with_targets(status, title, main_html, &[])
}

/// What went wrong, in words for the person in front of the browser, and what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The request is unknown, expired or already finished.
    Expired,
    /// The request was started in another browser (no binding cookie).
    OtherBrowser,
    /// Our database is unavailable; retrying may help.
    Unavailable,
    /// Something we cannot recover from here (internal error).
    Internal,
    /// The application sent a request we refuse.
    BadRequest,
}

impl Problem {
    /// The problem a status code stands for, for pages that only know the status.
    pub(crate) fn for_status(status: u16) -> Self {
        match status {
            403 => Self::OtherBrowser,
            503 => Self::Unavailable,
            500..=599 => Self::Internal,
            _ => Self::BadRequest,
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Self::Expired => "This sign-in link has expired",
            Self::OtherBrowser => "Open this in the browser you started in",
            Self::Unavailable => "Temporarily unavailable",
            Self::Internal => "Something went wrong",
            Self::BadRequest => "This sign-in request can't be used",
        }
    }

    fn next_step(self) -> &'static str {
        match self {
            Self::Expired => {
                "Go back to the application you were connecting and start signing in again. \
                 Sign-in links work once, for 15 minutes."
            }
            Self::OtherBrowser => {
                "For your safety, a sign-in must finish in the browser where it started. Go back \
                 to the application and start signing in again; if it opened another browser, \
                 finish there."
            }
            Self::Unavailable => {
                "Nothing is wrong with your account. Wait a minute, then go back to the \
                 application and try again."
            }
            Self::Internal => {
                "Go back to the application and try again. If it keeps happening, contact the \
                 operator of this server."
            }
            Self::BadRequest => {
                "Go back to the application and connect again. If it keeps happening, the \
                 application may need an update; contact its developer."
            }
        }
    }
}

/// The body of an error page: icon, heading, what happened, what to do next.
pub(crate) fn error_html(problem: Problem, message: &str) -> String {
    format!(
        "<div class=\"status-icon\" aria-hidden=\"true\">!</div>\
         <h1>{heading}</h1>\
         <p class=\"lead\">{message}</p>\
         <section class=\"next\" aria-labelledby=\"next-step\">\
         <h2 id=\"next-step\">What to do next</h2><p>{next}</p></section>",
        heading = escape(problem.heading()),
        message = escape(message),
        next = escape(problem.next_step()),
    )
}

/// An error page (never a redirect: used when we cannot trust where to send the user); the
/// kind of problem is inferred from `status`.
pub(crate) fn error_page(status: u16, message: &str) -> HttpResponse {
    problem_page(status, Problem::for_status(status), message)
}

/// An error page for a known kind of problem.
pub(crate) fn problem_page(status: u16, problem: Problem, message: &str) -> HttpResponse {
    page(status, problem.heading(), &error_html(problem, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert(\"x\")</script>&'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;"
        );
    }

    #[test]
    fn the_policy_allows_only_the_stylesheet_and_no_scripts() {
        let csp = content_security_policy(&[]);
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(!csp.contains("script-src"), "{csp}");
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        let hash = STANDARD.encode(Sha256::digest(STYLESHEET.as_bytes()));
        assert!(
            csp.contains(&format!("style-src 'sha256-{hash}';")),
            "{csp}"
        );
        assert!(csp.contains("form-action 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }

    #[test]
    fn form_targets_are_added_only_when_they_cannot_break_the_header() {
        let csp = content_security_policy(&[
            "https://tenant.authkit.app".into(),
            "cursor:".into(),
            "http://a.example; script-src *".into(),
            "'unsafe-inline'".into(),
            String::new(),
        ]);
        assert!(
            csp.contains("form-action 'self' https://tenant.authkit.app cursor:;"),
            "{csp}"
        );
        assert!(!csp.contains("script-src"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
    }

    #[test]
    fn documents_inline_exactly_the_hashed_stylesheet() {
        let html = document("T <x>", "<p>hi</p>");
        assert!(html.contains(&format!("<style>{STYLESHEET}</style>")));
        assert!(html.contains("<title>T &lt;x&gt;</title>"));
        assert!(html.contains("name=\"viewport\""));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn error_pages_say_what_to_do_next() {
        for status in [400, 403, 500, 503] {
            let problem = Problem::for_status(status);
            let html = error_html(problem, "<b>m</b>");
            assert!(html.contains("What to do next"));
            assert!(html.contains("&lt;b&gt;m&lt;/b&gt;"));
            assert!(html.contains(problem.next_step()));
        }
        assert_eq!(Problem::for_status(503), Problem::Unavailable);
        assert_eq!(Problem::for_status(403), Problem::OtherBrowser);
    }
}
