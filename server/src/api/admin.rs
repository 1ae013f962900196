//! Who is calling the HTTP API, and the admin endpoints for keys and the audit log.
//!
//! - [`Caller`]: an extractor that authenticates the request (`Authorization: Bearer`, or a
//!   `token` query parameter for browsers, checked by `credential.rs`; or a console session's
//!   cookie). No credential is the anonymous caller; a wrong one is `401 unauthorized` (and
//!   counts toward the address's backoff: `429 backoff` while it waits).
//! - [`Admin`]: a [`Caller`] with the admin role, else `403 forbidden` (`401` when anonymous).
//! - `POST /v1/keys`, `GET /v1/keys`, `DELETE /v1/keys/{id}`, `GET /v1/audit`.

use opensports_proto::error_code::http as http_code;
use std::net::SocketAddr;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;

use super::credential::{Peer, credential, verify};
use super::{AppState, json, json_error};
use crate::auth::AuditEntry;
use crate::auth::keys::{entry, public_view};
use crate::auth::{NewKey, Principal};
use crate::metrics as m;

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub remote: Option<SocketAddr>,
    /// The credential came in the `token` query parameter (allowed for reads, where browsers
    /// cannot set headers; never for admin calls: query strings end up in logs).
    pub via_query: bool,
}

impl Caller {
    /// Audit's `remote`.
    pub fn remote(&self) -> Option<String> {
        self.remote.map(|a| a.to_string())
    }

    /// `403 forbidden` (or `401` when anonymous) for `op`, counted.
    pub fn denied(&self, op: &'static str, what: &str) -> Response {
        metrics::counter!(m::AUTH_DENIED_TOTAL, "op" => op).increment(1);
        if self.principal.role.is_none() {
            return json_error(
                StatusCode::UNAUTHORIZED,
                http_code::UNAUTHORIZED,
                &format!("{what} needs credentials"),
            );
        }
        let msg = format!("{} may not {what}", self.principal.id);
        json_error(StatusCode::FORBIDDEN, http_code::FORBIDDEN, &msg)
    }

    /// The refusal (`403`/`401`) when the caller may not read `topic`.
    pub fn deny_read(&self, app: &AppState, topic: &str) -> Option<Response> {
        let allowed = self.principal.may_read(topic, &app.auth.cfg.public_topics);
        (!allowed).then(|| self.denied("read", &format!("read {topic}")))
    }
}

/// Authenticates a request's parts (the WebSocket upgrade uses it too). The error is the
/// response to send (boxed: it is large).
pub fn authenticate(app: &AppState, parts: &Parts) -> Result<Caller, Box<Response>> {
    let remote = parts.extensions.get::<Peer>().map(|p| p.0);
    let Some((token, via_query)) = credential(parts) else {
        // A console session (its cookie) stands for the key that signed in.
        if let Some(principal) = super::console::session_principal(app, parts)? {
            return Ok(Caller { principal, remote, via_query: false });
        }
        return Ok(Caller { principal: Principal::anonymous(), remote, via_query: false });
    };
    match verify(app, remote.map(|a| a.ip()), &token) {
        Ok(principal) => Ok(Caller { principal, remote, via_query }),
        Err((status, code, msg)) => Err(Box::new(json_error(status, code, &msg))),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Caller, Response> {
        authenticate(app, parts).map_err(|r| *r)
    }
}

/// A caller with the admin role.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Admin, Response> {
        let caller = authenticate(app, parts).map_err(|r| *r)?;
        if caller.principal.is_admin() && caller.via_query {
            metrics::counter!(m::AUTH_DENIED_TOTAL, "op" => "admin").increment(1);
            let msg = "admin calls take the key in the Authorization header, never in the query string";
            Err(json_error(StatusCode::UNAUTHORIZED, http_code::UNAUTHORIZED, msg))
        } else if caller.principal.is_admin() {
            Ok(Admin(caller))
        } else {
            Err(caller.denied("admin", &format!("{} {} (admin only)", parts.method, parts.uri.path())))
        }
    }
}

impl Admin {
    /// An audit entry for an action of this admin, stamped now, to be written with the
    /// change it records.
    pub fn entry_for(&self, action: &str, target: &str) -> AuditEntry {
        let c = &self.0;
        entry(&c.principal.id, action, target, serde_json::Value::Null, serde_json::Value::Null, c.remote())
    }

    /// Records an admin action in the audit log.
    pub fn audit(
        &self,
        app: &AppState,
        action: &str,
        target: &str,
        before: serde_json::Value,
        after: serde_json::Value,
    ) {
        let c = &self.0;
        app.auth.audit(entry(&c.principal.id, action, target, before, after, c.remote()));
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    role: crate::auth::Role,
    #[serde(default)]
    scopes: Vec<String>,
}

/// `POST /v1/keys` `{"name":..,"role":..,"scopes":[..]}` → `201` with the key (shown once).
pub async fn create_key(State(app): State<AppState>, admin: Admin, body: axum::body::Bytes) -> Response {
    let req: CreateKey = match super::object(&body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let new = NewKey { name: req.name, role: req.role, scopes: req.scopes };
    let (auth, actor, remote) = (app.auth.clone(), admin.0.principal.id.clone(), admin.0.remote());
    let made = tokio::task::spawn_blocking(move || auth.create_key(new, &actor, remote)).await;
    match made {
        Ok(Ok((key, rec))) => {
            let mut body = public_view(&rec);
            body["key"] = serde_json::Value::String(key);
            json(StatusCode::CREATED, body.to_string())
        }
        Ok(Err(crate::auth::KeyError::Invalid(why))) => {
            json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, &why)
        }
        Ok(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::KEY_STORE, &e.to_string()),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, &e.to_string()),
    }
}

/// `GET /v1/keys`: every key (never the key itself, nor its digest).
pub async fn list_keys(State(app): State<AppState>, _admin: Admin) -> Response {
    let keys: Vec<_> = app.auth.keys().list().iter().map(public_view).collect();
    json(StatusCode::OK, serde_json::json!({ "keys": keys }).to_string())
}

/// `DELETE /v1/keys/{id}`: revokes; the key's connections close within a second.
pub async fn revoke_key(State(app): State<AppState>, admin: Admin, Path(id): Path<String>) -> Response {
    let (auth, actor, remote) = (app.auth.clone(), admin.0.principal.id.clone(), admin.0.remote());
    match tokio::task::spawn_blocking(move || auth.revoke_key(&id, &actor, remote)).await {
        Ok(Ok(rec)) => json(StatusCode::OK, public_view(&rec).to_string()),
        Ok(Err(e @ crate::auth::KeyError::NoSuchKey(_))) => {
            json_error(StatusCode::NOT_FOUND, http_code::NO_SUCH_KEY, &e.to_string())
        }
        Ok(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::KEY_STORE, &e.to_string()),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, &e.to_string()),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct AuditQuery {
    after: Option<u64>,
    limit: Option<usize>,
    /// Only this actor's entries (a key id, `cli`, `jwt:{sub}`).
    actor: Option<String>,
    /// Only actions starting with this (`key.`, `console.sign_in`).
    action_prefix: Option<String>,
}

/// `GET /v1/audit?after=ID&limit=N&actor=A&action_prefix=P`: entries after `ID` (default 0), oldest
/// first, at most `N` (default 100, at most 1000), only actor `A`'s and actions starting with
/// `P` when given.
pub async fn audit(
    State(app): State<AppState>,
    _admin: Admin,
    super::Params(q): super::Params<AuditQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let keep = |e: &AuditEntry| {
        q.actor.as_deref().is_none_or(|a| e.actor == a)
            && q.action_prefix.as_deref().is_none_or(|p| e.action.starts_with(p))
    };
    match app.auth.keys().audit_log_where(q.after.unwrap_or(0), limit, keep) {
        Ok(entries) => json(StatusCode::OK, serde_json::json!({ "entries": entries }).to_string()),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::KEY_STORE, &e.to_string()),
    }
}
