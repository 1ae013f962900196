//! OpenTelemetry traces, exported over OTLP/HTTP (`[telemetry]`, README "Tracing").
//!
//! A sampled event carries a [`Traced`] from the moment ingest reads it to the first socket
//! flush of what it published; each stage that handles it records a span (admission, commit,
//! queue, shard with state / win probability / each plugin / triggers, publish, flush) under
//! one root span `event`. Publisher connections get `quic.connection` and `hello` spans. A
//! publisher may pass a W3C `traceparent` in a JSON event: its trace continues through the
//! server, and its sampled flag decides (parent-based sampling); otherwise `sample_ratio`
//! decides per event. Errors (rejected events, plugin faults, refused hellos) always make a
//! span, sampled or not.
//!
//! Finished spans go into a bounded queue (full: dropped and counted, never waited on) read by
//! one exporter thread (`export.rs`) that batches them and POSTs OTLP protobuf or JSON
//! (`otlp.rs`). With no endpoint nothing is built, and every hook is one `Option` check.

mod export;
pub mod otlp;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::metrics as m;

/// Spans waiting for the exporter; past this they are dropped (and counted).
const QUEUE: usize = 16_384;

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP endpoint: a collector's base URL (`http://collector:4318`, to which
    /// `/v1/traces` is added) or the full traces URL. Empty (default): no traces.
    pub endpoint: String,
    /// `http/protobuf` (default) or `http/json`.
    pub protocol: Protocol,
    /// The share of events traced when the publisher sent no `traceparent`, 0.0..=1.0.
    /// Default 0.0: only errors and publisher-sampled events.
    pub sample_ratio: f64,
    /// `service.name` of the resource. Default `opensports`.
    pub service_name: String,
    /// Longest wait before queued spans are sent, ms. Default 1000.
    pub export_interval_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            endpoint: String::new(),
            protocol: Protocol::HttpProtobuf,
            sample_ratio: 0.0,
            service_name: "opensports".into(),
            export_interval_ms: 1000,
        }
    }
}

impl TelemetryConfig {
    /// Why the section cannot work, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Some("sample_ratio is a share, 0.0 to 1.0".into());
        }
        let url = self.endpoint.trim();
        if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
            return Some(format!(
                "endpoint {url:?} is not an http:// or https:// URL (OTLP over HTTP; gRPC is not supported, use the collector's port 4318)"
            ));
        }
        None
    }

    /// Where spans are POSTed.
    pub fn traces_url(&self) -> String {
        let url = self.endpoint.trim().trim_end_matches('/');
        if url.ends_with("/v1/traces") { url.to_string() } else { format!("{url}/v1/traces") }
    }
}

/// OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

/// OTLP span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Consumer = 5,
}

/// A span attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: Cow<'static, str>,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: Vec<(&'static str, Value)>,
    /// Status ERROR with this message; `None` is status unset.
    pub error: Option<String>,
}

/// A W3C trace context (`traceparent`, version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl Parent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; `None` for anything else (an all-zero id, a
    /// version this does not know, bad hex), which is then ignored as the spec says.
    pub fn parse(text: &str) -> Option<Parent> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() || flags.len() != 2 {
            return None;
        }
        let trace_id: [u8; 16] = hex_bytes(trace)?;
        let span_id: [u8; 8] = hex_bytes(span)?;
        let flags: [u8; 1] = hex_bytes(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Parent { trace_id, span_id, sampled: flags[0] & 1 == 1 })
    }
}

/// Lower-case hex of `N` bytes, exactly.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let b = text.as_bytes();
    if b.len() != 2 * N || b.iter().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex, for logs and OTLP JSON.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tracer: sampling, ids, clock and the exporter's queue.
#[derive(Debug)]
pub struct Telemetry {
    /// An event is sampled when its trace id's low 64 bits fall under this.
    threshold: u64,
    ratio: f64,
    tx: crossbeam_channel::Sender<Span>,
    /// Instant `origin` is `origin_ns` since the epoch: spans take one clock.
    origin: Instant,
    origin_ns: u64,
    seed: u64,
    counter: AtomicU64,
    dropped: metrics::Counter,
}

impl Telemetry {
    /// The tracer and its exporter thread; `None` when no endpoint is set.
    pub fn start(cfg: &TelemetryConfig) -> std::io::Result<Option<Arc<Telemetry>>> {
        if cfg.endpoint.trim().is_empty() {
            return Ok(None);
        }
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        export::spawn(cfg, rx)?;
        let ratio = cfg.sample_ratio.clamp(0.0, 1.0);
        let threshold = if ratio >= 1.0 { u64::MAX } else { (ratio * u64::MAX as f64) as u64 };
        let origin_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let mut seed = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| std::io::Error::other("no randomness for trace ids"))?;
        Ok(Some(Arc::new(Telemetry {
            threshold,
            ratio,
            tx,
            origin: Instant::now(),
            origin_ns,
            seed: u64::from_le_bytes(seed),
            counter: AtomicU64::new(0),
            dropped: metrics::counter!(m::TELEMETRY_SPANS_DROPPED_TOTAL),
        })))
    }

    /// A fresh non-zero id (SplitMix64 over a random seed and a counter).
    fn next_id(&self) -> u64 {
        let mut z = self
            .seed
            .wrapping_add(self.counter.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).max(1)
    }

    pub fn span_id(&self) -> [u8; 8] {
        self.next_id().to_be_bytes()
    }

    fn trace_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_id().to_be_bytes());
        id[8..].copy_from_slice(&self.next_id().to_be_bytes());
        id
    }

    /// Nanoseconds since the epoch at `at`.
    pub fn ns(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.origin) {
            Some(d) => self.origin_ns + d.as_nanos() as u64,
            None => self.origin_ns.saturating_sub(self.origin.duration_since(at).as_nanos() as u64),
        }
    }

    /// Queues a finished span (dropped and counted when the exporter is behind).
    pub fn record(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }

    /// Whether a new trace (no parent) is sampled.
    fn sample(&self, trace_id: &[u8; 16]) -> bool {
        if self.ratio <= 0.0 {
            return false;
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        u64::from_be_bytes(low) <= self.threshold
    }

    /// The trace of an event read at `read` (its frame's first byte), when it is sampled:
    /// the publisher's `traceparent` decides when it sent one, the ratio otherwise.
    pub fn event(self: &Arc<Self>, parent: Option<Parent>, read: Instant) -> Option<Arc<Traced>> {
        self.trace(("event", Kind::Consumer), parent, read)
    }

    /// A trace whose root span `name` starts at `start`, when sampled (as [`Telemetry::event`]).
    pub fn trace(
        self: &Arc<Self>,
        (name, kind): (&'static str, Kind),
        parent: Option<Parent>,
        start: Instant,
    ) -> Option<Arc<Traced>> {
        let (trace_id, remote, sampled) = match parent {
            Some(p) => (p.trace_id, Some(p.span_id), p.sampled),
            None => {
                if self.ratio <= 0.0 {
                    return None;
                }
                let id = self.trace_id();
                (id, None, self.sample(&id))
            }
        };
        sampled.then(|| {
            Arc::new(Traced {
                tel: self.clone(),
                trace_id,
                root: self.span_id(),
                remote,
                name,
                kind,
                read: start,
                game: std::sync::OnceLock::new(),
                flushed: AtomicBool::new(false),
            })
        })
    }

    /// An error span, kept whatever the sampling: under the publisher's trace when it sent
    /// one, in a trace of its own otherwise.
    pub fn error(
        &self,
        name: &'static str,
        parent: Option<Parent>,
        (start, end): (Instant, Instant),
        attrs: Vec<(&'static str, Value)>,
        message: String,
    ) -> [u8; 16] {
        let trace_id = parent.map_or_else(|| self.trace_id(), |p| p.trace_id);
        self.record(Span {
            trace_id,
            span_id: self.span_id(),
            parent: parent.map(|p| p.span_id),
            name: Cow::Borrowed(name),
            kind: Kind::Internal,
            start_ns: self.ns(start),
            end_ns: self.ns(end),
            attrs,
            error: Some(message),
        });
        trace_id
    }
}

/// A sampled event's trace, shared by every stage that handles the event.
#[derive(Debug)]
pub struct Traced {
    tel: Arc<Telemetry>,
    pub trace_id: [u8; 16],
    /// The `event` span's id: every stage's span is its child.
    pub root: [u8; 8],
    /// The publisher's span (from `traceparent`), the root's parent.
    remote: Option<[u8; 8]>,
    /// The root span's name and kind (`event`, `quic.connection`).
    name: &'static str,
    kind: Kind,
    /// When the root span started (ingest read the event's frame).
    read: Instant,
    /// The root's attributes (`game` and `seq` once admitted; a connection's peer).
    game: std::sync::OnceLock<Vec<(&'static str, Value)>>,
    flushed: AtomicBool,
}

impl Traced {
    /// Names the event (after admission): its spans carry the game and seq.
    pub fn admitted(&self, game: &str, seq: u64) {
        self.describe(vec![("game", Value::Str(game.into())), ("seq", Value::Int(seq as i64))]);
    }

    /// Sets the root span's attributes (once).
    pub fn describe(&self, attrs: Vec<(&'static str, Value)>) {
        let _ = self.game.set(attrs);
    }

    /// Records a child span of `parent` (the root when `None`).
    pub fn span(
        &self,
        name: impl Into<Cow<'static, str>>,
        parent: Option<[u8; 8]>,
        (start, end): (Instant, Instant),
        error: Option<String>,
    ) -> [u8; 8] {
        let id = self.tel.span_id();
        self.child(id, name, parent, (start, end), error);
        id
    }

    /// Like [`Traced::span`] with the span's id chosen before (a parent of spans recorded
    /// first).
    pub fn child(
        &self,
        id: [u8; 8],
        name: impl Into<Cow<'static, str>>,
        parent: Option<[u8; 8]>,
        (start, end): (Instant, Instant),
        error: Option<String>,
    ) {
        self.tel.record(Span {
            trace_id: self.trace_id,
            span_id: id,
            parent: Some(parent.unwrap_or(self.root)),
            name: name.into(),
            kind: Kind::Internal,
            start_ns: self.tel.ns(start),
            end_ns: self.tel.ns(end),
            attrs: Vec::new(),
            error,
        });
    }

    pub fn new_id(&self) -> [u8; 8] {
        self.tel.span_id()
    }

    /// Its publications went out at `at`: the root `event` span ends here.
    pub fn published(&self, at: Instant) {
        self.end(at);
    }

    /// Records the root span, ending at `at`.
    pub fn end(&self, at: Instant) {
        self.tel.record(Span {
            trace_id: self.trace_id,
            span_id: self.root,
            parent: self.remote,
            name: Cow::Borrowed(self.name),
            kind: self.kind,
            start_ns: self.tel.ns(self.read),
            end_ns: self.tel.ns(at),
            attrs: self.game.get().cloned().unwrap_or_default(),
            error: None,
        });
    }

    /// A subscriber's writer flushed one of its publications, published at `at`: the first
    /// time, the `flush` span (published → flushed) is recorded.
    pub fn flushed(&self, at: Instant) {
        if self.flushed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.span("flush", None, (at, Instant::now()), None);
    }

    /// A stage clock for the shard's stages, under a `shard` span started `start`.
    pub fn stages(self: &Arc<Self>, start: Instant) -> Stages {
        Stages { traced: self.clone(), shard: self.new_id(), start, last: start }
    }
}

/// The shard's per-stage spans of one event: each [`Stages::end`] records the time since the
/// last one as a child of the `shard` span, recorded by [`Stages::finish`].
#[derive(Debug)]
pub struct Stages {
    traced: Arc<Traced>,
    shard: [u8; 8],
    start: Instant,
    last: Instant,
}

impl Stages {
    pub fn end(&mut self, name: impl Into<Cow<'static, str>>, error: Option<String>) {
        let now = Instant::now();
        self.traced.span(name, Some(self.shard), (self.last, now), error);
        self.last = now;
    }

    /// Restarts the stage clock (after work that is not a stage of its own).
    pub fn skip(&mut self) {
        self.last = Instant::now();
    }

    pub fn finish(self) {
        self.traced.child(self.shard, "shard", None, (self.start, Instant::now()), None);
    }
}

/// The `traceparent` member of a JSON event frame, if it has one (scanned for first: frames
/// without it cost one `memmem`).
pub fn traceparent_of(json: &[u8]) -> Option<Parent> {
    memchr::memmem::find(json, b"\"traceparent\"")?;
    #[derive(Deserialize)]
    struct Carrier<'a> {
        #[serde(borrow)]
        traceparent: Option<Cow<'a, str>>,
    }
    let c: Carrier<'_> = serde_json::from_slice(json).ok()?;
    Parent::parse(&c.traceparent?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parses_as_w3c_says() {
        let p = Parent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        assert!(!Parent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().sampled);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "",
        ] {
            assert_eq!(Parent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn traceparent_is_found_in_a_json_event() {
        let ev = br#"{"game":"g","seq":1,"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","ts":1}"#;
        assert!(traceparent_of(ev).is_some());
        assert!(traceparent_of(br#"{"game":"g","seq":1}"#).is_none());
        assert!(traceparent_of(br#"{"game":"g","traceparent":7}"#).is_none());
    }

    #[test]
    fn ratio_samples_about_that_share() {
        let cfg = TelemetryConfig {
            endpoint: "http://127.0.0.1:9".into(),
            sample_ratio: 0.25,
            ..TelemetryConfig::default()
        };
        let tel = Telemetry::start(&cfg).unwrap().unwrap();
        let n = 20_000;
        let sampled = (0..n).filter(|_| tel.event(None, Instant::now()).is_some()).count();
        let share = sampled as f64 / n as f64;
        assert!((0.22..0.28).contains(&share), "{share}");
        let off = TelemetryConfig { sample_ratio: 0.0, ..cfg };
        let tel = Telemetry::start(&off).unwrap().unwrap();
        assert!((0..1000).all(|_| tel.event(None, Instant::now()).is_none()));
        let parent = Parent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let t = tel.event(parent, Instant::now()).unwrap();
        assert_eq!(hex(&t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn config_problems_are_named() {
        let c = TelemetryConfig { endpoint: "grpc://x:4317".into(), ..TelemetryConfig::default() };
        assert!(c.problem().unwrap().contains("gRPC"));
        let c = TelemetryConfig { sample_ratio: 1.5, ..TelemetryConfig::default() };
        assert!(c.problem().is_some());
        let c = TelemetryConfig { endpoint: "http://c:4318/".into(), ..TelemetryConfig::default() };
        assert_eq!(c.traces_url(), "http://c:4318/v1/traces");
        let c = TelemetryConfig { endpoint: "http://c:4318/v1/traces".into(), ..TelemetryConfig::default() };
        assert_eq!(c.traces_url(), "http://c:4318/v1/traces");
    }
}
