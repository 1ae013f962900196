//! Real provider feeds → our event schema, for `opensports replay` and `opensports demo --replay`.
//!
//! # Layout
//! - [`Format`], [`detect`], [`parse`]: the entry points.
//! - [`nba`]: NBA live play-by-play (`nba-live`, the cdn.nba.com "actions" JSON) and
//!   stats.nba.com `playbyplayv2` (`nba-stats`).
//! - [`statsbomb`]: StatsBomb open-data events (`statsbomb`).
//! - [`wyscout`]: Wyscout v2 events (`wyscout`).
//! - [`nfl`]: NFL GameCenter JSON (`nfl-gamecenter`).
//! - [`f1`]: F1 live-timing `TimingData` captures (`f1-live-timing`).
//!
//! An adapter maps every event kind the feed carries that our schema models; the others are
//! counted by kind in [`Feed::unknown`] and reported, never silently dropped. A record that
//! cannot be read is reported in [`Feed::skipped`] (with its position) and the rest goes on.
//! The result is a [`SimGame`]: events with consecutive seqs, each with its offset from the
//! first event in source time, which is what the paced publisher replays.

pub mod f1;
pub mod nba;
pub mod nfl;
pub mod statsbomb;
pub mod wyscout;

use std::collections::{BTreeMap, HashMap};

use crate::sim::SimGame;

/// Feed formats, by their `--format` names in [`Format::SUPPORTED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    NbaLive,
    NbaStats,
    Statsbomb,
    Wyscout,
    NflGamecenter,
    F1LiveTiming,
}

impl Format {
    pub const SUPPORTED: &[(&str, Format)] = &[
        ("nba-live", Format::NbaLive),
        ("nba-stats", Format::NbaStats),
        ("statsbomb", Format::Statsbomb),
        ("wyscout", Format::Wyscout),
        ("nfl-gamecenter", Format::NflGamecenter),
        ("f1-live-timing", Format::F1LiveTiming),
    ];
}

impl std::str::FromStr for Format {
    type Err = FeedError;
    fn from_str(s: &str) -> Result<Format, FeedError> {
        if let Some((_, f)) = Format::SUPPORTED.iter().find(|(n, _)| *n == s) {
            return Ok(*f);
        }
        Err(FeedError::UnknownFormat(s.to_string()))
    }
}

/// Why a feed could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(
        "unknown format {0:?}; supported: nba-live, nba-stats, statsbomb, wyscout, nfl-gamecenter, f1-live-timing"
    )]
    UnknownFormat(String),
    #[error(
        "cannot tell the format of this file; pass --format (supported: nba-live, nba-stats, statsbomb, wyscout, nfl-gamecenter, f1-live-timing)"
    )]
    Undetected,
    #[error("{what}: {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// A feed turned into our events.
#[derive(Debug)]
pub struct Feed {
    pub game: SimGame,
    /// Source records of kinds our schema does not model, by kind.
    pub unknown: BTreeMap<String, usize>,
    /// Records that could not be read: (position in the feed, why).
    pub skipped: Vec<(usize, String)>,
}

/// Guesses the format from the content.
pub fn detect(bytes: &[u8]) -> Result<Format, FeedError> {
    let head = &bytes[..bytes.len().min(4096)];
    let has = |s: &str| head.windows(s.len()).any(|w| w == s.as_bytes());
    if has("\"actions\"") && has("\"actionType\"") {
        return Ok(Format::NbaLive);
    }
    if has("\"resultSets\"") && has("EVENTMSGTYPE") {
        return Ok(Format::NbaStats);
    }
    if head.trim_ascii_start().starts_with(b"[") && has("\"possession_team\"") {
        return Ok(Format::Statsbomb);
    }
    if has("\"events\"") && has("\"matchPeriod\"") && has("\"eventSec\"") {
        return Ok(Format::Wyscout);
    }
    let colons = head[..head.len().min(20)].iter().filter(|b| **b == b':').count();
    if colons >= 2 && has("{\"Lines\":") {
        return Ok(Format::F1LiveTiming);
    }
    if has("\"abbr\"") && has("\"stats\"") && has("\"passing\"") {
        return Ok(Format::NflGamecenter);
    }
    Err(FeedError::Undetected)
}

/// What the user can tell an adapter that the feed does not say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Game id to publish under (default: from the feed).
    pub game_id: Option<&'a str>,
    /// The home team's name, for feeds that do not say (StatsBomb, Wyscout).
    pub home: Option<&'a str>,
    /// The feed's file name without its extension, for feeds whose id is only in the name
    /// (StatsBomb open data: `events/15986.json`).
    pub file_stem: Option<&'a str>,
}

/// Parses a whole feed.
pub fn parse(format: Format, bytes: &[u8], opts: &Options<'_>) -> Result<Feed, FeedError> {
    match format {
        Format::NbaLive => nba::live(bytes, opts.game_id),
        Format::NbaStats => nba::stats(bytes, opts.game_id),
        Format::Statsbomb => statsbomb::events(bytes, opts),
        Format::Wyscout => wyscout::events(bytes, opts),
        Format::NflGamecenter => nfl::gamecenter(bytes, opts),
        Format::F1LiveTiming => f1::timing_data(bytes, opts),
    }
}

/// The running score of the events an adapter has built, held against the provider's own score
/// wherever the feed carries one (NBA `scoreHome`/`scoreAway` and `SCORE`, the NFL final): the
/// provider's structured score wins, and a difference is published as an explicit
/// `score_correction` (the only way our running score may go down).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScoreCheck {
    pub home: u16,
    pub away: u16,
}

impl ScoreCheck {
    pub fn add(&mut self, side: opensports_proto::Side, points: u8) {
        match side {
            opensports_proto::Side::Home => self.home += u16::from(points),
            opensports_proto::Side::Away => self.away += u16::from(points),
        }
    }

    /// Adds what a basketball event scores.
    pub fn basketball(&mut self, e: &opensports_proto::basketball::Event) {
        match (e, e.points()) {
            (opensports_proto::basketball::Event::ScoreCorrection(c), _) => {
                (self.home, self.away) = (c.home, c.away)
            }
            (_, Some((side, points))) => self.add(side, points),
            _ => {}
        }
    }

    /// The correction to publish when the provider's score is not ours (and takes it), or
    /// `None` when they agree. `why` names the record that says so.
    pub fn against(
        &mut self,
        home: u16,
        away: u16,
        why: impl FnOnce() -> String,
    ) -> Option<opensports_proto::ScoreCorrection> {
        if (home, away) == (self.home, self.away) {
            return None;
        }
        let reason = format!(
            "{}: the provider's score is {home}-{away}, the events add up to {}-{}",
            why(),
            self.home,
            self.away
        );
        (self.home, self.away) = (home, away);
        Some(opensports_proto::ScoreCorrection { home, away, reason })
    }
}

/// Microseconds since the Unix epoch of an ISO 8601 time such as `2020-12-23T00:07:56.9Z`, or
/// with an offset (`2020-12-23T01:07:56.9+01:00`, `-0530`); no zone at all is read as UTC.
/// Parsed by jiff.
pub fn iso8601_us(s: &str) -> Option<i64> {
    use jiff::fmt::temporal::{Pieces, PiecesOffset};
    let pieces = Pieces::parse(s).ok()?;
    let offset = match pieces.offset() {
        // ISO 8601 offsets stay within a day (jiff takes up to ±25:59:59).
        Some(PiecesOffset::Numeric(n)) if n.offset().seconds().abs() < 24 * 3600 => n.offset(),
        Some(PiecesOffset::Zulu) | None => jiff::tz::Offset::UTC,
        Some(_) => return None,
    };
    let time = pieces.time()?;
    let civil = pieces.date().to_datetime(time);
    offset.to_timestamp(civil).ok().map(|t| t.as_microsecond())
}

/// Milliseconds in an ISO 8601 duration clock such as `PT11M22.00S`.
pub fn iso_clock_ms(s: &str) -> Option<u32> {
    let rest = s.strip_prefix("PT")?;
    let (m, rest) = rest.split_once('M').unwrap_or(("0", rest));
    let secs: f64 = rest.strip_suffix('S')?.parse().ok()?;
    let m: f64 = m.parse().ok()?;
    Some(((m * 60.0 + secs) * 1000.0).round() as u32)
}

/// Player names by a feed's player id, as a box score prints them: first initial, a dot, the
/// rest of the name without spaces (`S. Curry` and `Stephen Curry` both give `S.Curry`,
/// `Karl-Anthony Towns` gives `K.Towns`). A player is a topic level (`.../player/{name}`), so a
/// name that is not printable ASCII (or has `+`, `#`, `/`) stays the person id; two players
/// with one short name both get `-{id}` after it.
#[derive(Debug, Default)]
pub struct Names(HashMap<i64, String>);

impl Names {
    pub fn new<'a>(people: impl IntoIterator<Item = (i64, &'a str)>) -> Names {
        let mut by_id: HashMap<i64, String> = HashMap::new();
        for (id, name) in people {
            if id != 0
                && let Some(short) = short_name(name)
            {
                by_id.entry(id).or_insert(short);
            }
        }
        let mut players_named: HashMap<String, usize> = HashMap::new();
        for n in by_id.values() {
            *players_named.entry(n.clone()).or_default() += 1;
        }
        for (id, n) in &mut by_id {
            if players_named[n.as_str()] > 1 {
                *n = format!("{n}-{id}");
            }
        }
        Names(by_id)
    }

    /// The player's name, or the person id when the feed gave none usable.
    pub fn of(&self, id: i64) -> String {
        self.0.get(&id).cloned().unwrap_or_else(|| id.to_string())
    }
}

fn short_name(name: &str) -> Option<String> {
    let mut words = name.split_whitespace();
    let first = words.next()?;
    let rest: String = words.collect();
    let short = if first.ends_with('.') || rest.is_empty() {
        format!("{first}{rest}")
    } else {
        format!("{}.{rest}", first.chars().next()?)
    };
    short.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'+' | b'#' | b'/')).then_some(short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_worked_example_is_a_valid_event() {
        let line = r#"{"game":"nba-0022000001","seq":7,"ts":1608682076900000,"clock_ms":682000,"sport":"basketball","type":"shot","side":"home","player":"K.Irving","x":66.78,"y":24.79,"points":2,"made":true}"#;
        assert_eq!(line.len(), 185, "PROTOCOL.md 1.7 quotes the length");
        let ev = opensports_proto::codec::decode_event(opensports_proto::codec::Codec::Json, line.as_bytes())
            .unwrap();
        assert_eq!((ev.seq, ev.clock_ms, ev.body.kind()), (7, Some(682_000), "shot"));
        assert_eq!(iso8601_us("2020-12-23T00:07:56.9Z"), Some(ev.ts));
    }

    #[test]
    fn times_and_clocks() {
        assert_eq!(iso8601_us("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(iso8601_us("2020-12-23T00:07:56.9Z"), Some(1_608_682_076_900_000));
        assert_eq!(iso_clock_ms("PT11M22.00S"), Some(682_000));
        assert_eq!(iso_clock_ms("PT00M00.40S"), Some(400));
        assert!(iso8601_us("yesterday").is_none());
        // The same instant in other zones and forms.
        let utc = iso8601_us("2020-12-23T00:07:56.9Z");
        for s in [
            "2020-12-23T01:07:56.9+01:00",
            "2020-12-22T18:37:56.9-05:30",
            "2020-12-23T01:07:56.9+0100",
            "2020-12-23T01:07:56.9+01",
            "2020-12-23T00:07:56.9",
            "2020-12-23T00:07:56.9+00:00",
        ] {
            assert_eq!(iso8601_us(s), utc, "{s}");
        }
        assert!(iso8601_us("2020-12-23T00:07:56+25:00").is_none());
        assert!(matches!("csv".parse::<Format>(), Err(FeedError::UnknownFormat(_))));
    }
}
