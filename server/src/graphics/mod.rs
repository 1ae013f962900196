//! Graphics outputs: a game as the flat key/value document graphics engines read (Vizrt, Ross
//! XPression, Chyron, CasparCG, Singular, vMix, OBS take data as flat JSON, XML or CSV, polled
//! over HTTP or watched as files), built from the game's topics' latest values.
//!
//! A document is an ordered list of fields. Each field is read from one topic of the game
//! (`state`, `winprob`, or a plugin output such as `basketball-boxscore/team/home`) at a JSON
//! pointer, optionally formatted (`|mmss`, `|pct`, `|ordinal`). The per-sport defaults are in
//! [`fields`]; operators add or override fields per sport in config (`[graphics.fields.SPORT]`,
//! `key = "topic:/pointer|format"`). A field whose topic or value is missing is an empty string,
//! so a template's bindings never disappear.
//!
//! # Layout
//! - this file: [`Field`] (parsing a source spec), [`Document`] (reading it from the fan-out)
//!   and its three encodings with an ETag over the values.
//! - [`fields`]: the default field map of each sport, documented field by field.
//! - [`drop`]: the file-drop output (written atomically on change).

pub mod drop;
pub mod fields;

use std::fmt::Write as _;

use opensports_proto::Sport;
use serde_json::Value;

use crate::fanout::Fanout;

/// One field of a document: where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub key: String,
    /// The topic under `game/{id}/`: `state`, `winprob`, `basketball-boxscore/team/home`.
    pub topic: String,
    /// JSON pointer into the topic's latest value (`""`: the whole value).
    pub pointer: String,
    pub format: Format,
}

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// As it is (strings unquoted, numbers as JSON writes them, null as empty).
    Plain,
    /// Milliseconds as `m:ss` (under a minute: `s.t`, as a game clock shows it).
    MinSec,
    /// A probability 0..1 as a whole percentage.
    Percent,
    /// 1 → `1st`, 2 → `2nd`, 3 → `3rd`, 4 → `4th`…
    Ordinal,
}

/// Why a field spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("field {key:?}: expected \"topic:/json/pointer\" or \"topic:/pointer|format\", got {spec:?}")]
    Syntax { key: String, spec: String },
    #[error("field {key:?}: unknown format {format:?} (mmss, pct, ordinal)")]
    Format { key: String, format: String },
    #[error("field key {0:?}: use letters, digits and '_' (an XML element name and a CSV column)")]
    Key(String),
}

impl Field {
    /// Parses `topic:/pointer` with an optional `|format`.
    pub fn parse(key: &str, spec: &str) -> Result<Field, FieldError> {
        let key_ok = !key.is_empty()
            && key.len() <= 64
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !key.as_bytes()[0].is_ascii_digit();
        if !key_ok {
            return Err(FieldError::Key(key.into()));
        }
        let syntax = || FieldError::Syntax { key: key.into(), spec: spec.into() };
        let (source, format) = match spec.split_once('|') {
            Some((s, f)) => (s, Some(f)),
            None => (spec, None),
        };
        let (topic, pointer) = source.split_once(':').ok_or_else(syntax)?;
        if topic.is_empty() || !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(syntax());
        }
        opensports_proto::topic::validate_topic(topic).map_err(|_| syntax())?;
        let format = match format {
            None => Format::Plain,
            Some("mmss") => Format::MinSec,
            Some("pct") => Format::Percent,
            Some("ordinal") => Format::Ordinal,
            Some(f) => return Err(FieldError::Format { key: key.into(), format: f.into() }),
        };
        Ok(Field { key: key.into(), topic: topic.into(), pointer: pointer.into(), format })
    }
}

/// A game's fields, with their values as text, in the order of the field map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub fields: Vec<(String, String)>,
}

/// A topic's latest value, or its value `delay_ms` ago.
fn latest(fanout: &Fanout, topic: &str, delay_ms: u64) -> Option<crate::fanout::Pub> {
    match delay_ms {
        0 => fanout.latest(topic),
        d => fanout.latest_delayed(topic, d),
    }
}

impl Document {
    /// Reads every field from the latest values of `game`'s topics (as they were `delay_ms`
    /// ago by source time, when it is not 0).
    pub fn read(fanout: &Fanout, game: &str, fields: &[Field], delay_ms: u64) -> Document {
        let mut cache: Vec<(&str, Option<Value>)> = Vec::new();
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            let value = match cache.iter().find(|(t, _)| *t == f.topic) {
                Some((_, v)) => v.as_ref(),
                None => {
                    let latest = latest(fanout, &format!("game/{game}/{}", f.topic), delay_ms)
                        .and_then(|p| serde_json::from_str::<Value>(p.data()).ok());
                    cache.push((&f.topic, latest));
                    cache.last().and_then(|(_, v)| v.as_ref())
                }
            };
            let text =
                value.and_then(|v| v.pointer(&f.pointer)).map(|v| format(v, f.format)).unwrap_or_default();
            out.push((f.key.clone(), text));
        }
        Document { fields: out }
    }

    /// The seqs of the latest values the fields read, in one number: it changes whenever the
    /// document may have (a long-poll looks at this, not at the document, between changes).
    pub fn version(fanout: &Fanout, game: &str, fields: &[Field], delay_ms: u64) -> u64 {
        let mut seen: Vec<&str> = Vec::new();
        let mut v: u64 = 0;
        for f in fields {
            if seen.contains(&f.topic.as_str()) {
                continue;
            }
            seen.push(&f.topic);
            let seq = latest(fanout, &format!("game/{game}/{}", f.topic), delay_ms).map_or(0, |p| p.seq);
            v = v.wrapping_mul(0x0100_0000_01b3).wrapping_add(seq);
        }
        v
    }

    /// A strong validator over the values (whatever the encoding), quoted for `ETag`.
    pub fn etag(&self) -> String {
        // FNV-1a, 64 bits: stable across runs and builds.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, v) in &self.fields {
            for b in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("\"{h:016x}\"")
    }

    /// `{"key":"value",...}` (every value a string, in field order).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            // Keys are checked names; values are escaped by serde_json.
            let _ = write!(s, "\"{k}\":{}", Value::String(v.clone()));
        }
        s.push('}');
        s
    }

    /// `<game><key>value</key>...</game>`, escaped; the shape template tools bind to.
    pub fn to_xml(&self) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<game>\n");
        for (k, v) in &self.fields {
            let _ = writeln!(s, "  <{k}>{}</{k}>", xml_escape(v));
        }
        s.push_str("</game>\n");
        s
    }

    /// A header row of the keys, then one row of the values (RFC 4180 quoting).
    pub fn to_csv(&self) -> String {
        let row = |items: &mut dyn Iterator<Item = &str>| items.map(csv_field).collect::<Vec<_>>().join(",");
        format!(
            "{}\r\n{}\r\n",
            row(&mut self.fields.iter().map(|(k, _)| k.as_str())),
            row(&mut self.fields.iter().map(|(_, v)| v.as_str()))
        )
    }
}

/// The encodings a document is served and dropped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Xml,
    Csv,
}

impl Encoding {
    pub const ALL: [Encoding; 3] = [Encoding::Json, Encoding::Xml, Encoding::Csv];

    /// `game.json` → (`game`, Json).
    pub fn split(file: &str) -> Option<(&str, Encoding)> {
        let (game, ext) = file.rsplit_once('.')?;
        let enc = match ext {
            "json" => Encoding::Json,
            "xml" => Encoding::Xml,
            "csv" => Encoding::Csv,
            _ => return None,
        };
        Some((game, enc))
    }

    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Xml => "xml",
            Encoding::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Xml => "application/xml",
            Encoding::Csv => "text/csv",
        }
    }

    pub fn encode(self, doc: &Document) -> String {
        match self {
            Encoding::Json => doc.to_json(),
            Encoding::Xml => doc.to_xml(),
            Encoding::Csv => doc.to_csv(),
        }
    }
}

/// The field maps of the four sports: the defaults and `[graphics.fields.SPORT]`.
#[derive(Debug)]
pub struct Graphics {
    maps: Vec<(Sport, Vec<Field>)>,
}

impl Graphics {
    /// The maps from `[graphics.fields]` (sport → key → spec), or why a configured field is
    /// refused (an unknown sport, a bad spec).
    pub fn new(
        fields: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    ) -> Result<Graphics, String> {
        for sport in fields.keys() {
            if Sport::parse(sport).is_none() {
                return Err(format!("unknown sport {sport:?} (basketball, football, soccer, f1)"));
            }
        }
        let mut maps = Vec::new();
        for sport in Sport::ALL {
            let configured = match fields.get(sport.as_str()) {
                Some(f) => f.iter().map(|(k, v)| Field::parse(k, v)).collect::<Result<Vec<_>, _>>(),
                None => Ok(Vec::new()),
            };
            maps.push((sport, field_map(sport, &configured.map_err(|e| e.to_string())?)));
        }
        Ok(Graphics { maps })
    }

    pub fn fields(&self, sport: Sport) -> &[Field] {
        self.maps.iter().find(|(s, _)| *s == sport).map_or(&[], |(_, f)| f.as_slice())
    }
}

/// The field map of `sport`: the defaults, then the configured ones (same key: replaced; new
/// key: appended).
pub fn field_map(sport: Sport, configured: &[Field]) -> Vec<Field> {
    let mut map: Vec<Field> = fields::defaults(sport);
    for f in configured {
        match map.iter_mut().find(|m| m.key == f.key) {
            Some(m) => *m = f.clone(),
            None => map.push(f.clone()),
        }
    }
    map
}

fn format(v: &Value, format: Format) -> String {
    match (format, v) {
        (_, Value::Null) => String::new(),
        (Format::MinSec, Value::Number(n)) => n.as_u64().map(min_sec).unwrap_or_default(),
        (Format::Percent, Value::Number(n)) => {
            n.as_f64().map(|p| format!("{}", (p * 100.0).round() as i64)).unwrap_or_default()
        }
        (Format::Ordinal, Value::Number(n)) => n.as_u64().map(ordinal).unwrap_or_default(),
        (_, Value::String(s)) => s.clone(),
        (_, Value::Bool(b)) => b.to_string(),
        (_, other) => other.to_string(),
    }
}

fn min_sec(ms: u64) -> String {
    if ms < 60_000 {
        format!("{}.{}", ms / 1000, (ms % 1000) / 100)
    } else {
        let s = ms / 1000;
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

#[cfg(test)]
mod tests;
