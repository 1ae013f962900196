//! One shard thread: owns its games' state and plugin instances, runs each event through the
//! stages in order, and publishes what they produce in batches.
//!
//! Stages per event, in this order (each a function below): core state → feed quality → win
//! probability → games-list summary → game end (ratings, log bookkeeping) → plugins →
//! analyst → triggers (over what the event published). Publications are staged
//! in [`Out`] (`out.rs`) and go out together when the queue is drained (or [`MAX_BATCH`] is
//! reached).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use opensports_proto::{Event, topic};
use rkyv::util::AlignedVec;

use super::analyst::{self, Analyst};
use super::directory::GameDirectory;
use super::games::{self, GamesTopic};
use super::history::History;
use super::out::Out;
use super::quality::{Before, Quality};
use super::snapshot::{GameSnapshot, SavedTopic, VERSION};
use super::state::{GameState, GameSummary, Status};
use super::winprob::WinProb;
use super::{EvictHook, Ingested, Restore, ShardMsg};
use crate::config::Config;
use crate::fanout::{Fanout, Topic};
use crate::metrics as m;
use crate::model::ModelRegistry;
use crate::model::ratings::Ratings;
use crate::plugin::{EventHistory, PluginSet, ReplayFn, ShardPlugins};
use crate::seqs::GameSeq;
use crate::store::{Store, now_ms};
use crate::telemetry::{Stages, Telemetry, Value};
use crate::triggers::{GameTriggers, RuleSet, Triggers};

/// Most publications a shard stages before publishing them. It publishes as soon as its queue
/// is empty, so at light load every event goes out alone and at once; under load one push per
/// subscriber carries up to this many messages.
const MAX_BATCH: usize = 64;

/// What every shard shares with the others.
pub(super) struct Shared {
    pub fanout: Arc<Fanout>,
    pub directory: Arc<GameDirectory>,
    pub games: Arc<GamesTopic>,
    pub store: Option<Arc<Store>>,
    pub ratings: Arc<Ratings>,
    pub models: Arc<ModelRegistry>,
    pub on_evict: Arc<EvictHook>,
    pub triggers: Arc<Triggers>,
    pub quality: crate::config::QualityConfig,
    pub analyst: crate::config::AnalystConfig,
    pub rephraser: Option<Arc<super::analyst::llm::Rephraser>>,
    /// Traces (`[telemetry]`): plugin failures of unsampled events are spans too.
    pub telemetry: Option<Arc<Telemetry>>,
}

struct Game {
    state: GameState,
    topic: Option<Arc<Topic>>,
    summary: Option<GameSummary>,
    ended_at: Option<Instant>,
    /// The events plugins saw, kept while plugins are loaded, to rebuild one by replay.
    history: History,
    winprob: WinProb,
    /// The seqs folded in, and the people their events named: what a snapshot covers.
    seqs: GameSeq,
    people: HashSet<Box<str>>,
    /// Events folded in since the last snapshot.
    since_snapshot: u64,
    triggers: GameTriggers,
    triggers_topic: Option<Arc<Topic>>,
    quality: Quality,
    analyst: Analyst,
}

impl Game {
    fn new(state: GameState) -> Game {
        Game {
            state,
            topic: None,
            summary: None,
            ended_at: None,
            history: History::default(),
            winprob: WinProb::default(),
            seqs: GameSeq::default(),
            people: HashSet::new(),
            since_snapshot: 0,
            triggers: GameTriggers::default(),
            triggers_topic: None,
            quality: Quality::default(),
            analyst: Analyst::default(),
        }
    }
}

/// The shard's games as the plugins' replay source (events the log holds are read back).
struct Games<'a>(&'a HashMap<String, Game>, Option<&'a Store>);

impl EventHistory for Games<'_> {
    fn for_each(&self, f: &mut ReplayFn<'_>) {
        for (id, g) in self.0 {
            g.history.replay(id, g.state.sport, self.1, f);
        }
    }
}

pub(super) struct Shard {
    rx: Receiver<ShardMsg>,
    games: HashMap<String, Game>,
    shared: Shared,
    out: Out,
    plugins: ShardPlugins,
    ttl: Duration,
    max_history: usize,
    /// `store.snapshot_every` (0 when off or without a log).
    snapshot_every: u64,
    /// Ingest → shard dequeue.
    queued: metrics::Histogram,
    /// Event age when the shard takes it.
    age: metrics::Histogram,
    /// History entries, those of them still holding their bytes, plugin memory.
    history_gauges: (metrics::Gauge, metrics::Gauge, metrics::Gauge),
}

impl Shard {
    pub(super) fn new(
        index: usize,
        rx: Receiver<ShardMsg>,
        config: &Config,
        shared: Shared,
        plugins: Arc<PluginSet>,
    ) -> Shard {
        let out = Out::new(shared.fanout.clone(), MAX_BATCH);
        let snapshot_every = if shared.store.is_some() { config.store.snapshot_every } else { 0 };
        Shard {
            rx,
            games: HashMap::new(),
            shared,
            out,
            plugins: ShardPlugins::new(plugins),
            ttl: Duration::from_secs(config.pipeline.ended_game_ttl_secs),
            max_history: config.plugins.max_history_events,
            snapshot_every,
            queued: metrics::histogram!(m::PIPELINE_QUEUE_SECONDS),
            age: metrics::histogram!(m::EVENT_AGE_SECONDS, "stage" => m::AGE_STAGES[1]),
            history_gauges: (
                metrics::gauge!(m::PLUGIN_HISTORY_EVENTS, "shard" => index.to_string()),
                metrics::gauge!(m::PLUGIN_HISTORY_HELD_EVENTS, "shard" => index.to_string()),
                metrics::gauge!(m::PLUGIN_MEMORY_BYTES, "shard" => index.to_string()),
            ),
        }
    }

    pub(super) fn run(mut self) {
        let mut last_sweep = Instant::now();
        loop {
            if self.out.staged() >= MAX_BATCH || self.rx.is_empty() {
                self.out.publish();
            }
            match self.rx.recv_timeout(games::MIN_INTERVAL) {
                Ok(ShardMsg::Event(i)) => self.handle(i),
                Ok(ShardMsg::Restore(r)) => {
                    let Restore { snapshot, done } = *r;
                    let _ = done.send(self.restore(snapshot));
                }
                Ok(ShardMsg::Barrier(done)) => {
                    self.out.publish();
                    let _ = done.send(());
                }
                Ok(ShardMsg::Conflict { game, seq }) => {
                    if let Some(g) = self.games.get_mut(&game) {
                        g.quality.conflict(&self.shared.quality, seq, &g.state, &mut self.out);
                    }
                }
                Ok(ShardMsg::Tracking { game, detail }) => {
                    if let Some(g) = self.games.get_mut(&game) {
                        g.quality.tracking(&self.shared.quality, detail, &g.state, &mut self.out);
                    }
                }
                Ok(ShardMsg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.plugins.sync(&Games(&self.games, self.shared.store.as_deref()))
                }
            }
            self.shared.games.flush_if_due();
            if last_sweep.elapsed() >= Duration::from_secs(1) {
                last_sweep = Instant::now();
                for game in self.games.values_mut() {
                    game.quality.sweep(&self.shared.quality, &game.state, &mut self.out);
                }
                self.out.publish();
                self.evict_ended();
                self.trim_history();
            }
        }
        self.out.publish();
        // A clean stop: every game as it is, history rings included, so the next start
        // replays nothing and every `since` resume still finds its messages.
        if self.snapshot_every > 0 {
            let ids: Vec<String> = self.games.keys().cloned().collect();
            for id in ids {
                self.take_snapshot(&id, true);
            }
        }
    }

    /// One event through every stage.
    fn handle(&mut self, item: Ingested) {
        self.queued.record(item.received.elapsed().as_secs_f64());
        self.age.record(m::age_secs(item.event.ts));
        let Ingested { event, archived, received, missing, trace } = item;
        let mut stages = trace.as_ref().map(|t| {
            let now = Instant::now();
            t.span("queue", None, (received, now), None);
            self.out.traced(t);
            t.stages(now)
        });
        if !self.games.contains_key(&event.game) {
            let game = Game::new(GameState::new(&event.game, event.sport()));
            self.games.insert(event.game.clone(), game);
        }
        let Some(game) = self.games.get_mut(&event.game) else { return };
        let s = &self.shared;
        let first_staged = self.out.staged();
        let before = Before::of(&game.state);
        core_state(game, &event, missing, &mut self.out);
        game.quality.observe(&s.quality, before, &event, received, &game.state, &mut self.out);
        stage_end(&mut stages, "state");
        let wp = game.winprob.update(&game.state, event.ts, &s.ratings, &s.models, &mut self.out);
        stage_end(&mut stages, "winprob");
        self.out.event_done(received, event.ts);
        summary(game, event.ts, &s.games);
        let ended = game_end(game, &s.ratings, s.store.as_deref());
        if self.snapshot_every > 0 {
            note_folded(game, &event);
        }
        if let Some(st) = &mut stages {
            st.skip();
        }
        if !self.plugins.is_empty() {
            self.run_plugins(&event, archived, &mut stages);
        }
        if self.shared.analyst.enabled
            && let Some(game) = self.games.get_mut(&event.game)
        {
            let xg = analyst::staged_xg(self.out.staged_since(first_staged));
            let (s, out) = (&self.shared, &mut self.out);
            game.analyst.observe(&s.analyst, &event, &game.state, wp, xg, out, s.rephraser.as_deref());
            stage_end(&mut stages, "analyst");
        }
        let rules = self.shared.triggers.current();
        if !rules.is_empty() {
            self.run_triggers(&rules, &event, first_staged);
            stage_end(&mut stages, "triggers");
        }
        if let Some(st) = stages {
            st.finish();
            self.out.untraced();
        }
        if self.snapshot_every > 0
            && let Some(game) = self.games.get_mut(&event.game)
        {
            game.since_snapshot += 1;
            if ended || game.since_snapshot >= self.snapshot_every {
                game.since_snapshot = 0;
                self.take_snapshot(&event.game, false);
            }
        }
    }

    /// Snapshots a game into the log (see `snapshot.rs`), with its topics' history rings when
    /// `rings`. Its staged publications go out first, so the topics' latest values are this
    /// event's.
    fn take_snapshot(&mut self, id: &str, rings: bool) {
        let Some(store) = self.shared.store.clone() else { return };
        let Some(game) = self.games.get(id) else { return };
        let Some(plugins) = self.plugins.snapshot(id, game.state.sport) else {
            return tracing::debug!(game = id, "no snapshot: a plugin cannot give its state for this game");
        };
        self.out.publish();
        let tracking = format!("{}tracking/", topic::game_prefix(id));
        let topics = self
            .shared
            .fanout
            .kept_under(&topic::game_prefix(id), rings)
            .iter()
            .filter(|pubs| pubs.first().is_some_and(|p| !p.topic.starts_with(&tracking)))
            .filter_map(|pubs| SavedTopic::of(pubs))
            .collect();
        let mut people: Vec<String> = game.people.iter().map(|p| p.to_string()).collect();
        people.sort_unstable();
        let snapshot = GameSnapshot {
            version: VERSION,
            game: id.to_string(),
            seqs: game.seqs.clone(),
            people,
            state: game.state.clone(),
            winprob: game.winprob.save(),
            topics,
            plugins,
            triggers: game.triggers.clone(),
            quality: game.quality.clone(),
            analyst: game.analyst.clone(),
        };
        match snapshot.encode() {
            Ok(bytes) => {
                metrics::counter!(m::STORE_SNAPSHOTS_TOTAL).increment(1);
                metrics::histogram!(m::STORE_SNAPSHOT_BYTES).record(bytes.len() as f64);
                store.save_snapshot(id, bytes);
            }
            Err(e) => tracing::error!(game = id, error = %e, "cannot encode a game snapshot"),
        }
    }

    /// Brings a game back from its snapshot (recovery, before its tail is replayed). False,
    /// with nothing changed, when it cannot be (the caller then replays the whole game).
    fn restore(&mut self, snap: GameSnapshot) -> bool {
        if self.games.contains_key(&snap.game) {
            return false;
        }
        let sport = snap.state.sport;
        let log = self.shared.store.as_deref();
        if !self.plugins.restore(&snap.game, sport, &snap.plugins, &Games(&self.games, log)) {
            return false;
        }
        let s = &self.shared;
        for t in &snap.topics {
            s.fanout.restore(&t.name, &t.pubs());
        }
        let winprob = s.fanout.topic_if_exists(&topic::game_winprob(&snap.game));
        let mut game = Game::new(snap.state);
        game.topic = s.fanout.topic_if_exists(&topic::game_state(&snap.game));
        game.winprob = WinProb::restore(snap.winprob, winprob, &s.models);
        game.history = History::based_on(snap.seqs.clone());
        game.seqs = snap.seqs;
        game.people = snap.people.into_iter().map(Box::from).collect();
        game.triggers = snap.triggers;
        game.quality = snap.quality;
        game.analyst = snap.analyst;
        let ts = game.state.ts;
        summary(&mut game, ts, &s.games);
        game_end(&mut game, &s.ratings, s.store.as_deref());
        self.games.insert(snap.game, game);
        true
    }

    /// Runs the plugins on one event and stages their outputs on `game/{id}/{plugin}/{name}`;
    /// then keeps the event for replay.
    fn run_plugins(&mut self, ev: &Event, archived: Option<Arc<AlignedVec>>, stages: &mut Option<Stages>) {
        let bytes = match archived {
            Some(b) => b,
            None => match rkyv::to_bytes::<rkyv::rancor::Error>(ev) {
                Ok(b) => Arc::new(b),
                Err(e) => return tracing::error!(error = %e, "cannot archive event for plugins"),
            },
        };
        // The event joins the history only after the plugins ran: a rebuild during this call
        // must not replay it.
        let log = self.shared.store.as_deref();
        self.plugins.sync(&Games(&self.games, log));
        let (out, triggers, tel) = (&mut self.out, &self.shared.triggers, &self.shared.telemetry);
        // Plugin triggers (`trigger/{name}`) go out on `game/{id}/triggers` after the call.
        let mut fired: Vec<Vec<u8>> = Vec::new();
        self.plugins.on_event(
            (&ev.game, ev.sport(), ev.seq),
            &bytes,
            &Games(&self.games, log),
            &mut |plugin, emit| match emit.name.strip_prefix(opensports_proto::plugin_abi::TRIGGER_PREFIX) {
                Some(name) => fired.extend(triggers.plugin_firing(
                    (plugin, name),
                    &ev.game,
                    (ev.seq, ev.ts),
                    &emit.payload,
                )),
                None => out.stage_plugin_output(&ev.game, plugin, &emit.name, ev.ts, &emit.payload),
            },
            // Each plugin's call is a span of a sampled event; a failure always is one.
            &mut |plugin, started, failed| match (stages.as_mut(), tel, failed) {
                (Some(st), _, failed) => st.end(format!("plugin {plugin}"), failed.map(|e| e.to_string())),
                (None, Some(tel), Some(e)) => {
                    let attrs = vec![
                        ("plugin", Value::Str(plugin.into())),
                        ("game", Value::Str(ev.game.clone())),
                        ("seq", Value::Int(ev.seq as i64)),
                        ("error.code", Value::Str(e.kind().into())),
                    ];
                    tel.error("plugin", None, (started, Instant::now()), attrs, e.to_string());
                }
                (None, ..) => {}
            },
        );
        if let Some(g) = self.games.get_mut(&ev.game) {
            g.history.push(ev.seq, bytes, self.max_history);
            for f in &fired {
                stage_trigger(&mut self.out, &mut g.triggers_topic, &ev.game, ev.ts, f);
            }
        }
    }

    /// Feeds the trigger rules what this event published (from the `first`-th staged
    /// publication on) and stages their firings on `game/{id}/triggers`.
    fn run_triggers(&mut self, rules: &RuleSet, ev: &Event, first: usize) {
        let Some(game) = self.games.get_mut(&ev.game) else { return };
        let prefix = topic::game_prefix(&ev.game);
        let (triggers, sport) = (&self.shared.triggers, game.state.sport);
        let mut changed = Vec::new();
        for (name, data) in self.out.staged_since(first) {
            if let Some(t) = name.strip_prefix(prefix.as_str())
                && game.triggers.observe(rules, sport, t, data)
            {
                changed.push(t.to_string());
            }
        }
        if changed.is_empty() {
            return;
        }
        let (out, slot) = (&mut self.out, &mut game.triggers_topic);
        let at = (ev.seq, ev.ts);
        game.triggers.evaluate(triggers, rules, (&ev.game, sport), at, &changed, &mut |fired| {
            stage_trigger(out, slot, &ev.game, ev.ts, fired)
        });
    }

    /// Lets go of the bytes of history entries the log now holds (once a second), and reports
    /// what the shard's histories and plugin instances hold.
    fn trim_history(&mut self) {
        // A read of the log only when something is left to trim (never without plugins).
        let held = self.games.values().any(|g| g.history.held() > 0);
        let reader = self.shared.store.as_ref().filter(|_| held).and_then(|s| s.reader().ok());
        let (mut entries, mut held) = (0, 0);
        for (id, g) in &mut self.games {
            if let Some(r) = &reader {
                g.history.trim(id, r);
            }
            entries += g.history.len();
            held += g.history.held();
        }
        self.history_gauges.0.set(entries as f64);
        self.history_gauges.1.set(held as f64);
        self.history_gauges.2.set(self.plugins.memory_bytes() as f64);
    }

    /// Drops the games that ended more than the TTL ago, with their topics and plugin state.
    fn evict_ended(&mut self) {
        let ttl = self.ttl;
        let expired: Vec<String> = self
            .games
            .iter()
            .filter(|(_, g)| g.ended_at.is_some_and(|t| t.elapsed() >= ttl))
            .map(|(id, _)| id.clone())
            .collect();
        let s = &self.shared;
        for id in expired {
            // Its report stays in the log, for the desk that asks after the game left memory.
            if let Some(store) = &s.store
                && let Some(report) = crate::report::build(&s.fanout, &id, |_| true)
            {
                match serde_json::to_vec(&report) {
                    Ok(bytes) => store.save_report(&id, bytes),
                    Err(e) => tracing::error!(game = %id, error = %e, "cannot serialize a report"),
                }
            }
            if let Some(g) = self.games.remove(&id) {
                self.plugins.forget(&id);
                s.ratings.forget(&id);
                // Every topic of the game: state, win probability, tracking, plugin outputs.
                s.fanout.remove_topics_under(&opensports_proto::topic::game_prefix(&id));
                s.directory.remove(&id);
                (s.on_evict)(&id);
                s.games.remove(&id, g.state.ts);
            }
        }
    }
}

/// Core state: applies the event and stages `game/{id}/state`. Ingest sequenced the event:
/// retries never get here, gap fills do (and fold in late).
fn core_state(game: &mut Game, ev: &Event, missing: u64, out: &mut Out) {
    game.state.apply(ev);
    game.state.missing = missing;
    let state = &game.state;
    out.stage(
        &mut game.topic,
        || topic::game_state(&ev.game),
        ev.ts,
        |buf| match serde_json::to_writer(buf, state) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize game state");
                false
            }
        },
    );
}

/// The `games` list: updated when the game's summary changed.
fn summary(game: &mut Game, ts: i64, games: &GamesTopic) {
    if game.summary.as_ref().is_none_or(|s| !game.state.summary_matches(s)) {
        let summary = game.state.summary();
        game.summary = Some(summary.clone());
        games.update(summary, ts);
    }
}

/// What a snapshot must know of an event folded in: its seq and the people it names.
fn note_folded(game: &mut Game, ev: &Event) {
    game.seqs.restore(ev.seq);
    for p in ev.people().into_iter().flatten() {
        if !game.people.contains(p) {
            game.people.insert(p.into());
        }
    }
}

/// Once, when the game ends (true then): the result goes to the ratings and the log learns the
/// end time (retention, and recovery's TTL). Neither waits: shard threads never block on the
/// log.
fn game_end(game: &mut Game, ratings: &Ratings, store: Option<&Store>) -> bool {
    let state = &game.state;
    if state.status != Status::Ended || game.ended_at.is_some() {
        return false;
    }
    game.ended_at = Some(Instant::now());
    if let (Some(h), Some(a), Some(score)) = (&state.home, &state.away, state.score) {
        let result = match score.home.cmp(&score.away) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => 0.5,
            std::cmp::Ordering::Less => 0.0,
        };
        ratings.settle(&state.game, state.sport, h, a, result);
    }
    if let Some(store) = store {
        store.game_ended(&state.game, now_ms());
    }
    true
}

/// Stages a trigger firing on `game/{id}/triggers`.
fn stage_trigger(out: &mut Out, slot: &mut Option<Arc<Topic>>, game: &str, ts: i64, fired: &[u8]) {
    out.stage(
        slot,
        || format!("{}triggers", topic::game_prefix(game)),
        ts,
        |buf| {
            buf.extend_from_slice(fired);
            true
        },
    );
}

/// Ends a sampled event's shard stage `name` (nothing when the event is not sampled).
fn stage_end(stages: &mut Option<Stages>, name: &'static str) {
    if let Some(st) = stages {
        st.end(name, None);
    }
}
