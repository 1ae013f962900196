//! SDK for OpenSports Edge analytics plugins.
//!
//! A plugin is a Rust type implementing [`Plugin`], compiled to `wasm32-unknown-unknown` and
//! exported with [`export_plugin!`]. The server calls it for every event of every game of its
//! sports; the SDK keeps one value of your type per game, so a plugin is written as if it
//! watched a single game. Outputs go out with [`Ctx::emit`] and become WebSocket topics
//! `game/{id}/{plugin}/{name}`.
//!
//! Plugins are deterministic: no clock, no randomness, no I/O. Their outputs depend only on the
//! events they saw, so the server can rebuild them exactly by replaying a game.
//!
//! ```
//! use opensports_plugin_sdk::{Ctx, Plugin, export_plugin, proto};
//! use proto::event::ArchivedBody;
//! use proto::basketball::ArchivedEvent as Bk;
//!
//! #[derive(Default)]
//! struct MadeShots {
//!     made: u32,
//! }
//!
//! impl Plugin for MadeShots {
//!     fn on_event(&mut self, ctx: &mut Ctx<'_>, event: &proto::event::ArchivedEvent) {
//!         if let ArchivedBody::Basketball(Bk::Shot { made: true, .. }) = &event.body {
//!             self.made += 1;
//!             ctx.emit("made_shots", &serde_json::json!({ "made": self.made }));
//!         }
//!     }
//! }
//!
//! export_plugin!(MadeShots);
//! ```
//!
//! # Layout
//! - [`Plugin`], [`Ctx`]: what a plugin author uses.
//! - [`abi`]: the ABI v1 glue the macro expands to (see README.md for the byte-level ABI).
//! - `component` (feature `component`): ABI v2, a component of the WIT world
//!   `opensports:plugin/plugin@2.0.0` ([`export_component!`] over a [`ComponentPlugin`]).
//! - [`testing`]: run a plugin natively on events, without a server or wasm.

pub mod abi;
#[cfg(feature = "component")]
pub mod component;
pub mod testing;

pub use opensports_proto as proto;
pub use serde_json;

use proto::event::ArchivedEvent;
use serde::Serialize;

/// An analytics plugin. One value per game (`Default` makes it), fed that game's events in
/// order.
pub trait Plugin: Default {
    /// The sports whose events this plugin wants; the server skips the others. Default: all.
    const SPORTS: &'static [proto::Sport] = &proto::Sport::ALL;

    /// Called once per game, before its first event, with the plugin's configuration (the
    /// `config` table of the plugin's entry in the server config, as JSON; `{}` when absent).
    fn init(&mut self, _config: &serde_json::Value) {}

    /// Called for each event of the game, in seq order.
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: &ArchivedEvent);

    /// State to persist (optional): the server puts these bytes in the game's state snapshot
    /// and, after a restart, hands them to [`Plugin::restore`] on a fresh value (after
    /// `init`) instead of replaying the game's events before the snapshot. They must capture
    /// everything later outputs depend on: a restored value must emit exactly what the
    /// original would have. Empty (the default) means "no snapshots": games are then always
    /// rebuilt by replay. [`snapshot_json`] and [`restore_json`] do both for a serde type.
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Rebuilds state from [`Plugin::snapshot`] bytes; false when they cannot be read (the
    /// server then replays the game instead).
    fn restore(&mut self, _bytes: &[u8]) -> bool {
        false
    }
}

/// A [`Plugin::snapshot`] for state that is `Serialize`: its JSON. Floats survive exactly.
pub fn snapshot_json<T: Serialize>(state: &T) -> Vec<u8> {
    serde_json::to_vec(state).unwrap_or_default()
}

/// The [`Plugin::restore`] counterpart of [`snapshot_json`]: replaces `state` with the decoded
/// value, or leaves it and returns false.
pub fn restore_json<T: serde::de::DeserializeOwned>(state: &mut T, bytes: &[u8]) -> bool {
    match serde_json::from_slice(bytes) {
        Ok(v) => {
            *state = v;
            true
        }
        Err(_) => false,
    }
}

/// Deserializes the archived event into an owned [`proto::Event`]: convenient (owned strings,
/// `Serialize` types) at the cost of an allocation per event. Plugins on the hot path can match
/// on the archived event directly instead.
pub fn to_owned(event: &ArchivedEvent) -> Option<proto::Event> {
    rkyv::deserialize::<proto::Event, rkyv::rancor::Error>(event).ok()
}

/// Why an `emit` or `infer` was refused by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostError {
    /// More emits in this event than the server allows (default 64).
    TooManyEmits,
    /// Payload over the server's limit (default 64 KiB).
    TooLarge,
    /// Topic name not valid (printable ASCII, `/`-separated levels, no `+`/`#`).
    BadTopic,
    /// Payload not valid JSON.
    BadJson,
    /// `infer`: no model by that name is loaded.
    NoSuchModel,
    /// `infer`: input length does not match the model.
    BadInput,
    /// `infer`: the output buffer is too small.
    OutputTooSmall,
    /// A pointer and length the host could not read or write in guest memory.
    BadPointer,
    /// `infer`: the model failed to run on these inputs.
    InferFailed,
    /// A status that is not a host error: a code this SDK version does not know, or one only
    /// guest exports return (`Ok`, `BadInputBytes`).
    Other(i32),
}

impl HostError {
    /// The error for a negative status returned by a host import.
    pub fn from_status(status: i32) -> HostError {
        use abi::Status;
        match Status::from_code(status) {
            Some(Status::TooManyEmits) => HostError::TooManyEmits,
            Some(Status::TooLarge) => HostError::TooLarge,
            Some(Status::BadTopic) => HostError::BadTopic,
            Some(Status::BadJson) => HostError::BadJson,
            Some(Status::BadPointer) => HostError::BadPointer,
            Some(Status::NoSuchModel) => HostError::NoSuchModel,
            Some(Status::BadInput) => HostError::BadInput,
            Some(Status::OutputTooSmall) => HostError::OutputTooSmall,
            Some(Status::InferFailed) => HostError::InferFailed,
            Some(Status::Ok | Status::BadInputBytes) | None => HostError::Other(status),
        }
    }

    /// The status code the host sent for this error.
    pub fn status(self) -> i32 {
        use abi::Status;
        match self {
            HostError::TooManyEmits => Status::TooManyEmits.code(),
            HostError::TooLarge => Status::TooLarge.code(),
            HostError::BadTopic => Status::BadTopic.code(),
            HostError::BadJson => Status::BadJson.code(),
            HostError::BadPointer => Status::BadPointer.code(),
            HostError::NoSuchModel => Status::NoSuchModel.code(),
            HostError::BadInput => Status::BadInput.code(),
            HostError::OutputTooSmall => Status::OutputTooSmall.code(),
            HostError::InferFailed => Status::InferFailed.code(),
            HostError::Other(code) => code,
        }
    }
}

/// Log levels for [`Ctx::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Error = proto::plugin_abi::level::ERROR,
    Warn = proto::plugin_abi::level::WARN,
    Info = proto::plugin_abi::level::INFO,
    Debug = proto::plugin_abi::level::DEBUG,
}

/// A plugin for ABI v2 (feature `component`): like [`Plugin`], with the event as an owned
/// [`proto::Event`] (the host hands components JSON). Exported with `export_component!`.
pub trait ComponentPlugin: Default {
    /// The sports whose events this plugin wants; the server skips the others. Default: all.
    const SPORTS: &'static [proto::Sport] = &proto::Sport::ALL;

    /// Called once per game, before its first event, with the plugin's configuration.
    fn init(&mut self, _config: &serde_json::Value) {}

    /// Called for each event of the game, in seq order.
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: &proto::Event);

    /// As [`Plugin::snapshot`].
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }

    /// As [`Plugin::restore`].
    fn restore(&mut self, _bytes: &[u8]) -> bool {
        false
    }
}

/// The plugin's handle to the host during one event.
pub struct Ctx<'a> {
    host: &'a mut dyn abi::Host,
    game: &'a str,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("game", &self.game).finish_non_exhaustive()
    }
}

impl<'a> Ctx<'a> {
    pub fn new(host: &'a mut dyn abi::Host, game: &'a str) -> Ctx<'a> {
        Ctx { host, game, buf: Vec::new() }
    }

    /// The game this event belongs to.
    pub fn game(&self) -> &str {
        self.game
    }

    /// Publishes `value` (as JSON) on `game/{id}/{plugin}/{name}`.
    pub fn emit<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), HostError> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, value).map_err(|_| HostError::BadJson)?;
        self.host.emit(name, &self.buf)
    }

    /// Fires trigger `name` (1-64 of `[A-Za-z0-9_-]`): the server publishes it on
    /// `game/{id}/triggers` as rule `{plugin}:{name}`, at this event's seq, with `text` (at
    /// most 256 bytes; cut there) and `facts` (a JSON object: what made it fire), under the
    /// same operators' controls as the server's own rules (arm, disarm, suppress). Plugins
    /// are deterministic, so a replay fires it at the same seq again. Counts as an emit.
    pub fn trigger<F: Serialize + ?Sized>(
        &mut self,
        name: &str,
        text: &str,
        facts: &F,
    ) -> Result<(), HostError> {
        #[derive(Serialize)]
        struct Fired<'a, F: ?Sized> {
            text: &'a str,
            facts: &'a F,
        }
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &Fired { text, facts }).map_err(|_| HostError::BadJson)?;
        let topic = format!("{}{name}", proto::plugin_abi::TRIGGER_PREFIX);
        self.host.emit(&topic, &self.buf)
    }

    /// Runs model `model` on `inputs`; returns its outputs.
    pub fn infer(&mut self, model: &str, inputs: &[f32]) -> Result<Vec<f32>, HostError> {
        let mut out = vec![0f32; 16];
        loop {
            match self.host.infer(model, inputs, &mut out) {
                Ok(n) => {
                    out.truncate(n);
                    return Ok(out);
                }
                Err(HostError::OutputTooSmall) if out.len() < 1 << 16 => out.resize(out.len() * 4, 0.0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes to the server's log (rate-limited by the host).
    pub fn log(&mut self, level: Level, msg: &str) {
        self.host.log(level, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::Status;

    #[test]
    fn every_host_status_maps_to_its_own_error_and_back() {
        let mut seen = std::collections::HashSet::new();
        for s in Status::ALL {
            let e = HostError::from_status(s.code());
            assert_eq!(e.status(), s.code(), "{}", s.name());
            // Negative codes are the host's errors: each has a variant of its own.
            if s.code() < 0 {
                assert!(!matches!(e, HostError::Other(_)), "{} falls into Other", s.name());
                assert!(seen.insert(e), "two statuses map to {e:?}");
            }
        }
        assert_eq!(HostError::from_status(-99), HostError::Other(-99));
    }
}
