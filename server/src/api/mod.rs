//! HTTP on one port: the JSON API, `/metrics`, the dashboard, and the WebSocket upgrade at `/ws`.
//!
//! # Layout
//! - this file: the router and the small JSON handlers.
//! - [`ws`]: the WebSocket handshake (done by hand on hyper's upgrade) and the session loop.
//! - `dashboard.html`: the embedded live dashboard served at `/`.

pub mod ws;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use opensports_proto::topic;
use tokio::sync::watch;

use crate::fanout::Fanout;
use crate::pipeline::Pipeline;

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub fanout: Arc<Fanout>,
    pub pipeline: Arc<Pipeline>,
    pub prometheus: PrometheusHandle,
    pub ws_sessions: Arc<AtomicUsize>,
    pub shutdown: watch::Receiver<bool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/games", get(games))
        .route("/v1/games/{id}", get(game))
        .route("/ws", get(ws::upgrade))
        .with_state(state)
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON error body: `{"error":{"code":..,"message":..}}`.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, serde_json::json!({"error": {"code": code, "message": message}}).to_string())
}

async fn healthz() -> Response {
    json(StatusCode::OK, r#"{"status":"ok"}"#.into())
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.prometheus.render())
        .into_response()
}

async fn games(State(s): State<AppState>) -> Response {
    json(StatusCode::OK, s.pipeline.games().list_json())
}

async fn game(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.fanout.latest(&topic::game_state(&id)) {
        Some(p) => json(StatusCode::OK, p.data().to_string()),
        None => json_error(StatusCode::NOT_FOUND, "no_such_game", &format!("no game {id:?} on this server")),
    }
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
