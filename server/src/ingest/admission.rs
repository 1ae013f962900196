//! Ingest admission, sans-IO: the rules of PROTOCOL.md §1 as plain functions and a per-stream
//! state machine. The socket code (`conn`, `stream`) reads frames, asks here what to do, and
//! carries the verdict out (queue, ack, send a reject, stop the stream); nothing here touches a
//! socket, a clock or a runtime, so every rule is unit-tested deterministically below.
//!
//! - [`hello`]: the first control frame: a JSON `hello` with an accepted token, or the close.
//! - [`StreamState::on_frame`]: one event frame → [`Verdict`] (accept, duplicate to ack once
//!   committed, reject with a code, or close the stream with a code on a framing error).
//! - [`datagram`] and [`track`]: a tracking datagram → the sample, and whether it may be
//!   published (scope, a known game, the entity quota, latest wins), or a reject.
//! - [`replicated`]: an event another cluster node ingested (the follower's admission).
//! - [`GameOwners`]: which publisher identity brought each game in, for the per-key game quota.

use std::sync::Arc;

use dashmap::DashMap;
use opensports_proto::Event;
use opensports_proto::codec::{self, Codec};
use opensports_proto::control::Control;
use opensports_proto::error_code::{quic, reason};
use serde::Deserialize;

use super::frame::ReadError;
use crate::auth::{Principal, Refused};
use crate::pipeline::directory::GameDirectory;
use crate::seqs::{Seq, Sequencer};

/// The shared state the rules consult (and update: admitting a new game, recording a seq).
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub directory: &'a GameDirectory,
    pub seqs: &'a Sequencer,
    pub owners: &'a GameOwners,
    pub rosters: &'a Rosters,
    /// Tracking entities seen per game.
    pub tracking: &'a DashMap<String, usize>,
    /// `auth.max_games_per_key`.
    pub max_games_per_key: usize,
    /// `ingest.max_tracking_entities_per_game`.
    pub max_tracking_entities: usize,
}

/// Which publisher identity brought each game in memory, and how many each holds: one key
/// cannot take every game slot (`auth.max_games_per_key`). Forgotten with the game.
#[derive(Debug, Default)]
pub struct GameOwners {
    owner: DashMap<String, Arc<str>>,
    count: DashMap<Arc<str>, usize>,
}

impl GameOwners {
    /// Games `who` holds now.
    pub fn held(&self, who: &str) -> usize {
        self.count.get(who).map_or(0, |n| *n)
    }

    /// Who brought `game` in (`None`: nobody yet, or a game logged before owners were).
    pub fn owner(&self, game: &str) -> Option<Arc<str>> {
        self.owner.get(game).map(|o| o.clone())
    }

    /// Records `who` as the game's owner unless it has one (also recovery, from the log).
    pub fn claim(&self, game: &str, who: &Arc<str>) {
        if let dashmap::Entry::Vacant(v) = self.owner.entry(game.to_string()) {
            v.insert(who.clone());
            *self.count.entry(who.clone()).or_insert(0) += 1;
        }
    }

    /// The game left memory.
    pub fn forget(&self, game: &str) {
        if let Some((_, who)) = self.owner.remove(game) {
            self.count.remove_if_mut(&who, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
    }
}

/// The people (players, F1 cars) each game's events have named, bounded per game by
/// `opensports_proto::limits::max_people`: one publisher cannot grow its game's state (and every
/// subscriber's copy of it) without bound. Forgotten with the game; rebuilt from the log.
#[derive(Debug, Default)]
pub struct Rosters {
    by_game: DashMap<String, std::collections::HashSet<Box<str>>>,
}

impl Rosters {
    /// Records the people `event` names, unless a new one would take its game past the
    /// bound: then nothing is recorded and the error says so.
    pub fn admit(&self, event: &Event) -> Result<(), String> {
        let max = opensports_proto::limits::max_people(event.sport());
        self.record(event, Some(max)).map_err(|()| {
            let what = if event.sport() == opensports_proto::Sport::F1 { "cars" } else { "players" };
            format!("game {} would name more than {max} {what}", event.game)
        })
    }

    /// Records the people of an event read back from the log or applied from a cluster peer
    /// (accepted once already: never refused).
    pub fn restore(&self, event: &Event) {
        let _ = self.record(event, None);
    }

    /// Sets a game's people from a state snapshot (recovery).
    pub fn seed(&self, game: &str, people: &[String]) {
        if !people.is_empty() {
            self.by_game.insert(game.to_string(), people.iter().map(|p| p.as_str().into()).collect());
        }
    }

    /// Adds the event's new names, unless they would take the game past `max`.
    fn record(&self, event: &Event, max: Option<usize>) -> Result<(), ()> {
        let people = event.people();
        if people.iter().all(Option::is_none) {
            return Ok(());
        }
        // A known game's set is looked up without allocating its key (the usual case).
        let mut names = match self.by_game.get_mut(&event.game) {
            Some(n) => n,
            None => self.by_game.entry(event.game.clone()).or_default(),
        };
        let new = people.iter().flatten().filter(|p| !names.contains(**p)).count();
        if max.is_some_and(|max| names.len() + new > max) {
            return Err(());
        }
        for p in people.into_iter().flatten() {
            if !names.contains(p) {
                names.insert(p.into());
            }
        }
        Ok(())
    }

    /// The game left memory.
    pub fn forget(&self, game: &str) {
        self.by_game.remove(game);
    }
}

/// One event refused alone; the stream goes on. Sent as `reject` on the control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub game: Option<String>,
    pub seq: Option<u64>,
    pub code: &'static str,
    pub message: String,
}

impl Reject {
    pub fn into_control(self) -> Control {
        Control::Reject { game: self.game, seq: self.seq, code: self.code.into(), message: self.message }
    }
}

/// A QUIC close (connection) or STOP_SENDING (stream) with its code, reason name and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: u32,
    pub reason: &'static str,
    pub message: String,
}

/// What to do with one frame of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A new event: log it (when the log is on) and queue it to its shard. Acked after the
    /// commit, or once queued with the log off.
    Accept {
        event: Event,
        /// The pipeline shard that owns the game.
        shard: usize,
        /// Events of the game missing (never received) now.
        missing: u64,
        /// The event jumped past seqs never received: tell the publisher (`gap`).
        gap: Option<(u64, u64)>,
        /// It filled (part of) an earlier gap.
        fill: bool,
    },
    /// A retry of an event already accepted: nothing to process; ack it once what it
    /// duplicates is committed. `conflict`: its frame differs from the accepted one's (the
    /// provider sent another event under a seq already taken; the first stands).
    Duplicate { game: String, seq: u64, conflict: bool },
    /// The event is refused; the stream goes on.
    Reject(Reject),
    /// The stream cannot go on (its framing is lost): stop it with this code and send an
    /// `error` naming it on the control stream. `None` code: the connection is gone.
    Close(Option<Close>),
}

/// One event stream's state: who sends on it, the game it is bound to and the highest seq it
/// carried.
#[derive(Debug)]
pub struct StreamState {
    principal: Principal,
    game: Option<String>,
    last_seq: u64,
}

impl StreamState {
    /// A stream of a connection that said hello as `principal`.
    pub fn new(principal: Principal) -> StreamState {
        StreamState { principal, game: None, last_seq: 0 }
    }

    /// The game this stream is bound to (its first accepted event's).
    pub fn game(&self) -> Option<&str> {
        self.game.as_deref()
    }

    /// Judges one frame read off the stream (or the error that ended the read).
    pub fn on_frame(&mut self, rules: Rules<'_>, frame: Result<(Codec, &[u8]), &ReadError>) -> Verdict {
        let (codec, body) = match frame {
            Ok(f) => f,
            Err(e) => return Verdict::Close(close_for(e)),
        };
        let event = match codec::decode_event(codec, body) {
            Ok(ev) => ev,
            Err(e) => {
                let (game, seq) = ids(codec, body);
                return reject(game, seq, e.code(), e.to_string());
            }
        };
        if let Some(g) = &self.game
            && *g != event.game
        {
            let msg = format!("this stream carries game {g}; open one stream per game");
            return reject(Some(event.game), Some(event.seq), reason::GAME_MISMATCH, msg);
        }
        let p = &self.principal;
        if !p.may_write(&event.game) {
            let msg = format!("{} may not write game {}", p.id, event.game);
            return reject(Some(event.game), Some(event.seq), reason::FORBIDDEN, msg);
        }
        // A new game is checked against the key's quota and the seq rules before it is
        // admitted (a refused event leaves no game behind).
        if !rules.directory.contains(&event.game) {
            if !p.is_admin() && rules.owners.held(&p.id) >= rules.max_games_per_key {
                let msg = format!(
                    "{} holds {} games already (auth.max_games_per_key)",
                    p.id, rules.max_games_per_key
                );
                return reject(Some(event.game), Some(event.seq), reason::GAME_QUOTA, msg);
            }
            if event.seq > rules.seqs.max_jump() {
                let msg = format!(
                    "a new game's first seq may be at most {} (ingest.max_seq_jump)",
                    rules.seqs.max_jump()
                );
                return reject(Some(event.game), Some(event.seq), reason::SEQ_TOO_FAR, msg);
            }
        }
        // The directory holds the rule "a known game keeps its sport" (and the game cap).
        let shard = match rules.directory.admit(&event.game, event.sport()) {
            Ok(shard) => shard,
            Err(code) => {
                let msg = match code {
                    reason::SPORT_MISMATCH => format!("game {} is not a {} game", event.game, event.sport()),
                    _ => "the server holds its maximum number of games".to_string(),
                };
                return reject(Some(event.game), Some(event.seq), code, msg);
            }
        };
        match rules.owners.owner(&event.game) {
            None => rules.owners.claim(&event.game, &p.id),
            Some(owner) if owner != p.id && !p.may_share(&event.game) => {
                let msg = format!(
                    "game {} belongs to {owner}; writing it takes a shared: scope or the admin role",
                    event.game
                );
                return reject(Some(event.game), Some(event.seq), reason::GAME_OWNED, msg);
            }
            Some(_) => {}
        }
        // Before sequencing: a refused event must leave its seq unrecorded (else a retry
        // would be taken for a duplicate and acked).
        if let Err(msg) = rules.rosters.admit(&event) {
            return reject(Some(event.game), Some(event.seq), reason::BAD_EVENT, msg);
        }
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            body.hash(&mut h);
            h.finish()
        };
        let ((verdict, conflict), missing) = rules.seqs.accept_frame(&event.game, event.seq, fingerprint);
        let (gap, fill) = match verdict {
            Seq::New => (None, false),
            Seq::Fill => (None, true),
            Seq::Gap { from, to } => (Some((from, to)), false),
            Seq::Duplicate if event.seq > self.last_seq => {
                return Verdict::Duplicate { game: event.game, seq: event.seq, conflict };
            }
            refused => {
                let (code, msg) = refusal(refused, event.seq, self.last_seq, rules.seqs.max_jump());
                return reject(Some(event.game), Some(event.seq), code, msg);
            }
        };
        if event.seq <= self.last_seq && !fill {
            let msg = format!("seq {} after {} on the same stream", event.seq, self.last_seq);
            return reject(Some(event.game), Some(event.seq), reason::SEQ_NOT_INCREASING, msg);
        }
        self.last_seq = self.last_seq.max(event.seq);
        if self.game.is_none() {
            self.game = Some(event.game.clone());
        }
        Verdict::Accept { event, shard, missing, gap, fill }
    }
}

/// The code ([`Seq::refused`]) and message of a seq the sequencer refused, or of a retry out of
/// stream order (`seq_not_increasing`).
fn refusal(v: Seq, seq: u64, last: u64, max_jump: u64) -> (&'static str, String) {
    let msg = match v {
        Seq::TooFar => {
            format!("seq {seq} is more than {max_jump} past the game's highest (ingest.max_seq_jump)")
        }
        Seq::TooManyGaps => format!(
            "seq {seq} would leave more than {} ranges of the game missing; send the missing seqs first",
            crate::seqs::MAX_GAPS_PER_GAME
        ),
        Seq::Unknown => format!("seq {seq} is older than what the server remembers of this game"),
        _ => format!("seq {seq} after {last} on the same stream"),
    };
    (v.refused().unwrap_or(reason::SEQ_NOT_INCREASING), msg)
}

fn reject(game: Option<String>, seq: Option<u64>, code: &'static str, message: String) -> Verdict {
    Verdict::Reject(Reject { game, seq, code, message })
}

/// The stream close for a framing error; `None` for I/O errors (nobody left to tell).
pub fn close_for(e: &ReadError) -> Option<Close> {
    let (code, reason) = e.code()?;
    Some(Close { code, reason, message: e.to_string() })
}

/// Best effort at naming the event a bad JSON body was meant to be.
fn ids(codec: Codec, body: &[u8]) -> (Option<String>, Option<u64>) {
    #[derive(Deserialize)]
    struct Ids {
        game: Option<String>,
        seq: Option<u64>,
    }
    match codec {
        Codec::Json => serde_json::from_slice::<Ids>(body).map(|i| (i.game, i.seq)).unwrap_or((None, None)),
        Codec::Rkyv => (None, None),
    }
}

/// Why a hello was refused, and how the connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloRefused {
    /// Not a JSON hello (`protocol_violation`, no message to the peer).
    Violation(Close),
    /// The token is not accepted: send [`HelloRefused::peer_error`], then close with
    /// `auth_failed`.
    BadToken(Close),
}

impl HelloRefused {
    /// The `opensports_ingest_auth_failures_total{reason}` label.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            HelloRefused::Violation(_) => "protocol_violation",
            HelloRefused::BadToken(_) => "bad_token",
        }
    }

    /// The `error` the peer is sent before the close, when there is one.
    pub fn peer_error(&self) -> Option<Control> {
        match self {
            HelloRefused::Violation(_) => None,
            HelloRefused::BadToken(c) => {
                Some(Control::Error { code: c.reason.into(), message: c.message.clone(), game: None })
            }
        }
    }

    pub fn close(&self) -> &Close {
        match self {
            HelloRefused::Violation(c) | HelloRefused::BadToken(c) => c,
        }
    }
}

/// Judges the first control frame: a JSON `hello` whose token `check` accepts. Returns the
/// publisher's name and who it is.
pub fn hello(
    frame: Option<(Codec, &[u8])>,
    check: impl FnOnce(&str) -> Result<Principal, Refused>,
) -> Result<(String, Principal), HelloRefused> {
    let msg = match frame {
        Some((Codec::Json, body)) => codec::decode_json::<Control>(body).ok(),
        _ => None,
    };
    let Some(Control::Hello { token, publisher }) = msg else {
        return Err(violation("first control message must be a JSON hello"));
    };
    match check(&token) {
        Ok(p) => Ok((publisher, p)),
        Err(why) => Err(HelloRefused::BadToken(Close {
            code: quic::AUTH_FAILED,
            reason: "auth_failed",
            message: format!("token not accepted: {why}"),
        })),
    }
}

/// The close for a hello that breaks the protocol (`why` goes in the close reason).
pub fn violation(why: &str) -> HelloRefused {
    HelloRefused::Violation(Close {
        code: quic::PROTOCOL_VIOLATION,
        reason: "protocol_violation",
        message: why.into(),
    })
}

mod replicated;
mod tracking;

pub use replicated::{Replicated, replicated};
pub use tracking::{Track, datagram, superhuman, track};

#[cfg(test)]
mod tests;
