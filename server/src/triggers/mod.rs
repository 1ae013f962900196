//! Triggers (PROTOCOL.md §3.3): rules over a game's topics (its state, win probability and
//! plugin outputs) that fire the moments a graphics operator puts on air: a lead change, a
//! player reaching 30 points, a swing in win probability, a goal, a safety car.
//!
//! - [`rule`]: the rule language and the default set per sport.
//! - [`Triggers`]: the rules a server runs: the defaults, then `[[triggers.rules]]`, then the
//!   operators' edits through the admin API ([`Edits`], kept in the key file and applied
//!   again at start). Each change makes a new [`RuleSet`] with the next version; shards take
//!   the current one per event.
//! - [`GameTriggers`] (`game.rs`): one game's side, on its shard: the latest value of every
//!   topic a rule reads and each rule instance's state. Rules are evaluated once per event,
//!   in the game's event order, on source time only, so replaying a game under the same rule
//!   set fires the same triggers at the same seqs; the state is part of the game's snapshot.
//! - Plugins fire triggers of their own through the SDK (`Ctx::trigger`): an output named
//!   `trigger/{name}`, published here as rule `{plugin}:{name}` under the same operators'
//!   controls ([`Triggers::plugin_firing`]).
//!
//! A firing is published on `game/{id}/triggers`:
//! `{"rule","version","seq","ts","topic","value","facts":{source: value},"text"}`.

mod game;
pub mod rule;
mod sparse;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use opensports_proto::Sport;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics as m;
pub use game::GameTriggers;
pub use rule::{Rule, RuleSpec, Source, When};

/// Rules one server runs at most (defaults, configured and edited together).
pub const MAX_RULES: usize = 256;
/// Distinct plugin trigger names the listing remembers.
const MAX_PLUGIN_RULES: usize = 1024;
/// The key file setting that holds the operators' [`Edits`].
pub const SETTING: &str = "triggers.edits";
/// A plugin trigger's `text`, at most.
const MAX_TEXT: usize = 256;

/// One version of the rule set: what the shards evaluate.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// The version (in every firing): 1 as configured, one more per operator change.
    version: u64,
    /// Every JSON pointer a rule reads (its sources and its texts' placeholders), for the
    /// sport the rule applies to: all a game keeps of a topic (see `sparse.rs`).
    wants: Vec<Want>,
}

/// A pointer (as reference tokens) some rule reads from the topics `source` matches.
#[derive(Debug)]
struct Want {
    sport: Option<Sport>,
    source: Source,
}

impl Want {
    /// What `rules` read: their sources, and the `{topic:/pointer}` placeholders of their texts.
    fn of(rules: &[Rule]) -> Vec<Want> {
        let mut wants = Vec::new();
        for r in rules {
            let texts = std::iter::once(&r.spec.text).chain(r.spec.texts.values());
            let placeholders = texts.flat_map(|t| rule::placeholders(t).filter_map(Source::parse));
            for source in r.sources().cloned().chain(placeholders) {
                wants.push(Want { sport: r.sport, source });
            }
        }
        wants
    }
}

impl RuleSet {
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a rule for `sport` reads topic `t` (under `game/{id}/`).
    pub fn reads(&self, sport: Sport, t: &str) -> bool {
        self.rules.iter().any(|r| r.applies_to(sport) && r.sources().any(|s| s.matches(t)))
    }

    /// Topic `t`'s publication as far as the rules for `sport` read it.
    fn read(&self, sport: Sport, t: &str, data: &[u8]) -> serde_json::Result<Value> {
        let paths: Vec<&[String]> = self
            .wants
            .iter()
            .filter(|w| w.sport.is_none_or(|s| s == sport) && w.source.matches(t))
            .map(|w| w.source.tokens.as_slice())
            .collect();
        sparse::read(data, &paths)
    }
}

/// The operators' changes to the configured rules, in the order made: kept in the key file
/// (setting [`SETTING`]) and applied over the configured rules at every start.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edits {
    /// The rule set's version after the last change (0: never changed).
    pub version: u64,
    /// One entry per rule (name and sport) ever changed, the latest change only.
    pub rules: Vec<Edit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    pub name: String,
    #[serde(default)]
    pub sport: Option<String>,
    /// The rule as it now is; none: deleted.
    pub rule: Option<RuleSpec>,
    /// The version that made this change.
    pub version: u64,
}

/// One change an operator made: the rule before and after, and the new version.
#[derive(Debug, Clone)]
pub struct Change {
    pub before: Option<RuleSpec>,
    pub after: Option<RuleSpec>,
    pub version: u64,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Invalid(String),
    #[error("no trigger rule {0:?} for that sport")]
    NotFound(String),
    #[error("the rule change could not be stored: {0}")]
    Store(String),
}

/// The rules a server runs.
#[derive(Debug)]
pub struct Triggers {
    /// The defaults and the configured rules.
    base: Vec<RuleSpec>,
    edits: Mutex<Edits>,
    set: RwLock<Arc<RuleSet>>,
    /// The operators' controls (`/v1/triggers`): live only, never replayed.
    control: Mutex<Control>,
    /// Plugin triggers seen so far (`plugin:name`), for the listing.
    plugin_rules: Mutex<BTreeSet<String>>,
}

/// What operators decided: rules disarmed, and firings to swallow.
#[derive(Debug, Default)]
struct Control {
    disarmed: HashSet<String>,
    /// (rule, game or "" for every game) → firings still to swallow.
    suppress: HashMap<(String, String), u32>,
}

/// Why a firing was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Disarmed,
    Suppressed,
}

impl Triggers {
    /// The default rules (when `defaults`), then `specs` (one with a default's name and sport
    /// replaces it); or why one is refused.
    pub fn new(specs: &[RuleSpec], defaults: bool) -> Result<Triggers, String> {
        let mut base = if defaults { rule::defaults() } else { Vec::new() };
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.name == s.name && o.sport == s.sport) {
                return Err(format!("rule {:?} is configured twice for one sport", s.name));
            }
            base.retain(|d| !(d.name == s.name && d.sport == s.sport));
            base.push(s.clone());
        }
        let set = compose(&base, &Edits::default())?;
        Ok(Triggers {
            base,
            edits: Mutex::new(Edits::default()),
            set: RwLock::new(Arc::new(set)),
            control: Mutex::new(Control::default()),
            plugin_rules: Mutex::new(BTreeSet::new()),
        })
    }

    /// Applies the operators' stored edits (at start). Edits that no longer make a valid
    /// rule set (a configured rule they changed is gone, a limit was lowered) are dropped one
    /// by one, newest first, with a warning.
    pub fn with_edits(self, mut edits: Edits) -> Triggers {
        loop {
            match compose(&self.base, &edits) {
                Ok(set) => {
                    *self.set.write() = Arc::new(set);
                    *self.edits.lock() = edits;
                    return self;
                }
                Err(e) => {
                    let dropped =
                        edits.rules.iter().enumerate().max_by_key(|(_, x)| x.version).map(|(i, _)| i);
                    let Some(i) = dropped else { return self };
                    let edit = edits.rules.remove(i);
                    tracing::warn!(rule = %edit.name, error = %e, "a stored trigger rule edit no longer applies: dropped");
                }
            }
        }
    }

    /// The rule set now in force.
    pub fn current(&self) -> Arc<RuleSet> {
        self.set.read().clone()
    }

    /// Creates or replaces the rule of `spec`'s name and sport. `store` keeps the new edits
    /// (before the change takes effect: a change that cannot be stored is not made).
    pub fn put(
        &self,
        spec: RuleSpec,
        store: impl FnOnce(&Edits, &Change) -> Result<(), String>,
    ) -> Result<Change, ChangeError> {
        Rule::parse(&spec).map_err(ChangeError::Invalid)?;
        let (name, sport) = (spec.name.clone(), spec.sport.clone());
        self.change(&name, sport, Some(spec), store)
    }

    /// Deletes the rule `name` of `sport` (none: the every-sport one).
    pub fn delete(
        &self,
        name: &str,
        sport: Option<String>,
        store: impl FnOnce(&Edits, &Change) -> Result<(), String>,
    ) -> Result<Change, ChangeError> {
        self.change(name, sport, None, store)
    }

    fn change(
        &self,
        name: &str,
        sport: Option<String>,
        rule: Option<RuleSpec>,
        store: impl FnOnce(&Edits, &Change) -> Result<(), String>,
    ) -> Result<Change, ChangeError> {
        let mut edits = self.edits.lock();
        let current = self.current();
        let before = current
            .rules
            .iter()
            .find(|r| r.spec.name == name && r.spec.sport == sport)
            .map(|r| r.spec.clone());
        if rule.is_none() && before.is_none() {
            return Err(ChangeError::NotFound(name.to_string()));
        }
        let mut next = edits.clone();
        next.version = current.version + 1;
        next.rules.retain(|e| !(e.name == name && e.sport == sport));
        next.rules.push(Edit { name: name.to_string(), sport, rule: rule.clone(), version: next.version });
        let set = compose(&self.base, &next).map_err(ChangeError::Invalid)?;
        let change = Change { before, after: rule, version: next.version };
        store(&next, &change).map_err(ChangeError::Store)?;
        *self.set.write() = Arc::new(set);
        *edits = next;
        Ok(change)
    }

    /// Whether a rule of this name exists, or it names a plugin trigger (`plugin:name`).
    pub fn has(&self, name: &str) -> bool {
        self.current().rules.iter().any(|r| r.spec.name == name) || plugin_rule_name(name)
    }

    /// Arms or disarms every rule named `name` (a disarmed rule still follows the game, so
    /// arming it again never fires a stale moment); whether it was armed before.
    pub fn set_armed(&self, name: &str, armed: bool) -> bool {
        let mut c = self.control.lock();
        let was = !c.disarmed.contains(name);
        if armed {
            c.disarmed.remove(name);
        } else {
            c.disarmed.insert(name.to_string());
        }
        was
    }

    pub fn is_armed(&self, name: &str) -> bool {
        !self.control.lock().disarmed.contains(name)
    }

    /// Swallows the next firing of `name` in `game` (every game: `""`); the firings now
    /// waiting to be swallowed.
    pub fn suppress_next(&self, name: &str, game: &str) -> u32 {
        let mut c = self.control.lock();
        let n = c.suppress.entry((name.to_string(), game.to_string())).or_default();
        *n = n.saturating_add(1).min(1000);
        *n
    }

    /// Whether a firing of `rule` in `game` goes out, or why not (a suppression is used up).
    fn admit(&self, rule: &str, game: &str) -> Result<(), Held> {
        let mut c = self.control.lock();
        if c.disarmed.contains(rule) {
            return Err(Held::Disarmed);
        }
        for key in [(rule.to_string(), game.to_string()), (rule.to_string(), String::new())] {
            if let Some(n) = c.suppress.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    c.suppress.remove(&key);
                }
                return Err(Held::Suppressed);
            }
        }
        Ok(())
    }

    /// Counts a firing held back, and says whether it goes out.
    fn admitted(&self, rule: &str, game: &str) -> bool {
        match self.admit(rule, game) {
            Ok(()) => true,
            Err(Held::Disarmed) => {
                metrics::counter!(m::TRIGGERS_SUPPRESSED_TOTAL, "reason" => "disarmed").increment(1);
                false
            }
            Err(Held::Suppressed) => {
                metrics::counter!(m::TRIGGERS_SUPPRESSED_TOTAL, "reason" => "operator").increment(1);
                false
            }
        }
    }

    /// The rules as the admin listing shows them: each with the version that last changed it,
    /// where it comes from (`default`, `config` or `api`) and whether it is armed; then the
    /// plugin triggers seen so far.
    pub fn listing(&self) -> Value {
        let set = self.current();
        let edits = self.edits.lock().clone();
        let c = self.control.lock();
        let defaults = rule::defaults();
        let rules: Vec<Value> = set
            .rules
            .iter()
            .map(|r| {
                let (name, sport) = (&r.spec.name, &r.spec.sport);
                let origin = if edits.rules.iter().any(|e| &e.name == name && &e.sport == sport) {
                    "api"
                } else if defaults.iter().any(|d| d == &r.spec) {
                    "default"
                } else {
                    "config"
                };
                let mut v = serde_json::to_value(&r.spec).unwrap_or(Value::Null);
                v["version"] = Value::from(r.version);
                v["origin"] = Value::from(origin);
                v["armed"] = Value::from(!c.disarmed.contains(name));
                v
            })
            .collect();
        let plugin: Vec<Value> = self
            .plugin_rules
            .lock()
            .iter()
            .map(|n| serde_json::json!({"name": n, "armed": !c.disarmed.contains(n)}))
            .collect();
        serde_json::json!({"version": set.version, "rules": rules, "plugin_rules": plugin})
    }

    /// A firing an operator makes by hand on `game` (`manual: true`; live only, not replayed).
    pub fn manual(&self, name: &str, game_seq: u64, ts: i64, text: &str) -> Vec<u8> {
        let fired = serde_json::json!({
            "rule": name, "version": self.current().version, "seq": game_seq, "ts": ts, "manual": true,
            "topic": Value::Null, "value": Value::Null, "facts": {}, "text": text,
        });
        metrics::counter!(m::TRIGGERS_FIRED_TOTAL).increment(1);
        serde_json::to_vec(&fired).unwrap_or_default()
    }

    /// A trigger plugin `plugin` fired at event `seq` of `game` (its output
    /// `trigger/{name}`, `payload` = `{"text", "facts", "value"}` from the SDK): the firing to
    /// publish as rule `{plugin}:{name}`, or none when an operator holds it back or the
    /// payload is not the SDK's shape.
    pub fn plugin_firing(
        &self,
        (plugin, name): (&str, &str),
        game: &str,
        (seq, ts): (u64, i64),
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let rule = format!("{plugin}:{name}");
        let body: serde_json::Map<String, Value> = match serde_json::from_slice(payload) {
            Ok(Value::Object(o)) if plugin_rule_name(&rule) => o,
            _ => {
                metrics::counter!(m::TRIGGERS_SUPPRESSED_TOTAL, "reason" => "malformed").increment(1);
                return None;
            }
        };
        {
            let mut seen = self.plugin_rules.lock();
            if seen.len() < MAX_PLUGIN_RULES && !seen.contains(&rule) {
                seen.insert(rule.clone());
            }
        }
        if !self.admitted(&rule, game) {
            return None;
        }
        let mut text = body.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        let facts = body
            .get("facts")
            .filter(|f| f.is_object())
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let fired = serde_json::json!({
            "rule": rule, "version": self.current().version, "seq": seq, "ts": ts, "plugin": plugin,
            "topic": Value::Null, "value": body.get("value").cloned().unwrap_or(Value::Null),
            "facts": facts, "text": text,
        });
        metrics::counter!(m::TRIGGERS_FIRED_TOTAL).increment(1);
        serde_json::to_vec(&fired).ok()
    }
}

/// `plugin:name`, each part 1-64 of `[A-Za-z0-9_-]`.
fn plugin_rule_name(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    s.split_once(':').is_some_and(|(a, b)| part(a) && part(b))
}

/// The rule set of `base` with `edits` applied, in the order they were made.
fn compose(base: &[RuleSpec], edits: &Edits) -> Result<RuleSet, String> {
    let mut specs: Vec<(RuleSpec, u64)> = base.iter().map(|s| (s.clone(), 1)).collect();
    let mut ordered: Vec<&Edit> = edits.rules.iter().collect();
    ordered.sort_by_key(|e| e.version);
    for e in ordered {
        let at = specs.iter().position(|(s, _)| s.name == e.name && s.sport == e.sport);
        match (&e.rule, at) {
            (Some(spec), Some(i)) => specs[i] = (spec.clone(), e.version),
            (Some(spec), None) => specs.push((spec.clone(), e.version)),
            (None, Some(i)) => {
                specs.remove(i);
            }
            (None, None) => {}
        }
    }
    if specs.len() > MAX_RULES {
        return Err(format!("at most {MAX_RULES} trigger rules"));
    }
    let mut rules = Vec::with_capacity(specs.len());
    for (spec, version) in specs {
        let mut r = Rule::parse(&spec)?;
        r.version = version;
        rules.push(r);
    }
    let wants = Want::of(&rules);
    Ok(RuleSet { rules, version: edits.version.max(1), wants })
}

#[cfg(test)]
mod tests;
