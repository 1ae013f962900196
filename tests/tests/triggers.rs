//! Triggers (issue 29, part 1) on real replays: each sport's real feed from `OPENSPORTS_DATA`
//! (NBA, NFL, StatsBomb soccer, an F1 live-timing session; simulated games without it) played
//! into two fresh servers fires the same triggers (rule, seq, payload) on `game/{id}/triggers`,
//! the default rules fire in every sport, and the lead changes, scores and (from the box-score
//! plugin, through the SDK) 10-0 runs they fire are re-derived from the events themselves.
//! Operators arm, disarm, suppress and fire by hand, and change the rules through the admin
//! API: validated, versioned, audited and kept across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opensports_proto::ws::ServerMsg;
use opensports_proto::{Event, Sport};
use opensports_server::pipeline::state::GameState;
use opensports_tests::{SIM_START_US, TestServer, from_start, sim_events};

fn feed(file: &str, sport: Sport, seed: u64) -> Vec<Event> {
    opensports_tests::real_or_sim(file, sport, seed)
}

/// The firings of `events`' game on a fresh server with the built-in plugins.
async fn fired(events: &[Event]) -> Vec<serde_json::Value> {
    let server = TestServer::start_with(|c| c.plugins.builtin = true).await;
    server.publish_all(events).await;
    triggers_of(&server, &events[0].game).await
}

/// Every firing kept on `game/{game}/triggers`, oldest first.
async fn triggers_of(server: &TestServer, game: &str) -> Vec<serde_json::Value> {
    let mut sub = server.subscriber().await;
    let msgs = from_start(&mut sub, &format!("game/{game}/triggers")).await;
    assert!(!msgs.iter().any(|m| matches!(m, ServerMsg::Reset { .. })), "the whole history is kept");
    msgs.into_iter().filter_map(|m| if let ServerMsg::Msg(p) = m { Some(p.data) } else { None }).collect()
}

fn seqs(fired: &[serde_json::Value], rule: &str) -> Vec<u64> {
    fired.iter().filter(|f| f["rule"] == rule).map(|f| f["seq"].as_u64().unwrap()).collect()
}

/// Seqs after which the game state's (home − away) changed sign (ties do not count), and after
/// which each side's score went up: from the events alone.
fn derive(events: &[Event]) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let mut state = GameState::new(&events[0].game, events[0].sport());
    let (mut leads, mut home, mut away) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sign, mut last) = (0i64, None::<(u32, u32)>);
    for e in events {
        state.apply(e);
        let Some(s) = &state.score else { continue };
        let now = (i64::from(s.home) - i64::from(s.away)).signum();
        if now != 0 {
            if sign != 0 && now != sign {
                leads.push(e.seq);
            }
            sign = now;
        }
        if let Some((h, a)) = last {
            if s.home > h {
                home.push(e.seq);
            }
            if s.away > a {
                away.push(e.seq);
            }
        }
        last = Some((s.home, s.away));
    }
    (leads, home, away)
}

/// The seq at which the game's state first says it ended, and those after which the total score
/// went down (a score taken back): from the events alone.
fn derive_end_and_corrections(events: &[Event]) -> (Vec<u64>, Vec<u64>) {
    use opensports_server::pipeline::state::Status;
    let mut state = GameState::new(&events[0].game, events[0].sport());
    let (mut ended, mut corrected, mut total) = (Vec::new(), Vec::new(), None::<u32>);
    for e in events {
        let was = state.status;
        state.apply(e);
        if was != Status::Ended && state.status == Status::Ended {
            ended.push(e.seq);
        }
        if let Some(s) = &state.score {
            let now = s.home + s.away;
            if total.is_some_and(|t| now < t) {
                corrected.push(e.seq);
            }
            total = Some(now);
        }
    }
    (ended, corrected)
}

/// Seqs at which a side's unanswered points first reach 10 (a run ends when the other side
/// scores): from the game state's score alone.
fn derive_runs(events: &[Event]) -> Vec<u64> {
    let mut state = GameState::new(&events[0].game, events[0].sport());
    let (mut runs, mut last, mut run) = (Vec::new(), (0u32, 0u32), (None::<bool>, 0u32, false));
    for e in events {
        state.apply(e);
        let Some(s) = &state.score else { continue };
        let (dh, da) = (s.home.saturating_sub(last.0), s.away.saturating_sub(last.1));
        last = (s.home, s.away);
        for (home, pts) in [(true, dh), (false, da)] {
            if pts == 0 {
                continue;
            }
            if run.0 == Some(home) {
                run.1 += pts;
            } else {
                run = (Some(home), pts, false);
            }
            if run.1 >= 10 && !run.2 {
                run.2 = true;
                runs.push(e.seq);
            }
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_replays_fire_the_same_triggers_and_they_reconcile_with_the_events() {
    let games = [
        (feed("nba/nba_live_pbp_0022000001.json", Sport::Basketball, 71), vec!["lead_change"]),
        (
            feed("nfl/nfl_gamecenter_2019090500_GB_at_CHI.json", Sport::Football, 72),
            vec!["home_scores", "away_scores"],
        ),
        (feed("soccer/statsbomb_15986_events.json", Sport::Soccer, 73), vec![]),
        (feed("f1/fastf1test_2020_70thAnniv_FP2_timing_data.raw", Sport::F1, 74), vec!["fastest_lap"]),
    ];
    for (events, must_fire) in &games {
        let sport = events[0].sport();
        let a = fired(events).await;
        let b = fired(events).await;
        assert_eq!(
            a, b,
            "{sport}: a replay fires the same triggers, at the same seqs, with the same payloads"
        );
        for rule in must_fire {
            assert!(!seqs(&a, rule).is_empty(), "{sport}: the default {rule} fired: {a:?}");
        }
        for f in &a {
            assert!(
                f["version"].as_u64().is_some() && f["seq"].as_u64().is_some() && f["facts"].is_object(),
                "{f}"
            );
        }
        let (ended, corrected) = derive_end_and_corrections(events);
        assert_eq!(seqs(&a, "final"), ended, "{sport}: final where the game ended");
        assert_eq!(
            seqs(&a, "score_correction"),
            corrected,
            "{sport}: a correction where the score went down"
        );
        if sport == Sport::F1 {
            continue;
        }
        let (leads, home, away) = derive(events);
        if sport == Sport::Basketball {
            let runs = seqs(&a, "basketball-boxscore:run");
            assert_eq!(
                runs,
                derive_runs(events),
                "basketball: the plugin's 10-0 runs re-derived from the events"
            );
            assert!(a.iter().filter(|f| f["plugin"] == "basketball-boxscore").all(|f| f["text"] != ""));
        }
        if sport != Sport::Soccer {
            assert_eq!(seqs(&a, "lead_change"), leads, "{sport}: lead changes re-derived from the events");
        }
        let (h, w) = match sport {
            Sport::Soccer => ("home_goal", "away_goal"),
            Sport::Football => ("home_scores", "away_scores"),
            _ => continue,
        };
        assert_eq!(seqs(&a, h), home, "{sport}: {h}");
        assert_eq!(seqs(&a, w), away, "{sport}: {w}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_disarm_suppress_arm_and_fire_by_hand_and_each_is_audited() {
    // The first simulated game (by seed) with three lead changes.
    let (events, leads) = (70..200)
        .map(|seed| sim_events(Sport::Basketball, seed, SIM_START_US))
        .map(|events| {
            let leads = derive(&events).0;
            (events, leads)
        })
        .find(|(_, leads)| leads.len() >= 3)
        .expect("a game with three lead changes");
    let id = events[0].game.clone();
    let upto = |seq: u64| events.iter().position(|e| e.seq == seq).unwrap() + 1;
    let server = TestServer::start().await;
    let post = |path: String, body: String| {
        let server = &server;
        async move { server.admin_post(&path, "application/json", body.as_bytes()).await }
    };
    let (status, body) = server.admin_get("/v1/triggers").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""name":"lead_change""#) && body.contains(r#""armed":true"#), "{body}");
    let subscriber = server.key(opensports_server::auth::Role::Subscriber, &["#"]);
    let (status, _) = server.call(&subscriber, "POST", "/v1/triggers/lead_change/disarm", None).await;
    assert_eq!(status, 403, "operators only");

    // Disarmed through the first lead change; armed again with the next one suppressed for
    // this game; the third fires.
    assert_eq!(post("/v1/triggers/lead_change/disarm".into(), String::new()).await.0, 200);
    server.publish_all(&events[..upto(leads[0])]).await;
    assert_eq!(post("/v1/triggers/lead_change/arm".into(), String::new()).await.0, 200);
    let (status, body) =
        post("/v1/triggers/lead_change/suppress".into(), format!(r#"{{"game":"{id}"}}"#)).await;
    assert_eq!(status, 200, "{body}");
    server.publish_all(&events[upto(leads[0])..upto(leads[2])]).await;
    let (status, body) =
        post("/v1/triggers/lead_change/fire".into(), format!(r#"{{"game":"{id}","text":"by hand"}}"#)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post("/v1/triggers/no_such_rule/arm".into(), String::new()).await;
    assert_eq!(status, 404);

    let fired = triggers_of(&server, &id).await;
    assert_eq!(
        seqs(&fired, "lead_change"),
        [leads[2], leads[2]],
        "the third lead change, then the hand-made one: {fired:?}"
    );
    let manual = fired.last().unwrap();
    assert_eq!((manual["manual"].as_bool(), manual["text"].as_str()), (Some(true), Some("by hand")));
    assert!(fired.iter().filter(|f| f["rule"] == "lead_change").take(1).all(|f| f["manual"].is_null()));
    let (_, audit) = server.admin_get("/v1/audit").await;
    for action in ["trigger.disarm", "trigger.arm", "trigger.suppress", "trigger.fire"] {
        assert!(audit.contains(&format!(r#""action":"{action}""#)), "{action}: {audit}");
    }
    assert_eq!(server.metric(r#"opensports_triggers_suppressed_total{reason="operator"}"#).await, 1.0);
}

/// `PUT /v1/triggers/{name}` as admin.
async fn put(server: &TestServer, name: &str, body: &str) -> (u16, String) {
    let path = format!("/v1/triggers/{name}");
    server.call(&server.admin_key(), "PUT", &path, Some(("application/json", body.as_bytes()))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_change_rules_through_the_api_versioned_audited_and_kept_across_a_restart() {
    let events = sim_events(Sport::Basketball, 91, SIM_START_US);
    let id = events[0].game.clone();
    let mut server = TestServer::start().await;
    let rule = r#"{"sport":"basketball","value":"state:/score/home","when":"above 20","text":"{state:/home} past 20"}"#;
    let subscriber = server.key(opensports_server::auth::Role::Subscriber, &["#"]);
    let (status, _) = server
        .call(&subscriber, "PUT", "/v1/triggers/home_20", Some(("application/json", rule.as_bytes())))
        .await;
    assert_eq!(status, 403, "operators only");
    for bad in [
        r#"{"sport":"basketball","value":"state:/score/home","when":"often"}"#,
        r#"{"sport":"cricket","value":"state:/score/home","when":"increases"}"#,
        r#"{"value":"state:/score/home","when":"increases","colour":"red"}"#,
        r#"{"name":"other","value":"state:/score/home","when":"increases"}"#,
    ] {
        let (status, body) = put(&server, "home_20", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = put(&server, "home_20", rule).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["version"].as_u64(), v["before"].is_null()), (Some(2), true), "{body}");

    server.publish_all(&events).await;
    let past_20 = {
        let mut state = GameState::new(&id, Sport::Basketball);
        events.iter().find(|e| {
            state.apply(e);
            state.score.is_some_and(|s| s.home >= 20)
        })
    };
    let fired = triggers_of(&server, &id).await;
    let mine: Vec<&serde_json::Value> = fired.iter().filter(|f| f["rule"] == "home_20").collect();
    assert_eq!(mine.len(), 1, "{fired:?}");
    assert_eq!(mine[0]["seq"].as_u64(), past_20.map(|e| e.seq), "fires where the score first passes 20");
    assert_eq!(mine[0]["version"], 2);
    assert!(mine[0]["text"].as_str().unwrap().ends_with("past 20"), "{}", mine[0]);

    // Replace the default lead_change for basketball, then delete it: versions 3 and 4.
    let (status, body) =
        put(&server, "lead_change", r#"{"sport":"basketball","value":"state:/score/home - state:/score/away","when":"sign","text":"new"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""before":{"#), "the default it replaced: {body}");
    let (status, body) =
        server.call(&server.admin_key(), "DELETE", "/v1/triggers/lead_change?sport=basketball", None).await;
    assert_eq!((status, body.contains(r#""version":4"#)), (200, true), "{body}");
    let (status, _) = server.call(&server.admin_key(), "DELETE", "/v1/triggers/no_such_rule", None).await;
    assert_eq!(status, 404);
    let (_, audit) = server.admin_get("/v1/audit").await;
    for action in ["trigger.put", "trigger.delete"] {
        assert!(audit.contains(&format!(r#""action":"{action}""#)), "{action}: {audit}");
    }
    assert!(audit.contains(r#""when":"above 20""#), "the audit holds the rule as put: {audit}");

    // A restart runs the same rule set: version 4, home_20 from the API, no basketball
    // lead_change, football's default kept.
    server.restart().await;
    let (_, body) = server.admin_get("/v1/triggers").await;
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listing["version"], 4, "{body}");
    let rules = listing["rules"].as_array().unwrap();
    let has = |name: &str, sport: &str| rules.iter().any(|r| r["name"] == name && r["sport"] == sport);
    assert!(
        has("home_20", "basketball") && !has("lead_change", "basketball") && has("lead_change", "football")
    );
    let home_20 = rules.iter().find(|r| r["name"] == "home_20").unwrap();
    assert_eq!((home_20["origin"].as_str(), home_20["version"].as_u64()), (Some("api"), Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_triggers_are_disarmed_like_any_rule() {
    // The first simulated game (by seed) with two 10-0 runs.
    let (events, runs) = (70..300)
        .map(|seed| sim_events(Sport::Basketball, seed, SIM_START_US))
        .map(|events| {
            let runs = derive_runs(&events);
            (events, runs)
        })
        .find(|(_, runs)| runs.len() >= 2)
        .expect("a game with two runs");
    let id = events[0].game.clone();
    let upto = |seq: u64| events.iter().position(|e| e.seq == seq).unwrap() + 1;
    let server = TestServer::start_with(|c| c.plugins.builtin = true).await;
    let rule = "basketball-boxscore:run";
    let (status, body) =
        server.admin_post(&format!("/v1/triggers/{rule}/disarm"), "application/json", b"").await;
    assert_eq!(status, 200, "{body}");
    server.publish_all(&events[..upto(runs[0])]).await;
    let (status, _) = server.admin_post(&format!("/v1/triggers/{rule}/arm"), "application/json", b"").await;
    assert_eq!(status, 200);
    server.publish_all(&events[upto(runs[0])..]).await;
    let fired = triggers_of(&server, &id).await;
    assert_eq!(seqs(&fired, rule), runs[1..], "the first run was disarmed: {fired:?}");
    let (_, listing) = server.admin_get("/v1/triggers").await;
    assert!(listing.contains(&format!(r#"{{"armed":true,"name":"{rule}"}}"#)), "{listing}");
    assert!(server.metric(r#"opensports_triggers_suppressed_total{reason="disarmed"}"#).await >= 1.0);
}
