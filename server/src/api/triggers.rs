//! The operators' hold on triggers (PROTOCOL.md §3.3), admin only, each action audited:
//!
//! - `GET /v1/triggers`: the rules, their version and whether each is armed.
//! - `POST /v1/triggers/{rule}/arm`, `.../disarm`: a disarmed rule keeps following the games
//!   but publishes nothing (`trigger.arm` / `trigger.disarm`).
//! - `POST /v1/triggers/{rule}/suppress` `{"game": ID}` (or `{}`: every game): the next firing
//!   is swallowed (`trigger.suppress`).
//! - `POST /v1/triggers/{rule}/fire` `{"game": ID, "text": "..."}`: a firing by hand on
//!   `game/{id}/triggers`, `"manual": true`, at the game's last seq (`trigger.fire`).
//!
//! Operators' actions are live: a replay of the log fires what the rules fire.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use opensports_proto::error_code::http as http_code;

use super::admin::Admin;
use super::{AppState, json, json_error, object};

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
            if text.len() > 256 {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    http_code::BAD_REQUEST,
                    "text is at most 256 bytes",
                );
            }
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
