//! One game's side of the triggers, on its shard: the latest value of every topic a rule
//! reads, taken from the publications each event made, and each rule instance's state (armed,
//! previous value, window, last firing). Part of the game's snapshot.

use std::collections::{BTreeMap, HashSet, VecDeque};

use opensports_proto::Sport;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rule::{Rule, Source, When, placeholder_parts};
use super::{Held, RuleSet, Triggers};
use crate::metrics as m;

/// One game's trigger state (see the module docs). Serialized into the game's snapshot.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameTriggers {
    /// The latest value of each topic a rule reads, by topic under `game/{id}/`.
    values: BTreeMap<String, Value>,
    /// Each rule instance's state, by `rule/sport` (`@version` once an operator changed the
    /// rule; `|topic` for a `+` source).
    states: BTreeMap<String, Instance>,
    /// The rule set's version these states were last pruned for.
    #[serde(default)]
    version: u64,
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
    pub fn observe(&mut self, set: &RuleSet, sport: Sport, t: &str, data: &[u8]) -> bool {
        if !set.reads(sport, t) {
            return false;
        }
        match set.read(sport, t, data) {
            Ok(v) => {
                self.values.insert(t.to_string(), v);
                true
            }
            Err(_) => false,
        }
    }

    /// Evaluates, after the event `seq` (source time `ts`), the rules reading the topics it
    /// changed; `fire` gets each firing's JSON.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &mut self,
        triggers: &Triggers,
        set: &RuleSet,
        (game, sport): (&str, Sport),
        (seq, ts): (u64, i64),
        changed: &[String],
        fire: &mut impl FnMut(&[u8]),
    ) {
        if self.version != set.version {
            self.prune(set);
        }
        for rule in set.rules.iter().filter(|r| r.applies_to(sport)) {
            let wild = rule.sources().next().filter(|s| s.is_wild());
            match wild {
                Some(src) => {
                    for t in changed.iter().filter(|t| src.matches(t)) {
                        let value = self.read(t, &src.tokens);
                        let key = format!("{}|{t}", state_key(rule));
                        let at = (seq, ts, set.version);
                        self.step(triggers, rule, (key, game), t, value, at, fire);
                    }
                }
                None => {
                    if !rule.sources().any(|s| changed.iter().any(|t| s.matches(t))) {
                        continue;
                    }
                    let value = self.value(rule);
                    let topic = rule.sources().next().map(|s| s.topic.clone()).unwrap_or_default();
                    let at = (seq, ts, set.version);
                    self.step(triggers, rule, (state_key(rule), game), &topic, value, at, fire);
                }
            }
        }
    }

    /// Drops the states of rules no longer in `set` (removed, or changed: a changed rule starts
    /// afresh rather than from its old condition's state).
    fn prune(&mut self, set: &RuleSet) {
        let live: HashSet<String> = set.rules.iter().map(state_key).collect();
        self.states.retain(|k, _| live.contains(k.split('|').next().unwrap_or(k)));
        self.version = set.version;
    }

    /// How many rule instances hold state.
    pub fn instances(&self) -> usize {
        self.states.len()
    }

    fn read(&self, topic: &str, pointer: &[String]) -> Value {
        self.values.get(topic).and_then(|v| super::sparse::get(v, pointer)).cloned().unwrap_or(Value::Null)
    }

    /// A rule's value: its one source as it is, or the sum of its terms (null when one is not
    /// a number).
    fn value(&self, rule: &Rule) -> Value {
        if let [t] = rule.terms.as_slice()
            && let Some(s) = &t.source
            && !t.negative
        {
            return self.read(&s.topic, &s.tokens);
        }
        let mut sum = 0.0;
        for t in &rule.terms {
            let x = match &t.source {
                Some(s) => match self.read(&s.topic, &s.tokens).as_f64() {
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
        (seq, ts, version): (u64, i64, u64),
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
            When::Decreases => {
                let before = st.last.as_ref().and_then(Value::as_f64);
                if x.is_some() {
                    st.last = Some(value.clone());
                }
                matches!((before, x), (Some(b), Some(x)) if x < b)
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
            facts.insert(format!("{t}:{}", s.pointer), self.read(t, &s.tokens));
        }
        let text = self.render(&rule.spec.text, &value, topic);
        let mut fired = serde_json::json!({
            "rule": rule.spec.name, "version": version, "seq": seq, "ts": ts,
            "topic": topic, "value": value, "facts": facts, "text": text,
        });
        if !rule.spec.texts.is_empty() {
            let texts: serde_json::Map<String, Value> = rule
                .spec
                .texts
                .iter()
                .map(|(l, t)| (l.clone(), self.render(t, &value, topic).into()))
                .collect();
            fired["texts"] = texts.into();
        }
        metrics::counter!(m::TRIGGERS_FIRED_TOTAL).increment(1);
        if let Ok(bytes) = serde_json::to_vec(&fired) {
            fire(&bytes);
        }
    }

    /// A rule's `text` with `{value}`, `{topic}` and `{topic:/pointer}` replaced.
    fn render(&self, template: &str, value: &Value, topic: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        for (before, inner, after) in placeholder_parts(template) {
            out.push_str(before);
            let v = match inner {
                "value" => value.clone(),
                "topic" => Value::from(topic),
                _ => Source::parse(inner).map_or(Value::Null, |s| self.read(&s.topic, &s.tokens)),
            };
            out.push_str(&plain(&v));
            rest = after;
        }
        out.push_str(rest);
        out
    }
}

/// A rule instance's state key: `rule/sport`, and `@version` once an operator changed it.
fn state_key(rule: &Rule) -> String {
    let sport = rule.spec.sport.as_deref().unwrap_or("*");
    match rule.version {
        0 | 1 => format!("{}/{sport}", rule.spec.name),
        v => format!("{}/{sport}@{v}", rule.spec.name),
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
