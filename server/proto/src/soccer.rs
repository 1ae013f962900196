//! Soccer events.
//!
//! Pitch frame: metres on a 105 × 68 pitch, `x` from the acting team's own goal line towards
//! the goal it attacks, `y` from its right touchline. The score changes only on `goal` events
//! (a shot that scores is followed by a `goal`; an own goal is a `goal` with `own_goal: true`,
//! credited to `side`, the team that benefits).

use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::Side;
use crate::event::{ScoreCorrection, event_kinds};

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "schema", schemars(rename = "SoccerEvent"))]
pub enum Event {
    GameStart {
        home: String,
        away: String,
    },
    /// 1, 2 halves; 3, 4 extra time; 5 penalty shoot-out.
    PeriodStart {
        period: u8,
    },
    PeriodEnd {
        period: u8,
    },
    GameEnd,
    Pass {
        side: Side,
        player: String,
        x: f32,
        y: f32,
        end_x: f32,
        end_y: f32,
        completed: bool,
    },
    Shot {
        side: Side,
        player: String,
        x: f32,
        y: f32,
        body_part: BodyPart,
        outcome: ShotOutcome,
        /// The provider's own expected-goals value for this shot, when the feed has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_xg: Option<f32>,
    },
    Goal {
        /// Team credited with the goal.
        side: Side,
        player: String,
        #[serde(default)]
        own_goal: bool,
    },
    Foul {
        side: Side,
        player: String,
    },
    Card {
        side: Side,
        player: String,
        card: Card,
    },
    Substitution {
        side: Side,
        player_in: String,
        player_out: String,
    },
    /// See [`ScoreCorrection`].
    ScoreCorrection(ScoreCorrection),
}

impl Event {
    /// The players this event names (bounded per game: [`crate::limits::MAX_PLAYERS_PER_GAME`]).
    pub fn people(&self) -> [Option<&str>; 2] {
        match self {
            Event::Pass { player, .. }
            | Event::Shot { player, .. }
            | Event::Goal { player, .. }
            | Event::Foul { player, .. }
            | Event::Card { player, .. } => [Some(player), None],
            Event::Substitution { player_in, player_out, .. } => [Some(player_in), Some(player_out)],
            _ => [None, None],
        }
    }
}

event_kinds!(Event {
    GameStart => "game_start",
    PeriodStart => "period_start",
    PeriodEnd => "period_end",
    GameEnd => "game_end",
    Pass => "pass",
    Shot => "shot",
    Goal => "goal",
    Foul => "foul",
    Card => "card",
    Substitution => "substitution",
    ScoreCorrection => "score_correction",
});

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
pub enum BodyPart {
    RightFoot,
    LeftFoot,
    Head,
    Other,
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
pub enum ShotOutcome {
    Goal,
    Saved,
    OffTarget,
    Blocked,
    Post,
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
pub enum Card {
    Yellow,
    SecondYellow,
    Red,
}
