//! The feed-quality monitor (`game/{id}/quality`): every clean real feed in `OPENSPORTS_DATA`
//! reports `ok`; a real replay with faults injected reports each fault, at its seq, with the
//! health a data desk needs (degraded while recent, failing while open) and the metric.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opensports_proto::event::ScoreCorrection;
use opensports_proto::{Body, Event, basketball as bk};
use opensports_tests::{TestServer, WAIT, real_events};

/// The latest `game/{id}/quality` report once the game's event `last_seq` is in (the report is
/// staged with the state of the event that changed it).
async fn quality(server: &TestServer, game: &str, last_seq: u64) -> serde_json::Value {
    server.wait_for_seq(game, last_seq).await;
    server.latest_json(&format!("game/{game}/quality")).expect("a quality report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_real_feeds_report_ok() {
    let server = TestServer::start().await;
    let mut any = false;
    for file in opensports_tests::REAL_FEEDS {
        let Some(events) = real_events(file) else {
            eprintln!("skipped: OPENSPORTS_DATA is not set");
            return;
        };
        any = true;
        server.publish_all(&events).await;
        let game = &events[0].game;
        let q = quality(&server, game, events.last().unwrap().seq).await;
        assert_eq!(q["status"], "ok", "{file}: {q}");
        assert_eq!(q["issues"], serde_json::json!({}), "{file}: {q}");
        // The final summary, at the end: every event was checked.
        assert_eq!(q["events"].as_u64(), Some(events.len() as u64), "{file}: {q}");
        println!("{file}: {} events, {}", events.len(), q["status"]);
    }
    assert!(any);
    server.shutdown().await;
}

/// The NBA live replay with one fault of each kind injected at a known seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_each_reported_at_their_seq() {
    let Some(mut events) = real_events("nba/nba_live_pbp_0022000001.json") else {
        eprintln!("skipped: OPENSPORTS_DATA is not set");
        return;
    };
    let server = TestServer::start_with(|c| c.quality.recent_events = 50).await;
    let game = events[0].game.clone();
    // Mid-period events of the second quarter: far from a period boundary.
    let period_of = |evs: &[Event], i: usize| {
        evs[..=i].iter().rev().find_map(|e| match &e.body {
            Body::Basketball(bk::Event::PeriodStart { period }) => Some(*period),
            _ => None,
        })
    };
    let q2: Vec<usize> = (0..events.len())
        .filter(|&i| {
            period_of(&events, i) == Some(2)
                && events[i].clock_ms.is_some_and(|c| (120_000..600_000).contains(&c))
        })
        .collect();
    let (clock_at, time_at, gap_at) = (q2[10], q2[40], q2[80]);
    // The clock jumps back up a minute; the source time two minutes back; one event skipped.
    let clock_seq = events[clock_at].seq;
    events[clock_at].clock_ms = events[clock_at].clock_ms.map(|c| c + 60_000);
    let time_seq = events[time_at].seq;
    events[time_at].ts -= 120_000_000;
    let gap_seq = events[gap_at].seq;
    let skipped = events.remove(gap_at);

    // Up to just after the gap: the gap is open, the game is failing.
    let cut = gap_at + 5;
    server.publish_all(&events[..cut]).await;
    let q = quality(&server, &game, events[cut - 1].seq).await;
    assert_eq!(q["status"], "failing", "{q}");
    assert_eq!(q["issues"]["gap"]["open"], true, "{q}");
    assert_eq!(q["issues"]["clock_backwards"]["last_seq"], clock_seq, "{q}");
    // The jump back up counts once; the clock running down again from there is not a fault.
    assert_eq!(q["issues"]["clock_backwards"]["count"], 1, "{q}");
    assert_eq!(q["issues"]["time_backwards"]["last_seq"], time_seq, "{q}");
    assert!(
        q["reasons"].as_array().unwrap().iter().any(|r| r.as_str().unwrap().starts_with("gap (open)")),
        "{q}"
    );

    // The publisher resends the skipped event: the gap closes, the fill is late.
    server.publish_all(std::slice::from_ref(&skipped)).await;
    let topic = format!("game/{game}/quality");
    let q = opensports_tests::wait_for(WAIT, || {
        let q = server.latest_json(&topic)?;
        (q["issues"]["late"]["count"] == 1).then_some(q)
    })
    .await;
    assert_eq!(q["issues"]["late"]["last_seq"], gap_seq, "{q}");
    assert_eq!(q["issues"]["gap"]["open"], false, "{q}");
    assert_eq!(q["status"], "degraded", "{q}");

    // A period going backwards and a score correction, then the rest of the game: more than
    // `recent_events` clean events later the game is ok again, the counts kept.
    let mut rest: Vec<Event> = events[cut..].to_vec();
    let next = rest[0].seq;
    let back =
        Event { seq: next, body: Body::Basketball(bk::Event::PeriodStart { period: 1 }), ..rest[0].clone() };
    let fix = Event {
        seq: next + 1,
        body: Body::Basketball(bk::Event::ScoreCorrection(ScoreCorrection {
            home: 40,
            away: 38,
            reason: "review".into(),
        })),
        ..rest[0].clone()
    };
    for e in &mut rest {
        e.seq += 2;
    }
    let last = rest.last().unwrap().seq;
    server.publish_all(&[back, fix]).await;
    server.publish_all(&rest).await;
    let q = quality(&server, &game, last).await;
    assert_eq!(q["issues"]["period_backwards"]["last_seq"], next, "{q}");
    assert_eq!(q["issues"]["score_correction"]["last_seq"], next + 1, "{q}");
    assert_eq!(q["status"], "ok", "{q}");
    for kind in ["gap", "late", "clock_backwards", "time_backwards", "period_backwards", "score_correction"] {
        let n = server.metric(&format!("opensports_feed_issues_total{{kind=\"{kind}\"}}")).await;
        assert!(n >= 1.0, "{kind}: {n}");
    }
    server.shutdown().await;
}

/// A game that goes silent in play is `stale` (failing) until its next event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_feed_in_play_is_stale_until_the_next_event() {
    let events = opensports_tests::real_or_sim(
        "nba/nba_live_pbp_0022000001.json",
        opensports_proto::Sport::Basketball,
        3,
    );
    let server = TestServer::start_with(|c| c.quality.stale_after_ms = 300).await;
    let game = events[0].game.clone();
    // Stop on a shot in the first quarter (play is on: not a timeout or a break).
    let stop =
        events.iter().position(|e| matches!(e.body, Body::Basketball(bk::Event::Shot { .. }))).unwrap() + 1;
    server.publish_all(&events[..stop]).await;
    let topic = format!("game/{game}/quality");
    let stale = opensports_tests::wait_for(WAIT, || {
        let q = server.latest_json(&topic)?;
        (q["status"] == "failing").then_some(q)
    })
    .await;
    assert_eq!(stale["issues"]["stale"]["open"], true, "{stale}");
    server.publish_all(&events[stop..stop + 1]).await;
    let q = quality(&server, &game, events[stop].seq).await;
    assert_eq!(q["issues"]["stale"]["open"], false, "{q}");
    assert_eq!(q["status"], "degraded", "{q}");
    server.shutdown().await;
}

/// The health is a trigger source like any topic: a rule on `quality:/status` fires when a gap
/// makes the game fail, with the monitor's reason in its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_on_the_feeds_health_fires_when_it_fails() {
    let rule: opensports_server::triggers::RuleSpec = serde_json::from_value(serde_json::json!({
        "name": "feed_failing", "value": "quality:/status", "when": "equals \"failing\"",
        "text": "Feed failing: {quality:/reasons/0}",
    }))
    .unwrap();
    let server = TestServer::start_with(|c| c.triggers.rules = vec![rule]).await;
    let mut events =
        opensports_tests::sim_events(opensports_proto::Sport::Soccer, 4, opensports_tests::SIM_START_US);
    let game = events[0].game.clone();
    events.remove(100); // never sent: a gap
    server.publish_all(&events[..110]).await;
    let topic = format!("game/{game}/triggers");
    let fired = opensports_tests::wait_for(WAIT, || {
        let t = server.latest_json(&topic)?;
        (t["rule"] == "feed_failing").then_some(t)
    })
    .await;
    let text = fired["text"].as_str().unwrap();
    assert!(text.starts_with("Feed failing: gap (open): 1 seq(s) missing"), "{fired}");
    assert_eq!(fired["seq"], events[100].seq, "{fired}");
    server.shutdown().await;
}

/// Values each field allows that the game does not: a run longer than the distance to the goal
/// line (NFL replay), a player scoring after fouling out (NBA replay, six fouls injected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_values_in_range_are_reported() {
    use opensports_proto::football as fb;
    let (Some(mut nfl), Some(nba)) = (
        real_events("nfl/nfl_gamecenter_2019090500_GB_at_CHI.json"),
        real_events("nba/nba_live_pbp_0022000001.json"),
    ) else {
        eprintln!("skipped: OPENSPORTS_DATA is not set");
        return;
    };
    let server = TestServer::start().await;
    let run = nfl
        .iter()
        .position(|e| matches!(&e.body, Body::Football(fb::Event::Play(p)) if p.play_type == fb::PlayType::Run && p.yardline_100 == Some(75)))
        .unwrap();
    if let Body::Football(fb::Event::Play(p)) = &mut nfl[run].body {
        p.yards = 90;
    }
    server.publish_all(&nfl).await;
    let q = quality(&server, &nfl[0].game, nfl.last().unwrap().seq).await;
    assert_eq!(q["issues"]["impossible"]["last_seq"], nfl[run].seq, "{q}");
    assert_eq!(q["issues"]["impossible"]["detail"], "a run of 90 yds from 75 yds out", "{q}");
    assert_eq!(q["issues"]["impossible"]["count"], 1, "{q}");

    // Six personal fouls for a scorer, just before one of his made shots.
    let shot = nba
        .iter()
        .rposition(|e| matches!(&e.body, Body::Basketball(bk::Event::Shot { made: true, .. })))
        .unwrap();
    let Body::Basketball(bk::Event::Shot { side, player, .. }) = nba[shot].body.clone() else {
        unreachable!()
    };
    let mut events: Vec<Event> = nba[..shot].to_vec();
    let at = events.last().unwrap().clone();
    for i in 1..=6 {
        let foul = bk::Event::Foul { side, player: Some(player.clone()), kind: "personal".into() };
        events.push(Event { seq: at.seq + i, body: Body::Basketball(foul), ..at.clone() });
    }
    events.extend(nba[shot..].iter().cloned().map(|mut e| {
        e.seq += 6;
        e
    }));
    server.publish_all(&events).await;
    let q = quality(&server, &nba[0].game, events.last().unwrap().seq).await;
    assert_eq!(q["issues"]["impossible"]["last_seq"], nba[shot].seq + 6, "{q}");
    assert_eq!(q["issues"]["impossible"]["detail"], format!("{player} scored with 6 personal fouls"), "{q}");
    server.shutdown().await;
}

/// The simulator (the demo's feeds) is a clean feed too: every sport, several seeds, `ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_feeds_report_ok() {
    let server = TestServer::start().await;
    for sport in opensports_proto::Sport::ALL {
        for seed in 0..8 {
            let events = opensports_tests::sim_events(sport, seed, opensports_tests::SIM_START_US);
            server.publish_all(&events).await;
            let q = quality(&server, &events[0].game, events.last().unwrap().seq).await;
            assert_eq!(
                (&q["status"], &q["issues"]),
                (&serde_json::json!("ok"), &serde_json::json!({})),
                "{sport:?} {seed}: {q}"
            );
        }
    }
    server.shutdown().await;
}

/// A different event sent under a seq already accepted: acked as a retry (the first stands),
/// counted, and reported as `duplicate_conflict`; a true retry (the same frame) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_event_under_a_taken_seq_is_reported() {
    let server = TestServer::start().await;
    let events =
        opensports_tests::sim_events(opensports_proto::Sport::Basketball, 5, opensports_tests::SIM_START_US);
    let game = events[0].game.clone();
    server.publish_all(&events[..50]).await;
    server.wait_for_seq(&game, events[49].seq).await;
    // The same event again: a retry.
    server.publish_all(&events[40..41]).await;
    // Event 30's seq with event 31's body: a conflict.
    let other = Event { seq: events[30].seq, ..events[31].clone() };
    server.publish_all(std::slice::from_ref(&other)).await;
    let topic = format!("game/{game}/quality");
    let q = opensports_tests::wait_for(WAIT, || {
        let q = server.latest_json(&topic)?;
        q["issues"].get("duplicate_conflict").is_some().then_some(q)
    })
    .await;
    assert_eq!(q["issues"]["duplicate_conflict"]["count"], 1, "{q}");
    assert_eq!(q["issues"]["duplicate_conflict"]["last_seq"], events[30].seq, "{q}");
    assert_eq!(q["status"], "degraded", "{q}");
    assert_eq!(server.metric("opensports_ingest_conflicts_total").await, 1.0);
    // The first event stands: the state never saw the other one.
    let (_, state) = server.get(&format!("/v1/games/{game}")).await;
    assert!(state.contains(&format!("\"last_seq\":{}", events[49].seq)), "{state}");
    server.shutdown().await;
}

/// Tracking faster than anyone runs (issue 33): a soccer player's samples at a sprint are
/// fine; one that covers 40 m in a second is `impossible`, and a flood of them is reported at
/// most once a second (the shard's queue stays for events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_faster_than_a_person_runs_is_impossible() {
    let events = opensports_tests::real_or_sim(
        "soccer/statsbomb_15986_events.json",
        opensports_proto::Sport::Soccer,
        3,
    );
    let server = TestServer::start().await;
    let game = events[0].game.clone();
    server.publish_all(&events[..50]).await;
    let publisher = server.publisher().await;
    let sample = |ts: i64, x: f32| opensports_proto::tracking::TrackingSample {
        game: game.clone(),
        ts,
        entity: "p7".into(),
        x,
        y: 30.0,
        z: 0.0,
        speed: 0.0,
    };
    let t0 = events[49].ts;
    // A sprint: 9 m a second for five seconds; the ball may fly.
    for i in 0..=5 {
        publisher.send_tracking(&sample(t0 + i * 1_000_000, 10.0 + 9.0 * i as f32)).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut ball = sample(t0 + 6_000_000, 0.0);
    ball.entity = "ball".into();
    publisher.send_tracking(&ball).unwrap();
    ball.ts += 1_000_000;
    ball.x = 60.0;
    publisher.send_tracking(&ball).unwrap();
    server.publish_all(&events[50..60]).await;
    let q = quality(&server, &game, events[59].seq).await;
    assert!(q["issues"].get("impossible").is_none(), "a sprint is no issue: {q}");
    // Then 40 m in a second, and a flood of such jumps.
    let metric = "opensports_feed_issues_total{kind=\"impossible\"}";
    for i in 0..200 {
        let x = if i % 2 == 0 { 95.0 } else { 55.0 };
        publisher.send_tracking(&sample(t0 + 7_000_000 + i * 1_000_000, x)).unwrap();
    }
    let reported = opensports_tests::wait_for(opensports_tests::WAIT, || {
        let q = server.latest_json(&format!("game/{game}/quality"))?;
        q["issues"].get("impossible").map(|i| i["detail"].as_str().unwrap_or("").to_string())
    })
    .await;
    // Datagrams may be lost: the jump is between the two samples that arrived.
    assert!(reported.starts_with("p7 moved 40.0 m in ") && reported.ends_with(" m/s)"), "{reported}");
    let count = server.metric(metric).await;
    assert!((1.0..=3.0).contains(&count), "a flood is reported at most once a second: {count}");
    server.shutdown().await;
}

/// A field goal by a player the feed substituted out earlier in the period (and not back in)
/// is `impossible`; the clean replay has none (clean_real_feeds_report_ok).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_goal_from_the_bench_is_impossible() {
    let Some(nba) = real_events("nba/nba_live_pbp_0022000001.json") else {
        eprintln!("skipped: OPENSPORTS_DATA is not set");
        return;
    };
    // A made field goal in the middle of the game, and its shooter sent to the bench just before.
    let shot = nba
        .iter()
        .enumerate()
        .skip(nba.len() / 2)
        .find(|(_, e)| matches!(&e.body, Body::Basketball(bk::Event::Shot { made: true, .. })))
        .map(|(i, _)| i)
        .unwrap();
    let Body::Basketball(bk::Event::Shot { side, player, .. }) = nba[shot].body.clone() else {
        unreachable!()
    };
    let mut events: Vec<Event> = nba[..shot].to_vec();
    let at = events.last().unwrap().clone();
    let sub = bk::Event::Substitution { side, player_in: "Z.Bench".into(), player_out: player.clone() };
    events.push(Event { seq: at.seq + 1, body: Body::Basketball(sub), ..at.clone() });
    events.extend(nba[shot..].iter().cloned().map(|mut e| {
        e.seq += 1;
        e
    }));
    let server = TestServer::start().await;
    server.publish_all(&events).await;
    let q = quality(&server, &events[0].game, events.last().unwrap().seq).await;
    let i = &q["issues"]["impossible"];
    assert_eq!(i["detail"], format!("{player} scored a field goal while substituted out"), "{q}");
    // The first such field goal is the one after the substitution.
    assert!(i["count"].as_u64().unwrap() >= 1, "{q}");
    server.shutdown().await;
}
