//! The webhook provider: an app backend's endpoint gets each push as a JSON `POST`, signed so
//! it can tell the server's pushes from anyone else's (PROTOCOL.md §3.4):
//!
//! - `X-OpenSports-Timestamp`: Unix seconds when it was signed;
//! - `X-OpenSports-Signature`: `v1=` and the hex HMAC-SHA256, keyed with `push.webhook_secret`,
//!   of `{timestamp}.{body}`;
//! - `Idempotency-Key`: the push's outbox key, the same on every retry of it.

use axum::body::Body;
use hyper::Request;

use super::Outcome;
use super::http::Http;

/// `v1=` + hex HMAC-SHA256(secret, `{ts}.{body}`).
pub fn signature(secret: &[u8], ts: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(ts.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// Posts `body` to `url`, signed.
pub async fn send(http: &Http, url: &str, body: Vec<u8>, key: &str, secret: &[u8]) -> Outcome {
    let Ok(url) = url::Url::parse(url) else { return Outcome::Rejected("bad url".into()) };
    let ts = crate::store::now_ms() / 1000;
    let req = Request::post("/")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("X-OpenSports-Timestamp", ts.to_string())
        .header("X-OpenSports-Signature", signature(secret, ts, &body))
        .header("Idempotency-Key", key)
        .body(Body::from(body));
    let Ok(req) = req else { return Outcome::Rejected("bad request".into()) };
    super::http::outcome(http.send(&url, req).await)
}
