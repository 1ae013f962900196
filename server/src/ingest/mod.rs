//! QUIC ingest: publishers connect, say hello on the control stream, send each game's events
//! on its own unidirectional stream, and tracking samples as datagrams.
//!
//! # Layout
//! - [`serve`]: the accept loop; one task per connection, one per event stream.
//! - [`conn`]: hello, the control stream (acks, rejects), datagrams.
//! - [`stream`]: reading, validating and queueing one game's events, with backpressure.
//! - [`frame`]: length-prefixed frame reading.
//! - [`tls`]: certificates (self-signed on first start) and the quinn server config.

pub mod conn;
pub mod frame;
pub mod stream;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use opensports_proto::error_code::quic;
use tokio::sync::watch;

use crate::config::IngestConfig;
use crate::fanout::Fanout;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// What every connection task shares.
#[derive(Debug)]
pub struct IngestCtx {
    pub cfg: IngestConfig,
    pub pipeline: Arc<Pipeline>,
    pub fanout: Arc<Fanout>,
    /// The durable log; `None` when `store.enabled = false` (acks then mean "queued").
    pub store: Option<Arc<Store>>,
    connections: AtomicUsize,
    /// Tracking entities seen per game, to bound `game/{id}/tracking/{entity}` topics.
    tracking_entities: DashMap<String, usize>,
}

impl IngestCtx {
    pub fn new(
        cfg: IngestConfig,
        pipeline: Arc<Pipeline>,
        fanout: Arc<Fanout>,
        store: Option<Arc<Store>>,
    ) -> Arc<IngestCtx> {
        Arc::new(IngestCtx {
            cfg,
            pipeline,
            fanout,
            store,
            connections: AtomicUsize::new(0),
            tracking_entities: DashMap::new(),
        })
    }
}

/// Accepts connections until `shutdown` flips, then closes the endpoint with
/// `SHUTTING_DOWN` and waits (briefly) for connections to wind down.
pub async fn serve(endpoint: quinn::Endpoint, ctx: Arc<IngestCtx>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if ctx.connections.load(Ordering::Relaxed) >= ctx.cfg.max_connections {
                    metrics::counter!(crate::metrics::INGEST_REJECTED_TOTAL, "reason" => "too_many_connections").increment(1);
                    incoming.refuse();
                    continue;
                }
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    ctx.connections.fetch_add(1, Ordering::Relaxed);
                    conn::handle(incoming, &ctx).await;
                    ctx.connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    endpoint.close(quic::SHUTTING_DOWN.into(), b"server shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}
