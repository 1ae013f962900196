//! The event envelope: fields every event carries, and the per-sport body.

use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::{basketball, f1, football, soccer};

/// Version of the event schema this crate speaks. JSON events may carry `"v"`; absent means 1.
/// The rkyv codec byte (`0x02`) names this version's archived layout.
pub const SCHEMA_VERSION: u16 = 1;

/// One event from a publisher. JSON form (flat):
/// `{"game":"nba-1","seq":7,"ts":1700000000000000,"clock_ms":431000,"sport":"basketball","type":"shot",...}`
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Event {
    /// Schema version (see [`SCHEMA_VERSION`]).
    #[serde(default = "default_version")]
    pub v: u16,
    /// Game id: 1..=64 bytes of `[A-Za-z0-9_.-]` (it is a topic level).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[A-Za-z0-9_.-]{1,64}$")))]
    pub game: String,
    /// Per-game sequence number set by the publisher, strictly increasing from 1.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub seq: u64,
    /// Source time, microseconds since the Unix epoch.
    pub ts: i64,
    /// Game clock in milliseconds where the sport has one: time remaining in the period for
    /// basketball and football, time elapsed in the match for soccer. Absent for F1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ms: Option<u32>,
    /// Sport-specific body, tagged by `sport` and then `type`.
    #[serde(flatten)]
    pub body: Body,
}

fn default_version() -> u16 {
    SCHEMA_VERSION
}

/// The sport-tagged body of an event.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[serde(tag = "sport", rename_all = "snake_case")]
pub enum Body {
    Basketball(basketball::Event),
    Football(football::Event),
    Soccer(soccer::Event),
    F1(f1::Event),
}

/// The four sports, as they appear in `"sport"`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sport {
    Basketball,
    Football,
    Soccer,
    F1,
}

impl Sport {
    pub const ALL: [Sport; 4] = [Sport::Basketball, Sport::Football, Sport::Soccer, Sport::F1];

    pub fn as_str(self) -> &'static str {
        match self {
            Sport::Basketball => "basketball",
            Sport::Football => "football",
            Sport::Soccer => "soccer",
            Sport::F1 => "f1",
        }
    }

    pub fn parse(s: &str) -> Option<Sport> {
        Sport::ALL.into_iter().find(|sp| sp.as_str() == s)
    }
}

impl core::fmt::Display for Sport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Home or away team, for the team sports.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum Side {
    Home,
    Away,
}

impl Side {
    /// The other team.
    pub fn other(self) -> Side {
        match self {
            Side::Home => Side::Away,
            Side::Away => Side::Home,
        }
    }

    pub fn index(self) -> usize {
        match self {
            Side::Home => 0,
            Side::Away => 1,
        }
    }
}

impl Body {
    pub fn sport(&self) -> Sport {
        match self {
            Body::Basketball(_) => Sport::Basketball,
            Body::Football(_) => Sport::Football,
            Body::Soccer(_) => Sport::Soccer,
            Body::F1(_) => Sport::F1,
        }
    }

    /// The `type` tag of the body, as it appears in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Basketball(e) => e.kind(),
            Body::Football(e) => e.kind(),
            Body::Soccer(e) => e.kind(),
            Body::F1(e) => e.kind(),
        }
    }
}

/// Why an event that decoded is still not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidEvent {
    /// `v` names a schema version this build does not speak.
    Version(u16),
    /// Game id empty, too long, or with a character outside `[A-Za-z0-9_.-]`.
    GameId,
    /// `seq` is 0 (sequences start at 1).
    ZeroSeq,
    /// A string over its length cap ([`crate::limits`]); rejected as `bad_event`.
    TooLong(crate::limits::TooLong),
    /// A value outside its sport's domain ([`crate::domain`]); rejected as `bad_event`.
    Domain(crate::domain::OutOfDomain),
    /// (JSON) a field the event type does not have; rejected as `bad_event`.
    UnknownField(String),
}

impl core::fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InvalidEvent::Version(v) => {
                write!(f, "unsupported schema version {v} (this server speaks {SCHEMA_VERSION})")
            }
            InvalidEvent::GameId => f.write_str("game id must be 1..=64 bytes of [A-Za-z0-9_.-]"),
            InvalidEvent::ZeroSeq => f.write_str("seq must start at 1"),
            InvalidEvent::TooLong(t) => t.fmt(f),
            InvalidEvent::Domain(d) => d.fmt(f),
            InvalidEvent::UnknownField(k) => write!(f, "{k}: unknown field for this event type"),
        }
    }
}

/// Longest accepted game id, in bytes.
pub const MAX_GAME_ID: usize = 64;

/// True when `id` is a valid game id (also a valid topic level).
pub fn valid_game_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_GAME_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Event {
    pub fn sport(&self) -> Sport {
        self.body.sport()
    }

    /// The people (players, or F1 drivers) this event names: each game holds a bounded
    /// number of them ([`crate::limits::max_people`]).
    pub fn people(&self) -> [Option<&str>; 2] {
        match &self.body {
            Body::Basketball(e) => e.people(),
            Body::Soccer(e) => e.people(),
            Body::F1(e) => e.people(),
            Body::Football(_) => [None, None],
        }
    }

    /// Checks what the type system cannot: version, game id, seq, string lengths.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        if self.v != SCHEMA_VERSION {
            return Err(InvalidEvent::Version(self.v));
        }
        if !valid_game_id(&self.game) {
            return Err(InvalidEvent::GameId);
        }
        if self.seq == 0 {
            return Err(InvalidEvent::ZeroSeq);
        }
        crate::limits::check_strings(self).map_err(InvalidEvent::TooLong)?;
        crate::domain::check(self).map_err(InvalidEvent::Domain)
    }
}

/// An explicit correction of the running score (JSON `"type":"score_correction"`, in basketball,
/// football and soccer): the score is now `home`–`away`, whatever it was. Feeds publish one when
/// the provider takes points back or changes them after the fact (a basket overturned on review,
/// a touchdown reversed, a goal disallowed): the running score only ever goes down through this
/// event, so subscribers and the durable log agree on why.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct ScoreCorrection {
    pub home: u16,
    pub away: u16,
    /// Why, in the provider's words or the adapter's (e.g. "play 1159 reversed on review").
    pub reason: String,
}

/// Implements `kind()` for a `#[serde(tag = "type", rename_all = "snake_case")]` enum by listing
/// each variant with its JSON name once.
macro_rules! event_kinds {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The `type` tag of this event, as it appears in JSON.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($ty::$variant { .. } => $name,)*
                }
            }
        }
    };
}
pub(crate) use event_kinds;
