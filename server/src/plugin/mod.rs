//! Sandboxed WASM analytics plugins (wasmtime): ABI v1 core modules and ABI v2 components.
//!
//! # Layout
//! - [`engine`]: the process-wide engine with its epoch ticker.
//! - [`compile`]: compilation of modules (ABI v1) and components (ABI v2), `.cwasm` cache.
//! - [`component`]: ABI v2, components of the WIT world `opensports:plugin@2.0.0`.
//! - [`host`]: the store state and the host imports (`emit`, `infer`, `log`).
//! - [`instance`]: one instance and its typed calls; failures typed as [`PluginError`].
//! - this file: the loaded plugin set shared by all shards ([`PluginSet`]), each plugin's
//!   health and quarantine ([`PluginInfo`]), and the per-shard runtime ([`ShardPlugins`]) that
//!   calls plugins on every event, rebuilds a failed instance by replay, and swaps in new
//!   versions at an event boundary (hot reload).

pub mod compile;
pub mod component;
pub mod deadline;
pub mod engine;
pub mod harness;
pub mod host;
pub mod instance;
mod snapshot;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opensports_proto::Sport;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::config::PluginsConfig;
use crate::metrics as m;
use compile::Compiled;
use host::{Emit, Limits};
use instance::Instance;
pub use snapshot::SavedPlugin;

/// A plugin failure, by kind. Each is counted in `opensports_plugin_failures_total{plugin,kind}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("trap: {0}")]
    Trap(String),
    #[error("deadline exceeded")]
    Deadline,
    #[error("memory cap reached")]
    Memory,
    #[error("bad output: {0}")]
    BadOutput(String),
    #[error("cannot load: {0}")]
    Compile(String),
}

impl PluginError {
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Trap(_) => "trap",
            PluginError::Deadline => "deadline",
            PluginError::Memory => "memory",
            PluginError::BadOutput(_) => "bad_output",
            PluginError::Compile(_) => "compile",
        }
    }
}

const KINDS: [&str; 5] = ["trap", "deadline", "memory", "bad_output", "compile"];

fn sport_bit(s: Sport) -> u32 {
    opensports_proto::plugin_abi::sport_bit(s) as u32
}

/// One loaded plugin: its current version and its health, shared by all shards.
#[derive(Debug)]
pub struct PluginInfo {
    pub name: Arc<str>,
    /// The `.wasm` it was loaded from, watched for changes.
    path: PathBuf,
    modified: Mutex<Option<std::time::SystemTime>>,
    compiled: RwLock<Arc<Compiled>>,
    /// Its limits: `[plugins]`'s, or its entry's own memory cap and deadline.
    limits: Limits,
    deadline_ticks: u64,
    /// Bumped by every reload; shards compare it with theirs.
    generation: AtomicU64,
    config_json: Vec<u8>,
    /// Quarantined for every game (see [`Health`]).
    quarantined: AtomicBool,
    /// Games it is quarantined for, as a count: the hot path looks at [`Health`] only when
    /// this is not 0.
    games_quarantined: std::sync::atomic::AtomicUsize,
    health: Mutex<Health>,
    failures: [AtomicU64; KINDS.len()],
    events: AtomicU64,
    emits: AtomicU64,
}

/// Most games whose recent failures are tracked per plugin (the oldest is dropped past it).
const MAX_TRACKED_GAMES: usize = 1024;

/// A plugin's recent failures. The quarantine rule (PROTOCOL.md, plugin-sdk/README.md):
/// - `quarantine_after` failures within a minute caused by **one game's** events quarantine the
///   plugin for that game only: its other games keep their outputs;
/// - once it is quarantined in `quarantine_games` games, or fails `quarantine_after` times in
///   a minute outside any game (an instance that cannot even be built), it is a bug in the
///   plugin and it is quarantined for every game;
/// - a reload clears both; an admin may re-enable one (plugin, game).
#[derive(Debug, Default)]
struct Health {
    /// Failure times per game within the last minute, oldest first.
    recent: HashMap<String, VecDeque<Instant>>,
    /// Failures outside any game within the last minute.
    recent_global: VecDeque<Instant>,
    /// Games this plugin is quarantined for.
    games: HashSet<String>,
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quarantine {
    /// Counted; the plugin goes on.
    No,
    /// Now quarantined for this game.
    Game,
    /// Now quarantined for every game.
    Everywhere,
}

fn prune(q: &mut VecDeque<Instant>, now: Instant) {
    while q.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60)) {
        q.pop_front();
    }
}

impl PluginInfo {
    /// Whether the plugin is off for `game` (quarantined there or everywhere).
    pub fn quarantined_for(&self, game: &str) -> bool {
        self.quarantined.load(Ordering::Relaxed)
            || (self.games_quarantined.load(Ordering::Relaxed) > 0 && self.health.lock().games.contains(game))
    }

    /// Games the plugin is quarantined for, sorted.
    pub fn quarantined_games(&self) -> Vec<String> {
        let mut g: Vec<String> = self.health.lock().games.iter().cloned().collect();
        g.sort();
        g
    }

    /// Lifts the quarantine of one game; false if it was not quarantined there.
    pub fn enable_game(&self, game: &str) -> bool {
        let mut h = self.health.lock();
        h.recent.remove(game);
        let lifted = h.games.remove(game);
        if lifted {
            self.set_games_quarantined(h.games.len());
        }
        lifted
    }

    /// The count the hot path reads, and its gauge, kept together (every change goes here,
    /// eviction's included).
    fn set_games_quarantined(&self, n: usize) {
        self.games_quarantined.store(n, Ordering::Relaxed);
        metrics::gauge!(m::PLUGIN_QUARANTINED_GAMES, "plugin" => self.name.to_string()).set(n as f64);
    }

    fn clear(&self) {
        let mut h = self.health.lock();
        *h = Health::default();
        self.set_games_quarantined(0);
        self.quarantined.store(false, Ordering::Relaxed);
    }

    /// Records one failure caused by `game`'s events (`None`: no game's) at `now`.
    fn failed(&self, game: Option<&str>, now: Instant, after: usize, games_for_all: usize) -> Quarantine {
        let mut h = self.health.lock();
        let recent = match game {
            Some(g) => {
                if !h.recent.contains_key(g) && h.recent.len() >= MAX_TRACKED_GAMES {
                    h.recent.retain(|_, q| {
                        prune(q, now);
                        !q.is_empty()
                    });
                    if h.recent.len() >= MAX_TRACKED_GAMES
                        && let Some(oldest) =
                            h.recent.iter().min_by_key(|(_, q)| q.back().copied()).map(|(g, _)| g.clone())
                    {
                        h.recent.remove(&oldest);
                    }
                }
                h.recent.entry(g.to_string()).or_default()
            }
            None => &mut h.recent_global,
        };
        recent.push_back(now);
        prune(recent, now);
        if recent.len() < after || self.quarantined.load(Ordering::Relaxed) {
            return Quarantine::No;
        }
        let everywhere = match game {
            Some(g) => {
                if !h.games.insert(g.to_string()) {
                    return Quarantine::No;
                }
                self.set_games_quarantined(h.games.len());
                h.games.len() >= games_for_all
            }
            None => true,
        };
        if everywhere {
            self.quarantined.store(true, Ordering::Relaxed);
            Quarantine::Everywhere
        } else {
            Quarantine::Game
        }
    }
}

/// `GET /v1/plugins` entry.
#[derive(Debug, Serialize)]
pub struct PluginReport {
    pub name: String,
    pub version: String,
    pub sports: Vec<&'static str>,
    pub status: &'static str,
    /// Games it is quarantined for (while `status` is `active` elsewhere).
    pub quarantined_games: Vec<String>,
    pub events: u64,
    pub emits: u64,
    pub failures: std::collections::BTreeMap<&'static str, u64>,
}

/// Every loaded plugin, the limits, and what the shards need to run them.
#[derive(Debug)]
pub struct PluginSet {
    pub plugins: Vec<Arc<PluginInfo>>,
    pub limits: Limits,
    pub deadline_ticks: u64,
    quarantine_after: usize,
    quarantine_games: usize,
    cache_dir: PathBuf,
    pub models: Arc<crate::model::ModelRegistry>,
}

impl PluginSet {
    /// Compiles every plugin of `[plugins]`. A plugin that does not load is reported and left
    /// out; the server runs without it.
    pub fn load(
        cfg: &PluginsConfig,
        data_dir: &Path,
        models: Arc<crate::model::ModelRegistry>,
    ) -> Arc<PluginSet> {
        let cache_dir = cfg.cache_dir.clone().unwrap_or_else(|| data_dir.join("plugin-cache"));
        let limits = Limits {
            memory_bytes: cfg.memory_mib << 20,
            max_emits: cfg.max_emits_per_event,
            max_emit_bytes: cfg.max_emit_bytes,
            max_logs: 16,
        };
        let ticks =
            |us: u64| (Duration::from_micros(us).as_nanos() / engine::TICK.as_nanos()).max(1) as u64 + 1;
        let deadline_ticks = ticks(cfg.deadline_us);
        let mut plugins = Vec::new();
        for entry in &cfg.load {
            let name = entry.name();
            let limits = Limits { memory_bytes: entry.memory_mib.unwrap_or(cfg.memory_mib) << 20, ..limits };
            let deadline_ticks = ticks(entry.deadline_us.unwrap_or(cfg.deadline_us));
            let loaded = std::fs::read(&entry.path)
                .map_err(|e| PluginError::Compile(format!("{}: {e}", entry.path.display())))
                .and_then(|wasm| {
                    compile_checked(
                        &name,
                        &wasm,
                        &cache_dir,
                        limits,
                        deadline_ticks,
                        &entry.config_json(),
                        &models,
                    )
                });
            match loaded {
                Ok(c) => {
                    tracing::info!(plugin = %name, version = %c.version, path = %entry.path.display(), "plugin loaded");
                    metrics::gauge!(m::PLUGIN_QUARANTINED, "plugin" => c.name.to_string()).set(0.0);
                    plugins.push(Arc::new(PluginInfo {
                        name: c.name.clone(),
                        path: entry.path.clone(),
                        modified: Mutex::new(modified(&entry.path)),
                        compiled: RwLock::new(Arc::new(c)),
                        limits,
                        deadline_ticks,
                        generation: AtomicU64::new(0),
                        config_json: entry.config_json(),
                        quarantined: AtomicBool::new(false),
                        games_quarantined: Default::default(),
                        health: Mutex::new(Health::default()),
                        failures: Default::default(),
                        events: AtomicU64::new(0),
                        emits: AtomicU64::new(0),
                    }));
                }
                Err(e) => {
                    metrics::counter!(m::PLUGIN_FAILURES_TOTAL, "plugin" => name.clone(), "kind" => "compile").increment(1);
                    tracing::error!(plugin = %name, error = %e, "plugin not loaded");
                }
            }
        }
        Arc::new(PluginSet {
            plugins,
            limits,
            deadline_ticks,
            quarantine_after: cfg.quarantine_after,
            quarantine_games: cfg.quarantine_games,
            cache_dir,
            models,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<PluginInfo>> {
        self.plugins.iter().find(|p| &*p.name == name)
    }

    /// The running version of plugin `name`.
    pub fn version_of(&self, name: &str) -> Option<String> {
        self.get(name).map(|info| info.compiled.read().version.clone())
    }

    /// Compiles a new version of plugin `name` off the hot path; shards pick it up at their next
    /// event boundary (after backfilling it), see [`ShardPlugins::sync`]. Clears quarantine.
    pub fn reload(&self, name: &str, wasm: &[u8]) -> Result<String, PluginError> {
        let info = self
            .get(name)
            .ok_or_else(|| PluginError::Compile(format!("no plugin named {name:?} is loaded")))?;
        let c = compile_checked(
            name,
            wasm,
            &self.cache_dir,
            info.limits,
            info.deadline_ticks,
            &info.config_json,
            &self.models,
        )?;
        let version = c.version.clone();
        *info.compiled.write() = Arc::new(c);
        info.clear();
        metrics::gauge!(m::PLUGIN_QUARANTINED, "plugin" => name.to_string()).set(0.0);
        info.generation.fetch_add(1, Ordering::Release);
        tracing::info!(plugin = name, %version, "plugin reloaded");
        Ok(version)
    }

    /// Reloads every plugin whose `.wasm` file changed since it was loaded. Returns how many.
    pub fn reload_changed(&self) -> usize {
        let mut reloaded = 0;
        for info in &self.plugins {
            let now = modified(&info.path);
            if now.is_none() || *info.modified.lock() == now {
                continue;
            }
            *info.modified.lock() = now;
            match std::fs::read(&info.path)
                .map_err(|e| PluginError::Compile(e.to_string()))
                .and_then(|w| self.reload(&info.name, &w))
            {
                Ok(_) => reloaded += 1,
                Err(e) => {
                    tracing::error!(plugin = %info.name, error = %e, "changed plugin file not loaded; the running version stays")
                }
            }
        }
        reloaded
    }

    pub fn report(&self) -> Vec<PluginReport> {
        self.plugins
            .iter()
            .map(|p| {
                let c = p.compiled.read().clone();
                PluginReport {
                    name: p.name.to_string(),
                    version: c.version.clone(),
                    sports: Sport::ALL
                        .into_iter()
                        .filter(|s| c.sports & sport_bit(*s) != 0)
                        .map(Sport::as_str)
                        .collect(),
                    status: if p.quarantined.load(Ordering::Relaxed) { "quarantined" } else { "active" },
                    quarantined_games: p.quarantined_games(),
                    events: p.events.load(Ordering::Relaxed),
                    emits: p.emits.load(Ordering::Relaxed),
                    failures: KINDS
                        .iter()
                        .zip(&p.failures)
                        .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
                        .collect(),
                }
            })
            .collect()
    }

    /// Lifts the quarantine of (`plugin`, `game`); `None` if no such plugin.
    pub fn enable_game(&self, plugin: &str, game: &str) -> Option<bool> {
        let info = self.get(plugin)?;
        let lifted = info.enable_game(game);
        if lifted {
            tracing::info!(plugin, game, "plugin re-enabled for a game");
        }
        Some(lifted)
    }

    fn record_failure(&self, info: &PluginInfo, game: Option<&str>, e: &PluginError) -> Quarantine {
        let kind = e.kind();
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            info.failures[i].fetch_add(1, Ordering::Relaxed);
        }
        metrics::counter!(m::PLUGIN_FAILURES_TOTAL, "plugin" => info.name.to_string(), "kind" => kind)
            .increment(1);
        let q = info.failed(game, Instant::now(), self.quarantine_after, self.quarantine_games);
        match q {
            Quarantine::Everywhere => {
                metrics::gauge!(m::PLUGIN_QUARANTINED, "plugin" => info.name.to_string()).set(1.0);
                tracing::error!(plugin = %info.name, error = %e, "plugin quarantined for every game: it fails in many games, or outside any");
            }
            Quarantine::Game => {
                tracing::error!(plugin = %info.name, game, error = %e, "plugin quarantined for one game: too many failures in a minute on its events");
            }
            Quarantine::No => {
                tracing::warn!(plugin = %info.name, game, error = %e, "plugin failed; rebuilding its instance")
            }
        }
        q
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Polls the loaded plugins' files every `every` and hot-reloads the changed ones.
pub async fn watch(set: Arc<PluginSet>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let s = set.clone();
        let _ = tokio::task::spawn_blocking(move || s.reload_changed()).await;
    }
}

/// Compiles and instantiates once, to check the ABI and read the sports mask.
fn compile_checked(
    name: &str,
    wasm: &[u8],
    cache_dir: &Path,
    limits: Limits,
    deadline_ticks: u64,
    config: &[u8],
    models: &Arc<crate::model::ModelRegistry>,
) -> Result<Compiled, PluginError> {
    let mut c = compile::compile(name, wasm, cache_dir)?;
    let mut probe = Instance::new(&c, limits, deadline_ticks, config, models)?;
    c.sports = probe.sports();
    c.keep_in_cache();
    Ok(c)
}

/// Events a shard has seen, for rebuilding an instance: per game, its sport and its archived
/// events in seq order.
pub trait EventHistory {
    fn for_each(&self, f: &mut ReplayFn<'_>);
}

/// Called with each kept event: game id, sport, seq, archived bytes.
pub type ReplayFn<'a> = dyn FnMut(&str, Sport, u64, &[u8]) + 'a;

#[derive(Debug)]
struct Slot {
    info: Arc<PluginInfo>,
    compiled: Arc<Compiled>,
    generation: u64,
    instance: Option<Instance>,
    /// Events this plugin failed on: skipped when replaying (they would fail again).
    failed: HashSet<(String, u64)>,
    /// Linear memory above which a component is rebuilt between events (see `on_event`).
    recycle_above: usize,
}

/// The plugins of one shard thread: one instance each.
#[derive(Debug)]
pub struct ShardPlugins {
    set: Arc<PluginSet>,
    slots: Vec<Slot>,
}

/// The level under `game/{id}/{plugin}/` where a plugin's failures on that game's events are
/// published.
pub const FAULT_TOPIC: &str = "plugin_fault";

/// Deadline multiplier for the one retry after a deadline miss, and for replays.
const RETRY_FACTOR: u64 = 4;

/// Most failed events remembered per plugin per shard (beyond it the plugin is quarantined
/// long before).
const MAX_FAILED: usize = 10_000;

impl ShardPlugins {
    pub fn new(set: Arc<PluginSet>) -> ShardPlugins {
        let slots = set
            .plugins
            .iter()
            .map(|info| Slot {
                info: info.clone(),
                compiled: info.compiled.read().clone(),
                generation: info.generation.load(Ordering::Acquire),
                instance: None,
                failed: HashSet::new(),
                recycle_above: 0,
            })
            .collect();
        ShardPlugins { set, slots }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Picks up reloaded versions: builds the new instance, backfills it with every event the
    /// shard holds (outputs discarded), and swaps it in. Called between events, so the old
    /// version saw everything before the swap and the new one everything after.
    pub fn sync(&mut self, history: &dyn EventHistory) {
        for slot in &mut self.slots {
            let generation = slot.info.generation.load(Ordering::Acquire);
            if generation == slot.generation {
                continue;
            }
            let compiled = slot.info.compiled.read().clone();
            let started = Instant::now();
            slot.generation = generation;
            slot.compiled = compiled;
            slot.failed.clear();
            slot.instance = build(&self.set, slot, history);
            metrics::histogram!(m::PLUGIN_SWAP_SECONDS).record(started.elapsed().as_secs_f64());
        }
    }

    /// Runs every plugin of this sport on one event. `publish(plugin, emit)` is called for
    /// each output of a successful call, in order.
    pub fn on_event(
        &mut self,
        (game, sport, seq): (&str, Sport, u64),
        event: &[u8],
        history: &dyn EventHistory,
        publish: &mut dyn FnMut(&str, Emit),
        called: &mut dyn FnMut(&str, Instant, Option<&PluginError>),
    ) {
        for slot in &mut self.slots {
            if slot.compiled.sports & sport_bit(sport) == 0 || slot.info.quarantined_for(game) {
                continue;
            }
            if slot.instance.is_none() {
                slot.instance = build(&self.set, slot, history);
            }
            let Some(inst) = slot.instance.as_mut() else { continue };
            let started = Instant::now();
            let mut result = inst.call(event);
            if result == Err(PluginError::Deadline) {
                // The deadline counts this thread's CPU time (`deadline.rs`), so preemption
                // alone no longer trips it; a call near its budget still may. Retry once, on a
                // rebuilt instance (a trap leaves the guest mid-update) with RETRY_FACTOR times
                // the deadline; only a second miss is the plugin's failure.
                metrics::counter!(m::PLUGIN_DEADLINE_RETRIES_TOTAL, "plugin" => slot.info.name.to_string())
                    .increment(1);
                slot.instance = build(&self.set, slot, history);
                let ticks = slot.info.deadline_ticks * RETRY_FACTOR;
                result = match slot.instance.as_mut() {
                    Some(i) => i.call_with_deadline(event, ticks),
                    None => Err(PluginError::Deadline),
                };
            }
            metrics::histogram!(m::PLUGIN_CALL_SECONDS, "plugin" => slot.info.name.to_string())
                .record(started.elapsed().as_secs_f64());
            called(&slot.info.name, started, result.as_ref().err());
            slot.info.events.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(emits) => {
                    slot.info.emits.fetch_add(emits.len() as u64, Ordering::Relaxed);
                    for e in emits {
                        publish(&slot.info.name, e);
                    }
                    // A language runtime (TypeScript's, 330 bytes an event with
                    // componentize-js 0.23) may never give its garbage back: rebuild the
                    // instance by replay at 3/4 of its cap, between two events, rather than
                    // fail an event at the cap.
                    // A rebuilt instance starts where its replay left it: the next rebuild waits
                    // until it has used half of what is left, so rebuilds never follow each
                    // other (at the cap, it is a `memory` failure as for any plugin).
                    let cap = slot.info.limits.memory_bytes;
                    let threshold = slot.recycle_above.max(cap / 4 * 3);
                    if slot
                        .instance
                        .as_ref()
                        .is_some_and(|i| i.is_component() && i.memory_bytes() > threshold)
                    {
                        metrics::counter!(m::PLUGIN_RECYCLED_TOTAL, "plugin" => slot.info.name.to_string())
                            .increment(1);
                        slot.instance = build(&self.set, slot, history);
                        let now = slot.instance.as_ref().map_or(0, Instance::memory_bytes);
                        slot.recycle_above = now + cap.saturating_sub(now) / 2;
                    }
                }
                Err(e) => {
                    let q = self.set.record_failure(&slot.info, Some(game), &e);
                    // Subscribers of the game hear of it on `game/{id}/{plugin}/plugin_fault`.
                    let fault = serde_json::json!({
                        "plugin": &*slot.info.name,
                        "seq": seq,
                        "kind": e.kind(),
                        "message": e.to_string(),
                        "quarantined": match q {
                            Quarantine::No => serde_json::Value::Null,
                            Quarantine::Game => "game".into(),
                            Quarantine::Everywhere => "everywhere".into(),
                        },
                    });
                    let payload = fault.to_string().into_bytes();
                    publish(&slot.info.name, Emit { name: FAULT_TOPIC.into(), payload });
                    if slot.failed.len() < MAX_FAILED {
                        slot.failed.insert((game.to_string(), seq));
                    }
                    // Drop the broken instance and rebuild now (unless quarantined), so the
                    // next event does not pay for it.
                    slot.instance = None;
                    if !slot.info.quarantined.load(Ordering::Relaxed) {
                        slot.instance = build(&self.set, slot, history);
                    }
                }
            }
        }
    }

    /// Bytes of linear memory of this shard's plugin instances (each at most
    /// `plugins.memory_mib`).
    pub fn memory_bytes(&self) -> usize {
        self.slots.iter().filter_map(|s| s.instance.as_ref()).map(Instance::memory_bytes).sum()
    }

    /// A game left memory: plugins drop its state.
    pub fn forget(&mut self, game: &str) {
        for slot in &mut self.slots {
            // A quarantine for a game that is gone lapses with it.
            slot.info.enable_game(game);
            if let Some(i) = slot.instance.as_mut() {
                i.forget(game);
            }
        }
    }
}

/// A fresh instance of the slot's plugin with its state rebuilt by replaying `history`.
fn build(set: &PluginSet, slot: &mut Slot, history: &dyn EventHistory) -> Option<Instance> {
    let mut inst = match Instance::new(
        &slot.compiled,
        slot.info.limits,
        slot.info.deadline_ticks,
        &slot.info.config_json,
        &set.models,
    ) {
        Ok(i) => i,
        Err(e) => {
            set.record_failure(&slot.info, None, &e);
            return None;
        }
    };
    let mask = slot.compiled.sports;
    let mut failure = None;
    history.for_each(&mut |game, sport, seq, bytes| {
        if failure.is_some()
            || mask & sport_bit(sport) == 0
            || slot.failed.contains(&(game.to_string(), seq))
            || slot.info.quarantined_for(game)
        {
            return;
        }
        if let Err(e) = inst.call_with_deadline(bytes, slot.info.deadline_ticks * RETRY_FACTOR) {
            failure = Some((game.to_string(), seq, e));
        }
    });
    match failure {
        None => Some(inst),
        Some((game, seq, e)) => {
            // Replay is deterministic, so this event would fail again: remember and retry later.
            set.record_failure(&slot.info, Some(&game), &e);
            slot.failed.insert((game, seq));
            None
        }
    }
}
