//! The per-request scope check of [`BearerAuth`](crate::BearerAuth): the actix side of a
//! [`ScopePolicy`]. Reads the `Mcp-Method`/`Mcp-Name` headers and (when the decision depends
//! on it) the body, lets [`mcp_request`](crate::mcp_request) classify the request and the
//! policy decide, and puts the body back, unchanged, for the service.

use std::sync::Arc;

use actix_web::{
    HttpMessage as _, HttpResponse, ResponseError as _,
    dev::{Payload, ServiceRequest},
    error::PayloadError,
    http::{Method, header},
    web::{Bytes, BytesMut},
};
use futures_util::{Stream, StreamExt as _};

use crate::{
    Authenticated, ScopePolicy,
    error::{BearerError, BearerErrorKind, Challenge},
    mcp_request::{self, Body, Mismatch},
};

/// JSON-RPC error code of SEP-2243's `HeaderMismatch`.
const HEADER_MISMATCH: i32 = -32020;

/// Checks that `caller` holds every scope the request needs (`base` plus what the policy asks
/// for it). `Ok(Err(response))` is a refusal to send instead of calling the service; `Err` is
/// a body that failed while being read.
pub(crate) async fn enforce(
    policy: &ScopePolicy,
    base: &[String],
    resource_metadata: &Option<String>,
    req: &mut ServiceRequest,
    caller: &Authenticated,
) -> Result<Result<(), HttpResponse>, actix_web::Error> {
    let headers = {
        let values = |name: &str| -> Vec<&[u8]> {
            req.headers()
                .get_all(name)
                .map(|value| value.as_bytes())
                .collect()
        };
        mcp_request::read_headers(&values("mcp-method"), &values("mcp-name"))
    };
    let headers = match headers {
        Ok(headers) => headers,
        Err(mismatch) => return Ok(Err(mismatch_response(mismatch))),
    };
    let body = if policy.needs_body() && req.method() == Method::POST {
        read_body(req, policy.max_body_size()).await?
    } else {
        BodyRead::Untouched
    };
    let decision = match mcp_request::classify(headers.as_ref(), body.view()) {
        Err(mismatch) => Err(mismatch_response(mismatch)),
        Ok(request) => {
            let needed = policy.needed(base, &request);
            if needed
                .iter()
                .all(|scope| policy.is_satisfied(caller.scopes(), scope))
            {
                Ok(())
            } else {
                tracing::debug!(needed = ?needed, "bearer token lacks a scope the request needs");
                Err(insufficient_scope(&needed, resource_metadata))
            }
        }
    };
    body.restore(req);
    Ok(decision)
}

/// The body as the check read it, to be put back for the service.
enum BodyRead {
    /// Not read: the decision does not depend on it, or the method is not POST.
    Untouched,
    /// Content-encoded: not read (we do not decompress), so the request could be anything.
    Encoded,
    /// Read completely.
    Complete(Bytes),
    /// Larger than the limit: what was read, and the rest of the stream.
    Oversized { read: Bytes, rest: Payload },
}

impl BodyRead {
    fn view(&self) -> Body<'_> {
        match self {
            Self::Untouched => Body::Absent,
            Self::Complete(bytes) => Body::Complete(bytes),
            Self::Encoded | Self::Oversized { .. } => Body::Unreadable,
        }
    }

    /// Gives the service the body exactly as the client sent it.
    fn restore(self, req: &mut ServiceRequest) {
        match self {
            Self::Untouched | Self::Encoded => {}
            Self::Complete(bytes) => req.set_payload(Payload::from(bytes)),
            Self::Oversized { read, rest } => {
                let stream = futures_util::stream::iter([Ok::<_, PayloadError>(read)]).chain(rest);
                let boxed: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                    Box::pin(stream);
                req.set_payload(Payload::from(boxed));
            }
        }
    }
}

/// Reads the body, keeping at most `limit` bytes in memory.
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<BodyRead, PayloadError> {
    let encoded = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|value| !value.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Ok(BodyRead::Encoded);
    }
    let mut payload = req.take_payload();
    // Most bodies arrive in one chunk: keep it as is, copy only when a second one comes.
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            earlier => {
                if let Some(earlier) = earlier {
                    joined.extend_from_slice(&earlier);
                }
                joined.extend_from_slice(&chunk);
            }
        }
        let read = first.as_ref().map_or(joined.len(), Bytes::len);
        if read > limit {
            let read = first.take().unwrap_or_else(|| joined.split().freeze());
            return Ok(BodyRead::Oversized {
                read,
                rest: payload,
            });
        }
    }
    Ok(BodyRead::Complete(first.unwrap_or_else(|| joined.freeze())))
}

/// 403 `insufficient_scope` naming every scope the request needs (MCP step-up: the client
/// asks for all of them at once).
fn insufficient_scope(needed: &[&str], resource_metadata: &Option<String>) -> HttpResponse {
    BearerError::new(
        BearerErrorKind::InsufficientScope,
        "the token lacks a scope this request needs",
        Arc::new(Challenge {
            resource_metadata: resource_metadata.clone(),
            scope: Some(needed.join(" ")),
        }),
    )
    .error_response()
}

/// 400 with a JSON-RPC `HeaderMismatch` error (SEP-2243).
fn mismatch_response(mismatch: Mismatch) -> HttpResponse {
    tracing::debug!(reason = mismatch.0, "MCP request headers refused");
    HttpResponse::BadRequest()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": { "code": HEADER_MISMATCH, "message": mismatch.0 },
        }))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    /// A request whose body arrives in `chunks`.
    fn chunked(chunks: &[&'static str]) -> ServiceRequest {
        let mut req = TestRequest::post().uri("/mcp").to_srv_request();
        let stream = futures_util::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, PayloadError>(Bytes::from_static(c.as_bytes())))
                .collect::<Vec<_>>(),
        );
        let boxed: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(stream);
        req.set_payload(Payload::from(boxed));
        req
    }

    async fn remaining_body(req: &mut ServiceRequest) -> Vec<u8> {
        let mut payload = req.take_payload();
        let mut out = Vec::new();
        while let Some(chunk) = payload.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[actix_web::test]
    async fn bodies_are_joined_and_handed_on_unchanged() {
        for chunks in [&["ab", "cd", "ef"][..], &["", "abcdef"], &["abcdef"], &[]] {
            let mut req = chunked(chunks);
            let read = read_body(&mut req, 10).await.unwrap();
            let Body::Complete(bytes) = read.view() else {
                panic!("complete body expected for {chunks:?}");
            };
            assert_eq!(bytes, chunks.concat().as_bytes());
            read.restore(&mut req);
            assert_eq!(remaining_body(&mut req).await, chunks.concat().as_bytes());
        }
    }

    #[actix_web::test]
    async fn an_oversized_body_is_unreadable_and_still_handed_on_whole() {
        for chunks in [&["ab", "cd", "ef"][..], &["abcdef"]] {
            let mut req = chunked(chunks);
            let read = read_body(&mut req, 3).await.unwrap();
            assert!(matches!(read.view(), Body::Unreadable), "{chunks:?}");
            read.restore(&mut req);
            assert_eq!(remaining_body(&mut req).await, b"abcdef");
        }
    }

    #[actix_web::test]
    async fn encoded_bodies_are_not_read() {
        let mut req = TestRequest::post()
            .insert_header(("content-encoding", "gzip"))
            .set_payload("compressed")
            .to_srv_request();
        let read = read_body(&mut req, 100).await.unwrap();
        assert!(matches!(read.view(), Body::Unreadable));
        read.restore(&mut req);
        assert_eq!(remaining_body(&mut req).await, b"compressed");
    }
}
