//! The operators' hold on triggers (PROTOCOL.md §3.3), admin only, each action audited:
//!
//! - `GET /v1/triggers`: the rules, their version and whether each is armed.
//! - `PUT /v1/triggers/{rule}` with a rule (`sport`, `value`, `when`, ...): creates or
//!   replaces the rule of that name and sport (`trigger.put`); `DELETE
//!   /v1/triggers/{rule}?sport=S` removes one (`trigger.delete`). Each change is validated,
//!   makes the next rule set version, and is kept in the key file with its audit entry in one
//!   commit, so a restart runs the same rules.
//! - `POST /v1/triggers/{rule}/arm`, `.../disarm`: a disarmed rule keeps following the games
//!   but publishes nothing (`trigger.arm` / `trigger.disarm`).
//! - `POST /v1/triggers/{rule}/suppress` `{"game": ID}` (or `{}`: every game): the next firing
//!   is swallowed (`trigger.suppress`).
//! - `POST /v1/triggers/{rule}/fire` `{"game": ID, "text": "..."}`: a firing by hand on
//!   `game/{id}/triggers`, `"manual": true`, at the game's last seq (`trigger.fire`).
//!
//! Arming, suppressing and firing by hand are live: a replay of the log fires what the rules
//! (as they now are) fire.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use opensports_proto::error_code::http as http_code;

use super::admin::Admin;
use super::{AppState, QueryResult, json, json_error, object, query};
use crate::auth::AuditEntry;
use crate::triggers::{Change, ChangeError, Edits, RuleSpec, SETTING};

/// `GET /v1/triggers`.
pub async fn list(State(app): State<AppState>, _admin: Admin) -> Response {
    json(StatusCode::OK, app.pipeline.triggers().listing().to_string())
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    #[serde(default)]
    game: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

/// `PUT /v1/triggers/{rule}`: the body is the rule without its name (or with the same name).
pub async fn put(
    State(app): State<AppState>,
    admin: Admin,
    Path(rule): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut v: serde_json::Value = match object(&body) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    match v.get("name") {
        None => v["name"] = serde_json::Value::from(rule.as_str()),
        Some(n) if n == rule.as_str() => {}
        Some(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                http_code::BAD_REQUEST,
                "the body's name differs from the path's",
            );
        }
    }
    let spec: RuleSpec = match serde_json::from_value(v) {
        Ok(s) => s,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                http_code::BAD_REQUEST,
                &format!("not a trigger rule: {e}"),
            );
        }
    };
    let (auth, entry) = (app.auth.clone(), admin.entry_for("trigger.put", &rule));
    let triggers = app.pipeline.triggers().clone();
    let done = tokio::task::spawn_blocking(move || {
        triggers.put(spec, |edits, change| store(&auth, edits, change, entry))
    })
    .await;
    answer(done, &rule)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Which {
    #[serde(default)]
    sport: Option<String>,
}

/// `DELETE /v1/triggers/{rule}?sport=S` (no sport: the every-sport rule of that name).
pub async fn delete(
    State(app): State<AppState>,
    admin: Admin,
    Path(rule): Path<String>,
    which: QueryResult<Which>,
) -> Response {
    let which = match query(which) {
        Ok(w) => w,
        Err(refused) => return *refused,
    };
    let (auth, entry) = (app.auth.clone(), admin.entry_for("trigger.delete", &rule));
    let triggers = app.pipeline.triggers().clone();
    let name = rule.clone();
    let done = tokio::task::spawn_blocking(move || {
        triggers.delete(&name, which.sport, |edits, change| store(&auth, edits, change, entry))
    })
    .await;
    answer(done, &rule)
}

/// Keeps the edits and the change's audit entry in one commit of the key file.
fn store(
    auth: &crate::auth::Auth,
    edits: &Edits,
    change: &Change,
    mut entry: AuditEntry,
) -> Result<(), String> {
    let json = serde_json::to_vec(edits).map_err(|e| e.to_string())?;
    entry.before = serde_json::to_value(&change.before).unwrap_or_default();
    entry.after = serde_json::json!({"rule": change.after, "version": change.version});
    auth.put_setting(SETTING, &json, entry).map_err(|e| e.to_string())
}

fn answer(done: Result<Result<Change, ChangeError>, tokio::task::JoinError>, rule: &str) -> Response {
    match done {
        Ok(Ok(c)) => json(
            StatusCode::OK,
            serde_json::json!({"rule": rule, "version": c.version, "before": c.before, "after": c.after})
                .to_string(),
        ),
        Ok(Err(ChangeError::Invalid(e))) => json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, &e),
        Ok(Err(e @ ChangeError::NotFound(_))) => {
            json_error(StatusCode::NOT_FOUND, http_code::NOT_FOUND, &e.to_string())
        }
        Ok(Err(e @ ChangeError::Store(_))) => {
            tracing::error!(error = %e, "a trigger rule change was not stored");
            json_error(StatusCode::SERVICE_UNAVAILABLE, http_code::STORE_ERROR, &e.to_string())
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, &e.to_string()),
    }
}

/// `POST /v1/triggers/{rule}/{action}`.
pub async fn act(
    State(app): State<AppState>,
    admin: Admin,
    Path((rule, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let triggers = app.pipeline.triggers();
    if !triggers.has(&rule) {
        return json_error(StatusCode::NOT_FOUND, http_code::NOT_FOUND, &format!("no trigger rule {rule:?}"));
    }
    let target: Target = if body.is_empty() {
        Target::default()
    } else {
        match object(&body) {
            Ok(t) => t,
            Err(refused) => return *refused,
        }
    };
    // What every action's body may hold, checked for all of them.
    let game_ok = |g: &str| {
        (1..=64).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    if target.game.as_deref().is_some_and(|g| !game_ok(g)) {
        return json_error(
            StatusCode::BAD_REQUEST,
            http_code::BAD_REQUEST,
            "game is a game id ([A-Za-z0-9_.-], 1-64)",
        );
    }
    if target.text.as_ref().is_some_and(|t| t.chars().count() > 256) {
        return json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, "text is at most 256 characters");
    }
    let audit = |what: &str, before: serde_json::Value, after: serde_json::Value| {
        admin.audit(&app, &format!("trigger.{what}"), &rule, before, after);
    };
    let answer = match action.as_str() {
        "arm" | "disarm" => {
            let armed = action == "arm";
            let was = triggers.set_armed(&rule, armed);
            audit(&action, serde_json::json!({"armed": was}), serde_json::json!({"armed": armed}));
            serde_json::json!({"rule": rule, "armed": armed})
        }
        "suppress" => {
            let game = target.game.unwrap_or_default();
            let waiting = triggers.suppress_next(&rule, &game);
            audit("suppress", serde_json::Value::Null, serde_json::json!({"game": game, "waiting": waiting}));
            serde_json::json!({"rule": rule, "game": game, "suppressed_next": waiting})
        }
        "fire" => {
            let Some(game) = target.game.filter(|g| app.pipeline.directory().get(g).is_some()) else {
                return json_error(
                    StatusCode::NOT_FOUND,
                    http_code::NO_SUCH_GAME,
                    "fire needs {\"game\": ID} of a game in memory",
                );
            };
            let text = target.text.unwrap_or_default();
            let state = app.fanout.latest(&opensports_proto::topic::game_state(&game));
            let (seq, ts) = state.as_ref().map_or((0, 0), |p| {
                let last = serde_json::from_str::<serde_json::Value>(p.data())
                    .ok()
                    .and_then(|v| v["last_seq"].as_u64());
                (last.unwrap_or(0), p.ts)
            });
            let fired = triggers.manual(&rule, seq, ts, &text);
            let topic = format!("{}triggers", opensports_proto::topic::game_prefix(&game));
            let Some(t) = app.fanout.topic(&topic) else {
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    http_code::BAD_REQUEST,
                    "the topic limit is reached",
                );
            };
            let p = app.fanout.publish(&t, ts, &fired);
            audit(
                "fire",
                serde_json::Value::Null,
                serde_json::json!({"game": game, "seq": seq, "text": text}),
            );
            serde_json::json!({"rule": rule, "game": game, "topic": topic, "topic_seq": p.seq})
        }
        other => {
            return json_error(
                StatusCode::NOT_FOUND,
                http_code::NOT_FOUND,
                &format!("no action {other:?} (arm, disarm, suppress, fire)"),
            );
        }
    };
    json(StatusCode::OK, answer.to_string())
}
