//! Topic names and subscription patterns (MQTT style: `+` one level, `#` the rest).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The list of games.
pub const GAMES: &str = "games";

/// Longest topic or pattern, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

/// `game/{id}/state`: core game state (score, clock, period, ...).
pub fn game_state(game: &str) -> String {
    format!("game/{game}/state")
}

/// `game/{id}/winprob`: the core win probability (basketball, football).
pub fn game_winprob(game: &str) -> String {
    format!("game/{game}/winprob")
}

/// `game/{id}/tracking/{entity}`: latest tracking sample of one entity.
pub fn game_tracking(game: &str, entity: &str) -> String {
    format!("game/{game}/tracking/{entity}")
}

/// `game/{id}/`: the prefix of every topic of one game (state, win probability, tracking,
/// plugin outputs), removed together when the game leaves memory.
pub fn game_prefix(game: &str) -> String {
    format!("game/{game}/")
}

/// `game/{id}/{plugin}/{name}`: one output of a plugin, written into `out` (cleared first) so
/// the hot path reuses one buffer.
pub fn plugin_output_into(out: &mut String, game: &str, plugin: &str, name: &str) {
    out.clear();
    out.push_str("game/");
    out.push_str(game);
    out.push('/');
    out.push_str(plugin);
    out.push('/');
    out.push_str(name);
}

/// `game/{id}/{plugin}/{name}`, allocated (see [`plugin_output_into`]).
pub fn plugin_output(game: &str, plugin: &str, name: &str) -> String {
    let mut out = String::new();
    plugin_output_into(&mut out, game, plugin, name);
    out
}

/// Why a topic or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicError {
    Empty,
    TooLong,
    EmptyLevel,
    /// `+` or `#` inside a level, or in a concrete topic.
    Wildcard,
    /// `#` somewhere other than the last level.
    HashNotLast,
    /// A character outside printable ASCII.
    BadChar,
}

impl core::fmt::Display for TopicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TopicError::Empty => "empty topic",
            TopicError::TooLong => "topic longer than 256 bytes",
            TopicError::EmptyLevel => "empty level (leading, trailing or double '/')",
            TopicError::Wildcard => "'+' and '#' must be a whole level, and only in patterns",
            TopicError::HashNotLast => "'#' must be the last level",
            TopicError::BadChar => "topics are printable ASCII without spaces",
        })
    }
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TopicError::BadChar);
    }
    Ok(())
}

/// Checks a concrete topic name (no wildcards).
pub fn validate_topic(s: &str) -> Result<(), TopicError> {
    check_common(s)?;
    for level in s.split('/') {
        if level.is_empty() {
            return Err(TopicError::EmptyLevel);
        }
        if level.contains(['+', '#']) {
            return Err(TopicError::Wildcard);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Level {
    Exact(String),
    /// `+`: exactly one level.
    One,
    /// `#`: zero or more trailing levels.
    Rest,
}

/// A parsed subscription pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    source: String,
    levels: Vec<Level>,
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, TopicError> {
        check_common(s)?;
        let mut levels = Vec::new();
        let count = s.split('/').count();
        for (i, level) in s.split('/').enumerate() {
            let parsed = match level {
                "" => return Err(TopicError::EmptyLevel),
                "+" => Level::One,
                "#" if i + 1 == count => Level::Rest,
                "#" => return Err(TopicError::HashNotLast),
                l if l.contains(['+', '#']) => return Err(TopicError::Wildcard),
                l => Level::Exact(l.into()),
            };
            levels.push(parsed);
        }
        Ok(Pattern { source: s.into(), levels })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern has no wildcard, i.e. names exactly one topic.
    pub fn is_concrete(&self) -> bool {
        self.levels.iter().all(|l| matches!(l, Level::Exact(_)))
    }

    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('/');
        for level in &self.levels {
            match level {
                Level::Rest => return true,
                Level::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Level::Exact(want) => match parts.next() {
                    Some(p) if p == want => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_mqtt() {
        let p = Pattern::parse("game/+/state").unwrap();
        assert!(p.matches("game/nba-1/state"));
        assert!(!p.matches("game/nba-1/xg/shot"));
        assert!(!p.matches("game/state"));
        let h = Pattern::parse("game/nba-1/#").unwrap();
        assert!(h.matches("game/nba-1/state"));
        assert!(h.matches("game/nba-1/xg/player/7"));
        assert!(h.matches("game/nba-1"));
        assert!(!h.matches("game/nba-2/state"));
        assert!(Pattern::parse("#").unwrap().matches("games"));
        assert!(Pattern::parse("games").unwrap().is_concrete());
        assert!(!p.is_concrete());
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert_eq!(Pattern::parse(""), Err(TopicError::Empty));
        assert_eq!(Pattern::parse("game//state"), Err(TopicError::EmptyLevel));
        assert_eq!(Pattern::parse("game/#/state"), Err(TopicError::HashNotLast));
        assert_eq!(Pattern::parse("game/a+/state"), Err(TopicError::Wildcard));
        assert_eq!(Pattern::parse("game/a b"), Err(TopicError::BadChar));
        assert_eq!(validate_topic("game/+/state"), Err(TopicError::Wildcard));
        assert!(validate_topic("game/x/state").is_ok());
        assert_eq!(Pattern::parse(&"a".repeat(300)), Err(TopicError::TooLong));
    }
}
