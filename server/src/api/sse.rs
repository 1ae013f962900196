//! For clients that speak neither WebSocket protocol of ours nor QUIC (broadcast graphics
//! engines, `curl`, a browser's `EventSource`):
//!
//! - `GET /v1/topics/{topic}/latest[?delay=ms]`: a topic's latest value and seq (or the value
//!   as it was `delay` ms ago, by source time), with an `ETag` (the seq) and `304 Not
//!   Modified` for a matching `If-None-Match`.
//! - `GET /v1/sse?topics=p1,p2[&mode=all|latest][&delay=ms]`: Server-Sent Events (delayed:
//!   each message at its source time + `delay`, through the shared delay lines). Each event's `data` is
//!   one message exactly as a WebSocket subscriber gets it (`msg`, `snapshot`, `reset`,
//!   `lagged`, `subscribed`, `error`). The last publication of each chunk carries an `id`: the
//!   stream's resume point, `topic=seq` for the topics it has sent, space-separated, at most
//!   [`MAX_RESUME`] bytes and `fanout.max_since_keys` topics (the least recently sent drop out
//!   first; on resume such a topic gets its kept history again: duplicates, never a gap). A
//!   client that reconnects with it as `Last-Event-ID` (an `EventSource` does so by itself) or
//!   `?since=` gets what it missed, as a WebSocket `sub` with `since` would (PROTOCOL.md §2.1, §3.1).
//!   Events without an `id` leave the client's last event id as it was (the SSE standard).
//!
//! An SSE stream is a [`Session`] like a WebSocket one (same access rules, queue, lag rule,
//! lifetime rules from the core's clock); it shares the streaming connection limits.
//!
//! The framing is written here rather than with axum's `response::sse`: a drained outbox goes
//! out as one body chunk (one write, the `id` on its last publication only), where axum's
//! `Sse` makes a body frame per event and runs a keep-alive timer of its own beside the core's.

use opensports_proto::error_code::http as http_code;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opensports_proto::error_code::reason;
use opensports_proto::topic::validate_topic;
use opensports_proto::ws::Mode;

use super::admin::Caller;
use super::stream::{Lifetime, Slots, Wake};
use super::{AppState, json_error};
use crate::fanout::outbox::{Item, Outbox};
use crate::fanout::session::{Access, Framer, Session, Transport};
use crate::metrics as m;

/// Longest resume point (`Last-Event-ID` or `?since=`) read, and longest `id` sent, in bytes.
pub const MAX_RESUME: usize = 32 * 1024;

#[derive(Debug, serde::Deserialize)]
pub struct LatestQuery {
    /// The value as it was this many ms ago (by source time), at most `fanout.max_delay_ms`.
    delay: Option<u64>,
}

/// `GET /v1/topics/{topic}/latest` (the topic's slashes percent-encoded or not).
pub async fn latest(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    q: super::QueryResult<LatestQuery>,
    headers: HeaderMap,
) -> Response {
    let delay = match super::query(q) {
        Ok(q) => q.delay.unwrap_or(0),
        Err(refused) => return *refused,
    };
    if let Some(refused) = delay_refused(&s, delay) {
        return refused;
    }
    let Some(topic) = path.strip_suffix("/latest") else {
        return json_error(StatusCode::NOT_FOUND, http_code::NOT_FOUND, "expected /v1/topics/{topic}/latest");
    };
    if let Err(e) = validate_topic(topic) {
        return json_error(StatusCode::BAD_REQUEST, reason::BAD_PATTERN, &format!("{topic:?}: {e}"));
    }
    if let Some(denied) = caller.deny_read(&s, topic) {
        return denied;
    }
    let p = match delay {
        0 => s.fanout.latest(topic),
        d => s.fanout.latest_delayed(topic, d),
    };
    let Some(p) = p else {
        let older =
            if delay > 0 { format!(" at least {delay} ms ago (of what is kept)") } else { String::new() };
        return json_error(
            StatusCode::NOT_FOUND,
            http_code::NO_SUCH_TOPIC,
            &format!("nothing published on {topic:?}{older}"),
        );
    };
    let etag = format!("\"{}\"", p.seq);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let (status, body) =
        if matches { (StatusCode::NOT_MODIFIED, String::new()) } else { (StatusCode::OK, p.value_json()) };
    let headers = [
        (header::CONTENT_TYPE, "application/json".to_string()),
        (header::ETAG, etag),
        (header::CACHE_CONTROL, "no-cache".to_string()),
    ];
    (status, headers, body).into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct SseQuery {
    /// Comma-separated patterns.
    topics: Option<String>,
    #[serde(default)]
    mode: Mode,
    /// The resume point, for clients that cannot set `Last-Event-ID`.
    since: Option<String>,
    /// Delay in ms: each message at its source time plus this.
    #[serde(default)]
    delay: u64,
}

/// A `delay` parameter over `fanout.max_delay_ms`: 400 `bad_delay`.
pub fn delay_refused(app: &AppState, delay: u64) -> Option<Response> {
    let why = app.fanout.config().check_delay(delay).err()?;
    Some(json_error(StatusCode::BAD_REQUEST, reason::BAD_DELAY, &why))
}

/// `GET /v1/sse`.
pub async fn sse(
    State(app): State<AppState>,
    caller: Caller,
    q: Result<Query<SseQuery>, axum::extract::rejection::QueryRejection>,
    reserved: Option<axum::Extension<super::serve::Reserved>>,
    headers: HeaderMap,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, reason::BAD_OP, &e.body_text()),
    };
    let topics: Vec<String> =
        q.topics.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()).map(str::to_string).collect();
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).or(q.since.as_deref());
    let since = match resume.map(parse_resume).transpose() {
        Ok(since) => since.unwrap_or_default(),
        Err(why) => return json_error(StatusCode::BAD_REQUEST, reason::BAD_SINCE, why),
    };
    // Access first (a refusal is a 401/403), for the patterns that parse (the others get 400).
    let parses = |t: &&String| opensports_proto::topic::Pattern::parse(t).is_ok();
    if let Some(denied) = topics.iter().filter(parses).find_map(|t| caller.deny_read(&app, t)) {
        return denied;
    }
    let slots = match super::stream::slots(&app, &caller, reserved.is_some()) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    let outbox = Outbox::bounded(app.fanout.config().queue_len, app.fanout.config().queue_bytes);
    let access = Access {
        principal: caller.principal.clone(),
        public: app.auth.cfg.public_topics.clone().into(),
        transport: Transport::Sse,
    };
    let now = Instant::now();
    let mut session = Session::new(app.fanout.clone(), outbox.clone(), access, now);
    if let Err((code, message)) = session.subscribe_in(0, topics, q.mode, &since, q.delay, now) {
        metrics::counter!(m::SESSION_ERRORS_TOTAL, "code" => code, "transport" => "sse").increment(1);
        return json_error(StatusCode::BAD_REQUEST, code, &message);
    }
    let stream = SseStream {
        framer: Framer::new(app.fanout.clone()),
        session,
        outbox,
        items: Vec::new(),
        cursor: Cursor::new(since, app.fanout.config().max_since_keys),
        closing: false,
        lifetime: Lifetime::new(&app),
        _slots: slots,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), s))
    });
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    (StatusCode::OK, headers, Body::from_stream(body)).into_response()
}

/// A resume point: `topic=seq` pairs separated by spaces (topics have no spaces).
pub fn parse_resume(text: &str) -> Result<BTreeMap<String, u64>, &'static str> {
    if text.len() > MAX_RESUME {
        return Err("the resume point (Last-Event-ID or since) is over 32 KiB");
    }
    text.split_ascii_whitespace()
        .map(|pair| {
            let (topic, seq) = pair.rsplit_once('=').ok_or("a resume point is `topic=seq` pairs")?;
            let seq = seq.parse().map_err(|_| "a resume point's seq is a number")?;
            Ok((topic.to_string(), seq))
        })
        .collect()
}

/// One SSE stream's state, owned by its response body; dropping it (the client went away)
/// ends the session.
struct SseStream {
    session: Session,
    outbox: Arc<Outbox>,
    framer: Framer,
    items: Vec<Item>,
    /// The resume point.
    cursor: Cursor,
    /// The last chunk before the end was returned.
    closing: bool,
    lifetime: Lifetime,
    _slots: Slots,
}

impl SseStream {
    /// The next body chunk: every event the outbox holds, or a keep-alive; `None` ends it.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.closing {
            return None;
        }
        loop {
            self.items.clear();
            let open = self.outbox.drain(&mut self.items);
            if !open {
                self.closing = true;
            } else if self.items.is_empty() {
                tokio::select! {
                    _ = self.outbox.wait() => continue,
                    event = self.lifetime.wait(&self.session) => {
                        match self.lifetime.apply(&mut self.session, event) {
                            Wake::Keepalive => return Some(Bytes::from_static(b": keep-alive\n\n")),
                            // Ended: what the core queued (an `error` saying why) goes out, then
                            // the stream ends; at its lifetime's end the client resumes with its
                            // last id and loses nothing.
                            Wake::Ended | Wake::Nothing => continue,
                            Wake::Shutdown => return None,
                        }
                    }
                }
            }
            let mut out = String::new();
            let (resolved, oldest) = self.framer.messages(&mut self.items, &self.outbox);
            let mut sent = 0u64;
            // Where the chunk's last publication's event ends: its `id` goes there.
            let mut id_at = None;
            let cursor = &mut self.cursor;
            for item in resolved {
                match item {
                    Item::Msg(p) => {
                        sent += 1;
                        id_at = Some(event(&mut out, cursor, &p.topic, p.seq, &p.frame));
                    }
                    Item::Run(r) => {
                        sent += r.pubs.len() as u64;
                        for p in r.pubs.iter() {
                            id_at = Some(event(&mut out, cursor, &p.topic, p.seq, &p.frame));
                        }
                    }
                    Item::Snapshot(p) => {
                        sent += 1;
                        id_at = Some(event(&mut out, cursor, &p.topic, p.seq, &p.snapshot_frame()));
                    }
                    Item::Frame(f) => {
                        let _ = write!(out, "data: {}\n\n", f.as_str());
                    }
                    Item::Lagged => {}
                }
            }
            if let Some(at) = id_at {
                out.insert_str(at, &self.cursor.id_line());
            }
            metrics::counter!(m::SESSION_MESSAGES_SENT_TOTAL, "transport" => "sse").increment(sent);
            if let Some(at) = oldest {
                metrics::histogram!(m::FANOUT_DELIVERY_SECONDS).record(at.elapsed().as_secs_f64());
            }
            if out.is_empty() {
                if self.closing {
                    return None;
                }
                continue;
            }
            self.session.sent(Instant::now());
            // Handed to the HTTP body: as close to a flush as this stream sees.
            self.framer.flushed();
            return Some(Bytes::from(out));
        }
    }
}

/// Appends one publication event (`data:` the message) and moves the cursor; returns where
/// an `id:` line would go in this event (before its closing blank line).
fn event(out: &mut String, cursor: &mut Cursor, topic: &Arc<str>, seq: u64, frame: &str) -> usize {
    cursor.sent(topic, seq);
    let _ = writeln!(out, "data: {frame}");
    let at = out.len();
    out.push('\n');
    at
}

/// An SSE stream's resume point: topic → (last seq sent, when it was sent), rendered as the
/// `id` within [`MAX_RESUME`] bytes and `max_topics` topics by dropping the least recently sent.
#[derive(Debug)]
struct Cursor {
    seqs: std::collections::HashMap<Arc<str>, (u64, u64)>,
    /// Bumped per publication sent.
    tick: u64,
    /// Bytes of the rendered id, kept up to date.
    bytes: usize,
    max_topics: usize,
}

impl Cursor {
    fn new(since: BTreeMap<String, u64>, max_topics: usize) -> Cursor {
        let mut c = Cursor { seqs: Default::default(), tick: 0, bytes: 0, max_topics };
        for (t, s) in since {
            c.sent(&Arc::from(t), s);
        }
        c
    }

    fn entry_bytes(topic: &str, seq: u64) -> usize {
        topic.len() + 2 + seq.checked_ilog10().map_or(1, |d| d as usize + 1)
    }

    fn sent(&mut self, topic: &Arc<str>, seq: u64) {
        self.tick += 1;
        match self.seqs.get_mut(topic) {
            Some(e) => {
                self.bytes = self.bytes + Self::entry_bytes(topic, seq) - Self::entry_bytes(topic, e.0);
                *e = (seq, self.tick);
            }
            None => {
                self.bytes += Self::entry_bytes(topic, seq);
                self.seqs.insert(topic.clone(), (seq, self.tick));
            }
        }
        // Over a bound, the least recently sent topics leave the resume point (rare: a stream
        // over thousands of topics; each eviction scans once).
        while self.bytes > MAX_RESUME - 8 || self.seqs.len() > self.max_topics {
            let Some(oldest) = self.seqs.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone()) else {
                break;
            };
            if let Some((s, _)) = self.seqs.remove(&oldest) {
                self.bytes -= Self::entry_bytes(&oldest, s);
            }
        }
    }

    /// `id: t1=s1 t2=s2 ...\n`, topics sorted (a stable id for the same point).
    fn id_line(&self) -> String {
        let mut pairs: Vec<(&Arc<str>, u64)> = self.seqs.iter().map(|(t, (s, _))| (t, *s)).collect();
        pairs.sort_unstable();
        let mut line = String::with_capacity(self.bytes + 5);
        line.push_str("id:");
        for (t, s) in pairs {
            let _ = write!(line, " {t}={s}");
        }
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_point_stays_within_its_bounds_and_always_parses_back() {
        // 5,000 topics of 60 bytes (issue 27 finding 8 sent a 24.8 KB id for 902 topics).
        let mut c = Cursor::new(BTreeMap::new(), 4096);
        for i in 0..5_000u64 {
            c.sent(&Arc::from(format!("game/some-long-game-id-{i:06}/basketball-boxscore/player/p")), i);
        }
        let line = c.id_line();
        assert!(line.len() <= MAX_RESUME, "{} bytes", line.len());
        let id = line.trim_end().strip_prefix("id:").unwrap();
        let parsed = parse_resume(id).unwrap();
        assert_eq!(parsed.len(), c.seqs.len());
        // The most recently sent topics are the ones kept.
        assert!(parsed.contains_key("game/some-long-game-id-004999/basketball-boxscore/player/p"));
        assert!(!parsed.contains_key("game/some-long-game-id-000000/basketball-boxscore/player/p"));
        // Bounded by topics too.
        let mut c = Cursor::new(BTreeMap::new(), 10);
        for i in 0..100u64 {
            c.sent(&Arc::from(format!("t/{i}")), 1);
        }
        assert_eq!(c.seqs.len(), 10);
        assert_eq!(c.bytes + 4, c.id_line().len(), "the byte count is exact");
    }
}
