//! Delay lines (issue 29, part 2) end to end on a real server: WebSocket, SSE, the latest-value
//! endpoint and the graphics document run behind the live topics by the delay asked for, never
//! ahead of it; subscribers at one delay share one line; an operator's live change catches a
//! line up (audited); delays past the bound are refused. Time is checked only as a lower bound
//! (nothing arrives before it is due), never as "fast enough".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use opensports_proto::Sport;
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_tests::sse_client::{SseReader, get};
use opensports_tests::{TestServer, WAIT, read_until, sim_events};

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_runs_behind_by_its_delay_and_an_operator_can_catch_it_up() {
    let server = TestServer::start().await;
    let addr = server.running().http_addr;
    // Stamped from now on: each message is due at its arrival + D at the earliest.
    let events = sim_events(Sport::Basketball, 3, now_us());
    let id = events[0].game.clone();
    let topic = format!("game/{id}/state");
    server.publish_all(&events[..5]).await;

    let mut live = server.subscriber().await;
    live.subscribe_and_wait(&[&topic], Mode::All).await.unwrap();
    let mut delayed = server.subscriber().await;
    delayed.subscribe_delayed(&[&topic], Mode::All, 1500).await.unwrap();
    let mut held = server.subscriber().await;
    held.subscribe_delayed(&[&topic], Mode::All, 60_000).await.unwrap();
    let sse_path = format!("/v1/sse?topics={}&delay=1500", topic.replace('/', "%2F"));
    let mut sse = SseReader::open(addr, &sse_path, &[]).await.unwrap();

    // Refusals: over fanout.max_delay_ms (120000), on every transport.
    let mut bad = server.subscriber().await;
    bad.subscribe_delayed(&[&topic], Mode::All, 120_001).await.unwrap();
    let msgs = read_until(&mut bad, WAIT, |m| matches!(m, ServerMsg::Error { .. })).await;
    assert!(matches!(msgs.last(), Some(ServerMsg::Error { code, .. }) if code == "bad_delay"), "{msgs:?}");
    let (status, _, body) = get(addr, &format!("/v1/sse?topics={topic}&delay=120001"), &[]).await;
    assert_eq!((status, body.contains("bad_delay")), (400, true), "{body}");
    let (status, body) = server.get(&format!("/v1/topics/{topic}/latest?delay=120001")).await;
    assert_eq!((status, body.contains("bad_delay")), (400, true), "{body}");

    let sent = Instant::now();
    server.publish_all(&events[5..15]).await;
    let last = events[14].seq;
    // Undelayed: everything now. At a minute's delay the graphics document is empty: every
    // event was stamped within the last minute.
    read_until(&mut live, WAIT, |m| matches!(m, ServerMsg::Msg(p) if p.seq == last)).await;
    let (status, body) = server.get(&format!("/v1/graphics/{id}.json?delay=60000")).await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["home_score"], "", "nothing is a minute old yet: {doc}");
    let (status, body) = server.get(&format!("/v1/graphics/{id}.json")).await;
    let now_doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert_ne!(now_doc["home_score"], "", "{now_doc}");

    // Delayed by 1.5 s: in order, every one, none before it was due.
    let got = read_until(&mut delayed, WAIT, |m| matches!(m, ServerMsg::Msg(p) if p.seq == last)).await;
    let arrived = Instant::now();
    let seqs: Vec<u64> =
        got.iter().filter_map(|m| if let ServerMsg::Msg(p) = m { Some(p.seq) } else { None }).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "in order, no gap: {seqs:?}");
    assert!(arrived >= sent + Duration::from_millis(1500), "released before its delay: {:?}", arrived - sent);
    let sse_events = sse.until_seq(last).await;
    assert!(Instant::now() >= sent + Duration::from_millis(1500));
    assert!(sse_events.iter().any(|e| e.data["seq"] == last && e.data["op"] == "msg"));
    // The value 1.5 s ago is now the latest one.
    let (status, body) = server.get(&format!("/v1/topics/{topic}/latest?delay=1500")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["seq"], last);

    // One line per delay, shared by its subscribers (WebSocket and SSE at 1.5 s).
    let (status, body) = server.admin_get("/v1/delays").await;
    assert_eq!(status, 200, "{body}");
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    let lines = listing["lines"].as_array().unwrap();
    let line = |d: u64| lines.iter().find(|l| l["topic"] == topic.as_str() && l["delay_ms"] == d).unwrap();
    assert_eq!(line(1500)["subscribers"], 2, "{listing}");
    assert_eq!(line(60_000)["subscribers"], 1);
    assert_eq!(line(60_000)["held"], 15, "the minute line holds all fifteen (started from the kept history)");

    // Only an admin changes a delay; the change catches the line up at once and is audited.
    let sub_key = server.key(opensports_server::auth::Role::Subscriber, &["#"]);
    let body = br#"{"effective_ms":0}"#;
    let (status, _) =
        server.call(&sub_key, "POST", "/v1/delays/60000", Some(("application/json", body))).await;
    assert_eq!(status, 403);
    let (status, answer) = server.admin_post("/v1/delays/60000", "application/json", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&answer).unwrap()["lines"], 1);
    let got = read_until(&mut held, WAIT, |m| matches!(m, ServerMsg::Msg(p) if p.seq == last)).await;
    let seqs: Vec<u64> =
        got.iter().filter_map(|m| if let ServerMsg::Msg(p) = m { Some(p.seq) } else { None }).collect();
    assert_eq!(seqs, (events[0].seq..=last).collect::<Vec<_>>());
    let (_, audit) = server.admin_get("/v1/audit").await;
    assert!(audit.contains(r#""action":"delay.set""#) && audit.contains(r#""target":"60000""#), "{audit}");
    let (status, answer) =
        server.admin_post("/v1/delays/60000", "application/json", br#"{"effective_ms":null}"#).await;
    assert_eq!(status, 200, "{answer}");
    let lateness = server.metric("opensports_delay_release_lateness_seconds_count").await;
    assert!(lateness >= 20.0, "every release is measured: {lateness}");
}
