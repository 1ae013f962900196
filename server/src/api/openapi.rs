//! The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`.
//!
//! Built with utoipa's builders from one table ([`ROUTES`]) that names every route the router
//! serves, so the description is read in one place; a test calls every operation it lists and
//! checks the router answers it, and CI validates the document (openapi-spec-validator).
//! Message bodies of the streaming protocols are in the JSON Schema (`/v1/schema`).

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder,
    Required, ResponseBuilder,
};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Open,
    /// Read access to the topic behind it (anonymous for `auth.public_topics`, else a key).
    Read,
    /// An admin key.
    Admin,
}

/// One operation of the HTTP API.
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// `(name, "path" | "query" | "header", required, description)`.
    pub params: &'static [(&'static str, &'static str, bool, &'static str)],
    /// Request body: content type and description.
    pub body: Option<(&'static str, &'static str)>,
    /// `(status, content type ("" for none), description)`.
    pub responses: &'static [(u16, &'static str, &'static str)],
}

const JSON: &str = "application/json";
const ERR: &str = r#"{"error":{"code","message"}}"#;

macro_rules! route {
    ($method:literal $path:literal, $tag:literal, $access:ident, $summary:literal,
     params: [$($p:expr),*], body: $body:expr, responses: [$($r:expr),* $(,)?]) => {
        Route {
            method: $method, path: $path, tag: $tag, summary: $summary, access: Access::$access,
            params: &[$($p),*], body: $body, responses: &[$($r),*],
        }
    };
}

/// Every route of [`super::router`].
pub const ROUTES: &[Route] = &[
    route!("get" "/", "dashboard", Open, "The live dashboard (HTML)", params: [], body: None,
        responses: [(200, "text/html", "the dashboard page")]),
    route!("get" "/game/{id}", "dashboard", Open, "A game's page (HTML)", params: [("id", "path", true, "game id")],
        body: None, responses: [(200, "text/html", "the game page"), (404, JSON, "no_such_game: not a game id")]),
    route!("get" "/assets/{file}", "dashboard", Open, "The pages' scripts and styles", params: [("file", "path", true, "asset path")],
        body: None, responses: [(200, "text/javascript", "the asset"), (404, "", "no such asset")]),
    route!("get" "/healthz", "operations", Open, "Liveness", params: [], body: None,
        responses: [(200, JSON, r#"{"status":"ok"}"#)]),
    route!("get" "/readyz", "operations", Open, "Readiness (log open, models and plugins loaded)", params: [], body: None,
        responses: [(200, JSON, r#"{"status":"ready","log","models","plugins"}"#), (503, JSON, "shutting down")]),
    route!("get" "/metrics", "operations", Open, "Prometheus metrics", params: [], body: None,
        responses: [(200, "text/plain", "Prometheus text format 0.0.4")]),
    route!("get" "/openapi.json", "operations", Open, "This document", params: [], body: None,
        responses: [(200, JSON, "OpenAPI 3.1")]),
    route!("get" "/v1/schema", "protocol", Open, "JSON Schema of every wire type (events, control, WebSocket/SSE messages)",
        params: [], body: None, responses: [(200, "application/schema+json", "JSON Schema draft 2020-12")]),
    route!("get" "/v1/tls/certificate", "protocol", Open, "The server's certificate chain, to check against a pinned fingerprint",
        params: [], body: None, responses: [(200, "application/x-pem-file", "PEM, leaf first")]),
    route!("get" "/v1/games", "games", Read, "The games list (topic `games`)", params: [], body: None,
        responses: [(200, JSON, "the games list"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/games/{id}", "games", Read, "A game's latest state (topic `game/{id}/state`)",
        params: [("id", "path", true, "game id")], body: None,
        responses: [(200, JSON, "the state"), (404, JSON, "no_such_game"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/topics/{topic}/latest", "games", Read, "A topic's latest value, with its seq as ETag",
        params: [("topic", "path", true, "the topic, slashes as %2F"), ("If-None-Match", "header", false, "an ETag from before"),
            ("delay", "query", false, "ms: the value as it was this long ago, by source time (at most fanout.max_delay_ms)")],
        body: None,
        responses: [(200, JSON, r#"{"topic","seq","ts","data"}"#), (304, "", "unchanged"), (400, JSON, "bad_pattern"),
            (404, JSON, "no_such_topic"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/graphics/{file}", "games", Read, "A game as a flat document for graphics engines: {game}.json, .xml or .csv (README, Graphics outputs)",
        params: [("file", "path", true, "game id and format: {game}.json, {game}.xml or {game}.csv"),
            ("wait", "query", false, "with a current If-None-Match: seconds to wait for a change (at most 30)"),
            ("delay", "query", false, "ms: every field as it was this long ago, by source time"),
            ("If-None-Match", "header", false, "an ETag from before")],
        body: None,
        responses: [(200, "application/json|application/xml|text/csv", "the document"), (304, "", "unchanged"),
            (400, JSON, "bad_request"), (404, JSON, "no_such_game, not_found"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/sse", "games", Read, "Server-Sent Events: messages of the topics matching the patterns (PROTOCOL.md 3.1)",
        params: [("topics", "query", true, "comma-separated patterns"), ("mode", "query", false, "all (default) or latest"),
            ("since", "query", false, "resume point (an event id)"), ("Last-Event-ID", "header", false, "resume point"),
            ("delay", "query", false, "ms: each message at its source time plus this (a delay line)"),
            ("token", "query", false, "credential, for EventSource")],
        body: None,
        responses: [(200, "text/event-stream", "one server message per event"), (400, JSON, ERR), (401, JSON, ERR),
            (403, JSON, ERR), (429, JSON, "too_many_connections"), (503, JSON, "too_many_connections")]),
    route!("get" "/ws", "games", Read, "WebSocket upgrade (PROTOCOL.md 2)", params: [("token", "query", false, "credential"),
            UPGRADE[0], UPGRADE[1], UPGRADE[2], UPGRADE[3]],
        body: None, responses: [(101, "", "switching protocols"), (400, JSON, "bad_upgrade"), (401, JSON, ERR),
            (429, JSON, "too_many_connections"), (503, JSON, "too_many_connections")]),
    route!("post" "/graphql", "graphql", Read, "A GraphQL query (games, a game's state, latest values, plugins, models; PROTOCOL.md 3.2)",
        params: [], body: Some((JSON, r#"{"query":"...","variables":{...},"operationName":"..."}"#)),
        responses: [(200, JSON, r#"{"data":{...},"errors":[...]} (errors carry extensions.code)"#), (400, JSON, "bad_request"),
            (401, JSON, ERR)]),
    route!("get" "/graphql", "graphql", Read, "GraphQL subscriptions: WebSocket upgrade, graphql-transport-ws subprotocol (PROTOCOL.md 3.2)",
        params: [("token", "query", false, "credential (or in connection_init's payload)"),
            UPGRADE[0], UPGRADE[1], UPGRADE[2], UPGRADE[3],
            ("Sec-WebSocket-Protocol", "header", true, "graphql-transport-ws")],
        body: None, responses: [(101, "", "switching protocols"), (400, JSON, "bad_upgrade"), (401, JSON, ERR),
            (429, JSON, "too_many_connections"), (503, JSON, "too_many_connections")]),
    route!("get" "/graphql/schema.graphql", "graphql", Open, "The GraphQL schema (SDL)", params: [], body: None,
        responses: [(200, "application/graphql", "SDL")]),
    route!("get" "/v1/games/{id}/events", "log", Admin, "A game's logged events, streamed",
        params: [("id", "path", true, "game id"), ("format", "query", false, "jsonl (default) or csv")], body: None,
        responses: [(200, "application/x-ndjson", "one event per line (or text/csv)"), (400, JSON, ERR),
            (404, JSON, "no_such_game or no_store"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/games/{id}/report", "games", Read, "The post-game report: a self-contained page (charts as inline SVG, no script, printable), or its JSON (what `opensports report --pdf` renders)",
        params: [("id", "path", true, "game id"), ("format", "query", false, "html (default) or json")], body: None,
        responses: [(200, "text/html", "the report page (application/json with format=json)"), (400, JSON, "bad_request"),
            (404, JSON, "no_such_game: not in memory"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/backup", "log", Admin, "A consistent copy of the event log (redb file)", params: [], body: None,
        responses: [(200, "application/octet-stream", "the log file"), (404, JSON, "no_store"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/models", "models", Open, "Loaded model versions, roles and live scores", params: [], body: None,
        responses: [(200, JSON, r#"{"models":[...]}"#)]),
    route!("get" "/v1/ratings", "models", Open, "Elo ratings behind win probability", params: [], body: None,
        responses: [(200, JSON, r#"{"ratings":{...}}"#)]),
    route!("post" "/v1/models/{name}/activate", "models", Admin, "Make a version the active one",
        params: [("name", "path", true, "model name")], body: Some((JSON, r#"{"version":"2"}"#)),
        responses: [(200, JSON, r#"{"name","ok"}"#), (400, JSON, ERR), (404, JSON, "no_such_model"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("post" "/v1/models/{name}/shadow", "models", Admin, "Score a version in shadow (or stop: null)",
        params: [("name", "path", true, "model name")], body: Some((JSON, r#"{"version":"2"|null}"#)),
        responses: [(200, JSON, r#"{"name","ok"}"#), (400, JSON, ERR), (404, JSON, "no_such_model"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/plugins", "plugins", Open, "Loaded plugins, versions and failure counts", params: [], body: None,
        responses: [(200, JSON, r#"{"plugins":[...]}"#)]),
    route!("post" "/v1/plugins/{name}", "plugins", Admin, "Hot-reload a plugin from a new .wasm",
        params: [("name", "path", true, "plugin name")], body: Some(("application/octet-stream", "the .wasm module")),
        responses: [(200, JSON, r#"{"name","version"}"#), (400, JSON, "bad_plugin"), (404, JSON, "no_such_plugin"),
            (401, JSON, ERR), (403, JSON, ERR)]),
    route!("post" "/v1/plugins/{name}/games/{game}/enable", "plugins", Admin,
        "Lift a plugin's quarantine for one game (audited)",
        params: [("name", "path", true, "plugin name"), ("game", "path", true, "game id")], body: None,
        responses: [(200, JSON, r#"{"name","game","was_quarantined"}"#), (404, JSON, "no_such_plugin"),
            (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/keys", "access", Admin, "API keys (never the secrets)", params: [], body: None,
        responses: [(200, JSON, r#"{"keys":[...]}"#), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("post" "/v1/keys", "access", Admin, "Create an API key (shown once)", params: [],
        body: Some((JSON, r#"{"name","role","scopes"}"#)),
        responses: [(201, JSON, "the key record and the key"), (400, JSON, ERR), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("delete" "/v1/keys/{id}", "access", Admin, "Revoke a key (its sessions end within a second)",
        params: [("id", "path", true, "key id")], body: None,
        responses: [(200, JSON, "the revoked key record"), (404, JSON, "no_such_key"), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/console", "console", Open, "The operator console (HTML; sign-in with an admin key and TOTP)", params: [], body: None,
        responses: [(200, "text/html", "the console page"), (404, JSON, "console.enabled = false")]),
    route!("post" "/console/api/login", "console", Open, "Console sign-in, step one: an admin API key (then `code` or `enroll`, or a session when the key has no authenticator and none is required)",
        params: [], body: Some((JSON, r#"{"key"}"#)),
        responses: [(200, JSON, r#"{"next":"code"|"enroll"|"done"} with a cookie"#), (400, JSON, ERR), (401, JSON, ERR), (403, JSON, "forbidden (not an admin key) or csrf"), (429, JSON, "backoff")]),
    route!("post" "/console/api/code", "console", Open, "Console sign-in, step two: a TOTP code or a one-time backup code (osc_pending cookie)",
        params: [], body: Some((JSON, r#"{"code"}"#)),
        responses: [(200, JSON, r#"{"next":"done"} with the session cookie"#), (400, JSON, ERR), (401, JSON, ERR), (403, JSON, "csrf"), (429, JSON, "backoff: five wrong codes in a row")]),
    route!("post" "/console/api/enroll", "console", Open, "A new TOTP secret for the signed-in (or signing-in) key: otpauth URI and QR modules",
        params: [], body: Some((JSON, "{}")),
        responses: [(200, JSON, r#"{"secret","uri","qr":[[bool]]}"#), (401, JSON, ERR), (403, JSON, "csrf")]),
    route!("post" "/console/api/enroll/confirm", "console", Open, "Confirms the enrolment with the app's first code: ten backup codes, shown once",
        params: [], body: Some((JSON, r#"{"code"}"#)),
        responses: [(200, JSON, r#"{"next":"done","backup_codes":[...]}"#), (400, JSON, ERR), (401, JSON, ERR), (403, JSON, "csrf"), (429, JSON, "backoff")]),
    route!("get" "/console/api/session", "console", Open, "The console session: key, CSRF token, seconds left, whether the key has an authenticator",
        params: [], body: None,
        responses: [(200, JSON, r#"{"key","csrf","expires_in","enrolled","require_totp"}"#), (401, JSON, ERR)]),
    route!("post" "/console/api/logout", "console", Open, "Ends the console session (X-CSRF-Token)",
        params: [], body: Some((JSON, "{}")),
        responses: [(200, JSON, r#"{"next":"signed_out"}"#), (401, JSON, ERR), (403, JSON, "csrf")]),
    route!("get" "/v1/audit", "access", Admin, "The audit log, oldest first",
        params: [("after", "query", false, "entry id to start after"), ("limit", "query", false, "at most (default 100, max 1000)"),
                 ("actor", "query", false, "only this actor's entries (a key id)"), ("action_prefix", "query", false, "only actions starting with this")],
        body: None, responses: [(200, JSON, r#"{"entries":[...]}"#), (400, JSON, ERR), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("get" "/v1/triggers", "access", Admin, "Trigger rules, their version, and which are armed (PROTOCOL.md 3.3)",
        params: [], body: None,
        responses: [(200, JSON, r#"{"version","rules":[...]}"#), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("put" "/v1/triggers/{rule}", "access", Admin, "Create or replace the trigger rule of this name and sport: validated, a new rule set version, kept across restarts; audited",
        params: [("rule", "path", true, "rule name")],
        body: Some((JSON, r#"{"sport","value","when","hysteresis","cooldown_ms","text"} (PROTOCOL.md 3.3)"#)),
        responses: [(200, JSON, r#"{"rule","version","before","after"}"#), (400, JSON, "bad_request"),
            (401, JSON, ERR), (403, JSON, ERR), (503, JSON, "store_error")]),
    route!("delete" "/v1/triggers/{rule}", "access", Admin, "Delete the trigger rule of this name and sport (none: the every-sport one); audited",
        params: [("rule", "path", true, "rule name"), ("sport", "query", false, "basketball, football, soccer or f1")],
        body: None,
        responses: [(200, JSON, r#"{"rule","version","before","after":null}"#), (400, JSON, "bad_request"), (404, JSON, "not_found"),
            (401, JSON, ERR), (403, JSON, ERR), (503, JSON, "store_error")]),
    route!("post" "/v1/triggers/{rule}/{action}", "access", Admin, "Arm, disarm, suppress the next firing of, or fire by hand a trigger rule; audited",
        params: [("rule", "path", true, "rule name"), ("action", "path", true, "arm, disarm, suppress or fire")],
        body: Some((JSON, r#"{"game":"ID","text":"..."} (fire: game required; suppress: game optional)"#)),
        responses: [(200, JSON, "what changed"), (400, JSON, "bad_request"), (404, JSON, "not_found, no_such_game"),
            (401, JSON, ERR), (403, JSON, ERR), (503, JSON, "the topic limit")]),
    route!("post" "/v1/devices", "push", Read, "Register a device for push notifications of games the credential may read (PROTOCOL.md 3.4)",
        params: [], body: Some((JSON, r#"{"provider":"fcm|apns|webpush|webhook","token"|"subscription"|"url","locale","time_zone","quiet_hours":{"start","end"},"games":[...],"teams":[...],"kinds":[...]} (the schema shows the webhook form; PROTOCOL.md 3.4 the others)"#)),
        responses: [(201, JSON, "the device"), (400, JSON, "bad_request"), (401, JSON, ERR), (403, JSON, ERR),
            (409, JSON, "too_many_devices"), (503, JSON, "store_error")]),
    route!("get" "/v1/devices", "push", Read, "The caller's devices (an admin: every device)",
        params: [], body: None, responses: [(200, JSON, r#"{"devices":[...]}"#), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("delete" "/v1/devices/{id}", "push", Read, "Remove one of the caller's devices (an admin: any; audited)",
        params: [("id", "path", true, "device id")], body: None,
        responses: [(200, JSON, "the removed device"), (404, JSON, "not_found"), (401, JSON, ERR), (403, JSON, ERR),
            (503, JSON, "store_error")]),
    route!("get" "/v1/push/outbox", "push", Admin, "The push outbox: queued (due, retrying or held), sent, dead-lettered and superseded pushes, at most 1000",
        params: [("state", "query", false, "queued, sent, dead or superseded")], body: None,
        responses: [(200, JSON, r#"{"entries":[...]}"#), (400, JSON, "bad_request"), (401, JSON, ERR), (403, JSON, ERR),
            (503, JSON, "store_error")]),
    route!("get" "/v1/push/webpush", "push", Read, "The VAPID public key browsers subscribe with (applicationServerKey), when Web Push is on",
        params: [], body: None,
        responses: [(200, JSON, r#"{"public_key":"base64url"}"#), (404, JSON, "not_found (Web Push is off)"), (401, JSON, ERR),
            (403, JSON, ERR)]),
    route!("get" "/v1/delays", "access", Admin, "Delay lines: each topic at each delay, what it holds and released, its lateness",
        params: [], body: None,
        responses: [(200, JSON, r#"{"lines":[...],"overrides":[...],"max_delay_ms"}"#), (401, JSON, ERR), (403, JSON, ERR)]),
    route!("post" "/v1/delays/{ms}", "access", Admin, "Run the lines of a delay at another one (null: its own); audited",
        params: [("ms", "path", true, "the delay subscribers asked for, ms")], body: Some((JSON, r#"{"effective_ms":N|null}"#)),
        responses: [(200, JSON, r#"{"delay_ms","effective_ms","lines"}"#), (400, JSON, "bad_delay, bad_request"),
            (401, JSON, ERR), (403, JSON, ERR)]),
];

/// The headers of a WebSocket upgrade (RFC 6455), required where a route upgrades.
const UPGRADE: [(&str, &str, bool, &str); 4] = [
    ("Connection", "header", true, "Upgrade"),
    ("Upgrade", "header", true, "websocket"),
    ("Sec-WebSocket-Version", "header", true, "13"),
    ("Sec-WebSocket-Key", "header", true, "16 random bytes, base64"),
];

/// Game ids, plugin and model names, key ids: `[A-Za-z0-9_.-]`, 1..=64 bytes.
const NAME: &str = "^[A-Za-z0-9_.-]{1,64}$";
/// A concrete topic (§2.3); the server takes any printable ASCII levels, this is a subset.
const TOPIC: &str = "^[A-Za-z0-9_.-]{1,32}(/[A-Za-z0-9_.-]{1,32}){0,3}$";
/// Comma-separated concrete topics (each is also a pattern matching itself).
const TOPICS: &str = "^[A-Za-z0-9_.-]{1,32}(/[A-Za-z0-9_.-]{1,32}){0,3}(,[A-Za-z0-9_.-]{1,32}(/[A-Za-z0-9_.-]{1,32}){0,3}){0,7}$";

/// The values a parameter takes: what the server accepts, or a subset of it (so any value
/// the document allows is accepted), by parameter name.
fn param_schema(name: &str) -> serde_json::Value {
    use serde_json::json;
    match name {
        "id" | "game" | "name" => json!({"type": "string", "pattern": NAME}),
        // A rule's name (a plugin's trigger is `plugin:name`: not in this subset).
        "rule" => json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
        "action" => json!({"type": "string", "enum": ["arm", "disarm", "suppress", "fire"]}),
        "topic" => json!({"type": "string", "pattern": TOPIC}),
        "topics" => json!({"type": "string", "pattern": TOPICS}),
        "file" => json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}\\.(json|xml|csv)$"}),
        "wait" => json!({"type": "integer", "minimum": 0, "maximum": 4_294_967_295u64}),
        // fanout.max_delay_ms's default; a server configured higher takes more.
        "delay" => json!({"type": "integer", "minimum": 0, "maximum": 120_000}),
        "ms" => json!({"type": "integer", "minimum": 1, "maximum": 120_000}),
        "mode" => json!({"type": "string", "enum": ["all", "latest"]}),
        "sport" => json!({"type": "string", "enum": ["basketball", "football", "soccer", "f1"]}),
        "state" => json!({"type": "string", "enum": ["queued", "sent", "dead"]}),
        "format" => json!({"type": "string", "enum": ["jsonl", "csv"]}),
        // Clamped to 1..=1000.
        "limit" => json!({"type": "integer", "minimum": 0}),
        "after" => json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
        // A resume point is `topic=seq` pairs naming topics the patterns match: an id the
        // server sent (PROTOCOL.md 3.1).
        "since" | "Last-Event-ID" => json!({"type": "string", "maxLength": 32768}),
        "Connection" => json!({"type": "string", "enum": ["Upgrade"]}),
        "Upgrade" => json!({"type": "string", "enum": ["websocket"]}),
        "Sec-WebSocket-Version" => json!({"type": "string", "enum": ["13"]}),
        "Sec-WebSocket-Key" => json!({"type": "string", "pattern": "^[A-Za-z0-9+/]{22}==$"}),
        "Sec-WebSocket-Protocol" => json!({"type": "string", "enum": ["graphql-transport-ws"]}),
        _ => json!({"type": "string"}),
    }
}

/// The request body a route takes, as a JSON Schema (`None`: any bytes of its content type).
fn body_schema(method: &str, path: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    let name = json!({"type": "string", "minLength": 1, "maxLength": 64});
    let key = |role: &str, scopes: serde_json::Value| {
        json!({"type": "object", "required": ["name", "role", "scopes"], "additionalProperties": false,
               "properties": {"name": name, "role": {"type": "string", "enum": [role]}, "scopes": scopes}})
    };
    Some(match (method, path) {
        // Admin keys take no scopes; publishers' are game-id patterns, subscribers' topic
        // patterns (§2.3: printable ASCII levels, `+` a whole level, `#` the last).
        ("post", "/v1/keys") => json!({"oneOf": [
            {"type": "object", "required": ["name", "role"], "additionalProperties": false,
             "properties": {"name": name, "role": {"type": "string", "enum": ["admin"]},
                            "scopes": {"type": "array", "maxItems": 0, "items": {"type": "string"}}}},
            key("publisher", json!({"type": "array", "minItems": 1, "maxItems": 64,
                "items": {"type": "string", "pattern": "^(shared:)?[A-Za-z0-9_.*-]{1,64}$"}})),
            key("subscriber", json!({"type": "array", "minItems": 1, "maxItems": 64,
                "items": {"type": "string", "maxLength": 256,
                          "pattern": r#"^(?:(?:[!-"$-*,-.0-~]+|\+)/)*(?:[!-"$-*,-.0-~]+|\+|#)$"#}})),
        ]}),
        ("post", "/v1/models/{name}/activate") => json!({"type": "object", "required": ["version"],
            "properties": {"version": {"type": "string"}}}),
        ("post", "/v1/models/{name}/shadow") => json!({"type": "object", "required": ["version"],
            "properties": {"version": {"type": ["string", "null"]}}}),
        ("post", "/v1/devices") => json!({"type": "object", "required": ["provider", "url", "games"],
            "additionalProperties": false,
            "properties": {
                "provider": {"type": "string", "enum": ["webhook"]},
                "url": {"type": "string", "pattern": "^https?://[a-z0-9]{1,32}(:[0-9]{2,4})?/[a-z0-9]{0,32}$"},
                "locale": {"type": ["string", "null"], "enum": ["en", "es", null]},
                "time_zone": {"type": ["string", "null"], "enum": ["UTC", "Europe/Madrid", "America/New_York", null]},
                "quiet_hours": {"type": ["object", "null"], "required": ["start", "end"], "additionalProperties": false,
                    "properties": {"start": {"type": "string", "enum": ["22:00", "23:30"]},
                                   "end": {"type": "string", "enum": ["06:00", "07:15"]}}},
                "games": {"type": "array", "minItems": 1, "maxItems": 32, "items": {"type": "string", "pattern": NAME}},
                "teams": {"type": "array", "maxItems": 8, "items": {"type": "string", "pattern": "^[A-Z]{2,3}$"}},
                "kinds": {"type": "array", "maxItems": 32, "items": {"type": "string", "pattern": "^[A-Za-z0-9_:-]{1,64}$"}}}}),
        // A subset of the rule language (PROTOCOL.md 3.3) every member of which is a valid rule.
        ("put", "/v1/triggers/{rule}") => json!({"type": "object", "required": ["value", "when"],
            "additionalProperties": false,
            "properties": {
                "sport": {"type": ["string", "null"], "enum": ["basketball", "football", "soccer", "f1", null]},
                "value": {"type": "string", "pattern": "^(state|winprob):/[a-z]{1,16}$"},
                "when": {"type": "string", "enum": ["sign", "increases", "changes"]},
                "hysteresis": {"type": "number", "minimum": 0},
                "cooldown_ms": {"type": "integer", "minimum": 0, "maximum": 86_400_000},
                "text": {"type": "string", "maxLength": 256}}}),
        ("post", "/v1/triggers/{rule}/{action}") => json!({"type": "object", "additionalProperties": false,
            "properties": {"game": {"type": ["string", "null"], "pattern": NAME},
                           "text": {"type": ["string", "null"], "maxLength": 256}}}),
        ("post", "/v1/delays/{ms}") => json!({"type": "object",
            "additionalProperties": false,
            "properties": {"effective_ms": {"type": ["integer", "null"], "minimum": 0, "maximum": 120_000}}}),
        ("post", "/graphql") => json!({"type": "object", "required": ["query"],
            "properties": {"query": {"type": "string", "minLength": 1}, "operationName": {"type": ["string", "null"]},
                           "variables": {"type": ["object", "null"]}}}),
        _ => return None,
    })
}

/// Routes whose body may be left out (arm and disarm take none).
fn optional_body(method: &str, path: &str) -> bool {
    (method, path) == ("post", "/v1/triggers/{rule}/{action}")
}

fn schema(v: serde_json::Value) -> Option<utoipa::openapi::schema::Schema> {
    serde_json::from_value(v).ok()
}

fn method(m: &str) -> HttpMethod {
    match m {
        "post" => HttpMethod::Post,
        "delete" => HttpMethod::Delete,
        "put" => HttpMethod::Put,
        _ => HttpMethod::Get,
    }
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for r in ROUTES {
        let mut op = OperationBuilder::new().tag(r.tag).summary(Some(r.summary)).operation_id(Some(format!(
            "{}{}",
            r.method,
            r.path.replace(['/', '{', '}', '.'], "_")
        )));
        for (name, place, required, description) in r.params {
            let place = match *place {
                "path" => ParameterIn::Path,
                "header" => ParameterIn::Header,
                _ => ParameterIn::Query,
            };
            let required = if *required { Required::True } else { Required::False };
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(place)
                    .required(required)
                    .description(Some(*description))
                    .schema(schema(param_schema(name))),
            );
        }
        if let Some((content_type, description)) = r.body {
            let content = ContentBuilder::new().schema(body_schema(r.method, r.path).and_then(schema));
            let body = RequestBodyBuilder::new()
                .description(Some(description))
                .required(Some(if optional_body(r.method, r.path) {
                    Required::False
                } else {
                    Required::True
                }))
                .content(content_type, content.build());
            op = op.request_body(Some(body.build()));
        }
        for (status, content_type, description) in r.responses {
            let mut resp = ResponseBuilder::new().description(*description);
            for content_type in content_type.split('|').filter(|c| !c.is_empty()) {
                resp = resp.content(content_type, ContentBuilder::new().build());
            }
            op = op.response(status.to_string(), resp.build());
        }
        match r.access {
            Access::Open => {}
            // Anonymous for the server's public topics, else a key or JWT.
            Access::Read => {
                op =
                    op.security(SecurityRequirement::default())
                        .security(SecurityRequirement::new::<_, _, &str>("bearer", []))
            }
            Access::Admin => op = op.security(SecurityRequirement::new::<_, _, &str>("bearer", [])),
        }
        paths = paths.path(r.path, PathItem::new(method(r.method), op.build()));
    }
    let bearer = SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer));
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("OpenSports Edge HTTP API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Reads of game data need read access to the topic behind them (anonymous for the \
                     server's public topics); admin operations need an admin API key. Errors are \
                     {\"error\":{\"code\",\"message\"}} (PROTOCOL.md 3). Wire messages: /v1/schema.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(ComponentsBuilder::new().security_scheme("bearer", bearer).build()))
        .build()
}

/// The document as JSON, built once.
pub fn json() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| document().to_pretty_json().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_and_body_schema_is_a_valid_schema() {
        for r in ROUTES {
            for (name, ..) in r.params {
                assert!(schema(param_schema(name)).is_some(), "{} {}: {name}", r.method, r.path);
            }
            if let Some(b) = body_schema(r.method, r.path) {
                assert!(schema(b).is_some(), "{} {} body", r.method, r.path);
            }
        }
    }
}
