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
#[derive(Debug)]
pub struct Harness {
    name: String,
    instance: Instance,
    sports: u32,
}

impl Harness {
    /// Compiles `wasm` (cache in `cache_dir`) with the default limits and `config` JSON.
    pub fn new(
        name: &str,
        wasm: &[u8],
        config: &[u8],
        cache_dir: &Path,
        models: &std::sync::Arc<crate::model::ModelRegistry>,
    ) -> Result<Harness, PluginError> {
        let cfg = PluginsConfig::default();
        let limits = Limits {
            memory_bytes: cfg.memory_mib << 20,
            max_emits: cfg.max_emits_per_event,
            max_emit_bytes: cfg.max_emit_bytes,
            max_logs: 16,
        };
        // Offline there is no latency budget to protect: 1 s per event catches only hangs.
        let ticks = (1_000_000 / engine::TICK.as_micros()) as u64;
        let mut compiled = engine::compile(name, wasm, cache_dir)?;
        let mut instance = Instance::new(&compiled, limits, ticks, config, models)?;
        compiled.keep_in_cache();
        let sports = instance.sports();
        Ok(Harness { name: name.into(), instance, sports })
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
                let topic = opensports_proto::topic::plugin_output(&e.game, &self.name, &em.name);
                out.push(OutputLine { game: e.game.clone(), seq: e.seq, topic, data });
            }
        }
        Ok(out)
    }
}
