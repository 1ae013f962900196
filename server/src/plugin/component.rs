//! ABI v2: WebAssembly components of the world `opensports:plugin/plugin@2.0.0`
//! (`plugin-sdk/wit/plugin.wit`), written in Rust (wit-bindgen), TypeScript (componentize-js)
//! or Python (componentize-py). The same contract and limits as v1 (core modules):
//! emits, inference and logs go through the same [`HostState`] rules, the memory cap covers
//! every memory of the component, and the deadline is the same epoch-and-CPU-time check.
//!
//! Components built by the TypeScript and Python toolchains import WASI 0.2 for their
//! language runtime. The host gives them a sandbox with nothing in it: no files, no sockets,
//! no environment, no arguments, output to nowhere, a clock stopped at the epoch and a random
//! stream with a fixed seed, so a plugin stays deterministic (a replay emits the same bytes)
//! and cannot reach anything.

use std::sync::Arc;

use opensports_proto::plugin_abi::{Status, level};
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::model::ModelRegistry;

use super::PluginError;
use super::engine::engine;
use super::host::{Emit, HostState, Limits, arm, classify, describe, init_ticks};

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit/plugin.wit",
    world: "plugin",
});

use opensports::plugin::host as wit_host;

/// The store's data for a component: the v1 host state plus an empty WASI sandbox.
pub struct V2State {
    pub host: HostState,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl std::fmt::Debug for V2State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2State").field("host", &self.host).finish_non_exhaustive()
    }
}

impl WasiView for V2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit_host::Host for V2State {
    fn emit(&mut self, topic: String, payload: String) -> Result<(), i32> {
        match self.host.accept_emit(topic, payload.into_bytes()) {
            Status::Ok => Ok(()),
            s => Err(s.code()),
        }
    }

    fn infer(&mut self, model: String, inputs: Vec<f32>) -> Result<Vec<f32>, i32> {
        self.host.infer(&model, &inputs, 4096).map_err(Status::code)
    }

    fn log(&mut self, lvl: wit_host::Level, message: String) {
        if self.host.may_log() {
            let l = match lvl {
                wit_host::Level::Error => level::ERROR,
                wit_host::Level::Warn => level::WARN,
                wit_host::Level::Info => level::INFO,
                wit_host::Level::Debug => level::DEBUG,
            };
            self.host.write_log(l, &message);
        }
    }
}

/// A wall clock stopped at the Unix epoch and a monotonic clock stopped at 0: a plugin's
/// outputs may not depend on when it runs.
struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

fn sandbox() -> WasiCtx {
    use rand_wasi::SeedableRng;
    let sink = wasmtime_wasi::p2::pipe::SinkOutputStream;
    WasiCtx::builder()
        .stdout(sink)
        .stderr(sink)
        .wall_clock(StoppedClock)
        .monotonic_clock(StoppedClock)
        .secure_random(rand_wasi::rngs::StdRng::seed_from_u64(0))
        .insecure_random(rand_wasi::rngs::StdRng::seed_from_u64(1))
        .insecure_random_seed(0)
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .build()
}

/// Whether `wasm` is a component (layer 1) rather than a core module.
pub fn is_component(wasm: &[u8]) -> bool {
    wasm.starts_with(b"\0asm") && wasm.get(6..8) == Some(&[1, 0])
}

/// Links a compiled component: the host interface and the WASI sandbox. An import outside
/// them (an HTTP client, say) refuses the plugin here.
pub fn link(component: &Component) -> Result<PluginPre<V2State>, PluginError> {
    let err = |e: wasmtime::Error| PluginError::Compile(format!("{e:#}"));
    let mut l = Linker::<V2State>::new(engine());
    Plugin::add_to_linker::<V2State, HasSelf<V2State>>(&mut l, |s| s).map_err(err)?;
    wasmtime_wasi::p2::add_to_linker_sync(&mut l).map_err(err)?;
    let pre = l.instantiate_pre(component).map_err(err)?;
    PluginPre::new(pre).map_err(|e| {
        PluginError::Compile(format!(
            "{e:#} (ABI v2 needs the world `opensports:plugin/plugin@2.0.0`, see plugin-sdk/README.md)"
        ))
    })
}

/// One live instance of a v2 plugin.
pub struct ComponentInstance {
    store: Store<V2State>,
    plugin: Plugin,
    deadline_ticks: u64,
}

impl std::fmt::Debug for ComponentInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentInstance")
            .field("plugin", &self.store.data().host.plugin)
            .finish_non_exhaustive()
    }
}

impl ComponentInstance {
    pub fn new(
        pre: &PluginPre<V2State>,
        name: Arc<str>,
        limits: Limits,
        deadline_ticks: u64,
        config: &[u8],
        models: &Arc<ModelRegistry>,
    ) -> Result<ComponentInstance, PluginError> {
        let state = V2State {
            host: HostState::new(name, limits, models.clone()),
            wasi: sandbox(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(engine(), state);
        store.limiter(|s| &mut s.host);
        store.epoch_deadline_callback(|ctx| Ok(ctx.data().host.clock.on_deadline()));
        arm(&mut store, |s| &mut s.host, init_ticks(deadline_ticks));
        let plugin = pre.instantiate(&mut store).map_err(|e| classify(e, &store.data().host))?;
        let config = String::from_utf8_lossy(config).into_owned();
        match plugin.call_init(&mut store, &config) {
            Ok(Ok(())) => {}
            Ok(Err(s)) => return Err(PluginError::BadOutput(format!("init returned {}", describe(s)))),
            Err(e) => return Err(classify(e, &store.data().host)),
        }
        Ok(ComponentInstance { store, plugin, deadline_ticks })
    }

    pub fn sports(&mut self) -> u32 {
        const ALL: u32 = opensports_proto::plugin_abi::ALL_SPORTS as u32;
        arm(&mut self.store, |s| &mut s.host, self.deadline_ticks);
        match self.plugin.call_sports(&mut self.store) {
            Ok(mask) if mask & ALL != 0 => mask & ALL,
            _ => ALL,
        }
    }

    /// Runs `on-event` on one event given as rkyv bytes (turned into its JSON form here).
    pub fn call_with_deadline(&mut self, event: &[u8], ticks: u64) -> Result<Vec<Emit>, PluginError> {
        let json = event_json(event)?;
        self.store.data_mut().host.reset();
        arm(&mut self.store, |s| &mut s.host, ticks);
        let result = self.plugin.call_on_event(&mut self.store, &json);
        let st = &mut self.store.data_mut().host;
        let status = match result {
            Ok(s) => s,
            Err(e) => return Err(classify(e, st)),
        };
        if let Some(why) = st.bad_output.take() {
            return Err(PluginError::BadOutput(why));
        }
        if let Err(s) = status {
            // The kits answer an uncaught exception with an error (after logging its trace):
            // the plugin's failure, as a panic is in Rust.
            return Err(PluginError::Trap(format!(
                "on-event failed with error {s}: an uncaught exception in the plugin (the server log has its trace)"
            )));
        }
        Ok(std::mem::take(&mut st.emits))
    }

    pub fn call(&mut self, event: &[u8]) -> Result<Vec<Emit>, PluginError> {
        self.call_with_deadline(event, self.deadline_ticks)
    }

    pub fn memory_bytes(&self) -> usize {
        self.store.data().host.memory
    }

    pub fn snapshot(&mut self, game: &str) -> Result<Option<Vec<u8>>, PluginError> {
        self.store.data_mut().host.reset();
        arm(&mut self.store, |s| &mut s.host, self.deadline_ticks * 4);
        match self.plugin.call_snapshot(&mut self.store, game) {
            Ok(b) if b.is_empty() => Ok(None),
            Ok(b) => Ok(Some(b)),
            Err(e) => Err(classify(e, &self.store.data().host)),
        }
    }

    pub fn restore(&mut self, game: &str, state: &[u8]) -> Result<(), PluginError> {
        self.store.data_mut().host.reset();
        arm(&mut self.store, |s| &mut s.host, self.deadline_ticks * 4);
        match self.plugin.call_restore(&mut self.store, game, state) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(s)) => Err(PluginError::BadOutput(format!("restore returned {}", describe(s)))),
            Err(e) => Err(classify(e, &self.store.data().host)),
        }
    }

    pub fn forget(&mut self, game: &str) {
        arm(&mut self.store, |s| &mut s.host, self.deadline_ticks);
        let _ = self.plugin.call_forget(&mut self.store, game);
    }
}

/// The JSON form of an archived event (what WebSocket subscribers see).
fn event_json(archived: &[u8]) -> Result<String, PluginError> {
    let bytes = opensports_proto::codec::aligned(archived);
    let event = rkyv::from_bytes::<opensports_proto::Event, rkyv::rancor::Error>(&bytes)
        .map_err(|e| PluginError::BadOutput(format!("event bytes: {e}")))?;
    serde_json::to_string(&event).map_err(|e| PluginError::BadOutput(format!("event JSON: {e}")))
}
