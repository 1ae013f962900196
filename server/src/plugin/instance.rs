//! One live instance of a plugin (one per plugin per shard thread) and its typed calls: a v1
//! core module here, a v2 component in [`super::component`], one [`Instance`] for both.

use std::sync::Arc;

use opensports_proto::plugin_abi::{self as abi, ABI_VERSION, Status, export};
use wasmtime::{InstancePre, Memory, Store, TypedFunc};

use crate::model::ModelRegistry;

use super::PluginError;
use super::compile::{Code, Compiled};
use super::component::ComponentInstance;
use super::engine::engine;
use super::host::{Emit, HostState, Limits, arm, classify, describe, init_ticks};

/// A guest export taking the buffer `(ptr, len)`.
type BufFn<R> = TypedFunc<(i32, i32), R>;

/// A v1 instance: a core module.
pub struct ModuleInstance {
    instance: wasmtime::Instance,
    store: Store<HostState>,
    memory: Memory,
    buffer: TypedFunc<i32, i32>,
    on_event: TypedFunc<(i32, i32), i32>,
    forget: Option<TypedFunc<(i32, i32), i32>>,
    /// `snapshot` and `restore`, when the plugin exports both.
    snapshots: Option<(BufFn<i64>, BufFn<i32>)>,
    deadline_ticks: u64,
}

impl std::fmt::Debug for ModuleInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleInstance").field("plugin", &self.store.data().plugin).finish_non_exhaustive()
    }
}

impl ModuleInstance {
    /// Instantiates from the cached `InstancePre`, checks the ABI version and runs `init` with
    /// the plugin's config (JSON).
    fn new(
        pre: &InstancePre<HostState>,
        name: Arc<str>,
        limits: Limits,
        deadline_ticks: u64,
        config: &[u8],
        models: &Arc<ModelRegistry>,
    ) -> Result<ModuleInstance, PluginError> {
        let mut store = Store::new(engine(), HostState::new(name, limits, models.clone()));
        store.limiter(|s| s);
        store.epoch_deadline_callback(|ctx| Ok(ctx.data().clock.on_deadline()));
        // Instantiation and init get a more generous deadline than an event.
        arm(&mut store, |s| s, init_ticks(deadline_ticks));
        let inst = match pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(classify(e, store.data())),
        };
        let bad = |what: &str| PluginError::Compile(format!("export `{what}` missing or of the wrong type"));
        let memory = inst.get_memory(&mut store, export::MEMORY).ok_or_else(|| bad(export::MEMORY))?;
        let version = inst
            .get_typed_func::<(), i32>(&mut store, export::ABI_VERSION)
            .map_err(|_| bad(export::ABI_VERSION))?;
        let buffer =
            inst.get_typed_func::<i32, i32>(&mut store, export::BUFFER).map_err(|_| bad(export::BUFFER))?;
        let on_event = inst
            .get_typed_func::<(i32, i32), i32>(&mut store, export::ON_EVENT)
            .map_err(|_| bad(export::ON_EVENT))?;
        let forget = inst.get_typed_func::<(i32, i32), i32>(&mut store, export::FORGET).ok();
        let init = inst.get_typed_func::<(i32, i32), i32>(&mut store, export::INIT).ok();
        let snapshots = inst
            .get_typed_func::<(i32, i32), i64>(&mut store, export::SNAPSHOT)
            .ok()
            .zip(inst.get_typed_func::<(i32, i32), i32>(&mut store, export::RESTORE).ok());
        match version.call(&mut store, ()) {
            Ok(ABI_VERSION) => {}
            Ok(v) => {
                return Err(PluginError::Compile(format!(
                    "ABI version {v}, this server speaks {ABI_VERSION}"
                )));
            }
            Err(e) => return Err(classify(e, store.data())),
        }
        let mut me = ModuleInstance {
            instance: inst,
            store,
            memory,
            buffer,
            on_event,
            forget,
            snapshots,
            deadline_ticks,
        };
        if let Some(init) = init {
            let (ptr, len) = me.write(config)?;
            match init.call(&mut me.store, (ptr, len)) {
                Ok(s) if s == Status::Ok.code() => {}
                Ok(s) => return Err(PluginError::BadOutput(format!("init returned {}", describe(s)))),
                Err(e) => return Err(classify(e, me.store.data())),
            }
        }
        Ok(me)
    }

    /// The sports this plugin asked for (`os_sports` bit mask), or all.
    pub fn sports(&mut self) -> u32 {
        const ALL: u32 = abi::ALL_SPORTS as u32;
        let Ok(f) = self.instance.get_typed_func::<(), i32>(&mut self.store, export::SPORTS) else {
            return ALL;
        };
        match f.call(&mut self.store, ()) {
            Ok(mask) if mask > 0 => mask as u32 & ALL,
            _ => ALL,
        }
    }

    /// Copies `bytes` into the guest's aligned buffer.
    fn write(&mut self, bytes: &[u8]) -> Result<(i32, i32), PluginError> {
        let len = i32::try_from(bytes.len()).map_err(|_| PluginError::BadOutput("input too large".into()))?;
        let ptr = match self.buffer.call(&mut self.store, len) {
            Ok(p) => p,
            Err(e) => return Err(classify(e, self.store.data())),
        };
        if ptr % 16 != 0 {
            return Err(PluginError::BadOutput(format!("os_buffer returned unaligned pointer {ptr}")));
        }
        let offset =
            usize::try_from(ptr).map_err(|_| PluginError::BadOutput("negative buffer pointer".into()))?;
        self.memory
            .write(&mut self.store, offset, bytes)
            .map_err(|_| PluginError::BadOutput("os_buffer returned a buffer outside memory".into()))?;
        Ok((ptr, len))
    }

    /// Runs `on_event` on one archived event; returns its emits, or the typed failure.
    pub fn call(&mut self, event: &[u8]) -> Result<Vec<Emit>, PluginError> {
        self.call_with_deadline(event, self.deadline_ticks)
    }

    /// [`Instance::call`] with a deadline of `ticks` epoch ticks instead of the configured one.
    pub fn call_with_deadline(&mut self, event: &[u8], ticks: u64) -> Result<Vec<Emit>, PluginError> {
        self.store.data_mut().reset();
        arm(&mut self.store, |s| s, ticks);
        let (ptr, len) = self.write(event)?;
        let status = match self.on_event.call(&mut self.store, (ptr, len)) {
            Ok(s) => s,
            Err(e) => return Err(classify(e, self.store.data())),
        };
        let st = self.store.data_mut();
        if let Some(why) = st.bad_output.take() {
            return Err(PluginError::BadOutput(why));
        }
        if status != Status::Ok.code() {
            return Err(PluginError::BadOutput(format!("on_event returned {}", describe(status))));
        }
        Ok(std::mem::take(&mut st.emits))
    }

    /// Bytes of the guest's linear memory (it grows, never shrinks; capped by
    /// `plugins.memory_mib`).
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// The plugin's state for `game` (its `snapshot` export), to be handed back to
    /// [`Instance::restore`]. `Ok(None)`: the plugin keeps no snapshots (no such exports, or
    /// empty bytes), so the game must be rebuilt by replay.
    pub fn snapshot(&mut self, game: &str) -> Result<Option<Vec<u8>>, PluginError> {
        let Some((snapshot, _)) = self.snapshots.clone() else { return Ok(None) };
        self.store.data_mut().reset();
        arm(&mut self.store, |s| s, self.deadline_ticks * 4);
        let (ptr, len) = self.write(game.as_bytes())?;
        let packed = match snapshot.call(&mut self.store, (ptr, len)) {
            Ok(p) => p as u64,
            Err(e) => return Err(classify(e, self.store.data())),
        };
        let (at, n) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        if n == 0 {
            return Ok(None);
        }
        let mut bytes = vec![0; n];
        self.memory
            .read(&self.store, at, &mut bytes)
            .map_err(|_| PluginError::BadOutput("snapshot returned bytes outside memory".into()))?;
        Ok(Some(bytes))
    }

    /// Sets the plugin's state for `game` from [`Instance::snapshot`] bytes.
    pub fn restore(&mut self, game: &str, state: &[u8]) -> Result<(), PluginError> {
        let Some((_, restore)) = self.snapshots.clone() else {
            return Err(PluginError::BadOutput("no restore export".into()));
        };
        let id_len =
            u32::try_from(game.len()).map_err(|_| PluginError::BadOutput("game id too long".into()))?;
        let mut input = Vec::with_capacity(4 + game.len() + state.len());
        input.extend_from_slice(&id_len.to_le_bytes());
        input.extend_from_slice(game.as_bytes());
        input.extend_from_slice(state);
        self.store.data_mut().reset();
        arm(&mut self.store, |s| s, self.deadline_ticks * 4);
        let (ptr, len) = self.write(&input)?;
        match restore.call(&mut self.store, (ptr, len)) {
            Ok(s) if s == Status::Ok.code() => Ok(()),
            Ok(s) => Err(PluginError::BadOutput(format!("restore returned {}", describe(s)))),
            Err(e) => Err(classify(e, self.store.data())),
        }
    }

    /// Tells the plugin a game left memory.
    pub fn forget(&mut self, game: &str) {
        let Some(f) = self.forget.clone() else { return };
        if let Ok((ptr, len)) = self.write(game.as_bytes()) {
            arm(&mut self.store, |s| s, self.deadline_ticks);
            let _ = f.call(&mut self.store, (ptr, len));
        }
    }
}

/// A live plugin instance of either ABI.
#[derive(Debug)]
pub enum Instance {
    Module(Box<ModuleInstance>),
    Component(Box<ComponentInstance>),
}

impl Instance {
    /// Instantiates a compiled plugin and runs its `init` with the plugin's config (JSON).
    pub fn new(
        c: &Compiled,
        limits: Limits,
        deadline_ticks: u64,
        config: &[u8],
        models: &Arc<ModelRegistry>,
    ) -> Result<Instance, PluginError> {
        Ok(match &c.code {
            Code::Module(pre) => Instance::Module(Box::new(ModuleInstance::new(
                pre,
                c.name.clone(),
                limits,
                deadline_ticks,
                config,
                models,
            )?)),
            Code::Component(pre) => Instance::Component(Box::new(ComponentInstance::new(
                pre,
                c.name.clone(),
                limits,
                deadline_ticks,
                config,
                models,
            )?)),
        })
    }

    /// The sports this plugin asked for (bit mask), or all.
    pub fn sports(&mut self) -> u32 {
        match self {
            Instance::Module(i) => i.sports(),
            Instance::Component(i) => i.sports(),
        }
    }

    /// Runs the plugin on one archived event; returns its emits, or the typed failure.
    pub fn call(&mut self, event: &[u8]) -> Result<Vec<Emit>, PluginError> {
        match self {
            Instance::Module(i) => i.call(event),
            Instance::Component(i) => i.call(event),
        }
    }

    /// [`Instance::call`] with a deadline of `ticks` epoch ticks instead of the configured one.
    pub fn call_with_deadline(&mut self, event: &[u8], ticks: u64) -> Result<Vec<Emit>, PluginError> {
        match self {
            Instance::Module(i) => i.call_with_deadline(event, ticks),
            Instance::Component(i) => i.call_with_deadline(event, ticks),
        }
    }

    /// Whether this is an ABI v2 component.
    pub fn is_component(&self) -> bool {
        matches!(self, Instance::Component(_))
    }

    /// Bytes of the instance's linear memory (every memory of a component).
    pub fn memory_bytes(&self) -> usize {
        match self {
            Instance::Module(i) => i.memory_bytes(),
            Instance::Component(i) => i.memory_bytes(),
        }
    }

    /// The plugin's state for `game`; `Ok(None)`: it keeps no snapshots.
    pub fn snapshot(&mut self, game: &str) -> Result<Option<Vec<u8>>, PluginError> {
        match self {
            Instance::Module(i) => i.snapshot(game),
            Instance::Component(i) => i.snapshot(game),
        }
    }

    /// Sets the plugin's state for `game` from [`Instance::snapshot`] bytes.
    pub fn restore(&mut self, game: &str, state: &[u8]) -> Result<(), PluginError> {
        match self {
            Instance::Module(i) => i.restore(game, state),
            Instance::Component(i) => i.restore(game, state),
        }
    }

    /// Tells the plugin a game left memory.
    pub fn forget(&mut self, game: &str) {
        match self {
            Instance::Module(i) => i.forget(game),
            Instance::Component(i) => i.forget(game),
        }
    }
}
