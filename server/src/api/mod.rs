//! HTTP on one port: the JSON API, `/metrics`, the dashboard, and the WebSocket upgrade at `/ws`.
//!
//! # Layout
//! - this file: the router and the small JSON handlers.
//! - [`admin`]: who is calling (`Caller`, `Admin` extractors), keys and audit endpoints.
//! - [`openapi`]: the OpenAPI 3.1 description of every route, at `/openapi.json`.
//! - [`serve`]: the accept loop (connection cap, header-read timeout, graceful shutdown).
//! - [`sse`]: a topic's latest value over plain HTTP, and Server-Sent Events.
//! - [`graphics`]: a game as the flat JSON/XML/CSV document graphics engines read.
//! - [`store`]: export and online backup of the durable log, streamed.
//! - [`ws`]: the WebSocket handshake (done by hand on hyper's upgrade) and the session loop.
//! - [`pages`]: the dashboard: overview at `/`, a page per game at `/game/{id}`, and their
//!   embedded assets (the JS client's modules, uPlot) under `/assets/`.

pub mod admin;
pub mod console;
pub mod credential;
mod deadline;
pub mod delays;
pub mod devices;
pub mod graphics;
pub mod graphql;
pub mod openapi;
pub mod pages;
pub mod report;
mod schema;
pub mod serve;
pub mod socket;
pub mod sse;
pub mod store;
pub mod stream;
pub mod triggers;
pub mod ws;

use opensports_proto::error_code::http as http_code;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use opensports_proto::topic;
use tokio::sync::{Semaphore, watch};

use crate::fanout::Fanout;
use crate::pipeline::Pipeline;
use crate::plugin::PluginSet;

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub fanout: Arc<Fanout>,
    /// The graphics documents' field maps (`[graphics]`).
    pub graphics: Arc<crate::graphics::Graphics>,
    pub pipeline: Arc<Pipeline>,
    pub plugins: Arc<PluginSet>,
    pub models: Arc<crate::model::ModelRegistry>,
    pub store: Option<Arc<crate::store::Store>>,
    pub prometheus: PrometheusHandle,
    /// One permit per WebSocket session (`fanout.max_connections`).
    pub ws_permits: Arc<Semaphore>,
    /// Session tasks, which shutdown waits for.
    pub tasks: crate::tasks::Tracker,
    pub shutdown: watch::Receiver<bool>,
    /// Credentials, scopes, audit log.
    pub auth: Arc<crate::auth::Auth>,
    /// The QUIC (and HTTPS) certificate chain, PEM.
    pub certificate: Arc<str>,
    /// The cluster this node joined (`[cluster]`), if any.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Devices and the push outbox.
    pub push: Arc<crate::push::Push>,
    /// The operator console's sessions (`/console`).
    pub console: Arc<console::Console>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/game/{id}", get(pages::game))
        .route("/console", get(console::page))
        .route("/console/api/login", axum::routing::post(console::login))
        .route("/console/api/code", axum::routing::post(console::code))
        .route("/console/api/enroll", axum::routing::post(console::enroll))
        .route("/console/api/enroll/confirm", axum::routing::post(console::confirm))
        .route("/console/api/session", get(console::current))
        .route("/console/api/logout", axum::routing::post(console::logout))
        .route("/assets/{*file}", get(pages::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/schema", get(schema))
        .route("/v1/tls/certificate", get(certificate))
        .route("/v1/games", get(games))
        .route("/v1/games/{id}", get(game))
        .route("/v1/games/{id}/events", get(store::events))
        .route("/v1/games/{id}/report", get(report::report))
        .route("/v1/backup", get(store::backup))
        .route("/v1/models", get(models))
        .route("/v1/ratings", get(ratings))
        .route("/v1/models/{name}/activate", axum::routing::post(activate_model))
        .route("/v1/models/{name}/shadow", axum::routing::post(shadow_model))
        .route("/v1/plugins", get(plugins))
        .route("/v1/plugins/{name}", axum::routing::post(reload_plugin))
        .route("/v1/plugins/{name}/games/{game}/enable", axum::routing::post(enable_plugin_game))
        .route("/v1/keys", get(admin::list_keys).post(admin::create_key))
        .route("/v1/keys/{id}", axum::routing::delete(admin::revoke_key))
        .route("/v1/audit", get(admin::audit))
        .route("/v1/delays", get(delays::list))
        .route("/v1/delays/{ms}", axum::routing::post(delays::set))
        .route("/v1/devices", get(devices::list).post(devices::register))
        .route("/v1/devices/{id}", axum::routing::delete(devices::remove))
        .route("/v1/push/outbox", get(devices::outbox))
        .route("/v1/push/webpush", get(devices::webpush_key))
        .route("/v1/triggers", get(triggers::list))
        .route("/v1/triggers/{rule}", axum::routing::put(triggers::put).delete(triggers::delete))
        .route("/v1/triggers/{rule}/{action}", axum::routing::post(triggers::act))
        .route("/v1/topics/{*path}", get(sse::latest))
        .route("/v1/graphics/{file}", get(graphics::document))
        .route("/v1/sse", get(sse::sse))
        .route("/ws", get(ws::upgrade))
        .route("/graphql", get(graphql::ws::upgrade).post(graphql::query))
        .route("/graphql/schema.graphql", get(graphql::sdl))
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors))
        .with_state(state)
}

/// CORS for the origins in `auth.cors_origins` (`*`: any): preflights are answered here,
/// and responses to an allowed origin carry `Access-Control-Allow-Origin`. Other origins get
/// no CORS headers (the browser then withholds the response).
async fn cors(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| s.auth.cfg.cors_origins.iter().any(|a| a == "*" || a == o))
        .and_then(|o| header::HeaderValue::from_str(o).ok());
    let preflight = req.method() == axum::http::Method::OPTIONS;
    let mut resp = match (preflight, &allowed) {
        (true, Some(_)) => StatusCode::NO_CONTENT.into_response(),
        _ => next.run(req).await,
    };
    if let Some(origin) = allowed {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, header::HeaderValue::from_static("Origin"));
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                header::HeaderValue::from_static("GET, POST, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                header::HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(header::ACCESS_CONTROL_MAX_AGE, header::HeaderValue::from_static("600"));
        }
    }
    resp
}

/// Query parameters whose rejection is a JSON error (`400 bad_request`) like every other API
/// error, not axum's plain-text one.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(q)) => Ok(Params(q)),
            Err(e) => Err(json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, &e.body_text())),
        }
    }
}

/// A JSON object body as `T` (an array is not an object, though serde would read a struct from
/// one), or the `400 bad_request` naming what is wrong.
pub(crate) fn object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    let refuse = |m: String| Box::new(json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, &m));
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => serde_json::from_value(v).map_err(|e| refuse(e.to_string())),
        Ok(_) => Err(refuse("the body must be a JSON object".into())),
        Err(e) => Err(refuse(e.to_string())),
    }
}

/// A query string as axum hands it over, read or refused.
pub(crate) type QueryResult<T> = Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>;

/// The query string as `T`, or the `400 bad_request` naming what is wrong.
pub(crate) fn query<T>(q: QueryResult<T>) -> Result<T, Box<Response>> {
    q.map(|axum::extract::Query(t)| t)
        .map_err(|e| Box::new(json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, &e.body_text())))
}

pub(crate) fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON error body: `{"error":{"code":..,"message":..}}`.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, serde_json::json!({"error": {"code": code, "message": message}}).to_string())
}

/// Liveness: 200 while the process serves. The log's health is in the body (`log`), but a
/// failing log is not a reason to restart: it reopens by itself once the cause goes away.
async fn healthz(State(s): State<AppState>) -> Response {
    let log = s.store.as_ref().map_or("disabled", |st| st.health().name());
    json(StatusCode::OK, serde_json::json!({"status": "ok", "log": log}).to_string())
}

/// Readiness for a load balancer or a Kubernetes probe: 200 once the server serves (the log is
/// open and replayed, models and plugins loaded: start-up finishes all of that before the HTTP
/// port opens), with what it loaded; 503 once it is shutting down, while a cluster node
/// catches up, and while the log cannot commit (`"log": "failing"`, `log_error` says why).
async fn readyz(State(s): State<AppState>) -> Response {
    let stopping = *s.shutdown.borrow();
    let models: Vec<String> = s.models.specs().map(|m| m.name).collect();
    let plugins: Vec<serde_json::Value> = s
        .plugins
        .report()
        .into_iter()
        .map(|p| serde_json::json!({"name": p.name, "status": p.status}))
        .collect();
    // A cluster node serves once it has applied what the cluster holds (catch-up at start).
    let catching_up = s.cluster.as_ref().is_some_and(|c| !c.caught_up());
    let log = s.store.as_ref().map(|st| st.health());
    let failing = matches!(log, Some(crate::store::Health::Failing(_)));
    let status = match () {
        _ if stopping => "stopping",
        _ if catching_up => "catching_up",
        _ if failing => "log_failing",
        _ => "ready",
    };
    let mut body = serde_json::json!({
        "status": status,
        "log": log.as_ref().map_or("disabled", |h| h.name()),
        "models": models,
        "plugins": plugins,
    });
    if let Some(crate::store::Health::Failing(why)) = &log {
        body["log_error"] = why.as_str().into();
    }
    if let Some(c) = &s.cluster {
        body["cluster"] = c.status();
    }
    let status = if status == "ready" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(status, body.to_string())
}

pub use schema::schema_text;

async fn openapi_json() -> Response {
    json(StatusCode::OK, openapi::json().to_string())
}

async fn schema() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/schema+json")], schema_text()).into_response()
}

/// The server's certificate chain (PEM). Public (every TLS handshake sends it); a client that
/// pins the fingerprint compares it with the leaf's SHA-256 and then trusts only this
/// certificate, through its TLS library's ordinary CA setting.
async fn certificate(State(s): State<AppState>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-pem-file")], s.certificate.to_string())
        .into_response()
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    let body = s.prometheus.render() + &crate::metrics::process_text();
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn games(State(s): State<AppState>, caller: admin::Caller) -> Response {
    if let Some(denied) = caller.deny_read(&s, topic::GAMES) {
        return denied;
    }
    json(StatusCode::OK, s.pipeline.games().list_json())
}

async fn game(State(s): State<AppState>, caller: admin::Caller, Path(id): Path<String>) -> Response {
    if let Some(denied) = caller.deny_read(&s, &topic::game_state(&id)) {
        return denied;
    }
    match s.fanout.latest(&topic::game_state(&id)) {
        Some(p) => json(StatusCode::OK, p.data().to_string()),
        None => json_error(
            StatusCode::NOT_FOUND,
            http_code::NO_SUCH_GAME,
            &format!("no game {id:?} on this server"),
        ),
    }
}

async fn ratings(State(s): State<AppState>) -> Response {
    json(StatusCode::OK, serde_json::json!({"ratings": s.pipeline.ratings().report()}).to_string())
}

async fn models(State(s): State<AppState>) -> Response {
    json(StatusCode::OK, serde_json::json!({"models": s.models.report()}).to_string())
}

/// `{"version": ...}`: the key is required (`null` stops shadowing).
#[derive(serde::Deserialize)]
struct VersionBody {
    #[serde(deserialize_with = "present")]
    version: Option<String>,
}

/// An `Option` field that must be present (`null` allowed).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    serde::Deserialize::deserialize(d)
}

/// `POST /v1/models/{name}/activate` `{"version":"2"}`.
async fn activate_model(
    State(s): State<AppState>,
    admin: admin::Admin,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(VersionBody { version: Some(v) }) = object(&body).map_err(|_| ()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            http_code::BAD_REQUEST,
            r#"body must be {"version":"..."}"#,
        );
    };
    let before = s.models.roles_of(&name);
    let r = s.models.activate(&name, &v);
    if r.is_ok() {
        admin.audit(&s, "model.activate", &name, before, s.models.roles_of(&name));
    }
    role_result(r, &name)
}

/// `POST /v1/models/{name}/shadow` `{"version":"2"}`, or `{"version":null}` to stop shadowing.
async fn shadow_model(
    State(s): State<AppState>,
    admin: admin::Admin,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(VersionBody { version }) = object(&body).map_err(|_| ()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            http_code::BAD_REQUEST,
            r#"body must be {"version":"..."|null}"#,
        );
    };
    let before = s.models.roles_of(&name);
    let r = s.models.set_shadow(&name, version.as_deref());
    if r.is_ok() {
        admin.audit(&s, "model.shadow", &name, before, s.models.roles_of(&name));
    }
    role_result(r, &name)
}

fn role_result(r: Result<(), crate::model::registry::RoleError>, name: &str) -> Response {
    match r {
        Ok(()) => json(StatusCode::OK, serde_json::json!({"name": name, "ok": true}).to_string()),
        Err(e) => json_error(StatusCode::NOT_FOUND, http_code::NO_SUCH_MODEL, &e.to_string()),
    }
}

async fn plugins(State(s): State<AppState>) -> Response {
    json(StatusCode::OK, serde_json::json!({"plugins": s.plugins.report()}).to_string())
}

/// Lifts a plugin's quarantine for one game (it was quarantined for that game's failures).
async fn enable_plugin_game(
    State(s): State<AppState>,
    admin: admin::Admin,
    Path((name, game)): Path<(String, String)>,
) -> Response {
    match s.plugins.enable_game(&name, &game) {
        None => json_error(
            StatusCode::NOT_FOUND,
            http_code::NO_SUCH_PLUGIN,
            &format!("no plugin {name:?} is loaded"),
        ),
        Some(lifted) => {
            if lifted {
                let what = format!("{name}/{game}");
                let after = serde_json::json!({ "quarantined": false });
                admin.audit(
                    &s,
                    "plugin.enable_game",
                    &what,
                    serde_json::json!({ "quarantined": true }),
                    after,
                );
            }
            let body = serde_json::json!({"name": name, "game": game, "was_quarantined": lifted});
            json(StatusCode::OK, body.to_string())
        }
    }
}

/// Hot reload: the body is the new `.wasm`. Compiled off the runtime's threads; the shards swap
/// it in at their next event boundary after backfilling it.
async fn reload_plugin(
    State(s): State<AppState>,
    admin: admin::Admin,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if s.plugins.get(&name).is_none() {
        return json_error(
            StatusCode::NOT_FOUND,
            http_code::NO_SUCH_PLUGIN,
            &format!("no plugin {name:?} is loaded"),
        );
    }
    let before = s.plugins.version_of(&name);
    let set = s.plugins.clone();
    let n = name.clone();
    match tokio::task::spawn_blocking(move || set.reload(&n, &body)).await {
        Ok(Ok(version)) => {
            let before = serde_json::json!({ "version": before });
            admin.audit(&s, "plugin.replace", &name, before, serde_json::json!({ "version": version }));
            json(StatusCode::OK, serde_json::json!({"name": name, "version": version}).to_string())
        }
        Ok(Err(e)) => json_error(StatusCode::BAD_REQUEST, http_code::BAD_PLUGIN, &e.to_string()),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::INTERNAL, &e.to_string()),
    }
}
