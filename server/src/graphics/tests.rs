use super::*;

fn doc(fields: &[(&str, &str)]) -> Document {
    Document { fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
}

#[test]
fn field_specs_parse_or_say_why() {
    let f = Field::parse("clock", "state:/clock_ms|mmss").unwrap();
    assert_eq!((f.topic.as_str(), f.pointer.as_str(), f.format), ("state", "/clock_ms", Format::MinSec));
    let f = Field::parse("home_pts", "basketball-boxscore/team/home:/pts").unwrap();
    assert_eq!(f.topic, "basketball-boxscore/team/home");
    assert!(matches!(Field::parse("x", "state/clock_ms"), Err(FieldError::Syntax { .. })));
    assert!(matches!(Field::parse("x", "state:clock_ms"), Err(FieldError::Syntax { .. })));
    assert!(matches!(Field::parse("x", "state:/a|hex"), Err(FieldError::Format { .. })));
    assert!(matches!(Field::parse("1x", "state:/a"), Err(FieldError::Key(_))));
    assert!(matches!(Field::parse("a-b", "state:/a"), Err(FieldError::Key(_))));
}

#[test]
fn formats() {
    let f = |v: serde_json::Value, fmt| format(&v, fmt);
    assert_eq!(f(serde_json::json!(431_000), Format::MinSec), "7:11");
    assert_eq!(f(serde_json::json!(9_400), Format::MinSec), "9.4");
    assert_eq!(f(serde_json::json!(0.6349), Format::Percent), "63");
    for (n, s) in [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (21, "21st")] {
        assert_eq!(f(serde_json::json!(n), Format::Ordinal), s);
    }
    assert_eq!(f(serde_json::Value::Null, Format::Plain), "");
    assert_eq!(f(serde_json::json!("BKN"), Format::Plain), "BKN");
}

#[test]
fn encodings_escape_and_quote() {
    let d = doc(&[("home", "A&B <C>"), ("last_play", "pass, \"deep\"\nleft")]);
    assert_eq!(d.to_json(), r#"{"home":"A&B <C>","last_play":"pass, \"deep\"\nleft"}"#);
    assert!(d.to_xml().contains("<home>A&amp;B &lt;C&gt;</home>"), "{}", d.to_xml());
    assert_eq!(d.to_csv(), "home,last_play\r\nA&B <C>,\"pass, \"\"deep\"\"\nleft\"\r\n");
    assert_ne!(d.etag(), doc(&[("home", "A&B <C>"), ("last_play", "")]).etag());
    assert_eq!(d.etag(), d.clone().etag());
}

#[test]
fn configured_fields_replace_or_extend_the_defaults() {
    let mut fields_cfg = std::collections::BTreeMap::new();
    fields_cfg.insert(
        "basketball".into(),
        [
            ("clock".to_string(), "state:/clock_ms".to_string()),
            ("home_pts".into(), "basketball-boxscore/team/home:/pts".into()),
        ]
        .into(),
    );
    let g = Graphics::new(&fields_cfg).unwrap();
    let f = g.fields(Sport::Basketball);
    let clock = f.iter().position(|f| f.key == "clock").unwrap();
    assert_eq!(f[clock].format, Format::Plain, "replaced in place");
    assert_eq!(f.last().unwrap().key, "home_pts", "appended");
    assert_eq!(g.fields(Sport::Soccer), fields::defaults(Sport::Soccer).as_slice());
    fields_cfg.insert("curling".into(), Default::default());
    assert!(Graphics::new(&fields_cfg).unwrap_err().contains("curling"));
    for sport in Sport::ALL {
        assert!(fields::defaults(sport).len() >= 10, "{sport:?}");
    }
}
