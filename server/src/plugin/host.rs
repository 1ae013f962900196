//! Host side of ABI v1: the store's state and the imports `emit`, `infer`, `log`.

use std::sync::Arc;

use opensports_proto::plugin_abi::{Status, export, level};
use wasmtime::{Caller, Extern, ResourceLimiter};

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
            logs: 0,
            clock: super::deadline::CallClock::start(std::time::Duration::ZERO),
        }
    }

    pub fn reset(&mut self) {
        self.emits.clear();
        self.bad_output = None;
        self.logs = 0;
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory_bytes {
            self.memory_denied = true;
            // Trap at once: a guest that ignores a failed grow would fail obscurely later.
            return Err(wasmtime::format_err!("memory cap of {} bytes reached", self.limits.memory_bytes));
        }
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

fn refuse(caller: &mut Caller<'_, HostState>, status: Status, why: String) -> i32 {
    let st = caller.data_mut();
    if st.bad_output.is_none() {
        st.bad_output = Some(why);
    }
    status.code()
}

pub fn emit(mut caller: Caller<'_, HostState>, tp: i32, tl: i32, pp: i32, pl: i32) -> i32 {
    let limits = caller.data().limits;
    if caller.data().emits.len() >= limits.max_emits {
        return refuse(
            &mut caller,
            Status::TooManyEmits,
            format!("more than {} emits in one event", limits.max_emits),
        );
    }
    if usize::try_from(pl).unwrap_or(usize::MAX) > limits.max_emit_bytes {
        return refuse(
            &mut caller,
            Status::TooLarge,
            format!("emit of {pl} bytes (limit {})", limits.max_emit_bytes),
        );
    }
    let (Some(name), Some(payload)) = (read(&mut caller, tp, tl), read(&mut caller, pp, pl)) else {
        return refuse(&mut caller, Status::BadPointer, "emit pointer outside guest memory".into());
    };
    let Ok(name) = String::from_utf8(name) else {
        return refuse(&mut caller, Status::BadTopic, "emit topic is not UTF-8".into());
    };
    if let Err(e) = opensports_proto::topic::validate_topic(&name) {
        return refuse(&mut caller, Status::BadTopic, format!("emit topic {name:?}: {e}"));
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
        return refuse(&mut caller, Status::BadJson, format!("emit on {name:?} is not valid JSON"));
    }
    caller.data_mut().emits.push(Emit { name, payload });
    Status::Ok.code()
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
    let mut out = vec![0f32; usize::try_from(oc).unwrap_or(0).min(4096)];
    let models = caller.data().models.clone();
    let n = match models.infer(&String::from_utf8_lossy(&name), &inputs, &mut out) {
        Ok(n) => n,
        Err(e) => return infer_status(e).code(),
    };
    let bytes: Vec<u8> = out[..n].iter().flat_map(|v| v.to_le_bytes()).collect();
    let Some(Extern::Memory(mem)) = caller.get_export(export::MEMORY) else {
        return Status::BadPointer.code();
    };
    let Ok(offset) = usize::try_from(op) else { return Status::BadPointer.code() };
    if mem.write(&mut caller, offset, &bytes).is_err() {
        return Status::BadPointer.code();
    }
    n as i32
}

pub fn log(mut caller: Caller<'_, HostState>, level: i32, p: i32, n: i32) {
    let max = caller.data().limits.max_logs;
    caller.data_mut().logs += 1;
    if caller.data().logs > max {
        return;
    }
    let Some(bytes) = read(&mut caller, p, n.min(4096)) else { return };
    let msg = String::from_utf8_lossy(&bytes);
    let plugin = caller.data().plugin.clone();
    match level {
        level::ERROR => tracing::error!(%plugin, "{msg}"),
        level::WARN => tracing::warn!(%plugin, "{msg}"),
        level::INFO => tracing::info!(%plugin, "{msg}"),
        _ => tracing::debug!(%plugin, "{msg}"),
    }
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
