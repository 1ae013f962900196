//! Compilation of plugins, modules (ABI v1) and components (ABI v2), with a `.cwasm` cache,
//! and the v1 host imports' linker.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use opensports_proto::plugin_abi as abi;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Caller, Engine, InstancePre, Linker, Module};

use super::PluginError;
use super::component::{PluginPre, V2State};
use super::engine::engine;
use super::host::{self, HostState};

/// A compiled plugin of either ABI, linked.
pub enum Code {
    /// ABI v1: a core module.
    Module(InstancePre<HostState>),
    /// ABI v2: a component of the world `opensports:plugin/plugin@2.0.0`.
    Component(PluginPre<V2State>),
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Code(ABI v{})", self.abi())
    }
}

impl Code {
    /// The ABI the plugin speaks (1 or 2), for reports.
    pub fn abi(&self) -> u32 {
        match self {
            Code::Module(_) => 1,
            Code::Component(_) => 2,
        }
    }
}

/// A plugin compiled and linked, ready to instantiate on any shard.
pub struct Compiled {
    pub name: Arc<str>,
    /// First 16 hex digits of the wasm's SHA-256.
    pub version: String,
    /// Bit mask of sports (`plugin_abi::sport_bit`) from `os_sports`, or all.
    pub sports: u32,
    pub code: Code,
    /// The compiled artifact and where it goes in the cache, written by
    /// [`Compiled::keep_in_cache`] once the plugin passed every check: a refused module leaves
    /// no file behind.
    uncached: Option<(PathBuf, Vec<u8>)>,
}

impl Compiled {
    /// Writes the compiled artifact to the cache (a no-op when it came from there).
    pub fn keep_in_cache(&mut self) {
        let Some((path, bytes)) = self.uncached.take() else { return };
        // Written aside and renamed: servers sharing a cache never read a half-written file.
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            tracing::warn!(path = %path.display(), "cannot write the compiled-plugin cache");
        }
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn linker(engine: &Engine) -> Result<Linker<HostState>, PluginError> {
    let mut l = Linker::new(engine);
    let link = |e: wasmtime::Error| PluginError::Compile(e.to_string());
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::import::EMIT,
        |c: Caller<'_, HostState>, tp: i32, tl: i32, pp: i32, pl: i32| host::emit(c, tp, tl, pp, pl),
    )
    .map_err(link)?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::import::INFER,
        |c: Caller<'_, HostState>, mp: i32, ml: i32, ip: i32, il: i32, op: i32, oc: i32| {
            host::infer(c, mp, ml, ip, il, op, oc)
        },
    )
    .map_err(link)?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::import::LOG,
        |c: Caller<'_, HostState>, level: i32, p: i32, n: i32| host::log(c, level, p, n),
    )
    .map_err(link)?;
    Ok(l)
}

/// Compiles `wasm` (or loads its cached `.cwasm` from `cache_dir`), checks its exports and
/// links it. Nothing is written to the cache here: see [`Compiled::keep_in_cache`].
#[allow(unsafe_code)]
pub fn compile(name: &str, wasm: &[u8], cache_dir: &Path) -> Result<Compiled, PluginError> {
    let engine = engine();
    let digest = Sha256::digest(wasm);
    let version: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let key =
        format!("{}-{:016x}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>(), h.finish());
    let cached: PathBuf = cache_dir.join(format!("{key}.cwasm"));
    if super::component::is_component(wasm) {
        let (component, uncached) = match load_cached(&cached, |p| {
            // SAFETY: see `load_cached`.
            unsafe { Component::deserialize_file(engine, p) }
        }) {
            Some(c) => (c, None),
            None => {
                let bytes =
                    engine.precompile_component(wasm).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
                // SAFETY: the bytes were produced just now by this engine.
                let component = unsafe { Component::deserialize(engine, &bytes) }
                    .map_err(|e| PluginError::Compile(format!("{e:#}")))?;
                (component, Some((cached, bytes)))
            }
        };
        let pre = super::component::link(&component)?;
        return Ok(Compiled {
            name: Arc::from(name),
            version,
            sports: 0,
            code: Code::Component(pre),
            uncached,
        });
    }
    let (module, uncached) = match load_cached(&cached, |p| {
        // SAFETY: see `load_cached`.
        unsafe { Module::deserialize_file(engine, p) }
    }) {
        Some(m) => (m, None),
        None => {
            let bytes = engine.precompile_module(wasm).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
            // SAFETY: the bytes were produced just now by this engine.
            let module = unsafe { Module::deserialize(engine, &bytes) }
                .map_err(|e| PluginError::Compile(format!("{e:#}")))?;
            (module, Some((cached, bytes)))
        }
    };
    for required in abi::export::REQUIRED {
        if module.get_export(required).is_none() {
            return Err(PluginError::Compile(format!(
                "missing export `{required}` (ABI v1, see plugin-sdk/README.md)"
            )));
        }
    }
    let pre = linker(engine)?.instantiate_pre(&module).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
    Ok(Compiled { name: Arc::from(name), version, sports: 0, code: Code::Module(pre), uncached })
}

/// Loads a `.cwasm` this process wrote earlier with `load`. The file name carries the wasm's
/// hash and the engine's compatibility hash, so a stale or foreign artifact is never picked up.
///
/// SAFETY (for the callers' `deserialize_file`): it trusts its input to be a wasmtime artifact.
/// This one was written by `precompile_module` / `precompile_component` of an engine with the
/// same compatibility hash (it is in the name) into the server's own data dir.
fn load_cached<T>(path: &Path, load: impl FnOnce(&Path) -> wasmtime::Result<T>) -> Option<T> {
    if !path.exists() {
        return None;
    }
    match load(path) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled-plugin cache entry");
            None
        }
    }
}
