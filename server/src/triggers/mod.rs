//! Triggers (PROTOCOL.md §3.3): rules over a game's topics (its state, win probability and
//! plugin outputs) that fire the moments a graphics operator puts on air: a lead change, a
//! player reaching 30 points, a swing in win probability, a goal, a safety car.
//!
//! - [`rule`]: the rule language and the default set per sport.
//! - [`Triggers`]: the rules a server runs (defaults, then `[[triggers.rules]]`).
//! - [`GameTriggers`]: one game's side, on its shard: the latest value of every topic a rule
//!   reads, taken from the publications each event made, and each rule instance's state
//!   (armed, previous value, window, last firing). Rules are evaluated once per event, in the
//!   game's event order, on source time only, so replaying a game fires the same triggers at
//!   the same seqs; the state is part of the game's snapshot.
//!
//! A firing is published on `game/{id}/triggers`:
//! `{"rule","version","seq","ts","topic","value","facts":{source: value},"text"}`.

pub mod rule;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use parking_lot::Mutex;

use opensports_proto::Sport;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics as m;
pub use rule::{Rule, RuleSpec, Source, When};

/// The rules a server runs.
#[derive(Debug)]
pub struct Triggers {
    rules: Vec<Rule>,
    /// The rule set's version (in every firing).
    version: u64,
    /// The operators' controls (`/v1/triggers`): live only, never replayed.
    control: Mutex<Control>,
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
        let mut all = if defaults { rule::defaults() } else { Vec::new() };
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.name == s.name && o.sport == s.sport) {
                return Err(format!("rule {:?} is configured twice for one sport", s.name));
            }
            all.retain(|d| !(d.name == s.name && d.sport == s.sport));
            all.push(s.clone());
        }
        let rules = all.iter().map(Rule::parse).collect::<Result<Vec<_>, _>>()?;
        Ok(Triggers { rules, version: 1, control: Mutex::new(Control::default()) })
    }

    /// Whether a rule of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.rules.iter().any(|r| r.spec.name == name)
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

    /// The rules as the admin listing shows them.
    pub fn listing(&self) -> Value {
        let c = self.control.lock();
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(&r.spec).unwrap_or(Value::Null);
                v["armed"] = Value::from(!c.disarmed.contains(&r.spec.name));
                v
            })
            .collect();
        serde_json::json!({"version": self.version, "rules": rules})
    }

    /// A firing an operator makes by hand on `game` (`manual: true`; live only, not replayed).
    pub fn manual(&self, name: &str, game_seq: u64, ts: i64, text: &str) -> Vec<u8> {
        let fired = serde_json::json!({
            "rule": name, "version": self.version, "seq": game_seq, "ts": ts, "manual": true,
            "topic": Value::Null, "value": Value::Null, "facts": {}, "text": text,
        });
        metrics::counter!(m::TRIGGERS_FIRED_TOTAL).increment(1);
        serde_json::to_vec(&fired).unwrap_or_default()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether a rule for `sport` reads topic `t` (under `game/{id}/`).
    pub fn reads(&self, sport: Sport, t: &str) -> bool {
        self.rules.iter().any(|r| r.applies_to(sport) && r.sources().any(|s| s.matches(t)))
    }
}

/// One game's trigger state (see the module docs). Serialized into the game's snapshot.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameTriggers {
    /// The latest value of each topic a rule reads, by topic under `game/{id}/`.
    values: BTreeMap<String, Value>,
    /// Each rule instance's state, by `rule/sport` (and `|topic` for a `+` source).
    states: BTreeMap<String, Instance>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Instance {
    /// A crossing fired and the value has not gone back past the hysteresis.
    #[serde(default)]
    fired: bool,
    #[serde(default)]
    last: Option<Value>,
    /// `swing`: (ts, value) within the window.
    #[serde(default)]
    window: VecDeque<(i64, f64)>,
    #[serde(default)]
    last_fired: Option<i64>,
}

impl GameTriggers {
    /// A publication on this game's topic `t` (under `game/{id}/`): kept when a rule reads it.
    /// Whether it was.
    pub fn observe(&mut self, triggers: &Triggers, sport: Sport, t: &str, data: &[u8]) -> bool {
        if !triggers.reads(sport, t) {
            return false;
        }
        match serde_json::from_slice::<Value>(data) {
            Ok(v) => {
                self.values.insert(t.to_string(), v);
                true
            }
            Err(_) => false,
        }
    }

    /// Evaluates, after the event `seq` (source time `ts`), the rules reading the topics it
    /// changed; `fire` gets each firing's JSON.
    pub fn evaluate(
        &mut self,
        triggers: &Triggers,
        (game, sport): (&str, Sport),
        (seq, ts): (u64, i64),
        changed: &[String],
        fire: &mut impl FnMut(&[u8]),
    ) {
        for rule in triggers.rules.iter().filter(|r| r.applies_to(sport)) {
            let sport_key = rule.spec.sport.as_deref().unwrap_or("*");
            let wild = rule.sources().next().filter(|s| s.is_wild());
            match wild {
                Some(src) => {
                    for t in changed.iter().filter(|t| src.matches(t)) {
                        let value = self.read(t, &src.pointer);
                        let key = format!("{}/{sport_key}|{t}", rule.spec.name);
                        self.step(triggers, rule, (key, game), t, value, (seq, ts), fire);
                    }
                }
                None => {
                    if !rule.sources().any(|s| changed.iter().any(|t| s.matches(t))) {
                        continue;
                    }
                    let value = self.value(rule);
                    let key = format!("{}/{sport_key}", rule.spec.name);
                    let topic = rule.sources().next().map(|s| s.topic.clone()).unwrap_or_default();
                    self.step(triggers, rule, (key, game), &topic, value, (seq, ts), fire);
                }
            }
        }
    }

    fn read(&self, topic: &str, pointer: &str) -> Value {
        self.values.get(topic).and_then(|v| v.pointer(pointer)).cloned().unwrap_or(Value::Null)
    }

    /// A rule's value: its one source as it is, or the sum of its terms (null when one is not
    /// a number).
    fn value(&self, rule: &Rule) -> Value {
        if let [t] = rule.terms.as_slice()
            && let Some(s) = &t.source
            && !t.negative
        {
            return self.read(&s.topic, &s.pointer);
        }
        let mut sum = 0.0;
        for t in &rule.terms {
            let x = match &t.source {
                Some(s) => match self.read(&s.topic, &s.pointer).as_f64() {
                    Some(x) => x,
                    None => return Value::Null,
                },
                None => t.number,
            };
            sum += if t.negative { -x } else { x };
        }
        serde_json::Number::from_f64(sum).map_or(Value::Null, Value::Number)
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        triggers: &Triggers,
        rule: &Rule,
        (key, game): (String, &str),
        topic: &str,
        value: Value,
        (seq, ts): (u64, i64),
        fire: &mut impl FnMut(&[u8]),
    ) {
        let st = self.states.entry(key).or_default();
        let x = value.as_f64();
        let hys = rule.spec.hysteresis;
        let fires = match &rule.when {
            When::Above(th) => crossing(st, x.map(|x| (x >= *th, x < th - hys))),
            When::Below(th) => crossing(st, x.map(|x| (x <= *th, x > th + hys))),
            When::Sign => {
                // Not `f64::signum`: that makes 0 positive, and a tie is no one's lead.
                let sign = x.map_or(0.0, |x| {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                });
                let before = st.last.as_ref().and_then(Value::as_f64).unwrap_or(0.0);
                if sign != 0.0 {
                    st.last = Some(Value::from(sign));
                }
                sign != 0.0 && before != 0.0 && sign != before
            }
            When::Increases => {
                let before = st.last.as_ref().and_then(Value::as_f64);
                if x.is_some() {
                    st.last = Some(value.clone());
                }
                matches!((before, x), (Some(b), Some(x)) if x > b)
            }
            When::Changes => {
                let changed = !value.is_null() && st.last.as_ref().unwrap_or(&Value::Null) != &value;
                if !value.is_null() {
                    st.last = Some(value.clone());
                }
                changed
            }
            When::Equals(want) => {
                let was = st.last.as_ref() == Some(want);
                st.last = Some(value.clone());
                &value == want && !was
            }
            When::Swing(by, within) => match x {
                None => false,
                Some(x) => {
                    st.window.retain(|(t, _)| *t >= ts - within);
                    let swung = st.window.iter().any(|(_, w)| (x - w).abs() >= *by);
                    if swung {
                        st.window.clear();
                    }
                    st.window.push_back((ts, x));
                    swung
                }
            },
        };
        if !fires {
            return;
        }
        let cooldown = i64::try_from(rule.spec.cooldown_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
        if st.last_fired.is_some_and(|f| ts.saturating_sub(f) < cooldown) {
            metrics::counter!(m::TRIGGERS_SUPPRESSED_TOTAL, "reason" => "cooldown").increment(1);
            return;
        }
        st.last_fired = Some(ts);
        match triggers.admit(&rule.spec.name, game) {
            Ok(()) => {}
            Err(Held::Disarmed) => {
                return metrics::counter!(m::TRIGGERS_SUPPRESSED_TOTAL, "reason" => "disarmed").increment(1);
            }
            Err(Held::Suppressed) => {
                return metrics::counter!(m::TRIGGERS_SUPPRESSED_TOTAL, "reason" => "operator").increment(1);
            }
        }
        let mut facts = serde_json::Map::new();
        for s in rule.sources() {
            let t = if s.is_wild() { topic } else { s.topic.as_str() };
            facts.insert(format!("{t}:{}", s.pointer), self.read(t, &s.pointer));
        }
        let text = self.render(&rule.spec.text, &value, topic);
        let fired = serde_json::json!({
            "rule": rule.spec.name, "version": triggers.version, "seq": seq, "ts": ts,
            "topic": topic, "value": value, "facts": facts, "text": text,
        });
        metrics::counter!(m::TRIGGERS_FIRED_TOTAL).increment(1);
        if let Ok(bytes) = serde_json::to_vec(&fired) {
            fire(&bytes);
        }
    }

    /// A rule's `text` with `{value}`, `{topic}` and `{topic:/pointer}` replaced.
    fn render(&self, template: &str, value: &Value, topic: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else { break };
            let inner = &rest[open + 1..open + close];
            let v = match inner {
                "value" => value.clone(),
                "topic" => Value::from(topic),
                _ => Source::parse(inner).map_or(Value::Null, |s| self.read(&s.topic, &s.pointer)),
            };
            out.push_str(&plain(&v));
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// A crossing: `(at_or_past, back)` of the value; fires once until the value is back past the
/// hysteresis.
fn crossing(st: &mut Instance, x: Option<(bool, bool)>) -> bool {
    match x {
        Some((true, _)) if !st.fired => {
            st.fired = true;
            true
        }
        Some((_, true)) => {
            st.fired = false;
            false
        }
        _ => false,
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
