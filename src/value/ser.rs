//! The serializer into [`Value`], and the `Serialize` impls of [`Proxy`], [`Obj`] and
//! [`Value`].
//!
//! # References
//!
//! A reference cannot pass through serde's data model as data, so [`Proxy`]'s `Serialize`
//! parks a clone of itself in the thread-local [`REF_SLOT`] and then serializes the marker
//! newtype struct [`REF_TOKEN`] around `()`. [`ValueSerializer`] recognises the marker and takes
//! the proxy out of the slot, producing [`Value::Ref`]. Any other serializer ignores the
//! marker's meaning and leaves the slot full, which `Proxy`'s `Serialize` turns into a clear
//! error.

use std::cell::RefCell;

use serde::ser::{self, Error as _, Serialize, Serializer};

use super::{Value, ValueError, REF_TOKEN};
use crate::object::{Obj, Object};
use crate::proxy::Proxy;

thread_local! {
    /// The proxy being serialized, between `Proxy::serialize` and the moment
    /// [`ValueSerializer`] meets the [`REF_TOKEN`] marker. Empty at every other time.
    /// Thread-local because serde's data model has no place for a proxy: it passes beside
    /// the serializer, which runs synchronously on this thread.
    pub(crate) static REF_SLOT: RefCell<Option<Proxy>> = const { RefCell::new(None) };
}

/// The message of a proxy serialized by a serializer other than netref's.
const FOREIGN_SERIALIZER: &str = "netref references can only be serialized into netref values";

/// Largest capacity reserved up front from a length hint.
const MAX_PREALLOC: usize = 4096;

/// Puts `proxy` in [`REF_SLOT`]; whatever the slot held is dropped outside the borrow.
fn park_ref(proxy: Proxy) -> Result<(), ValueError> {
    let previous = REF_SLOT
        .try_with(|slot| slot.try_borrow_mut().map(|mut s| s.replace(proxy)))
        .map_err(|_| ValueError("netref reference slot is unavailable on this thread".into()))?
        .map_err(|_| ValueError("netref reference slot is busy".into()))?;
    drop(previous);
    Ok(())
}

/// Takes the proxy out of [`REF_SLOT`], if there is one.
fn take_ref() -> Option<Proxy> {
    REF_SLOT
        .try_with(|slot| slot.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten()
}

fn out_of_range(what: impl std::fmt::Display) -> ValueError {
    ValueError(format!("integer {what} does not fit in 64 bits"))
}

fn capacity(len: Option<usize>) -> usize {
    len.unwrap_or(0).min(MAX_PREALLOC)
}

/// Serializes any `Serialize` type into a [`Value`].
pub(crate) struct ValueSerializer;

impl Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqSerializer;
    type SerializeTuple = SeqSerializer;
    type SerializeTupleStruct = SeqSerializer;
    type SerializeTupleVariant = TupleVariantSerializer;
    type SerializeMap = MapSerializer;
    type SerializeStruct = StructSerializer;
    type SerializeStructVariant = StructVariantSerializer;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }

    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(Value::Int(v))
    }

    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        if let Ok(i) = i64::try_from(v) {
            Ok(Value::Int(i))
        } else if let Ok(u) = u64::try_from(v) {
            Ok(Value::UInt(u))
        } else {
            Err(out_of_range(v))
        }
    }

    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        Ok(Value::from(v))
    }

    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| out_of_range(v))
    }

    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::Float(v.into()))
    }

    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::Float(v))
    }

    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_owned()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::Str(variant.to_owned()))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        if name == REF_TOKEN {
            return take_ref().map(Value::Ref).ok_or_else(|| {
                ValueError("a netref reference marker was serialized without a reference".into())
            });
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        let inner = value.serialize(ValueSerializer)?;
        Ok(Value::Map(vec![(Value::Str(variant.to_owned()), inner)]))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSerializer, ValueError> {
        Ok(SeqSerializer {
            items: Vec::with_capacity(capacity(len)),
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<SeqSerializer, ValueError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqSerializer, ValueError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<TupleVariantSerializer, ValueError> {
        Ok(TupleVariantSerializer {
            variant,
            items: Vec::with_capacity(capacity(Some(len))),
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<MapSerializer, ValueError> {
        Ok(MapSerializer {
            entries: Vec::with_capacity(capacity(len)),
            key: None,
        })
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<StructSerializer, ValueError> {
        Ok(StructSerializer {
            entries: Vec::with_capacity(capacity(Some(len))),
        })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<StructVariantSerializer, ValueError> {
        Ok(StructVariantSerializer {
            variant,
            entries: Vec::with_capacity(capacity(Some(len))),
        })
    }
}

/// Builds a [`Value::List`] from a sequence, tuple or tuple struct.
pub(crate) struct SeqSerializer {
    items: Vec<Value>,
}

impl ser::SerializeSeq for SeqSerializer {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::List(self.items))
    }
}

impl ser::SerializeTuple for SeqSerializer {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqSerializer {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

/// Builds `{variant: [fields…]}`.
pub(crate) struct TupleVariantSerializer {
    variant: &'static str,
    items: Vec<Value>,
}

impl ser::SerializeTupleVariant for TupleVariantSerializer {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(vec![(
            Value::Str(self.variant.to_owned()),
            Value::List(self.items),
        )]))
    }
}

/// Builds a [`Value::Map`] from a map; keys may be any value.
pub(crate) struct MapSerializer {
    entries: Vec<(Value, Value)>,
    key: Option<Value>,
}

impl ser::SerializeMap for MapSerializer {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        self.key = Some(key.serialize(ValueSerializer)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ValueError("map value serialized before its key".into()))?;
        let value = value.serialize(ValueSerializer)?;
        self.entries.push((key, value));
        Ok(())
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), ValueError> {
        let key = key.serialize(ValueSerializer)?;
        let value = value.serialize(ValueSerializer)?;
        self.entries.push((key, value));
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        if self.key.is_some() {
            return Err(ValueError("map key serialized without a value".into()));
        }
        Ok(Value::Map(self.entries))
    }
}

/// Builds a [`Value::Map`] with string keys, in field order.
pub(crate) struct StructSerializer {
    entries: Vec<(Value, Value)>,
}

impl ser::SerializeStruct for StructSerializer {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        let value = value.serialize(ValueSerializer)?;
        self.entries.push((Value::Str(key.to_owned()), value));
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(self.entries))
    }
}

/// Builds `{variant: {field: value, …}}`.
pub(crate) struct StructVariantSerializer {
    variant: &'static str,
    entries: Vec<(Value, Value)>,
}

impl ser::SerializeStructVariant for StructVariantSerializer {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        let value = value.serialize(ValueSerializer)?;
        self.entries.push((Value::Str(key.to_owned()), value));
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(vec![(
            Value::Str(self.variant.to_owned()),
            Value::Map(self.entries),
        )]))
    }
}

impl Serialize for Proxy {
    /// Serializes as a reference; only netref's own serializer accepts it (see the module
    /// docs).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        park_ref(self.clone()).map_err(S::Error::custom)?;
        let result = serializer.serialize_newtype_struct(REF_TOKEN, &());
        match take_ref() {
            None => result,
            Some(_) => Err(S::Error::custom(FOREIGN_SERIALIZER)),
        }
    }
}

impl<T: Object> Serialize for Obj<T> {
    /// Serializes as a reference to this local object.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Proxy::local(self.erase()).serialize(serializer)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Nil => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::UInt(u) => serializer.serialize_u64(*u),
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Ref(p) => p.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::REF_SLOT;
    use crate::error::Error;
    use crate::proxy::Proxy;
    use crate::value::de::tests::{thing, Thing};
    use crate::value::{to_value, Value, REF_TOKEN};

    fn s(x: &str) -> Value {
        Value::Str(x.to_owned())
    }

    fn err<T: Serialize>(x: &T) -> String {
        match to_value(x) {
            Err(Error::Value(m)) => m,
            other => panic!("expected a value error, got {other:?}"),
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(to_value(&true).unwrap(), Value::Bool(true));
        assert_eq!(to_value(&-5i8).unwrap(), Value::Int(-5));
        assert_eq!(to_value(&7u16).unwrap(), Value::Int(7));
        assert_eq!(to_value(&(i64::MAX as u64)).unwrap(), Value::Int(i64::MAX));
        assert_eq!(to_value(&u64::MAX).unwrap(), Value::UInt(u64::MAX));
        assert_eq!(to_value(&-3i128).unwrap(), Value::Int(-3));
        assert_eq!(
            to_value(&(u64::MAX as i128)).unwrap(),
            Value::UInt(u64::MAX)
        );
        assert_eq!(to_value(&5u128).unwrap(), Value::Int(5));
        assert_eq!(to_value(&1.5f32).unwrap(), Value::Float(1.5));
        assert_eq!(to_value(&'é').unwrap(), s("é"));
        assert_eq!(to_value("hi").unwrap(), s("hi"));
        assert_eq!(
            to_value(&serde_bytes::Bytes::new(b"\x00\xff")).unwrap(),
            Value::Bytes(vec![0, 255])
        );
        assert_eq!(to_value(&()).unwrap(), Value::Nil);
        assert_eq!(to_value(&None::<u8>).unwrap(), Value::Nil);
        assert_eq!(to_value(&Some(3u8)).unwrap(), Value::Int(3));
    }

    #[test]
    fn integers_out_of_range() {
        assert_eq!(
            err(&(i128::MIN)),
            format!("integer {} does not fit in 64 bits", i128::MIN)
        );
        assert_eq!(
            err(&(u128::from(u64::MAX) + 1)),
            "integer 18446744073709551616 does not fit in 64 bits"
        );
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Meters(f64);

    #[derive(Serialize)]
    struct Pair(u8, String);

    #[derive(Serialize)]
    struct Job {
        id: u32,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(skip)]
        _secret: u8,
        tags: Vec<String>,
    }

    #[derive(Serialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Rect(u32, u32),
        Named { name: String, sides: u8 },
    }

    #[test]
    fn compound_shapes() {
        assert_eq!(to_value(&Unit).unwrap(), Value::Nil);
        assert_eq!(to_value(&Meters(2.0)).unwrap(), Value::Float(2.0));
        assert_eq!(
            to_value(&Pair(1, "a".into())).unwrap(),
            Value::List(vec![Value::Int(1), s("a")])
        );
        assert_eq!(
            to_value(&(1u8, "x", false)).unwrap(),
            Value::List(vec![Value::Int(1), s("x"), Value::Bool(false)])
        );
        let job = Job {
            id: 7,
            name: "scan".into(),
            note: None,
            _secret: 9,
            tags: vec!["fast".into()],
        };
        assert_eq!(
            to_value(&job).unwrap(),
            Value::Map(vec![
                (s("id"), Value::Int(7)),
                (s("name"), s("scan")),
                (s("tags"), Value::List(vec![s("fast")])),
            ])
        );
        assert_eq!(to_value(&Shape::Empty).unwrap(), s("Empty"));
        assert_eq!(
            to_value(&Shape::Circle(1.0)).unwrap(),
            Value::Map(vec![(s("Circle"), Value::Float(1.0))])
        );
        assert_eq!(
            to_value(&Shape::Rect(2, 3)).unwrap(),
            Value::Map(vec![(
                s("Rect"),
                Value::List(vec![Value::Int(2), Value::Int(3)])
            )])
        );
        assert_eq!(
            to_value(&Shape::Named {
                name: "tri".into(),
                sides: 3
            })
            .unwrap(),
            Value::Map(vec![(
                s("Named"),
                Value::Map(vec![(s("name"), s("tri")), (s("sides"), Value::Int(3))])
            )])
        );
    }

    #[test]
    fn maps_keep_any_key() {
        let m: BTreeMap<u32, bool> = [(2, true), (1, false)].into_iter().collect();
        assert_eq!(
            to_value(&m).unwrap(),
            Value::Map(vec![
                (Value::Int(1), Value::Bool(false)),
                (Value::Int(2), Value::Bool(true)),
            ])
        );
    }

    #[test]
    fn proxy_and_obj_become_refs() {
        let obj = thing(1);
        let p = Proxy::local(obj.erase());
        assert_eq!(to_value(&p).unwrap(), Value::Ref(p.clone()));
        assert_eq!(to_value(&obj).unwrap(), Value::Ref(p.clone()));
        // A `Value` holding a reference serializes it back as a reference.
        let v = Value::List(vec![Value::Ref(p.clone()), Value::Int(1)]);
        assert_eq!(to_value(&v).unwrap(), v);
        let _: &Thing = &obj;
    }

    #[test]
    fn foreign_serializer_refuses_references() {
        let p = Proxy::local(thing(1).erase());
        let e = serde_json::to_string(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "netref references can only be serialized into netref values"
        );
        let e = serde_json::to_string(&vec![Value::Int(1), Value::Ref(p.clone())]).unwrap_err();
        assert!(
            e.to_string().contains("only be serialized into netref"),
            "{e}"
        );
        // The slot is left empty, and netref's own serializer still works.
        assert!(REF_SLOT.with(|s| s.borrow().is_none()));
        assert_eq!(to_value(&p).unwrap(), Value::Ref(p));
    }

    #[test]
    fn plain_values_serialize_elsewhere() {
        let v = Value::Map(vec![
            (s("a"), Value::List(vec![Value::Int(1), Value::Nil])),
            (s("b"), Value::UInt(u64::MAX)),
        ]);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"a":[1,null],"b":18446744073709551615}"#
        );
    }

    #[test]
    fn marker_without_reference_is_an_error() {
        struct Fake;
        impl Serialize for Fake {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_newtype_struct(REF_TOKEN, &())
            }
        }
        assert_eq!(
            err(&Fake),
            "a netref reference marker was serialized without a reference"
        );
    }
}
