use super::*;

fn cfg(history_len: usize, queue_len: usize) -> FanoutConfig {
    FanoutConfig { history_len, queue_len, ..FanoutConfig::default() }
}

fn drain(o: &Outbox) -> Vec<String> {
    let mut items = Vec::new();
    o.drain(&mut items);
    items
        .into_iter()
        .flat_map(|i| match i {
            Item::Msg(p) => vec![format!("msg {} {}", p.topic, p.seq)],
            Item::Run(r) => r.pubs.iter().map(|p| format!("msg {} {}", p.topic, p.seq)).collect(),
            Item::Snapshot(p) => vec![format!("snapshot {} {}", p.topic, p.seq)],
            Item::Frame(f) => vec![f.to_string()],
            Item::Lagged => vec!["lagged".into()],
        })
        .collect()
}

#[test]
fn frames_are_serialized_once_with_data() {
    let f = Fanout::new(cfg(8, 8));
    let t = f.topic("game/a/state").unwrap();
    let p = f.publish(&t, 42, br#"{"x":1}"#);
    assert_eq!(p.frame.as_str(), r#"{"op":"msg","topic":"game/a/state","seq":1,"ts":42,"data":{"x":1}}"#);
    assert_eq!(p.data(), r#"{"x":1}"#);
    assert_eq!(
        p.snapshot_frame().as_str(),
        r#"{"op":"snapshot","topic":"game/a/state","seq":1,"ts":42,"data":{"x":1}}"#
    );
}

#[test]
fn snapshot_then_live_and_new_topics_bind_to_patterns() {
    let f = Fanout::new(cfg(8, 8));
    let a = f.topic("game/a/state").unwrap();
    f.publish(&a, 1, b"1");
    f.publish(&a, 2, b"2");
    let o = Outbox::new(8);
    f.subscribe(&o, Pattern::parse("game/+/state").unwrap(), Mode::All, &BTreeMap::new());
    f.publish(&a, 3, b"3");
    let b = f.topic("game/b/state").unwrap();
    f.publish(&b, 4, b"4");
    let other = f.topic("game/b/xg").unwrap();
    f.publish(&other, 5, b"5");
    assert_eq!(drain(&o), ["snapshot game/a/state 2", "msg game/a/state 3", "msg game/b/state 1"]);
}

#[test]
fn since_resumes_exactly_or_resets_when_too_old() {
    let f = Fanout::new(cfg(4, 64));
    let t = f.topic("games").unwrap();
    for i in 0..10 {
        f.publish(&t, i, b"0");
    }
    let p = Pattern::parse("games").unwrap();
    let o = Outbox::new(64);
    f.subscribe(&o, p.clone(), Mode::All, &BTreeMap::from([("games".to_string(), 7)]));
    assert_eq!(drain(&o), ["msg games 8", "msg games 9", "msg games 10"]);
    let o = Outbox::new(64);
    f.subscribe(&o, p.clone(), Mode::All, &BTreeMap::from([("games".to_string(), 10)]));
    assert!(drain(&o).is_empty());
    let o = Outbox::new(64);
    f.subscribe(&o, p.clone(), Mode::All, &BTreeMap::from([("games".to_string(), 2)]));
    assert_eq!(drain(&o), [r#"{"op":"reset","topic":"games"}"#, "snapshot games 10"]);
    // A resume (some `since` given) gets topics it does not list from their first message.
    let other = f.topic("games2").unwrap();
    f.publish(&other, 1, b"0");
    f.publish(&other, 2, b"0");
    let o = Outbox::new(64);
    let both = Pattern::parse("+").unwrap();
    f.subscribe(&o, both.clone(), Mode::All, &BTreeMap::from([("games".to_string(), 10)]));
    assert_eq!(drain(&o), ["msg games2 1", "msg games2 2"]);
    let o = Outbox::new(64);
    f.subscribe(&o, both, Mode::All, &BTreeMap::new());
    assert_eq!(drain(&o).len(), 2, "a fresh subscriber gets snapshots: {:?}", drain(&o));
    // Ahead of the server (it restarted and has not regenerated them yet): silence until past.
    let o = Outbox::new(64);
    f.subscribe(&o, p, Mode::All, &BTreeMap::from([("games".to_string(), 12)]));
    assert!(drain(&o).is_empty());
    for i in 0..3 {
        f.publish(&t, i, b"0");
    }
    assert_eq!(drain(&o), ["msg games 13"]);
}

#[test]
fn overflow_drops_backlog_and_marks_lagged_topics() {
    let f = Fanout::new(cfg(4, 3));
    let o = Outbox::new(3);
    f.subscribe(&o, Pattern::parse("#").unwrap(), Mode::All, &BTreeMap::new());
    let t = f.topic("x").unwrap();
    for i in 0..5 {
        f.publish(&t, i, b"0");
    }
    // 3 queued, the 4th overflowed (dropping 4), the 5th queued after the marker.
    assert_eq!(drain(&o), ["lagged", "msg x 5"]);
    let (dropped, topics) = o.take_lag();
    assert_eq!(dropped, 4);
    assert_eq!(topics.iter().map(|t| t.to_string()).collect::<Vec<_>>(), ["x"]);
}

#[test]
fn latest_mode_conflates_and_unsubscribe_stops_delivery() {
    let f = Fanout::new(cfg(4, 3));
    let o = Outbox::new(3);
    let id = f.subscribe(&o, Pattern::parse("t/+").unwrap(), Mode::Latest, &BTreeMap::new());
    let t = f.topic("t/1").unwrap();
    let u = f.topic("t/2").unwrap();
    for i in 0..100 {
        f.publish(&t, i, b"0");
    }
    f.publish(&u, 0, b"0");
    assert_eq!(drain(&o), ["msg t/1 100", "msg t/2 1"]);
    f.unsubscribe(id);
    f.publish(&t, 0, b"0");
    assert!(drain(&o).is_empty());
}

#[test]
fn overlapping_patterns_deliver_once() {
    let f = Fanout::new(cfg(4, 8));
    let o = Outbox::new(8);
    f.subscribe(&o, Pattern::parse("game/#").unwrap(), Mode::All, &BTreeMap::new());
    f.subscribe(&o, Pattern::parse("game/+/state").unwrap(), Mode::Latest, &BTreeMap::new());
    let t = f.topic("game/a/state").unwrap();
    f.publish(&t, 0, b"0");
    assert_eq!(drain(&o), ["msg game/a/state 1"]);
}

#[test]
fn max_topics_is_enforced() {
    let f = Fanout::new(FanoutConfig { max_topics: 2, ..FanoutConfig::default() });
    assert!(f.topic("a").is_some());
    assert!(f.topic("b").is_some());
    assert!(f.topic("c").is_none());
    assert!(f.topic("a").is_some());
    f.remove_topic("a");
    assert!(f.topic("c").is_some());
}

#[test]
fn a_batch_publishes_each_topic_in_order_with_one_push_per_subscriber() {
    let f = Fanout::new(cfg(8, 4));
    let (a, b) = (f.topic("game/a/state").unwrap(), f.topic("game/b/state").unwrap());
    let (all, latest, small) = (Outbox::new(64), Outbox::new(64), Outbox::new(2));
    let pattern = Pattern::parse("game/+/state").unwrap();
    f.subscribe(&all, pattern.clone(), Mode::All, &BTreeMap::new());
    f.subscribe(&latest, pattern.clone(), Mode::Latest, &BTreeMap::new());
    f.subscribe(&small, Pattern::parse("game/a/state").unwrap(), Mode::All, &BTreeMap::new());
    let mut batch = Batch::default();
    let mut scratch = b"1".to_vec();
    batch.push(&a, 1, &scratch);
    scratch[0] = b'2';
    batch.push(&b, 2, &scratch);
    batch.push(&a, 3, b"3");
    batch.push(&a, 4, b"4");
    assert_eq!(batch.len(), 4);
    f.publish_batch(&mut batch);
    assert!(batch.is_empty());
    let got = drain(&all);
    let of = |topic: &str| got.iter().filter(|m| m.contains(topic)).cloned().collect::<Vec<_>>();
    assert_eq!(of("game/a/"), ["msg game/a/state 1", "msg game/a/state 2", "msg game/a/state 3"]);
    assert_eq!(of("game/b/"), ["msg game/b/state 1"]);
    // Payloads are the staged bytes, not the caller's reused buffer.
    let data: Vec<String> = [&a, &b].iter().map(|t| t.latest().unwrap().data().to_string()).collect();
    assert_eq!(data, ["4", "2"]);
    // `latest` mode keeps only each topic's newest.
    let mut newest = drain(&latest);
    newest.sort();
    assert_eq!(newest, ["msg game/a/state 3", "msg game/b/state 1"]);
    // A queue too small for the batch overflows the same way as one message at a time.
    assert_eq!(drain(&small)[0], "lagged");
}

#[test]
fn history_is_bounded_in_bytes_as_well_as_count_and_keeps_the_latest() {
    let f = Fanout::new(FanoutConfig { history_len: 1024, history_bytes: 10_000, ..FanoutConfig::default() });
    let t = f.topic("game/a/state").unwrap();
    let big = format!(r#""{}""#, "x".repeat(3_000));
    for i in 0..50 {
        f.publish(&t, i, big.as_bytes());
    }
    let inner = t.inner.lock();
    assert!(inner.history_bytes <= 10_000, "{}", inner.history_bytes);
    assert_eq!(inner.history.len(), 3);
    assert_eq!(inner.history.back().map(|p| p.seq), Some(50));
    assert_eq!(inner.history_bytes, inner.history.iter().map(|p| p.frame.len()).sum::<usize>());
    drop(inner);
    // One publication over the bound alone is still the latest value.
    let huge = format!(r#""{}""#, "y".repeat(20_000));
    f.publish(&t, 51, huge.as_bytes());
    assert_eq!(t.inner.lock().history.len(), 1);
    assert_eq!(f.latest("game/a/state").map(|p| p.seq), Some(51));
}

#[test]
fn a_batch_goes_to_every_all_mode_subscriber_as_one_shared_run() {
    let f = Fanout::new(FanoutConfig { max_batch_bytes: 1024, ..cfg(64, 8) });
    let t = f.topic("game/a/state").unwrap();
    let (x, y, resumed, small) = (Outbox::new(8), Outbox::new(8), Outbox::new(8), Outbox::new(2));
    let pattern = Pattern::parse("game/+/state").unwrap();
    f.publish(&t, 0, b"0");
    for o in [&x, &y, &small] {
        f.subscribe(o, pattern.clone(), Mode::All, &BTreeMap::new());
    }
    // Resumed ahead of this server, through seq 2: it must not get 2 again.
    f.subscribe(&resumed, pattern, Mode::All, &BTreeMap::from([("game/a/state".to_string(), 2)]));
    let take = |o: &Outbox| {
        let mut items = Vec::new();
        o.drain(&mut items);
        items
    };
    for o in [&x, &y, &small, &resumed] {
        take(o);
    }
    let mut batch = Batch::default();
    for ts in 1..=3 {
        batch.push(&t, ts, b"1");
    }
    f.publish_batch(&mut batch);
    let (a, b) = (take(&x), take(&y));
    let (Some(Item::Run(ra)), Some(Item::Run(rb))) = (a.first(), b.first()) else { panic!("{a:?}") };
    assert_eq!(a.len(), 1);
    assert!(Arc::ptr_eq(ra, rb), "built once, shared by every subscriber");
    assert_eq!((ra.first_seq(), ra.last_seq(), ra.min_ts), (2, 4, 1));
    let seqs: Vec<u64> = opensports_proto::ws::parse_server_frame(ra.frame.as_str())
        .unwrap()
        .into_iter()
        .map(|m| match m {
            opensports_proto::ws::ServerMsg::Msg(p) => p.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert_eq!(drain(&resumed), ["msg game/a/state 3", "msg game/a/state 4"]);
    // A run counts its messages against the queue: three do not fit in two.
    assert_eq!(drain(&small)[0], "lagged");
}

#[test]
fn runs_are_split_at_the_batch_byte_limit() {
    let f = Fanout::new(FanoutConfig { max_batch_bytes: 1024, ..cfg(64, 64) });
    let t = f.topic("t").unwrap();
    let o = Outbox::new(64);
    f.subscribe(&o, Pattern::parse("t").unwrap(), Mode::All, &BTreeMap::new());
    let mut batch = Batch::default();
    let data = format!(r#""{}""#, "x".repeat(300));
    for ts in 0..7 {
        batch.push(&t, ts, data.as_bytes());
    }
    f.publish_batch(&mut batch);
    let mut items = Vec::new();
    o.drain(&mut items);
    let sizes: Vec<usize> = items
        .iter()
        .map(|i| match i {
            Item::Run(r) => {
                assert!(r.frame.len() <= 1024, "{}", r.frame.len());
                r.pubs.len()
            }
            Item::Msg(_) => 1,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [2, 2, 2, 1], "~350-byte messages: two per 1 KiB frame, the odd one alone");
}

#[test]
fn an_all_mode_queue_is_bounded_in_bytes_as_well_as_messages() {
    let f = Fanout::new(cfg(8, 4));
    let t = f.topic("game/a/state").unwrap();
    // Room for 1,000 messages but 10 KB: large publications lag the subscriber at the bytes.
    let o = Outbox::bounded(1_000, 10_000);
    f.subscribe(&o, Pattern::parse("game/a/state").unwrap(), Mode::All, &BTreeMap::new());
    let big = format!(r#""{}""#, "x".repeat(3_000));
    for i in 0..3 {
        f.publish(&t, i, big.as_bytes());
    }
    assert!(!drain(&o).iter().any(|m| m == "lagged"), "30% under the bound");
    for i in 3..10 {
        f.publish(&t, i, big.as_bytes());
    }
    let got = drain(&o);
    assert!(got.iter().any(|m| m == "lagged"), "{got:?}");
    assert!(got.iter().filter(|m| m.starts_with("msg")).count() <= 3, "{got:?}");
}
