//! Host side of ABI v1: the store's state and the imports `emit`, `infer`, `log`.

use std::sync::Arc;

use opensports_proto::plugin_abi::{Status, export, level};
use wasmtime::{Caller, Extern, ResourceLimiter};

use super::PluginError;

/// Per-event limits, from `[plugins]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub max_emits: usize,
    pub max_emit_bytes: usize,
    /// Log lines per event beyond which `log` is silently dropped.
    pub max_logs: u32,
}

/// One emitted output: the topic suffix and the JSON payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emit {
    pub name: String,
    pub payload: Vec<u8>,
}

/// Everything a plugin call touches on the host side.
#[derive(Debug)]
pub struct HostState {
    pub plugin: Arc<str>,
    pub models: Arc<crate::model::ModelRegistry>,
    pub limits: Limits,
    pub emits: Vec<Emit>,
    /// Set when an emit broke a rule: the event fails with `BadOutput`.
    pub bad_output: Option<String>,
    /// Set when the limiter refused a memory growth: a trap after it is a `Memory` failure.
    pub memory_denied: bool,
    /// Bytes of linear memory of every memory of the instance (a component has several); the
    /// cap applies to the sum.
    pub memory: usize,
    pub logs: u32,
    /// The running call's clock, for the deadline callback.
    pub clock: super::deadline::CallClock,
}

impl HostState {
    pub fn new(plugin: Arc<str>, limits: Limits, models: Arc<crate::model::ModelRegistry>) -> HostState {
        HostState {
            plugin,
            models,
            limits,
            emits: Vec::new(),
            bad_output: None,
            memory_denied: false,
            memory: 0,
            logs: 0,
            clock: super::deadline::CallClock::start(std::time::Duration::ZERO),
        }
    }

    pub fn reset(&mut self) {
        self.emits.clear();
        self.bad_output = None;
        self.logs = 0;
    }

    /// Records why the event fails (the first reason wins) and returns the status for the guest.
    pub fn refuse(&mut self, status: Status, why: String) -> i32 {
        if self.bad_output.is_none() {
            self.bad_output = Some(why);
        }
        status.code()
    }

    /// The rules every emit obeys, whatever the ABI: at most `max_emits` per event, at most
    /// `max_emit_bytes`, a valid topic, a JSON payload. A refused emit fails the event.
    pub fn accept_emit(&mut self, name: String, payload: Vec<u8>) -> Status {
        let limits = self.limits;
        let refused = if self.emits.len() >= limits.max_emits {
            Some((Status::TooManyEmits, format!("more than {} emits in one event", limits.max_emits)))
        } else if payload.len() > limits.max_emit_bytes {
            let n = payload.len();
            Some((Status::TooLarge, format!("emit of {n} bytes (limit {})", limits.max_emit_bytes)))
        } else if let Err(e) = opensports_proto::topic::validate_topic(&name) {
            Some((Status::BadTopic, format!("emit topic {name:?}: {e}")))
        } else if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
            Some((Status::BadJson, format!("emit on {name:?} is not valid JSON")))
        } else {
            None
        };
        if let Some((status, why)) = refused {
            self.refuse(status, why);
            return status;
        }
        self.emits.push(Emit { name, payload });
        Status::Ok
    }

    /// Runs model `model` on `inputs`, returning at most `cap` (≤ 4096) outputs.
    pub fn infer(&self, model: &str, inputs: &[f32], cap: usize) -> Result<Vec<f32>, Status> {
        let mut out = vec![0f32; cap.min(4096)];
        let n = self.models.infer(model, inputs, &mut out).map_err(infer_status)?;
        out.truncate(n);
        Ok(out)
    }

    /// Counts a log line; false once the event used its `max_logs`.
    pub fn may_log(&mut self) -> bool {
        self.logs += 1;
        self.logs <= self.limits.max_logs
    }

    /// Writes a guest's log line (cut at 4 KiB) at `level`.
    pub fn write_log(&self, level: i32, msg: &str) {
        let msg = &msg[..msg.floor_char_boundary(4096)];
        let plugin = &self.plugin;
        match level {
            level::ERROR => tracing::error!(%plugin, "{msg}"),
            level::WARN => tracing::warn!(%plugin, "{msg}"),
            level::INFO => tracing::info!(%plugin, "{msg}"),
            _ => tracing::debug!(%plugin, "{msg}"),
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory.saturating_sub(current).saturating_add(desired);
        if total > self.limits.memory_bytes {
            self.memory_denied = true;
            // Trap at once: a guest that ignores a failed grow would fail obscurely later.
            return Err(wasmtime::format_err!("memory cap of {} bytes reached", self.limits.memory_bytes));
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Copies `len` bytes at `ptr` out of the guest's memory.
fn read(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let Some(Extern::Memory(mem)) = caller.get_export(export::MEMORY) else { return None };
    let (ptr, len) = (usize::try_from(ptr).ok()?, usize::try_from(len).ok()?);
    mem.data(&*caller).get(ptr..ptr.checked_add(len)?).map(<[u8]>::to_vec)
}

pub fn emit(mut caller: Caller<'_, HostState>, tp: i32, tl: i32, pp: i32, pl: i32) -> i32 {
    // The size is checked before the payload is copied out of the guest.
    let limits = caller.data().limits;
    if usize::try_from(pl).unwrap_or(usize::MAX) > limits.max_emit_bytes {
        return caller
            .data_mut()
            .refuse(Status::TooLarge, format!("emit of {pl} bytes (limit {})", limits.max_emit_bytes));
    }
    let (Some(name), Some(payload)) = (read(&mut caller, tp, tl), read(&mut caller, pp, pl)) else {
        return caller.data_mut().refuse(Status::BadPointer, "emit pointer outside guest memory".into());
    };
    let Ok(name) = String::from_utf8(name) else {
        return caller.data_mut().refuse(Status::BadTopic, "emit topic is not UTF-8".into());
    };
    caller.data_mut().accept_emit(name, payload).code()
}

/// Runs a model of the registry: `il` f32 inputs at `ip`, up to `oc` f32 outputs written at
/// `op`; returns the output count or a negative status.
pub fn infer(mut caller: Caller<'_, HostState>, mp: i32, ml: i32, ip: i32, il: i32, op: i32, oc: i32) -> i32 {
    let Some(name) = read(&mut caller, mp, ml.min(256)) else { return Status::BadPointer.code() };
    let Some(raw) = read(&mut caller, ip, il.saturating_mul(4).min(1 << 20)) else {
        return Status::BadPointer.code();
    };
    let inputs: Vec<f32> =
        raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let cap = usize::try_from(oc).unwrap_or(0);
    let out = match caller.data().infer(&String::from_utf8_lossy(&name), &inputs, cap) {
        Ok(out) => out,
        Err(s) => return s.code(),
    };
    let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
    let Some(Extern::Memory(mem)) = caller.get_export(export::MEMORY) else {
        return Status::BadPointer.code();
    };
    let Ok(offset) = usize::try_from(op) else { return Status::BadPointer.code() };
    if mem.write(&mut caller, offset, &bytes).is_err() {
        return Status::BadPointer.code();
    }
    out.len() as i32
}

pub fn log(mut caller: Caller<'_, HostState>, level: i32, p: i32, n: i32) {
    if !caller.data_mut().may_log() {
        return;
    }
    let Some(bytes) = read(&mut caller, p, n.min(4096)) else { return };
    caller.data().write_log(level, &String::from_utf8_lossy(&bytes));
}

/// A failed call's error, typed: the memory cap (the limiter said so), the deadline, or a trap.
pub fn classify(e: wasmtime::Error, st: &HostState) -> PluginError {
    if st.memory_denied {
        return PluginError::Memory;
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => PluginError::Deadline,
        Some(t) => PluginError::Trap(t.to_string()),
        None => PluginError::Trap(format!("{e:#}")),
    }
}

/// A guest export's status for an error message: its ABI name, or the raw code.
pub fn describe(code: i32) -> String {
    match Status::from_code(code) {
        Some(s) => format!("status {code} ({})", s.name()),
        None => format!("status {code} (not defined by the ABI)"),
    }
}

/// Starts a call's deadline: `ticks` epoch ticks of wall clock before the first look, and as
/// much CPU time on this thread (`deadline.rs`). `host` finds the host state in the store's
/// data (a v1 store's data is it; a component's holds it beside WASI).
/// The budget of instantiation and `init` in ticks: 20 events' worth, and at least 250 ms (a
/// TypeScript or Python runtime starts its interpreter there, once per instance, and a busy
/// machine must not turn that into a refused plugin).
pub fn init_ticks(deadline_ticks: u64) -> u64 {
    const MIN: u64 = (250_000 / super::engine::TICK.as_micros()) as u64;
    deadline_ticks.saturating_mul(20).max(MIN)
}

pub fn arm<T>(store: &mut wasmtime::Store<T>, host: fn(&mut T) -> &mut HostState, ticks: u64) {
    let budget = super::engine::TICK.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX));
    host(store.data_mut()).clock = super::deadline::CallClock::start(budget);
    store.set_epoch_deadline(ticks);
}

/// The status `infer` returns to the guest for a registry error.
pub fn infer_status(e: crate::model::InferError) -> Status {
    use crate::model::InferError;
    match e {
        InferError::NoSuchModel => Status::NoSuchModel,
        InferError::BadInput => Status::BadInput,
        InferError::OutputTooSmall => Status::OutputTooSmall,
        InferError::Failed => Status::InferFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InferError;

    #[test]
    fn every_infer_error_has_its_own_abi_status() {
        let all =
            [InferError::NoSuchModel, InferError::BadInput, InferError::OutputTooSmall, InferError::Failed];
        let statuses: std::collections::HashSet<Status> = all.into_iter().map(infer_status).collect();
        assert_eq!(statuses.len(), all.len());
        assert!(statuses.iter().all(|s| s.code() < 0 && Status::from_code(s.code()) == Some(*s)));
    }
}
