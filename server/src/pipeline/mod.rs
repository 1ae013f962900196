//! The pipeline: N shard threads, each owning its games' state. A game id always hashes to the
//! same shard, so one game's events are processed in order by one thread, without locks.
//!
//! # Layout
//! - [`Pipeline`]: routing and the bounded queues (crossbeam) feeding the shards.
//! - `shard`: the shard thread and its per-event stages (core state, win probability,
//!   summary, game end, plugins), then publishing in batches.
//! - `out`: where the stages stage their publications (`Out::stage`: topic made once,
//!   serialized once, batched); the shard and win probability both write through it.
//! - [`state`]: the pure core state of a game (score, clock, period, situation).
//! - [`winprob`]: win-probability features and payload (models run in `model`).
//! - [`quality`]: the feed-quality monitor; [`analyst`]: storylines checked against the state.
//! - [`directory`]: which games exist and their sport (ingest admits events against it).
//! - [`games`]: the `games` topic (summaries of the games in memory).
//! - [`recover`]: the log replayed through the shards at start.
//!
//! Arrows: ingest calls in; the pipeline calls `fanout`, `plugin`, and the leaves `model` and
//! `store`, never ingest. What ingest must hear of (a game evicted) goes through the
//! [`EvictHook`] it hands over at start.
//!
//! A full shard queue is backpressure: ingest waits and stops reading its QUIC stream, so the
//! publisher's flow-control window closes. Nothing here grows without bound.

pub mod analyst;
pub mod directory;
pub mod games;
mod history;
mod out;
pub mod quality;
pub mod recover;
mod shard;
pub mod snapshot;
pub mod state;
pub mod winprob;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};
use opensports_proto::Event;
use parking_lot::Mutex;
use rkyv::util::AlignedVec;

use crate::config::Config;
use crate::fanout::Fanout;
use crate::model::ModelRegistry;
use crate::model::ratings::Ratings;
use crate::plugin::PluginSet;
use crate::store::Store;
use directory::GameDirectory;
use games::GamesTopic;

/// One event on its way to a shard.
#[derive(Debug)]
pub struct Ingested {
    pub event: Event,
    /// The event archived with rkyv when ingest already did it (for the log); plugins share it.
    pub archived: Option<Arc<AlignedVec>>,
    /// When ingest finished reading it, for the stage latency histogram.
    pub received: Instant,
    /// Events of this game missing (never received) at the time it was accepted.
    pub missing: u64,
    /// Its trace, when sampled (`telemetry`).
    pub trace: Option<Arc<crate::telemetry::Traced>>,
}

/// Called on the shard thread when a game leaves memory (after the directory forgot it), so
/// that ingest can forget its sequencing.
pub type EvictHook = Box<dyn Fn(&str) + Send + Sync>;

/// Everything the pipeline is built from.
pub struct Parts {
    pub fanout: Arc<Fanout>,
    pub plugins: Arc<PluginSet>,
    pub models: Arc<ModelRegistry>,
    pub store: Option<Arc<Store>>,
    pub ratings: Arc<Ratings>,
    pub on_evict: EvictHook,
    /// The operators' stored changes to the trigger rules.
    pub trigger_edits: crate::triggers::Edits,
    /// Traces (`[telemetry]`); `None` when off.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts").field("store", &self.store.is_some()).finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum ShardMsg {
    Event(Ingested),
    /// Bring a game back from its snapshot (recovery); answers whether it did.
    Restore(Box<Restore>),
    /// Answered once everything queued before it is processed (recovery waits on it).
    Barrier(Sender<()>),
    /// Sent after ingest stopped: everything queued before it is processed first.
    Stop,
    /// Another event came under a seq already accepted: a feed-quality issue of the game.
    Conflict {
        game: String,
        seq: u64,
    },
    /// A tracked person moved faster than anyone runs (what was seen).
    Tracking {
        game: String,
        detail: String,
    },
}

#[derive(Debug)]
struct Restore {
    snapshot: snapshot::GameSnapshot,
    done: Sender<bool>,
}

/// Handle to the running shards.
#[derive(Debug)]
pub struct Pipeline {
    senders: Vec<Sender<ShardMsg>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    directory: Arc<GameDirectory>,
    games: Arc<GamesTopic>,
    ratings: Arc<Ratings>,
    triggers: Arc<crate::triggers::Triggers>,
}

/// The shard's queue is full; the event comes back to be retried.
#[derive(Debug)]
pub struct QueueFull(pub Ingested);

/// The pipeline has stopped.
#[derive(Debug, thiserror::Error)]
#[error("pipeline stopped")]
pub struct Stopped;

impl Pipeline {
    pub fn start(config: &Config, parts: Parts) -> std::io::Result<Arc<Pipeline>> {
        let Parts { fanout, plugins, models, store, ratings, on_evict, trigger_edits, telemetry } = parts;
        let directory = Arc::new(GameDirectory::new(config.pipeline.max_games, config.shard_count()));
        let games = Arc::new(GamesTopic::new(fanout.clone()));
        let on_evict = Arc::new(on_evict);
        // Refused rules stop the start at config validation; here they cannot be.
        let triggers = crate::triggers::Triggers::new(&config.triggers.rules, config.triggers.defaults)
            .map_err(std::io::Error::other)?
            .with_edits(trigger_edits);
        let triggers = Arc::new(triggers);
        let rephraser = match &config.analyst.llm {
            Some(llm) if config.analyst.enabled => Some(Arc::new(
                analyst::llm::Rephraser::start(llm.clone(), fanout.clone()).map_err(std::io::Error::other)?,
            )),
            _ => None,
        };
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for i in 0..config.shard_count() {
            let (tx, rx) = crossbeam_channel::bounded(config.pipeline.queue_len);
            let shard = shard::Shard::new(
                i,
                rx,
                config,
                shard::Shared {
                    fanout: fanout.clone(),
                    directory: directory.clone(),
                    games: games.clone(),
                    store: store.clone(),
                    ratings: ratings.clone(),
                    models: models.clone(),
                    on_evict: on_evict.clone(),
                    triggers: triggers.clone(),
                    quality: config.quality.clone(),
                    analyst: config.analyst.clone(),
                    rephraser: rephraser.clone(),
                    telemetry: telemetry.clone(),
                },
                plugins.clone(),
            );
            threads.push(std::thread::Builder::new().name(format!("shard-{i}")).spawn(move || shard.run())?);
            senders.push(tx);
        }
        Ok(Arc::new(Pipeline { senders, threads: Mutex::new(threads), directory, games, ratings, triggers }))
    }

    /// Which games exist; ingest admits events against it.
    pub fn directory(&self) -> &Arc<GameDirectory> {
        &self.directory
    }

    /// The `games` topic and list.
    pub fn games(&self) -> &Arc<GamesTopic> {
        &self.games
    }

    pub fn ratings(&self) -> &Arc<Ratings> {
        &self.ratings
    }

    /// The trigger rules every shard runs, and the operators' controls over them.
    pub fn triggers(&self) -> &Arc<crate::triggers::Triggers> {
        &self.triggers
    }

    /// Queues an event without waiting.
    pub fn try_send(&self, shard: usize, item: Ingested) -> Result<Result<(), QueueFull>, Stopped> {
        match self.senders[shard].try_send(ShardMsg::Event(item)) {
            Ok(()) => Ok(Ok(())),
            Err(TrySendError::Full(ShardMsg::Event(i))) => Ok(Err(QueueFull(i))),
            Err(_) => Err(Stopped),
        }
    }

    /// Reports a different event sent under an accepted seq to the game's shard (its
    /// feed-quality monitor). Dropped when the shard's queue is full or the game is not known:
    /// a report, never worth blocking ingest for.
    pub fn duplicate_conflict(&self, game: &str, seq: u64) {
        if let Some((_, shard)) = self.directory.get(game) {
            let _ = self.senders[shard].try_send(ShardMsg::Conflict { game: game.to_string(), seq });
        }
    }

    /// Reports tracking that no person can do to the game's shard (its feed-quality monitor);
    /// dropped as [`Self::duplicate_conflict`] is.
    pub fn tracking_issue(&self, game: &str, detail: String) {
        if let Some((_, shard)) = self.directory.get(game) {
            let _ = self.senders[shard].try_send(ShardMsg::Tracking { game: game.to_string(), detail });
        }
    }

    /// Queues an event, waiting while the queue is full (recovery, before ingest opens).
    pub fn send_blocking(&self, shard: usize, item: Ingested) -> Result<(), Stopped> {
        self.senders[shard].send(ShardMsg::Event(item)).map_err(|_| Stopped)
    }

    /// Restores a game from its snapshot on its shard (recovery, before its tail is queued);
    /// false when the shard could not (the game must then be replayed whole).
    pub fn restore(&self, shard: usize, snapshot: snapshot::GameSnapshot) -> Result<bool, Stopped> {
        let (done, rx) = crossbeam_channel::bounded(1);
        let msg = ShardMsg::Restore(Box::new(Restore { snapshot, done }));
        self.senders[shard].send(msg).map_err(|_| Stopped)?;
        rx.recv().map_err(|_| Stopped)
    }

    /// Waits until every shard has processed what was queued before this call.
    pub fn barrier(&self) -> Result<(), Stopped> {
        let (tx, rx) = crossbeam_channel::bounded(self.senders.len());
        for s in &self.senders {
            s.send(ShardMsg::Barrier(tx.clone())).map_err(|_| Stopped)?;
        }
        for _ in &self.senders {
            rx.recv().map_err(|_| Stopped)?;
        }
        Ok(())
    }

    /// Processes everything queued, then stops the shard threads. Call after ingest stopped.
    pub fn shutdown(&self) {
        for tx in &self.senders {
            let _ = tx.send(ShardMsg::Stop);
        }
        for t in self.threads.lock().drain(..) {
            if t.join().is_err() {
                tracing::error!("a shard thread panicked");
            }
        }
    }
}
