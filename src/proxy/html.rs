//! The few HTML pages a browser sees (consent, errors). Everything interpolated is escaped;
//! pages cannot be framed and load nothing from elsewhere.

use actix_web::{HttpResponse, http::StatusCode};

use crate::oauth::display::redirect_uri_display;

/// Content-Security-Policy of our pages: no scripts, no framing, forms only to ourselves.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

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

/// A redirect URI as HTML (escaped): the parsed URI, then its host in bold, and for an
/// internationalized host its Unicode form beside it, marked as such (see
/// [`redirect_uri_display`]). Unparsable input is shown escaped as it is.
pub(crate) fn redirect_uri(uri: &str) -> String {
    let Some(shown) = redirect_uri_display(uri) else {
        return format!("<code>{}</code>", escape(uri));
    };
    let Some(host) = shown.host.as_deref() else {
        return format!("<code>{}</code>", escape(&shown.uri));
    };
    let unicode = shown
        .host_unicode
        .as_deref()
        .map(|u| {
            format!(
                ", an internationalized domain name; its Unicode form, which may imitate \
                 another name, is <bdi>{}</bdi>",
                escape(u)
            )
        })
        .unwrap_or_default();
    format!(
        "<code>{}</code> (host <strong>{}</strong>{unicode})",
        escape(&shown.uri),
        escape(host)
    )
}

/// A complete page with our security headers.
pub(crate) fn page(status: u16, title: &str, body_html: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;\
         margin:3rem auto;padding:0 1rem;color:#222}}code{{word-break:break-all}}\
         button{{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}}</style></head>\
         <body>{body_html}</body></html>",
        title = escape(title),
    );
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("text/html; charset=utf-8")
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-store"))
        .body(html)
}

/// An error page (never a redirect: used when we cannot trust where to send the user).
pub(crate) fn error_page(status: u16, message: &str) -> HttpResponse {
    page(
        status,
        "Authorization error",
        &format!("<h1>Authorization error</h1><p>{}</p>", escape(message)),
    )
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
    fn redirect_uris_show_the_parsed_host_emphasised() {
        assert_eq!(
            redirect_uri("https://App.Example/cb?a=<b>"),
            "<code>https://app.example/cb?a=%3Cb%3E</code> (host <strong>app.example</strong>)"
        );
        let idn = redirect_uri("https://\u{0430}pp.example/cb");
        assert!(
            idn.starts_with(
                "<code>https://xn--pp-6kc.example/cb</code> (host \
                 <strong>xn--pp-6kc.example</strong>, an internationalized domain name"
            ),
            "{idn}"
        );
        assert!(idn.contains("<bdi>\u{0430}pp.example</bdi>"), "{idn}");
        assert_eq!(redirect_uri("cursor:/cb"), "<code>cursor:/cb</code>");
        assert_eq!(redirect_uri("<x>"), "<code>&lt;x&gt;</code>");
    }
}
