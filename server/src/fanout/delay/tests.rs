//! Delay lines against a real clock: every check is a lower bound on time (nothing released
//! before it is due) or an order, never an upper bound on how long something took.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use opensports_proto::topic::Pattern;

use super::*;
use crate::fanout::outbox::{Item, Outbox};
use crate::metrics::now_us;

fn fanout(cfg: FanoutConfig) -> Arc<Fanout> {
    Fanout::new(cfg)
}

fn sub(f: &Fanout, o: &Arc<Outbox>, pattern: &str, since: &[(&str, u64)], delay_ms: u64) -> SubId {
    let since: BTreeMap<String, u64> = since.iter().map(|(t, s)| (t.to_string(), *s)).collect();
    let pending = f.pending_since(&since);
    f.subscribe_shared(o, Pattern::parse(pattern).unwrap(), Mode::All, &since, &pending, delay_ms)
}

/// What `o` holds now, with when it was read: `(read at, "msg|snapshot topic seq" or frame)`.
fn take(o: &Outbox) -> Vec<(Instant, Option<Pub>, String)> {
    let mut items = Vec::new();
    o.drain(&mut items);
    let now = Instant::now();
    items
        .into_iter()
        .flat_map(|i| match i {
            Item::Msg(p) => vec![(now, Some(p.clone()), format!("msg {}", p.seq))],
            Item::Run(r) => r.pubs.iter().map(|p| (now, Some(p.clone()), format!("msg {}", p.seq))).collect(),
            Item::Snapshot(p) => vec![(now, Some(p.clone()), format!("snapshot {}", p.seq))],
            Item::Frame(f) => vec![(now, None, f.to_string())],
            Item::Lagged => vec![(now, None, "lagged".into())],
        })
        .collect()
}

/// Reads `o` until it has given `n` items (or 20 s pass: then what it gave).
fn take_n(o: &Outbox, n: usize) -> Vec<(Instant, Option<Pub>, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(take(o));
        std::thread::sleep(Duration::from_millis(1));
    }
    got
}

fn names(items: &[(Instant, Option<Pub>, String)]) -> Vec<&str> {
    items.iter().map(|(_, _, s)| s.as_str()).collect()
}

#[test]
fn due_is_source_time_plus_delay_clamped_to_arrival() {
    let f = fanout(FanoutConfig::default());
    let t = f.topic("game/a/state").unwrap();
    let d = 7_000_000;
    // Stamped 10 s ago: already due when it arrives.
    let old = f.publish(&t, now_us() - 10_000_000, b"1");
    assert_eq!(due(&old, d), old.at);
    // Stamped a minute ahead (a clock ahead, a sped-up replay): due D after its arrival.
    let ahead = f.publish(&t, now_us() + 60_000_000, b"2");
    assert_eq!(due(&ahead, d), ahead.at + Duration::from_secs(7));
    // Stamped 2 s before its arrival: due 5 s after it.
    let live = f.publish(&t, now_us() - 2_000_000, b"3");
    let wait = due(&live, d) - live.at;
    assert_eq!(wait, Duration::from_micros((live.ts - live.arrival_us + d) as u64));
    assert!(wait < Duration::from_secs(5) + Duration::from_millis(1) && wait > Duration::from_secs(4));
}

#[test]
fn delayed_messages_arrive_in_order_never_early_and_one_line_serves_every_subscriber() {
    let f = fanout(FanoutConfig::default());
    let t = f.topic("game/a/state").unwrap();
    let outboxes: Vec<Arc<Outbox>> = (0..50).map(|_| Outbox::new(1024)).collect();
    for o in &outboxes {
        sub(&f, o, "game/a/#", &[], 150);
    }
    let lines = f.delay_lines();
    assert_eq!(lines.len(), 1, "one line for 50 subscribers at one delay");
    assert_eq!((lines[0].subscribers, lines[0].delay_ms), (50, 150));
    for i in 0..20 {
        f.publish(&t, now_us(), format!("{i}").as_bytes());
        std::thread::sleep(Duration::from_millis(3));
    }
    for o in &outboxes {
        let got = take_n(o, 20);
        let want: Vec<String> = (1..=20).map(|s| format!("msg {s}")).collect();
        assert_eq!(names(&got), want, "in order, each once");
        for (read_at, p, _) in &got {
            let p = p.as_ref().unwrap();
            assert!(*read_at >= due(p, 150_000), "seq {} released before its source time + 150 ms", p.seq);
        }
    }
    let info = &f.delay_lines()[0];
    assert_eq!((info.released, info.held, info.released_seq), (20, 0, 20));
}

#[test]
fn a_resume_gets_only_what_the_line_released_and_a_live_change_catches_up() {
    let f = fanout(FanoutConfig::default());
    let t = f.topic("game/a/state").unwrap();
    // 1..=5 stamped long ago (due at once), 6..=8 stamped now (held a minute).
    for _ in 0..5 {
        f.publish(&t, now_us() - 600_000_000, b"0");
    }
    let first = Outbox::new(64);
    sub(&f, &first, "game/a/state", &[], 60_000);
    assert_eq!(names(&take(&first)), ["snapshot 5"], "a new line starts from the kept history");
    for _ in 0..3 {
        f.publish(&t, now_us(), b"0");
    }
    assert_eq!(f.latest_delayed("game/a/state", 60_000).map(|p| p.seq), Some(5));
    assert_eq!(f.latest("game/a/state").map(|p| p.seq), Some(8));
    let resumed = Outbox::new(64);
    sub(&f, &resumed, "game/a/state", &[("game/a/state", 2)], 60_000);
    assert_eq!(
        names(&take(&resumed)),
        ["msg 3", "msg 4", "msg 5"],
        "the released history after since, no more"
    );
    let ahead = Outbox::new(64);
    sub(&f, &ahead, "game/a/state", &[("game/a/state", 7)], 60_000);
    assert_eq!(f.delay_lines()[0].subscribers, 3);
    // The operator shortens the delay to nothing: everything held is due now.
    assert_eq!(f.set_delay(60_000, Some(0)), 1);
    for o in [&first, &resumed] {
        assert_eq!(names(&take_n(o, 3)), ["msg 6", "msg 7", "msg 8"]);
    }
    assert_eq!(names(&take_n(&ahead, 1)), ["msg 8"], "a resume ahead skips what it has");
    assert_eq!(f.latest_delayed("game/a/state", 60_000).map(|p| p.seq), Some(8));
    // Back to a minute: a new message is held again.
    assert_eq!(f.set_delay(60_000, None), 1);
    f.publish(&t, now_us(), b"0");
    std::thread::sleep(Duration::from_millis(50));
    assert!(take(&first).is_empty());
    assert_eq!(f.delay_lines()[0].held, 1);
}

#[test]
fn the_byte_bound_drops_the_oldest_held_and_resets_the_subscribers() {
    let cfg = FanoutConfig { delay_line_bytes: 1000, ..FanoutConfig::default() };
    let f = fanout(cfg);
    let t = f.topic("game/a/state").unwrap();
    let o = Outbox::new(256);
    sub(&f, &o, "game/a/state", &[], 60_000);
    let data = format!("\"{}\"", "x".repeat(200));
    for _ in 0..20 {
        f.publish(&t, now_us(), data.as_bytes());
    }
    let info = &f.delay_lines()[0];
    assert!(info.held_bytes <= 1000 && info.held >= 1, "{info:?}");
    assert_eq!(info.dropped as usize + info.held, 20);
    f.set_delay(60_000, Some(0));
    let got = take_n(&o, 1 + info.held);
    let first_kept = 20 - info.held as u64 + 1;
    let mut want =
        vec![r#"{"op":"reset","topic":"game/a/state"}"#.to_string(), format!("snapshot {first_kept}")];
    want.extend((first_kept + 1..=20).map(|s| format!("msg {s}")));
    assert_eq!(names(&got), want);
}

#[test]
fn lines_are_bounded_and_go_with_their_last_subscriber() {
    let cfg = FanoutConfig { max_delay_lines: 2, ..FanoutConfig::default() };
    let f = fanout(cfg);
    for g in ["a", "b", "c"] {
        let t = f.topic(&format!("game/{g}/state")).unwrap();
        f.publish(&t, now_us(), b"0");
    }
    let o = Outbox::new(64);
    let id = sub(&f, &o, "game/+/state", &[], 1000);
    assert_eq!(f.delay_lines().len(), 2, "max_delay_lines");
    assert!(!f.delays().has_room());
    f.unsubscribe(id);
    assert!(f.delay_lines().is_empty());
    assert_eq!(f.delays().line_count(), 0);
    assert!(f.delays().has_room());
}
