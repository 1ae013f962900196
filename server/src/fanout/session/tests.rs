//! Every rule of PROTOCOL.md §2, without sockets or a runtime: client ops go into a
//! [`Session`], publications into the [`Fanout`], and what a client would read comes out of the
//! [`Framer`] as text frames, parsed with the clients' own parser.

use std::sync::Arc;

use opensports_proto::ws::{Publication, ServerMsg, parse_server_frame};

use super::*;
use crate::config::FanoutConfig;
use crate::fanout::outbox::{DRAIN_MAX, REPLY_BUDGET};

struct Client {
    fanout: Arc<Fanout>,
    session: Session,
    framer: Framer,
}

impl Client {
    fn new(cfg: FanoutConfig) -> Client {
        let fanout = Fanout::new(cfg);
        Client::on(&fanout)
    }

    /// An anonymous client on a server whose topics are all public.
    fn on(fanout: &Arc<Fanout>) -> Client {
        Client::with(fanout, Principal::anonymous(), &["#"])
    }

    fn with(fanout: &Arc<Fanout>, principal: Principal, public: &[&str]) -> Client {
        let outbox = Outbox::new(fanout.config().queue_len);
        let public = public.iter().map(|s| s.to_string()).collect();
        Client {
            fanout: fanout.clone(),
            session: Session::new(
                fanout.clone(),
                outbox,
                Access { principal, public, transport: Transport::Ws },
                Instant::now(),
            ),
            framer: Framer::new(fanout.clone()),
        }
    }

    fn send(&mut self, op: &str) {
        self.session.on_text(op, Instant::now());
    }

    /// The frames the writer would send now.
    fn frames(&mut self) -> Vec<String> {
        let (mut items, mut frames) = (Vec::new(), Vec::new());
        self.session.outbox().drain(&mut items);
        self.framer.frames(&mut items, self.session.outbox(), &mut frames);
        frames.iter().map(|f| f.to_string()).collect()
    }

    /// Every message the client would read now, batch frames unpacked.
    fn read(&mut self) -> Vec<ServerMsg> {
        self.frames().iter().flat_map(|f| parse_server_frame(f).expect("valid server frame")).collect()
    }

    fn publish(&self, topic: &str, ts: i64) {
        let t = self.fanout.topic(topic).expect("topic");
        self.fanout.publish(&t, ts, format!(r#"{{"ts":{ts}}}"#).as_bytes());
    }
}

fn cfg(history_len: usize, queue_len: usize) -> FanoutConfig {
    FanoutConfig { history_len, queue_len, ..FanoutConfig::default() }
}

/// Messages as `op topic seq` strings, for compact assertions.
fn brief(msgs: &[ServerMsg]) -> Vec<String> {
    msgs.iter()
        .map(|m| match m {
            ServerMsg::Msg(p) => format!("msg {} {}", p.topic, p.seq),
            ServerMsg::Snapshot(p) => format!("snapshot {} {}", p.topic, p.seq),
            ServerMsg::Reset { topic } => format!("reset {topic}"),
            ServerMsg::Lagged { dropped } => format!("lagged {dropped}"),
            ServerMsg::Subscribed { topics, .. } => format!("subscribed {}", topics.join(",")),
            ServerMsg::Unsubscribed { topics, .. } => format!("unsubscribed {}", topics.join(",")),
            ServerMsg::Pong { .. } => "pong".into(),
            ServerMsg::Error { code, .. } => format!("error {code}"),
        })
        .collect()
}

#[test]
fn sub_sends_snapshots_then_subscribed_then_live_messages() {
    let mut c = Client::new(cfg(16, 64));
    c.publish("game/a/state", 1);
    c.publish("game/a/state", 2);
    c.send(r#"{"op":"sub","topics":["game/+/state"]}"#);
    c.publish("game/a/state", 3);
    c.publish("game/b/state", 4);
    c.publish("game/b/xg", 5);
    let msgs = c.read();
    assert_eq!(
        brief(&msgs),
        ["snapshot game/a/state 2", "subscribed game/+/state", "msg game/a/state 3", "msg game/b/state 1"]
    );
    let ServerMsg::Msg(Publication { data, ts, .. }) = &msgs[3] else { panic!() };
    assert_eq!((ts, data), (&4, &serde_json::json!({"ts": 4})));
}

#[test]
fn unsub_stops_delivery_and_is_answered() {
    let mut c = Client::new(cfg(16, 64));
    c.send(r##"{"op":"sub","topics":["#"]}"##);
    c.publish("games", 1);
    c.send(r##"{"op":"unsub","topics":["#","never/subscribed"]}"##);
    c.publish("games", 2);
    assert_eq!(brief(&c.read()), ["subscribed #", "msg games 1", "unsubscribed #,never/subscribed"]);
    assert_eq!(c.session.patterns(), 0);
}

#[test]
fn ping_is_answered_ahead_of_queued_publications() {
    let mut c = Client::new(cfg(16, 64));
    c.send(r#"{"op":"sub","topics":["games"]}"#);
    c.publish("games", 1);
    c.send(r#"{"op":"ping"}"#);
    assert_eq!(brief(&c.read()), ["pong", "subscribed games", "msg games 1"]);
}

#[test]
fn every_bad_op_gets_its_documented_error_and_the_session_goes_on() {
    let mut c =
        Client::new(FanoutConfig { max_subscriptions: 2, max_client_message_bytes: 200, ..cfg(16, 64) });
    let cases = [
        ("{not json", "bad_json"),
        (r#"{"op":"dance"}"#, "bad_op"),
        (r#"{"op":"sub","topics":["games"],"mdoe":"all"}"#, "bad_op"),
        (r#"{"op":"sub"}"#, "bad_op"),
        (r#"{"op":"sub","topics":[]}"#, "bad_op"),
        (r#"{"op":"sub","topics":["game/#/x"]}"#, "bad_pattern"),
        (r#"{"op":"sub","topics":["game/+/state"],"since":{"game/+/state":1}}"#, "bad_since"),
        (r#"{"op":"sub","topics":["game/+/state"],"since":{"games":1}}"#, "bad_since"),
        (r#"{"op":"sub","topics":["a","b","c"]}"#, "too_many_subscriptions"),
    ];
    for (op, _) in cases {
        c.send(op);
    }
    c.send(&format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(300)));
    c.session.on_binary();
    let mut want: Vec<String> = cases.iter().map(|(_, code)| format!("error {code}")).collect();
    want.push("error message_too_large".into());
    want.push("error binary_not_supported".into());
    assert_eq!(brief(&c.read()), want);
    // A refused sub changed nothing; a good one still works.
    assert_eq!(c.session.patterns(), 0);
    c.send(r#"{"op":"sub","topics":["a","b"]}"#);
    assert_eq!(brief(&c.read()), ["subscribed a,b"]);
}

#[test]
fn since_resumes_from_history_resets_when_too_old_and_skips_what_the_client_has() {
    let fanout = Fanout::new(cfg(4, 64));
    let mut c = Client::on(&fanout);
    for ts in 1..=10 {
        c.publish("games", ts);
    }
    c.publish("game/x/state", 1);
    // Kept history is seqs 7..=10: since 7 resumes exactly.
    c.send(r#"{"op":"sub","topics":["games"],"since":{"games":7}}"#);
    assert_eq!(brief(&c.read()), ["msg games 8", "msg games 9", "msg games 10", "subscribed games"]);
    // Since 2 is older than the history: reset, then the latest as a snapshot.
    let mut old = Client::on(&fanout);
    old.send(r#"{"op":"sub","topics":["games"],"since":{"games":2}}"#);
    assert_eq!(brief(&old.read()), ["reset games", "snapshot games 10", "subscribed games"]);
    // Since ahead of the server (it restarted): nothing until the topic passes it.
    let mut ahead = Client::on(&fanout);
    ahead.send(r#"{"op":"sub","topics":["games"],"since":{"games":12}}"#);
    assert_eq!(brief(&ahead.read()), ["subscribed games"]);
    for ts in 11..=13 {
        ahead.publish("games", ts);
    }
    assert_eq!(brief(&ahead.read()), ["msg games 13"]);
    // A resume lists some topics; a matching topic it does not list is sent from its start.
    let mut resume = Client::on(&fanout);
    resume.send(r#"{"op":"sub","topics":["game/+/state","games"],"since":{"games":13}}"#);
    assert_eq!(brief(&resume.read()), ["msg game/x/state 1", "subscribed game/+/state,games"]);
    // A since for a topic the server does not have yet: created, and its first seqs skipped.
    let mut early = Client::on(&fanout);
    early.send(r#"{"op":"sub","topics":["game/y/state"],"since":{"game/y/state":1}}"#);
    early.publish("game/y/state", 1);
    early.publish("game/y/state", 2);
    assert_eq!(brief(&early.read()), ["subscribed game/y/state", "msg game/y/state 2"]);
}

#[test]
fn resubscribing_a_pattern_replaces_it_and_one_topic_is_delivered_once() {
    let mut c = Client::new(cfg(16, 64));
    c.publish("games", 1);
    c.send(r##"{"op":"sub","topics":["games","#"]}"##);
    c.publish("games", 2);
    assert_eq!(brief(&c.read()), ["snapshot games 1", "subscribed games,#", "msg games 2"]);
    c.send(r#"{"op":"sub","topics":["games"],"mode":"latest"}"#);
    assert_eq!(c.session.patterns(), 2);
    c.publish("games", 3);
    assert_eq!(brief(&c.read()), ["subscribed games", "msg games 3"]);
}

#[test]
fn latest_mode_conflates_to_the_newest_value_per_topic() {
    let mut c = Client::new(cfg(16, 64));
    c.send(r#"{"op":"sub","topics":["game/+/state"],"mode":"latest"}"#);
    assert_eq!(brief(&c.read()), ["subscribed game/+/state"]);
    for ts in 1..=5 {
        c.publish("game/a/state", ts);
        c.publish("game/b/state", ts);
    }
    assert_eq!(brief(&c.read()), ["msg game/a/state 5", "msg game/b/state 5"]);
}

#[test]
fn overflow_sends_lagged_then_snapshots_and_skips_older_queued_messages() {
    let mut c = Client::new(cfg(64, 4));
    c.send(r#"{"op":"sub","topics":["game/+/state"]}"#);
    assert_eq!(brief(&c.read()), ["subscribed game/+/state"]);
    for ts in 1..=6 {
        c.publish("game/a/state", ts);
    }
    // Queue of 4: the fifth message overflowed (5 dropped), the sixth was queued after.
    c.publish("game/b/state", 7);
    let msgs = c.read();
    assert_eq!(
        brief(&msgs),
        ["lagged 5", "snapshot game/a/state 6", "msg game/b/state 1"],
        "msg a/6 was queued after the overflow and is skipped: the snapshot carried it"
    );
    c.publish("game/a/state", 8);
    assert_eq!(brief(&c.read()), ["msg game/a/state 7"]);
}

#[test]
fn one_message_goes_alone_several_go_as_ordered_batch_frames_within_the_byte_limit() {
    let mut c = Client::new(FanoutConfig { max_batch_bytes: 200, ..cfg(64, 64) });
    c.send(r#"{"op":"sub","topics":["games"]}"#);
    c.frames();
    c.publish("games", 1);
    let one = c.frames();
    assert_eq!(one.len(), 1);
    assert!(one[0].starts_with(r#"{"op":"msg""#), "a single message is the shared frame itself: {}", one[0]);
    for ts in 2..=7 {
        c.publish("games", ts);
    }
    let frames = c.frames();
    assert!(frames.len() > 1 && frames.iter().all(|f| f.starts_with('[') && f.len() <= 200), "{frames:?}");
    let seqs: Vec<u64> = frames
        .iter()
        .flat_map(|f| parse_server_frame(f).unwrap())
        .map(|m| match m {
            ServerMsg::Msg(p) => p.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [2, 3, 4, 5, 6, 7]);
}

#[test]
fn close_unsubscribes_everything_and_closes_the_outbox() {
    let fanout = Fanout::new(cfg(16, 64));
    let mut c = Client::on(&fanout);
    c.send(r#"{"op":"sub","topics":["games","game/#"]}"#);
    c.session.close();
    assert!(c.session.outbox().is_closed());
    let mut items = Vec::new();
    assert!(!c.session.outbox().drain(&mut items), "a closed outbox says so to the writer");
    // Publishing after close reaches nobody (and does not fail).
    c.publish("games", 1);
    let mut other = Client::on(&fanout);
    other.send(r#"{"op":"sub","topics":["games"]}"#);
    assert_eq!(brief(&other.read()), ["snapshot games 1", "subscribed games"]);
}

#[test]
fn every_documented_server_message_round_trips_through_the_client_parser() {
    let data = serde_json::json!({"home": 1});
    let p = Publication { topic: "game/a/state".into(), seq: 1, ts: 9, data };
    let all = [
        ServerMsg::Msg(p.clone()),
        ServerMsg::Snapshot(p),
        ServerMsg::Reset { topic: "games".into() },
        ServerMsg::Lagged { dropped: 7 },
        ServerMsg::Subscribed { topics: vec!["#".into()], id: None },
        ServerMsg::Unsubscribed { topics: vec!["games".into(), "game/+/x".into()], id: Some(OpId::Num(7)) },
        ServerMsg::Pong { id: Some(OpId::Text("p-1".into())) },
        ServerMsg::Error { code: "bad_op".into(), message: "quote \" and \\ newline \n".into(), id: None },
    ];
    for msg in &all {
        let text = frame(msg);
        assert_eq!(&parse_server_frame(&text).unwrap(), &vec![msg.clone()], "{text}");
    }
    // The publish path builds msg and snapshot frames by hand: they parse to the same types.
    let fanout = Fanout::new(cfg(4, 4));
    let t = fanout.topic("game/a/state").unwrap();
    let published = fanout.publish(&t, 9, br#"{"home":1}"#);
    assert_eq!(parse_server_frame(&published.frame).unwrap(), vec![all[0].clone()]);
    assert_eq!(parse_server_frame(&published.snapshot_frame()).unwrap(), vec![all[1].clone()]);
}

#[test]
fn since_keys_never_create_topics_but_still_skip_what_the_client_has() {
    let fanout = Fanout::new(cfg(16, 64));
    let mut c = Client::on(&fanout);
    let since: Vec<String> = (0..1000).map(|i| format!(r#""game/g{i}/state":5"#)).collect();
    c.send(&format!(r#"{{"op":"sub","topics":["game/+/state"],"since":{{{}}}}}"#, since.join(",")));
    assert_eq!(fanout.topic_count(), 0, "a subscriber's since keys created topics");
    assert_eq!(brief(&c.read()), ["subscribed game/+/state"]);
    // The topic comes with a publication; the client already had seqs up to 5.
    for ts in 1..=6 {
        c.publish("game/g7/state", ts);
    }
    assert_eq!(brief(&c.read()), ["msg game/g7/state 6"]);
    assert_eq!(fanout.topic_count(), 1);
}

#[test]
fn replies_to_a_client_that_does_not_read_are_bounded_by_the_reply_budget() {
    // A queue long enough that the byte budget, not the item count, is what stops the reader.
    let mut c = Client::new(cfg(16, 4096));
    let op = r#"{"op":"unsub","topics":["game/some-long-pattern-name/#"]}"#;
    let mut sent = 0;
    // The socket side stops reading once the outbox is over budget; count the ops it reads.
    while !c.session.outbox().over_budget() {
        c.send(op);
        sent += 1;
        assert!(sent < 100_000, "the reply budget never stopped the reader");
    }
    let reply = r#"{"op":"unsubscribed","topics":["game/some-long-pattern-name/#"]}"#.len();
    assert!(sent * reply <= REPLY_BUDGET + reply, "{sent} replies of {reply} bytes queued");
    assert!(sent * reply > REPLY_BUDGET / 2);
    // Once the writer sent them, the reader may go on.
    let msgs = c.read();
    assert!(!c.session.outbox().over_budget());
    assert_eq!(msgs.len(), sent.min(DRAIN_MAX));
    while !c.read().is_empty() {}
    assert!(!c.session.outbox().over_budget());
}

#[test]
fn pings_and_errors_a_client_does_not_read_are_capped() {
    let mut c = Client::new(cfg(16, 64));
    for _ in 0..10_000 {
        c.send(r#"{"op":"ping"}"#);
        c.send("{not json");
    }
    let msgs = c.read();
    assert!(msgs.len() <= 64, "{} control frames kept", msgs.len());
}

#[test]
fn a_drain_takes_a_bounded_number_of_items_and_keeps_their_order() {
    let fanout = Fanout::new(cfg(16, 10_000));
    for i in 0..(DRAIN_MAX + 100) {
        let t = fanout.topic(&format!("game/g{i}/state")).unwrap();
        fanout.publish(&t, 1, b"1");
    }
    let mut c = Client::on(&fanout);
    c.send(r#"{"op":"sub","topics":["game/+/state"]}"#);
    let first = c.read();
    assert_eq!(first.len(), DRAIN_MAX);
    assert!(first.iter().all(|m| matches!(m, ServerMsg::Snapshot(_))));
    let rest = c.read();
    assert_eq!(rest.len(), 101, "the other snapshots, then subscribed");
    assert!(matches!(rest.last(), Some(ServerMsg::Subscribed { .. })));
}

#[test]
fn a_sub_outside_the_callers_scopes_is_refused_whole() {
    let fanout = Fanout::new(cfg(16, 16));
    let partner = Principal {
        id: "partner".into(),
        role: Some(crate::auth::Role::Subscriber),
        scopes: Arc::new(["game/nba-1/#".to_string()]),
        expires: None,
        key_id: Some("partner".into()),
    };
    let mut c = Client::with(&fanout, partner, &["games"]);
    c.send(r#"{"op":"sub","topics":["game/nba-1/state","game/nba-2/state"]}"#);
    let got = c.read();
    assert!(
        matches!(&got[..], [ServerMsg::Error { code, message, .. }] if code == "forbidden" && message.contains("game/nba-2/state")),
        "{got:?}"
    );
    assert_eq!(c.session.patterns(), 0, "nothing of a refused sub is applied");
    c.send(r#"{"op":"sub","topics":["game/nba-1/#","games"]}"#);
    assert!(matches!(c.read().last(), Some(ServerMsg::Subscribed { .. })));
    c.publish("game/nba-2/state", 1);
    c.publish("game/nba-1/state", 2);
    let got = c.read();
    assert!(matches!(&got[..], [ServerMsg::Msg(p)] if p.topic == "game/nba-1/state"), "{got:?}");
    // Anonymous: public topics only.
    let mut anon = Client::with(&fanout, Principal::anonymous(), &["games"]);
    anon.send(r##"{"op":"sub","topics":["#"]}"##);
    assert!(matches!(&anon.read()[..], [ServerMsg::Error { code, .. }] if code == "forbidden"));
}

#[test]
fn op_ids_are_echoed_in_replies_and_errors() {
    let mut c = Client::new(cfg(16, 16));
    c.send(r#"{"op":"sub","topics":["games"],"id":1}"#);
    c.send(r#"{"op":"sub","topics":["a//b"],"id":"two"}"#);
    c.send(r#"{"op":"unsub","topics":["games"],"id":3}"#);
    c.send(r#"{"op":"ping","id":"four"}"#);
    c.send(r#"{"op":"ping"}"#);
    let got = c.read();
    let ids: Vec<Option<OpId>> = got
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Subscribed { id, .. }
            | ServerMsg::Unsubscribed { id, .. }
            | ServerMsg::Pong { id }
            | ServerMsg::Error { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    // Control replies (errors, pongs) jump the queue; sort by what each answers.
    for want in [
        Some(OpId::Num(1)),
        Some(OpId::Text("two".into())),
        Some(OpId::Num(3)),
        Some(OpId::Text("four".into())),
        None,
    ] {
        assert!(ids.contains(&want), "{want:?} in {got:?}");
    }
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Error { code, id: Some(OpId::Text(t)), .. } if code == "bad_pattern" && t == "two")));
    c.send(&format!(r#"{{"op":"ping","id":"{}"}}"#, "x".repeat(65)));
    assert!(matches!(&c.read()[..], [ServerMsg::Error { code, .. }] if code == "bad_op"));
}

#[test]
fn a_run_goes_out_as_its_own_frame_and_after_a_resync_only_its_newer_messages() {
    let mut c = Client::new(cfg(64, 64));
    c.send(r#"{"op":"sub","topics":["games"]}"#);
    c.frames();
    let t = c.fanout.topic("games").unwrap();
    let mut batch = super::super::Batch::default();
    for ts in 1..=3 {
        batch.push(&t, ts, b"{}");
    }
    c.publish("games", 0);
    c.fanout.publish_batch(&mut batch);
    let frames = c.frames();
    assert_eq!(frames.len(), 2, "the lone message, then the run's shared frame: {frames:?}");
    assert!(frames[1].starts_with(r#"[{"op":"msg""#));
    assert_eq!(brief(&c.read()), Vec::<String>::new());
    // A run that straddles the seq a resync snapshot carried: only the newer messages go out.
    let run = {
        let pubs: Vec<_> = t.inner.lock().history.iter().skip(1).cloned().collect();
        super::super::Run::items(&pubs, 64 * 1024)
    };
    c.framer.resynced.insert(t.name.clone(), 3);
    let (mut items, mut frames) = (run, Vec::new());
    let framed = c.framer.frames(&mut items, c.session.outbox(), &mut frames);
    let msgs: Vec<ServerMsg> = frames.iter().flat_map(|f| parse_server_frame(f).unwrap()).collect();
    assert_eq!(brief(&msgs), ["msg games 4"]);
    assert_eq!(framed.messages, 1);
}

#[test]
fn a_delayed_sub_is_bounded_and_shares_the_line() {
    let fanout = Fanout::new(FanoutConfig { max_delay_ms: 10_000, ..FanoutConfig::default() });
    let mut c = Client::on(&fanout);
    c.publish("games", 1);
    c.send(r#"{"op":"sub","topics":["games"],"delay_ms":10001}"#);
    assert_eq!(brief(&c.read()), ["error bad_delay"], "over fanout.max_delay_ms");
    for (i, d) in [1000, 2000, 3000, 4000].iter().enumerate() {
        c.send(&format!(r#"{{"op":"sub","topics":["x/{i}","games"],"delay_ms":{d}}}"#));
    }
    c.send(r#"{"op":"sub","topics":["x/9"],"delay_ms":5000}"#);
    let msgs = brief(&c.read());
    assert_eq!(msgs.iter().filter(|m| m.starts_with("error")).collect::<Vec<_>>(), ["error bad_delay"]);
    assert!(msgs.contains(&"subscribed x/3,games".to_string()), "four distinct delays: {msgs:?}");
    assert!(!msgs.iter().any(|m| m.contains("x/9")), "a fifth distinct delay is refused: {msgs:?}");
    // Re-subscribing `games` replaced it each time: one line, at the last delay.
    let lines = fanout.delay_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!((lines[0].topic.as_str(), lines[0].delay_ms), ("games", 4000));
    let mut other = Client::on(&fanout);
    other.send(r#"{"op":"sub","topics":["games"],"delay_ms":4000}"#);
    assert_eq!(fanout.delay_lines()[0].subscribers, 2, "same topic, same delay: one line");
    drop(c);
    drop(other);
    assert!(fanout.delay_lines().is_empty(), "lines go with their sessions");
}

#[test]
fn a_delayed_subscriber_that_lags_is_resynced_to_the_delayed_value_never_the_live_one() {
    let mut c = Client::new(cfg(64, 4));
    let now = crate::metrics::now_us();
    c.publish("games", now - 600_000_000);
    c.send(r#"{"op":"sub","topics":["games"],"delay_ms":60000}"#);
    assert_eq!(brief(&c.read()), ["snapshot games 1", "subscribed games"]);
    // Stamped ten minutes ago: due at once, more than the queue holds; then one stamped now,
    // held for a minute.
    for _ in 0..20 {
        c.publish("games", now - 600_000_000);
    }
    c.publish("games", now);
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let mut got = Vec::new();
    while !got.iter().any(|m: &String| m.starts_with("snapshot")) && Instant::now() < deadline {
        got.extend(brief(&c.read()));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(got.iter().any(|m| m.starts_with("lagged")), "{got:?}");
    assert_eq!(
        got.last().map(String::as_str),
        Some("snapshot games 21"),
        "the last released, not 22: {got:?}"
    );
}
