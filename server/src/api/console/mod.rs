//! The operator console at `/console`: a page embedded in the binary like the dashboard, on
//! the same access rules. Signing in takes an admin API key, then a TOTP code (RFC 6238) once
//! the key is enrolled, or when `console.require_totp` says every key must enrol first; a
//! session cookie follows (`session.rs`). Everything the console shows or changes goes through
//! the admin API (`/v1/...`), which accepts the session cookie in place of the key
//! ([`caller`], with the CSRF token on every change): the console holds no rule of its own,
//! and every action is audited under the signed-in key as if it had been called with it.
//!
//! `/console/api/...`: `login` `{key}`, `code` `{code}` (TOTP or a backup code), `enroll`
//! (a new secret as an `otpauth://` URI and its QR code's modules), `enroll/confirm` `{code}`
//! (→ ten one-time backup codes, shown once), `session`, `logout`. Errors are the API's
//! `{"error":{"code","message"}}` (PROTOCOL.md §3).

pub mod session;
pub mod totp;

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opensports_proto::error_code::http as http_code;
use serde::{Deserialize, Serialize};

use super::credential::Peer;
use super::{AppState, json, json_error};
use crate::auth::Principal;
use crate::auth::keys::entry;
use crate::metrics as m;
use session::{CSRF_HEADER, PENDING_COOKIE, SESSION_COOKIE, Sessions};

/// `[console]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve `/console` (default true). The admin API is there either way.
    pub enabled: bool,
    /// Every admin key must enrol a TOTP authenticator before its first console session
    /// (default false: a key's TOTP is enforced once it enrolled).
    pub require_totp: bool,
    /// A session ends after this many minutes without a request (default 15).
    pub session_minutes: u64,
    /// ... and after this many hours in all (default 8).
    pub max_session_hours: u64,
    /// The issuer an authenticator app shows (default `OpenSports Edge`).
    pub issuer: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            require_totp: false,
            session_minutes: 15,
            max_session_hours: 8,
            issuer: "OpenSports Edge".into(),
        }
    }
}

/// The console's state, shared by its routes and the admin API's authentication.
#[derive(Debug, Default)]
pub struct Console {
    pub cfg: ConsoleConfig,
    pub sessions: Sessions,
    /// Cookies get `Secure` (the HTTP port serves HTTPS).
    pub secure: bool,
}

/// A key's enrolment, stored as the auth store's setting `console.totp.{key id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Enrolment {
    /// The TOTP secret, hex.
    secret: String,
    /// SHA-256 of each unused backup code.
    backup: Vec<String>,
    /// The last TOTP step accepted (a code is good once).
    #[serde(default)]
    last_step: u64,
}

fn setting_name(key: &str) -> String {
    format!("console.totp.{key}")
}

fn enrolment(app: &AppState, key: &str) -> Result<Option<Enrolment>, Box<Response>> {
    match app.auth.keys().setting(&setting_name(key)) {
        Ok(Some(bytes)) => Ok(serde_json::from_slice(&bytes).ok()),
        Ok(None) => Ok(None),
        Err(e) => {
            Err(Box::new(json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::KEY_STORE, &e.to_string())))
        }
    }
}

/// An audit entry of the key acting on itself (sign-in, enrolment, a refused code).
fn own_entry(key: &str, action: &str, at: Option<SocketAddr>) -> crate::auth::AuditEntry {
    let null = serde_json::Value::Null;
    entry(key, action, key, null.clone(), null, at.map(|a| a.to_string()))
}

fn save(
    app: &AppState,
    key: &str,
    e: &Enrolment,
    action: &str,
    at: Option<SocketAddr>,
) -> Result<(), Box<Response>> {
    let body = serde_json::to_vec(e).unwrap_or_default();
    let audit = own_entry(key, action, at);
    app.auth.put_setting(&setting_name(key), &body, audit).map_err(|e| {
        Box::new(json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::KEY_STORE, &e.to_string()))
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A console call's JSON body, once [`same_origin_json`] passed.
fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, Box<Response>> {
    same_origin_json(headers)?;
    super::object(body)
}

/// Whether the request carries the session's CSRF token.
fn csrf_ok(headers: &HeaderMap, s: &session::Session) -> bool {
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    crate::auth::ct_eq(sent.as_bytes(), s.csrf.as_bytes())
}

fn csrf_refused(msg: &str) -> Response {
    metrics::counter!(m::AUTH_DENIED_TOTAL, "op" => "csrf").increment(1);
    json_error(StatusCode::FORBIDDEN, http_code::CSRF, msg)
}

/// A console request that changes something: JSON only (a cross-site form cannot send it
/// without a preflight), and from this origin when the browser says where it came from.
fn same_origin_json(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return Err(Box::new(csrf_refused("console calls are application/json")));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin_host != host {
            return Err(Box::new(csrf_refused("cross-origin console call")));
        }
    }
    Ok(())
}

/// The admin API's cookie credential: the session's principal, when the request carries a
/// live console session; `Err` when the cookie is stale or a change lacks its CSRF token.
/// `Ok(None)`: no session cookie.
pub fn session_principal(
    app: &AppState,
    parts: &axum::http::request::Parts,
) -> Result<Option<Principal>, Box<Response>> {
    let Some(id) = session::cookie(&parts.headers, SESSION_COOKIE) else { return Ok(None) };
    let console = &app.console;
    let Some(s) = console.sessions.touch(id, &console.cfg) else {
        let msg = "the console session ended: sign in again";
        return Err(Box::new(json_error(StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, msg)));
    };
    if app.auth.revoked(&s.principal) {
        drop(s);
        console.sessions.end(id);
        return Err(Box::new(json_error(StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, "key revoked")));
    }
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !csrf_ok(&parts.headers, &s) {
        return Err(Box::new(csrf_refused("a console change needs the session's X-CSRF-Token")));
    }
    Ok(Some(s.principal.clone()))
}

fn reply(status: StatusCode, body: serde_json::Value, cookies: &[String]) -> Response {
    let mut r = json(status, body.to_string());
    for c in cookies {
        if let Ok(v) = header::HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Code {
    code: String,
}

fn remote(peer: Option<axum::Extension<Peer>>) -> Option<SocketAddr> {
    peer.map(|p| p.0.0)
}

/// Starts a session for `principal`: `body` with the cookie that carries it (and clears the
/// pending one).
fn open_session(
    app: &AppState,
    principal: Principal,
    at: Option<SocketAddr>,
    body: serde_json::Value,
) -> Response {
    let console = &app.console;
    let key = principal.id.to_string();
    let Some(id) = console.sessions.start(principal, &console.cfg) else {
        return json_error(StatusCode::TOO_MANY_REQUESTS, http_code::BACKOFF, "too many console sessions");
    };
    app.auth.audit(own_entry(&key, "console.sign_in", at));
    let cookies = [
        session::set_cookie(SESSION_COOKIE, &id, console.cfg.max_session_hours * 3600, console.secure),
        session::set_cookie(PENDING_COOKIE, "", 0, console.secure),
    ];
    reply(StatusCode::OK, body, &cookies)
}

/// `POST /console/api/login {key}`.
pub async fn login(
    State(app): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req: Login = match json_body(&headers, &body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let at = remote(peer);
    let principal = match super::credential::verify(&app, at.map(|a| a.ip()), req.key.trim()) {
        Ok(p) => p,
        Err((status, code, msg)) => return json_error(status, code, &msg),
    };
    let Some(key) = principal.key_id.clone().filter(|_| principal.is_admin()) else {
        metrics::counter!(m::AUTH_DENIED_TOTAL, "op" => "console").increment(1);
        return json_error(StatusCode::FORBIDDEN, http_code::FORBIDDEN, "the console takes an admin API key");
    };
    let enrolled = match enrolment(&app, &key) {
        Ok(e) => e.is_some(),
        Err(r) => return *r,
    };
    if !enrolled && !app.console.cfg.require_totp {
        return open_session(&app, principal, at, serde_json::json!({"next": "done"}));
    }
    let Some(id) = app.console.sessions.start_pending(principal, &app.console.cfg) else {
        return json_error(StatusCode::TOO_MANY_REQUESTS, http_code::BACKOFF, "too many sign-ins under way");
    };
    let next = if enrolled { "code" } else { "enroll" };
    let cookie = session::set_cookie(PENDING_COOKIE, &id, session::PENDING_TTL.as_secs(), app.console.secure);
    reply(StatusCode::OK, serde_json::json!({ "next": next }), &[cookie])
}

/// `POST /console/api/code {code}`: the second step, a TOTP code or a backup code.
pub async fn code(
    State(app): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req: Code = match json_body(&headers, &body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let sessions = &app.console.sessions;
    let Some(pid) = session::cookie(&headers, PENDING_COOKIE) else {
        return json_error(StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, "sign in with the key first");
    };
    let Some(principal) = sessions.pending(pid).map(|p| p.principal.clone()) else {
        return json_error(
            StatusCode::UNAUTHORIZED,
            http_code::UNAUTHORIZED,
            "the sign-in expired: start again",
        );
    };
    let key = principal.id.to_string();
    if let Some(wait) = sessions.locked(&key) {
        return backoff(wait);
    }
    let Ok(Some(mut e)) = enrolment(&app, &key) else {
        return json_error(
            StatusCode::CONFLICT,
            http_code::BAD_REQUEST,
            "this key has no authenticator: enrol it",
        );
    };
    let at = remote(peer);
    let secret = unhex(&e.secret);
    let last = e.last_step.max(sessions.last_step.lock().get(&key).copied().unwrap_or(0));
    let action = if let Some(step) = totp::verify(&secret, &req.code, now_secs(), last) {
        e.last_step = step;
        sessions.last_step.lock().insert(key.clone(), step);
        "console.totp"
    } else if let Some(i) = e.backup.iter().position(|d| *d == totp::digest(&req.code)) {
        e.backup.remove(i);
        "console.backup_code"
    } else {
        metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => "totp").increment(1);
        app.auth.audit(own_entry(&key, "console.code_refused", at));
        if let Some(wait) = sessions.strike(&key, at.map(|a| a.ip())) {
            sessions.end_pending(pid);
            return backoff(wait);
        }
        return json_error(StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, "wrong code");
    };
    sessions.cleared(&key);
    if let Err(r) = save(&app, &key, &e, action, at) {
        return *r;
    }
    sessions.end_pending(pid);
    open_session(&app, principal, at, serde_json::json!({"next": "done"}))
}

fn backoff(wait: std::time::Duration) -> Response {
    let msg = format!("too many wrong codes for this key; retry in {} s", wait.as_secs().max(1));
    let mut r = json_error(StatusCode::TOO_MANY_REQUESTS, http_code::BACKOFF, &msg);
    if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Who is enrolling: a pending sign-in (`require_totp`) or a session (enrolling by choice;
/// its CSRF token is checked).
enum Enroller<'a> {
    Pending(&'a str),
    Session(&'a str),
}

fn enroller<'a>(app: &AppState, headers: &'a HeaderMap) -> Result<(Enroller<'a>, Principal), Box<Response>> {
    let sessions = &app.console.sessions;
    if let Some(id) = session::cookie(headers, SESSION_COOKIE)
        && let Some(s) = sessions.touch(id, &app.console.cfg)
    {
        if !csrf_ok(headers, &s) {
            return Err(Box::new(csrf_refused("a console change needs the session's X-CSRF-Token")));
        }
        return Ok((Enroller::Session(id), s.principal.clone()));
    }
    if let Some(id) = session::cookie(headers, PENDING_COOKIE)
        && let Some(p) = sessions.pending(id)
    {
        return Ok((Enroller::Pending(id), p.principal.clone()));
    }
    Err(Box::new(json_error(StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, "sign in first")))
}

/// `POST /console/api/enroll`: a fresh secret, its `otpauth://` URI and QR code (a square of
/// modules, `true` dark), held until `enroll/confirm` proves the app has it.
pub async fn enroll(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = same_origin_json(&headers) {
        return *r;
    }
    let (who, principal) = match enroller(&app, &headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let Ok(secret) = totp::random(20) else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, "no randomness");
    };
    let account = format!(
        "{} ({})",
        principal.id,
        app.auth.keys().list().iter().find(|k| *k.id == *principal.id).map_or("", |k| k.name.as_str())
    );
    let uri = totp::uri(&app.console.cfg.issuer, &account, &secret);
    let modules = match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(q) => {
            let w = q.width();
            let colors = q.to_colors();
            (0..w)
                .map(|y| (0..w).map(|x| colors[y * w + x] == qrcode::Color::Dark).collect::<Vec<bool>>())
                .collect::<Vec<_>>()
        }
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, &e.to_string()),
    };
    let sessions = &app.console.sessions;
    match who {
        Enroller::Session(id) => {
            if let Some(mut s) = sessions.touch(id, &app.console.cfg) {
                s.enrolling = Some(secret.clone());
            }
        }
        Enroller::Pending(id) => {
            if let Some(mut p) = sessions.pending(id) {
                p.enrolling = Some(secret.clone());
            }
        }
    }
    reply(
        StatusCode::OK,
        serde_json::json!({"secret": totp::base32(&secret), "uri": uri, "qr": modules}),
        &[],
    )
}

/// `POST /console/api/enroll/confirm {code}`: the app's first code proves the enrolment; it is
/// stored with ten backup codes (returned once), and a pending sign-in becomes a session.
pub async fn confirm(
    State(app): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req: Code = match json_body(&headers, &body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let (who, principal) = match enroller(&app, &headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let sessions = &app.console.sessions;
    let secret = match &who {
        Enroller::Session(id) => sessions.touch(id, &app.console.cfg).and_then(|s| s.enrolling.clone()),
        Enroller::Pending(id) => sessions.pending(id).and_then(|p| p.enrolling.clone()),
    };
    let Some(secret) = secret else {
        return json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, "start the enrolment first");
    };
    let key = principal.id.to_string();
    if let Some(wait) = sessions.locked(&key) {
        return backoff(wait);
    }
    let at = remote(peer);
    let Some(step) = totp::verify(&secret, &req.code, now_secs(), 0) else {
        metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => "totp").increment(1);
        if let Some(wait) = sessions.strike(&key, at.map(|a| a.ip())) {
            return backoff(wait);
        }
        return json_error(
            StatusCode::UNAUTHORIZED,
            http_code::UNAUTHORIZED,
            "wrong code: check the app's clock",
        );
    };
    sessions.cleared(&key);
    let mut codes = Vec::new();
    for _ in 0..totp::BACKUP_CODES {
        match totp::backup_code() {
            Ok(c) => codes.push(c),
            Err(_) => {
                return json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, "no randomness");
            }
        }
    }
    let e = Enrolment {
        secret: hex(&secret),
        backup: codes.iter().map(|c| totp::digest(c)).collect(),
        last_step: step,
    };
    sessions.last_step.lock().insert(key.clone(), step);
    if let Err(r) = save(&app, &key, &e, "console.totp_enrol", at) {
        return *r;
    }
    // The codes go back with the answer, once.
    let done = serde_json::json!({"next": "done", "backup_codes": codes});
    match who {
        Enroller::Pending(id) => {
            sessions.end_pending(id);
            open_session(&app, principal, at, done)
        }
        Enroller::Session(_) => reply(StatusCode::OK, done, &[]),
    }
}

/// `GET /console/api/session`: who is signed in, the CSRF token, whether the key has an
/// authenticator, seconds left.
pub async fn current(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let console = &app.console;
    let Some(s) =
        session::cookie(&headers, SESSION_COOKIE).and_then(|id| console.sessions.touch(id, &console.cfg))
    else {
        return json_error(StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, "not signed in");
    };
    let key = s.principal.id.to_string();
    let body = serde_json::json!({
        "key": key,
        "csrf": s.csrf,
        "expires_in": Sessions::expires_in(&s, &console.cfg),
        "require_totp": console.cfg.require_totp,
    });
    drop(s);
    let mut body = body;
    body["enrolled"] = matches!(enrolment(&app, &key), Ok(Some(_))).into();
    reply(StatusCode::OK, body, &[])
}

/// `POST /console/api/logout` (with the CSRF token).
pub async fn logout(
    State(app): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = same_origin_json(&headers) {
        return *r;
    }
    let console = &app.console;
    let Some(id) = session::cookie(&headers, SESSION_COOKIE) else {
        return json_error(StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, "not signed in");
    };
    let Some(s) = console.sessions.touch(id, &console.cfg) else {
        return json_error(StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, "not signed in");
    };
    if !csrf_ok(&headers, &s) {
        return csrf_refused("sign-out needs the session's X-CSRF-Token");
    }
    let key = s.principal.id.to_string();
    drop(s);
    console.sessions.end(id);
    app.auth.audit(own_entry(&key, "console.sign_out", remote(peer)));
    reply(
        StatusCode::OK,
        serde_json::json!({"next": "signed_out"}),
        &[session::set_cookie(SESSION_COOKIE, "", 0, console.secure)],
    )
}

/// `GET /console`: the page (404 when `console.enabled = false`).
pub async fn page(State(app): State<AppState>) -> Response {
    if !app.console.cfg.enabled {
        return json_error(
            StatusCode::NOT_FOUND,
            http_code::NOT_FOUND,
            "the console is off (console.enabled)",
        );
    }
    super::pages::console().into_response()
}
