//! One event stream: a single game's events, in order.
//!
//! Framing errors end the stream (its position is lost) with a QUIC STOP_SENDING code and an
//! `error` on the control stream. A body that frames fine but is not an acceptable event is
//! rejected alone (`reject` on the control stream) and the stream goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opensports_proto::codec::{self, Codec};
use opensports_proto::control::Control;
use opensports_proto::error_code::reason;
use serde::Deserialize;
use tokio::io::BufReader;

use super::IngestCtx;
use super::conn::ControlOut;
use super::frame::{ReadError, read_frame};
use crate::metrics as m;
use crate::pipeline::Ingested;
use crate::store::seq::Seq;
use crate::store::writer::WriteMsg;
use crate::store::{Full, Store};

/// Read buffer per stream: many small frames come out of one QUIC read.
const READ_BUFFER: usize = 64 * 1024;
/// How long a stream waits before retrying a full shard queue.
const BACKPRESSURE_PAUSE: Duration = Duration::from_micros(500);

pub async fn run(recv: quinn::RecvStream, ctx: &IngestCtx, control: &Arc<ControlOut>) {
    let mut r = BufReader::with_capacity(READ_BUFFER, recv);
    let mut buf = Vec::new();
    let mut game: Option<String> = None;
    let mut last_seq = 0u64;
    let events = metrics::counter!(m::INGEST_EVENTS_TOTAL);
    loop {
        let codec = match read_frame(&mut r, ctx.cfg.max_frame_bytes, &mut buf).await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => return stream_error(&e, r.get_mut(), control),
        };
        let event = match codec::decode_event(codec, &buf) {
            Ok(ev) => ev,
            Err(e) => {
                let (g, s) = ids(codec, &buf);
                reject(control, g, s, e.code(), e.to_string());
                continue;
            }
        };
        if let Some(g) = &game
            && *g != event.game
        {
            let msg = format!("this stream carries game {g}; open one stream per game");
            reject(control, Some(event.game), Some(event.seq), reason::GAME_MISMATCH, msg);
            continue;
        }
        if let Err(code) = ctx.pipeline.games().admit(&event.game, event.sport()) {
            let msg = match code {
                reason::SPORT_MISMATCH => format!("game {} is not a {} game", event.game, event.sport()),
                _ => "the server holds its maximum number of games".to_string(),
            };
            reject(control, Some(event.game), Some(event.seq), code, msg);
            continue;
        }
        let (verdict, missing) = ctx.pipeline.games().sequence(&event.game, event.seq);
        if event.seq <= last_seq && verdict != Seq::Fill {
            let msg = format!("seq {} after {last_seq} on the same stream", event.seq);
            reject(control, Some(event.game), Some(event.seq), reason::SEQ_NOT_INCREASING, msg);
            continue;
        }
        last_seq = last_seq.max(event.seq);
        let game_id = game.get_or_insert_with(|| event.game.clone());
        match verdict {
            Seq::New => {}
            Seq::Fill => metrics::counter!(m::INGEST_GAP_FILLS_TOTAL).increment(1),
            Seq::Gap { from, to } => {
                metrics::counter!(m::INGEST_GAPS_TOTAL).increment(1);
                control.send(Control::Gap { game: event.game.clone(), from, to });
            }
            Seq::Duplicate => {
                // A retry of an accepted event: nothing to process, but the publisher needs
                // its ack, which must not overtake the commit of the original.
                metrics::counter!(m::INGEST_DUPLICATES_TOTAL).increment(1);
                match &ctx.store {
                    Some(store) => {
                        let msg = WriteMsg::Ack { game: event.game, seq: event.seq, ack: control.clone() };
                        if !send_to_store(store, msg).await {
                            return;
                        }
                    }
                    None => control.ack(game_id, event.seq),
                }
                continue;
            }
        }
        let (seq, shard) = (event.seq, ctx.pipeline.shard_of(&event.game));
        // With the log on, archived once, here: the log stores these bytes and plugins read them.
        let archived = match &ctx.store {
            None => None,
            Some(store) => {
                let bytes = match rkyv::to_bytes::<rkyv::rancor::Error>(&event) {
                    Ok(b) => Arc::new(b),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot archive an event");
                        reject(
                            control,
                            Some(event.game),
                            Some(seq),
                            reason::INVALID_EVENT,
                            "cannot archive".into(),
                        );
                        continue;
                    }
                };
                let msg = WriteMsg::Append {
                    game: event.game.clone(),
                    seq,
                    sport: event.sport().as_str(),
                    bytes: bytes.clone(),
                    ack: control.clone(),
                };
                if !send_to_store(store, msg).await {
                    return;
                }
                Some(bytes)
            }
        };
        let mut item = Ingested { event, archived, received: Instant::now(), missing };
        // Backpressure: while the shard's queue is full, stop reading this stream. QUIC flow
        // control then stops the publisher; nothing buffers without bound.
        loop {
            match ctx.pipeline.try_send(shard, item) {
                Ok(Ok(())) => break,
                Ok(Err(full)) => {
                    metrics::counter!(m::INGEST_BACKPRESSURE_TOTAL).increment(1);
                    item = full.0;
                    tokio::time::sleep(BACKPRESSURE_PAUSE).await;
                }
                Err(_stopped) => return,
            }
        }
        events.increment(1);
        if ctx.store.is_none() {
            control.ack(game_id, seq);
        }
    }
}

/// Queues a message for the log writer, waiting while its queue is full. False once the
/// writer has stopped (shutdown): the publisher resends what was not acked.
async fn send_to_store(store: &Store, mut msg: WriteMsg) -> bool {
    loop {
        match store.append(msg) {
            Ok(Ok(())) => return true,
            Ok(Err(Full(m))) => {
                metrics::counter!(m::INGEST_BACKPRESSURE_TOTAL).increment(1);
                msg = m;
                tokio::time::sleep(BACKPRESSURE_PAUSE).await;
            }
            Err(_) => return false,
        }
    }
}

fn stream_error(e: &ReadError, recv: &mut quinn::RecvStream, control: &ControlOut) {
    let Some((code, name)) = e.code() else { return };
    metrics::counter!(m::INGEST_STREAM_ERRORS_TOTAL, "code" => name).increment(1);
    metrics::counter!(m::INGEST_REJECTED_TOTAL, "reason" => name).increment(1);
    tracing::debug!(error = %e, "closing event stream");
    control.send(Control::Error { code: name.into(), message: e.to_string() });
    let _ = recv.stop(code.into());
}

fn reject(control: &ControlOut, game: Option<String>, seq: Option<u64>, code: &'static str, message: String) {
    metrics::counter!(m::INGEST_REJECTED_TOTAL, "reason" => code).increment(1);
    control.send(Control::Reject { game, seq, code: code.into(), message });
}

/// Best effort at naming the event a bad JSON body was meant to be.
fn ids(codec: Codec, body: &[u8]) -> (Option<String>, Option<u64>) {
    #[derive(Deserialize)]
    struct Ids {
        game: Option<String>,
        seq: Option<u64>,
    }
    match codec {
        Codec::Json => serde_json::from_slice::<Ids>(body).map(|i| (i.game, i.seq)).unwrap_or((None, None)),
        Codec::Rkyv => (None, None),
    }
}
