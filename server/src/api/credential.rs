//! A request's credential and its check (backoff included), shared by the API's callers
//! (`admin::Caller`), the console's sign-in and GraphQL's `connection_init`.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::http::request::Parts;
use opensports_proto::error_code::http as http_code;

use super::AppState;
use crate::auth::{Principal, Refused};
use crate::metrics as m;

/// The peer address of the connection a request came on (set by the accept loop).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The bearer credential of a request: the `Authorization` header, else `?token=` (then
/// `true`).
pub fn credential(parts: &Parts) -> Option<(String, bool)> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| (token.trim().to_string(), false));
    }
    let query = parts.uri.query()?;
    query.split('&').find_map(|kv| kv.strip_prefix("token=")).map(|t| (percent_decode(t), true))
}

/// `%XX` and `+` decoding for a query value (keys and JWTs are URL-safe; this is for tools
/// that escape them anyway).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks a bearer credential from `ip` (backoff included): the principal, or the refusal's
/// status, code and message. For transports that carry the credential in their own handshake
/// (a GraphQL `connection_init` payload).
pub fn verify(
    app: &AppState,
    ip: Option<std::net::IpAddr>,
    token: &str,
) -> Result<Principal, (StatusCode, &'static str, String)> {
    // The credential is checked first: a valid one is never held back by others' failures
    // from the same address (a venue network, a NAT).
    match app.auth.bearer(token) {
        Ok(principal) => {
            app.auth.succeeded(ip, token);
            Ok(principal)
        }
        Err(why) => {
            if let Some(wait) = app.auth.failed(ip, token, &why) {
                metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => "backoff").increment(1);
                let msg = format!(
                    "this credential failed too often from this address; retry in {} s",
                    wait.as_secs().max(1)
                );
                return Err((StatusCode::TOO_MANY_REQUESTS, http_code::BACKOFF, msg));
            }
            let msg = match &why {
                Refused::Jwt(e) => e.to_string(),
                other => other.to_string(),
            };
            Err((StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, msg))
        }
    }
}
