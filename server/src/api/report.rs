//! `GET /v1/games/{id}/report`: the post-game report (`crate::report`) as one self-contained
//! page, or with `?format=json` as the JSON the page and `opensports report --pdf` are made
//! from. Anyone who may read the game's state may ask; sections whose topics the caller may not
//! read are left out. Once the game left memory (`pipeline.ended_game_ttl_secs` after its end)
//! the report saved in the log then answers.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opensports_proto::error_code::http as http_code;
use opensports_proto::topic;

use super::admin::Caller;
use super::{AppState, json, json_error};
use crate::report;

/// The report saved in the log when the game left memory. It was made with every section, so
/// it needs read access to all of the game (`game/{id}/report` stands for it: `game/{id}/#`
/// or `game/#` grant it, `game/+/state` does not).
fn saved(s: &AppState, caller: &Caller, id: &str) -> Result<report::Report, Box<Response>> {
    let missing = || {
        let msg = format!("no game {id:?} on this server, in memory or with a saved report");
        Box::new(json_error(StatusCode::NOT_FOUND, http_code::NO_SUCH_GAME, &msg))
    };
    let failed =
        |e: String| Box::new(json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::STORE_ERROR, &e));
    let Some(store) = &s.store else { return Err(missing()) };
    let bytes = match store.report(id) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(missing()),
        Err(e) => return Err(failed(e.to_string())),
    };
    if let Some(denied) = caller.deny_read(s, &format!("{}report", topic::game_prefix(id))) {
        return Err(Box::new(denied));
    }
    serde_json::from_slice(&bytes).map_err(|e| failed(e.to_string()))
}

#[derive(Debug, serde::Deserialize)]
pub struct ReportQuery {
    format: Option<String>,
}

pub async fn report(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    super::Params(q): super::Params<ReportQuery>,
) -> Response {
    if let Some(denied) = caller.deny_read(&s, &topic::game_state(&id)) {
        return denied;
    }
    let public = &s.auth.cfg.public_topics;
    let r = match report::build(&s.fanout, &id, |t| caller.principal.may_read(t, public)) {
        Some(r) => r,
        None => match saved(&s, &caller, &id) {
            Ok(r) => r,
            Err(refused) => return *refused,
        },
    };
    match q.format.as_deref() {
        None | Some("html") => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, report::html::CSP),
            ],
            report::html::render(&r),
        )
            .into_response(),
        Some("json") => match serde_json::to_string(&r) {
            Ok(body) => json(StatusCode::OK, body),
            Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, &e.to_string()),
        },
        Some(other) => json_error(
            StatusCode::BAD_REQUEST,
            http_code::BAD_REQUEST,
            &format!("format {other:?}: html or json"),
        ),
    }
}
