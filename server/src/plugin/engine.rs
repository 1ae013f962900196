//! The process-wide wasmtime engine and its epoch ticker.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine, PoolingAllocationConfig};

/// Epoch tick: the deadline is counted in these. 250 µs keeps the 1 ms default deadline within
/// 25% and costs ~4,000 wakeups a second on one thread.
pub const TICK: Duration = Duration::from_micros(250);

/// Largest linear memory the pooling allocator reserves per instance; the configured cap
/// (`plugins.memory_mib`, default 16) is enforced below it by the store's limiter.
const MAX_MEMORY: usize = 256 << 20;

static ENGINE: OnceLock<Engine> = OnceLock::new();

/// The one engine of the process (created on first use, with its epoch ticker thread).
pub fn engine() -> &'static Engine {
    ENGINE.get_or_init(|| {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(512).total_memories(512).total_tables(512);
        pool.max_memory_size(MAX_MEMORY);
        let mut cfg = Config::new();
        cfg.epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .memory_reservation(MAX_MEMORY as u64)
            .memory_guard_size(64 << 10)
            .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = match Engine::new(&cfg) {
            Ok(e) => e,
            Err(e) => {
                // The pooling allocator can fail where virtual memory is tight: fall back to
                // on-demand allocation rather than running without plugins.
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::OnDemand);
                Engine::new(&cfg).unwrap_or_else(|_| Engine::default())
            }
        };
        let weak = engine.weak();
        let spawned = std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || {
            while let Some(e) = weak.upgrade() {
                e.increment_epoch();
                drop(e);
                std::thread::sleep(TICK);
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the epoch ticker: plugin deadlines will not fire");
        }
        engine
    })
}
