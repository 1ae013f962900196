//! Every rule of PROTOCOL.md §1, without sockets or a runtime.

use super::*;
use crate::auth::Role;
use opensports_proto::codec::FrameError;
use opensports_proto::tracking::TrackingSample;

struct World {
    directory: GameDirectory,
    seqs: Sequencer,
    owners: GameOwners,
    rosters: super::Rosters,
    tracking: DashMap<String, usize>,
    max_games_per_key: usize,
}

impl World {
    fn new(max_games: usize) -> World {
        World {
            directory: GameDirectory::new(max_games, 2),
            seqs: Sequencer::default(),
            owners: GameOwners::default(),
            rosters: Default::default(),
            tracking: DashMap::new(),
            max_games_per_key: usize::MAX,
        }
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            directory: &self.directory,
            seqs: &self.seqs,
            owners: &self.owners,
            rosters: &self.rosters,
            tracking: &self.tracking,
            max_games_per_key: self.max_games_per_key,
            max_tracking_entities: 2,
        }
    }
}

fn key(id: &str, role: Role, scopes: &[&str]) -> Principal {
    Principal {
        id: id.into(),
        role: Some(role),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expires: None,
        key_id: Some(id.into()),
    }
}

/// A stream of a publisher allowed every game.
fn stream() -> StreamState {
    StreamState::new(key("k", Role::Publisher, &["*"]))
}

fn json(game: &str, seq: u64, sport: &str) -> Vec<u8> {
    let body = match sport {
        "basketball" => r#""type":"jump_ball","side":"home""#,
        "soccer" => r#""type":"game_end""#,
        _ => r#""type":"session_end""#,
    };
    format!(r#"{{"game":"{game}","seq":{seq},"ts":1,"sport":"{sport}",{body}}}"#).into_bytes()
}

fn frame(s: &mut StreamState, w: &World, body: &[u8]) -> Verdict {
    s.on_frame(w.rules(), Ok((Codec::Json, body)))
}

fn accepted(v: &Verdict) -> (u64, Option<(u64, u64)>, bool) {
    match v {
        Verdict::Accept { event, gap, fill, .. } => (event.seq, *gap, *fill),
        other => panic!("expected accept, got {other:?}"),
    }
}

fn rejected(v: Verdict) -> Reject {
    match v {
        Verdict::Reject(r) => r,
        other => panic!("expected reject, got {other:?}"),
    }
}

#[test]
fn in_order_events_are_accepted_and_bind_the_stream_to_their_game() {
    let w = World::new(8);
    let mut s = stream();
    for seq in 1..=3 {
        assert_eq!(accepted(&frame(&mut s, &w, &json("g1", seq, "basketball"))), (seq, None, false));
    }
    assert_eq!(s.game(), Some("g1"));
    let r = rejected(frame(&mut s, &w, &json("g2", 1, "basketball")));
    assert_eq!((r.code, r.game.as_deref(), r.seq), (reason::GAME_MISMATCH, Some("g2"), Some(1)));
    // The stream goes on after a reject.
    assert_eq!(accepted(&frame(&mut s, &w, &json("g1", 4, "basketball"))).0, 4);
}

#[test]
fn a_jump_reports_the_gap_and_a_resend_on_another_stream_fills_it() {
    let w = World::new(8);
    let mut a = stream();
    accepted(&frame(&mut a, &w, &json("g", 1, "soccer")));
    let v = frame(&mut a, &w, &json("g", 5, "soccer"));
    assert_eq!(accepted(&v), (5, Some((2, 4)), false));
    let Verdict::Accept { missing, .. } = v else { unreachable!() };
    assert_eq!(missing, 3);
    // A fill is accepted out of order, even on the stream that already went past it.
    assert_eq!(accepted(&frame(&mut a, &w, &json("g", 3, "soccer"))), (3, None, true));
    let mut b = stream();
    let v = frame(&mut b, &w, &json("g", 2, "soccer"));
    assert_eq!(accepted(&v), (2, None, true));
    let Verdict::Accept { missing, .. } = v else { unreachable!() };
    assert_eq!(missing, 1, "only seq 4 is still missing");
}

#[test]
fn a_retry_on_a_new_stream_is_a_duplicate_and_on_the_same_stream_a_seq_reject() {
    let w = World::new(8);
    let mut s = stream();
    accepted(&frame(&mut s, &w, &json("g", 1, "f1")));
    accepted(&frame(&mut s, &w, &json("g", 2, "f1")));
    let r = rejected(frame(&mut s, &w, &json("g", 2, "f1")));
    assert_eq!(r.code, reason::SEQ_NOT_INCREASING);
    let r = rejected(frame(&mut s, &w, &json("g", 1, "f1")));
    assert_eq!(r.code, reason::SEQ_NOT_INCREASING);
    // After a reconnect the publisher resends what was not acked, on a fresh stream.
    let mut again = stream();
    assert_eq!(
        frame(&mut again, &w, &json("g", 1, "f1")),
        Verdict::Duplicate { game: "g".into(), seq: 1, conflict: false }
    );
    assert_eq!(
        frame(&mut again, &w, &json("g", 2, "f1")),
        Verdict::Duplicate { game: "g".into(), seq: 2, conflict: false }
    );
    assert_eq!(accepted(&frame(&mut again, &w, &json("g", 3, "f1"))).0, 3);
}

#[test]
fn a_game_keeps_its_sport_and_new_games_need_a_slot() {
    let w = World::new(1);
    let mut s = stream();
    accepted(&frame(&mut s, &w, &json("g", 1, "f1")));
    let mut other = stream();
    let r = rejected(frame(&mut other, &w, &json("g", 2, "soccer")));
    assert_eq!(r.code, reason::SPORT_MISMATCH);
    assert!(r.message.contains("not a soccer game"), "{}", r.message);
    let r = rejected(frame(&mut other, &w, &json("h", 1, "f1")));
    assert_eq!(r.code, reason::TOO_MANY_GAMES);
    // A refused event does not bind the stream.
    assert_eq!(other.game(), None);
}

#[test]
fn bodies_that_are_not_events_are_rejected_with_their_code_and_ids_when_readable() {
    let w = World::new(8);
    let mut s = stream();
    let r = rejected(frame(&mut s, &w, b"{not json"));
    assert_eq!((r.code, &r.game, r.seq), (reason::BAD_JSON, &None, None));
    let r = rejected(frame(&mut s, &w, br#"{"game":"g","seq":9,"ts":1,"sport":"cricket","type":"x"}"#));
    assert_eq!((r.code, r.game.as_deref(), r.seq), (reason::BAD_EVENT, Some("g"), Some(9)));
    let r = rejected(frame(&mut s, &w, &json("bad game id", 1, "f1")));
    assert_eq!(r.code, reason::INVALID_EVENT);
    let r = rejected(frame(&mut s, &w, &json("g", 0, "f1")));
    assert_eq!(r.code, reason::INVALID_EVENT, "seq 0");
    let r = rejected(s.on_frame(w.rules(), Ok((Codec::Rkyv, &[1, 2, 3]))));
    assert_eq!(r.code, reason::BAD_RKYV);
    // Nothing refused reached the sequencer or the directory.
    assert_eq!(w.directory.len(), 0);
}

#[test]
fn the_rkyv_codec_carries_the_same_event() {
    let w = World::new(8);
    let event: Event = serde_json::from_slice(&json("g", 1, "basketball")).unwrap();
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&event).unwrap();
    let mut s = stream();
    match s.on_frame(w.rules(), Ok((Codec::Rkyv, &bytes))) {
        Verdict::Accept { event: got, .. } => assert_eq!(got, event),
        other => panic!("{other:?}"),
    }
}

#[test]
fn framing_errors_close_the_stream_with_the_documented_codes() {
    let w = World::new(8);
    let mut s = stream();
    let cases = [
        (
            ReadError::Frame(FrameError::TooLarge { len: 70_000, max: 65_536 }),
            quic::FRAME_TOO_LARGE,
            "frame_too_large",
        ),
        (ReadError::Frame(FrameError::Empty), quic::FRAME_MALFORMED, "frame_malformed"),
        (ReadError::Truncated, quic::FRAME_MALFORMED, "frame_malformed"),
        (ReadError::Frame(FrameError::UnknownCodec(9)), quic::UNKNOWN_CODEC, "unknown_codec"),
        (ReadError::Timeout(std::time::Duration::from_secs(30)), quic::FRAME_TIMEOUT, "frame_timeout"),
    ];
    for (e, code, name) in cases {
        match s.on_frame(w.rules(), Err(&e)) {
            Verdict::Close(Some(c)) => assert_eq!((c.code, c.reason), (code, name)),
            other => panic!("{e}: {other:?}"),
        }
    }
    let io = ReadError::Io(std::io::Error::other("reset"));
    assert_eq!(s.on_frame(w.rules(), Err(&io)), Verdict::Close(None));
}

#[test]
fn hello_needs_a_json_hello_with_an_accepted_token() {
    let check = |t: &str| if t == "secret" { Ok(Principal::anonymous()) } else { Err(Refused::Unknown) };
    let ok = br#"{"op":"hello","token":"secret","publisher":"feed-1"}"#;
    assert_eq!(hello(Some((Codec::Json, ok)), check).map(|(name, _)| name), Ok("feed-1".to_string()));
    let bad = br#"{"op":"hello","token":"secreT","publisher":"x"}"#;
    match hello(Some((Codec::Json, bad)), check) {
        Err(e @ HelloRefused::BadToken(_)) => {
            assert_eq!(e.metric_reason(), "bad_token");
            assert_eq!(e.close().code, quic::AUTH_FAILED);
            assert!(matches!(e.peer_error(), Some(Control::Error { code, .. }) if code == "auth_failed"));
        }
        other => panic!("{other:?}"),
    }
    for frame in [
        None,
        Some((Codec::Rkyv, &ok[..])),
        Some((Codec::Json, &br#"{"op":"ping"}"#[..])),
        Some((Codec::Json, &b"not json"[..])),
    ] {
        match hello(frame, check) {
            Err(HelloRefused::Violation(c)) => assert_eq!(c.code, quic::PROTOCOL_VIOLATION),
            other => panic!("{frame:?}: {other:?}"),
        }
    }
}

#[test]
fn a_publisher_writes_only_games_in_its_scopes() {
    let w = World::new(100);
    let mut venue = StreamState::new(key("venue-a", Role::Publisher, &["nba-a-*"]));
    let theirs = json("nba-b-1", 1, "basketball");
    match venue.on_frame(w.rules(), Ok((Codec::Json, &theirs))) {
        Verdict::Reject(r) => {
            assert_eq!((r.code, r.game.as_deref(), r.seq), (reason::FORBIDDEN, Some("nba-b-1"), Some(1)))
        }
        other => panic!("{other:?}"),
    }
    assert!(!w.directory.contains("nba-b-1"), "a refused event creates no game");
    assert!(!w.seqs.knows("nba-b-1"), "and leaves its sequencing alone (no gap pushed out)");
    let ours = json("nba-a-1", 1, "basketball");
    assert!(matches!(venue.on_frame(w.rules(), Ok((Codec::Json, &ours))), Verdict::Accept { .. }));
    // A subscriber key cannot publish at all (the hello refuses it); here: nothing in scope.
    let mut reader = StreamState::new(key("r", Role::Subscriber, &["#"]));
    assert!(
        matches!(reader.on_frame(w.rules(), Ok((Codec::Json, &ours))), Verdict::Reject(r) if r.code == reason::FORBIDDEN)
    );
}

#[test]
fn one_key_cannot_take_every_game_slot() {
    let mut w = World::new(100);
    w.max_games_per_key = 2;
    let mut verdicts = Vec::new();
    for g in ["g1", "g2", "g3"] {
        let mut s = StreamState::new(key("greedy", Role::Publisher, &["*"]));
        verdicts.push(s.on_frame(w.rules(), Ok((Codec::Json, &json(g, 1, "f1")))));
    }
    assert!(
        matches!(verdicts[2], Verdict::Reject(ref r) if r.code == reason::GAME_QUOTA),
        "{:?}",
        verdicts[2]
    );
    assert_eq!(w.owners.held("greedy"), 2);
    // Its existing games go on; another key still gets slots; an admin is exempt.
    let mut s = StreamState::new(key("greedy", Role::Publisher, &["*"]));
    assert!(matches!(s.on_frame(w.rules(), Ok((Codec::Json, &json("g1", 2, "f1")))), Verdict::Accept { .. }));
    let mut other = StreamState::new(key("other", Role::Publisher, &["*"]));
    assert!(matches!(
        other.on_frame(w.rules(), Ok((Codec::Json, &json("g3", 1, "f1")))),
        Verdict::Accept { .. }
    ));
    // A game leaving memory gives its slot back.
    w.owners.forget("g1");
    let mut again = StreamState::new(key("greedy", Role::Publisher, &["*"]));
    assert!(matches!(
        again.on_frame(w.rules(), Ok((Codec::Json, &json("g4", 1, "f1")))),
        Verdict::Accept { .. }
    ));
}

#[test]
fn datagrams_decode_and_validate_samples() {
    let sample = br#"{"game":"g","ts":5,"entity":"ball","x":1.0,"y":2.0}"#;
    let mut dg = vec![0x01];
    dg.extend_from_slice(sample);
    let s = datagram(&dg).unwrap();
    assert_eq!((s.game.as_str(), s.entity.as_str(), s.ts), ("g", "ball", 5));
    let rk = rkyv::to_bytes::<rkyv::rancor::Error>(&s).unwrap();
    let mut dg2 = vec![0x02];
    dg2.extend_from_slice(&rk);
    assert_eq!(datagram(&dg2).unwrap(), s);
    assert_eq!(datagram(&[]).unwrap_err().code, reason::FRAME_MALFORMED);
    assert_eq!(datagram(&[0x07, b'{']).unwrap_err().code, reason::UNKNOWN_CODEC);
    assert_eq!(datagram(&[0x01, b'{']).unwrap_err().code, reason::BAD_JSON);
    assert_eq!(datagram(&[0x02, 1, 2]).unwrap_err().code, reason::BAD_RKYV);
    let bad_entity = br#"{"game":"g","ts":5,"entity":"a/b","x":1.0,"y":2.0}"#;
    let mut dg3 = vec![0x01];
    dg3.extend_from_slice(bad_entity);
    assert_eq!(datagram(&dg3).unwrap_err().code, reason::INVALID_EVENT);
}

#[test]
fn tracking_samples_obey_scope_known_games_the_entity_quota_and_latest_wins() {
    let w = World::new(8);
    let who = key("tracker", Role::Publisher, &["g*"]);
    let sample = |game: &str, entity: &str, ts: i64| TrackingSample {
        game: game.into(),
        ts,
        entity: entity.into(),
        x: 0.0,
        y: 0.0,
        z: 0.0,
        speed: 0.0,
    };
    let code = |r: Result<Track, Reject>| r.unwrap_err().code;
    assert_eq!(code(track(w.rules(), &who, &sample("other", "ball", 1), None)), reason::FORBIDDEN);
    assert_eq!(code(track(w.rules(), &who, &sample("g1", "ball", 1), None)), reason::UNKNOWN_GAME);
    w.directory.admit("g1", opensports_proto::Sport::Soccer).unwrap();
    let new = Track::Publish { new_entity: true };
    assert_eq!(track(w.rules(), &who, &sample("g1", "ball", 1), None).unwrap(), new);
    assert_eq!(track(w.rules(), &who, &sample("g1", "p1", 1), None).unwrap(), new);
    // A third entity is over the quota (2); a known one still publishes.
    assert_eq!(code(track(w.rules(), &who, &sample("g1", "p2", 1), None)), reason::TOO_MANY_ENTITIES);
    let known = Track::Publish { new_entity: false };
    assert_eq!(track(w.rules(), &who, &sample("g1", "ball", 5), Some(Some(4))).unwrap(), known);
    assert_eq!(track(w.rules(), &who, &sample("g1", "ball", 3), Some(Some(4))).unwrap(), Track::Stale);
}

#[test]
fn replicated_events_keep_the_directory_and_sequencing_rules_and_carry_their_owner() {
    let w = World::new(8);
    let owner: Arc<str> = Arc::from("key-a");
    let ev = |game: &str, seq: u64, sport: &str| {
        codec::decode_event(Codec::Json, &json(game, seq, sport)).unwrap()
    };
    let first = replicated(w.rules(), &ev("g1", 1, "basketball"), Some(&owner));
    assert!(matches!(first, Replicated::Accept { missing: 0, .. }), "{first:?}");
    assert_eq!(w.owners.owner("g1").as_deref(), Some("key-a"));
    // A later owner never replaces the first.
    let _ = replicated(w.rules(), &ev("g1", 2, "basketball"), Some(&Arc::from("key-b")));
    assert_eq!(w.owners.owner("g1").as_deref(), Some("key-a"));
    assert_eq!(replicated(w.rules(), &ev("g1", 2, "basketball"), None), Replicated::Duplicate);
    // A gap is recorded as missing; the same id under another sport is refused.
    assert!(matches!(
        replicated(w.rules(), &ev("g1", 5, "basketball"), None),
        Replicated::Accept { missing: 2, .. }
    ));
    assert!(matches!(replicated(w.rules(), &ev("g1", 6, "soccer"), None), Replicated::Refused(_)));
}
