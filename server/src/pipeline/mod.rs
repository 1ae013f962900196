//! The pipeline: N shard threads, each owning its games' state. A game id always hashes to the
//! same shard, so one game's events are processed in order by one thread, without locks.
//!
//! # Layout
//! - [`Pipeline`]: routing and the bounded queues (crossbeam) feeding the shards.
//! - [`state`]: the pure core state of a game (score, clock, period, situation).
//! - [`games`]: the directory of games and the `games` topic.
//!
//! A full shard queue is backpressure: ingest waits and stops reading its QUIC stream, so the
//! publisher's flow-control window closes. Nothing here grows without bound.

pub mod games;
pub mod state;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use opensports_proto::{Event, topic};
use parking_lot::Mutex;
use rkyv::util::AlignedVec;

use crate::config::Config;
use crate::fanout::{Batch, Fanout, Topic};
use crate::metrics as m;
use crate::model::ModelRegistry;
use crate::model::ratings::Ratings;
use crate::plugin::{EventHistory, PluginSet, ShardPlugins};
use crate::store::Store;
use games::GamesIndex;
use state::{GameState, GameSummary, Status};

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
}

#[derive(Debug)]
enum ShardMsg {
    Event(Ingested),
    /// Answered once everything queued before it is processed (recovery waits on it).
    Barrier(Sender<()>),
    /// Sent after ingest stopped: everything queued before it is processed first.
    Stop,
}

/// Handle to the running shards.
#[derive(Debug)]
pub struct Pipeline {
    senders: Vec<Sender<ShardMsg>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    games: Arc<GamesIndex>,
    ratings: Arc<Ratings>,
}

/// The shard's queue is full; the event comes back to be retried.
#[derive(Debug)]
pub struct QueueFull(pub Ingested);

/// The pipeline has stopped.
#[derive(Debug, thiserror::Error)]
#[error("pipeline stopped")]
pub struct Stopped;

impl Pipeline {
    pub fn start(
        config: &Config,
        fanout: Arc<Fanout>,
        plugins: Arc<PluginSet>,
        models: Arc<ModelRegistry>,
        store: Option<Arc<Store>>,
        ratings: Arc<Ratings>,
    ) -> std::io::Result<Arc<Pipeline>> {
        let games = Arc::new(GamesIndex::new(fanout.clone(), config.pipeline.max_games));
        let ttl = Duration::from_secs(config.pipeline.ended_game_ttl_secs);
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for i in 0..config.shard_count() {
            let (tx, rx) = crossbeam_channel::bounded(config.pipeline.queue_len);
            let shard = Shard {
                rx,
                games: HashMap::new(),
                fanout: fanout.clone(),
                index: games.clone(),
                buf: Vec::with_capacity(4096),
                ttl,
                latency: metrics::histogram!(m::PIPELINE_LATENCY_SECONDS),
                queued: metrics::histogram!(m::PIPELINE_QUEUE_SECONDS),
                store: store.clone(),
                ratings: ratings.clone(),
                plugins: ShardPlugins::new(plugins.clone()),
                models: models.clone(),
                max_history: config.plugins.max_history_events,
                batch: Batch::default(),
                staged: Vec::with_capacity(MAX_BATCH),
            };
            threads.push(std::thread::Builder::new().name(format!("shard-{i}")).spawn(move || shard.run())?);
            senders.push(tx);
        }
        Ok(Arc::new(Pipeline { senders, threads: Mutex::new(threads), games, ratings }))
    }

    pub fn games(&self) -> &Arc<GamesIndex> {
        &self.games
    }

    pub fn ratings(&self) -> &Arc<Ratings> {
        &self.ratings
    }

    /// The shard that owns `game`. A fixed-key hash: stable across runs and processes.
    pub fn shard_of(&self, game: &str) -> usize {
        let mut h = std::hash::DefaultHasher::new();
        game.hash(&mut h);
        (h.finish() % self.senders.len() as u64) as usize
    }

    /// Queues an event without waiting.
    pub fn try_send(&self, shard: usize, item: Ingested) -> Result<Result<(), QueueFull>, Stopped> {
        match self.senders[shard].try_send(ShardMsg::Event(item)) {
            Ok(()) => Ok(Ok(())),
            Err(TrySendError::Full(ShardMsg::Event(i))) => Ok(Err(QueueFull(i))),
            Err(_) => Err(Stopped),
        }
    }

    /// Queues an event, waiting while the queue is full (recovery, before ingest opens).
    pub fn send_blocking(&self, shard: usize, item: Ingested) -> Result<(), Stopped> {
        self.senders[shard].send(ShardMsg::Event(item)).map_err(|_| Stopped)
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

struct Game {
    state: GameState,
    topic: Option<Arc<Topic>>,
    summary: Option<GameSummary>,
    ended_at: Option<Instant>,
    /// `(seq, archived event)`, kept while plugins are loaded, to rebuild a plugin by replay.
    history: std::collections::VecDeque<(u64, Arc<AlignedVec>)>,
    /// `game/{id}/winprob`, for the sports with a win-probability model.
    winprob: Option<Arc<Topic>>,
    /// Win probabilities given so far, scored against the result when the game ends.
    predictions: crate::model::winprob::Predictions,
    /// Pre-game Elo difference, pinned once both teams are known.
    elo_diff: Option<f64>,
}

/// The shard's games as the plugins' replay source.
struct Games<'a>(&'a HashMap<String, Game>);

impl EventHistory for Games<'_> {
    fn for_each(&self, f: &mut crate::plugin::ReplayFn<'_>) {
        for (id, g) in self.0 {
            for (seq, bytes) in &g.history {
                f(id, g.state.sport, *seq, bytes);
            }
        }
    }
}

struct Shard {
    rx: Receiver<ShardMsg>,
    games: HashMap<String, Game>,
    fanout: Arc<Fanout>,
    index: Arc<GamesIndex>,
    /// Reused serialization buffer: state JSON is written here, then copied once into the
    /// publication frame.
    buf: Vec<u8>,
    ttl: Duration,
    latency: metrics::Histogram,
    /// Ingest → shard dequeue.
    queued: metrics::Histogram,
    store: Option<Arc<Store>>,
    ratings: Arc<Ratings>,
    plugins: ShardPlugins,
    models: Arc<ModelRegistry>,
    max_history: usize,
    /// Publications made while draining the queue, published together (see [`MAX_BATCH`]).
    batch: Batch,
    /// Ingest times of the events whose publications are in `batch`: their latency is taken
    /// when the batch goes out.
    staged: Vec<Instant>,
}

/// Most publications a shard stages before publishing them. It publishes as soon as its queue
/// is empty, so at light load every event goes out alone and at once; under load one push per
/// subscriber carries up to this many messages.
const MAX_BATCH: usize = 64;

impl Shard {
    fn run(mut self) {
        let mut last_sweep = Instant::now();
        loop {
            if self.batch.len() >= MAX_BATCH || self.rx.is_empty() {
                self.publish();
            }
            match self.rx.recv_timeout(games::MIN_INTERVAL) {
                Ok(ShardMsg::Event(i)) => self.handle(i),
                Ok(ShardMsg::Barrier(done)) => {
                    self.publish();
                    let _ = done.send(());
                }
                Ok(ShardMsg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.plugins.sync(&Games(&self.games)),
            }
            self.index.flush_if_due();
            if last_sweep.elapsed() >= Duration::from_secs(1) {
                last_sweep = Instant::now();
                self.publish();
                self.evict_ended();
            }
        }
        self.publish();
    }

    /// Publishes what is staged and records each staged event's ingest → published latency.
    fn publish(&mut self) {
        self.fanout.publish_batch(&mut self.batch);
        for received in self.staged.drain(..) {
            self.latency.record(received.elapsed().as_secs_f64());
        }
    }

    fn handle(&mut self, item: Ingested) {
        self.queued.record(item.received.elapsed().as_secs_f64());
        let ev = &item.event;
        if !self.games.contains_key(&ev.game) {
            let state = GameState::new(&ev.game, ev.sport());
            let topic = self.fanout.topic(&topic::game_state(&ev.game));
            let game = Game {
                state,
                topic,
                summary: None,
                ended_at: None,
                history: Default::default(),
                winprob: None,
                predictions: Default::default(),
                elo_diff: None,
            };
            self.games.insert(ev.game.clone(), game);
        }
        let Some(game) = self.games.get_mut(&ev.game) else { return };
        // Ingest sequenced the event: retries never get here, gap fills do (and fold in late).
        game.state.apply(ev);
        game.state.missing = item.missing;
        if game.topic.is_none() {
            game.topic = self.fanout.topic(&topic::game_state(&ev.game));
        }
        if let Some(t) = &game.topic {
            self.buf.clear();
            match serde_json::to_writer(&mut self.buf, &game.state) {
                Ok(()) => self.batch.push(t, ev.ts, &self.buf),
                Err(e) => tracing::error!(error = %e, "cannot serialize game state"),
            }
        }
        if game.elo_diff.is_none()
            && let (Some(h), Some(a)) = (&game.state.home, &game.state.away)
        {
            game.elo_diff = self.ratings.pregame(&ev.game, game.state.sport, h, a);
        }
        if let Some((name, inputs)) = crate::model::winprob::features(&game.state, game.elo_diff)
            && let Some(scored) = self.models.score(name, &inputs)
        {
            if game.winprob.is_none() {
                game.winprob = self.fanout.topic(&topic::game_winprob(&ev.game));
            }
            if let Some(t) = &game.winprob {
                let mut ep = [0f32; 8];
                let ep = crate::model::winprob::ep_features(&game.state)
                    .and_then(|f| self.models.infer("nfl_ep", &f, &mut ep).ok())
                    .map(|_| ep[0]);
                let version = &scored.active.spec.version;
                crate::model::winprob::write_payload(&mut self.buf, scored.p, name, version, ep);
                self.batch.push(t, ev.ts, &self.buf);
            }
            game.predictions.record(scored);
            if game.state.status == Status::Ended
                && let Some(score) = game.state.score
            {
                game.predictions.settle(score.home > score.away);
            }
        }
        self.staged.push(item.received);
        if game.summary.as_ref().is_none_or(|s| !game.state.summary_matches(s)) {
            let summary = game.state.summary();
            game.summary = Some(summary.clone());
            self.index.update(summary, ev.ts);
        }
        if game.state.status == Status::Ended && game.ended_at.is_none() {
            game.ended_at = Some(Instant::now());
            if let (Some(h), Some(a), Some(score)) = (&game.state.home, &game.state.away, game.state.score) {
                let result = match score.home.cmp(&score.away) {
                    std::cmp::Ordering::Greater => 1.0,
                    std::cmp::Ordering::Equal => 0.5,
                    std::cmp::Ordering::Less => 0.0,
                };
                self.ratings.settle(&ev.game, game.state.sport, h, a, result);
            }
            if let Some(store) = &self.store {
                store.game_ended(&ev.game, crate::store::now_ms());
            }
        }
        if !self.plugins.is_empty() {
            self.run_plugins(&item.event, item.archived);
        }
    }

    /// Runs the plugins on one event and publishes their outputs on
    /// `game/{id}/{plugin}/{name}`; then keeps the event for replay.
    fn run_plugins(&mut self, ev: &Event, archived: Option<Arc<AlignedVec>>) {
        let bytes = match archived {
            Some(b) => b,
            None => match rkyv::to_bytes::<rkyv::rancor::Error>(ev) {
                Ok(b) => Arc::new(b),
                Err(e) => return tracing::error!(error = %e, "cannot archive event for plugins"),
            },
        };
        // The event joins the history only after the plugins ran: a rebuild during this call
        // must not replay it.
        self.plugins.sync(&Games(&self.games));
        let (fanout, batch) = (&self.fanout, &mut self.batch);
        let mut topic = String::new();
        self.plugins.on_event(
            &ev.game,
            ev.sport(),
            ev.seq,
            &bytes,
            &Games(&self.games),
            &mut |plugin, emit| {
                topic.clear();
                topic.push_str("game/");
                topic.push_str(&ev.game);
                topic.push('/');
                topic.push_str(plugin);
                topic.push('/');
                topic.push_str(&emit.name);
                if let Some(t) = fanout.topic(&topic) {
                    batch.push(&t, ev.ts, &emit.payload);
                }
            },
        );
        if let Some(g) = self.games.get_mut(&ev.game) {
            if g.history.len() >= self.max_history {
                // Past the cap a rebuild can no longer be exact; the durable log will lift this.
                g.history.pop_front();
            }
            g.history.push_back((ev.seq, bytes));
        }
    }

    fn evict_ended(&mut self) {
        let ttl = self.ttl;
        let expired: Vec<String> = self
            .games
            .iter()
            .filter(|(_, g)| g.ended_at.is_some_and(|t| t.elapsed() >= ttl))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(g) = self.games.remove(&id) {
                self.plugins.forget(&id);
                self.ratings.forget(&id);
                self.fanout.remove_topic(&topic::game_state(&id));
                self.fanout.remove_topic(&topic::game_winprob(&id));
                self.index.remove(&id, g.state.ts);
            }
        }
    }
}
