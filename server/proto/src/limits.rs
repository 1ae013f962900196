//! Length caps on an event's strings. A name that reaches a topic, a game state and its history
//! ring costs memory on every publication, so names and ids are capped at [`MAX_NAME`] bytes
//! and free text at [`MAX_TEXT`].
//!
//! [`check_strings`] walks any `Serialize` value with a serializer that writes nothing and
//! only looks at strings and the struct field they belong to: every field of every event type,
//! present and future, is covered without a list to keep in step.

use alloc::string::{String, ToString};
use core::fmt;

use serde::ser::{self, Serialize};

/// Longest name or id (team, player, driver, foul kind, ...), bytes.
pub const MAX_NAME: usize = 64;
/// Longest free-text field, bytes.
pub const MAX_TEXT: usize = 256;
/// Most distinct players one game's events may name (both teams together): an NFL game
/// dresses about 2 × 48 of a 2 × 53 roster; 200 leaves room for any feed's ids.
pub const MAX_PLAYERS_PER_GAME: usize = 200;
/// Most distinct cars (drivers) one F1 session may name (grids are 20 to 26).
pub const MAX_CARS: usize = 40;

/// The most distinct people (players, or cars in F1) a game of `sport` may name.
pub fn max_people(sport: crate::Sport) -> usize {
    match sport {
        crate::Sport::F1 => MAX_CARS,
        _ => MAX_PLAYERS_PER_GAME,
    }
}

/// The fields that hold free text (play descriptions, race control messages, session names).
pub const FREE_TEXT_FIELDS: [&str; 3] = ["desc", "message", "name"];

/// A string over its cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    pub field: String,
    pub len: usize,
    pub max: usize,
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}` is {} bytes (at most {})", self.field, self.len, self.max)
    }
}

/// The cap of a field.
pub fn max_len(field: &str) -> usize {
    if FREE_TEXT_FIELDS.contains(&field) { MAX_TEXT } else { MAX_NAME }
}

/// `s` cut to at most `max` bytes at a character boundary (for adapters mapping provider text
/// into a capped field).
pub fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Checks every string in `value` against its field's cap.
pub fn check_strings<T: Serialize + ?Sized>(value: &T) -> Result<(), TooLong> {
    match value.serialize(Check { field: "" }) {
        Ok(()) => Ok(()),
        Err(Stop::TooLong(t)) => Err(t),
        // Only a type whose Serialize impl reports its own error gets here; events have none.
        Err(Stop::Custom) => Ok(()),
    }
}

#[derive(Debug)]
enum Stop {
    TooLong(TooLong),
    Custom,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::TooLong(t) => t.fmt(f),
            Stop::Custom => f.write_str("serialize error"),
        }
    }
}

impl ser::StdError for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Stop::Custom
    }
}

/// The walking serializer: `field` is the struct field (or flattened map key) being serialized.
#[derive(Clone, Copy)]
struct Check<'a> {
    field: &'a str,
}

/// A map being walked (flattened bodies serialize as maps): the current key.
struct MapCheck {
    key: String,
}

/// Captures a map key that is a string.
struct Key<'k>(&'k mut String);

macro_rules! ignore {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(fn $name(self, _v: $ty) -> Result<(), Stop> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for Check<'a> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Check<'a>;
    type SerializeTuple = Check<'a>;
    type SerializeTupleStruct = Check<'a>;
    type SerializeTupleVariant = Check<'a>;
    type SerializeMap = MapCheck;
    type SerializeStruct = Check<'a>;
    type SerializeStructVariant = Check<'a>;

    ignore!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_bytes: &[u8], serialize_unit_struct: &'static str,
    );

    fn serialize_str(self, v: &str) -> Result<(), Stop> {
        let max = max_len(self.field);
        if v.len() > max {
            return Err(Stop::TooLong(TooLong { field: self.field.to_string(), len: v.len(), max }));
        }
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Check<'a>, Stop> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Check<'a>, Stop> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Check<'a>, Stop> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Check<'a>, Stop> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapCheck, Stop> {
        Ok(MapCheck { key: String::new() })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Check<'a>, Stop> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Check<'a>, Stop> {
        Ok(self)
    }
}

impl ser::Serializer for Key<'_> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = ser::Impossible<(), Stop>;
    type SerializeTuple = ser::Impossible<(), Stop>;
    type SerializeTupleStruct = ser::Impossible<(), Stop>;
    type SerializeTupleVariant = ser::Impossible<(), Stop>;
    type SerializeMap = ser::Impossible<(), Stop>;
    type SerializeStruct = ser::Impossible<(), Stop>;
    type SerializeStructVariant = ser::Impossible<(), Stop>;

    ignore!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_bytes: &[u8], serialize_unit_struct: &'static str,
    );

    fn serialize_str(self, v: &str) -> Result<(), Stop> {
        self.0.push_str(v.get(..MAX_NAME).unwrap_or(v));
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Stop> {
        self.0.push_str(v);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<(), Stop> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Stop> {
        Err(Stop::Custom)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Stop> {
        Err(Stop::Custom)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Stop> {
        Err(Stop::Custom)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Stop> {
        Err(Stop::Custom)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Stop> {
        Err(Stop::Custom)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Stop> {
        Err(Stop::Custom)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Stop> {
        Err(Stop::Custom)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Stop> {
        Err(Stop::Custom)
    }
}

macro_rules! elements {
    ($($tr:ident :: $method:ident),*) => {
        $(impl ser::$tr for Check<'_> {
            type Ok = ();
            type Error = Stop;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
                value.serialize(*self)
            }
            fn end(self) -> Result<(), Stop> {
                Ok(())
            }
        })*
    };
}
elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for MapCheck {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        self.key.clear();
        key.serialize(Key(&mut self.key))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        value.serialize(Check { field: &self.key })
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

macro_rules! fields {
    ($($tr:ident),*) => {
        $(impl ser::$tr for Check<'_> {
            type Ok = ();
            type Error = Stop;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Stop> {
                value.serialize(Check { field: key })
            }
            fn end(self) -> Result<(), Stop> {
                Ok(())
            }
        })*
    };
}
fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        assert_eq!(clip("aé", 2), "a", "é is two bytes");
    }

    #[test]
    fn names_and_free_text_have_their_own_caps() {
        let long = |n: usize| "x".repeat(n);
        let driver = |d: &str| {
            event(&alloc::format!(
                r#"{{"game":"g","seq":1,"ts":1,"sport":"f1","type":"lap","driver":"{d}","lap":1,"position":1}}"#
            ))
        };
        assert_eq!(check_strings(&driver(&long(64))), Ok(()));
        assert_eq!(
            check_strings(&driver(&long(65))),
            Err(TooLong { field: "driver".into(), len: 65, max: 64 })
        );
        let message = |m: &str| {
            event(&alloc::format!(
                r#"{{"game":"g","seq":1,"ts":1,"sport":"f1","type":"race_control","flag":"yellow","message":"{m}"}}"#
            ))
        };
        assert_eq!(check_strings(&message(&long(256))), Ok(()));
        assert_eq!(check_strings(&message(&long(257))).unwrap_err().field, "message");
        // Optional fields and nested structs are walked too.
        let desc: String = long(300);
        let play = event(&alloc::format!(
            r#"{{"game":"g","seq":1,"ts":1,"sport":"football","type":"play","quarter":1,"possession":"home","play_type":"run","yards":3,"result":"gain","desc":"{desc}"}}"#
        ));
        assert_eq!(check_strings(&play).unwrap_err().field, "desc");
        let team = event(&alloc::format!(
            r#"{{"game":"g","seq":1,"ts":1,"sport":"basketball","type":"game_start","home":"{}","away":"B"}}"#,
            long(65)
        ));
        assert_eq!(check_strings(&team).unwrap_err().field, "home");
    }
}
