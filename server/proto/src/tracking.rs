//! High-rate lossy position samples, sent as QUIC datagrams. Latest value wins; never logged.

use alloc::string::String;
use serde::{Deserialize, Serialize};

/// One position sample of a player, ball or car, in the sport's frame (see each sport module);
/// `z` in the same unit (0 where the source is 2-D), `speed` in metres per second.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct TrackingSample {
    pub game: String,
    /// Source time, microseconds since the Unix epoch.
    pub ts: i64,
    /// Player id, `ball`, or car number; 1..=64 bytes of `[A-Za-z0-9_.-]`.
    pub entity: String,
    pub x: f32,
    pub y: f32,
    #[serde(default)]
    pub z: f32,
    #[serde(default)]
    pub speed: f32,
}
