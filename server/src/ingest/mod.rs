//! QUIC ingest: publishers connect, say hello on the control stream, send each game's events
//! on its own unidirectional stream, and tracking samples as datagrams.
//!
//! # Layout
//! - [`serve`]: the accept loop; one task per connection, one per event stream.
//! - [`admission`]: the rules (hello, each event frame, datagrams) as sans-IO functions and a
//!   per-stream state machine, unit-tested without sockets.
//! - [`seq`]: per-game sequencing (new, gap, fill, duplicate).
//! - [`conn`]: the connection's socket side: hello, datagrams.
//! - [`control`]: the control stream's outgoing side (acks, rejects), shared by the connection
//!   and its streams.
//! - [`stream`]: one game's event stream's socket side: read, judge, log, queue, ack.
//! - [`frame`]: length-prefixed frame reading.
//! - [`tls`]: certificates (self-signed on first start) and the quinn server config.

pub mod admission;
pub mod conn;
pub mod control;
pub mod frame;
pub mod replica;
pub mod stream;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use opensports_proto::error_code::quic;
use tokio::sync::{Semaphore, watch};

use crate::auth::Auth;
use crate::config::IngestConfig;
use crate::fanout::Fanout;
use crate::pipeline::Pipeline;
use crate::seqs::Sequencer;
use crate::store::{AckSink, Store};
use crate::tasks::Tracker;

/// What every connection task shares.
#[derive(Debug)]
pub struct IngestCtx {
    pub cfg: IngestConfig,
    pub pipeline: Arc<Pipeline>,
    pub fanout: Arc<Fanout>,
    /// The durable log; `None` when `store.enabled = false` (acks then mean "queued").
    pub store: Option<Arc<Store>>,
    /// What ingest remembers per game (sequencing, tracking entities).
    pub games: Arc<GameMemory>,
    /// One permit per publisher connection, taken after its hello, returned when it ends.
    connections: Arc<Semaphore>,
    /// One permit per handshake in progress (QUIC handshake and hello), taken before its task
    /// starts. While more than half are taken, unvalidated addresses are sent a Retry first.
    handshakes: Arc<Semaphore>,
    /// Connection and stream tasks, which shutdown waits for.
    tasks: Tracker,
    /// Credentials, scopes, per-key limits, revocation.
    pub auth: Arc<Auth>,
    /// Replication to the other nodes (`[cluster]`), handed in at start.
    pub replication: Option<Arc<dyn Replication>>,
    /// Traces (`[telemetry]`); `None` when off.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

/// What ingest needs from replication, handed in when [`IngestCtx`] is built: the cluster
/// implements it and depends on ingest, never the reverse.
pub trait Replication: Send + Sync + std::fmt::Debug {
    /// One publisher stream's ack sink: `publisher` (its control stream) wrapped so each
    /// committed event is replicated (naming `owner`, the publisher identity, so other nodes
    /// know who owns a game it creates), and acked when the replication's mode says.
    fn stream(&self, publisher: Arc<dyn AckSink>, owner: Arc<str>) -> Arc<dyn ReplicatedStream>;
    /// Waits until this node has applied what the other nodes wrote (a publisher's hello waits
    /// for it, so a failover resumes in order); false when it timed out.
    fn settle(&self) -> futures_util::future::BoxFuture<'_, bool>;
}

/// A publisher stream's side of replication.
pub trait ReplicatedStream: AckSink {
    /// The event `seq` (archived `bytes`) is about to be offered to the log.
    fn logging(&self, game: &str, seq: u64, bytes: &Arc<rkyv::util::AlignedVec>);
    /// Replication is so far behind that this stream must wait before logging more (only when
    /// publishers' acks wait for it: a local ack never waits for the cluster).
    fn must_wait(&self) -> bool;
}

/// What ingest is built from: the stages it feeds and the services it consults.
#[derive(Debug)]
pub struct Wiring {
    pub pipeline: Arc<Pipeline>,
    pub fanout: Arc<Fanout>,
    pub store: Option<Arc<Store>>,
    pub games: Arc<GameMemory>,
    pub tasks: Tracker,
    pub auth: Arc<Auth>,
    pub replication: Option<Arc<dyn Replication>>,
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

impl IngestCtx {
    pub fn new(cfg: IngestConfig, wiring: Wiring) -> Arc<IngestCtx> {
        let Wiring { pipeline, fanout, store, games, tasks, auth, replication, telemetry } = wiring;
        Arc::new(IngestCtx {
            connections: Arc::new(Semaphore::new(cfg.max_connections)),
            handshakes: Arc::new(Semaphore::new(cfg.max_handshakes)),
            cfg,
            pipeline,
            fanout,
            store,
            games,
            tasks,
            auth,
            replication,
            telemetry,
        })
    }

    /// The shared state admission consults.
    pub fn rules(&self) -> admission::Rules<'_> {
        admission::Rules {
            directory: self.pipeline.directory(),
            seqs: &self.games.seqs,
            owners: &self.games.owners,
            rosters: &self.games.rosters,
            tracking: &self.games.tracking_entities,
            max_games_per_key: self.auth.cfg.max_games_per_key,
            max_tracking_entities: self.cfg.max_tracking_entities_per_game,
        }
    }
}

/// What ingest remembers per game, forgotten together when the pipeline evicts the game.
#[derive(Debug)]
pub struct GameMemory {
    /// Which seqs of each game were accepted (dedupe and gaps).
    pub seqs: Sequencer,
    /// Tracking entities seen per game, to bound `game/{id}/tracking/{entity}` topics.
    pub tracking_entities: DashMap<String, usize>,
    /// When a game's tracking last went to its feed-quality monitor (at most once a second:
    /// a datagram flood must not fill the shard's queue).
    pub tracking_reported: DashMap<String, std::time::Instant>,
    /// Which publisher identity brought each game in (per-key game quota).
    pub owners: admission::GameOwners,
    /// The people each game has named (bounded per game).
    pub rosters: admission::Rosters,
}

impl GameMemory {
    pub fn new(cfg: &IngestConfig) -> GameMemory {
        GameMemory {
            seqs: Sequencer::new(cfg.max_seq_jump),
            tracking_entities: DashMap::new(),
            tracking_reported: DashMap::new(),
            owners: admission::GameOwners::default(),
            rosters: admission::Rosters::default(),
        }
    }

    /// The game left memory (the pipeline evicted it).
    pub fn forget(&self, game: &str) {
        self.seqs.forget(game);
        self.tracking_entities.remove(game);
        self.tracking_reported.remove(game);
        self.owners.forget(game);
        self.rosters.forget(game);
    }
}

impl crate::pipeline::recover::Remember for GameMemory {
    fn event(&self, event: &opensports_proto::Event) -> u64 {
        self.rosters.restore(event);
        self.seqs.restore(&event.game, event.seq)
    }

    fn snapshot(&self, game: &str, seqs: &crate::seqs::GameSeq, people: &[String]) {
        self.seqs.seed(game, seqs.clone());
        self.rosters.seed(game, people);
    }
}

/// Accepts connections until `shutdown` flips, then closes the endpoint with
/// `SHUTTING_DOWN` and waits (briefly) for connections to wind down.
pub async fn serve(endpoint: quinn::Endpoint, ctx: Arc<IngestCtx>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                // Under a handshake flood, an address must first prove it receives our packets
                // (a Retry round trip): spoofed or abandoned Initials then hold no slot.
                let busy = ctx.handshakes.available_permits() < ctx.cfg.max_handshakes / 2;
                if busy && !incoming.remote_address_validated() && incoming.may_retry() {
                    metrics::counter!(crate::metrics::INGEST_RETRIES_TOTAL).increment(1);
                    let _ = incoming.retry();
                    continue;
                }
                // The slot is taken here, before the task exists: never more than the limit.
                let Ok(handshake) = ctx.handshakes.clone().try_acquire_owned() else {
                    metrics::counter!(crate::metrics::INGEST_REJECTED_TOTAL, "reason" => "too_many_handshakes").increment(1);
                    incoming.refuse();
                    continue;
                };
                let task = ctx.clone();
                ctx.tasks.spawn(async move { conn::handle(incoming, &task, handshake).await });
            }
            _ = shutdown.changed() => break,
        }
    }
    endpoint.close(quic::SHUTTING_DOWN.into(), b"server shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}
