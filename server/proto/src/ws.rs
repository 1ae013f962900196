//! The WebSocket subscriber protocol: JSON text frames at `GET /ws`.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Delivery mode of a subscription.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every publication, in order, through a bounded queue; overflow sends `lagged` and then
    /// snapshots of the affected topics.
    #[default]
    All,
    /// Only the newest value per topic (conflated); never lags.
    Latest,
}

/// Client → server.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientOp {
    Sub {
        topics: Vec<String>,
        #[serde(default)]
        mode: Mode,
        /// Resume points: concrete topic → last seq the client has. The server sends every
        /// message after it from its history, or `reset` and a snapshot when it is too old.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        since: BTreeMap<String, u64>,
        /// Deliver each message at its source time (`ts`) plus this many milliseconds, in
        /// order, never early (a broadcast delay). 0 or absent: as published.
        #[serde(default, skip_serializing_if = "is_zero")]
        delay_ms: u64,
        /// Echoed in the reply (`subscribed`, `unsubscribed`, `pong`, `error`) to match it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<OpId>,
    },
    Unsub {
        topics: Vec<String>,
        /// Echoed in the reply (`subscribed`, `unsubscribed`, `pong`, `error`) to match it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<OpId>,
    },
    Ping {
        /// Echoed in the reply (`subscribed`, `unsubscribed`, `pong`, `error`) to match it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<OpId>,
    },
}

/// A client's op id: a number or a string of at most [`MAX_OP_ID`] bytes.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OpId {
    Num(u64),
    Text(String),
}

/// Longest string op id, in bytes.
pub const MAX_OP_ID: usize = 64;

/// One publication as a client sees it (`msg` and `snapshot`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub topic: String,
    /// Per-topic sequence, 1, 2, 3, ... with no gaps on the server.
    pub seq: u64,
    /// Source time of the event that caused it, microseconds since the Unix epoch.
    pub ts: i64,
    pub data: serde_json::Value,
}

/// Server → client.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ServerMsg {
    Msg(Publication),
    Snapshot(Publication),
    Reset {
        topic: String,
    },
    Lagged {
        dropped: u64,
    },
    /// A `sub` was applied: snapshots and resumed history for these patterns were sent before it.
    Subscribed {
        topics: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<OpId>,
    },
    Unsubscribed {
        topics: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<OpId>,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<OpId>,
    },
    Error {
        code: String,
        message: String,
        /// The `id` of the op this answers, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<OpId>,
    },
}

/// Parses one server text frame: a single message, or a batch (JSON array of messages).
pub fn parse_server_frame(text: &str) -> Result<Vec<ServerMsg>, serde_json::Error> {
    if text.trim_start().starts_with('[') {
        serde_json::from_str(text)
    } else {
        serde_json::from_str(text).map(|m| alloc::vec![m])
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
