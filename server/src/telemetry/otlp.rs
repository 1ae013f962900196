//! OTLP trace export requests (`ExportTraceServiceRequest`, opentelemetry-proto v1), encoded
//! by hand: protobuf for `http/protobuf`, the spec's JSON mapping for `http/json` (ids as
//! hex, enums as numbers, 64-bit integers as strings). Field numbers are those of
//! `opentelemetry/proto/trace/v1/trace.proto` and `common/v1/common.proto`.

use super::{Span, Value, hex};

/// The instrumentation scope's name.
const SCOPE: &str = "opensports-edge";

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A nested message: written into `scratch`, then copied in with its length.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes(out, field, &inner);
}

/// `KeyValue { key = 1; AnyValue value = 2 }`, `AnyValue { string 1, bool 2, int 3 }`.
fn key_value(out: &mut Vec<u8>, field: u32, k: &str, v: &Value) {
    message(out, field, |kv| {
        bytes(kv, 1, k.as_bytes());
        message(kv, 2, |any| match v {
            Value::Str(s) => bytes(any, 1, s.as_bytes()),
            Value::Bool(b) => {
                key(any, 2, VARINT);
                varint(any, u64::from(*b));
            }
            Value::Int(i) => {
                key(any, 3, VARINT);
                varint(any, *i as u64);
            }
        });
    });
}

/// `ExportTraceServiceRequest` in protobuf: one resource (`service.name`), one scope.
pub fn protobuf(service: &str, spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spans.len() * 128 + 64);
    message(&mut out, 1, |rs| {
        message(rs, 1, |res| key_value(res, 1, "service.name", &Value::Str(service.into())));
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes(scope, 1, SCOPE.as_bytes());
                bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for s in spans {
                message(ss, 2, |sp| span(sp, s));
            }
        });
    });
    out
}

fn span(out: &mut Vec<u8>, s: &Span) {
    bytes(out, 1, &s.trace_id);
    bytes(out, 2, &s.span_id);
    if let Some(p) = &s.parent {
        bytes(out, 4, p);
    }
    bytes(out, 5, s.name.as_bytes());
    key(out, 6, VARINT);
    varint(out, s.kind as u64);
    key(out, 7, FIXED64);
    out.extend_from_slice(&s.start_ns.to_le_bytes());
    key(out, 8, FIXED64);
    out.extend_from_slice(&s.end_ns.to_le_bytes());
    for (k, v) in &s.attrs {
        key_value(out, 9, k, v);
    }
    if let Some(message_text) = &s.error {
        // Status { message = 2; code = 3 (STATUS_CODE_ERROR = 2) }.
        message(out, 15, |st| {
            bytes(st, 2, message_text.as_bytes());
            key(st, 3, VARINT);
            varint(st, 2);
        });
    }
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) => serde_json::json!({ "stringValue": s }),
        Value::Bool(b) => serde_json::json!({ "boolValue": b }),
        Value::Int(i) => serde_json::json!({ "intValue": i.to_string() }),
    }
}

/// `ExportTraceServiceRequest` in OTLP's JSON mapping.
pub fn json(service: &str, spans: &[Span]) -> Vec<u8> {
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            let mut o = serde_json::json!({
                "traceId": hex(&s.trace_id),
                "spanId": hex(&s.span_id),
                "name": s.name,
                "kind": s.kind as u8,
                "startTimeUnixNano": s.start_ns.to_string(),
                "endTimeUnixNano": s.end_ns.to_string(),
                "attributes": s.attrs.iter()
                    .map(|(k, v)| serde_json::json!({ "key": k, "value": json_value(v) }))
                    .collect::<Vec<_>>(),
            });
            if let Some(p) = &s.parent {
                o["parentSpanId"] = hex(p).into();
            }
            if let Some(m) = &s.error {
                o["status"] = serde_json::json!({ "code": 2, "message": m });
            }
            o
        })
        .collect();
    let req = serde_json::json!({
        "resourceSpans": [{
            "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": service } }] },
            "scopeSpans": [{
                "scope": { "name": SCOPE, "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    });
    serde_json::to_vec(&req).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::*;

    #[test]
    fn varints_are_protobuf_varints() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        out.clear();
        varint(&mut out, u64::MAX);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn a_span_encodes_its_fields() {
        let s = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: Some([3; 8]),
            name: "event".into(),
            kind: Kind::Consumer,
            start_ns: 5,
            end_ns: 9,
            attrs: vec![("seq", Value::Int(7))],
            error: Some("bad".into()),
        };
        let mut out = Vec::new();
        span(&mut out, &s);
        // trace_id: field 1, LEN 16.
        assert_eq!(&out[..2], &[0x0A, 16]);
        // name "event" follows the ids.
        assert!(out.windows(7).any(|w| w == [0x2A, 5, b'e', b'v', b'e', b'n', b't']));
        // start: field 7 fixed64 (0x39) little-endian 5.
        assert!(out.windows(9).any(|w| w == [0x39, 5, 0, 0, 0, 0, 0, 0, 0]));
        let j: serde_json::Value = serde_json::from_slice(&json("svc", &[s])).unwrap();
        let sp = &j["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(sp["traceId"], "01010101010101010101010101010101");
        assert_eq!(sp["parentSpanId"], "0303030303030303");
        assert_eq!(sp["startTimeUnixNano"], "5");
        assert_eq!(sp["status"]["code"], 2);
        assert_eq!(sp["attributes"][0]["value"]["intValue"], "7");
    }
}
