//! The top-level keys of a JSON object, read in place: no allocation, no values built. The
//! JSON codec uses it to refuse keys an event does not have (see `codec::decode_event`), on
//! every event a JSON publisher sends, so it must cost far less than the decode itself.
//!
//! The input has already been parsed successfully by serde_json (it is valid JSON); on
//! anything else the walk simply stops early.

/// One top-level key: its raw text between the quotes (escapes not decoded) and whether its
/// value is `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key<'a> {
    pub raw: &'a [u8],
    pub null: bool,
}

impl Key<'_> {
    /// Whether the key is written with escapes (`"cl\u006fck_ms"`); then its raw text is not
    /// its name.
    pub fn escaped(&self) -> bool {
        self.raw.contains(&b'\\')
    }
}

/// Calls `f` with each top-level key of the JSON object `json`, in order; stops when `f`
/// returns false.
pub fn each<'a>(json: &'a [u8], mut f: impl FnMut(Key<'a>) -> bool) {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return;
    }
    i += 1;
    loop {
        i = skip_ws(json, i);
        if json.get(i) != Some(&b'"') {
            return;
        }
        let Some(end) = string_end(json, i) else { return };
        let raw = &json[i + 1..end - 1];
        i = skip_ws(json, end);
        if json.get(i) != Some(&b':') {
            return;
        }
        i = skip_ws(json, i + 1);
        let null = json.get(i..i + 4) == Some(b"null");
        if !f(Key { raw, null }) {
            return;
        }
        let Some(next) = value_end(json, i) else { return };
        i = skip_ws(json, next);
        match json.get(i) {
            Some(b',') => i += 1,
            _ => return,
        }
    }
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `json[start]` is an opening quote: the index just past the closing one.
fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match json.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The index just past the value starting at `start`.
fn value_end(json: &[u8], start: usize) -> Option<usize> {
    match json.get(start)? {
        b'"' => string_end(json, start),
        b'{' | b'[' => {
            let (mut depth, mut i) = (0usize, start);
            loop {
                match json.get(i)? {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        // A number, `true`, `false` or `null`.
        _ => {
            let mut i = start;
            while json.get(i).is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn keys(json: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        each(json.as_bytes(), |k| {
            out.push((String::from_utf8_lossy(k.raw).into_owned(), k.null));
            true
        });
        out
    }

    #[test]
    fn top_level_keys_only_with_null_flags() {
        let json = r#" { "a" : 1, "b":{"x":[1,{"y":"}"}],"z":null}, "c":"s,\"}", "d" : null ,"e":[],"f":-1.5e3,"g":true}"#;
        let got = keys(json);
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e", "f", "g"]);
        let nulls: Vec<&str> = got.iter().filter(|(_, n)| *n).map(|(k, _)| k.as_str()).collect();
        assert_eq!(nulls, ["d"]);
    }

    #[test]
    fn escaped_keys_are_flagged_and_odd_input_stops_the_walk() {
        let mut escaped = Vec::new();
        each(br#"{"cl\u006fck_ms":1,"k\"":2}"#, |k| {
            escaped.push(k.escaped());
            true
        });
        assert_eq!(escaped, [true, true]);
        assert!(keys("[1,2]").is_empty());
        assert!(keys("").is_empty());
        assert_eq!(keys(r#"{"a":1"#), [("a".into(), false)]);
        assert_eq!(keys("{}"), Vec::<(String, bool)>::new());
    }
}
