//! Push notifications through FCM, APNs and Web Push (issue 30), end to end: a real soccer
//! game replayed into the server, devices of each provider following it, and stand-ins for the
//! three providers (`tests/push/providers.py`, one HTTPS server) that speak each documented
//! contract and check every request with Python's own cryptography: FCM's OAuth JWT-bearer
//! assertion (RS256) and v1 messages, APNs over HTTP/2 with ES256 provider tokens, Web Push
//! payloads decrypted with `http_ece` (RFC 8291) and VAPID tokens verified (RFC 8292). The
//! stand-ins play an outage (503s and a 429 with `Retry-After`) and gone devices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use opensports_proto::{Event, Sport};
use opensports_server::auth::Role;
use opensports_tests::{TestServer, history_data, real_or_sim, wait_for, workspace};

/// The real World Cup 2018 match (simulated without `OPENSPORTS_DATA`).
fn game() -> Vec<Event> {
    real_or_sim("soccer/statsbomb_15986_events.json", Sport::Soccer, 73)
}

struct Providers {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Providers {
    async fn start(plan: &str) -> Providers {
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("python3")
            .arg(workspace().join("tests/push/providers.py"))
            .args([dir.path().to_str().unwrap(), plan])
            .spawn()
            .expect("python3");
        let port =
            wait_for(Duration::from_secs(30), || std::fs::read_to_string(dir.path().join("port")).ok())
                .await
                .trim()
                .parse()
                .unwrap();
        Providers { child, dir, port }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.path("log.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn subscription(&self, name: &str) -> serde_json::Value {
        let subs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.path("subscriptions.json")).unwrap()).unwrap();
        subs[name].clone()
    }

    /// Configures `c` for the three stand-ins.
    fn configure(&self, c: &mut opensports_server::config::Config) {
        let p = &mut c.push;
        p.allow_private_endpoints = true;
        p.ca_file = Some(self.path("ca.pem"));
        p.fcm.service_account_file = Some(self.path("service_account.json"));
        p.fcm.endpoint = self.url();
        p.apns.key_file = Some(self.path("apns.p8"));
        p.apns.key_id = "KEY1234567".into();
        p.apns.team_id = "TEAM123456".into();
        p.apns.topic = "com.example.scores".into();
        p.apns.endpoint = self.url();
        p.webpush.vapid_key_file = Some(self.path("vapid.pem"));
        p.backoff_ms = 50;
        p.max_backoff_ms = 1500;
        p.timeout_ms = 5000;
        p.max_per_game_per_minute = 10_000;
    }
}

impl Drop for Providers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn register(server: &TestServer, key: &str, body: serde_json::Value) -> String {
    let text = body.to_string();
    let (status, answer) =
        server.call(key, "POST", "/v1/devices", Some(("application/json", text.as_bytes()))).await;
    assert_eq!(status, 201, "{body}: {answer}");
    let d: serde_json::Value = serde_json::from_str(&answer).unwrap();
    d["id"].as_str().unwrap().to_string()
}

/// Web Push's `Topic` for a collapse key, computed here as PROTOCOL.md says.
fn topic(collapse: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, collapse.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())[..32].to_string()
}

struct Follower {
    id: String,
    locale: &'static str,
    kinds: &'static [&'static str],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_apns_and_web_push_each_get_every_moment_once_in_their_own_protocol() {
    // An outage while the game is under way: 503, 503, a 429 asking for 1 s, 503.
    let providers = Providers::start("503,503,429:1,503").await;
    let events = game();
    let id = events[0].game.clone();
    let server = TestServer::start_with(|c| {
        providers.configure(c);
        c.auth.public_topics = vec!["game/+/state".into()];
    })
    .await;
    let fan = server.key(Role::Subscriber, &[&format!("game/{id}/#")]);
    let goals: &[&str] = &["home_goal", "away_goal", "score_correction", "final"];
    let mut followers = Vec::new();
    for (body, locale, kinds) in [
        (serde_json::json!({"provider": "fcm", "token": "fcm-token-1", "locale": "es"}), "es", &[][..]),
        (serde_json::json!({"provider": "apns", "token": "ab".repeat(32), "kinds": goals}), "en", goals),
        (
            serde_json::json!({"provider": "webpush", "subscription": providers.subscription("browser1"), "locale": "es"}),
            "es",
            &[],
        ),
        (
            serde_json::json!({"provider": "webpush", "subscription": providers.subscription("browser2"), "kinds": goals}),
            "en",
            goals,
        ),
    ] {
        let mut body = body;
        body["games"] = serde_json::json!([id]);
        followers.push(Follower { id: register(&server, &fan, body).await, locale, kinds });
    }
    let (status, key) = server.call(&fan, "GET", "/v1/push/webpush", None).await;
    let key: serde_json::Value = serde_json::from_str(&key).unwrap();
    assert_eq!((status, key["public_key"].as_str().unwrap().len()), (200, 87), "a P-256 point, base64url");
    let mut gone = Vec::new();
    for body in [
        serde_json::json!({"provider": "fcm", "token": "dead-fcm-token"}),
        serde_json::json!({"provider": "apns", "token": format!("dead{}", "ab".repeat(30))}),
        serde_json::json!({"provider": "webpush", "subscription": providers.subscription("dead1")}),
    ] {
        let mut body = body;
        body["games"] = serde_json::json!([id]);
        gone.push(register(&server, &fan, body).await);
    }

    server.publish_all(&events).await;

    // What should have been pushed: the game's firings.
    let url = format!("{}?token={}", server.ws_url(), server.admin_key());
    let mut sub = opensports_client::Subscriber::connect(&url).await.unwrap();
    let fired: Vec<serde_json::Value> = history_data(&mut sub, &format!("game/{id}/triggers")).await;
    let rules: BTreeSet<&str> = fired.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert!(rules.contains("game_start") && rules.contains("final"), "{rules:?}");
    assert!(rules.contains("home_goal") || rules.contains("away_goal"), "{rules:?}");
    let want = |f: &Follower| -> BTreeMap<String, &serde_json::Value> {
        fired
            .iter()
            .filter(|x| f.kinds.is_empty() || f.kinds.contains(&x["rule"].as_str().unwrap()))
            .map(|x| (format!("{}|{id}|{}|{}", f.id, x["rule"].as_str().unwrap(), x["seq"]), x))
            .collect()
    };
    let all: BTreeSet<String> = followers.iter().flat_map(|f| want(f).into_keys()).collect();
    let lines = wait_for(Duration::from_secs(90), || {
        let lines = providers.lines();
        let taken: BTreeSet<String> = lines
            .iter()
            .filter(|l| l["status"] == 200)
            .filter_map(|l| l["key"].as_str().map(String::from))
            .collect();
        all.is_subset(&taken).then_some(lines)
    })
    .await;
    assert!(
        lines.iter().all(|l| l["valid"] == true),
        "every request as its provider documents it: {lines:#?}"
    );
    assert!(lines.iter().filter(|l| l["status"] == 503).count() >= 3, "the outage was played");

    for f in &followers {
        let want = want(f);
        let mine: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["status"] == 200 && l["key"].as_str().unwrap().starts_with(&f.id))
            .collect();
        let keys: Vec<&str> = mine.iter().map(|l| l["key"].as_str().unwrap()).collect();
        let unique: BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(keys.len(), unique.len(), "{}: nothing taken twice: {keys:?}", f.id);
        assert_eq!(unique, want.keys().map(String::as_str).collect(), "{}: every moment, nothing else", f.id);
        for l in mine {
            let firing = want[l["key"].as_str().unwrap()];
            let rule = firing["rule"].as_str().unwrap();
            let text = firing["texts"][f.locale].as_str().or(firing["text"].as_str()).unwrap();
            assert_eq!(l["text"], text, "{l}");
            assert_eq!(l["collapse"], format!("{id}/{rule}"));
            if rule.ends_with("_goal") {
                assert_eq!(l["title"], if f.locale == "es" { "Gol" } else { "Goal" });
            }
            if l["provider"] == "webpush" {
                assert_eq!(l["topic"], topic(&format!("{id}/{rule}")));
            }
        }
    }
    // Spanish where the device asked for it, and the default rules have it.
    let goal = fired.iter().find(|f| f["rule"].as_str().unwrap().ends_with("_goal")).unwrap();
    assert!(goal["texts"]["es"].as_str().unwrap().starts_with("GOL de "), "{goal}");

    // Gone devices: removed, their pushes dead-lettered with the reason.
    let (_, devices) = server.admin_get("/v1/devices").await;
    for g in &gone {
        assert!(!devices.contains(g.as_str()), "{g} removed: {devices}");
    }
    let (_, dead) = server.admin_get("/v1/push/outbox?state=dead").await;
    assert!(gone.iter().all(|g| dead.contains(g.as_str())) && dead.contains("gone"), "{dead}");
    // One FCM access token and one APNs provider token for the whole game.
    assert_eq!(server.metric(r#"opensports_push_tokens_total{provider="fcm"}"#).await, 1.0);
    assert_eq!(server.metric(r#"opensports_push_tokens_total{provider="apns"}"#).await, 1.0);
    assert!(server.metric(r#"opensports_push_sent_total{provider="webpush"}"#).await >= 2.0);
    let (_, queued) = server.admin_get("/v1/push/outbox?state=queued").await;
    assert_eq!(queued, r#"{"entries":[]}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_pushes_a_late_follower_gets_no_past_moments_and_a_team_fan_its_games() {
    let providers = Providers::start("").await;
    let events = game();
    let id = events[0].game.clone();
    let server = TestServer::start_with(|c| {
        providers.configure(c);
        c.auth.public_topics = vec!["game/+/state".into()];
    })
    .await;
    let fan = server.key(Role::Subscriber, &[&format!("game/{id}/#")]);
    // Quiet from an hour ago to an hour ahead, in Tokyo.
    let tokyo = |h: i64| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let local = (t + 9 * 3600 + h * 3600).rem_euclid(86_400);
        format!("{:02}:{:02}", local / 3600, local % 3600 / 60)
    };
    let quiet = register(
        &server,
        &fan,
        serde_json::json!({"provider": "fcm", "token": "sleeping-1", "games": [id], "time_zone": "Asia/Tokyo",
            "quiet_hours": {"start": tokyo(-1), "end": tokyo(1)}}),
    )
    .await;
    // A fan of the home team, not of this game: gets its every moment.
    let opensports_proto::Body::Soccer(opensports_proto::soccer::Event::GameStart { home, .. }) =
        &events[0].body
    else {
        panic!("a game starts with its teams")
    };
    let everything = server.key(Role::Subscriber, &["game/#"]);
    let team_fan = register(
        &server,
        &everything,
        serde_json::json!({"provider": "webpush", "subscription": providers.subscription("browser2"), "teams": [home]}),
    )
    .await;
    let text = serde_json::json!({"provider": "fcm", "token": "x", "teams": [home]}).to_string();
    let (status, _) =
        server.call(&fan, "POST", "/v1/devices", Some(("application/json", text.as_bytes()))).await;
    assert_eq!(status, 403, "following a team needs game/+/triggers");
    let half = events.len() / 2;
    server.publish_all(&events[..half]).await;
    let late = register(
        &server,
        &fan,
        serde_json::json!({"provider": "apns", "token": "cd".repeat(32), "games": [id]}),
    )
    .await;
    server.publish_all(&events[half..]).await;

    let url = format!("{}?token={}", server.ws_url(), server.admin_key());
    let mut sub = opensports_client::Subscriber::connect(&url).await.unwrap();
    let fired: Vec<serde_json::Value> = history_data(&mut sub, &format!("game/{id}/triggers")).await;
    let half_seq = events[half - 1].seq;
    let after: BTreeSet<String> = fired
        .iter()
        .filter(|f| f["seq"].as_u64().unwrap() > half_seq)
        .map(|f| format!("{late}|{id}|{}|{}", f["rule"].as_str().unwrap(), f["seq"]))
        .collect();
    assert!(!after.is_empty());
    let lines = wait_for(Duration::from_secs(60), || {
        let lines = providers.lines();
        let taken: BTreeSet<String> =
            lines.iter().filter_map(|l| l["key"].as_str().map(String::from)).collect();
        after.is_subset(&taken).then_some(lines)
    })
    .await;
    let late_keys: BTreeSet<String> = lines
        .iter()
        .filter_map(|l| l["key"].as_str())
        .filter(|k| k.starts_with(&late))
        .map(String::from)
        .collect();
    assert_eq!(late_keys, after, "the late follower gets what came after it registered, not the past");
    let all: BTreeSet<String> = fired
        .iter()
        .map(|f| format!("{team_fan}|{id}|{}|{}", f["rule"].as_str().unwrap(), f["seq"]))
        .collect();
    let team_keys = wait_for(Duration::from_secs(60), || {
        let got: BTreeSet<String> = providers
            .lines()
            .iter()
            .filter_map(|l| l["key"].as_str())
            .filter(|k| k.starts_with(&team_fan))
            .map(String::from)
            .collect();
        (got.len() >= all.len()).then_some(got)
    })
    .await;
    assert_eq!(team_keys, all, "the team's fan gets the team's game");
    assert!(!lines.iter().any(|l| l["device"] == "sleeping-1"), "nothing sent in quiet hours");
    // Every moment for the sleeping device is held, none sent.
    let start = std::time::Instant::now();
    loop {
        let (_, body) = server.admin_get("/v1/push/outbox?state=queued").await;
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let held = doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["device"] == quiet.as_str() && e["reason"] == "held: quiet hours" && e["tries"] == 0
            })
            .count();
        if held == fired.len() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "held {held} of {}: {body}", fired.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.metric(r#"opensports_push_held_total{reason="quiet_hours"}"#).await >= fired.len() as f64);
}

/// A touchdown taken back on review (`score_correction`): the device that got the score gets a
/// correction naming the score as it stands again, not silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_taken_back_is_pushed_as_a_correction() {
    use opensports_proto::football::Event as Fb;
    use opensports_proto::{Body, ScoreCorrection};
    let providers = Providers::start("").await;
    let mut events = opensports_tests::sim_events(Sport::Football, 5, opensports_tests::SIM_START_US);
    let id = events[0].game.clone();
    // The first home score, and the score before it.
    let mut state = opensports_server::pipeline::state::GameState::new(&id, Sport::Football);
    let (mut at, mut before) = (None, (0, 0));
    for (i, e) in events.iter().enumerate() {
        let prev = state.score.map_or((0, 0), |s| (s.home, s.away));
        state.apply(e);
        if state.score.is_some_and(|s| s.home > prev.0) {
            (at, before) = (Some(i), prev);
            break;
        }
    }
    let at = at.expect("the simulated game has a home score");
    let mut reversal = events[at].clone();
    reversal.seq += 1;
    reversal.ts += 1;
    reversal.body = Body::Football(Fb::ScoreCorrection(ScoreCorrection {
        home: before.0 as u16,
        away: before.1 as u16,
        reason: "touchdown reversed on review".into(),
    }));
    events.truncate(at + 1);
    events.push(reversal);

    let server = TestServer::start_with(|c| providers.configure(c)).await;
    let fan = server.key(Role::Subscriber, &[&format!("game/{id}/#")]);
    let device = register(
        &server,
        &fan,
        serde_json::json!({"provider": "fcm", "token": "fan-1", "games": [id], "kinds": ["home_scores", "score_correction"]}),
    )
    .await;
    server.publish_all(&events).await;
    let seq = events[at].seq;
    let want =
        [format!("{device}|{id}|home_scores|{seq}"), format!("{device}|{id}|score_correction|{}", seq + 1)];
    let lines = wait_for(Duration::from_secs(60), || {
        let lines = providers.lines();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    let mut got: Vec<&serde_json::Value> = lines.iter().filter(|l| l["status"] == 200).collect();
    got.sort_by_key(|l| l["key"].as_str().unwrap().rsplit('|').next().unwrap().parse::<u64>().unwrap());
    let keys: Vec<&str> = got.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, want, "the score, then its correction, nothing else");
    let text = got[1]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Score corrected: ") && text.contains(&format!("{}-{}", before.0, before.1)),
        "{text}"
    );
    assert_eq!(got[1]["title"], "Score corrected");
}
