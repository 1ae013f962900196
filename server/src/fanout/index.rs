//! The live pattern subscriptions, indexed so that creating a topic looks only at the patterns
//! that can match it.
//!
//! A pattern whose first two levels are literal (`game/nba-1/+`, `game/nba-1/#`) is filed under
//! that prefix; any other (`game/+/state`, `games`, `#`) goes to a short list checked for every
//! new topic. A new topic `game/nba-1/xg/shot` is matched against the `game/nba-1` bucket and
//! the wildcard list only, so 10,000 per-game subscriptions cost a new topic a handful of
//! comparisons instead of 10,000 (`cargo bench -p opensports-benches --bench core topic_match`).

use std::collections::HashMap;
use std::sync::Arc;

use opensports_proto::topic::Pattern;
use opensports_proto::ws::Mode;

use super::SubId;
use super::outbox::Outbox;

#[derive(Debug)]
pub(super) struct PatternSub {
    pub id: SubId,
    pub pattern: Pattern,
    pub mode: Mode,
    pub outbox: Arc<Outbox>,
    /// Resume points (`since`) for topics this server did not have when the client subscribed:
    /// applied as the binding's skip-through when such a topic is created by a publication.
    /// One map per `sub` op, shared by its patterns (never copied per pattern); a session's
    /// maps hold at most `fanout.max_since_keys` keys together. A client never creates a topic.
    pub pending_since: Arc<PendingSince>,
    /// Delivered through the topics' delay lines of this many ms (0: as published).
    pub delay_ms: u64,
}

/// `since` keys naming topics the server did not have yet, topic → seq.
pub type PendingSince = std::collections::HashMap<Box<str>, u64>;

#[derive(Debug, Default)]
pub(super) struct PatternIndex {
    by_prefix: HashMap<Box<str>, Vec<PatternSub>>,
    wild: Vec<PatternSub>,
    /// Where each subscription is filed (`None`: the wildcard list), for removal.
    filed: HashMap<SubId, Option<Box<str>>>,
}

/// The first two levels of `s` (`game/nba-1` of `game/nba-1/xg/shot`), if it has two.
fn prefix(s: &str) -> Option<&str> {
    let first = s.find('/')?;
    let second = s[first + 1..].find('/').map_or(s.len(), |i| first + 1 + i);
    Some(&s[..second])
}

/// The bucket of a pattern: its two first levels when both are literal.
fn pattern_key(p: &Pattern) -> Option<&str> {
    prefix(p.as_str()).filter(|k| !k.split('/').any(|l| l == "+" || l == "#"))
}

impl PatternIndex {
    pub fn insert(&mut self, ps: PatternSub) {
        let key: Option<Box<str>> = pattern_key(&ps.pattern).map(Box::from);
        self.filed.insert(ps.id, key.clone());
        match key {
            Some(k) => self.by_prefix.entry(k).or_default().push(ps),
            None => self.wild.push(ps),
        }
    }

    pub fn remove(&mut self, id: SubId) -> Option<PatternSub> {
        let list = match self.filed.remove(&id)? {
            Some(k) => {
                let list = self.by_prefix.get_mut(&k)?;
                let i = list.iter().position(|ps| ps.id == id)?;
                let ps = list.swap_remove(i);
                if list.is_empty() {
                    self.by_prefix.remove(&k);
                }
                return Some(ps);
            }
            None => &mut self.wild,
        };
        let i = list.iter().position(|ps| ps.id == id)?;
        Some(list.swap_remove(i))
    }

    /// Every subscription whose pattern matches `topic`.
    pub fn matching<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a PatternSub> + 'a {
        let bucket = prefix(topic).and_then(|k| self.by_prefix.get(k)).map_or(&[][..], Vec::as_slice);
        bucket.iter().chain(&self.wild).filter(move |ps| ps.pattern.matches(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: SubId, p: &str) -> PatternSub {
        PatternSub {
            pending_since: Default::default(),
            id,
            pattern: Pattern::parse(p).expect("pattern"),
            mode: Mode::All,
            outbox: Outbox::new(4),
            delay_ms: 0,
        }
    }

    fn ids(ix: &PatternIndex, topic: &str) -> Vec<SubId> {
        let mut v: Vec<SubId> = ix.matching(topic).map(|ps| ps.id).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn finds_the_same_subscriptions_as_matching_every_pattern() {
        let pats =
            ["game/g1/state", "game/g1/+", "game/g1/#", "game/+/state", "games", "#", "game/g2/#", "game"];
        let mut ix = PatternIndex::default();
        for (i, p) in pats.iter().enumerate() {
            ix.insert(sub(i as SubId, p));
        }
        for topic in
            ["game/g1/state", "game/g1", "game/g1/xg/shot", "game/g2/state", "games", "game", "other/x"]
        {
            let want: Vec<SubId> = pats
                .iter()
                .enumerate()
                .filter(|(_, p)| Pattern::parse(p).expect("pattern").matches(topic))
                .map(|(i, _)| i as SubId)
                .collect();
            assert_eq!(ids(&ix, topic), want, "{topic}");
        }
        assert_eq!(ix.remove(2).map(|ps| ps.id), Some(2));
        assert_eq!(ix.remove(5).map(|ps| ps.id), Some(5));
        assert!(ix.remove(2).is_none());
        assert_eq!(ids(&ix, "game/g1/state"), vec![0, 1, 3]);
        assert!(ids(&ix, "game/g1/xg/shot").is_empty());
    }
}
