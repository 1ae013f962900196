//! GraphQL (PROTOCOL.md §3.2): queries at `POST /graphql`, subscriptions over the
//! `graphql-transport-ws` protocol at `GET /graphql` (`ws.rs`), the schema at
//! `GET /graphql/schema.graphql`.
//!
//! Built on async-graphql: derive-based, so the wire types are the proto crate's own
//! (`Publication`, `Mode` derive `SimpleObject`/`Enum` beside `JsonSchema`), and it executes,
//! validates and projects selections as the spec says; it is the most used GraphQL server
//! library in Rust. Its transport integrations are not used: a subscription runs on the session
//! core like a WebSocket `sub` (same scopes, limits, lag and resume rules), each one a group of
//! the connection's session.

pub mod ws;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_graphql::{Context, EmptyMutation, Enum, ErrorExtensions, InputObject, Object, SimpleObject};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use opensports_proto::error_code::{http as http_code, reason};
use opensports_proto::topic;
use opensports_proto::ws::{Mode, Publication, ServerMsg};
use parking_lot::Mutex;

use super::admin::Caller;
use super::{AppState, json, json_error};
use crate::auth::Principal;
use crate::fanout::outbox::{Item, Outbox};
use crate::fanout::session::{Framer, Group, Session};

pub type Schema = async_graphql::Schema<Query, EmptyMutation, Subscription>;

/// Deepest selection and largest query cost accepted (hostile queries are refused before they run).
const MAX_DEPTH: usize = 8;
const MAX_COMPLEXITY: usize = 500;

/// The schema, built once.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(Query, EmptyMutation, Subscription)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish()
    })
}

/// Who asks, and the server they ask: every request's data.
#[derive(Clone)]
struct Asker {
    app: AppState,
    principal: Principal,
}

impl Asker {
    /// `Err(forbidden)` unless the caller may read `t`.
    fn read(&self, t: &str) -> async_graphql::Result<()> {
        if self.principal.may_read(t, &self.app.auth.cfg.public_topics) {
            return Ok(());
        }
        Err(error(reason::FORBIDDEN, format!("{} may not read {t:?}", self.principal.id)))
    }
}

/// A GraphQL error whose `extensions.code` is one of PROTOCOL.md's error codes.
fn error(code: &'static str, message: String) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

fn parse_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

#[derive(Debug)]
pub struct Query;

#[Object]
impl Query {
    /// The games on this server (the `games` topic's value).
    async fn games(&self, ctx: &Context<'_>) -> async_graphql::Result<serde_json::Value> {
        let asker = ctx.data::<Asker>()?;
        asker.read(topic::GAMES)?;
        Ok(parse_json(&asker.app.pipeline.games().list_json()))
    }

    /// A game's state (its `game/{id}/state` topic's value), or null.
    async fn game(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<Option<serde_json::Value>> {
        let asker = ctx.data::<Asker>()?;
        let t = topic::game_state(&id);
        asker.read(&t)?;
        Ok(asker.app.fanout.latest(&t).map(|p| parse_json(p.data())))
    }

    /// The latest publication on a concrete topic, or null when nothing was published.
    async fn latest(&self, ctx: &Context<'_>, topic: String) -> async_graphql::Result<Option<Publication>> {
        let asker = ctx.data::<Asker>()?;
        if let Err(e) = topic::validate_topic(&topic) {
            return Err(error(reason::BAD_PATTERN, format!("{topic:?}: {e}")));
        }
        asker.read(&topic)?;
        Ok(asker.app.fanout.latest(&topic).map(|p| wire(&p)))
    }

    /// Loaded plugins and their health (as `GET /v1/plugins`).
    async fn plugins(&self, ctx: &Context<'_>) -> async_graphql::Result<serde_json::Value> {
        Ok(serde_json::to_value(ctx.data::<Asker>()?.app.plugins.report())?)
    }

    /// Loaded models, versions and roles (as `GET /v1/models`).
    async fn models(&self, ctx: &Context<'_>) -> async_graphql::Result<serde_json::Value> {
        Ok(serde_json::to_value(ctx.data::<Asker>()?.app.models.report())?)
    }
}

/// A resume point: the last seq the client has of a concrete topic (a WebSocket `since` key).
#[derive(Debug, InputObject)]
pub struct Resume {
    pub topic: String,
    pub seq: u64,
}

/// What a subscription delivers (PROTOCOL.md §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Kind {
    /// A live publication, or one from history after a resume point.
    Msg,
    /// The latest value at the start, or after a `LAGGED`.
    Snapshot,
    /// The resume point is older than the history kept: a `SNAPSHOT` follows.
    Reset,
    /// The subscriber fell behind: `dropped` messages were dropped, snapshots follow.
    Lagged,
}

#[derive(Debug, SimpleObject)]
pub struct Delivery {
    pub kind: Kind,
    /// `MSG` and `SNAPSHOT`.
    pub publication: Option<Publication>,
    /// `RESET`: the topic.
    pub topic: Option<String>,
    /// `LAGGED`: messages dropped.
    pub dropped: Option<u64>,
}

/// A subscription's place in its connection's session (set by the `graphql-transport-ws` adapter).
#[derive(Clone)]
struct Stream_ {
    session: Arc<Mutex<Session>>,
    group: Group,
}

#[derive(Debug)]
pub struct Subscription;

#[async_graphql::Subscription]
impl Subscription {
    /// Publications on every topic matching `patterns`, under the rules of a WebSocket `sub`
    /// (PROTOCOL.md §2.1): read scopes, `since` resume points, the lag rule; with `delayMs`,
    /// each message at its source time plus that many milliseconds (§2.7, delay lines).
    async fn topics(
        &self,
        ctx: &Context<'_>,
        patterns: Vec<String>,
        #[graphql(default)] mode: Mode,
        #[graphql(default)] since: Vec<Resume>,
        #[graphql(default)] delay_ms: u64,
    ) -> async_graphql::Result<impl Stream<Item = Delivery> + use<>> {
        let Ok(s) = ctx.data::<Stream_>() else {
            let msg = "subscriptions run over the graphql-transport-ws WebSocket at GET /graphql";
            return Err(error(reason::BAD_OP, msg.into()));
        };
        let since: BTreeMap<String, u64> = since.into_iter().map(|r| (r.topic, r.seq)).collect();
        let (outbox, fanout) = {
            let mut session = s.session.lock();
            let outbox = session.open_group(s.group).map_err(|(c, m)| error(c, m))?;
            if let Err((c, m)) =
                session.subscribe_in(s.group, patterns, mode, &since, delay_ms, Instant::now())
            {
                session.close_group(s.group, Instant::now());
                return Err(error(c, m));
            }
            (outbox, session.fanout().clone())
        };
        let state = GroupStream {
            framer: Framer::new(fanout),
            stream: s.clone(),
            outbox,
            items: Vec::new(),
            ready: VecDeque::new(),
        };
        Ok(futures_util::stream::unfold(state, |mut g| async move {
            let d = g.next().await?;
            Some((d, g))
        }))
    }
}

/// One subscription's deliveries, drained from its group's outbox through the lag rule. Its
/// subscriptions end with it (the client's `complete`, or the connection's end).
struct GroupStream {
    stream: Stream_,
    outbox: Arc<Outbox>,
    framer: Framer,
    items: Vec<Item>,
    ready: VecDeque<Delivery>,
}

impl GroupStream {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(d) = self.ready.pop_front() {
                return Some(d);
            }
            self.items.clear();
            let open = self.outbox.drain(&mut self.items);
            if self.items.is_empty() {
                if !open {
                    return None;
                }
                self.outbox.wait().await;
                continue;
            }
            let (resolved, _) = self.framer.messages(&mut self.items, &self.outbox);
            for item in resolved {
                deliveries(item, &mut self.ready);
            }
        }
    }
}

impl Drop for GroupStream {
    fn drop(&mut self) {
        self.stream.session.lock().close_group(self.stream.group, Instant::now());
    }
}

/// A drained item as deliveries (a `subscribed` notice has none: GraphQL has no such message).
fn deliveries(item: &Item, out: &mut VecDeque<Delivery>) {
    let publication = |kind, p: &crate::fanout::Publication| Delivery {
        kind,
        publication: Some(wire(p)),
        topic: None,
        dropped: None,
    };
    match item {
        Item::Msg(p) => out.push_back(publication(Kind::Msg, p)),
        Item::Run(r) => out.extend(r.pubs.iter().map(|p| publication(Kind::Msg, p))),
        Item::Snapshot(p) => out.push_back(publication(Kind::Snapshot, p)),
        Item::Frame(f) => match serde_json::from_str::<ServerMsg>(f.as_str()) {
            Ok(ServerMsg::Reset { topic }) => out.push_back(Delivery {
                kind: Kind::Reset,
                publication: None,
                topic: Some(topic),
                dropped: None,
            }),
            Ok(ServerMsg::Lagged { dropped }) => out.push_back(Delivery {
                kind: Kind::Lagged,
                publication: None,
                topic: None,
                dropped: Some(dropped),
            }),
            _ => {}
        },
        Item::Lagged => {}
    }
}

/// A fan-out publication as the wire type.
fn wire(p: &crate::fanout::Publication) -> Publication {
    Publication { topic: p.topic.to_string(), seq: p.seq, ts: p.ts, data: parse_json(p.data()) }
}

/// `POST /graphql`: `{"query":..,"variables":..,"operationName":..}`.
pub async fn query(State(app): State<AppState>, caller: Caller, body: axum::body::Bytes) -> Response {
    let request = match serde_json::from_slice::<async_graphql::Request>(&body) {
        Ok(r) if !r.query.is_empty() => r,
        Ok(_) => return json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, "the body has no query"),
        Err(e) => {
            let msg = format!(r#"body must be {{"query":"...","variables":{{...}}}}: {e}"#);
            return json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, &msg);
        }
    };
    let response = schema().execute(request.data(Asker { app, principal: caller.principal })).await;
    json(StatusCode::OK, serde_json::to_string(&response).unwrap_or_default())
}

/// `GET /graphql/schema.graphql`: the schema in SDL.
pub async fn sdl() -> Response {
    static SDL: OnceLock<String> = OnceLock::new();
    let text = SDL.get_or_init(|| schema().sdl());
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/graphql; charset=utf-8")], text.as_str())
        .into_response()
}
