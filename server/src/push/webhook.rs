//! The webhook provider: an app backend's endpoint gets each push as a JSON `POST`, signed so
//! it can tell the server's pushes from anyone else's (PROTOCOL.md §3.4):
//!
//! - `X-OpenSports-Timestamp`: Unix seconds when it was signed;
//! - `X-OpenSports-Signature`: `v1=` and the hex HMAC-SHA256, keyed with `push.webhook_secret`,
//!   of `{timestamp}.{body}`;
//! - `Idempotency-Key`: the push's outbox key, the same on every retry of it.
//!
//! HTTP/1.1, one connection per request, `https` with the web PKI's roots.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::Request;
use hyper_util::rt::TokioIo;

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx.
    Accepted,
    /// Try again later: 429, 5xx, no answer, a timeout; `Retry-After` seconds when given.
    Retry { reason: String, after_secs: Option<u64> },
    /// 404 or 410: the endpoint is gone; the device is removed.
    Gone,
    /// Any other 4xx: the push is not retried.
    Rejected(String),
}

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

/// Posts `body` to `url`, signed; never longer than `timeout`.
pub async fn send(url: &str, body: Vec<u8>, key: &str, secret: &[u8], timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, post(url, body, key, secret)).await {
        Ok(Ok((status, retry_after))) => match status {
            200..=299 => Outcome::Accepted,
            404 | 410 => Outcome::Gone,
            429 | 500..=599 => Outcome::Retry { reason: format!("http {status}"), after_secs: retry_after },
            s => Outcome::Rejected(format!("http {s}")),
        },
        Ok(Err(e)) => Outcome::Retry { reason: e, after_secs: None },
        Err(_) => Outcome::Retry { reason: "timeout".into(), after_secs: None },
    }
}

async fn post(url: &str, body: Vec<u8>, key: &str, secret: &[u8]) -> Result<(u16, Option<u64>), String> {
    let u = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = u.host_str().ok_or("no host")?.to_string();
    let port = u.port_or_known_default().ok_or("no port")?;
    let ts = crate::store::now_ms() / 1000;
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    let req = Request::post(path)
        .header(hyper::header::HOST, u.authority())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("X-OpenSports-Timestamp", ts.to_string())
        .header("X-OpenSports-Signature", signature(secret, ts, &body))
        .header("Idempotency-Key", key)
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let tcp =
        tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect: {e}"))?;
    let resp = if u.scheme() == "https" {
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
        let tls = tls_connector()?.connect(name, tcp).await.map_err(|e| format!("tls: {e}"))?;
        request(TokioIo::new(tls), req).await?
    } else {
        request(TokioIo::new(tcp), req).await?
    };
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok((resp.status().as_u16(), retry_after))
}

async fn request<T>(io: T, req: Request<Body>) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(|e| e.to_string())
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|e| e.to_string())
    });
    config.clone().map(tokio_rustls::TlsConnector::from)
}
