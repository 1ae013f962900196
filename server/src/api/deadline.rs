//! A request's body must arrive within `server.http_body_timeout_secs` of its headers, on
//! every route: a client that announces a `Content-Length` and sends less (or trickles it)
//! has its request answered `408 body_timeout` and its connection closed, instead of holding
//! a slot (hyper times out only the headers).
//!
//! The body is wrapped, not buffered here: each route keeps its own size limit, and a handler
//! that reads the body sees an error at the deadline; the response is then replaced.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as _, Frame, SizeHint};
use opensports_proto::error_code::http as http_code;

use crate::metrics as m;

/// Wraps the body of `req` (when it has one) with the deadline; answers 408 if it passed.
pub async fn body(timeout: Duration, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(Deadline { inner, sleep: Box::pin(tokio::time::sleep(timeout)), expired: expired.clone() })
    });
    let response = next.run(req).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    metrics::counter!(m::HTTP_BODY_TIMEOUTS_TOTAL).increment(1);
    let message = format!("the request body did not arrive within {} s", timeout.as_secs());
    let mut response = super::json_error(StatusCode::REQUEST_TIMEOUT, http_code::BODY_TIMEOUT, &message);
    response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new("request body timed out"))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
