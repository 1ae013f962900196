//! OpenSports Edge wire types shared by the server, clients, plugins and tools.
//!
//! No I/O lives here: only the event schema, the frame codec, the control and WebSocket
//! messages, topic names and patterns, and the documented error codes. With
//! `default-features = false` the crate is `no_std + alloc`, so the plugin SDK can use the same
//! types inside a wasm guest.
//!
//! # Layout
//! - [`event`]: the envelope ([`Event`]) and the per-sport bodies in [`basketball`],
//!   [`football`], [`soccer`], [`f1`]; [`tracking`] holds the lossy datagram sample.
//! - [`codec`]: `u32` big-endian length + codec byte + body framing, JSON and rkyv bodies.
//! - [`control`]: the messages on the QUIC control stream (hello, welcome, ack, error).
//! - [`ws`]: the WebSocket subscriber protocol (client ops, server messages).
//! - [`topic`]: topic names and `+`/`#` patterns.
//! - [`error_code`]: every error code a peer can see, in one place.
//! - [`limits`]: length caps on event strings (names 64 bytes, free text 256).
//! - `schema` (feature `schema`): the JSON Schema of all of the above, generated.
//! - [`plugin_abi`]: plugin ABI v1 (status codes, sport bits, export and import names), shared
//!   by the wasm host and the plugin SDK.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod basketball;
pub mod codec;
pub mod control;
pub mod domain;
pub mod error_code;
pub mod event;
pub mod f1;
pub mod football;
pub mod keys;
pub mod limits;
pub mod plugin_abi;
#[cfg(feature = "schema")]
pub mod schema;
pub mod soccer;
pub mod topic;
pub mod tracking;
pub mod ws;

pub use event::{Body, Event, InvalidEvent, SCHEMA_VERSION, ScoreCorrection, Side, Sport};

/// ALPN protocol id spoken on the QUIC ingest port.
pub const ALPN: &[u8] = b"opensports/1";
