//! Issue 27's findings as regression tests, each against the real server on loopback: every
//! one of them failed on the main branch before the fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opensports_client::Publisher;
use opensports_proto::{Event, Sport};
use opensports_server::auth::Role;
use opensports_tests::{
    SIM_START_US, TestServer, WAIT, game_events, publish_codes, publisher_with, sim_events,
};

/// Every seq of `game` in the log, read back from the redb file.
fn logged_seqs(server: &TestServer, game: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    let store = server.running().store.clone().unwrap();
    store
        .replay_game(game, &[(0, u64::MAX)], &mut |seq, _, _| {
            seqs.push(seq);
            true
        })
        .unwrap();
    seqs
}

/// Finding 1: a key whose scope also covers another venue's game (a static token, `*`) sends
/// widely spaced seqs into it; the real publisher's next events must all be logged, and
/// every ack must mean "in the log".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_always_means_logged_whatever_another_key_sends() {
    let mut server =
        TestServer::start_with(|c| c.ingest.tokens = vec!["static-token-of-venue-b".into()]).await;
    let venue_a = server.key(Role::Publisher, &["venue-a-*"]);
    let game = "venue-a-1";
    let evs = game_events(game, 40);
    let mut real = publisher_with(&server, &venue_a).await.unwrap();
    assert!(publish_codes(&mut real, &evs[..10]).await.is_empty());

    // The attack: 70 events with widely spaced seqs from a `*` identity.
    let mut attacker = publisher_with(&server, "static-token-of-venue-b").await.unwrap();
    let spaced: Vec<Event> = (0..70u64)
        .map(|i| {
            let mut e = evs[10].clone();
            e.seq = 1_000 + i * 100;
            e
        })
        .collect();
    let codes = publish_codes(&mut attacker, &spaced).await;
    assert_eq!(codes.len(), 70, "{codes:?}");
    assert!(codes.iter().all(|c| c == "game_owned"), "{codes:?}");

    // A key with a shared: scope may write the game, but still cannot make a missing seq
    // look like a duplicate: past 64 open gaps its events are refused, nothing is forgotten.
    let sharer = server.key(Role::Publisher, &["shared:venue-a-*"]);
    let mut sharer = publisher_with(&server, &sharer).await.unwrap();
    let codes = publish_codes(&mut sharer, &spaced).await;
    assert_eq!(codes.iter().filter(|c| *c == "too_many_gaps").count(), 70 - 64, "{codes:?}");
    let mut far = evs[10].clone();
    far.seq = 10_000_000;
    assert_eq!(publish_codes(&mut sharer, &[far]).await, vec!["seq_too_far".to_string()]);

    // The real publisher goes on: 11..=40 are acked, and every acked seq is in the log.
    assert!(publish_codes(&mut real, &evs[10..]).await.is_empty());
    assert_eq!(real.acked(game), 40);
    let logged = logged_seqs(&server, game);
    for seq in 1..=40 {
        assert!(logged.contains(&seq), "seq {seq} acked but not in the log");
    }
    let meta = server.running().store.as_ref().unwrap().game(game).unwrap().unwrap();
    assert!(meta.owner.as_deref().is_some_and(|o| venue_a.contains(o)), "owner {:?}", meta.owner);

    // Ownership is in the log: after a restart the static token is still refused.
    drop((real, attacker, sharer));
    server.restart().await;
    let mut attacker = publisher_with(&server, "static-token-of-venue-b").await.unwrap();
    let mut late = evs[39].clone();
    late.seq = 41;
    assert_eq!(publish_codes(&mut attacker, &[late.clone()]).await, vec!["game_owned".to_string()]);
    let mut real = publisher_with(&server, &venue_a).await.unwrap();
    assert!(publish_codes(&mut real, &[late]).await.is_empty());
    assert_eq!(real.acked(game), 41);
    server.shutdown().await;
}

/// Finding 7: the game quota is counted from the log across restarts, and each static token
/// is its own identity with its own quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_game_quota_holds_across_restarts_and_static_tokens_are_separate_identities() {
    let mut server = TestServer::start_with(|c| {
        c.auth.max_games_per_key = 2;
        c.ingest.tokens = vec!["static-token-one".into(), "static-token-two".into()];
    })
    .await;
    let mut one = publisher_with(&server, "static-token-one").await.unwrap();
    for g in ["quota-1", "quota-2"] {
        assert!(publish_codes(&mut one, &game_events(g, 1)).await.is_empty());
    }
    assert_eq!(publish_codes(&mut one, &game_events("quota-3", 1)).await, vec!["game_quota".to_string()]);
    let mut two = publisher_with(&server, "static-token-two").await.unwrap();
    assert!(
        publish_codes(&mut two, &game_events("quota-4", 1)).await.is_empty(),
        "another token has its own quota"
    );
    drop((one, two));
    for _ in 0..2 {
        server.restart().await;
        let mut one = publisher_with(&server, "static-token-one").await.unwrap();
        assert_eq!(
            publish_codes(&mut one, &game_events("quota-5", 1)).await,
            vec!["game_quota".to_string()],
            "the quota is counted from the log after a restart"
        );
    }
    server.shutdown().await;
}

/// Finding 5: valid events of one game that make a plugin fail (a player named "John Smith"
/// becomes an invalid topic level in the box score's emit) quarantine that plugin for that
/// game only; other games keep their outputs; the game's subscribers hear `plugin_fault`; an
/// admin lifts it for the game (audited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_fault_stays_in_its_game() {
    use opensports_proto::ws::{Mode, ServerMsg};
    let server = TestServer::start_with(|c| {
        c.plugins.load = vec![opensports_server::config::PluginEntry::new(opensports_tests::plugin_wasm(
            "basketball-boxscore",
        ))];
    })
    .await;
    let attack = opensports_tests::boxscore_breaking_events("attack-1", 120);
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/attack-1/basketball-boxscore/plugin_fault"], Mode::All).await.unwrap();
    server.publish_all(&attack).await;
    let fault = loop {
        match sub.next_timeout(WAIT).await.unwrap() {
            Some(ServerMsg::Msg(p)) => break p,
            Some(_) => continue,
            None => panic!("no plugin_fault"),
        }
    };
    assert_eq!(fault.data["kind"], "bad_output", "{:?}", fault.data);

    let report = || async {
        let (_, body) = server.get("/v1/plugins").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["plugins"][0].clone()
    };
    let r = report().await;
    assert_eq!(r["status"], "active", "{r}");
    assert_eq!(r["quarantined_games"], serde_json::json!(["attack-1"]), "{r}");

    // Another game keeps its box score: the team points equal the game's score.
    let victim = game_events("victim-1", 120);
    server.publish_all(&victim).await;
    let (_, state) = server.get("/v1/games/victim-1").await;
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let (_, line) = server.get("/v1/topics/game%2Fvictim-1%2Fbasketball-boxscore%2Fteam%2Fhome/latest").await;
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["data"]["pts"], state["score"]["home"], "{line} / {state}");

    // An admin lifts the quarantine for the game; it is audited.
    let admin = server.admin_key();
    let (status, body) =
        server.call(&admin, "POST", "/v1/plugins/basketball-boxscore/games/attack-1/enable", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""was_quarantined":true"#), "{body}");
    assert_eq!(report().await["quarantined_games"], serde_json::json!([]));
    let (_, audit) = server.call(&admin, "GET", "/v1/audit", None).await;
    assert!(audit.contains("plugin.enable_game"), "{audit}");
    server.shutdown().await;
}

/// Finding 6: wrong credentials from the real admin's address (a venue network, a NAT) do
/// not keep the admin out; they back off only themselves. QUIC likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_from_the_same_address_never_keep_a_valid_one_out() {
    let server = TestServer::start().await;
    let admin = server.admin_key();
    let mut backed_off = 0;
    for _ in 0..10 {
        let (status, _) = server.call("osk_wrongid_guess", "GET", "/v1/keys", None).await;
        assert!(status == 401 || status == 429, "{status}");
        backed_off += usize::from(status == 429);
        let (status, body) = server.call(&admin, "GET", "/v1/keys", None).await;
        assert_eq!(status, 200, "the admin is let in between wrong credentials: {body}");
    }
    assert!(backed_off >= 7, "the wrong credential itself backs off ({backed_off} of 10)");
    let mut wrong = server.publisher_config();
    wrong.token = "guess".into();
    for _ in 0..4 {
        assert!(Publisher::connect(wrong.clone()).await.is_err());
    }
    assert!(server.metric(r#"opensports_ingest_auth_failures_total{reason="backoff"}"#).await >= 1.0);
    let mut p = server.publisher().await;
    assert!(
        publish_codes(&mut p, &game_events("nat-1", 3)).await.is_empty(),
        "a valid token from the address gets in"
    );
    server.shutdown().await;
}

/// Finding 9: tracking datagrams count against the key's events/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_datagrams_are_inside_the_key_rate() {
    let server = TestServer::start_with(|c| c.auth.max_events_per_sec_per_key = 100).await;
    let mut p = server.publisher().await;
    assert!(publish_codes(&mut p, &game_events("dg-1", 1)).await.is_empty());
    for i in 0..2_000i64 {
        let sample = opensports_proto::tracking::TrackingSample {
            game: "dg-1".into(),
            ts: i,
            entity: "ball".into(),
            x: 1.0,
            y: 1.0,
            z: 0.0,
            speed: 0.0,
        };
        let _ = p.send_tracking(&sample);
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Every datagram that arrived was either published or dropped over the rate.
    let (mut limited, mut published) = (0.0, 0.0);
    for _ in 0..100 {
        limited = server.metric(r#"opensports_rate_limited_total{limit="datagrams_per_key"}"#).await;
        published = server.metric("opensports_ingest_datagrams_total").await;
        if limited > 0.0 && limited + published >= 1_000.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(limited > 0.0, "no datagram was held to the rate ({published} published)");
    assert!(published <= 100.0 + 100.0 * 10.0, "{published} published at 100/s");
    server.shutdown().await;
}

/// Finding 10: JWT `nbf` and `aud`/`iss`, a length cap on credentials, admin keys only in the
/// Authorization header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_nbf_aud_iss_token_length_and_admin_in_the_header_only() {
    use opensports_tests::{hs256, jws};
    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
    let server = TestServer::start_with(|c| {
        c.auth.public_topics.clear();
        c.auth.jwt_hs256_secret = Some(SECRET.into());
        c.auth.jwt_audience = Some("opensports".into());
        c.auth.jwt_issuer = Some("https://venue.example".into());
    })
    .await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = |extra: serde_json::Value| {
        let mut claims = serde_json::json!({"sub": "p", "exp": now + 3600, "topics": ["games"],
            "aud": "opensports", "iss": "https://venue.example"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        jws(&serde_json::json!({"alg":"HS256","typ":"JWT"}), &claims, hs256(SECRET.as_bytes()))
    };
    let srv = &server;
    let get = |t: String| async move { srv.call(&t, "GET", "/v1/games", None).await.0 };
    assert_eq!(get(token(serde_json::json!({}))).await, 200);
    assert_eq!(get(token(serde_json::json!({"nbf": now + 600}))).await, 401, "nbf in the future");
    assert_eq!(get(token(serde_json::json!({"aud": "someone-else"}))).await, 401, "wrong aud");
    assert_eq!(get(token(serde_json::json!({"aud": null}))).await, 401, "missing aud");
    assert_eq!(get(token(serde_json::json!({"iss": "https://evil.example"}))).await, 401, "wrong iss");
    let huge = "x".repeat(400 * 1024);
    let (status, body) = server.call(&huge, "GET", "/v1/games", None).await;
    assert!(status == 401 || status == 431, "{status} {body}");
    let admin = server.admin_key();
    assert_eq!(server.call(&admin, "GET", "/v1/keys", None).await.0, 200);
    let (status, body) = server.get(&format!("/v1/keys?token={admin}")).await;
    assert_eq!(status, 401, "admin key in the query string: {body}");
    server.shutdown().await;
}

/// Finding 2: `since` keys are held once per `sub`, not copied per pattern, and bounded per
/// session in total. 20 sessions each sending one 60 KB `sub` of 256 patterns × 1,800 keys for
/// missing topics (every pattern matches every key) cost next to nothing; before the fix each
/// session cost ~30 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_keys_are_bounded_per_session_and_never_copied_per_pattern() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start().await;
    // 256 distinct patterns matching `game/kN/a/b/c/d/e/f`: each of 7 levels literal or `+`,
    // with or without a trailing `/#`.
    let levels = ["game", "", "a", "b", "c", "d", "e", "f"];
    let mut patterns = Vec::new();
    for mask in 0..128u32 {
        let mut p: Vec<&str> = Vec::new();
        let mut bit = 0;
        for (i, l) in levels.iter().enumerate() {
            if i == 1 {
                p.push("+");
                continue;
            }
            p.push(if mask & (1 << bit) != 0 { "+" } else { l });
            bit += 1;
        }
        let p = p.join("/");
        patterns.push(format!("\"{p}\""));
        patterns.push(format!("\"{p}/#\""));
    }
    let keys: Vec<String> = (0..1800).map(|i| format!("\"game/k{i}/a/b/c/d/e/f\":3")).collect();
    let op = format!(r#"{{"op":"sub","topics":[{}],"since":{{{}}}}}"#, patterns.join(","), keys.join(","));
    assert!(op.len() <= 64 * 1024, "{} bytes", op.len());
    let before = opensports_tests::rss_kib();
    let mut sessions = Vec::new();
    for _ in 0..20 {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.unwrap();
        ws.send(Message::text(op.clone())).await.unwrap();
        loop {
            let m = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
            let text = m.to_text().unwrap().to_string();
            assert!(!text.contains(r#""op":"error""#), "{text}");
            if text.contains(r#""op":"subscribed""#) {
                break;
            }
        }
        sessions.push(ws);
    }
    let grown = opensports_tests::rss_kib().saturating_sub(before);
    eprintln!("since flood: RSS {before} KiB -> +{grown} KiB for 20 sessions");
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB (was ~600 MB before the fix)");

    // In total per session: three ops with other patterns and 1,800 keys each pass the 4,096
    // bound on the third.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.unwrap();
    let mut codes = Vec::new();
    for pattern in ["x/#", "y/#", "z/#"] {
        let keys: Vec<String> = (0..1800).map(|i| format!("\"{}/{i}\":3", &pattern[..1])).collect();
        let op = format!(r#"{{"op":"sub","topics":["{pattern}"],"since":{{{}}}}}"#, keys.join(","));
        ws.send(Message::text(op)).await.unwrap();
        loop {
            let m = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
            let text = m.to_text().unwrap().to_string();
            if text.contains(r#""op":"subscribed""#) {
                codes.push("subscribed".to_string());
                break;
            }
            if text.contains(r#""op":"error""#) {
                codes.push(text);
                break;
            }
        }
    }
    assert_eq!(codes[..2], ["subscribed", "subscribed"], "{codes:?}");
    assert!(codes[2].contains("bad_since"), "{codes:?}");
    server.shutdown().await;
}

/// Finding 3: a scoped publisher cannot grow its own race's state without bound: past 40 cars
/// an event naming a new one is refused `bad_event` (and never acked as a duplicate later);
/// players are bounded the same way (200 per game).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cars_and_players_per_game_are_bounded() {
    let mut server = TestServer::start().await;
    let race: Vec<Event> = sim_events(Sport::F1, 3, SIM_START_US).into_iter().take(200).collect();
    let game = race[0].game.clone();
    let mut next = 0u64;
    let mut renamed = Vec::new();
    for e in &race {
        let mut v = serde_json::to_value(e).unwrap();
        if v.get("driver").is_some_and(|d| d.is_string()) {
            v["driver"] = format!("D{next}").into();
            next += 1;
        }
        renamed.push(serde_json::from_value::<Event>(v).unwrap());
        if next > 60 {
            break;
        }
    }
    let mut p = server.publisher().await;
    let codes = publish_codes(&mut p, &renamed).await;
    assert_eq!(codes.len(), 60 - 40 + 1, "{codes:?}");
    assert!(codes.iter().all(|c| c == "bad_event"), "{codes:?}");
    let accepted = renamed
        .iter()
        .filter(|e| e.people()[0].is_none_or(|d| d[1..].parse::<u32>().is_ok_and(|n| n < 40)))
        .map(|e| e.seq)
        .max()
        .unwrap();
    server.wait_for_seq(&game, accepted).await;
    let (_, state) = server.get(&format!("/v1/games/{game}")).await;
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["f1"]["cars"].as_array().map(Vec::len), Some(40), "{state}");
    // The bound is rebuilt from the log after a restart, and a refused event stays refused.
    drop(p);
    server.restart().await;
    let mut p = server.publisher().await;
    let last = renamed.last().unwrap().clone();
    assert_eq!(publish_codes(&mut p, &[last]).await, vec!["bad_event".to_string()]);
    server.shutdown().await;
}

/// Opens a TCP connection to `to` from the loopback address `from` (127.0.0.x).
async fn connect_from(from: &str, to: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(format!("{from}:0").parse().unwrap())?;
    s.connect(to).await
}

/// Whether a connection the server accepted stays open (a refused one is closed at once).
async fn held_open(s: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut b = [0u8; 1];
    tokio::time::timeout(std::time::Duration::from_millis(200), s.read(&mut b)).await.is_err()
}

/// Finding 4: one address holds a share of the HTTP accept cap, not all of it; past the cap
/// a reserve still answers health probes and admin calls (never a stream); SSE streams end at
/// their lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_shared_fairly_and_probes_always_get_in() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = TestServer::start_with(|c| {
        c.server.max_http_connections = 64;
        c.server.max_http_per_address = 16;
        c.server.http_reserve_connections = 8;
        c.fanout.sse_max_lifetime_secs = 2;
        c.server.http_header_timeout_secs = 2;
    })
    .await;
    let addr = server.running().http_addr;
    // One address opening 100 idle sockets holds 16 of the cap (and 2 reserve slots).
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(connect_from("127.0.0.2", addr).await.unwrap());
    }
    let open = futures_util::future::join_all(idle.iter_mut().map(held_open)).await;
    let open = open.into_iter().filter(|o| *o).count();
    // (The 2 reserve sockets are closed after 2 s without a request, maybe before we look.)
    assert!((16..=16 + 2).contains(&open), "{open} idle sockets held by one address");
    for _ in 0..10 {
        assert_eq!(opensports_tests::http_get(addr, "/healthz").await.0, 200);
    }
    drop(idle);

    // Four addresses fill the whole cap with SSE streams: probes and admin calls still answer
    // (on the reserve), a stream does not start on a reserve connection.
    let mut streams = Vec::new();
    for a in 2..6 {
        for _ in 0..16 {
            // (The idle sockets just closed may hold their slots for a moment: retry briefly.)
            let mut tries = 0;
            let s = loop {
                let mut s = connect_from(&format!("127.0.0.{a}"), addr).await.unwrap();
                s.write_all(b"GET /v1/sse?topics=games HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
                let mut head = [0u8; 12];
                let ok = s.read_exact(&mut head).await.is_ok() && &head == b"HTTP/1.1 200";
                tries += 1;
                if ok {
                    break s;
                }
                assert!(tries < 100, "no stream from 127.0.0.{a}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            };
            streams.push(s);
        }
    }
    let admin = server.admin_key();
    for _ in 0..10 {
        assert_eq!(opensports_tests::http_get(addr, "/healthz").await.0, 200);
        assert_eq!(server.call(&admin, "GET", "/v1/keys", None).await.0, 200);
    }
    let (status, body) = opensports_tests::http_get(addr, "/v1/sse?topics=games").await;
    assert_eq!(status, 503, "{body}");
    // The streams end at their lifetime (2 s here): the cap frees itself.
    for s in &mut streams {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await.unwrap();
        assert!(read.is_ok());
    }
    assert!(
        server.metric(r#"opensports_session_ended_total{transport="sse",reason="lifetime"}"#).await >= 64.0
    );
    server.shutdown().await;
}
