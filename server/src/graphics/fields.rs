//! The default field map of each sport: `(key, "topic:/pointer|format")`. Every field is listed
//! with what it holds in README.md ("Graphics outputs"); operators add their own per sport.
//!
//! Sources: `state` is `game/{id}/state` (PROTOCOL.md), `winprob` is `game/{id}/winprob`, the
//! others are the built-in plugins' outputs (plugin-sdk/README.md).

use opensports_proto::Sport;

use super::Field;

const COMMON: &[(&str, &str)] = &[
    ("game", "state:/game"),
    ("sport", "state:/sport"),
    ("status", "state:/status"),
    ("home", "state:/home"),
    ("away", "state:/away"),
    ("period", "state:/period"),
    ("clock", "state:/clock_ms|mmss"),
    ("last_seq", "state:/last_seq"),
];

const SCORE: &[(&str, &str)] = &[("home_score", "state:/score/home"), ("away_score", "state:/score/away")];

const WIN_PROBABILITY: &[(&str, &str)] =
    &[("home_win_pct", "winprob:/home|pct"), ("away_win_pct", "winprob:/away|pct")];

const BASKETBALL: &[(&str, &str)] = &[
    ("possession", "state:/basketball/possession"),
    ("home_fouls", "state:/basketball/team_fouls/home"),
    ("away_fouls", "state:/basketball/team_fouls/away"),
    ("home_timeouts_used", "state:/basketball/timeouts/home"),
    ("away_timeouts_used", "state:/basketball/timeouts/away"),
    ("home_fg", "basketball-boxscore/team/home:/fgm"),
    ("home_fga", "basketball-boxscore/team/home:/fga"),
    ("home_fg3", "basketball-boxscore/team/home:/fg3m"),
    ("home_fg3a", "basketball-boxscore/team/home:/fg3a"),
    ("home_ft", "basketball-boxscore/team/home:/ftm"),
    ("home_fta", "basketball-boxscore/team/home:/fta"),
    ("home_oreb", "basketball-boxscore/team/home:/oreb"),
    ("home_dreb", "basketball-boxscore/team/home:/dreb"),
    ("home_ast", "basketball-boxscore/team/home:/ast"),
    ("home_tov", "basketball-boxscore/team/home:/tov"),
    ("away_fg", "basketball-boxscore/team/away:/fgm"),
    ("away_fga", "basketball-boxscore/team/away:/fga"),
    ("away_fg3", "basketball-boxscore/team/away:/fg3m"),
    ("away_fg3a", "basketball-boxscore/team/away:/fg3a"),
    ("away_ft", "basketball-boxscore/team/away:/ftm"),
    ("away_fta", "basketball-boxscore/team/away:/fta"),
    ("away_oreb", "basketball-boxscore/team/away:/oreb"),
    ("away_dreb", "basketball-boxscore/team/away:/dreb"),
    ("away_ast", "basketball-boxscore/team/away:/ast"),
    ("away_tov", "basketball-boxscore/team/away:/tov"),
];

const FOOTBALL: &[(&str, &str)] = &[
    ("possession", "state:/football/possession"),
    ("down", "state:/football/down|ordinal"),
    ("distance", "state:/football/distance"),
    ("yardline_100", "state:/football/yardline_100"),
    ("home_timeouts", "state:/football/timeouts_remaining/home"),
    ("away_timeouts", "state:/football/timeouts_remaining/away"),
    ("last_play", "state:/football/last_play/desc"),
    ("last_play_yards", "state:/football/last_play/yards"),
    ("expected_points", "winprob:/ep"),
];

const SOCCER: &[(&str, &str)] = &[
    ("home_shots", "state:/soccer/shots/home"),
    ("away_shots", "state:/soccer/shots/away"),
    ("home_shots_on_target", "state:/soccer/shots_on_target/home"),
    ("away_shots_on_target", "state:/soccer/shots_on_target/away"),
    ("home_yellow_cards", "state:/soccer/yellow_cards/home"),
    ("away_yellow_cards", "state:/soccer/yellow_cards/away"),
    ("home_red_cards", "state:/soccer/red_cards/home"),
    ("away_red_cards", "state:/soccer/red_cards/away"),
    ("home_xg", "soccer-shots/xg:/home"),
    ("away_xg", "soccer-shots/xg:/away"),
];

const F1: &[(&str, &str)] = &[
    ("session", "state:/f1/session"),
    ("lap", "state:/f1/lap"),
    ("total_laps", "state:/f1/total_laps"),
    ("flag", "state:/f1/flag"),
];

/// Cars of an F1 top-N board.
pub const F1_TOP: usize = 10;

/// The defaults of `sport`, in order.
pub fn defaults(sport: Sport) -> Vec<Field> {
    let mut specs: Vec<(String, String)> = Vec::new();
    let mut add =
        |list: &[(&str, &str)]| specs.extend(list.iter().map(|(k, s)| (k.to_string(), s.to_string())));
    add(COMMON);
    match sport {
        Sport::Basketball => {
            add(SCORE);
            add(WIN_PROBABILITY);
            add(BASKETBALL);
        }
        Sport::Football => {
            add(SCORE);
            add(WIN_PROBABILITY);
            add(FOOTBALL);
        }
        Sport::Soccer => {
            add(SCORE);
            add(SOCCER);
        }
        Sport::F1 => {
            add(F1);
            for i in 0..F1_TOP {
                let p = i + 1;
                for (what, path) in [
                    ("driver", "driver"),
                    ("gap_ms", "gap_ms"),
                    ("interval_ms", "interval_ms"),
                    ("last_lap", "last_lap_ms|mmss"),
                    ("tyre", "compound"),
                    ("pit_stops", "pit_stops"),
                ] {
                    specs.push((format!("p{p}_{what}"), format!("state:/f1/cars/{i}/{path}")));
                }
            }
        }
    }
    specs.iter().filter_map(|(k, s)| Field::parse(k, s).ok()).collect()
}
