//! Access logs without secrets.
//!
//! An access log that records request targets as they came records secrets: AuthKit's
//! callback carries `code` and `state` in its query (`/auth/callback?code=…&state=…`), and
//! clients sometimes put tokens in a query string by mistake. [`redact_target`] keeps the path
//! and the parameter names, and keeps values only for a short list of parameters that are never
//! secret (`client_id`, `redirect_uri`, `scope`, `error`…); every other value becomes
//! `[redacted]`. Allowing rather than denying means a parameter nobody thought of is redacted.
//!
//! With the `tracing-actix-web` feature, `RedactingRootSpanBuilder` plugs this into
//! `tracing_actix_web::TracingLogger`, the usual access log of a `tracing` application:
//!
//! ```no_run
//! # #[cfg(feature = "tracing-actix-web")]
//! # fn app() {
//! use actix_mcp_auth::access_log::RedactingRootSpanBuilder;
//! use actix_web::App;
//! use tracing_actix_web::TracingLogger;
//!
//! let app = App::new().wrap(TracingLogger::<RedactingRootSpanBuilder>::new());
//! # let _ = app;
//! # }
//! ```
//!
//! Applications logging through actix-web's own `Logger` can use the plain function:
//! `Logger::new("%{target}xi %s %T").custom_request_replace("target", |req| {
//! redact_target(req.uri().path_and_query().map_or("", |p| p.as_str())).into_owned() })`
//! (never `%r` or `%U`, which print the query).

use std::borrow::Cow;

/// Parameters whose values are never secret and help to read a log.
const PUBLIC_PARAMETERS: &[&str] = &[
    "client_id",
    "code_challenge_method",
    "error",
    "error_description",
    "error_uri",
    "grant_type",
    "iss",
    "prompt",
    "redirect_uri",
    "resource",
    "response_type",
    "scope",
    "token_type_hint",
];

/// What replaces a value (or a whole parameter whose name is not a plain word).
pub const REDACTED: &str = "[redacted]";

/// A request target (`/path?query`) fit for a log: the path, then each query parameter as
/// `name=value` for the few public OAuth parameters, `name=[redacted]` for any other name made
/// of letters, digits, `_`, `-` and `.`, and `[redacted]` for anything else (a bare word may be
/// a token itself). Returned borrowed when there is no query.
///
/// ```
/// use actix_mcp_auth::access_log::redact_target;
///
/// assert_eq!(
///     redact_target("/auth/callback?code=abc&state=xyz&iss=https%3A%2F%2Fa.example"),
///     "/auth/callback?code=[redacted]&state=[redacted]&iss=https%3A%2F%2Fa.example"
/// );
/// ```
pub fn redact_target(path_and_query: &str) -> Cow<'_, str> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return Cow::Borrowed(path_and_query);
    };
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if PUBLIC_PARAMETERS.contains(&name) => Cow::Borrowed(pair),
            Some((name, _)) if is_plain_name(name) => Cow::Owned(format!("{name}={REDACTED}")),
            _ => Cow::Borrowed(REDACTED),
        })
        .collect();
    Cow::Owned(format!("{path}?{}", pairs.join("&")))
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(feature = "tracing-actix-web")]
pub use self::span::RedactingRootSpanBuilder;

#[cfg(feature = "tracing-actix-web")]
mod span {
    use actix_web::{
        Error, HttpMessage as _,
        body::MessageBody,
        dev::{ServiceRequest, ServiceResponse},
    };
    use tracing::{Span, field::Empty};
    use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

    use super::redact_target;

    /// A `tracing_actix_web` root span builder recording the request target through
    /// [`redact_target`](super::redact_target): use `TracingLogger::<RedactingRootSpanBuilder>`
    /// instead of `TracingLogger::default()`.
    ///
    /// The span has the fields of tracing-actix-web's default span (`http.method`,
    /// `http.route`, `http.target`, `http.status_code`, `request_id`, the OpenTelemetry
    /// names...), so log queries and dashboards keep working; only `http.target` differs. It does
    /// not read a remote OpenTelemetry parent from the request headers.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct RedactingRootSpanBuilder;

    impl RootSpanBuilder for RedactingRootSpanBuilder {
        fn on_request_start(request: &ServiceRequest) -> Span {
            let user_agent = request
                .headers()
                .get("User-Agent")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let route = request.match_pattern().unwrap_or_else(|| "default".into());
            let method = request.method().as_str();
            let target = redact_target(request.uri().path_and_query().map_or("", |p| p.as_str()));
            let request_id = request
                .extensions()
                .get::<RequestId>()
                .map(ToString::to_string)
                .unwrap_or_default();
            let connection = request.connection_info();
            tracing::info_span!(
                "HTTP request",
                http.method = %method,
                http.route = %route,
                http.flavor = ?request.version(),
                http.scheme = %connection.scheme(),
                http.host = %connection.host(),
                http.client_ip = %connection.realip_remote_addr().unwrap_or(""),
                http.user_agent = %user_agent,
                http.target = %target,
                http.status_code = Empty,
                otel.name = %format!("{method} {route}"),
                otel.kind = "server",
                otel.status_code = Empty,
                trace_id = Empty,
                request_id = %request_id,
                exception.message = Empty,
                exception.details = Empty,
            )
        }

        fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
            DefaultRootSpanBuilder::on_request_end(span, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_queries_are_redacted() {
        for (target, logged) in [
            ("/mcp", "/mcp"),
            (
                "/auth/callback?code=secret&state=secret",
                "/auth/callback?code=[redacted]&state=[redacted]",
            ),
            ("/mcp?access_token=secret", "/mcp?access_token=[redacted]"),
            (
                "/authorize?client_id=c1&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&state=secret",
                "/authorize?client_id=c1&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&state=[redacted]",
            ),
            ("/x?secret", "/x?[redacted]"),
            ("/x?%63ode=secret", "/x?[redacted]"),
            ("/x?=secret&&a=", "/x?[redacted]&a=[redacted]"),
            ("/x?", "/x?"),
        ] {
            assert_eq!(redact_target(target), logged, "{target}");
        }
    }
}
