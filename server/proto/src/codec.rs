//! Frame codec: `u32` big-endian length, then one codec byte, then the body.
//!
//! The length counts the codec byte and the body (so it is never 0). The same framing carries
//! events on event streams and control messages on the control stream; datagrams carry the
//! codec byte and body without the length.

use alloc::string::String;
use alloc::vec::Vec;
use serde::Serialize;

use crate::event::{Event, InvalidEvent};
use crate::keys;

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;
/// Default largest frame (codec byte + body).
pub const DEFAULT_MAX_FRAME: u32 = 64 * 1024;

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `0x01`: UTF-8 JSON, for any language.
    Json = 0x01,
    /// `0x02`: rkyv 0.8 archive of [`Event`] (schema v1), validated on receipt.
    Rkyv = 0x02,
}

impl Codec {
    pub fn from_byte(b: u8) -> Result<Codec, FrameError> {
        match b {
            0x01 => Ok(Codec::Json),
            0x02 => Ok(Codec::Rkyv),
            other => Err(FrameError::UnknownCodec(other)),
        }
    }
}

/// A frame that cannot be read; the stream position is lost, so the stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Length 0: no codec byte.
    Empty,
    TooLarge {
        len: u32,
        max: u32,
    },
    UnknownCodec(u8),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::Empty => f.write_str("frame length 0 (a frame holds at least the codec byte)"),
            FrameError::TooLarge { len, max } => write!(f, "frame of {len} bytes is over the limit of {max}"),
            FrameError::UnknownCodec(b) => write!(f, "unknown codec byte 0x{b:02x} (0x01 JSON, 0x02 rkyv)"),
        }
    }
}

/// Reads the length prefix and checks it against `max`. Returns the number of bytes that
/// follow (codec byte + body).
pub fn frame_len(header: [u8; LEN_BYTES], max: u32) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len as usize)
}

/// Appends a frame holding `body` to `out`.
pub fn write_frame(out: &mut Vec<u8>, codec: Codec, body: &[u8]) {
    let len = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(codec as u8);
    out.extend_from_slice(body);
}

/// Appends `value` as a JSON frame to `out`.
pub fn write_json_frame<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, Codec::Json as u8]);
    #[cfg(feature = "std")]
    serde_json::to_writer(&mut *out, value)?;
    // Without std there is no `io::Write`: serialize into a temporary.
    #[cfg(not(feature = "std"))]
    out.extend_from_slice(&serde_json::to_vec(value)?);
    let len = u32::try_from(out.len() - start - LEN_BYTES).unwrap_or(u32::MAX);
    out[start..start + LEN_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends `event` as an rkyv frame to `out`.
pub fn write_rkyv_frame(out: &mut Vec<u8>, event: &Event) -> Result<(), rkyv::rancor::Error> {
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(event)?;
    write_frame(out, Codec::Rkyv, &bytes);
    Ok(())
}

/// Why a well-framed body is not an acceptable event. The stream can go on.
#[derive(Debug)]
pub enum DecodeError {
    /// Not well-formed JSON.
    Json(serde_json::Error),
    /// Well-formed JSON that does not fit the schema (unknown type, missing field, ...).
    Schema(serde_json::Error),
    /// rkyv validation failed.
    Rkyv(String),
    Invalid(InvalidEvent),
}

impl DecodeError {
    /// The documented reject code (see [`crate::error_code::reason`]).
    pub fn code(&self) -> &'static str {
        use crate::error_code::reason;
        match self {
            DecodeError::Json(_) => reason::BAD_JSON,
            DecodeError::Schema(_) => reason::BAD_EVENT,
            DecodeError::Rkyv(_) => reason::BAD_RKYV,
            DecodeError::Invalid(
                InvalidEvent::TooLong(_) | InvalidEvent::Domain(_) | InvalidEvent::UnknownField(_),
            ) => reason::BAD_EVENT,
            DecodeError::Invalid(_) => reason::INVALID_EVENT,
        }
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Json(e) => write!(f, "malformed JSON: {e}"),
            DecodeError::Schema(e) => write!(f, "not a valid event: {e}"),
            DecodeError::Rkyv(e) => write!(f, "invalid rkyv archive: {e}"),
            DecodeError::Invalid(e) => write!(f, "invalid event: {e}"),
        }
    }
}

fn json_error(e: serde_json::Error) -> DecodeError {
    if e.is_data() { DecodeError::Schema(e) } else { DecodeError::Json(e) }
}

/// `bytes` copied into a 16-byte-aligned buffer, as rkyv needs: a frame body or a stored value
/// sits at an arbitrary offset.
pub fn aligned(bytes: &[u8]) -> rkyv::util::AlignedVec<16> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    aligned
}

/// A JSON event's optional W3C `traceparent`: read by ingest's tracing, not part of the event
/// (never stored or forwarded), so the unknown-field check lets it through.
pub const TRACEPARENT: &str = "traceparent";

/// Decodes and validates one event body.
pub fn decode_event(codec: Codec, body: &[u8]) -> Result<Event, DecodeError> {
    let event: Event = match codec {
        Codec::Json => {
            let event: Event = serde_json::from_slice(body).map_err(json_error)?;
            refuse_unknown_fields(&event, body)?;
            event
        }
        Codec::Rkyv => rkyv::from_bytes::<Event, rkyv::rancor::Error>(&aligned(body))
            .map_err(|e| DecodeError::Rkyv(alloc::format!("{e}")))?,
    };
    event.validate().map_err(DecodeError::Invalid)?;
    Ok(event)
}

/// serde cannot deny unknown fields of a flattened, internally tagged event, so the keys of
/// the body are compared with the keys the decoded event has (a typo like `clockms` would
/// otherwise be dropped silently). Keys whose value is `null` stand for absent options. Both
/// key lists are read in place ([`crate::keys`]): this runs on every JSON event.
fn refuse_unknown_fields(event: &Event, body: &[u8]) -> Result<(), DecodeError> {
    let mut json = Vec::with_capacity(body.len() + 64);
    serde_json::to_writer(&mut json, event).map_err(json_error)?;
    // An event has about a dozen keys: a list on the stack, searched linearly.
    let mut known: [&[u8]; 48] = [b""; 48];
    let mut n = 0;
    keys::each(&json, |k| {
        if let Some(slot) = known.get_mut(n) {
            *slot = k.raw;
            n += 1;
        }
        true
    });
    let known = &known[..n];
    let mut unknown = None;
    keys::each(body, |k| {
        if k.null || k.raw == b"v" || k.raw == TRACEPARENT.as_bytes() {
            return true;
        }
        let name = if k.escaped() { unescape(k.raw) } else { None };
        let name = name.as_deref().map_or(k.raw, str::as_bytes);
        let found = known.contains(&name);
        if !found {
            unknown = Some(String::from_utf8_lossy(name).into_owned());
        }
        found
    });
    match unknown {
        Some(k) => Err(DecodeError::Invalid(InvalidEvent::UnknownField(k))),
        None => Ok(()),
    }
}

/// A key written with escapes, decoded (serde_json writes the event's own keys plainly).
fn unescape(raw: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

/// Decodes a JSON control-stream or datagram body into `T`.
pub fn decode_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(body).map_err(json_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, Side, basketball, f1, football, soccer};

    fn samples() -> Vec<Event> {
        let ev = |seq, body| Event {
            v: 1,
            game: "g-1".into(),
            seq,
            ts: 1_700_000_000_000_000,
            clock_ms: Some(600_000),
            body,
        };
        alloc::vec![
            ev(
                1,
                Body::Basketball(basketball::Event::Shot {
                    side: Side::Home,
                    player: "201939".into(),
                    x: 5.0,
                    y: 25.0,
                    points: 3,
                    made: true
                })
            ),
            ev(2, Body::Basketball(basketball::Event::GameEnd)),
            ev(
                3,
                Body::Football(football::Event::Play(football::Play {
                    quarter: 2,
                    possession: Side::Away,
                    down: Some(3),
                    distance: Some(7),
                    yardline_100: Some(42),
                    play_type: football::PlayType::Pass,
                    yards: 12,
                    result: football::PlayResult::FirstDown,
                    scoring: None,
                    desc: None,
                }))
            ),
            ev(
                4,
                Body::Soccer(soccer::Event::Shot {
                    side: Side::Away,
                    player: "Salah".into(),
                    x: 94.0,
                    y: 30.0,
                    body_part: soccer::BodyPart::LeftFoot,
                    outcome: soccer::ShotOutcome::Goal,
                    provider_xg: Some(0.31)
                })
            ),
            ev(
                5,
                Body::F1(f1::Event::PitOut { driver: "HAM".into(), lap: 20, compound: f1::Compound::Hard })
            ),
        ]
    }

    #[test]
    fn json_and_rkyv_round_trip_through_frames() {
        for event in samples() {
            let mut buf = Vec::new();
            write_json_frame(&mut buf, &event).unwrap();
            write_rkyv_frame(&mut buf, &event).unwrap();
            let mut rest = &buf[..];
            for _ in 0..2 {
                let len = frame_len(rest[..4].try_into().unwrap(), DEFAULT_MAX_FRAME).unwrap();
                let codec = Codec::from_byte(rest[4]).unwrap();
                let back = decode_event(codec, &rest[5..4 + len]).unwrap();
                assert_eq!(back, event);
                rest = &rest[4 + len..];
            }
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn json_is_flat_with_sport_and_type() {
        let v: serde_json::Value = serde_json::to_value(&samples()[0]).unwrap();
        assert_eq!(v["sport"], "basketball");
        assert_eq!(v["type"], "shot");
        assert_eq!(v["points"], 3);
        assert_eq!(v["game"], "g-1");
    }

    #[test]
    fn bad_bodies_get_distinct_codes() {
        assert_eq!(decode_event(Codec::Json, b"{not json").unwrap_err().code(), "bad_json");
        let unknown = br#"{"game":"g","seq":1,"ts":0,"sport":"basketball","type":"slam_dunk_contest"}"#;
        assert_eq!(decode_event(Codec::Json, unknown).unwrap_err().code(), "bad_event");
        let bad_id = br#"{"game":"a/b","seq":1,"ts":0,"sport":"basketball","type":"game_end"}"#;
        assert_eq!(decode_event(Codec::Json, bad_id).unwrap_err().code(), "invalid_event");
        let v2 = br#"{"v":2,"game":"g","seq":1,"ts":0,"sport":"basketball","type":"game_end"}"#;
        assert_eq!(decode_event(Codec::Json, v2).unwrap_err().code(), "invalid_event");
        assert_eq!(decode_event(Codec::Rkyv, &[1, 2, 3]).unwrap_err().code(), "bad_rkyv");
    }

    #[test]
    fn frame_header_limits() {
        assert_eq!(frame_len(0u32.to_be_bytes(), 10), Err(FrameError::Empty));
        assert_eq!(frame_len(11u32.to_be_bytes(), 10), Err(FrameError::TooLarge { len: 11, max: 10 }));
        assert_eq!(Codec::from_byte(7), Err(FrameError::UnknownCodec(7)));
    }

    #[test]
    fn unknown_fields_and_out_of_domain_values_are_bad_events_naming_the_field() {
        let base = r#"{"game":"g","seq":1,"ts":1,"sport":"basketball","type":"shot","side":"home","player":"p","x":10.0,"y":20.0,"made":true"#;
        let ok = alloc::format!(r#"{base},"points":2,"clock_ms":5}}"#);
        assert!(decode_event(Codec::Json, ok.as_bytes()).is_ok());
        let with_null = alloc::format!(r#"{base},"points":2,"clock_ms":null}}"#);
        assert!(decode_event(Codec::Json, with_null.as_bytes()).is_ok(), "null stands for absent");
        let traced = alloc::format!(
            r#"{base},"points":2,"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}"#
        );
        assert!(
            decode_event(Codec::Json, traced.as_bytes()).is_ok(),
            "a trace context is not an unknown field"
        );
        let escaped = alloc::format!(r#"{base},"points":2,"cl\u006fck_ms":5}}"#);
        assert!(
            decode_event(Codec::Json, escaped.as_bytes()).is_ok(),
            "a key written with escapes is its name"
        );
        for (body, field) in [
            (alloc::format!(r#"{base},"points":2,"clockms":5}}"#), "clockms"),
            (alloc::format!(r#"{base},"points":2,"cl\u006fckms":5}}"#), "clockms"),
            (alloc::format!(r#"{base},"points":4}}"#), "points"),
            (alloc::format!(r#"{base},"points":1}}"#), "points"),
        ] {
            let e = decode_event(Codec::Json, body.as_bytes()).unwrap_err();
            assert_eq!(e.code(), crate::error_code::reason::BAD_EVENT, "{body}");
            assert!(alloc::format!("{e}").contains(field), "{e}");
        }
        // rkyv bodies get the same domain check.
        let mut ev: Event = serde_json::from_str(&ok).unwrap();
        if let crate::Body::Basketball(crate::basketball::Event::Shot { x, .. }) = &mut ev.body {
            *x = 200.0;
        }
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&ev).unwrap();
        assert_eq!(
            decode_event(Codec::Rkyv, &bytes).unwrap_err().code(),
            crate::error_code::reason::BAD_EVENT
        );
    }
}
