//! American football events (NFL rules). One `play` event per snap (or kick, or penalty).
//!
//! Field frame: `yardline_100` is the distance in yards from the line of scrimmage to the
//! opponent's end zone (1..=99), as nflfastR counts it.

use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::Side;
use crate::event::{ScoreCorrection, event_kinds};

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "schema", schemars(rename = "FootballEvent"))]
pub enum Event {
    GameStart {
        home: String,
        away: String,
    },
    PeriodStart {
        period: u8,
    },
    PeriodEnd {
        period: u8,
    },
    GameEnd,
    Play(Play),
    Timeout {
        side: Side,
    },
    /// See [`ScoreCorrection`].
    ScoreCorrection(ScoreCorrection),
}

event_kinds!(Event {
    GameStart => "game_start",
    PeriodStart => "period_start",
    PeriodEnd => "period_end",
    GameEnd => "game_end",
    Play => "play",
    Timeout => "timeout",
    ScoreCorrection => "score_correction",
});

/// One play, described before the snap (down, distance, yardline) and by its outcome.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Play {
    /// Quarter, 1..=4, 5 for overtime.
    pub quarter: u8,
    /// Team with the ball at the snap.
    pub possession: Side,
    /// 1..=4; absent on kickoffs and tries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<u8>,
    /// Yards to go for a first down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yardline_100: Option<u8>,
    pub play_type: PlayType,
    /// Net yards gained by the possession team (negative for a loss).
    pub yards: i16,
    pub result: PlayResult,
    /// Points scored on this play, and by whom (not always the possession team).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring: Option<Scoring>,
    /// Provider's text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
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
pub enum PlayType {
    Run,
    Pass,
    Punt,
    Kickoff,
    FieldGoal,
    ExtraPoint,
    TwoPoint,
    Kneel,
    Spike,
    Penalty,
    NoPlay,
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
pub enum PlayResult {
    Gain,
    FirstDown,
    Incomplete,
    Sack,
    Interception,
    FumbleLost,
    Touchdown,
    FieldGoalGood,
    FieldGoalMissed,
    ExtraPointGood,
    ExtraPointMissed,
    TwoPointGood,
    TwoPointFailed,
    Punt,
    Touchback,
    Safety,
    TurnoverOnDowns,
    Penalty,
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
pub struct Scoring {
    pub side: Side,
    /// 6 touchdown, 3 field goal, 2 safety or two-point try, 1 extra point.
    pub points: u8,
}
