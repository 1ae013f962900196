//! One publisher connection: hello, then event streams, datagrams and the control stream's
//! acks and rejects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opensports_proto::control::Control;
use opensports_proto::error_code::quic;
use opensports_proto::topic;
use opensports_proto::tracking::TrackingSample;
use tokio::io::BufReader;
use tokio::sync::OwnedSemaphorePermit;

use super::IngestCtx;
use super::admission::{self, HelloRefused, Reject};
use super::control::{ControlOut, control_writer, write_control};
use super::frame::read_frame;
use crate::metrics as m;
use crate::telemetry::{self, Value};

/// Control messages are small; a hello larger than this is a protocol violation.
const MAX_CONTROL_FRAME: u32 = 16 * 1024;
/// One connection: handshake and hello under a handshake slot (`handshake`), then a connection
/// slot, taken only once the publisher has said who it is: handshakes that never finish
/// cannot lock real publishers out.
pub async fn handle(incoming: quinn::Incoming, ctx: &Arc<IngestCtx>, handshake: OwnedSemaphorePermit) {
    let timeout = Duration::from_secs(ctx.cfg.hello_timeout_secs);
    let conn = match tokio::time::timeout(timeout, incoming).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return tracing::debug!(error = %e, "QUIC handshake failed"),
        Err(_) => {
            metrics::counter!(m::INGEST_AUTH_FAILURES_TOTAL, "reason" => "handshake_timeout").increment(1);
            return;
        }
    };
    let remote = conn.remote_address();
    let connected = Instant::now();
    let traced = ctx
        .telemetry
        .as_ref()
        .and_then(|t| t.trace(("quic.connection", telemetry::Kind::Server), None, connected));
    let Some((send, publisher, principal)) = hello(&conn, ctx, connected).await else { return };
    if let Some(t) = &traced {
        t.describe(vec![
            ("net.peer.address", Value::Str(remote.to_string())),
            ("publisher", Value::Str(publisher.clone())),
            ("key", Value::Str(principal.id.to_string())),
        ]);
        t.span("hello", None, (connected, Instant::now()), None);
    }
    drop(handshake);
    let Ok(_slot) = ctx.connections.clone().try_acquire_owned() else {
        metrics::counter!(m::INGEST_REJECTED_TOTAL, "reason" => "too_many_connections").increment(1);
        conn.close(quic::TOO_MANY_CONNECTIONS.into(), b"too many publisher connections");
        return;
    };
    tracing::info!(%remote, publisher, key = %principal.id, "publisher connected");
    metrics::counter!(m::INGEST_CONNECTIONS_TOTAL).increment(1);
    metrics::gauge!(m::INGEST_CONNECTIONS).increment(1.0);

    let control = Arc::new(ControlOut::default());
    let health = ctx.store.as_ref().map(|s| s.watch_health());
    let writer = tokio::spawn(control_writer(send, control.clone(), health));
    let mut revocations = ctx.auth.revocations();
    // Datagrams count against the key's events/s like events do (shared with its streams).
    let bucket = ctx.auth.bucket(&principal);
    loop {
        tokio::select! {
            uni = conn.accept_uni() => match uni {
                Ok(recv) => {
                    let (task, control, who) = (ctx.clone(), control.clone(), principal.clone());
                    ctx.tasks.spawn(async move { super::stream::run(recv, &task, &control, who).await });
                }
                Err(_) => break,
            },
            dg = conn.read_datagram() => match dg {
                Ok(bytes) => {
                    if bucket.lock().take(std::time::Instant::now()).is_err() {
                        // Lossy by design (latest value wins): over the rate, a sample is
                        // dropped rather than waited for.
                        metrics::counter!(m::RATE_LIMITED_TOTAL, "limit" => "datagrams_per_key").increment(1);
                        continue;
                    }
                    datagram(&bytes, ctx, &control, &principal)
                }
                Err(_) => break,
            },
            // A revoked key's connection is closed at once (its streams end with it).
            changed = revocations.changed(), if principal.key_id.is_some() => {
                if changed.is_err() || ctx.auth.revoked(&principal) {
                    metrics::counter!(m::INGEST_AUTH_FAILURES_TOTAL, "reason" => "key_revoked").increment(1);
                    conn.close(quic::KEY_REVOKED.into(), b"key revoked");
                    break;
                }
            }
        }
    }
    writer.abort();
    if let Some(t) = &traced {
        t.end(Instant::now());
    }
    metrics::gauge!(m::INGEST_CONNECTIONS).decrement(1.0);
    tracing::info!(%remote, publisher, reason = %conn.close_reason().map(|r| r.to_string()).unwrap_or_default(), "publisher gone");
}

/// Waits for the control stream and its hello. Closes the connection on any problem.
async fn hello(
    conn: &quinn::Connection,
    ctx: &IngestCtx,
    since: Instant,
) -> Option<(quinn::SendStream, String, crate::auth::Principal)> {
    let timeout = Duration::from_secs(ctx.cfg.hello_timeout_secs);
    let (mut send, recv) = match tokio::time::timeout(timeout, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return None,
        Err(_) => {
            return refuse(conn, &mut None, admission::violation("no control stream in time"), (ctx, since))
                .await;
        }
    };
    let mut recv = BufReader::new(recv);
    let mut buf = Vec::new();
    let frame = match tokio::time::timeout(
        timeout,
        read_frame(&mut recv, MAX_CONTROL_FRAME, &mut buf, timeout),
    )
    .await
    {
        Ok(Ok(Some(codec))) => Some((codec, &buf[..])),
        Ok(_) => None,
        Err(_) => {
            return refuse(conn, &mut None, admission::violation("no hello in time"), (ctx, since)).await;
        }
    };
    let ip = Some(conn.remote_address().ip());
    // The token is checked before any backoff: wrong tokens from the same address cannot keep
    // a valid one out. Failures count per (address, credential) (`auth::limits::Backoff`).
    let checked = admission::hello(frame, |token| {
        let r = ctx.auth.publisher(token);
        match &r {
            Ok(_) => ctx.auth.succeeded(ip, token),
            Err(why) => {
                if ctx.auth.failed(ip, token, why).is_some() {
                    metrics::counter!(m::INGEST_AUTH_FAILURES_TOTAL, "reason" => "backoff").increment(1);
                }
            }
        }
        r
    });
    let (publisher, principal) = match checked {
        Ok(p) => p,
        Err(refused) => return refuse(conn, &mut Some(send), refused, (ctx, since)).await,
    };
    // In a cluster, a publisher (maybe failing over from a node that died) starts only once
    // this node has applied what the cluster already holds, so its resent events follow them.
    if let Some(replication) = &ctx.replication
        && !replication.settle().await
    {
        tracing::warn!("welcoming a publisher before catching up with the cluster (timed out)");
    }
    let welcome = Control::Welcome {
        server: concat!("opensports/", env!("CARGO_PKG_VERSION")).into(),
        max_frame: ctx.cfg.max_frame_bytes,
        max_streams: ctx.cfg.max_streams_per_connection,
    };
    write_control(&mut send, &[welcome]).await.ok()?;
    // Keep the receive side drained so the publisher may half-close it; nothing else is
    // defined on it yet.
    tokio::spawn(async move {
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut recv, &mut sink).await;
    });
    Some((send, publisher, principal))
}

/// Carries out a refused hello: counts it, sends the `error` when there is one (and gives it a
/// moment to arrive before the close overtakes it), closes the connection.
async fn refuse<T>(
    conn: &quinn::Connection,
    send: &mut Option<quinn::SendStream>,
    refused: HelloRefused,
    (ctx, since): (&IngestCtx, Instant),
) -> Option<T> {
    metrics::counter!(m::INGEST_AUTH_FAILURES_TOTAL, "reason" => refused.metric_reason()).increment(1);
    if let Some(tel) = &ctx.telemetry {
        let attrs = vec![
            ("net.peer.address", Value::Str(conn.remote_address().to_string())),
            ("error.code", Value::Str(refused.metric_reason().into())),
        ];
        tel.error("hello", None, (since, Instant::now()), attrs, refused.close().message.clone());
    }
    if let Some(error) = refused.peer_error() {
        tracing::warn!(remote = %conn.remote_address(), reason = refused.metric_reason(), "publisher refused");
        if let Some(send) = send {
            let _ = write_control(send, &[error]).await;
            let _ = send.finish();
            let _ = tokio::time::timeout(Duration::from_millis(200), send.stopped()).await;
        }
    }
    let close = refused.close();
    conn.close(close.code.into(), close.message.as_bytes());
    None
}

/// A tracking datagram: admitted by the admission core ([`admission::datagram`],
/// [`admission::track`]), then published on its entity's topic. Never logged, never acked.
fn datagram(bytes: &[u8], ctx: &IngestCtx, control: &ControlOut, who: &crate::auth::Principal) {
    let refuse = |r: Reject| control.reject(r);
    let sample = match admission::datagram(bytes) {
        Ok(s) => s,
        Err(r) => return refuse(r),
    };
    let name = topic::game_tracking(&sample.game, &sample.entity);
    let existing = ctx.fanout.topic_if_exists(&name);
    let latest = existing.as_ref().map(|t| t.latest().map(|p| p.ts));
    let topic = match admission::track(ctx.rules(), who, &sample, latest) {
        Err(r) => return refuse(r),
        Ok(admission::Track::Stale) => return,
        Ok(admission::Track::Publish { .. }) => match existing.or_else(|| ctx.fanout.topic(&name)) {
            Some(t) => t,
            None => return,
        },
    };
    let prev = topic.latest();
    if let Ok(data) = serde_json::to_vec(&sample) {
        ctx.fanout.publish(&topic, sample.ts, &data);
        metrics::counter!(m::INGEST_DATAGRAMS_TOTAL).increment(1);
    }
    check_speed(ctx, prev.as_deref(), &sample);
}

/// A person tracked faster than anyone runs goes to the game's feed-quality monitor
/// (`impossible`), at most once a second per game.
fn check_speed(ctx: &IngestCtx, prev: Option<&crate::fanout::Publication>, sample: &TrackingSample) {
    let Some(prev) = prev.and_then(|p| serde_json::from_str::<TrackingSample>(p.data()).ok()) else { return };
    let Some((sport, _)) = ctx.pipeline.directory().get(&sample.game) else { return };
    let Some(detail) = admission::superhuman(sport, &prev, sample) else { return };
    let now = std::time::Instant::now();
    let mut last =
        ctx.games.tracking_reported.entry(sample.game.clone()).or_insert(now - Duration::from_secs(2));
    if now.duration_since(*last) >= Duration::from_secs(1) {
        *last = now;
        drop(last);
        ctx.pipeline.tracking_issue(&sample.game, detail);
    }
}
