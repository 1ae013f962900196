//! JSON Schema (draft 2020-12) of every wire type, generated from the Rust types themselves
//! (`schemars`), so the schema cannot drift from what the server parses and sends. Served at
//! `GET /v1/schema` (with the server's request bodies added, `server/src/api/schema.rs`); a copy
//! is committed at `clients/schema/opensports.schema.json` for the JS and Python clients (a
//! server test keeps it current).
//!
//! Entry points (`$defs`): `Event` (a publisher's event, every sport), `TrackingSample`
//! (a datagram), `Control` (QUIC control stream, both ways), `ClientOp` and `ServerMsg`
//! (WebSocket and SSE), `PluginOutput` (the publication a plugin's emit becomes).

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

/// The document as served and committed: pretty JSON and a final newline.
/// Keys are sorted, whatever order serde_json keeps in this build (`preserve_order`).
pub fn text() -> String {
    let mut doc = document();
    doc.sort_all_objects();
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// The whole schema document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let roots = [
        ("Event", generator.subschema_for::<crate::Event>()),
        ("TrackingSample", generator.subschema_for::<crate::tracking::TrackingSample>()),
        ("Control", generator.subschema_for::<crate::control::Control>()),
        ("ClientOp", generator.subschema_for::<crate::ws::ClientOp>()),
        ("ServerMsg", generator.subschema_for::<crate::ws::ServerMsg>()),
    ];
    let mut defs = generator.take_definitions(true);
    // Entry points that are not named types of their own.
    for (name, schema) in roots {
        defs.entry(name).or_insert_with(|| schema.to_value());
    }
    defs.insert("PluginOutput".into(), plugin_output());
    // Events: an unknown field is refused (PROTOCOL.md §1.3); the body's fields and the
    // envelope's are spread over one flat object, so the rule is `unevaluatedProperties`.
    if let Some(Value::Object(event)) = defs.get_mut("Event") {
        event.insert("unevaluatedProperties".into(), Value::Bool(false));
        // Read by ingest, not part of the event: the publisher's W3C trace context.
        if let Some(Value::Object(props)) = event.get_mut("properties") {
            props.insert(
                crate::codec::TRACEPARENT.into(),
                json!({
                    "type": "string",
                    "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                    "description": "W3C trace context of the publisher's span (JSON codec only): the server's spans for this event continue its trace, and its sampled flag decides whether they are recorded. Not stored with the event.",
                }),
            );
        }
    }
    let mut defs = Value::Object(defs);
    split_ref_siblings(&mut defs);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://opensports.invalid/schema/v1.json",
        "title": "OpenSports Edge wire types, schema v1",
        "description": "Generated from the server's Rust types (opensports-proto). Events (QUIC, JSON codec) refuse unknown fields; server messages may gain fields in a minor version, so clients ignore fields they do not know.",
        "$defs": defs,
    })
}

/// `{"$ref": X, "properties": ...}` (how schemars tags an enum variant that wraps a struct)
/// becomes `{"allOf": [{"$ref": X}, {"properties": ...}]}`: the same in draft 2020-12, and
/// what tools that ignore a `$ref`'s siblings (draft-07 habits, some code generators) read
/// correctly.
fn split_ref_siblings(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                split_ref_siblings(child);
            }
            let has_siblings = map.len() > 1 && !map.keys().all(|k| k == "$ref" || k == "description");
            if has_siblings && let Some(r) = map.remove("$ref") {
                let rest = std::mem::take(map);
                map.insert("allOf".into(), json!([{ "$ref": r }, Value::Object(rest)]));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(split_ref_siblings),
        _ => {}
    }
}

/// A plugin's output as a subscriber sees it: a `msg` on `game/{id}/{plugin}/{name}` whose
/// `data` is the JSON object the plugin emitted (its fields are the plugin's own, documented
/// in its crate), and `ts` the source time of the event that produced it.
fn plugin_output() -> Value {
    json!({
        "description": "A plugin's emit as published: op msg (or snapshot) on game/{id}/{plugin}/{name}; data is the JSON object the plugin emitted; ts the source time of the event that produced it.",
        "type": "object",
        "required": ["op", "topic", "seq", "ts", "data"],
        "properties": {
            "op": {"enum": ["msg", "snapshot"]},
            "topic": {"type": "string", "pattern": "^game/[A-Za-z0-9_.-]{1,64}/[a-z0-9-]+/.+$"},
            "seq": {"type": "integer", "minimum": 1},
            "ts": {"type": "integer"},
            "data": {"type": "object"}
        }
    })
}
