//! Plugin ABI v1: the contract between the server (wasmtime host) and a plugin (wasm guest),
//! defined once and imported by both sides (`opensports-server`'s `plugin` module and
//! `opensports-plugin-sdk`'s `abi`). plugin-sdk/README.md documents every byte.
//!
//! Guest exports: [`export::MEMORY`], [`export::ABI_VERSION`] `() -> i32`,
//! [`export::SPORTS`] `() -> i32`, [`export::BUFFER`] `(len) -> ptr`, [`export::INIT`],
//! [`export::ON_EVENT`], [`export::RESTORE`], [`export::FORGET`] `(ptr, len) -> status`,
//! [`export::SNAPSHOT`] `(ptr, len) -> ptr << 32 | len`. Host imports, module
//! [`IMPORT_MODULE`]: [`import::EMIT`], [`import::INFER`], [`import::LOG`].

use crate::Sport;

/// Version of this ABI; the host refuses a module whose `os_abi_version` differs.
pub const ABI_VERSION: i32 = 1;

/// An `emit` whose topic starts with this is a trigger the plugin fires, `trigger/{name}`: the
/// host publishes it on `game/{id}/triggers` as rule `{plugin}:{name}` (the payload is
/// `{"text", "facts", "value"}`), not on the plugin's own topics. `name` is 1-64 of
/// `[A-Za-z0-9_-]`.
pub const TRIGGER_PREFIX: &str = "trigger/";

/// The wasm import module of the host functions.
pub const IMPORT_MODULE: &str = "opensports";

/// Names of the host functions a guest imports.
pub mod import {
    /// `emit(topic_ptr, topic_len, payload_ptr, payload_len) -> status`.
    pub const EMIT: &str = "emit";
    /// `infer(model_ptr, model_len, inputs_ptr, inputs_len, outputs_ptr, outputs_cap) -> n | status`.
    pub const INFER: &str = "infer";
    /// `log(level, msg_ptr, msg_len)`.
    pub const LOG: &str = "log";
}

/// Names of the guest's exports.
pub mod export {
    pub const MEMORY: &str = "memory";
    pub const ABI_VERSION: &str = "os_abi_version";
    /// Optional: bit mask of the sports wanted ([`super::sports_mask`]); all when absent.
    pub const SPORTS: &str = "os_sports";
    pub const BUFFER: &str = "os_buffer";
    /// Optional: the plugin config (JSON) is in the buffer.
    pub const INIT: &str = "init";
    pub const ON_EVENT: &str = "on_event";
    /// Optional: per-game state out (`ptr << 32 | len`).
    pub const SNAPSHOT: &str = "snapshot";
    /// Optional: per-game state in.
    pub const RESTORE: &str = "restore";
    /// Optional: a game left memory; drop its state.
    pub const FORGET: &str = "forget";
    /// The exports without which a module is refused.
    pub const REQUIRED: [&str; 4] = [MEMORY, ABI_VERSION, BUFFER, ON_EVENT];
}

/// A status code crossing the boundary: returned by host imports to the guest (negative) and
/// by guest exports to the host (`Ok`, `BadInputBytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    /// Guest → host: the bytes in the buffer are not a valid archived event / config / snapshot.
    BadInputBytes = 1,
    /// `emit`: more emits in this event than the server allows.
    TooManyEmits = -1,
    /// `emit`: payload over the server's limit.
    TooLarge = -2,
    /// `emit`: topic name not valid (printable ASCII, `/`-separated levels, no `+`/`#`, UTF-8).
    BadTopic = -3,
    /// `emit`: payload not valid JSON.
    BadJson = -4,
    /// `emit`/`infer`: a pointer and length outside the guest's memory.
    BadPointer = -5,
    /// `infer`: no model by that name is loaded.
    NoSuchModel = -10,
    /// `infer`: input length does not match the model.
    BadInput = -11,
    /// `infer`: the output buffer is too small.
    OutputTooSmall = -12,
    /// `infer`: the model failed to run on these inputs.
    InferFailed = -13,
}

impl Status {
    /// Every status, for documentation and exhaustive tests.
    pub const ALL: [Status; 11] = [
        Status::Ok,
        Status::BadInputBytes,
        Status::TooManyEmits,
        Status::TooLarge,
        Status::BadTopic,
        Status::BadJson,
        Status::BadPointer,
        Status::NoSuchModel,
        Status::BadInput,
        Status::OutputTooSmall,
        Status::InferFailed,
    ];

    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The status for a code, `None` for a code this ABI does not define.
    pub fn from_code(code: i32) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The documented name (plugin-sdk/README.md's table).
    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadInputBytes => "BAD_INPUT_BYTES",
            Status::TooManyEmits => "TOO_MANY_EMITS",
            Status::TooLarge => "TOO_LARGE",
            Status::BadTopic => "BAD_TOPIC",
            Status::BadJson => "BAD_JSON",
            Status::BadPointer => "BAD_POINTER",
            Status::NoSuchModel => "NO_SUCH_MODEL",
            Status::BadInput => "BAD_INPUT",
            Status::OutputTooSmall => "OUTPUT_TOO_SMALL",
            Status::InferFailed => "INFER_FAILED",
        }
    }
}

/// `log` levels (anything else is debug).
pub mod level {
    pub const ERROR: i32 = 1;
    pub const WARN: i32 = 2;
    pub const INFO: i32 = 3;
    pub const DEBUG: i32 = 4;
}

/// A sport's bit in the `os_sports` mask.
pub const fn sport_bit(sport: Sport) -> i32 {
    match sport {
        Sport::Basketball => 1,
        Sport::Football => 2,
        Sport::Soccer => 4,
        Sport::F1 => 8,
    }
}

/// The mask of every sport (what a module without `os_sports` gets).
pub const ALL_SPORTS: i32 = 0b1111;

/// `os_sports()`: the bit mask of `sports`.
pub fn sports_mask(sports: &[Sport]) -> i32 {
    sports.iter().fold(0, |m, s| m | sport_bit(*s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_both_ways_and_codes_are_unique() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s), "{}", s.name());
            assert_eq!(Status::ALL.iter().filter(|o| o.code() == s.code()).count(), 1);
        }
        assert_eq!(Status::from_code(-99), None);
        assert_eq!(Status::from_code(2), None);
    }

    #[test]
    fn sport_bits_are_distinct_and_fill_the_mask() {
        assert_eq!(sports_mask(&Sport::ALL), ALL_SPORTS);
        for s in Sport::ALL {
            assert_eq!(sport_bit(s).count_ones(), 1);
            assert_eq!(sports_mask(&[s]), sport_bit(s));
        }
    }
}
