//! The operator console (`/console`): two-factor sign-in (RFC 6238 TOTP, backup codes), its
//! session cookie and CSRF rules, and every page acting through the admin API under the
//! signed-in key. The browser test drives Debian chromium (playwright-core,
//! tests/browser/console.mjs); the rest speak HTTP to a real server.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use opensports_proto::Sport;
use opensports_server::api::console::totp;
use opensports_server::config::PluginEntry;
use opensports_tests::{TestServer, WAIT, plugin_wasm, sim_events};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request with any headers; returns (status, head lower-cased, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// The `name=value` of a `Set-Cookie` for `name` in a response head.
fn cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .find(|c| c.starts_with(&format!("{name}=")) && !c.starts_with(&format!("{name}=;")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// Signs `key` in (no authenticator, not required): the session cookie and its CSRF token.
async fn sign_in(addr: SocketAddr, key: &str) -> (String, String) {
    let (status, head, body) =
        request(addr, "POST", "/console/api/login", &[JSON], &format!(r#"{{"key":"{key}"}}"#)).await;
    assert_eq!(status, 200, "{body}");
    let line = head.lines().find(|l| l.starts_with("set-cookie: osc_session=")).unwrap().to_string();
    for attr in ["httponly", "samesite=strict", "path=/"] {
        assert!(line.contains(attr), "{attr} missing: {line}");
    }
    let session = cookie(&head, "osc_session").unwrap();
    let (status, _, body) = request(addr, "GET", "/console/api/session", &[("Cookie", &session)], "").await;
    assert_eq!(status, 200, "{body}");
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf"].as_str().unwrap().to_string();
    (session, csrf)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn unbase32(s: &str) -> Vec<u8> {
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        value =
            (value << 5) | "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".bytes().position(|a| a == c).unwrap() as u32;
        bits += 5;
        if bits >= 8 {
            out.push((value >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_sessions_csrf_token_and_the_same_origin() {
    let server = TestServer::start().await;
    let addr = server.running().http_addr;
    let admin = server.admin_key();
    let (session, csrf) = sign_in(addr, &admin).await;
    let body = r#"{"name":"x","role":"subscriber","scopes":["games"]}"#;
    // The cookie reads.
    assert_eq!(request(addr, "GET", "/v1/keys", &[("Cookie", &session)], "").await.0, 200);
    // A change without the token, or with another, is refused with `csrf`.
    for headers in [
        vec![("Cookie", session.as_str()), JSON],
        vec![("Cookie", session.as_str()), JSON, ("X-CSRF-Token", "0000")],
    ] {
        let (status, _, text) = request(addr, "POST", "/v1/keys", &headers, body).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("\"csrf\""), "{text}");
    }
    // With it, the change goes through the admin API and is audited under the key.
    let (status, _, text) =
        request(addr, "POST", "/v1/keys", &[("Cookie", &session), JSON, ("X-CSRF-Token", &csrf)], body).await;
    assert_eq!(status, 201, "{text}");
    // A cross-site form (not JSON) or another origin cannot sign in or out.
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, _, text) =
        request(addr, "POST", "/console/api/login", &[form], &format!("key={admin}")).await;
    assert_eq!((status, text.contains("csrf")), (403, true), "{text}");
    let evil = ("Origin", "http://evil.example");
    let (status, _, _) =
        request(addr, "POST", "/console/api/login", &[JSON, evil], &format!(r#"{{"key":"{admin}"}}"#)).await;
    assert_eq!(status, 403);
    let (status, _, _) =
        request(addr, "POST", "/console/api/logout", &[("Cookie", &session), JSON], "{}").await;
    assert_eq!(status, 403, "sign-out without the token");
    // A subscriber key gets no console.
    let sub = server.key(opensports_server::auth::Role::Subscriber, &["games"]);
    let (status, _, _) =
        request(addr, "POST", "/console/api/login", &[JSON], &format!(r#"{{"key":"{sub}"}}"#)).await;
    assert_eq!(status, 403);
    // Signed out, the cookie is worth nothing.
    let (status, _, _) = request(
        addr,
        "POST",
        "/console/api/logout",
        &[("Cookie", &session), JSON, ("X-CSRF-Token", &csrf)],
        "{}",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(request(addr, "GET", "/v1/keys", &[("Cookie", &session)], "").await.0, 401);
    let (_, audit) = server.call(&admin, "GET", "/v1/audit?action_prefix=console.&limit=1000", None).await;
    let actions: Vec<String> = serde_json::from_str::<Value>(&audit).unwrap()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["console.sign_in", "console.sign_out"], "the filter keeps console.* only");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_lock_the_second_step_and_a_code_is_good_once() {
    let server = TestServer::start_with(|c| c.console.require_totp = true).await;
    let addr = server.running().http_addr;
    let admin = server.admin_key();
    let login = format!(r#"{{"key":"{admin}"}}"#);
    // Required and not enrolled: the key's first sign-in enrols.
    let (status, head, body) = request(addr, "POST", "/console/api/login", &[JSON], &login).await;
    assert_eq!((status, body.as_str()), (200, r#"{"next":"enroll"}"#));
    assert!(cookie(&head, "osc_session").is_none(), "no session before the second factor");
    let pending = cookie(&head, "osc_pending").unwrap();
    let (_, _, body) =
        request(addr, "POST", "/console/api/enroll", &[("Cookie", &pending), JSON], "{}").await;
    let e: Value = serde_json::from_str(&body).unwrap();
    let secret = unbase32(e["secret"].as_str().unwrap());
    assert!(e["uri"].as_str().unwrap().starts_with("otpauth://totp/OpenSports%20Edge:"));
    let n = e["qr"].as_array().unwrap().len();
    assert!(n >= 21 && e["qr"][0].as_array().unwrap().len() == n, "a square QR code");
    let code = format!("{:06}", totp::hotp(&secret, now() / 30));
    let (status, head, body) = request(
        addr,
        "POST",
        "/console/api/enroll/confirm",
        &[("Cookie", &pending), JSON],
        &format!(r#"{{"code":"{code}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let backup: Vec<String> = serde_json::from_str::<Value>(&body).unwrap()["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(backup.len(), 10);
    assert!(cookie(&head, "osc_session").is_some());

    // Signing in again: the code just used is spent (replay), wrong codes count.
    let (_, head, body) = request(addr, "POST", "/console/api/login", &[JSON], &login).await;
    assert_eq!(body, r#"{"next":"code"}"#);
    let pending = cookie(&head, "osc_pending").unwrap();
    let try_code = |c: String| {
        let pending = pending.clone();
        async move {
            request(
                addr,
                "POST",
                "/console/api/code",
                &[("Cookie", &pending), JSON],
                &format!(r#"{{"code":"{c}"}}"#),
            )
            .await
        }
    };
    assert_eq!(try_code(code.clone()).await.0, 401, "a TOTP code is good once");
    for _ in 0..3 {
        assert_eq!(try_code("000000".into()).await.0, 401);
    }
    // The fifth failure locks the key's second step, even for the right answer.
    let (status, head, _) = try_code("111111".into()).await;
    assert_eq!(status, 429);
    assert!(head.contains("retry-after: "), "{head}");
    let (_, head, _) = request(addr, "POST", "/console/api/login", &[JSON], &login).await;
    let pending = cookie(&head, "osc_pending").unwrap();
    let (status, _, body) = request(
        addr,
        "POST",
        "/console/api/code",
        &[("Cookie", &pending), JSON],
        &format!(r#"{{"code":"{}"}}"#, backup[0]),
    )
    .await;
    assert_eq!(status, 429, "locked: {body}");
    assert!(server.metric("opensports_auth_failures_total{reason=\"totp\"}").await >= 5.0);
    let (_, audit) = server.call(&admin, "GET", "/v1/audit?action_prefix=console.code_refused", None).await;
    assert_eq!(serde_json::from_str::<Value>(&audit).unwrap()["entries"].as_array().unwrap().len(), 5);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_idle_and_when_their_key_is_revoked() {
    let server = TestServer::start_with(|c| c.console.session_minutes = 0).await;
    let addr = server.running().http_addr;
    let admin = server.admin_key();
    let (_, head, _) =
        request(addr, "POST", "/console/api/login", &[JSON], &format!(r#"{{"key":"{admin}"}}"#)).await;
    let session = cookie(&head, "osc_session").unwrap();
    assert_eq!(
        request(addr, "GET", "/console/api/session", &[("Cookie", &session)], "").await.0,
        401,
        "idle 0 minutes"
    );
    server.shutdown().await;

    let server = TestServer::start().await;
    let addr = server.running().http_addr;
    let admin = server.admin_key();
    let (session, _) = sign_in(addr, &admin).await;
    assert_eq!(request(addr, "GET", "/v1/keys", &[("Cookie", &session)], "").await.0, 200);
    let id =
        serde_json::from_str::<Value>(&server.admin_get("/v1/audit?action_prefix=console.sign_in").await.1)
            .unwrap()["entries"][0]["actor"]
            .as_str()
            .unwrap()
            .to_string();
    let other = server.admin_key();
    assert_eq!(server.call(&other, "DELETE", &format!("/v1/keys/{id}"), None).await.0, 200);
    assert_eq!(
        request(addr, "GET", "/v1/keys", &[("Cookie", &session)], "").await.0,
        401,
        "revoked key's session"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_signs_in_with_totp_and_acts_through_the_audited_admin_api() {
    let Some(browser_dir) = opensports_tests::browser_dir("console") else { return };
    let wasm = plugin_wasm("basketball-boxscore");
    let w = wasm.clone();
    let server = TestServer::start_with(move |c| {
        c.console.require_totp = true;
        c.plugins.load = vec![PluginEntry::new(w)];
    })
    .await;
    let events = sim_events(Sport::Basketball, 3, 0);
    let game = events[0].game.clone();
    server.publish_all(&events[..40]).await;
    // A game whose data breaks the box score (one name for everyone: security_round2.rs) gets
    // the plugin quarantined for it: the plugins page re-enables it.
    let attack = opensports_tests::boxscore_breaking_events("attack-1", 120);
    server.publish_all(&attack).await;
    let plugins: Value = serde_json::from_str(&server.get("/v1/plugins").await.1).unwrap();
    assert_eq!(plugins["plugins"][0]["quarantined_games"], serde_json::json!(["attack-1"]), "{plugins}");
    let admin = server.admin_key();
    let base = format!("http://{}", server.running().http_addr);
    let node = tokio::process::Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .args([&base, &admin])
        .arg(&wasm)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), node).await.unwrap().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(r.get("failure").is_none(), "{}", r["failure"]);
    assert_eq!(r["errors"], serde_json::json!([]), "no JavaScript errors");
    assert_eq!(r["axe"], serde_json::json!([]), "no serious or critical WCAG 2 A/AA finding (axe-core)");
    assert!(r["qrModules"].as_u64().unwrap() >= 1, "the QR code is drawn");
    assert!(r["gamesText"].as_str().unwrap().contains(&game), "the games page lists the game");
    assert!(r["createdKey"].as_str().unwrap().starts_with("osk_"));
    assert!(r["clusterText"].as_str().unwrap().contains("alone"));
    assert!(r["securityText"].as_str().unwrap().contains("every console sign-in asks for its code"));
    assert_eq!(r["afterSignOut"], 401, "signed out, the cookie reads nothing");
    assert_eq!((r["signedInAgain"].as_bool(), r["reusedRefused"].as_bool()), (Some(true), Some(true)));
    let me = r["me"].as_str().unwrap();
    let filtered: BTreeSet<&str> =
        r["auditActions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(filtered, BTreeSet::from(["key.create", "key.revoke"]), "the audit page's filters");

    // Every action is in the audit log under the signed-in key (read with the key itself).
    let (_, audit) = server.call(&admin, "GET", &format!("/v1/audit?actor={me}&limit=1000"), None).await;
    let entries: Vec<Value> =
        serde_json::from_str::<Value>(&audit).unwrap()["entries"].as_array().unwrap().clone();
    let actions: BTreeSet<String> =
        entries.iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    for want in [
        "console.totp_enrol",
        "console.sign_in",
        "key.create",
        "key.revoke",
        "plugin.replace",
        "plugin.enable_game",
        "model.activate",
        "trigger.disarm",
        "delay.set",
        "console.sign_out",
        "console.backup_code",
        "console.code_refused",
    ] {
        assert!(actions.contains(want), "{want} not audited under {me}: {actions:?}");
    }
    assert!(entries.iter().all(|e| e["actor"] == me));
    // And the changes are real.
    let keys: Value = serde_json::from_str(&server.admin_get("/v1/keys").await.1).unwrap();
    let made = keys["keys"].as_array().unwrap().iter().find(|k| k["id"] == r["createdId"]).unwrap();
    assert_eq!(made["name"], "made-in-console");
    assert!(made["revoked_ms"].is_number() || made["revoked"] == true, "{made}");
    let plugins: Value = serde_json::from_str(&server.get("/v1/plugins").await.1).unwrap();
    assert_eq!(plugins["plugins"][0]["quarantined_games"], serde_json::json!([]), "{plugins}");
    let delays: Value = serde_json::from_str(&server.admin_get("/v1/delays").await.1).unwrap();
    assert_eq!(delays["overrides"], serde_json::json!([{"delay_ms": 7000, "effective_ms": 5000}]));
    let triggers: Value = serde_json::from_str(&server.admin_get("/v1/triggers").await.1).unwrap();
    let rule = r["trigger"].as_str().unwrap();
    let listed = triggers.to_string();
    assert!(listed.contains(rule), "{listed}");
    let _ = WAIT;
    server.shutdown().await;
}
