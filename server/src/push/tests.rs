use std::collections::BTreeMap;

use super::*;

fn webhook(games: &[&str], kinds: &[&str]) -> NewDevice {
    NewDevice {
        provider: "webhook".into(),
        url: Some("http://127.0.0.1:9/push".into()),
        token: None,
        subscription: None,
        locale: None,
        time_zone: None,
        quiet_hours: None,
        games: games.iter().map(|s| s.to_string()).collect(),
        teams: vec![],
        kinds: kinds.iter().map(|s| s.to_string()).collect(),
    }
}

fn push(cfg: PushConfig) -> (tempfile::TempDir, Arc<Push>) {
    let dir = tempfile::tempdir().unwrap();
    let p = Push::open(dir.path(), cfg).unwrap();
    (dir, p)
}

fn secret() -> PushConfig {
    PushConfig { webhook_secret: "s3cret".into(), max_devices_per_credential: 2, ..PushConfig::default() }
}

#[test]
fn devices_are_checked_bounded_per_credential_and_kept() {
    let (dir, p) = push(secret());
    for (bad, why) in [
        (NewDevice { provider: "fcm".into(), ..webhook(&["g"], &[]) }, "needs token"),
        (NewDevice { url: Some("ftp://x/y".into()), ..webhook(&["g"], &[]) }, "http(s)"),
        (NewDevice { locale: Some("fr".into()), ..webhook(&["g"], &[]) }, "locale"),
        (webhook(&[], &[]), "at least one"),
        (webhook(&["g/1"], &[]), "game id"),
        (webhook(&["g"], &["a b"]), "rule name"),
    ] {
        let e = p.register("k1", bad, Default::default()).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    let a = p.register("k1", webhook(&["g"], &[]), Default::default()).unwrap();
    p.register("k1", webhook(&["g"], &[]), Default::default()).unwrap();
    assert!(matches!(p.register("k1", webhook(&["g"], &[]), Default::default()), Err(DeviceError::Full(_))));
    p.register("k2", webhook(&["g"], &[]), Default::default()).unwrap();
    assert_eq!(p.remove(&a.id, Some("k2")).unwrap(), None, "not k2's");
    assert_eq!(p.remove(&a.id, Some("k1")).unwrap().map(|d| d.id), Some(a.id.clone()));
    drop(p);
    let again = Push::open(dir.path(), secret()).unwrap();
    assert_eq!(again.devices(Some("k1")).len(), 1);
    assert_eq!(again.devices(None).len(), 2);
    let (_d, off) = push(PushConfig::default());
    assert!(
        off.register("k1", webhook(&["g"], &[]), Default::default())
            .unwrap_err()
            .to_string()
            .contains("webhook_secret")
    );
}

#[test]
fn a_firing_queues_one_entry_per_wanting_device_once() {
    let (_dir, p) = push(secret());
    let all = p.register("k1", webhook(&["g1"], &[]), Default::default()).unwrap();
    let goals = p
        .register("k2", webhook(&["g1", "g2"], &["home_goal"]), BTreeMap::from([("g2".to_string(), 5)]))
        .unwrap();
    let firing = |rule: &str, seq: u64| serde_json::json!({"rule": rule, "seq": seq, "ts": 5, "text": "t", "facts": {}});
    assert_eq!(p.dispatch("g1", &[], &firing("home_goal", 10)).unwrap(), 2);
    assert_eq!(p.dispatch("g1", &[], &firing("home_goal", 10)).unwrap(), 0, "a replay of it queues nothing");
    assert_eq!(p.dispatch("g1", &[], &firing("lead_change", 11)).unwrap(), 1);
    assert_eq!(p.dispatch("g2", &[], &firing("lead_change", 3)).unwrap(), 0);
    assert_eq!(p.dispatch("g2", &[], &firing("home_goal", 5)).unwrap(), 0, "g2's past when it registered");
    assert_eq!(p.dispatch("g2", &[], &firing("home_goal", 6)).unwrap(), 1);
    let q = p.entries(Some(State::Queued), 10).unwrap();
    let keys: Vec<&str> = q.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&format!("{}|g1|home_goal|10", all.id).as_str()));
    assert!(keys.contains(&format!("{}|g1|home_goal|10", goals.id).as_str()));
    assert_eq!(q[0].body["collapse_key"], format!("g1/{}", q[0].body["rule"].as_str().unwrap()));
}

#[test]
fn backoff_doubles_with_jitter_and_honours_retry_after_up_to_the_cap() {
    let (_dir, p) = push(PushConfig { backoff_ms: 1000, max_backoff_ms: 10_000, ..secret() });
    for tries in 0..3 {
        let base = 1000 << tries;
        let b = p.backoff(tries, None);
        assert!((base..=base + base / 2).contains(&b), "{tries}: {b}");
    }
    assert!((10_000..=15_000).contains(&p.backoff(20, None)));
    assert_eq!(p.backoff(0, Some(3)), 3000);
    assert_eq!(p.backoff(0, Some(3600)), 10_000);
}

#[test]
fn the_rate_limit_counts_a_minute_per_device_and_game() {
    let mut r = sender::Rate::default();
    assert_eq!(r.take("d", "g", 2, 0), None);
    assert_eq!(r.take("d", "g", 2, 10), None);
    assert_eq!(r.take("d", "g", 2, 20), Some(60_000), "the third waits for the first to age out");
    assert_eq!(r.take("d", "h", 2, 20), None, "another game has its own");
    assert_eq!(r.take("e", "g", 2, 20), None, "another device too");
    assert_eq!(r.take("d", "g", 2, 60_000), None);
}

#[test]
fn a_held_push_is_superseded_by_a_newer_one_of_its_collapse_key() {
    let (_dir, p) = push(secret());
    let d = p.register("k1", webhook(&["g1"], &[]), Default::default()).unwrap();
    let firing = |rule: &str, seq: u64| serde_json::json!({"rule": rule, "seq": seq, "ts": 5, "text": "t", "facts": {}});
    p.dispatch("g1", &[], &firing("home_goal", 10)).unwrap();
    let key = format!("{}|g1|home_goal|10", d.id);
    let mut first = p.load(std::slice::from_ref(&key)).unwrap().remove(0);
    assert!(!p.superseded(&first), "nothing newer yet");
    p.dispatch("g1", &[], &firing("away_goal", 11)).unwrap();
    assert!(!p.superseded(&first), "another collapse key");
    p.dispatch("g1", &[], &firing("home_goal", 12)).unwrap();
    assert!(!p.superseded(&first), "not held: sent as it comes");
    first.held = true;
    assert!(p.superseded(&first), "held, and a newer home_goal came");
}
