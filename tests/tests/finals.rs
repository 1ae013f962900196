//! Every shipped feed in `OPENSPORTS_DATA` ends on the official final, and its running score,
//! folded event by event the way the server folds it, only ever goes down through an explicit
//! `score_correction`. A feed file the adapters recognise but this table does not list fails
//! the test: a new feed needs its official result here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use opensports_proto::{Body, basketball, football, soccer};
use opensports_server::feeds::{self, Format};
use opensports_server::pipeline::state::{GameState, Status};

/// Official results, from the data READMEs and the public record: (file, home, away, home
/// points, away points). Team names are as the feed spells them.
const FINALS: &[(&str, &str, &str, u32, u32)] = &[
    // 2020-12-22, GSW 99 @ BKN 125 (nba/README.md).
    ("nba/nba_live_pbp_0022000001.json", "BKN", "GSW", 125, 99),
    // 2019-10-22, NOP 122 @ TOR 130 in overtime (nba/README.md).
    ("nba/nba_stats_playbyplayv2_0021900001.json", "TOR", "NOP", 130, 122),
    // 2019-09-05, GB 10 @ CHI 3 (nfl/README.md).
    ("nfl/nfl_gamecenter_2019090500_GB_at_CHI.json", "CHI", "GB", 3, 10),
    // La Liga 2018-09-23 at Camp Nou: Barcelona 2-2 Girona (Messi, Piqué; Stuani twice).
    ("soccer/statsbomb_15986_events.json", "Barcelona", "Girona", 2, 2),
    // Premier League 2017-09-23 at the King Power: Leicester City 2-3 Liverpool (Salah,
    // Coutinho, Henderson; Okazaki, Vardy). The feed does not say who was at home.
    ("soccer/wyscout_v2_match_2499773_events.json", "Leicester City", "Liverpool", 2, 3),
];

fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("OPENSPORTS_DATA") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            eprintln!("skipped: OPENSPORTS_DATA is not set (CI sets it to ../shared/data, see .ci/run)");
            None
        }
    }
}

fn is_correction(body: &Body) -> bool {
    matches!(
        body,
        Body::Basketball(basketball::Event::ScoreCorrection(_))
            | Body::Football(football::Event::ScoreCorrection(_))
            | Body::Soccer(soccer::Event::ScoreCorrection(_))
    )
}

/// Folds the feed into a game state; panics when a side's score falls on any other event.
/// Returns the final state and how many corrections the feed needed.
fn fold(feed: &feeds::Feed, file: &str) -> (GameState, usize) {
    let first = feed.game.events.first().expect("events");
    let mut state = GameState::new(&feed.game.id, first.event.sport());
    let mut corrections = 0;
    for t in &feed.game.events {
        let before = state.score.unwrap_or_default();
        state.apply(&t.event);
        let after = state.score.unwrap_or_default();
        if is_correction(&t.event.body) {
            corrections += 1;
            eprintln!("{file}: seq {}: {:?}", t.event.seq, t.event.body);
        } else {
            assert!(
                after.home >= before.home && after.away >= before.away,
                "{file}: seq {} ({}) takes the score from {before:?} to {after:?} without a correction",
                t.event.seq,
                t.event.body.kind()
            );
        }
    }
    (state, corrections)
}

#[test]
fn every_shipped_feed_ends_on_the_official_final_and_only_a_correction_lowers_a_score() {
    let Some(dir) = data_dir() else { return };
    let mut seen = 0;
    for sport in ["nba", "nfl", "soccer", "f1"] {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir.join(sport)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let Ok(format) = feeds::detect(&bytes) else { continue };
            let file = format!("{sport}/{}", path.file_name().unwrap().to_string_lossy());
            if format == Format::F1LiveTiming {
                // F1 has no score; its classification is checked against the official one in
                // feeds::f1_live_timing_practice_classification_and_best_laps.
                continue;
            }
            let &(_, home, away, home_pts, away_pts) =
                FINALS.iter().find(|f| f.0 == file).unwrap_or_else(|| {
                    panic!("{file}: an adapter reads it but FINALS has no official result for it")
                });
            let stem = path.file_stem().and_then(|s| s.to_str());
            let opts = feeds::Options { game_id: None, home: Some(home), file_stem: stem };
            let feed = feeds::parse(format, &bytes, &opts).unwrap();
            let (state, corrections) = fold(&feed, &file);
            assert_eq!(state.status, Status::Ended, "{file}");
            assert_eq!((state.home.as_deref(), state.away.as_deref()), (Some(home), Some(away)), "{file}");
            let score = state.score.unwrap();
            assert_eq!((score.home, score.away), (home_pts, away_pts), "{file}: final");
            eprintln!("{file}: {home} {home_pts}-{away_pts} {away}, {corrections} corrections");
            seen += 1;
        }
    }
    assert_eq!(seen, FINALS.len(), "every listed feed was found and checked");
}

#[test]
fn a_statsbomb_replay_is_published_under_its_match_id() {
    let Some(dir) = data_dir() else { return };
    let bytes = std::fs::read(dir.join("soccer/statsbomb_15986_events.json")).unwrap();
    let opts = feeds::Options { file_stem: Some("statsbomb_15986_events"), ..Default::default() };
    assert_eq!(feeds::parse(Format::Statsbomb, &bytes, &opts).unwrap().game.id, "statsbomb-15986");
    let opts = feeds::Options { file_stem: Some("15986"), ..Default::default() };
    assert_eq!(feeds::parse(Format::Statsbomb, &bytes, &opts).unwrap().game.id, "statsbomb-15986");
    let err = feeds::parse(Format::Statsbomb, &bytes, &feeds::Options::default()).unwrap_err();
    assert!(err.to_string().contains("--game-id"), "{err}");
}
