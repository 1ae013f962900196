//! ONNX models: every shipped model loads, runs on the direct evaluator and agrees with
//! onnxruntime on a fixed table;
//! broken models are refused with the field at fault; the core win probability is published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use opensports_proto::Sport;
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_server::model::{ModelError, ModelRegistry};
use opensports_server::sim;
use opensports_tests::{SIM_START_US, TestServer, WAIT, read_until, sim_events, workspace};

fn models_dir() -> std::path::PathBuf {
    workspace().join("models")
}

#[test]
fn every_shipped_model_matches_onnxruntime_to_1e5() {
    let (reg, errors) = ModelRegistry::load(&models_dir());
    assert!(errors.is_empty(), "{errors:?}");
    let names: Vec<String> = reg.specs().map(|s| s.name.clone()).collect();
    for name in ["soccer_xg", "soccer_xg_geo", "nfl_wp", "nba_wp", "nfl_ep", "f1_win", "f1_podium"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
        // Every shipped graph is a plain stack: it runs on the direct evaluator (which agreed
        // with tract at load), and that is what must match onnxruntime below.
        assert!(reg.get(name).unwrap().direct(), "{name} fell back to tract");
        let table: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(models_dir().join(format!("testdata/{name}.json"))).unwrap(),
        )
        .unwrap();
        let rows = table["rows"].as_array().unwrap();
        assert!(rows.len() >= 16);
        for row in rows {
            let input: Vec<f32> =
                row["input"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            // One probability, or a row of outputs (nfl_ep: expected points, then each class).
            let want: Vec<f64> = match row.get("outputs") {
                Some(v) => v.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect(),
                None => vec![row["prob"].as_f64().unwrap()],
            };
            let mut out = [0f32; 16];
            let n = reg.infer(name, &input, &mut out).unwrap();
            assert_eq!(n, want.len(), "{name}: output count");
            for (got, want) in out.iter().zip(&want) {
                assert!((f64::from(*got) - want).abs() <= 1e-5, "{name}: tract {got} vs onnxruntime {want}");
            }
        }
        // Wrong input length is refused, not guessed.
        assert!(reg.infer(name, &[0.0], &mut [0f32; 4]).is_err());
    }
}

/// Writes a manifest with one model entry (from the shipped nba_wp one, changed by `edit`).
fn manifest_with(dir: &Path, edit: impl FnOnce(&mut toml::Table)) {
    let shipped: toml::Table =
        toml::from_str(&std::fs::read_to_string(models_dir().join("manifest.toml")).unwrap()).unwrap();
    let mut entry = shipped["model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some("nba_wp"))
        .unwrap()
        .as_table()
        .unwrap()
        .clone();
    std::fs::copy(models_dir().join("nba_wp.onnx"), dir.join("nba_wp.onnx")).unwrap();
    edit(&mut entry);
    let mut m = toml::Table::new();
    m.insert("model".into(), toml::Value::Array(vec![toml::Value::Table(entry)]));
    std::fs::write(dir.join("manifest.toml"), toml::to_string(&m).unwrap()).unwrap();
}

fn refused(edit: impl FnOnce(&mut toml::Table)) -> ModelError {
    let dir = tempfile::tempdir().unwrap();
    manifest_with(dir.path(), edit);
    let (reg, mut errors) = ModelRegistry::load(dir.path());
    assert_eq!(reg.specs().count(), 0, "the model must not be loaded");
    assert_eq!(errors.len(), 1);
    errors.remove(0)
}

#[test]
fn broken_models_are_refused_naming_the_field() {
    let e = refused(|m| {
        m.insert("sha256".into(), "00".repeat(32).into());
    });
    assert!(matches!(e, ModelError::Hash { .. }) && e.to_string().contains("sha256"), "{e}");

    let e = refused(|m| {
        m.insert("input_shape".into(), toml::Value::Array(vec![1.into(), 7.into()]));
    });
    assert!(e.to_string().contains("input_shape"), "{e}");

    let e = refused(|m| {
        m.insert("output_shape".into(), toml::Value::Array(vec![1.into(), 2.into()]));
    });
    assert!(e.to_string().contains("output_shape"), "{e}");

    let e = refused(|m| {
        m.insert("file".into(), "missing.onnx".into());
    });
    assert!(matches!(e, ModelError::File { .. }) && e.to_string().contains("missing.onnx"), "{e}");

    // An operator tract cannot run.
    let bad = workspace().join("tests/fixtures/models/unsupported_op.onnx");
    let bytes = std::fs::read(&bad).unwrap();
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
    };
    let e = refused(|m| {
        m.insert("file".into(), bad.display().to_string().into());
        m.insert("sha256".into(), sha.into());
        m.insert("inputs".into(), toml::Value::Array(vec!["a".into(), "b".into()]));
        m.insert("input_shape".into(), toml::Value::Array(vec![1.into(), 2.into()]));
    });
    assert!(matches!(e, ModelError::Ops { .. }) && e.to_string().contains("ops"), "{e}");

    // A good model still loads through the same path.
    let dir = tempfile::tempdir().unwrap();
    manifest_with(dir.path(), |_| {});
    let (reg, errors) = ModelRegistry::load(dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    assert!(reg.get("nba_wp").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn winprob_is_published_for_basketball_and_football_and_favours_the_winner() {
    let server = TestServer::start().await;
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/+/winprob"], Mode::Latest).await.unwrap();
    let mut every = server.subscriber().await;
    every.subscribe_and_wait(&["game/+/winprob"], Mode::All).await.unwrap();
    let games: Vec<_> =
        [Sport::Basketball, Sport::Football].iter().map(|s| sim::generate(*s, 3, 0)).collect();
    let mut publisher = server.publisher().await;
    sim::publish(&mut publisher, &games, sim::Speed::Max, |_, _| {}).await.unwrap();
    publisher.flush(WAIT).await.unwrap();
    for g in &games {
        server.wait_for_seq(&g.id, g.events.len() as u64).await;
    }
    let mut last = std::collections::BTreeMap::new();
    let _ = read_until(&mut sub, WAIT, |m| {
        if let ServerMsg::Msg(p) = m {
            last.insert(p.topic.clone(), p.data.clone());
        }
        last.len() == 2
            && last.values().all(|d| d["home"].as_f64().is_some_and(|h| !(0.1..=0.9).contains(&h)))
    })
    .await;
    for g in &games {
        let (_, body) = server.get(&format!("/v1/games/{}", g.id)).await;
        let state: serde_json::Value = serde_json::from_str(&body).unwrap();
        let home_won = state["score"]["home"].as_u64() > state["score"]["away"].as_u64();
        let wp = &last[&format!("game/{}/winprob", g.id)];
        let home = wp["home"].as_f64().unwrap();
        assert!((wp["away"].as_f64().unwrap() + home - 1.0).abs() < 1e-3);
        assert_eq!(home > 0.5, home_won, "{}: {wp} with score {}", g.id, state["score"]);
    }
    // Football carries the expected points of the side with the ball (nfl_ep), basketball not.
    let football = format!("game/{}/winprob", games[1].id);
    let (mut with_ep, mut basketball_ep) = (0, 0);
    let _ = read_until(&mut every, WAIT, |m| {
        if let ServerMsg::Msg(p) = m {
            let ep = p.data.get("ep").and_then(|v| v.as_f64());
            if p.topic == football {
                with_ep += usize::from(ep.is_some_and(|ep| (-7.0..=7.0).contains(&ep)));
            } else {
                basketball_ep += usize::from(ep.is_some());
            }
        }
        with_ep >= 20
    })
    .await;
    assert!(with_ep >= 20, "football winprob messages with ep: {with_ep}");
    assert_eq!(basketball_ep, 0);
    let (_, models) = server.get("/v1/models").await;
    assert!(models.contains("nba_wp") && models.contains("holdout"), "{models}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_races_publish_each_drivers_win_and_podium_chances_summing_to_the_places() {
    let server = TestServer::start().await;
    let mut every = server.subscriber().await;
    every.subscribe_and_wait(&["game/+/winprob"], Mode::All).await.unwrap();
    let race = sim::generate(Sport::F1, 5, 0);
    let mut publisher = server.publisher().await;
    sim::publish(&mut publisher, std::slice::from_ref(&race), sim::Speed::Max, |_, _| {}).await.unwrap();
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&race.id, race.events.len() as u64).await;
    let (_, body) = server.get(&format!("/v1/games/{}", race.id)).await;
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (laps, winner) =
        (state["f1"]["total_laps"].as_u64().unwrap(), state["f1"]["cars"][0]["driver"].clone());
    let mut msgs: Vec<serde_json::Value> = Vec::new();
    let _ = read_until(&mut every, WAIT, |m| {
        if let ServerMsg::Msg(p) = m {
            msgs.push(p.data.clone());
        }
        msgs.last()
            .is_some_and(|d| d["lap"].as_u64() == Some(laps) && d["drivers"].as_array().unwrap().len() == 20)
    })
    .await;
    assert!(msgs.len() > laps as usize, "one message per lap line at least: {}", msgs.len());
    for m in &msgs {
        let drivers = m["drivers"].as_array().unwrap();
        let sum = |k: &str| drivers.iter().map(|d| d[k].as_f64().unwrap()).sum::<f64>();
        let places = (drivers.len() as f64).min(3.0);
        assert!((sum("win") - 1.0).abs() < 2e-3, "win sums to {}: {m}", sum("win"));
        assert!(sum("podium") <= places + 2e-3, "podium sums to {}: {m}", sum("podium"));
        assert!(drivers.iter().all(|d| (0.0..=1.0).contains(&d["podium"].as_f64().unwrap())));
        assert_eq!(m["model"], "f1_win");
    }
    let full: Vec<&serde_json::Value> =
        msgs.iter().filter(|m| m["drivers"].as_array().unwrap().len() == 20).collect();
    let leader_win = |m: &serde_json::Value| m["drivers"][0]["win"].as_f64().unwrap();
    let (first, last) = (full[0], full[full.len() - 1]);
    assert!(leader_win(first) < 0.8, "after lap 1 the race is open: {first}");
    assert_eq!(last["drivers"][0]["driver"], winner, "running order is the published order");
    assert!(leader_win(last) > 0.9, "on the last lap the leader has won: {last}");
    let (_, models) = server.get("/v1/models").await;
    assert!(models.contains("f1_win") && models.contains("non-commercial"), "{models}");
    server.shutdown().await;
}

#[test]
fn plugins_reach_models_through_infer() {
    use opensports_server::plugin::harness::Harness;
    let wasm = std::fs::read(opensports_tests::plugin_wasm("soccer-shots")).unwrap();
    let events: Vec<_> = sim_events(Sport::Soccer, 2, 0);
    let run = |models: ModelRegistry| {
        let cache = tempfile::tempdir().unwrap();
        let mut h =
            Harness::new("soccer-shots", &wasm, b"{}", cache.path(), &std::sync::Arc::new(models), None)
                .unwrap();
        h.run(&events)
            .unwrap()
            .into_iter()
            .filter(|l| l.topic.ends_with("/shot"))
            .map(|l| serde_json::from_str::<serde_json::Value>(l.data.get()).unwrap())
            .collect::<Vec<_>>()
    };
    let with = run(ModelRegistry::load(&models_dir()).0);
    assert!(!with.is_empty());
    assert!(
        with.iter()
            .all(|s| s["xg_source"] == "model" && s["xg"].as_f64().is_some_and(|x| x > 0.0 && x < 1.0))
    );
    let without = run(ModelRegistry::default());
    assert!(
        without.iter().all(|s| s["xg_source"] == "geometry"),
        "documented fallback when the model is absent"
    );
    assert_ne!(with[0]["xg"], without[0]["xg"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_switch_at_an_event_boundary_and_are_scored_on_outcomes() {
    // nba_wp version 1 active and version 2 (the same weights) as shadow.
    let dir = tempfile::tempdir().unwrap();
    manifest_with(dir.path(), |_| {});
    let text = std::fs::read_to_string(dir.path().join("manifest.toml")).unwrap();
    let mut m: toml::Table = toml::from_str(&text).unwrap();
    let models = m["model"].as_array_mut().unwrap();
    let mut v2 = models[0].as_table().unwrap().clone();
    v2.insert("version".into(), "2".into());
    v2.insert("active".into(), false.into());
    v2.insert("shadow".into(), true.into());
    models.push(toml::Value::Table(v2));
    std::fs::write(dir.path().join("manifest.toml"), toml::to_string(&m).unwrap()).unwrap();
    let models_dir = dir.path().to_path_buf();
    let server = TestServer::start_with(move |c| c.models.dir = models_dir).await;

    let game: Vec<_> = sim_events(Sport::Basketball, 4, 0);
    let id = game[0].game.clone();
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&[&format!("game/{id}/winprob")], Mode::All).await.unwrap();
    let mut publisher = server.publisher().await;
    let half = game.len() / 2;
    for e in &game[..half] {
        publisher.send(e).await.unwrap();
    }
    server.wait_for_seq(&id, half as u64).await;
    let (status, body) = server
        .admin_post("/v1/models/nba_wp/activate", "application/json", r#"{"version":"2"}"#.as_bytes())
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server
        .admin_post("/v1/models/nba_wp/activate", "application/json", r#"{"version":"9"}"#.as_bytes())
        .await;
    assert_eq!(status, 404);
    for e in &game[half..] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let n = game.len() as u64;
    let msgs = read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Msg(p) if p.seq == n)).await;
    let pubs = opensports_tests::publications(&msgs);
    assert_eq!(pubs.len() as u64, n, "one win probability per event, none dropped or doubled");
    let versions: Vec<&str> = pubs.iter().map(|p| p.data["version"].as_str().unwrap()).collect();
    assert!(
        versions[..half].iter().all(|v| *v == "1") && versions[half..].iter().all(|v| *v == "2"),
        "{versions:?}"
    );

    // The shadow was scored beside the active version, and both were scored on the result.
    assert!(server.metric(r#"opensports_model_shadow_abs_diff_count{model="nba_wp"}"#).await >= half as f64);
    // The shard settles right after publishing the last win probability: give it a moment.
    let mut report = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, body) = server.get("/v1/models").await;
        report = serde_json::from_str(&body).unwrap();
        if report["models"].as_array().unwrap().iter().all(|v| v["live"]["predictions"].as_u64() > Some(0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for v in report["models"].as_array().unwrap() {
        let live = &v["live"];
        assert!(live["predictions"].as_u64().unwrap() >= half as u64, "{v}");
        let brier = live["brier"].as_f64().unwrap();
        assert!(brier > 0.0 && brier < 0.5, "{v}");
    }
    server.shutdown().await;
}

fn with_teams(seed: u64, home: &str, away: &str, id: &str) -> Vec<opensports_proto::Event> {
    use opensports_proto::{Body, basketball as bk};
    let mut events = sim_events(Sport::Basketball, seed, SIM_START_US);
    for e in &mut events {
        e.game = id.into();
        if let Body::Basketball(bk::Event::GameStart { home: h, away: a }) = &mut e.body {
            (*h, *a) = (home.into(), away.into());
        }
    }
    events
}

async fn rating(server: &TestServer, team: &str) -> f64 {
    let (_, body) = server.get("/v1/ratings").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["ratings"]["basketball"][team].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_drive_winprob_move_once_per_result_and_survive_restarts() {
    let mut server = TestServer::start().await;
    // The seed (models/ratings.json) rates these two far apart.
    let (strong, weak) = ("GSW", "PHX");
    let (rs, rw) = (rating(&server, strong).await, rating(&server, weak).await);
    assert!(rs - rw > 100.0, "{strong} {rs} vs {weak} {rw}");

    // Same events, teams swapped: at tip-off only the ratings differ.
    let a = with_teams(4, strong, weak, "rate-a");
    let b = with_teams(4, weak, strong, "rate-b");
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/+/winprob"], Mode::All).await.unwrap();
    let mut publisher = server.publisher().await;
    for e in a.iter().chain(&b) {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    // The two games are on their own shards: wait for the first message of both.
    let mut firsts = 0;
    let msgs = read_until(&mut sub, WAIT, |m| {
        firsts += usize::from(matches!(m, ServerMsg::Msg(p) if p.seq == 1));
        firsts == 2
    })
    .await;
    let first = |topic: &str| {
        msgs.iter()
            .find_map(|m| match m {
                ServerMsg::Msg(p) if p.topic == topic => p.data["home"].as_f64(),
                _ => None,
            })
            .unwrap()
    };
    let (pa, pb) = (first("game/rate-a/winprob"), first("game/rate-b/winprob"));
    assert!(pa > 0.6 && pb < 0.5 && pa > pb + 0.15, "strong at home {pa}, weak at home {pb}");

    // Both games ended: each result applied once, with the Elo update from the seed ratings.
    let score = |id: &str, last: usize| {
        let id = id.to_string();
        let server = &server;
        async move {
            server.wait_for_seq(&id, last as u64).await;
            let (_, body) = server.get(&format!("/v1/games/{id}")).await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            (
                v["score"]["home"].as_f64().unwrap(),
                v["score"]["away"].as_f64().unwrap(),
                v["status"] == "ended",
            )
        }
    };
    let ((ha, aa, ended_a), (hb, ab, ended_b)) =
        (score("rate-a", a.len()).await, score("rate-b", b.len()).await);
    assert!(ended_a && ended_b);
    let elo = |rh: f64, ra: f64, home_score: f64| {
        let delta = 20.0 * (home_score - 1.0 / (1.0 + 10f64.powf(-(rh + 100.0 - ra) / 400.0)));
        (rh + delta, ra - delta)
    };
    let result = |h: f64, a: f64| {
        if h > a {
            1.0
        } else if h < a {
            0.0
        } else {
            0.5
        }
    };
    // The two games end on their own shards, in either order; each order is exact Elo.
    let a_first = {
        let (s1, w1) = elo(rs, rw, result(ha, aa));
        let (w2, s2) = elo(w1, s1, result(hb, ab));
        (s2, w2)
    };
    let b_first = {
        let (w1, s1) = elo(rw, rs, result(hb, ab));
        elo(s1, w1, result(ha, aa))
    };
    let near =
        |got: (f64, f64), want: (f64, f64)| (got.0 - want.0).abs() < 0.06 && (got.1 - want.1).abs() < 0.06;
    let mut got = (0.0, 0.0);
    for _ in 0..100 {
        got = (rating(&server, strong).await, rating(&server, weak).await);
        if near(got, a_first) || near(got, b_first) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(near(got, a_first) || near(got, b_first), "got {got:?}, want {a_first:?} or {b_first:?}");
    let (s2, w2) = got;

    // A restart replays both games (ended within the TTL) without counting them again, and
    // gives the same win probabilities (pinned pre-game differences).
    server.restart().await;
    assert_eq!((rating(&server, strong).await, rating(&server, weak).await), (s2, w2), "not counted again");
    let mut sub = server.subscriber().await;
    let replayed = opensports_tests::from_start(&mut sub, "game/rate-a/winprob").await;
    let again = replayed
        .iter()
        .find_map(|m| match m {
            ServerMsg::Msg(p) if p.seq == 1 => p.data["home"].as_f64(),
            _ => None,
        })
        .unwrap();
    assert_eq!(again, pa, "the replay gives the same first win probability");
    server.shutdown().await;
}

/// The real data (`OPENSPORTS_DATA`) when it is set and the training requirements are
/// installed (`pip install -r models/train/requirements.txt`, which tests/run does; CI must).
fn training_data() -> Option<std::path::PathBuf> {
    let Some(data) = std::env::var_os("OPENSPORTS_DATA").map(std::path::PathBuf::from) else {
        eprintln!("skipped: OPENSPORTS_DATA is not set");
        return None;
    };
    let probe =
        std::process::Command::new("python3").args(["-c", "import pandas, onnxruntime, sklearn"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(std::env::var_os("CI").is_none(), "CI must install models/train/requirements.txt");
        eprintln!("skipped: the training requirements are not installed");
        return None;
    }
    Some(data)
}

/// The server builds the F1 models' inputs the training rows hold (issue 35's timing
/// features): a real race from the training tables (Abu Dhabi 2021: pit stops, a late safety
/// car), written as F1 events by `models/train/f1_replay.py`, is applied to a game state; after
/// every lap each car's inputs from `f1_features` equal the training row's (on a lap right
/// after a car retires, all but the three read off other cars: the server keeps it a lap).
#[test]
fn the_server_builds_the_f1_inputs_the_models_were_trained_on() {
    use opensports_proto::{Body, Event, f1};
    use opensports_server::pipeline::state::{Detail, GameState};
    use opensports_server::pipeline::winprob::{F1_INPUTS, F1Field, f1_features, f1_running};
    let Some(data) = training_data() else { return };
    let out = std::process::Command::new("python3")
        .arg(workspace().join("models/train/f1_replay.py"))
        .args(["--race", "2021-22"])
        .env("OPENSPORTS_DATA", &data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let race: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(race["inputs"].as_array().unwrap().len(), F1_INPUTS);
    let mut want: std::collections::BTreeMap<(u64, String), Vec<f64>> = race["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let input = r["input"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            ((r["lap"].as_u64().unwrap(), r["driver"].as_str().unwrap().to_owned()), input)
        })
        .collect();
    let events: Vec<f1::Event> = serde_json::from_value(race["events"].clone()).unwrap();
    let mut state = GameState::new("yas-2021", Sport::F1);
    let (mut compared, mut skipped, mut pitted) = (0, 0, 0);
    for (i, e) in events.iter().enumerate() {
        let seq = i as u64 + 1;
        state.apply(&Event {
            v: 1,
            game: "yas-2021".into(),
            seq,
            ts: seq as i64,
            clock_ms: None,
            body: Body::F1(e.clone()),
        });
        // After the last lap line of a lap (the next event is another lap's, or none).
        let f1::Event::Lap(line) = e else { continue };
        if matches!(events.get(i + 1), Some(f1::Event::Lap(next)) if next.lap == line.lap) {
            continue;
        }
        let Detail::F1(d) = &state.detail else { panic!() };
        let lap = u64::from(line.lap);
        // A car that retired on the lap before still counts as running in the server for a lap
        // (the car behind, the field's medians: the last three inputs); on those laps the
        // others are compared.
        let running = want.keys().filter(|(l, _)| *l == lap).count();
        let inputs = if d.cars.iter().filter(|c| f1_running(d, c)).count() == running {
            F1_INPUTS
        } else {
            skipped += 1;
            F1_INPUTS - 3
        };
        let field = F1Field::of(d);
        for (idx, car) in d.cars.iter().enumerate().filter(|(_, c)| u64::from(c.lap) == lap) {
            let Some(row) = want.remove(&(lap, car.driver.clone())) else { continue };
            let got = f1_features(d, &field, idx).unwrap();
            for (k, (g, w)) in got.iter().zip(&row).enumerate().take(inputs) {
                let name = &race["inputs"][k];
                assert!((f64::from(*g) - w).abs() < 2e-3, "lap {lap} {}: {name} {g} vs {w}", car.driver);
            }
            pitted += usize::from(car.pit_stops > 0 && got[9] < 0.1);
            compared += 1;
        }
    }
    assert!(want.is_empty(), "every training row has its car and lap in the state: {:?}", want.keys());
    assert!(compared > 900 && skipped <= 8, "{compared} rows compared, {skipped} laps after a retirement");
    assert!(pitted > 10, "fresh tyres after a stop seen: {pitted}");
}

/// `models/train/evaluate.py` from the command line (issue 35): any table of the training
/// format, F1 included; a tied game is left out of win-probability scores and counted (never a
/// home loss); a missing data directory is a clear error. Needs the training requirements
/// (`pip install -r models/train/requirements.txt`, which tests/run does) and the real tables.
#[test]
fn evaluate_py_scores_any_table_leaves_ties_out_and_says_where_the_data_is() {
    let Some(data) = training_data() else { return };
    let python = |args: &[&std::ffi::OsStr], data: &std::ffi::OsStr| {
        std::process::Command::new("python3")
            .arg(workspace().join("models/train/evaluate.py"))
            .args(args)
            .env("OPENSPORTS_DATA", data)
            .output()
            .unwrap()
    };
    // The 2018 season's plays (two tied games in it), cut from the table in place.
    let table = std::fs::read_to_string(data.join("train/nfl_plays_2009_2018.csv")).unwrap();
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let season = header.split(',').position(|c| c == "season").unwrap();
    let win = header.split(',').position(|c| c == "home_win").unwrap();
    let game = header.split(',').position(|c| c == "game_id").unwrap();
    let rows: Vec<&str> = lines.filter(|l| l.split(',').nth(season) == Some("2018")).collect();
    let tied: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|l| l.split(',').nth(win) == Some("0.5"))
        .map(|l| l.split(',').nth(game).unwrap())
        .collect();
    let tied_rows = rows.iter().filter(|l| l.split(',').nth(win) == Some("0.5")).count();
    assert!(!tied.is_empty(), "the 2018 season has tied games");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("nfl_2018.csv");
    std::fs::write(&csv, format!("{header}\n{}\n", rows.join("\n"))).unwrap();

    let out = python(&["nfl_wp".as_ref(), csv.as_os_str()], data.as_os_str());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["ties_excluded"], tied.len(), "{m}");
    // Left out: the same scores as the table without the tied games' rows.
    let untied: Vec<&str> = rows.iter().copied().filter(|l| l.split(',').nth(win) != Some("0.5")).collect();
    assert_eq!(untied.len(), rows.len() - tied_rows);
    let csv2 = dir.path().join("nfl_2018_untied.csv");
    std::fs::write(&csv2, format!("{header}\n{}\n", untied.join("\n"))).unwrap();
    let out2 = python(&["nfl_wp".as_ref(), csv2.as_os_str()], data.as_os_str());
    let m2: serde_json::Value = serde_json::from_slice(&out2.stdout).unwrap();
    assert_eq!(m2["ties_excluded"], 0);
    for k in ["n", "log_loss", "brier", "calibration_error_home", "calibration_error_possession"] {
        assert_eq!(m[k], m2[k], "{k}: a tied game is left out, not scored as a home loss");
    }
    for k in ["log_loss", "calibration_error_home", "calibration_error_possession"] {
        assert!(m[k].as_f64().is_some_and(|v| v > 0.0 && v < 1.0), "{k}: {m}");
    }

    let f1 = data.join("train/f1");
    let out =
        python(&["f1_win".as_ref(), f1.as_os_str(), "--seasons".as_ref(), "2024".as_ref()], data.as_os_str());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["seasons"], "2024-2024");
    assert!(m["laps"].as_u64().unwrap() > 500, "{m}");
    assert!(m["position_only"]["winner_log_loss"].as_f64().is_some(), "the baseline beside it: {m}");

    // eras.py holds out exactly the season evaluate.py scores (same plays), from both sides.
    let eras = std::process::Command::new("python3")
        .arg(workspace().join("models/train/eras.py"))
        .args(["--seasons", "2018-2018", "--sample", "20000"])
        .env("OPENSPORTS_DATA", &data)
        .output()
        .unwrap();
    assert!(eras.status.success(), "{}", String::from_utf8_lossy(&eras.stderr));
    let table = String::from_utf8_lossy(&eras.stdout);
    let rows: Vec<Vec<&str>> =
        table.lines().filter(|l| l.starts_with("| 2018 ")).map(|l| l.split(" | ").collect()).collect();
    assert_eq!(rows.len(), 2, "plain and recency-weighted: {table}");
    for r in &rows {
        assert_eq!(r[2], m2["n"].to_string(), "the held-out plays: {table}");
        for col in [3, 4, 5] {
            assert!(r[col].parse::<f64>().is_ok_and(|v| v > 0.0 && v < 1.0), "{r:?}");
        }
        assert!(r[7].contains("Q4"), "by quarter: {r:?}");
    }

    // xg_competitions.py's World Cup 2022 row is the shipped soccer_xg (same recipe, same
    // split): its log loss is what evaluate.py gives the shipped .onnx on those shots.
    let shots = std::fs::read_to_string(data.join("train/soccer_shots.csv")).unwrap();
    let (head, body) = shots.split_once('\n').unwrap();
    let wc: Vec<&str> = body.lines().filter(|l| l.contains(",FIFA World Cup,2022,")).collect();
    assert!(wc.len() > 1000, "World Cup 2022 shots: {}", wc.len());
    let wc_csv = dir.path().join("wc2022.csv");
    std::fs::write(&wc_csv, format!("{head}\n{}\n", wc.join("\n"))).unwrap();
    let out = python(&["soccer_xg".as_ref(), wc_csv.as_os_str()], data.as_os_str());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shipped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let xg = std::process::Command::new("python3")
        .arg(workspace().join("models/train/xg_competitions.py"))
        .env("OPENSPORTS_DATA", &data)
        .output()
        .unwrap();
    assert!(xg.status.success(), "{}", String::from_utf8_lossy(&xg.stderr));
    let table = String::from_utf8_lossy(&xg.stdout);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(" | "))
        .skip(1)
        .map(|l| l.split(" | ").collect())
        .collect();
    assert_eq!(rows.len(), 5, "every competition held out once: {table}");
    let wc_row = rows.iter().find(|r| r[0] == "| FIFA World Cup 2022").unwrap();
    assert_eq!(wc_row[1], wc.len().to_string());
    let recipe: f64 = wc_row[3].parse().unwrap();
    assert!((recipe - shipped["log_loss"].as_f64().unwrap()).abs() < 2e-4, "{wc_row:?} vs shipped {shipped}");

    let out = python(&["nfl_wp".as_ref(), csv.as_os_str()], dir.path().join("nowhere").as_os_str());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--data") && err.contains("OPENSPORTS_DATA"), "{err}");
}
