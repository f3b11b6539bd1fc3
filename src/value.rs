//! Dynamic values: what travels by value, with references to objects embedded anywhere.
//!
//! # Usage
//!
//! Any `serde` type converts to a [`Value`] with [`to_value`] and back with [`from_value`]
//! (or [`Value::decode`]). Structs become maps with string keys in field order, unit enum
//! variants become strings, other variants a one-entry map `{variant: payload}`, `None` and
//! `()` become [`Value::Nil`], tuples become lists.
//!
//! Objects travel **by reference**: a [`Proxy`] (or an [`Obj`](crate::Obj)) inside a value
//! becomes [`Value::Ref`], wherever it sits (a struct field, a list element). Only netref's own
//! serializer can carry a reference; serializing a proxy with another format (JSON, say)
//! fails with a clear error instead of producing a meaningless number.
//!
//! # Example
//!
//! ```
//! use netref::{to_value, from_value, Value};
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Job { id: u32, name: String, tags: Vec<String> }
//!
//! let job = Job { id: 7, name: "scan".into(), tags: vec!["fast".into()] };
//! let v = to_value(&job).unwrap();
//! assert_eq!(v.get("id"), Some(&Value::Int(7)));
//! let back: Job = from_value(v).unwrap();
//! assert_eq!(back, job);
//! ```

mod de;
mod ser;

use std::any::Any;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::proxy::Proxy;

pub(crate) use de::ValueDeserializer;
pub(crate) use ser::ValueSerializer;

/// The serde newtype-struct name that marks a reference. Only netref's own serializer and
/// deserializer give it meaning.
pub(crate) const REF_TOKEN: &str = "$netref::Ref";

/// A dynamic value: plain data, or a reference to an object.
///
/// Equality compares data structurally and references by identity (see [`Proxy`]'s
/// `PartialEq`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// No value: `()`, `None`, a unit struct.
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// A signed integer (every integer that fits in `i64` is stored here).
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// A UTF-8 string (also `char`).
    Str(String),
    /// Raw bytes (`serde_bytes`, [`Value::Bytes`]); a `Vec<u8>` parameter accepts them.
    Bytes(Vec<u8>),
    /// A sequence: `Vec`, slices, tuples, sets.
    List(Vec<Value>),
    /// A map or a struct, as ordered key/value pairs.
    Map(Vec<(Value, Value)>),
    /// A reference to an object, local or remote.
    Ref(Proxy),
}

impl Value {
    /// Converts this value into `T` (alias of [`from_value`]).
    pub fn decode<T: DeserializeOwned + 'static>(self) -> Result<T> {
        from_value(self)
    }

    /// The proxy, when this value is a reference.
    pub fn as_proxy(&self) -> Option<&Proxy> {
        match self {
            Value::Ref(p) => Some(p),
            _ => None,
        }
    }

    /// The proxy, or a value error naming what the value was instead.
    pub fn into_proxy(self) -> Result<Proxy> {
        match self {
            Value::Ref(p) => Ok(p),
            other => Err(Error::Value(format!(
                "expected an object reference, found {}",
                other.type_name()
            ))),
        }
    }

    /// The integer, when this value is one that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The string, when this value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// True for [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Looks up a string key in a map value (a struct's field).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of this value's variant (`"int"`, `"list"`, `"ref"` …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Ref(_) => "ref",
        }
    }
}

impl fmt::Display for Value {
    /// A compact, JSON-like rendering; bytes as `b"…"`, references as `<ref #slot v gen>`
    /// (for example `<ref #1v1>`) or `<local Type>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => {
                if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => {
                f.write_str("b\"")?;
                for &c in b {
                    if c.is_ascii_graphic() && c != b'"' && c != b'\\' || c == b' ' {
                        write!(f, "{}", c as char)?;
                    } else {
                        write!(f, "\\x{c:02x}")?;
                    }
                }
                f.write_str("\"")
            }
            Value::List(items) => crate::protocol::fmt_list(f, items),
            Value::Map(entries) => crate::protocol::fmt_map(f, entries),
            Value::Ref(p) => write!(f, "{p}"),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$variant(v as $as) }
        })*
    };
}
value_from!(
    bool => Bool as bool, i8 => Int as i64, i16 => Int as i64, i32 => Int as i64,
    i64 => Int as i64, u8 => Int as i64, u16 => Int as i64, u32 => Int as i64,
    f32 => Float as f64, f64 => Float as f64,
);

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Proxy> for Value {
    fn from(p: Proxy) -> Self {
        Value::Ref(p)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}
impl From<()> for Value {
    fn from(_: ()) -> Self {
        Value::Nil
    }
}

/// Converts any serializable value into a [`Value`]. References ([`Proxy`], [`Obj`](crate::Obj))
/// inside it become [`Value::Ref`].
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    value
        .serialize(ValueSerializer)
        .map_err(|e| Error::Value(e.0))
}

/// Converts a [`Value`] into any deserializable type. A [`Value`] target is returned as is,
/// and a list into `Vec<Value>` or an integer into `i64` or `u64` is moved out without a
/// walk (the typed calls' and streams' common cases).
pub fn from_value<T: DeserializeOwned + 'static>(value: Value) -> Result<T> {
    match without_walk(value) {
        Ok(t) => Ok(t),
        Err(value) => {
            // Keep embedded references reachable for the whole call, so serde's buffered
            // shapes (untagged enums, flatten) can read them after the first pass.
            let _scope = de::RefScope::enter();
            T::deserialize(ValueDeserializer::new(value)).map_err(|e| Error::Value(e.0))
        }
    }
}

/// `value` as a `T` when that needs no deserializer (the same result as one would give),
/// or `value` back. No allocation: the target is told apart by a `dyn Any` slot.
fn without_walk<T: 'static>(value: Value) -> std::result::Result<T, Value> {
    let mut out: Option<T> = None;
    let slot: &mut dyn Any = &mut out;
    let rest = if let Some(o) = slot.downcast_mut::<Option<Value>>() {
        *o = Some(value);
        None
    } else {
        match value {
            Value::List(items) => match slot.downcast_mut::<Option<Vec<Value>>>() {
                Some(o) => {
                    *o = Some(items);
                    None
                }
                None => Some(Value::List(items)),
            },
            Value::Int(n) => {
                if let Some(o) = slot.downcast_mut::<Option<i64>>() {
                    *o = Some(n);
                    None
                } else if let (Some(o), Ok(u)) =
                    (slot.downcast_mut::<Option<u64>>(), u64::try_from(n))
                {
                    *o = Some(u);
                    None
                } else {
                    Some(Value::Int(n))
                }
            }
            Value::UInt(u) => match slot.downcast_mut::<Option<u64>>() {
                Some(o) => {
                    *o = Some(u);
                    None
                }
                None => Some(Value::UInt(u)),
            },
            other => Some(other),
        }
    };
    match (out, rest) {
        (Some(t), _) => Ok(t),
        (None, Some(value)) => Err(value),
        // Every branch above either fills `out` or hands the value back.
        (None, None) => Err(Value::Nil),
    }
}

/// The error type of netref's value serializer and deserializer.
#[derive(Debug)]
pub(crate) struct ValueError(pub(crate) String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ValueError {}
impl serde::ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}
impl serde::de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_without_a_walk_agree_with_the_deserializer() {
        let list = Value::List(vec![Value::Int(1), Value::Str("a".into())]);
        assert_eq!(from_value::<Value>(list.clone()).unwrap(), list);
        assert_eq!(
            from_value::<Vec<Value>>(list.clone()).unwrap(),
            vec![Value::Int(1), Value::Str("a".into())]
        );
        assert_eq!(from_value::<i64>(Value::Int(-5)).unwrap(), -5);
        assert_eq!(from_value::<u64>(Value::Int(5)).unwrap(), 5);
        assert_eq!(from_value::<u64>(Value::UInt(u64::MAX)).unwrap(), u64::MAX);
        // What the fast paths do not take goes to the deserializer, with its answers.
        assert!(from_value::<u64>(Value::Int(-1)).is_err());
        assert!(from_value::<i64>(Value::UInt(u64::MAX)).is_err());
        assert!(from_value::<Vec<Value>>(Value::Int(1)).is_err());
        assert_eq!(from_value::<i32>(Value::Int(7)).unwrap(), 7);
        assert_eq!(
            from_value::<Vec<i64>>(Value::List(vec![Value::Int(1)])).unwrap(),
            [1]
        );
        assert_eq!(from_value::<f64>(Value::Int(2)).unwrap(), 2.0);
    }
}
