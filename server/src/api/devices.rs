//! Devices for push notifications (PROTOCOL.md §3.4):
//!
//! - `POST /v1/devices` (a subscriber credential, or an admin, audited as `device.create`):
//!   registers a device following games its credential may read (`game/{id}/triggers`); `201`
//!   with the device.
//! - `GET /v1/devices`: the caller's own devices (an admin: every device).
//! - `DELETE /v1/devices/{id}`: one of the caller's own (an admin: any, audited as
//!   `device.delete`).
//! - `GET /v1/push/outbox?state=queued|sent|dead|superseded` (admin): the outbox's entries, at
//!   most 1000.
//! - `GET /v1/push/webpush`: the VAPID public key browsers subscribe with.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use opensports_proto::error_code::http as http_code;

use super::admin::{Admin, Caller};
use super::{AppState, QueryResult, json, json_error, object, query};
use crate::push::dispatch as push;
use crate::push::{DeviceError, NewDevice};

/// `POST /v1/devices`.
pub async fn register(State(app): State<AppState>, caller: Caller, body: axum::body::Bytes) -> Response {
    if caller.principal.role.is_none() {
        return caller.denied("push", "register a device");
    }
    let new: NewDevice = match object(&body) {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    for g in &new.games {
        if let Some(denied) = caller.deny_read(&app, &format!("game/{g}/triggers")) {
            return denied;
        }
    }
    if !new.teams.is_empty()
        && let Some(denied) = caller.deny_read(&app, "game/+/triggers")
    {
        return denied;
    }
    // Each followed game under way now (named, or played by a followed team) and its last
    // event: the device is pushed what follows, not the game's past.
    let fanout = &app.fanout;
    let mut since: std::collections::BTreeMap<String, u64> =
        new.games.iter().map(|g| (g.clone(), push::last_seq(push::state(fanout, g).as_ref()))).collect();
    if !new.teams.is_empty() {
        for (g, _) in app.pipeline.directory().list() {
            let state = push::state(fanout, &g);
            if new.teams.iter().any(|t| push::teams(state.as_ref()).contains(t)) {
                since.insert(g, push::last_seq(state.as_ref()));
            }
        }
    }
    let (push, owner) = (app.push.clone(), caller.principal.id.to_string());
    match tokio::task::spawn_blocking(move || push.register(&owner, new, since)).await {
        Ok(Ok(d)) => {
            if caller.principal.is_admin() {
                let after = serde_json::to_value(&d).unwrap_or_default();
                app.auth.audit(crate::auth::keys::entry(
                    &caller.principal.id,
                    "device.create",
                    &d.id,
                    serde_json::Value::Null,
                    after,
                    caller.remote(),
                ));
            }
            json(StatusCode::CREATED, serde_json::to_string(&d).unwrap_or_default())
        }
        Ok(Err(DeviceError::Invalid(e))) => json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, &e),
        Ok(Err(DeviceError::Full(e))) => json_error(StatusCode::CONFLICT, http_code::TOO_MANY_DEVICES, &e),
        Ok(Err(e)) => json_error(StatusCode::SERVICE_UNAVAILABLE, http_code::STORE_ERROR, &e.to_string()),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, &e.to_string()),
    }
}

/// `GET /v1/devices`.
pub async fn list(State(app): State<AppState>, caller: Caller) -> Response {
    if caller.principal.role.is_none() {
        return caller.denied("push", "list devices");
    }
    let owner = (!caller.principal.is_admin()).then(|| caller.principal.id.to_string());
    let devices = app.push.devices(owner.as_deref());
    json(StatusCode::OK, serde_json::json!({ "devices": devices }).to_string())
}

/// `DELETE /v1/devices/{id}`.
pub async fn remove(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    if caller.principal.role.is_none() {
        return caller.denied("push", "remove a device");
    }
    let admin = caller.principal.is_admin();
    let owner = (!admin).then(|| caller.principal.id.to_string());
    let (push, which) = (app.push.clone(), id.clone());
    match tokio::task::spawn_blocking(move || push.remove(&which, owner.as_deref())).await {
        Ok(Ok(Some(d))) => {
            if admin {
                let before = serde_json::to_value(&d).unwrap_or_default();
                app.auth.audit(crate::auth::keys::entry(
                    &caller.principal.id,
                    "device.delete",
                    &id,
                    before,
                    serde_json::Value::Null,
                    caller.remote(),
                ));
            }
            json(StatusCode::OK, serde_json::to_string(&d).unwrap_or_default())
        }
        Ok(Ok(None)) => {
            json_error(StatusCode::NOT_FOUND, http_code::NOT_FOUND, &format!("no device {id:?} of yours"))
        }
        Ok(Err(e)) => json_error(StatusCode::SERVICE_UNAVAILABLE, http_code::STORE_ERROR, &e),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, &e.to_string()),
    }
}

/// `GET /v1/push/webpush`.
pub async fn webpush_key(State(app): State<AppState>, caller: Caller) -> Response {
    if caller.principal.role.is_none() {
        return caller.denied("push", "read the Web Push key");
    }
    match app.push.vapid_public_key() {
        Some(k) => json(StatusCode::OK, serde_json::json!({ "public_key": k }).to_string()),
        None => json_error(
            StatusCode::NOT_FOUND,
            http_code::NOT_FOUND,
            "Web Push is off (push.webpush.vapid_key_file)",
        ),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    #[serde(default)]
    state: Option<crate::push::State>,
}

/// `GET /v1/push/outbox`.
pub async fn outbox(State(app): State<AppState>, _admin: Admin, q: QueryResult<OutboxQuery>) -> Response {
    let state = match query(q) {
        Ok(q) => q.state,
        Err(refused) => return *refused,
    };
    let push = app.push.clone();
    match tokio::task::spawn_blocking(move || push.entries(state, 1000)).await {
        Ok(Ok(entries)) => json(StatusCode::OK, serde_json::json!({ "entries": entries }).to_string()),
        Ok(Err(e)) => json_error(StatusCode::SERVICE_UNAVAILABLE, http_code::STORE_ERROR, &e),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, &e.to_string()),
    }
}
