//! Access control over the real paths: QUIC hello and event streams, WebSocket upgrade and
//! `sub`, the HTTP API. Role × operation × in scope / out of scope → allowed or refused;
//! JWTs (valid, expired, forged, `alg: none`, algorithm confusion, expiry mid-session);
//! revocation closing live connections; per-address and per-key limits; the audit log; CORS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use opensports_client::Subscriber;
use opensports_proto::error_code::quic;
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_server::auth::Role;
use opensports_tests::{TestServer, WAIT, game_events, hs256, jws, publish_codes, publisher_with};

/// The reply to one `sub` (`Ok` subscribed, `Err(code)`).
async fn sub(s: &mut Subscriber, pattern: &str) -> Result<(), String> {
    s.subscribe_and_wait(&[pattern], Mode::Latest).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Reads the session to its end; whether an `error` with `code` came before the close.
async fn told_then_closed(s: &mut Subscriber, code: &str) -> bool {
    let mut told = false;
    loop {
        match tokio::time::timeout(WAIT, s.next()).await.unwrap() {
            Ok(ServerMsg::Error { code: c, .. }) if c == code => told = true,
            Ok(_) => {}
            Err(_) => return told,
        }
    }
}

fn ws_url_with(server: &TestServer, token: &str) -> String {
    format!("{}?token={token}", server.ws_url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix_over_quic_websocket_and_http() {
    let server = TestServer::start_with(|c| {
        c.ingest.tokens.clear();
        c.auth.public_topics = vec!["games".into()];
    })
    .await;
    let publisher_a = server.key(Role::Publisher, &["venue-a-*"]);
    let reader_a = server.key(Role::Subscriber, &["game/venue-a-1/#"]);
    let admin = server.admin_key();

    // QUIC: who may publish what.
    let mut pa = publisher_with(&server, &publisher_a).await.unwrap();
    assert!(publish_codes(&mut pa, &game_events("venue-a-1", 20)).await.is_empty());
    assert_eq!(pa.acked("venue-a-1"), 20);
    let refused = publish_codes(&mut pa, &game_events("venue-b-1", 5)).await;
    assert!(refused.len() == 5 && refused.iter().all(|c| c == "forbidden"), "{refused:?}");
    let (status, _) = server.call(&admin, "GET", "/v1/games/venue-b-1", None).await;
    assert_eq!(status, 404, "an out-of-scope event creates no game");
    for token in [reader_a.as_str(), "", "osk_000000000000_nothing", "not-a-key"] {
        let err = publisher_with(&server, token).await.unwrap_err();
        assert!(err.contains("auth_failed"), "{token:?}: {err}");
        // A good hello clears the address's backoff (three wrong ones in a row would wait).
        publisher_with(&server, &publisher_a).await.unwrap();
    }
    let mut pad = publisher_with(&server, &admin).await.unwrap();
    assert!(publish_codes(&mut pad, &game_events("venue-b-1", 5)).await.is_empty(), "admin writes any game");
    server.wait_for_seq_as(&admin, "venue-a-1", 20).await;

    // WebSocket: who may read what.
    let cases: [(Option<&str>, &str, bool); 9] = [
        (None, "games", true),
        (None, "game/+/state", false),
        (None, "#", false),
        (Some(&reader_a), "game/venue-a-1/state", true),
        (Some(&reader_a), "game/venue-a-1/#", true),
        (Some(&reader_a), "game/venue-b-1/state", false),
        (Some(&reader_a), "game/+/state", false),
        (Some(&publisher_a), "game/venue-a-1/state", false),
        (Some(&admin), "#", true),
    ];
    for (token, pattern, allowed) in cases {
        let url = token.map_or(server.ws_url(), |t| ws_url_with(&server, t));
        let mut s = Subscriber::connect(&url).await.unwrap();
        let got = sub(&mut s, pattern).await;
        match allowed {
            true => assert!(got.is_ok(), "{token:?} {pattern}: {got:?}"),
            false => {
                assert!(got.as_ref().is_err_and(|e| e.contains("forbidden")), "{token:?} {pattern}: {got:?}")
            }
        }
    }
    // A wrong credential is refused at the upgrade.
    assert!(Subscriber::connect(&ws_url_with(&server, "osk_nope_nope")).await.is_err());
    // In-scope readers get the data.
    let mut s = Subscriber::connect(&ws_url_with(&server, &reader_a)).await.unwrap();
    let before = s.subscribe_and_wait(&["game/venue-a-1/state"], Mode::Latest).await.unwrap();
    assert!(matches!(&before[..], [ServerMsg::Snapshot(p)] if p.data["last_seq"] == 20), "{before:?}");

    // HTTP: reads by scope.
    for (token, path, want) in [
        (None, "/v1/games/venue-a-1", 401),
        (Some(&reader_a), "/v1/games/venue-a-1", 200),
        (Some(&reader_a), "/v1/games/venue-b-1", 403),
        (Some(&publisher_a), "/v1/games/venue-a-1", 403),
        (Some(&admin), "/v1/games/venue-b-1", 200),
        (None, "/v1/games", 200),
        (Some(&"osk_0000_wrong".to_string()), "/v1/games", 401),
    ] {
        let status = match token {
            Some(t) => server.call(t, "GET", path, None).await.0,
            None => server.get(path).await.0,
        };
        assert_eq!(status, want, "{token:?} GET {path}");
    }
    // HTTP: admin operations, for every role.
    let ops: [(&str, &str, &[u8]); 9] = [
        ("POST", "/v1/plugins/basketball-boxscore", b"(module)"),
        ("POST", "/v1/models/nba_wp/activate", br#"{"version":"1"}"#),
        ("POST", "/v1/models/nba_wp/shadow", br#"{"version":null}"#),
        ("GET", "/v1/backup", b""),
        ("GET", "/v1/games/venue-a-1/events", b""),
        ("GET", "/v1/keys", b""),
        ("POST", "/v1/keys", br#"{"name":"x","role":"subscriber","scopes":["games"]}"#),
        ("GET", "/v1/audit", b""),
        ("DELETE", "/v1/keys/000000000000", b""),
    ];
    let addr = server.running().http_addr;
    for (method, path, body) in ops {
        let body = (!body.is_empty()).then_some(("application/json", body));
        let anon = opensports_tests::http_call(addr, method, path, body, None).await.0;
        assert_eq!(anon, 401, "anonymous {method} {path}");
        for t in [&publisher_a, &reader_a] {
            assert_eq!(server.call(t, method, path, body).await.0, 403, "non-admin {method} {path}");
        }
        let (status, text) = server.call(&admin, method, path, body).await;
        assert!(![401, 403].contains(&status), "admin {method} {path}: {status} {text}");
    }
    let denied = server.metric(r#"opensports_auth_denied_total{op="admin"}"#).await;
    assert!(denied >= 18.0, "{denied}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_closes_its_connections_and_is_audited() {
    let server = TestServer::start_with(|c| c.auth.public_topics.clear()).await;
    let admin = server.admin_key();
    let (status, made) = server
        .call(
            &admin,
            "POST",
            "/v1/keys",
            Some(("application/json", br#"{"name":"venue","role":"publisher","scopes":["rv-*"]}"#)),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let made: serde_json::Value = serde_json::from_str(&made).unwrap();
    let (pub_key, pub_id) =
        (made["key"].as_str().unwrap().to_string(), made["id"].as_str().unwrap().to_string());
    let reader = server.key(Role::Subscriber, &["game/rv-1/#"]);
    let reader_id = reader.split('_').nth(1).unwrap().to_string();

    let mut p = publisher_with(&server, &pub_key).await.unwrap();
    assert!(publish_codes(&mut p, &game_events("rv-1", 5)).await.is_empty());
    let mut s = Subscriber::connect(&ws_url_with(&server, &reader)).await.unwrap();
    sub(&mut s, "game/rv-1/state").await.unwrap();

    for id in [&pub_id, &reader_id] {
        let (status, body) = server.call(&admin, "DELETE", &format!("/v1/keys/{id}"), None).await;
        assert_eq!(status, 200, "{body}");
    }
    // The publisher's connection is closed with KEY_REVOKED.
    let closed = tokio::time::timeout(WAIT, p.connection().closed()).await.unwrap();
    match closed {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code.into_inner(), u64::from(quic::KEY_REVOKED))
        }
        other => panic!("{other:?}"),
    }
    // The subscriber is told and closed.
    let told = told_then_closed(&mut s, "key_revoked").await;
    assert!(told, "the subscriber was told why");
    // Neither key works any more.
    assert!(publisher_with(&server, &pub_key).await.unwrap_err().contains("auth_failed"));
    assert_eq!(server.call(&reader, "GET", "/v1/games", None).await.0, 401);

    // The audit log names who did what.
    let (status, log) = server.call(&admin, "GET", "/v1/audit", None).await;
    assert_eq!(status, 200);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let entries = log["entries"].as_array().unwrap();
    let admin_id = admin.split('_').nth(1).unwrap();
    let revokes: Vec<_> = entries.iter().filter(|e| e["action"] == "key.revoke").collect();
    assert_eq!(revokes.len(), 2);
    assert!(revokes.iter().all(|e| e["actor"] == admin_id
        && e["after"]["revoked_ms"].is_i64()
        && e["before"]["revoked_ms"].is_null()));
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "key.create" && e["target"] == pub_id.as_str() && e["actor"] == admin_id)
    );
    assert!(!log.to_string().contains(&pub_key), "the audit log never holds a key");
    server.shutdown().await;
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_are_checked_and_expire_mid_session() {
    use ring::signature::KeyPair as _;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    // SubjectPublicKeyInfo for Ed25519: a fixed 12-byte prefix and the 32-byte key.
    let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    spki.extend_from_slice(ed.public_key().as_ref());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    let keys_dir = tempfile::tempdir().unwrap();
    let pem_path = keys_dir.path().join("ed.pem");
    std::fs::write(&pem_path, &pem).unwrap();
    let server = TestServer::start_with(|c| {
        c.auth.public_topics.clear();
        c.auth.jwt_hs256_secret = Some(SECRET.into());
        c.auth.jwt_eddsa_public_key = Some(pem_path.clone());
    })
    .await;
    let claims = |exp: u64| serde_json::json!({"sub": "partner-7", "exp": exp, "topics": ["game/j-1/#"]});
    let hs = |c: &serde_json::Value| {
        jws(&serde_json::json!({"alg":"HS256","typ":"JWT"}), c, hs256(SECRET.as_bytes()))
    };
    let eddsa = |c: &serde_json::Value| {
        jws(&serde_json::json!({"alg":"EdDSA","typ":"JWT"}), c, |m| ed.sign(m).as_ref().to_vec())
    };

    // Valid tokens of both algorithms: in scope allowed, out of scope refused.
    for token in [hs(&claims(now() + 3600)), eddsa(&claims(now() + 3600))] {
        let mut s = Subscriber::connect(&ws_url_with(&server, &token)).await.unwrap();
        sub(&mut s, "game/j-1/state").await.unwrap();
        assert!(sub(&mut s, "game/j-2/state").await.unwrap_err().contains("forbidden"));
        assert_eq!(server.call(&token, "GET", "/v1/backup", None).await.0, 403, "a JWT is never admin");
    }
    // Refused at the upgrade: expired, forged, alg none, algorithm confusion, wrong secret.
    let valid = hs(&claims(now() + 3600));
    let mut forged = valid.clone();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::json!({"sub":"x","exp": now() + 3600, "topics":["#"]}).to_string());
    let parts: Vec<&str> = valid.split('.').collect();
    forged = forged.replace(parts[1], &payload);
    let none = jws(&serde_json::json!({"alg":"none"}), &claims(now() + 3600), |_| Vec::new());
    let confused = jws(&serde_json::json!({"alg":"HS256"}), &claims(now() + 3600), hs256(pem.as_bytes()));
    let rs_unconfigured = jws(&serde_json::json!({"alg":"RS256"}), &claims(now() + 3600), |_| vec![0; 256]);
    let wrong_secret = jws(
        &serde_json::json!({"alg":"HS256"}),
        &claims(now() + 3600),
        hs256(b"another-secret-of-at-least-32-bytes!"),
    );
    for (name, token) in [
        ("expired", hs(&claims(now() - 10))),
        ("forged", forged),
        ("alg none", none),
        ("algorithm confusion", confused),
        ("unconfigured algorithm", rs_unconfigured),
        ("wrong secret", wrong_secret),
    ] {
        let (status, body) = server.call(&token, "GET", "/v1/games", None).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert!(Subscriber::connect(&ws_url_with(&server, &token)).await.is_err(), "{name}");
        // A good credential clears the address's backoff before the next case.
        assert_eq!(server.call(&valid, "GET", "/v1/games/j-1", None).await.0, 404);
    }
    let refused = server.metric(r#"opensports_auth_failures_total{reason="jwt_invalid"}"#).await;
    assert!(refused >= 5.0, "{refused}");

    // A session whose token expires is told and closed.
    let short = hs(&claims(now() + 2));
    let mut s = Subscriber::connect(&ws_url_with(&server, &short)).await.unwrap();
    sub(&mut s, "game/j-1/state").await.unwrap();
    let told = told_then_closed(&mut s, "token_expired").await;
    assert!(told, "told the token expired");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_websocket_slot() {
    let server = TestServer::start_with(|c| c.auth.max_ws_per_address = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Subscriber::connect(&server.ws_url()).await.unwrap());
    }
    assert!(Subscriber::connect(&server.ws_url()).await.is_err(), "a fourth from the same address");
    assert_eq!(server.metric(r#"opensports_rate_limited_total{limit="ws_per_address"}"#).await, 1.0);
    drop(held.pop());
    let mut again = None;
    for _ in 0..200 {
        if let Ok(s) = Subscriber::connect(&server.ws_url()).await {
            again = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(again.is_some(), "a closed session gives its slot back");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_key_is_held_to_its_event_rate_and_loses_nothing() {
    let server = TestServer::start_with(|c| c.auth.max_events_per_sec_per_key = 100).await;
    let mut p = server.publisher().await;
    let evs = game_events("rate-1", 250);
    assert!(publish_codes(&mut p, &evs).await.is_empty());
    assert_eq!(p.acked("rate-1"), 250, "slowed, never dropped");
    let held = server.metric(r#"opensports_rate_limited_total{limit="events_per_key"}"#).await;
    assert!(held >= 1.0, "{held}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_cannot_take_every_game_slot() {
    let server = TestServer::start_with(|c| c.auth.max_games_per_key = 2).await;
    let key = server.key(Role::Publisher, &["*"]);
    let mut p = publisher_with(&server, &key).await.unwrap();
    assert!(publish_codes(&mut p, &game_events("q-1", 3)).await.is_empty());
    assert!(publish_codes(&mut p, &game_events("q-2", 3)).await.is_empty());
    let refused = publish_codes(&mut p, &game_events("q-3", 3)).await;
    assert!(!refused.is_empty() && refused.iter().all(|c| c == "game_quota"), "{refused:?}");
    // Another key still has slots.
    let mut other = server.publisher().await;
    assert!(publish_codes(&mut other, &game_events("q-3", 3)).await.is_empty());
    server.shutdown().await;
}

/// A raw request with an `Origin` header; returns the response head, lowercased.
async fn head_with_origin(addr: std::net::SocketAddr, method: &str, origin: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} /v1/games HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_the_allowed_origins() {
    let server =
        TestServer::start_with(|c| c.auth.cors_origins = vec!["https://graphics.example".into()]).await;
    let addr = server.running().http_addr;
    let ok = head_with_origin(addr, "OPTIONS", "https://graphics.example").await;
    assert!(ok.starts_with("http/1.1 204"), "{ok}");
    assert!(ok.contains("access-control-allow-origin: https://graphics.example"), "{ok}");
    assert!(ok.contains("access-control-allow-headers: authorization"), "{ok}");
    let get = head_with_origin(addr, "GET", "https://graphics.example").await;
    assert!(get.starts_with("http/1.1 200") && get.contains("access-control-allow-origin"), "{get}");
    let other = head_with_origin(addr, "GET", "https://evil.example").await;
    assert!(!other.contains("access-control-allow-origin"), "{other}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_port_serves_https_and_wss_with_the_quic_certificate() {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(|c| c.server.http_tls = true).await;
    let addr = server.running().http_addr;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(server.running().cert_der.clone())).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let dial = || async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        connector.connect(name.clone(), tcp).await.unwrap()
    };

    let mut tls = dial().await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200") && text.contains(r#""status":"ok""#), "{text}");

    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", dial().await).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text(r#"{"op":"sub","topics":["games"],"id":1}"#))
        .await
        .unwrap();
    let reply = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(reply.to_text().unwrap().contains(r#""op":"subscribed""#), "{reply:?}");

    // Plain HTTP on the TLS port gets no answer.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 0);
    server.shutdown().await;
}
