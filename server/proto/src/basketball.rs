//! Basketball events (NBA rules: four 12-minute periods, 5-minute overtimes).
//!
//! Court frame: `x` in feet along the court from the home team's baseline (0..=94), `y` in feet
//! across it from the left sideline seen from the home bench (0..=50).

use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::Side;
use crate::event::{ScoreCorrection, event_kinds};

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "schema", schemars(rename = "BasketballEvent"))]
pub enum Event {
    /// Teams of the game; first event of a game.
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
    JumpBall {
        /// Team that won the tip.
        side: Side,
    },
    /// Field goal attempt. Score changes when `made`.
    Shot {
        side: Side,
        player: String,
        x: f32,
        y: f32,
        /// 2 or 3.
        #[cfg_attr(feature = "schema", schemars(range(min = 2, max = 3)))]
        points: u8,
        made: bool,
    },
    FreeThrow {
        side: Side,
        player: String,
        made: bool,
        /// This attempt's number, 1-based, and the attempts awarded.
        attempt: u8,
        of: u8,
    },
    Rebound {
        side: Side,
        /// Absent for a team rebound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        player: Option<String>,
        offensive: bool,
    },
    Assist {
        side: Side,
        player: String,
    },
    Turnover {
        side: Side,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        player: Option<String>,
    },
    Steal {
        side: Side,
        player: String,
    },
    Block {
        side: Side,
        player: String,
    },
    Foul {
        side: Side,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        player: Option<String>,
        /// Provider's foul kind, e.g. `personal`, `shooting`, `offensive`, `technical`.
        kind: String,
    },
    Substitution {
        side: Side,
        player_in: String,
        player_out: String,
    },
    Timeout {
        /// Absent for an official's timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        side: Option<Side>,
    },
    /// See [`ScoreCorrection`].
    ScoreCorrection(ScoreCorrection),
}

impl Event {
    /// The players this event names (bounded per game: [`crate::limits::MAX_PLAYERS_PER_GAME`]).
    pub fn people(&self) -> [Option<&str>; 2] {
        match self {
            Event::Shot { player, .. }
            | Event::FreeThrow { player, .. }
            | Event::Assist { player, .. }
            | Event::Steal { player, .. }
            | Event::Block { player, .. } => [Some(player), None],
            Event::Rebound { player, .. } | Event::Turnover { player, .. } | Event::Foul { player, .. } => {
                [player.as_deref(), None]
            }
            Event::Substitution { player_in, player_out, .. } => [Some(player_in), Some(player_out)],
            _ => [None, None],
        }
    }

    /// Points this event scores, and for whom: a made shot its 2 or 3, a made free throw 1.
    /// (A `score_correction` sets the score instead.) The one rule the state fold and the feed
    /// adapters' score checks share.
    pub fn points(&self) -> Option<(Side, u8)> {
        match self {
            Event::Shot { side, points, made: true, .. } => Some((*side, *points)),
            Event::FreeThrow { side, made: true, .. } => Some((*side, 1)),
            _ => None,
        }
    }
}

event_kinds!(Event {
    GameStart => "game_start",
    PeriodStart => "period_start",
    PeriodEnd => "period_end",
    GameEnd => "game_end",
    JumpBall => "jump_ball",
    Shot => "shot",
    FreeThrow => "free_throw",
    Rebound => "rebound",
    Assist => "assist",
    Turnover => "turnover",
    Steal => "steal",
    Block => "block",
    Foul => "foul",
    Substitution => "substitution",
    Timeout => "timeout",
    ScoreCorrection => "score_correction",
});
