//! Trigger rules: what an operator writes (`[[triggers.rules]]`, PROTOCOL.md §3.3) and its
//! parsed form.

use opensports_proto::Sport;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A rule as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique, `[A-Za-z0-9_-]`, at most 64 bytes.
    pub name: String,
    /// `basketball`, `football`, `soccer` or `f1`; none: every sport.
    #[serde(default)]
    pub sport: Option<String>,
    /// Sources added and subtracted: `state:/score/home - state:/score/away`; a source is
    /// `topic:/json/pointer` under `game/{id}/`, its topic may hold `+` (one instance of the
    /// rule per matching topic; then the value is that one source).
    pub value: String,
    /// `above N`, `below N` (crossings, re-armed past `hysteresis`), `sign` (changes sign),
    /// `increases`, `decreases`, `changes`, `equals X` (a JSON literal), `swing N within S` (moves by N
    /// within S seconds of source time).
    pub when: String,
    #[serde(default)]
    pub hysteresis: f64,
    /// Source-time milliseconds after a firing during which the rule does not fire again for
    /// the same instance.
    #[serde(default, deserialize_with = "whole_number")]
    pub cooldown_ms: u64,
    /// The `text` of a firing: `{value}`, `{topic}` and `{SOURCE}` (any `topic:/pointer`) are
    /// replaced by their values.
    #[serde(default)]
    pub text: String,
    /// The text in other languages, by locale (`{"es": "GOL {state:/home}"}`), rendered the
    /// same way; a firing carries them as `texts` (pushes use the device's language).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub texts: std::collections::BTreeMap<String, String>,
}

/// One term of a value: a source or a number, added or subtracted.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub negative: bool,
    pub source: Option<Source>,
    pub number: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Topic under `game/{id}/`, possibly with `+` levels.
    pub topic: String,
    pub pointer: String,
    /// The pointer's reference tokens (`/a~1b/c` is `["a/b", "c"]`).
    pub tokens: Vec<String>,
    wild: bool,
}

impl Source {
    pub fn parse(s: &str) -> Option<Source> {
        let (topic, pointer) = s.split_once(':')?;
        if topic.is_empty() || topic == "triggers" || !(pointer.is_empty() || pointer.starts_with('/')) {
            return None;
        }
        opensports_proto::topic::Pattern::parse(topic).ok()?;
        if topic.split('/').any(|l| l == "#") {
            return None;
        }
        let tokens = super::sparse::tokens(pointer);
        let wild = topic.split('/').any(|l| l == "+");
        Some(Source { topic: topic.into(), pointer: pointer.into(), tokens, wild })
    }

    pub fn is_wild(&self) -> bool {
        self.wild
    }

    /// Whether concrete topic `t` (under `game/{id}/`) is this source's.
    pub fn matches(&self, t: &str) -> bool {
        if !self.wild {
            return self.topic == t;
        }
        let (mut a, mut b) = (self.topic.split('/'), t.split('/'));
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(p), Some(l)) if p == "+" || p == l => {}
                _ => return false,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum When {
    Above(f64),
    Below(f64),
    Sign,
    Increases,
    Decreases,
    Changes,
    Equals(Value),
    /// By, within µs.
    Swing(f64, i64),
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub spec: RuleSpec,
    pub sport: Option<Sport>,
    pub terms: Vec<Term>,
    pub when: When,
    /// The rule set's version that last changed this rule (1: as configured).
    pub version: u64,
}

impl Rule {
    pub fn parse(spec: &RuleSpec) -> Result<Rule, String> {
        let name = &spec.name;
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(format!("rule name {name:?}: use 1-64 letters, digits, '_' or '-'"));
        }
        if spec.value.len() > 512 || spec.when.len() > 128 || spec.text.chars().count() > 256 {
            return Err(format!("rule {name}: value is at most 512 bytes, when 128, text 256 characters"));
        }
        if let Some((l, _)) = spec.texts.iter().find(|(l, t)| {
            !crate::push::device::LOCALES.contains(&l.as_str())
                || l.as_str() == "en"
                || t.chars().count() > 256
        }) {
            return Err(format!(
                "rule {name}: texts {l:?}: a locale other than en, one of {:?}, and at most 256 characters",
                crate::push::device::LOCALES
            ));
        }
        if spec.cooldown_ms > 86_400_000 {
            return Err(format!("rule {name}: cooldown_ms is at most a day (86400000)"));
        }
        let sport = match &spec.sport {
            None => None,
            Some(s) => Some(Sport::parse(s).ok_or_else(|| format!("rule {name}: unknown sport {s:?}"))?),
        };
        let terms =
            parse_terms(&spec.value).map_err(|e| format!("rule {name}: value {:?}: {e}", spec.value))?;
        let wild = terms.iter().filter_map(|t| t.source.as_ref()).any(Source::is_wild);
        if wild && terms.len() != 1 {
            return Err(format!("rule {name}: a source with '+' must be the whole value"));
        }
        let when = parse_when(&spec.when).map_err(|e| format!("rule {name}: when {:?}: {e}", spec.when))?;
        if !(spec.hysteresis.is_finite() && spec.hysteresis >= 0.0) {
            return Err(format!("rule {name}: hysteresis must be a number >= 0"));
        }
        Ok(Rule { spec: spec.clone(), sport, terms, when, version: 1 })
    }

    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.terms.iter().filter_map(|t| t.source.as_ref())
    }

    pub fn applies_to(&self, sport: Sport) -> bool {
        self.sport.is_none_or(|s| s == sport)
    }
}

/// A text's placeholders in order, each as (the text before it, what is inside the braces,
/// the text after it); an unclosed `{` ends them.
pub fn placeholder_parts(text: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let open = rest.find('{')?;
        let close = rest[open..].find('}')?;
        let part = (&rest[..open], &rest[open + 1..open + close], &rest[open + close + 1..]);
        rest = part.2;
        Some(part)
    })
}

/// What is inside each placeholder of a text (`value`, `topic` or a source).
pub fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    placeholder_parts(text).map(|(_, inner, _)| inner)
}

fn parse_terms(s: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    let mut negative = false;
    let mut expect_term = true;
    for tok in s.split_whitespace() {
        match (tok, expect_term) {
            ("+", false) => (negative, expect_term) = (false, true),
            ("-", false) => (negative, expect_term) = (true, true),
            (t, true) => {
                let term = match t.parse::<f64>() {
                    Ok(n) if n.is_finite() => Term { negative, source: None, number: n },
                    _ => Term {
                        negative,
                        source: Some(Source::parse(t).ok_or("expected topic:/pointer or a number")?),
                        number: 0.0,
                    },
                };
                terms.push(term);
                expect_term = false;
            }
            (t, _) => return Err(format!("unexpected {t:?} (terms are separated by ' + ' or ' - ')")),
        }
    }
    if expect_term || !terms.iter().any(|t| t.source.is_some()) {
        return Err("expected at least one source, and a term after each sign".into());
    }
    Ok(terms)
}

fn parse_when(s: &str) -> Result<When, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let num =
        |w: &str| w.parse::<f64>().ok().filter(|n| n.is_finite()).ok_or(format!("{w:?} is not a number"));
    Ok(match words.as_slice() {
        ["above", n] => When::Above(num(n)?),
        ["below", n] => When::Below(num(n)?),
        ["sign"] => When::Sign,
        ["increases"] => When::Increases,
        ["decreases"] => When::Decreases,
        ["changes"] => When::Changes,
        ["equals", ..] => {
            let lit = s.trim_start().trim_start_matches("equals").trim();
            When::Equals(serde_json::from_str(lit).map_err(|e| format!("equals takes a JSON literal: {e}"))?)
        }
        ["swing", n, "within", secs] => {
            let secs = num(secs)?;
            if secs <= 0.0 {
                return Err("the window must be longer than 0 s".into());
            }
            When::Swing(num(n)?.abs(), (secs * 1e6) as i64)
        }
        _ => {
            return Err(
                "expected above N, below N, sign, increases, decreases, changes, equals X or swing N within S".into()
            );
        }
    })
}

fn spec(name: &str, sport: &str, value: &str, when: &str, cooldown_ms: u64, text: &str) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        // "*": every sport.
        sport: Some(sport.to_string()).filter(|s| s != "*"),
        value: value.into(),
        when: when.into(),
        hysteresis: 0.0,
        cooldown_ms,
        text: text.into(),
        texts: Default::default(),
    }
}

impl RuleSpec {
    /// The same with its Spanish text.
    fn es(mut self, text: &str) -> RuleSpec {
        self.texts.insert("es".into(), text.into());
        self
    }
}

/// The rules every server has unless `triggers.defaults = false`.
pub fn defaults() -> Vec<RuleSpec> {
    let margin = "state:/score/home - state:/score/away";
    let mut rules = vec![
        spec(
            "lead_change",
            "basketball",
            margin,
            "sign",
            0,
            "Lead change: {state:/home} {state:/score/home}-{state:/score/away} {state:/away}",
        )
        .es("Cambio de líder: {state:/home} {state:/score/home}-{state:/score/away} {state:/away}"),
        spec(
            "player_30",
            "basketball",
            "basketball-boxscore/player/+:/pts",
            "above 30",
            0,
            "{topic}: 30 points",
        )
        .es("{topic}: 30 puntos"),
        spec(
            "winprob_swing",
            "*",
            "winprob:/home",
            "swing 0.15 within 60",
            60_000,
            "Win probability {state:/home} {winprob:/home}",
        )
        .es("Probabilidad de victoria {state:/home} {winprob:/home}"),
        spec(
            "home_scores",
            "football",
            "state:/score/home",
            "increases",
            0,
            "{state:/home} score: {state:/score/home}-{state:/score/away}",
        )
        .es("Anota {state:/home}: {state:/score/home}-{state:/score/away}"),
        spec(
            "away_scores",
            "football",
            "state:/score/away",
            "increases",
            0,
            "{state:/away} score: {state:/score/home}-{state:/score/away}",
        )
        .es("Anota {state:/away}: {state:/score/home}-{state:/score/away}"),
        spec(
            "lead_change",
            "football",
            margin,
            "sign",
            0,
            "Lead change: {state:/home} {state:/score/home}-{state:/score/away} {state:/away}",
        )
        .es("Cambio de líder: {state:/home} {state:/score/home}-{state:/score/away} {state:/away}"),
        spec(
            "home_goal",
            "soccer",
            "state:/score/home",
            "increases",
            0,
            "GOAL {state:/home} {state:/score/home}-{state:/score/away}",
        )
        .es("GOL de {state:/home} {state:/score/home}-{state:/score/away}"),
        spec(
            "away_goal",
            "soccer",
            "state:/score/away",
            "increases",
            0,
            "GOAL {state:/away} {state:/score/home}-{state:/score/away}",
        )
        .es("GOL de {state:/away} {state:/score/home}-{state:/score/away}"),
        spec(
            "red_card",
            "soccer",
            "state:/soccer/red_cards/home + state:/soccer/red_cards/away",
            "increases",
            0,
            "Red card",
        )
        .es("Tarjeta roja"),
        spec(
            "safety_car",
            "f1",
            "state:/f1/flag",
            "equals \"safety_car\"",
            0,
            "Safety car, lap {state:/f1/lap}",
        )
        .es("Coche de seguridad, vuelta {state:/f1/lap}"),
        spec(
            "fastest_lap",
            "f1",
            "f1-timing/fastest_lap:/lap_ms",
            "changes",
            0,
            "Fastest lap: {f1-timing/fastest_lap:/driver}",
        )
        .es("Vuelta rápida: {f1-timing/fastest_lap:/driver}"),
        spec(
            "leader_change",
            "f1",
            "state:/f1/cars/0/driver",
            "changes",
            0,
            "New leader: {state:/f1/cars/0/driver}",
        )
        .es("Nuevo líder: {state:/f1/cars/0/driver}"),
        // A score taken back (`score_correction`, a reversed touchdown): a correction to
        // what was announced, not silence.
        spec(
            "score_correction",
            "*",
            "state:/score/home + state:/score/away",
            "decreases",
            0,
            "Score corrected: {state:/home} {state:/score/home}-{state:/score/away} {state:/away}",
        )
        .es("Marcador corregido: {state:/home} {state:/score/home}-{state:/score/away} {state:/away}"),
    ];
    let ended = "equals \"ended\"";
    let score = "Final: {state:/home} {state:/score/home}-{state:/score/away} {state:/away}";
    let score_es = "Final: {state:/home} {state:/score/home}-{state:/score/away} {state:/away}";
    let start = "Under way: {state:/home} v {state:/away}";
    for sport in ["basketball", "football", "soccer"] {
        rules.push(spec("final", sport, "state:/status", ended, 0, score).es(score_es));
        rules.push(
            spec("game_start", sport, "state:/status", "equals \"live\"", 0, start)
                .es("Comienza: {state:/home} - {state:/away}"),
        );
    }
    rules.push(
        spec("final", "f1", "state:/status", ended, 0, "Race over: {state:/f1/cars/0/driver} wins")
            .es("Fin de la carrera: gana {state:/f1/cars/0/driver}"),
    );
    rules.push(
        spec("game_start", "f1", "state:/status", "equals \"live\"", 0, "Lights out")
            .es("Se apagan los semáforos"),
    );
    // The podium: P2 and P3 (P1 is `leader_change`).
    for p in [1, 2] {
        let driver = format!("state:/f1/cars/{p}/driver");
        rules.push(
            spec(
                &format!("podium_p{}", p + 1),
                "f1",
                &driver,
                "changes",
                0,
                &format!("P{}: {{{driver}}}", p + 1),
            )
            .es(&format!("P{}: {{{driver}}}", p + 1)),
        );
    }
    rules
}

/// A `u64` written as an integer or as a float with no fraction (`2000.0`: JSON does not tell
/// them apart, and JSON Schema's `integer` admits both).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let x = f64::deserialize(d)?;
    if x.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&x) {
        Ok(x as u64)
    } else {
        Err(serde::de::Error::custom(format!("{x} is not a whole number >= 0")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_bad_ones_say_why() {
        for s in defaults() {
            Rule::parse(&s).unwrap();
        }
        let mut s = defaults()[0].clone();
        s.value = "state:/a + ".into();
        assert!(Rule::parse(&s).unwrap_err().contains("value"));
        s.value = "x/+:/pts - state:/a".into();
        assert!(Rule::parse(&s).unwrap_err().contains("'+'"));
        s.value = "state:/a".into();
        s.when = "above".into();
        assert!(Rule::parse(&s).unwrap_err().contains("when"));
        s.when = "equals \"safety_car\"".into();
        assert_eq!(Rule::parse(&s).unwrap().when, When::Equals(Value::from("safety_car")));
        s.sport = Some("curling".into());
        assert!(Rule::parse(&s).unwrap_err().contains("curling"));
        let src = Source::parse("basketball-boxscore/player/+:/pts").unwrap();
        assert!(
            src.matches("basketball-boxscore/player/p1") && !src.matches("basketball-boxscore/team/home/x")
        );
    }
}
