//! One event stream's socket side: read frames, ask [`admission`](super::admission) what each
//! one is, and carry the verdict out (log, queue with backpressure, ack, reject, stop).
//!
//! Framing errors end the stream (its position is lost) with a QUIC STOP_SENDING code and an
//! `error` on the control stream. A body that frames fine but is not an acceptable event is
//! rejected alone (`reject` on the control stream) and the stream goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opensports_proto::control::Control;
use opensports_proto::error_code::reason;
use tokio::io::BufReader;

use super::IngestCtx;
use super::admission::{Close, Reject, StreamState, Verdict};
use super::control::ControlOut;
use super::frame::read_frame;
use crate::auth::Principal;
use crate::metrics as m;
use crate::pipeline::Ingested;
use crate::store::{AckSink, Queued, StoreError};
use crate::telemetry::{self, Telemetry, Traced, Value};
use opensports_proto::codec::Codec;

/// Read buffer per stream: many small frames come out of one QUIC read.
const READ_BUFFER: usize = 64 * 1024;
/// How long a stream waits before retrying a full queue (shard or log writer).
const BACKPRESSURE_PAUSE: Duration = Duration::from_micros(500);

pub async fn run(recv: quinn::RecvStream, ctx: &IngestCtx, control: &Arc<ControlOut>, who: Principal) {
    let mut r = BufReader::with_capacity(READ_BUFFER, recv);
    let mut buf = Vec::new();
    // Events/s of this publisher identity, shared with its other streams and connections.
    let bucket = ctx.auth.bucket(&who);
    let owner = who.id.clone();
    let mut state = StreamState::new(who);
    // Clustered, each event is replicated after its commit, and the ack follows as the
    // cluster's mode says.
    let replicated = ctx.replication.as_ref().map(|r| r.stream(control.clone(), owner.clone()));
    let ack: Arc<dyn AckSink> = match &replicated {
        Some(r) => r.clone(),
        None => control.clone(),
    };
    let events = metrics::counter!(m::INGEST_EVENTS_TOTAL);
    let age = metrics::histogram!(m::EVENT_AGE_SECONDS, "stage" => m::AGE_STAGES[0]);
    let frame_timeout = Duration::from_secs(ctx.cfg.frame_timeout_secs);
    loop {
        let read = read_frame(&mut r, ctx.cfg.max_frame_bytes, &mut buf, frame_timeout).await;
        let read_at = Instant::now();
        // A publisher's trace context (JSON events only), when traces are on.
        let parent = match (&ctx.telemetry, &read) {
            (Some(_), Ok(Some(Codec::Json))) => telemetry::traceparent_of(&buf),
            _ => None,
        };
        let verdict = match &read {
            Ok(None) => return,
            Ok(Some(codec)) => state.on_frame(ctx.rules(), Ok((*codec, &buf))),
            Err(e) => state.on_frame(ctx.rules(), Err(e)),
        };
        let (event, shard, missing) = match verdict {
            Verdict::Accept { event, shard, missing, gap, fill } => {
                age.record(m::age_secs(event.ts));
                if fill {
                    metrics::counter!(m::INGEST_GAP_FILLS_TOTAL).increment(1);
                }
                if let Some((from, to)) = gap {
                    metrics::counter!(m::INGEST_GAPS_TOTAL).increment(1);
                    control.send(Control::Gap { game: event.game.clone(), from, to });
                }
                (event, shard, missing)
            }
            Verdict::Duplicate { game, seq, conflict } => {
                // A retry of an accepted event: nothing to process, but the publisher needs
                // its ack, which must not overtake the commit of the original. Another event
                // under the same seq is acked the same way (the first stands) and reported to
                // the game's feed-quality monitor.
                metrics::counter!(m::INGEST_DUPLICATES_TOTAL).increment(1);
                if conflict {
                    metrics::counter!(m::INGEST_CONFLICTS_TOTAL).increment(1);
                    ctx.pipeline.duplicate_conflict(&game, seq);
                }
                if !ack_retry(ctx, &game, seq, &ack).await {
                    return;
                }
                continue;
            }
            Verdict::Reject(r) => {
                if let Some(tel) = &ctx.telemetry {
                    rejected_span(tel, parent, read_at, (r.game.as_deref(), r.seq), r.code, &r.message);
                }
                control.reject(r);
                continue;
            }
            Verdict::Close(close) => {
                if let (Some(tel), Some(c)) = (&ctx.telemetry, &close) {
                    rejected_span(tel, parent, read_at, (state.game(), None), c.reason, &c.message);
                }
                return stream_error(close, state.game(), r.get_mut(), control);
            }
        };
        let traced = ctx.telemetry.as_ref().and_then(|t| t.event(parent, read_at));
        if let Some(t) = &traced {
            t.admitted(&event.game, event.seq);
            t.span("admission", None, (read_at, Instant::now()), None);
        }
        // Over its rate, the key's streams are read no faster than the rate allows.
        loop {
            let wait = bucket.lock().take(Instant::now());
            match wait {
                Ok(()) => break,
                Err(wait) => {
                    metrics::counter!(m::RATE_LIMITED_TOTAL, "limit" => "events_per_key").increment(1);
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let seq = event.seq;
        // With the log on, archived once, here: the log stores these bytes and plugins read them.
        let archived = match &ctx.store {
            None => None,
            Some(_) => match rkyv::to_bytes::<rkyv::rancor::Error>(&event) {
                Ok(b) => Some(Arc::new(b)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot archive an event");
                    let (game, message) = (Some(event.game), "cannot archive".into());
                    control.reject(Reject { game, seq: Some(seq), code: reason::INVALID_EVENT, message });
                    continue;
                }
            },
        };
        if let (Some(r), Some(bytes)) = (&replicated, &archived) {
            // Replication's backpressure is taken here, on this stream, never on the log.
            while r.must_wait() {
                metrics::counter!(m::INGEST_BACKPRESSURE_TOTAL).increment(1);
                tokio::time::sleep(BACKPRESSURE_PAUSE).await;
            }
            r.logging(&event.game, seq, bytes);
        }
        if !log_and_queue(ctx, event, archived, (shard, missing), Some(&owner), &ack, traced).await {
            return;
        }
        events.increment(1);
        if ctx.store.is_none()
            && let Some(game) = state.game()
        {
            control.ack(game, seq);
        }
    }
}

/// Logs an accepted event (when the log is on; `ack` hears after the commit; `owner` is
/// recorded as the game's owner if it has none) and queues it to its shard, waiting while either queue is full (backpressure: the caller stops reading, QUIC
/// flow control stops the publisher, nothing buffers without bound). False once the log or
/// the pipeline has stopped.
pub(crate) async fn log_and_queue(
    ctx: &IngestCtx,
    event: opensports_proto::Event,
    archived: Option<Arc<rkyv::util::AlignedVec>>,
    (shard, missing): (usize, u64),
    owner: Option<&Arc<str>>,
    ack: &Arc<dyn AckSink>,
    trace: Option<Arc<Traced>>,
) -> bool {
    if let (Some(store), Some(bytes)) = (&ctx.store, &archived) {
        let (seq, sport) = (event.seq, event.sport().as_str());
        let append = crate::store::Append { game: &event.game, seq, sport, bytes, owner };
        // A traced event's ack goes through its `commit` span.
        let traced_ack: Option<Arc<dyn AckSink>> = trace.as_ref().map(|t| {
            Arc::new(CommitSpan { inner: ack.clone(), traced: t.clone(), offered: Instant::now() }) as _
        });
        if !retry_full(|| store.try_append(append, traced_ack.as_ref().unwrap_or(ack))).await {
            return false;
        }
    }
    let mut item = Ingested { event, archived, received: Instant::now(), missing, trace };
    loop {
        match ctx.pipeline.try_send(shard, item) {
            Ok(Ok(())) => return true,
            Ok(Err(full)) => {
                metrics::counter!(m::INGEST_BACKPRESSURE_TOTAL).increment(1);
                item = full.0;
                tokio::time::sleep(BACKPRESSURE_PAUSE).await;
            }
            Err(_stopped) => return false,
        }
    }
}

/// A traced event's ack sink: the commit ends its `commit` span, then the ack goes on.
#[derive(Debug)]
struct CommitSpan {
    inner: Arc<dyn AckSink>,
    traced: Arc<Traced>,
    offered: Instant,
}

impl AckSink for CommitSpan {
    fn ack(&self, game: &str, seq: u64) {
        self.traced.span("commit", None, (self.offered, Instant::now()), None);
        self.inner.ack(game, seq);
    }
}

/// The error span of a refused frame: rejected events are always traced.
fn rejected_span(
    tel: &Telemetry,
    parent: Option<telemetry::Parent>,
    read_at: Instant,
    (game, seq): (Option<&str>, Option<u64>),
    code: &str,
    message: &str,
) {
    let mut attrs = vec![("error.code", Value::Str(code.into()))];
    if let Some(g) = game {
        attrs.push(("game", Value::Str(g.into())));
    }
    if let Some(s) = seq {
        attrs.push(("seq", Value::Int(s as i64)));
    }
    let trace = tel.error("event", parent, (read_at, Instant::now()), attrs, message.into());
    tracing::debug!(trace_id = %telemetry::hex(&trace), code, error = message, "event refused");
}

/// Acks a retry of `(game, seq)`, an event already accepted, once its original is in the log
/// (at once without a log). False once the log has stopped.
pub(super) async fn ack_retry(ctx: &IngestCtx, game: &str, seq: u64, ack: &Arc<dyn AckSink>) -> bool {
    match &ctx.store {
        Some(store) => retry_full(|| store.try_ack_after_commit(game, seq, ack)).await,
        None => {
            ack.ack(game, seq);
            true
        }
    }
}

/// Offers a message to the log writer until it takes it, pausing while its queue is full
/// (backpressure). False once the writer has stopped (shutdown): the publisher resends what
/// was not acked.
async fn retry_full(mut offer: impl FnMut() -> Result<Queued, StoreError>) -> bool {
    loop {
        match offer() {
            Ok(Queued::Yes) => return true,
            Ok(Queued::Full) => {
                metrics::counter!(m::INGEST_BACKPRESSURE_TOTAL).increment(1);
                tokio::time::sleep(BACKPRESSURE_PAUSE).await;
            }
            Err(_) => return false,
        }
    }
}

fn stream_error(
    close: Option<Close>,
    game: Option<&str>,
    recv: &mut quinn::RecvStream,
    control: &ControlOut,
) {
    let Some(Close { code, reason, message }) = close else { return };
    metrics::counter!(m::INGEST_STREAM_ERRORS_TOTAL, "code" => reason).increment(1);
    metrics::counter!(m::INGEST_REJECTED_TOTAL, "reason" => reason).increment(1);
    tracing::debug!(error = %message, "closing event stream");
    control.send(Control::Error { code: reason.into(), message, game: game.map(str::to_string) });
    let _ = recv.stop(code.into());
}
