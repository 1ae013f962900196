//! Messages on the QUIC control stream (the publisher's first bidirectional stream). Each is a
//! JSON frame (codec `0x01`) with an `op` tag.

use alloc::string::String;
use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Control {
    /// Publisher → server, first message.
    Hello {
        token: String,
        /// Free-form publisher name, for logs.
        publisher: String,
    },
    /// Server → publisher: hello accepted.
    Welcome {
        /// Server name and version.
        server: String,
        /// Largest frame (codec byte + body) the server accepts.
        max_frame: u32,
        /// Most event streams open at once on this connection.
        #[serde(default)]
        max_streams: u32,
    },
    /// Server → publisher: every event of `game` up to and including `seq` is accepted.
    /// Cumulative; sent at most once per game per flush interval.
    Ack { game: String, seq: u64 },
    /// Server → publisher: one event was not accepted. The stream goes on with the next frame.
    Reject {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        game: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        code: String,
        message: String,
    },
    /// Server → publisher: events `from..=to` of `game` never arrived (the publisher skipped
    /// them). Resend them if you have them; they are accepted on any stream of the game.
    Gap { game: String, from: u64, to: u64 },
    /// Server → publisher: the event log's health changed. `status` is `failing` (commits fail,
    /// so nothing is acked; `reason` says why) or `open` (commits again; the acks that waited
    /// follow). Sent on each change, and on connect while failing. Keep unacked events.
    Log {
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Server → publisher: a stream or the connection is being closed for this reason.
    /// `game`: the game of the stream that was closed, when it had carried one.
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        game: Option<String>,
    },
}
