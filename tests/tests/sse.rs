//! The plain-HTTP paths for graphics engines: a topic's latest value with its ETag, and
//! Server-Sent Events with `Last-Event-ID` resume (PROTOCOL.md §3.1), against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use opensports_proto::Sport;
use opensports_tests::{SIM_START_US, TestServer, WAIT, sim_events};

use opensports_tests::sse_client::{Sse, SseReader, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_value_of_a_topic_comes_with_its_seq_as_etag() {
    let server = TestServer::start().await;
    let events = sim_events(Sport::Basketball, 7, SIM_START_US);
    let game = events[0].game.clone();
    server.publish_all(&events[..20]).await;
    let addr = server.running().http_addr;

    for path in
        [format!("/v1/topics/game/{game}/state/latest"), format!("/v1/topics/game%2F{game}%2Fstate/latest")]
    {
        let (status, head, body) = get(addr, &path, &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["topic"], format!("game/{game}/state"));
        assert_eq!(v["seq"], 20);
        assert_eq!(v["data"]["last_seq"], 20, "the value is the state after event 20");
        assert_eq!(v["ts"], events[19].ts);
        assert!(head.contains("etag: \"20\""), "{head}");
    }
    let path = format!("/v1/topics/game/{game}/state/latest");
    let (status, _, body) = get(addr, &path, &[("If-None-Match", "\"20\"")]).await;
    assert_eq!((status, body.as_str()), (304, ""), "unchanged: not modified, no body");
    server.publish_all(&events[20..21]).await;
    let (status, head, _) = get(addr, &path, &[("If-None-Match", "\"20\"")]).await;
    assert_eq!(status, 200, "a newer value is sent");
    assert!(head.contains("etag: \"21\""), "{head}");

    let (status, _, body) = get(addr, "/v1/topics/game/nope/state/latest", &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("no_such_topic"), "{body}");
    let (status, _, body) = get(addr, "/v1/topics/game/+/state/latest", &[]).await;
    assert_eq!(status, 400, "a pattern is not a topic");
    assert!(body.contains("bad_pattern"), "{body}");
    let (status, _, _) = get(addr, &format!("/v1/topics/game/{game}/state"), &[]).await;
    assert_eq!(status, 404, "the path must end in /latest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_value_needs_read_access_to_its_topic() {
    let server = TestServer::start_with(|c| c.auth.public_topics = vec!["games".into()]).await;
    let events = sim_events(Sport::Soccer, 2, SIM_START_US);
    let game = events[0].game.clone();
    let mut publisher = server.publisher().await;
    for e in &events[..5] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let reader = server.key(opensports_server::auth::Role::Subscriber, &[&format!("game/{game}/#")]);
    server.wait_for_seq_as(&reader, &game, 5).await;
    let addr = server.running().http_addr;
    let path = format!("/v1/topics/game/{game}/state/latest");
    let (status, _, _) = get(addr, &path, &[]).await;
    assert_eq!(status, 401, "anonymous");
    let other = server.key(opensports_server::auth::Role::Subscriber, &["game/other/#"]);
    let (status, _, _) = get(addr, &path, &[("Authorization", &format!("Bearer {other}"))]).await;
    assert_eq!(status, 403, "outside the key's scopes");
    let (status, _, body) = get(addr, &path, &[("Authorization", &format!("Bearer {reader}"))]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = get(addr, &format!("/v1/sse?topics=game/{game}/state"), &[]).await;
    assert_eq!(status, 401, "SSE is refused the same way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_every_message_and_resumes_from_last_event_id_without_gap_or_duplicate() {
    let server = TestServer::start().await;
    let events = sim_events(Sport::Football, 4, SIM_START_US);
    assert!(events.len() > 60);
    let game = events[0].game.clone();
    let topic = format!("game/{game}/state");
    server.publish_all(&events[..20]).await;
    let addr = server.running().http_addr;
    let path = format!("/v1/sse?topics={topic},game/{game}/winprob");

    let mut sse = SseReader::open(addr, &path, &[]).await.unwrap();
    let first = sse.until_seq(20).await;
    let snapshot = first.iter().find(|e| e.data["topic"] == topic.as_str()).unwrap();
    assert_eq!(snapshot.data["op"], "snapshot");
    assert_eq!(snapshot.data["seq"], 20);
    // One `id` per chunk, on its last publication: the id in force after the snapshots.
    let id = first.iter().rev().find_map(|e| e.id.clone()).unwrap();
    assert!(id.contains(&format!("{topic}=20")), "{id}");
    assert_eq!(server.metric(r#"opensports_sessions{transport="sse"}"#).await, 1.0);

    server.publish_all(&events[20..40]).await;
    let mut live = Vec::new();
    loop {
        // Until the resume point covers seq 40 (it rides the last event of each chunk).
        let e = sse.next().await;
        let done = e.id.as_deref().is_some_and(|id| id.contains(&format!("{topic}=40")));
        live.push(e);
        if done {
            break;
        }
    }
    let state: Vec<&Sse> = live.iter().filter(|e| e.data["topic"] == topic.as_str()).collect();
    assert_eq!(
        state.iter().map(|e| e.data["seq"].as_u64().unwrap()).collect::<Vec<_>>(),
        (21..=40).collect::<Vec<_>>()
    );
    assert!(state.iter().all(|e| e.data["op"] == "msg"));
    assert!(live.iter().filter(|e| e.id.is_some()).count() <= live.len(), "ids ride chunks, not every event");
    let last_id = live.iter().rev().find_map(|e| e.id.clone()).unwrap();
    assert!(last_id.contains(&format!("{topic}=40")), "{last_id}");
    assert!(last_id.contains(&format!("game/{game}/winprob=")), "the id covers every topic sent: {last_id}");
    drop(sse);

    // Away while 20 more events happen; back with the last id.
    server.publish_all(&events[40..60]).await;
    let mut sse = SseReader::open(addr, &path, &[("Last-Event-ID", &last_id)]).await.unwrap();
    let back = sse.until_seq(60).await;
    let back: Vec<&Sse> = back.iter().filter(|e| e.data["topic"] == topic.as_str()).collect();
    assert_eq!(
        back.iter()
            .map(|e| (e.data["op"].as_str().unwrap(), e.data["seq"].as_u64().unwrap()))
            .collect::<Vec<_>>(),
        (41..=60).map(|s| ("msg", s)).collect::<Vec<_>>(),
        "exactly what was missed: no snapshot, no gap, no duplicate"
    );
    // The same through ?since= for clients that cannot set the header.
    let since = last_id.replace(' ', "%20");
    let mut sse2 = SseReader::open(addr, &format!("{path}&since={since}"), &[]).await.unwrap();
    let again = sse2.until_seq(60).await;
    assert_eq!(again.iter().filter(|e| e.data["topic"] == topic.as_str()).count(), 20);
    drop((sse, sse2));
    for _ in 0..500 {
        if server.metric(r#"opensports_sessions{transport="sse"}"#).await == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a closed SSE stream's session was not released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_refuses_bad_requests_and_shares_the_streaming_connection_limit() {
    let server = TestServer::start_with(|c| c.auth.max_ws_per_address = 2).await;
    let events = sim_events(Sport::Basketball, 9, SIM_START_US);
    let game = events[0].game.clone();
    server.publish_all(&events[..3]).await;
    let addr = server.running().http_addr;
    let refused = |path: String, headers: Vec<(&'static str, String)>| async move {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match SseReader::open(addr, &path, &h).await {
            Ok(_) => panic!("{path} was accepted"),
            Err(e) => e,
        }
    };
    for bad in ["game/%2Bx/state", "game/+x/state", "game//state"] {
        let (status, body) = refused(format!("/v1/sse?topics={bad}"), vec![]).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body.contains("bad_pattern"), "{body}");
    }
    let (status, body) = refused("/v1/sse?topics=games&mode=sometimes".into(), vec![]).await;
    assert_eq!(status, 400, "a bad mode");
    assert!(body.contains("bad_op"), "{body}");
    let (status, body) = refused("/v1/sse".into(), vec![]).await;
    assert_eq!(status, 400, "no topics");
    assert!(body.contains("bad_op"), "{body}");
    let (status, body) = refused(
        format!("/v1/sse?topics=game/{game}/state"),
        vec![("Last-Event-ID", "game/x/state=abc".into())],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("bad_since"), "{body}");
    let (status, body) =
        refused(format!("/v1/sse?topics=game/{game}/state"), vec![("Last-Event-ID", "games=3".into())]).await;
    assert_eq!(status, 400, "a resume point outside the topics");
    assert!(body.contains("bad_since"), "{body}");

    // Two streams fill this address's slots: a third SSE stream and a WebSocket are refused.
    let path = format!("/v1/sse?topics=game/{game}/state&mode=latest");
    let mut a = SseReader::open(addr, &path, &[]).await.unwrap();
    let mut b = SseReader::open(addr, &path, &[]).await.unwrap();
    assert_eq!(a.next().await.data["seq"], 3);
    assert_eq!(b.next().await.data["seq"], 3);
    let (status, body) = refused(path.clone(), vec![]).await;
    assert_eq!(status, 429);
    assert!(body.contains("too_many_connections"), "{body}");
    assert!(
        opensports_client::Subscriber::connect(&server.ws_url()).await.is_err(),
        "WebSockets share the limit"
    );
    drop(a);
    for _ in 0..500 {
        if SseReader::open(addr, &path, &[]).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a closed stream did not give its slot back");
}
