//! The operators' view of the delay lines (PROTOCOL.md §2.7):
//!
//! - `GET /v1/delays`: every line (topic, the delay asked for, the one it runs at, subscribers,
//!   what it holds, what it released, its release lateness) and the overrides in force.
//! - `POST /v1/delays/{ms}` `{"effective_ms": N}`: the lines subscribers asked `ms` of run at
//!   `N` from now on (a shorter delay releases at once what is now due: "catch up"; a longer one
//!   holds); `{"effective_ms": null}` (or `{}`) runs them at `ms` again. Audited (`delay.set`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use opensports_proto::error_code::reason;

use super::admin::Admin;
use super::{AppState, json, json_error, object};

/// `GET /v1/delays`.
pub async fn list(State(app): State<AppState>, _admin: Admin) -> Response {
    let overrides: Vec<serde_json::Value> = app
        .fanout
        .delays()
        .overrides()
        .into_iter()
        .map(|(d, e)| serde_json::json!({"delay_ms": d, "effective_ms": e}))
        .collect();
    let body = serde_json::json!({
        "lines": app.fanout.delay_lines(),
        "overrides": overrides,
        "max_delay_ms": app.fanout.config().max_delay_ms,
    });
    json(StatusCode::OK, body.to_string())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDelay {
    effective_ms: Option<u64>,
}

/// `POST /v1/delays/{ms}`.
pub async fn set(
    State(app): State<AppState>,
    admin: Admin,
    Path(ms): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let cfg = app.fanout.config();
    let Some(ms) = ms.parse::<u64>().ok().filter(|d| *d >= 1) else {
        let why = "the delay in the path is a whole number of ms, at least 1";
        return json_error(StatusCode::BAD_REQUEST, reason::BAD_DELAY, why);
    };
    if let Err(why) = cfg.check_delay(ms) {
        return json_error(StatusCode::BAD_REQUEST, reason::BAD_DELAY, &why);
    }
    let set: SetDelay = match object(&body) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    if let Err(why) = set.effective_ms.map_or(Ok(()), |e| cfg.check_delay(e)) {
        return json_error(StatusCode::BAD_REQUEST, reason::BAD_DELAY, &why);
    }
    let before = app.fanout.delays().effective_ms(ms);
    let lines = app.fanout.set_delay(ms, set.effective_ms);
    let after = app.fanout.delays().effective_ms(ms);
    admin.audit(&app, "delay.set", &ms.to_string(), before.into(), after.into());
    json(
        StatusCode::OK,
        serde_json::json!({"delay_ms": ms, "effective_ms": after, "lines": lines}).to_string(),
    )
}
