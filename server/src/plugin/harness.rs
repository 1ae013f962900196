//! Running a plugin offline, outside the server: the engine of `opensports plugin test` and of
//! the determinism tests. Same instance code, same limits, no shards, no network.

use std::collections::HashMap;
use std::path::Path;

use opensports_proto::Event;
use serde::Serialize;

use super::host::Limits;
use super::instance::Instance;
use super::{PluginError, engine};
use crate::config::PluginsConfig;

/// One output line: what the server would publish, as `plugin test` prints it (JSONL).
#[derive(Debug, Clone, Serialize)]
pub struct OutputLine {
    pub game: String,
    pub seq: u64,
    pub topic: String,
    /// The emitted JSON, byte for byte.
    pub data: Box<serde_json::value::RawValue>,
}

impl OutputLine {
    pub fn to_jsonl(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A plugin loaded for offline runs.
pub struct Harness {
    name: String,
    instance: Instance,
    sports: u32,
    /// What a fresh instance is made from (the snapshot check).
    compiled: super::compile::Compiled,
    limits: Limits,
    ticks: u64,
    config: Vec<u8>,
    models: std::sync::Arc<crate::model::ModelRegistry>,
    /// Publishes the plugin's triggers as the server does (no rules of its own).
    triggers: crate::triggers::Triggers,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("name", &self.name).finish_non_exhaustive()
    }
}

/// What [`Harness::check_snapshots`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotCheck {
    /// The plugin has no `snapshot`/`restore` (or gave empty state): the server replays its
    /// games whole on restart.
    Unsupported,
    /// Restored after event `at` of `of`, the outputs of the rest were identical.
    Identical { at: usize, of: usize },
}

impl Harness {
    /// Compiles `wasm` (cache in `cache_dir`) with the default limits (the memory cap:
    /// `memory_mib`, default the server's) and `config` JSON.
    pub fn new(
        name: &str,
        wasm: &[u8],
        config: &[u8],
        cache_dir: &Path,
        models: &std::sync::Arc<crate::model::ModelRegistry>,
        memory_mib: Option<usize>,
    ) -> Result<Harness, PluginError> {
        let cfg = PluginsConfig::default();
        let limits = Limits {
            memory_bytes: memory_mib.unwrap_or(cfg.memory_mib) << 20,
            max_emits: cfg.max_emits_per_event,
            max_emit_bytes: cfg.max_emit_bytes,
            max_logs: 16,
        };
        // Offline there is no latency budget to protect: 1 s per event catches only hangs.
        let ticks = (1_000_000 / engine::TICK.as_micros()) as u64;
        let mut compiled = super::compile::compile(name, wasm, cache_dir)?;
        let mut instance = Instance::new(&compiled, limits, ticks, config, models)?;
        compiled.keep_in_cache();
        let sports = instance.sports();
        Ok(Harness {
            name: name.into(),
            instance,
            sports,
            compiled,
            limits,
            ticks,
            config: config.to_vec(),
            models: models.clone(),
            triggers: crate::triggers::Triggers::new(&[], false).map_err(PluginError::BadOutput)?,
        })
    }

    /// Bytes of linear memory of the running instance (every memory of a component).
    pub fn memory_bytes(&self) -> usize {
        self.instance.memory_bytes()
    }

    /// What a restart does to this plugin, offline: the events are run by a fresh instance up
    /// to the middle, each game's state is snapshotted and restored into another fresh
    /// instance (as the server does from its log), which runs the rest; its outputs must be
    /// those of an uninterrupted run, line for line. `Err` names the first difference.
    pub fn check_snapshots(&mut self, events: &[Event]) -> Result<SnapshotCheck, String> {
        let fresh = |h: &Harness| {
            Instance::new(&h.compiled, h.limits, h.ticks, &h.config, &h.models).map_err(|e| e.to_string())
        };
        let next = fresh(self)?;
        let whole = std::mem::replace(&mut self.instance, next);
        let all = self.run(events).map_err(|(seq, e)| format!("event seq {seq}: {e}"))?;
        let at = events.len() / 2;
        self.instance = fresh(self)?;
        let first = self.run(&events[..at]).map_err(|(seq, e)| format!("event seq {seq}: {e}"))?;
        let mut games: Vec<&str> = events[..at].iter().map(|e| e.game.as_str()).collect();
        games.sort_unstable();
        games.dedup();
        let mut restored = fresh(self)?;
        for game in games {
            let Some(state) = self.instance.snapshot(game).map_err(|e| format!("snapshot: {e}"))? else {
                self.instance = whole;
                return Ok(SnapshotCheck::Unsupported);
            };
            restored.restore(game, &state).map_err(|e| format!("restore of {game}: {e}"))?;
        }
        self.instance = restored;
        let rest =
            self.run(&events[at..]).map_err(|(seq, e)| format!("after the restore, event seq {seq}: {e}"))?;
        self.instance = whole;
        let want = &all[first.len()..];
        if let Some(i) = (0..want.len().max(rest.len()))
            .find(|&i| want.get(i).map(OutputLine::to_jsonl) != rest.get(i).map(OutputLine::to_jsonl))
        {
            let line = |l: Option<&OutputLine>| l.map_or_else(|| "<none>".to_string(), OutputLine::to_jsonl);
            return Err(format!(
                "restored after event {at} of {}, output {} differs:\n  uninterrupted: {}\n  restored:      {}",
                events.len(),
                first.len() + i + 1,
                line(want.get(i)),
                line(rest.get(i))
            ));
        }
        Ok(SnapshotCheck::Identical { at, of: events.len() })
    }

    /// Calls the plugin on one already archived event; returns the number of outputs. For
    /// benchmarks: no seq or sport filtering.
    pub fn call_bytes(&mut self, event: &[u8]) -> Result<usize, PluginError> {
        self.instance.call(event).map(|emits| emits.len())
    }

    /// Feeds events in order; returns every output, or the first failure with its event.
    pub fn run(&mut self, events: &[Event]) -> Result<Vec<OutputLine>, (u64, PluginError)> {
        let mut out = Vec::new();
        let mut last_seq: HashMap<&str, u64> = HashMap::new();
        for e in events {
            if self.sports & super::sport_bit(e.sport()) == 0
                || last_seq.get(e.game.as_str()).is_some_and(|s| e.seq <= *s)
            {
                continue;
            }
            last_seq.insert(&e.game, e.seq);
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(e)
                .map_err(|x| (e.seq, PluginError::BadOutput(x.to_string())))?;
            let emits = self.instance.call(&bytes).map_err(|x| (e.seq, x))?;
            for em in emits {
                let data = String::from_utf8(em.payload)
                    .ok()
                    .and_then(|s| serde_json::value::RawValue::from_string(s).ok())
                    .ok_or((e.seq, PluginError::BadOutput("output is not JSON".into())))?;
                let (topic, data) = match em.name.strip_prefix(opensports_proto::plugin_abi::TRIGGER_PREFIX) {
                    // A trigger: as the server publishes it (rule set version 1).
                    Some(name) => {
                        let fired = self.triggers.plugin_firing(
                            (&self.name, name),
                            &e.game,
                            (e.seq, e.ts),
                            data.get().as_bytes(),
                        );
                        let Some(fired) = fired.and_then(|f| String::from_utf8(f).ok()) else { continue };
                        let data = serde_json::value::RawValue::from_string(fired)
                            .map_err(|x| (e.seq, PluginError::BadOutput(x.to_string())))?;
                        (format!("{}triggers", opensports_proto::topic::game_prefix(&e.game)), data)
                    }
                    None => (opensports_proto::topic::plugin_output(&e.game, &self.name, &em.name), data),
                };
                out.push(OutputLine { game: e.game.clone(), seq: e.seq, topic, data });
            }
        }
        Ok(out)
    }
}
