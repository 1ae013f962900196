//! The box score's plus-minus reconciles (issue 32): after every event of every real
//! basketball replay in `OPENSPORTS_DATA` (two NBA feeds) and of 50 simulated games, for each
//! team, the players' plus-minus plus the team's `plus_minus_unattributed` is exactly 5 × the
//! margin, and the team's `plus_minus` is the margin, the margin being the server's own game
//! state's (which applies score corrections too). The plugin runs natively, one event at a
//! time, exactly as the server would publish its outputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use basketball_boxscore::Boxscore;
use opensports_plugin_sdk::testing::Session;
use opensports_proto::{Event, Sport};
use opensports_server::pipeline::state::GameState;
use opensports_tests::{SIM_START_US, real_events, sim_events};

/// Checks every event of one game; how many events had a known five on both sides.
fn reconciles(events: &[Event]) -> usize {
    let mut session = Session::<Boxscore>::new(&serde_json::json!({}));
    let mut state = GameState::new(&events[0].game, Sport::Basketball);
    let mut players: [BTreeMap<String, i64>; 2] = Default::default();
    let mut teams: [serde_json::Value; 2] = Default::default();
    let mut known = 0;
    for e in events {
        state.apply(e);
        for o in session.event(e) {
            let v: serde_json::Value = serde_json::from_str(&o.json).unwrap();
            let side = match v["side"].as_str() {
                Some("home") => 0,
                Some("away") => 1,
                _ => continue,
            };
            if let Some(p) = o.name.strip_prefix("player/") {
                players[side].insert(p.to_string(), v["plus_minus"].as_i64().unwrap());
            } else if o.name.starts_with("team/") {
                teams[side] = v;
            }
        }
        let score = state.score.map_or((0, 0), |s| (i64::from(s.home), i64::from(s.away)));
        for (side, margin) in [(0, score.0 - score.1), (1, score.1 - score.0)] {
            if margin == 0 && teams[side].is_null() {
                continue;
            }
            let t = &teams[side];
            let sum: i64 = players[side].values().sum();
            let unattributed = t["plus_minus_unattributed"].as_i64().unwrap();
            assert_eq!(t["plus_minus"], margin, "{} seq {}: team plus-minus is the margin", e.game, e.seq);
            assert_eq!(
                sum + unattributed,
                5 * margin,
                "{} seq {} side {side}: players {sum} + unattributed {unattributed} = 5 × {margin}",
                e.game,
                e.seq
            );
        }
        known += usize::from(teams.iter().all(|t| t["lineup_known"] == true));
    }
    known
}

#[test]
fn plus_minus_reconciles_with_the_margin_at_every_event_of_every_game() {
    let mut games = Vec::new();
    for file in ["nba/nba_live_pbp_0022000001.json", "nba/nba_stats_playbyplayv2_0021900001.json"] {
        match real_events(file) {
            Some(events) => games.push(events),
            None => eprintln!("OPENSPORTS_DATA not set: {file} skipped, simulated games only"),
        }
    }
    for seed in 0..50 {
        games.push(sim_events(Sport::Basketball, seed, SIM_START_US));
    }
    for events in &games {
        let known = reconciles(events);
        // How much of the game had a known five on both sides (the rest is said, not guessed).
        eprintln!("{}: a known five on both sides after {known} of {} events", events[0].game, events.len());
        assert!(known > 0, "{}: the feed's players never made a five", events[0].game);
    }
}
