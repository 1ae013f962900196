//! Run a plugin natively (no wasm, no server) for unit tests: events in, emitted
//! `(game, name, json)` out, exactly as the server would publish them.

use crate::abi::{Host, Runtime};
use crate::{HostError, Level, Plugin};

/// One output: the game, the emitted name (topic suffix) and the JSON payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub game: String,
    pub name: String,
    pub json: String,
}

#[derive(Debug, Default)]
struct Collect {
    game: String,
    out: Vec<Output>,
}

impl Host for Collect {
    fn emit(&mut self, name: &str, payload: &[u8]) -> Result<(), HostError> {
        let json = String::from_utf8(payload.to_vec()).map_err(|_| HostError::BadJson)?;
        self.out.push(Output { game: self.game.clone(), name: name.into(), json });
        Ok(())
    }
    fn infer(&mut self, _model: &str, _inputs: &[f32], _out: &mut [f32]) -> Result<usize, HostError> {
        Err(HostError::NoSuchModel)
    }
    fn log(&mut self, _level: Level, _msg: &str) {}
}

/// Feeds `events` to a fresh plugin runtime (with `config`) and returns every output.
pub fn run<P: Plugin>(config: &serde_json::Value, events: &[crate::proto::Event]) -> Vec<Output> {
    let mut session = Session::<P>::new(config);
    events.iter().flat_map(|e| session.event(e)).collect()
}

/// A plugin runtime fed one event at a time, for tests that check something after each event.
pub struct Session<P: Plugin> {
    rt: Runtime<P>,
    host: Collect,
}

impl<P: Plugin> std::fmt::Debug for Session<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("outputs_pending", &self.host.out.len()).finish_non_exhaustive()
    }
}

impl<P: Plugin> Session<P> {
    /// A fresh runtime, initialised with `config`.
    pub fn new(config: &serde_json::Value) -> Session<P> {
        let mut rt = Runtime::<P>::default();
        let cfg = serde_json::to_vec(config).unwrap_or_default();
        write(&mut rt, &cfg);
        rt.init(cfg.len());
        Session { rt, host: Collect::default() }
    }

    /// The outputs of one event.
    pub fn event(&mut self, e: &crate::proto::Event) -> Vec<Output> {
        let Ok(bytes) = rkyv::to_bytes::<rkyv::rancor::Error>(e) else { return Vec::new() };
        write(&mut self.rt, &bytes);
        self.host.game = e.game.clone();
        self.rt.on_event(bytes.len(), &mut self.host);
        std::mem::take(&mut self.host.out)
    }
}

fn write<P: Plugin>(rt: &mut Runtime<P>, bytes: &[u8]) {
    let ptr = rt.buffer(bytes.len());
    // SAFETY: `buffer` returned at least `bytes.len()` writable bytes owned by `rt`.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
}
