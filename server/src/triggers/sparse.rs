//! What the rules read of a publication, and only that: a publication's JSON is read into a
//! [`Value`] that keeps the members on the way to the JSON pointers the rule set reads from
//! its topic (sources and text placeholders) and skips the rest without building it. A
//! basketball `state` is a few kilobytes of box score read on every event, of which the
//! default rules need four members.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Most pointers one topic's read keeps apart (they are a bit mask); more read everything.
const MAX_PATHS: usize = 64;

/// A JSON pointer's reference tokens (`/a~1b/c` is `["a/b", "c"]`); none for the whole
/// document (`""`).
pub fn tokens(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect()
}

/// The value at `tokens` (as [`Value::pointer`] finds it, without parsing the pointer again).
pub fn get<'v>(v: &'v Value, tokens: &[String]) -> Option<&'v Value> {
    tokens.iter().try_fold(v, |v, t| match v {
        Value::Object(m) => m.get(t),
        Value::Array(a) => index(t).and_then(|i| a.get(i)),
        _ => None,
    })
}

/// An array index as a JSON pointer token names one (as [`Value::pointer`] reads it: digits,
/// no sign, no leading zero).
fn index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
        return None;
    }
    token.parse().ok()
}

/// `data` as a [`Value`] holding at least every pointer in `paths` (each as [`tokens`]); the
/// whole document when one of them is the whole document or there are too many.
pub fn read(data: &[u8], paths: &[&[String]]) -> serde_json::Result<Value> {
    if paths.is_empty() || paths.len() > MAX_PATHS || paths.iter().any(|p| p.is_empty()) {
        return serde_json::from_slice(data);
    }
    let alive = if paths.len() == MAX_PATHS { u64::MAX } else { (1u64 << paths.len()) - 1 };
    let mut de = serde_json::Deserializer::from_slice(data);
    let v = Sparse { paths, depth: 0, alive }.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// The value at `depth` on the way down the paths whose bits are in `alive` (every one of
/// them has more than `depth` tokens and matched the keys so far).
#[derive(Clone, Copy)]
struct Sparse<'a> {
    paths: &'a [&'a [String]],
    depth: usize,
    alive: u64,
}

impl<'de> DeserializeSeed<'de> for Sparse<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// What to do with a member (or element) at this depth.
enum Step<'a> {
    /// A pointer ends here: keep it whole.
    Whole,
    /// Pointers go on through it.
    Into(Sparse<'a>),
    /// No pointer reads it.
    Skip,
}

impl<'a> Sparse<'a> {
    fn step(&self, is_token: impl Fn(&str) -> bool) -> Step<'a> {
        let (mut next, mut ends) = (0u64, false);
        for (i, p) in self.paths.iter().enumerate() {
            if self.alive & (1 << i) != 0 && is_token(&p[self.depth]) {
                next |= 1 << i;
                ends |= p.len() == self.depth + 1;
            }
        }
        match (ends, next) {
            (true, _) => Step::Whole,
            (false, 0) => Step::Skip,
            (false, alive) => Step::Into(Sparse { paths: self.paths, depth: self.depth + 1, alive }),
        }
    }
}

/// An object's key, borrowed from the input unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for Sparse<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.step(|token| token == key) {
                Step::Whole => drop(out.insert(key.into_owned(), map.next_value::<Value>()?)),
                Step::Into(seed) => drop(out.insert(key.into_owned(), map.next_value_seed(seed)?)),
                Step::Skip => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(Value::Object(out))
    }

    /// An array keeps its elements' places: those no pointer reads are null, and it ends
    /// after the last one read.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let (mut out, mut kept) = (Vec::new(), 0);
        let mut i = 0usize;
        loop {
            let item = match self.step(|token| index(token) == Some(i)) {
                Step::Whole => seq.next_element::<Value>()?,
                Step::Into(seed) => seq.next_element_seed(seed)?,
                Step::Skip => seq.next_element::<IgnoredAny>()?.map(|_| Value::Null),
            };
            let Some(item) = item else { break };
            if !item.is_null() {
                kept = i + 1;
            }
            out.push(item);
            i += 1;
        }
        out.truncate(kept);
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(data: &str, pointers: &[&str]) -> Value {
        let toks: Vec<Vec<String>> = pointers.iter().map(|p| tokens(p)).collect();
        let paths: Vec<&[String]> = toks.iter().map(Vec::as_slice).collect();
        read(data.as_bytes(), &paths).expect("valid JSON")
    }

    #[test]
    fn every_pointer_reads_as_from_the_whole_document_and_nothing_else_is_kept() {
        let doc = r#"{"home":"BOS","score":{"home":101,"away":99.5},"players":[{"pts":30}],
            "box":{"a/b":{"x~y":[1,2]},"big":{"deep":[1,2,3]}},"clock":null,"final":true,
            "cars":[{"driver":"HAM","gap":0},{"driver":"LEC"},{"driver":"VER","tyre":"M"},{"driver":"NOR"}]}"#;
        let full: Value = serde_json::from_str(doc).expect("valid JSON");
        let pointers = [
            "/home",
            "/score/home",
            "/score/away",
            "/players/0/pts",
            "/cars/2/driver",
            "/box/a~1b/x~0y/1",
            "/clock",
            "/final",
            "/nope",
            "/cars/9/driver",
            "/cars/02/driver",
            "/cars/+2/driver",
        ];
        let kept = keep(doc, &pointers);
        for p in pointers {
            assert_eq!(kept.pointer(p), full.pointer(p), "{p}");
            assert_eq!(get(&full, &tokens(p)), full.pointer(p), "{p}");
        }
        assert!(kept.pointer("/box/big").is_none(), "what no pointer reads is skipped: {kept}");
        assert_eq!(
            kept["cars"],
            serde_json::json!([null, null, {"driver": "VER"}]),
            "places kept, the rest not"
        );
        assert_eq!(keep(doc, &[""]), full, "the whole document when a pointer is the whole of it");
    }

    #[test]
    fn malformed_json_is_an_error_as_it_is_for_a_whole_read() {
        for bad in [r#"{"home":"#, r#"{"home":1} x"#, "[1,", r#"{"score":{"home":}}"#] {
            let toks = [tokens("/score/home")];
            let paths: Vec<&[String]> = toks.iter().map(Vec::as_slice).collect();
            assert!(read(bad.as_bytes(), &paths).is_err(), "{bad}");
        }
    }
}
