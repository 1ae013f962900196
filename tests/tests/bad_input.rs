//! Bad input on every edge gets a documented error code and a metric, and nothing else is
//! disturbed: the same connection and other connections keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use opensports_client::Publisher;
use opensports_proto::codec::{self, Codec};
use opensports_proto::control::Control;
use opensports_proto::error_code::quic;
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_proto::{Event, Sport};
use opensports_tests::{TestServer, WAIT, read_until, rss_kib, sim_events};

/// Waits for the publisher to have received notices with all of `codes`.
async fn notices_with(publisher: &Publisher, codes: &[&str]) -> Vec<Control> {
    let mut all = Vec::new();
    for _ in 0..200 {
        all.extend(publisher.take_notices());
        let seen = |c: &&str| {
            all.iter()
                .any(|n| matches!(n, Control::Reject { code, .. } | Control::Error { code, .. } if code == c))
        };
        if codes.iter().all(seen) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected notices {codes:?}, got {all:?}");
}

async fn raw_stream_stopped_code(publisher: &Publisher, bytes: &[u8]) -> u64 {
    let mut s = publisher.connection().open_uni().await.unwrap();
    // The server may stop the stream before everything is written; that is the point.
    let _ = s.write_all(bytes).await;
    let code = tokio::time::timeout(WAIT, s.stopped()).await.unwrap().unwrap();
    code.expect("stream stopped with a code").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_errors_stop_only_that_stream_with_documented_codes() {
    let server = TestServer::start_with(|c| {
        c.ingest.max_frame_bytes = 1024;
        c.ingest.frame_timeout_secs = 1;
    })
    .await;
    let publisher = server.publisher().await;
    let cases: [(&str, Vec<u8>, u32); 4] = [
        ("frame_malformed", vec![0, 0, 0, 0], quic::FRAME_MALFORMED),
        // Half-open: a frame started and never finished (the stream stays open).
        ("frame_timeout", vec![0, 0, 0, 40, 1, b'{'], quic::FRAME_TIMEOUT),
        ("unknown_codec", vec![0, 0, 0, 2, 0x07, b'x'], quic::UNKNOWN_CODEC),
        ("frame_too_large", [&1025u32.to_be_bytes()[..], &[1u8; 64][..]].concat(), quic::FRAME_TOO_LARGE),
    ];
    for (name, bytes, code) in &cases {
        let metric = format!("opensports_ingest_stream_errors_total{{code=\"{name}\"}}");
        let before = server.metric(&metric).await;
        assert_eq!(raw_stream_stopped_code(&publisher, bytes).await, u64::from(*code), "{name}");
        notices_with(&publisher, &[name]).await;
        assert_eq!(server.metric(&metric).await - before, 1.0, "{metric}");
    }
    // A stream that ends inside a frame is malformed too.
    let mut s = publisher.connection().open_uni().await.unwrap();
    s.write_all(&[0, 0, 0, 50, 1, b'{']).await.unwrap();
    s.finish().unwrap();
    notices_with(&publisher, &["frame_malformed"]).await;

    // The same connection still carries good games, and so does another one.
    let mut publisher = publisher;
    let good = sim_events(Sport::Soccer, 1, 0);
    for e in &good[..20] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.acked(&good[0].game), 20);
    let mut other = server.publisher().await;
    let more = sim_events(Sport::F1, 1, 0);
    for e in &more[..20] {
        other.send(e).await.unwrap();
    }
    other.flush(WAIT).await.unwrap();
    assert_eq!(other.acked(&more[0].game), 20);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_rejected_one_by_one_and_the_stream_goes_on() {
    let server = TestServer::start().await;
    let publisher = server.publisher().await;
    let game = sim_events(Sport::Basketball, 2, 0);
    let json = |e: &Event| {
        let mut b = Vec::new();
        codec::write_json_frame(&mut b, e).unwrap();
        b
    };
    let mut other_game = game[1].clone();
    other_game.game = "another-game".into();
    let mut frames = Vec::new();
    codec::write_frame(&mut frames, Codec::Json, b"{this is not json");
    codec::write_frame(
        &mut frames,
        Codec::Json,
        br#"{"game":"x","seq":1,"ts":0,"sport":"basketball","type":"alley_oop"}"#,
    );
    codec::write_frame(&mut frames, Codec::Rkyv, &[9, 9, 9]);
    frames.extend(json(&game[0]));
    frames.extend(json(&game[0])); // seq going backwards on the same stream
    frames.extend(json(&other_game)); // another game on this stream
    frames.extend(json(&game[1]));
    let codes = ["bad_json", "bad_event", "bad_rkyv", "seq_not_increasing", "game_mismatch"];
    let mut before = Vec::new();
    for c in codes {
        before.push(server.metric(&format!("opensports_ingest_rejected_total{{reason=\"{c}\"}}")).await);
    }
    let mut s = publisher.connection().open_uni().await.unwrap();
    s.write_all(&frames).await.unwrap();
    let notices = notices_with(&publisher, &codes).await;
    // Rejects name the event when the body let us read it.
    assert!(notices.iter().any(|n| matches!(n,
        Control::Reject { code, game: Some(g), seq: Some(1), .. } if code == "seq_not_increasing" && *g == game[0].game)));
    server.wait_for_seq(&game[0].game, 2).await;
    for (c, b) in codes.iter().zip(before) {
        let after = server.metric(&format!("opensports_ingest_rejected_total{{reason=\"{c}\"}}")).await;
        assert_eq!(after - b, 1.0, "{c}");
    }

    // The same game id with another sport is refused.
    let mut wrong_sport = sim_events(Sport::Soccer, 1, 0)[0].clone();
    wrong_sport.game = game[0].game.clone();
    wrong_sport.seq = 3;
    let mut s2 = publisher.connection().open_uni().await.unwrap();
    s2.write_all(&json(&wrong_sport)).await.unwrap();
    notices_with(&publisher, &["sport_mismatch"]).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_and_missing_hello_close_the_connection_with_codes() {
    let server = TestServer::start().await;
    let before = server.metric(r#"opensports_ingest_auth_failures_total{reason="bad_token"}"#).await;
    let mut cfg = server.publisher_config();
    cfg.token = "not-the-token".into();
    let err = Publisher::connect(cfg).await.unwrap_err().to_string();
    assert!(err.contains("auth_failed"), "{err}");
    let after = server.metric(r#"opensports_ingest_auth_failures_total{reason="bad_token"}"#).await;
    assert_eq!(after - before, 1.0);

    // A control stream whose first message is not a hello: PROTOCOL_VIOLATION.
    let tls = opensports_client::trust::client_config(&opensports_client::Trust::Fingerprint(
        server.running().fingerprint.clone(),
    ))
    .unwrap();
    let quic_tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic_tls)));
    let conn = endpoint.connect(server.running().quic_addr, "localhost").unwrap().await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let mut frame = Vec::new();
    codec::write_json_frame(&mut frame, &sim_events(Sport::F1, 1, 0)[0]).unwrap();
    send.write_all(&frame).await.unwrap();
    match tokio::time::timeout(WAIT, conn.closed()).await.unwrap() {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), u64::from(quic::PROTOCOL_VIOLATION));
        }
        other => panic!("expected an application close, got {other}"),
    }
    // The server is still up for honest publishers.
    let mut good = server.publisher().await;
    let ev = sim_events(Sport::Football, 1, 0);
    good.send(&ev[0]).await.unwrap();
    good.flush(WAIT).await.unwrap();
    assert_eq!(good.acked(&ev[0].game), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_websocket_ops_get_error_codes_and_the_session_survives() {
    let server = TestServer::start_with(|c| {
        c.fanout.max_subscriptions = 2;
        c.fanout.max_client_message_bytes = 256;
    })
    .await;
    let mut sub = server.subscriber().await;
    let cases = [
        ("bad_json", "{nope".to_string()),
        ("bad_op", r#"{"op":"subscribe","topics":["games"]}"#.to_string()),
        ("bad_op", r#"{"op":"sub"}"#.to_string()),
        ("bad_op", r#"{"op":"sub","topics":[]}"#.to_string()),
        ("bad_pattern", r#"{"op":"sub","topics":["game/#/state"]}"#.to_string()),
        ("bad_pattern", r#"{"op":"sub","topics":["game//x"]}"#.to_string()),
        ("bad_since", r#"{"op":"sub","topics":["games"],"since":{"game/x/state":3}}"#.to_string()),
        ("too_many_subscriptions", r#"{"op":"sub","topics":["a","b","c"]}"#.to_string()),
        ("message_too_large", format!(r#"{{"op":"sub","topics":["{}"]}}"#, "a".repeat(300))),
    ];
    for (code, text) in &cases {
        let metric = format!("opensports_session_errors_total{{code=\"{code}\",transport=\"ws\"}}");
        let before = server.metric(&metric).await;
        sub.send_text(text.clone()).await.unwrap();
        let msgs = read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Error { .. })).await;
        let Some(ServerMsg::Error { code: got, message, .. }) = msgs.last() else { unreachable!() };
        assert_eq!(got, code, "{text}: {message}");
        assert!(!message.is_empty());
        assert_eq!(server.metric(&metric).await - before, 1.0, "{metric}");
    }
    // Binary frames are not part of the protocol.
    {
        use futures_util::SinkExt;
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.unwrap();
        ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![1, 2, 3])).await.unwrap();
        use futures_util::StreamExt;
        let reply = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert!(reply.to_text().unwrap().contains("binary_not_supported"), "{reply}");
    }
    // The session is intact: ping, then a valid subscription works.
    sub.send_text(r#"{"op":"ping"}"#.into()).await.unwrap();
    read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Pong { .. })).await;
    sub.subscribe_and_wait(&["game/+/state"], Mode::All).await.unwrap();
    let mut publisher = server.publisher().await;
    let ev = sim_events(Sport::Basketball, 1, 0);
    publisher.send(&ev[0]).await.unwrap();
    let msgs = read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Msg(_))).await;
    assert!(matches!(msgs.last(), Some(ServerMsg::Msg(p)) if p.seq == 1));
    // A plain HTTP GET on /ws is refused with a JSON error, not a crash.
    let (status, body) = server.get("/ws").await;
    assert_eq!(status, 400);
    assert!(body.contains("bad_upgrade"), "{body}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_strings_are_refused_naming_the_field_and_cost_no_memory() {
    let server = TestServer::start().await;
    let publisher = server.publisher().await;
    let good = sim_events(Sport::F1, 4, 0);
    let game = good[0].game.clone();
    let metric = r#"opensports_ingest_rejected_total{reason="bad_event"}"#;
    let before_rejects = server.metric(metric).await;
    let before = rss_kib();
    // Finding 6: 399 laps with 60 KB driver names grew the server to 5.6 GB (state, history).
    let driver = "D".repeat(60_000);
    let mut s = publisher.connection().open_uni().await.unwrap();
    let mut frame = Vec::new();
    codec::write_json_frame(&mut frame, &good[0]).unwrap();
    s.write_all(&frame).await.unwrap();
    for seq in 2..=400u64 {
        let body = format!(
            r#"{{"game":"{game}","seq":{seq},"ts":{seq},"sport":"f1","type":"lap","driver":"{driver}","lap":1,"position":1}}"#
        );
        frame.clear();
        codec::write_frame(&mut frame, Codec::Json, body.as_bytes());
        s.write_all(&frame).await.unwrap();
    }
    s.finish().unwrap();
    let notices = notices_with(&publisher, &["bad_event"]).await;
    assert!(
        notices.iter().any(|n| matches!(n, Control::Reject { code, message, .. }
            if code == "bad_event" && message.contains("`driver`") && message.contains("at most 64"))),
        "{notices:?}"
    );
    for _ in 0..400 {
        if server.metric(metric).await - before_rejects >= 399.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(server.metric(metric).await - before_rejects, 399.0);
    let after = rss_kib();
    let grown = after.saturating_sub(before);
    eprintln!("oversized strings: RSS {before} -> {after} KiB (grew {grown} KiB)");
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    // The game itself goes on with its next good event.
    let mut next = good[1].clone();
    next.seq = 401;
    let mut publisher = publisher;
    publisher.send(&next).await.unwrap();
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&game, 401).await;
    let (_, state) = server.get(&format!("/v1/games/{game}")).await;
    assert!(!state.contains("DDDD"), "an oversized name reached the state");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_keeps_failing_backs_off_and_a_valid_one_still_gets_in() {
    let server = TestServer::start().await;
    let mut cfg = server.publisher_config();
    cfg.token = "guess".into();
    for _ in 0..4 {
        let err = Publisher::connect(cfg.clone()).await.unwrap_err().to_string();
        assert!(err.contains("auth_failed"), "{err}");
    }
    // From the 3rd failure on, the (address, token) pair is backing off.
    let waited = server.metric(r#"opensports_ingest_auth_failures_total{reason="backoff"}"#).await;
    assert!(waited >= 1.0, "{waited}");
    assert_eq!(server.metric(r#"opensports_ingest_auth_failures_total{reason="bad_token"}"#).await, 4.0);
    // The token is checked before the backoff: a valid one from the same address gets in.
    server.publisher().await;
    server.shutdown().await;
}

#[tokio::test]
async fn watch_exits_with_the_error_when_its_pattern_is_refused() {
    let server = TestServer::start().await;
    let (url, patterns) = (server.ws_url(), ["game/#/state".to_string()]);
    let run = opensports_server::cli::watch::run(
        &url,
        &patterns,
        Mode::All,
        true,
        opensports_server::cli::watch::TimeZone::UTC,
    );
    let err = tokio::time::timeout(WAIT, run).await.expect("watch ends, not waits").unwrap_err();
    assert!(err.to_string().contains("bad_pattern"), "{err}");
    server.shutdown().await;
}
