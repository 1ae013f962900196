//! The core's lifetime rules (token expiry, revocation, idle, stream lifetime, keep-alive) and
//! groups, on a fake clock: `now` is whatever the test says, nothing sleeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opensports_proto::ws::{ServerMsg, parse_server_frame};

use super::*;
use crate::auth::{Principal, Role};
use crate::config::FanoutConfig;

const SEC: Duration = Duration::from_secs(1);

fn session(transport: Transport, principal: Principal, t0: Instant) -> Session {
    let fanout =
        Fanout::new(FanoutConfig { idle_timeout_secs: 30, sse_max_lifetime_secs: 600, ..Default::default() });
    let outbox = Outbox::new(64);
    let access = Access { principal, public: Arc::from(vec!["#".to_string()]), transport };
    Session::new(fanout, outbox, access, t0)
}

fn keyed(expires: Option<u64>) -> Principal {
    Principal {
        id: "k1".into(),
        role: Some(Role::Subscriber),
        scopes: Arc::from(vec!["#".to_string()]),
        expires,
        key_id: Some("k1".into()),
    }
}

/// The messages queued for the client, and the close frame if the outbox is closed.
fn read(s: &Session) -> (Vec<String>, Option<(u16, &'static str)>) {
    let mut items = Vec::new();
    s.outbox().drain(&mut items);
    let msgs = items
        .iter()
        .filter_map(|i| match i {
            Item::Frame(f) => Some(parse_server_frame(f).expect("server frame")),
            _ => None,
        })
        .flatten()
        .map(|m| match m {
            ServerMsg::Error { code, .. } => format!("error {code}"),
            ServerMsg::Subscribed { topics, .. } => format!("subscribed {}", topics.join(",")),
            ServerMsg::Unsubscribed { .. } => "unsubscribed".into(),
            other => format!("{other:?}"),
        })
        .collect();
    (msgs, s.outbox().close_frame())
}

#[test]
fn a_token_ends_the_session_at_its_exp_with_token_expired() {
    let t0 = Instant::now();
    let exp = crate::auth::unix_now() + 60;
    let mut s = session(Transport::Ws, keyed(Some(exp)), t0);
    s.on_text(r#"{"op":"sub","topics":["games"]}"#, t0);
    let due = s.poll_timeout().expect("the expiry is a deadline");
    // Whole seconds: the wall clock may tick between the test's read and the core's.
    assert!(due >= t0 + 59 * SEC && due <= t0 + 60 * SEC, "{:?}", due - t0);
    assert_eq!(s.handle_timeout(t0 + 58 * SEC), None, "nothing is due before exp");
    assert!(!s.outbox().is_closed());
    assert_eq!(s.handle_timeout(due), Some(Tick::End(End::Expired)));
    assert_eq!(s.ended(), Some(End::Expired));
    let (msgs, close) = read(&s);
    // Control messages go ahead of what is queued (the reason reaches a slow reader first).
    assert_eq!(msgs, ["error token_expired", "subscribed games"]);
    assert_eq!(close, Some((CLOSE_POLICY, "token expired")));
    assert_eq!(s.poll_timeout(), None, "an ended session has no timer");
    assert_eq!(s.handle_timeout(due + SEC), None);
}

#[test]
fn an_already_expired_token_is_due_at_once() {
    let t0 = Instant::now();
    let mut s = session(Transport::Sse, keyed(Some(crate::auth::unix_now().saturating_sub(5))), t0);
    assert_eq!(s.poll_timeout(), Some(t0));
    assert_eq!(s.handle_timeout(t0), Some(Tick::End(End::Expired)));
}

#[test]
fn revocation_ends_only_the_session_whose_key_was_revoked() {
    let t0 = Instant::now();
    let mut s = session(Transport::Ws, keyed(None), t0);
    assert!(s.watches_revocation());
    assert_eq!(s.on_revocation(|_| false), None, "another key was revoked");
    assert!(!s.outbox().is_closed());
    assert_eq!(s.on_revocation(|p| p.key_id.as_deref() == Some("k1")), Some(End::Revoked));
    let (msgs, close) = read(&s);
    assert_eq!(msgs, ["error key_revoked"]);
    assert_eq!(close, Some((CLOSE_POLICY, "key revoked")));
    // A credential that is not a key is never revoked.
    let mut anon = session(Transport::Ws, Principal::anonymous(), t0);
    assert!(!anon.watches_revocation());
    assert_eq!(anon.on_revocation(|_| true), None);
}

#[test]
fn idle_counts_only_while_there_is_no_subscription() {
    let t0 = Instant::now();
    let mut s = session(Transport::Ws, Principal::anonymous(), t0);
    assert_eq!(s.poll_timeout(), Some(t0 + 30 * SEC));
    s.on_text(r#"{"op":"sub","topics":["games"]}"#, t0 + 10 * SEC);
    assert_eq!(s.poll_timeout(), None, "a subscribed session never idles out");
    assert_eq!(s.handle_timeout(t0 + 100 * SEC), None);
    // A refused sub does not restart anything; the last unsub starts the clock again.
    s.on_text(r#"{"op":"sub","topics":["bad/#/x"]}"#, t0 + 101 * SEC);
    assert_eq!(s.poll_timeout(), None);
    s.on_text(r#"{"op":"unsub","topics":["games"]}"#, t0 + 120 * SEC);
    assert_eq!(s.poll_timeout(), Some(t0 + 150 * SEC));
    assert_eq!(s.handle_timeout(t0 + 149 * SEC), None);
    assert_eq!(s.handle_timeout(t0 + 150 * SEC), Some(Tick::End(End::Idle)));
    let (msgs, close) = read(&s);
    assert_eq!(msgs[msgs.len() - 1], "unsubscribed", "an idle close sends no error: {msgs:?}");
    assert_eq!(close, Some((CLOSE_POLICY, "no subscription within fanout.idle_timeout_secs")));
}

#[test]
fn a_stream_keeps_alive_when_quiet_and_ends_at_its_lifetime() {
    let t0 = Instant::now();
    let mut s = session(Transport::Sse, Principal::anonymous(), t0);
    s.subscribe(vec!["games".into()], Mode::All, &Default::default(), t0).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + KEEPALIVE_SECS * SEC));
    assert_eq!(s.handle_timeout(t0 + KEEPALIVE_SECS * SEC), Some(Tick::Keepalive));
    // Sending resets the quiet time; SSE has no idle rule.
    s.sent(t0 + 20 * SEC);
    assert_eq!(s.poll_timeout(), Some(t0 + (20 + KEEPALIVE_SECS) * SEC));
    assert_eq!(s.handle_timeout(t0 + 21 * SEC), None);
    assert_eq!(s.handle_timeout(t0 + 600 * SEC), Some(Tick::End(End::Lifetime)));
    let (msgs, close) = read(&s);
    assert_eq!(msgs, ["subscribed games"], "the lifetime's end sends no error");
    assert!(close.is_some() && s.outbox().is_closed());
}

const KEEPALIVE_SECS: u32 = 15;

#[test]
fn groups_deliver_into_their_own_outbox_under_the_connection_bounds() {
    let t0 = Instant::now();
    let fanout = Fanout::new(FanoutConfig { max_subscriptions: 3, ..Default::default() });
    let outbox = Outbox::new(64);
    let access = Access {
        principal: Principal::anonymous(),
        public: Arc::from(vec!["#".into()]),
        transport: Transport::Graphql,
    };
    let mut s = Session::new(fanout.clone(), outbox, access, t0);
    let a = s.open_group(1).unwrap();
    let b = s.open_group(2).unwrap();
    s.subscribe_in(1, vec!["games".into(), "x/1".into()], Mode::All, &Default::default(), 0, t0).unwrap();
    s.subscribe_in(2, vec!["games".into()], Mode::All, &Default::default(), 0, t0).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + KEEPALIVE_SECS * SEC), "subscribed: only the keep-alive runs");
    // Patterns count across groups.
    let refused = s.subscribe_in(2, vec!["x/2".into()], Mode::All, &Default::default(), 0, t0);
    assert_eq!(refused.unwrap_err().0, reason::TOO_MANY_SUBSCRIPTIONS);
    let topic = fanout.topic("games").unwrap();
    fanout.publish(&topic, 1, b"{}");
    let count = |o: &Outbox| {
        let mut items = Vec::new();
        o.drain(&mut items);
        items.iter().filter(|i| matches!(i, Item::Msg(_))).count()
    };
    assert_eq!((count(&a), count(&b)), (1, 1));
    assert_eq!(count(s.outbox()), 0, "nothing went to the session's own outbox");
    s.close_group(1, t0);
    assert!(a.is_closed());
    fanout.publish(&topic, 2, b"{}");
    assert_eq!((count(&a), count(&b)), (0, 1));
    assert_eq!(s.patterns(), 1);
    for g in 3..3 + MAX_GROUPS as u32 - 1 {
        s.open_group(g).unwrap();
    }
    assert_eq!(s.open_group(100).unwrap_err().0, reason::TOO_MANY_SUBSCRIPTIONS);
    s.close_group(2, t0 + SEC);
    // No subscription left: the idle clock runs from the last close.
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + SEC + Duration::from_secs(30)).min(Some(t0 + KEEPALIVE_SECS * SEC))
    );
}
