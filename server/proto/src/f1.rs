//! Formula 1 timing events. A "game" is one session (practice, qualifying, sprint or race).
//! Drivers are named by their three-letter code or racing number, as the feed has it.

use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::event::event_kinds;

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "schema", schemars(rename = "F1Event"))]
pub enum Event {
    SessionStart {
        name: String,
        session: SessionKind,
        /// Scheduled race distance, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        laps: Option<u16>,
    },
    /// A completed lap.
    Lap(Lap),
    /// A position change outside a lap line (e.g. an overtake mid-lap).
    Position {
        driver: String,
        position: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gap_ms: Option<u32>,
    },
    PitIn {
        driver: String,
        lap: u16,
    },
    PitOut {
        driver: String,
        lap: u16,
        compound: Compound,
    },
    RaceControl {
        flag: Flag,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        driver: Option<String>,
    },
    SessionEnd,
}

impl Event {
    /// The car (driver) this event names (bounded per session: [`crate::limits::MAX_CARS`]).
    pub fn people(&self) -> [Option<&str>; 2] {
        match self {
            Event::Lap(l) => [Some(&l.driver), None],
            Event::Position { driver, .. } | Event::PitIn { driver, .. } | Event::PitOut { driver, .. } => {
                [Some(driver), None]
            }
            Event::RaceControl { driver, .. } => [driver.as_deref(), None],
            _ => [None, None],
        }
    }
}

event_kinds!(Event {
    SessionStart => "session_start",
    Lap => "lap",
    Position => "position",
    PitIn => "pit_in",
    PitOut => "pit_out",
    RaceControl => "race_control",
    SessionEnd => "session_end",
});

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Lap {
    pub driver: String,
    /// Lap number just completed.
    pub lap: u16,
    /// Position at the line.
    pub position: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lap_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s1_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s2_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_ms: Option<u32>,
    /// Gap to the leader (race) or to the fastest lap (practice, qualifying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<u32>,
    /// Gap to the car ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u32>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    Practice,
    Qualifying,
    Sprint,
    Race,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Compound {
    Soft,
    Medium,
    Hard,
    Intermediate,
    Wet,
    Unknown,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    Green,
    Yellow,
    DoubleYellow,
    Red,
    Blue,
    Chequered,
    SafetyCar,
    VirtualSafetyCar,
    SafetyCarEnding,
    Clear,
}
