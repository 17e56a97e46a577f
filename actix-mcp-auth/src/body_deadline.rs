//! A deadline for reading a request body.
//!
//! actix-web's `client_request_timeout` bounds only the request head; nothing bounds the body. A
//! client that sends a body one byte every few seconds holds a connection and an in-flight
//! request for as long as the body-size limit allows (hours for 64 KiB). [`set_body_deadline`]
//! makes the body fail once the deadline has passed; the extractor then answers 400, and actix
//! closes the connection because the body was not read to its end.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use actix_web::{App, dev::Service as _};
//!
//! let app = App::new().wrap_fn(|mut req, srv| {
//!     actix_mcp_auth::body_deadline::set_body_deadline(&mut req, Duration::from_secs(10));
//!     srv.call(req)
//! });
//! # let _ = app;
//! ```

use std::{
    future::Future as _,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{
    HttpMessage as _,
    dev::{Payload, ServiceRequest},
    error::PayloadError,
    web::Bytes,
};
use futures_util::Stream;

/// Makes the body of `req` fail with a timed-out I/O error if it is not complete within `limit`
/// from now. Call it from a middleware before any extractor reads the body.
pub fn set_body_deadline(req: &mut ServiceRequest, limit: Duration) {
    let inner = req.take_payload();
    let stream = DeadlineStream {
        inner,
        deadline: Box::pin(tokio::time::sleep(limit)),
        expired: false,
    };
    let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
    req.set_payload(Payload::from(boxed));
}

struct DeadlineStream {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Stream for DeadlineStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body took too long",
            )))));
        }
        Poll::Pending
    }
}
