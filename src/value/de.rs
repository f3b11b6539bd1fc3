//! The deserializer out of [`Value`], and the `Deserialize` impls of [`Proxy`], [`Obj`] and
//! [`Value`].
//!
//! # References
//!
//! A [`Value::Ref`] cannot travel through serde's data model as data either. When a visitor
//! meets one (a `Proxy` asks for the [`REF_TOKEN`] newtype struct; a self-describing visitor
//! such as `Value`'s calls `deserialize_any`), the proxy is parked in a thread-local table and
//! the visitor receives `visit_newtype_struct` over a small *marker*: the list
//! `[REF_TOKEN, nonce, index]`. `Proxy`'s and `Value`'s visitors turn a marker back into the
//! parked proxy.
//!
//! The marker is plain data on purpose: serde's buffering (`#[serde(untagged)]`,
//! `#[serde(tag = "…")]`, `#[serde(flatten)]`) stores what a visitor receives and replays it
//! later, and plain data survives that. The table is therefore kept until the outermost
//! [`ValueDeserializer`] call on the thread returns, and every lookup clones (an untagged enum
//! may try several variants over the same buffered reference). The nonce, random per thread,
//! keeps data that merely looks like a marker from naming a parked proxy.
//!
//! A buffering type at the very top (`from_value::<AnUntaggedEnum>`) replays after the
//! deserializer call returned; holding a [`RefScope`] around the whole `T::deserialize` call
//! keeps its references available too.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;

use serde::de::{
    self, DeserializeSeed, EnumAccess, Error as _, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::{Deserialize, Deserializer};

use super::{Value, ValueError, REF_TOKEN};
use crate::object::{Obj, Object};
use crate::proxy::Proxy;

thread_local! {
    /// Proxies handed to visitors during the current outermost deserialization.
    /// Thread-local (like `REF_DEPTH`) because serde's data model has no place for a proxy:
    /// it passes beside the deserializer, which runs synchronously on this thread.
    static REF_TABLE: RefCell<Vec<Proxy>> = const { RefCell::new(Vec::new()) };
    /// How many [`RefScope`]s are open on this thread.
    static REF_DEPTH: Cell<usize> = const { Cell::new(0) };
    /// The per-thread secret in every marker.
    static REF_NONCE: u64 = RandomState::new().hash_one(0x6e65_7472_6566_u64);
}

/// Largest capacity reserved up front from a foreign length hint.
const MAX_PREALLOC: usize = 4096;

/// Keeps the parked references of this thread alive while it exists; the outermost scope
/// clears them when dropped. Every [`ValueDeserializer`] call opens one.
pub(crate) struct RefScope(());

impl RefScope {
    pub(crate) fn enter() -> RefScope {
        let _ = REF_DEPTH.try_with(|d| d.set(d.get().saturating_add(1)));
        RefScope(())
    }
}

impl Drop for RefScope {
    fn drop(&mut self) {
        let outermost = REF_DEPTH
            .try_with(|d| {
                let n = d.get().saturating_sub(1);
                d.set(n);
                n == 0
            })
            .unwrap_or(false);
        if outermost {
            // Taken out first so the proxies drop outside the borrow.
            let parked = REF_TABLE
                .try_with(|t| {
                    t.try_borrow_mut()
                        .map(|mut t| std::mem::take(&mut *t))
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            drop(parked);
        }
    }
}

fn nonce() -> Option<u64> {
    REF_NONCE.try_with(|n| *n).ok()
}

/// Parks `proxy` and returns the marker that names it.
fn park(proxy: Proxy) -> Result<Value, ValueError> {
    let unavailable = || ValueError("netref reference table is unavailable on this thread".into());
    let nonce = nonce().ok_or_else(unavailable)?;
    let index = REF_TABLE
        .try_with(|t| {
            t.try_borrow_mut().ok().map(|mut t| {
                t.push(proxy);
                t.len() - 1
            })
        })
        .ok()
        .flatten()
        .ok_or_else(unavailable)?;
    Ok(Value::List(vec![
        Value::Str(REF_TOKEN.to_owned()),
        Value::from(nonce),
        Value::from(index as u64),
    ]))
}

fn as_u64(v: &Value) -> Option<u64> {
    match *v {
        Value::Int(i) => u64::try_from(i).ok(),
        Value::UInt(u) => Some(u),
        _ => None,
    }
}

/// The parked proxy a marker names; `None` when `v` is not a marker of this thread.
fn resolve(v: &Value) -> Option<Result<Proxy, ValueError>> {
    let Value::List(items) = v else {
        return None;
    };
    let [Value::Str(token), n, index] = items.as_slice() else {
        return None;
    };
    if token != REF_TOKEN || as_u64(n)? != nonce()? {
        return None;
    }
    let index = usize::try_from(as_u64(index)?).ok()?;
    let found = REF_TABLE
        .try_with(|t| t.try_borrow().ok().and_then(|t| t.get(index).cloned()))
        .ok()
        .flatten();
    Some(found.ok_or_else(|| {
        ValueError("an object reference was used after its deserialization ended".into())
    }))
}

fn mismatch(expected: &str, found: &Value) -> ValueError {
    ValueError(format!("expected {expected}, found {}", found.type_name()))
}

fn integer(v: Value) -> Result<i128, ValueError> {
    match v {
        Value::Int(i) => Ok(i.into()),
        Value::UInt(u) => Ok(u.into()),
        other => Err(mismatch("an integer", &other)),
    }
}

fn out_of_range(n: i128, ty: &str) -> ValueError {
    ValueError(format!("integer {n} out of range for {ty}"))
}

fn byte(v: Value) -> Result<u8, ValueError> {
    match v {
        Value::Int(_) | Value::UInt(_) => {
            let n = integer(v)?;
            u8::try_from(n).map_err(|_| out_of_range(n, "u8"))
        }
        other => Err(mismatch("a byte", &other)),
    }
}

/// Deserializes any `Deserialize` type out of an owned [`Value`].
///
/// Each call opens a [`RefScope`], so references handed to visitors stay available until the
/// outermost call returns (see the module docs).
pub(crate) struct ValueDeserializer {
    value: Value,
}

impl ValueDeserializer {
    pub(crate) fn new(v: Value) -> Self {
        ValueDeserializer { value: v }
    }
}

macro_rules! scoped {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(
                self,
                $($arg: $ty,)*
                visitor: V,
            ) -> Result<V::Value, ValueError> {
                let _scope = RefScope::enter();
                Node(self.value).$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for ValueDeserializer {
    type Error = ValueError;

    fn is_human_readable(&self) -> bool {
        false
    }

    scoped! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

/// The deserializer of one value inside a [`ValueDeserializer`] call.
struct Node(Value);

macro_rules! int_method {
    ($($method:ident => $visit:ident: $t:ty;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
                let n = integer(self.0)?;
                let v = <$t>::try_from(n).map_err(|_| out_of_range(n, stringify!($t)))?;
                visitor.$visit(v)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Node {
    type Error = ValueError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Nil => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => match u64::try_from(i) {
                Ok(u) => visitor.visit_u64(u),
                Err(_) => visitor.visit_i64(i),
            },
            Value::UInt(u) => visitor.visit_u64(u),
            Value::Float(x) => visitor.visit_f64(x),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::List(items) => visit_list(items.into_iter(), visitor),
            Value::Map(entries) => visit_map(entries, visitor),
            Value::Ref(p) => visitor.visit_newtype_struct(Node(park(p)?)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Bool(b) => visitor.visit_bool(b),
            other => Err(mismatch("a bool", &other)),
        }
    }

    int_method! {
        deserialize_i8 => visit_i8: i8;
        deserialize_i16 => visit_i16: i16;
        deserialize_i32 => visit_i32: i32;
        deserialize_i64 => visit_i64: i64;
        deserialize_u8 => visit_u8: u8;
        deserialize_u16 => visit_u16: u16;
        deserialize_u32 => visit_u32: u32;
        deserialize_u64 => visit_u64: u64;
        deserialize_u128 => visit_u128: u128;
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_i128(integer(self.0)?)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Float(x) => visitor.visit_f32(x as f32),
            Value::Int(i) => visitor.visit_f32(i as f32),
            Value::UInt(u) => visitor.visit_f32(u as f32),
            other => Err(mismatch("a float", &other)),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Float(x) => visitor.visit_f64(x),
            Value::Int(i) => visitor.visit_f64(i as f64),
            Value::UInt(u) => visitor.visit_f64(u as f64),
            other => Err(mismatch("a float", &other)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Str(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => visitor.visit_char(c),
                    _ => Err(ValueError(format!(
                        "expected a single character, found a string of {} characters",
                        s.chars().count()
                    ))),
                }
            }
            other => Err(mismatch("a character", &other)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Str(s) => visitor.visit_string(s),
            other => Err(mismatch("a string", &other)),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::Str(s) => visitor.visit_byte_buf(s.into_bytes()),
            Value::List(items) => {
                let bytes = items
                    .into_iter()
                    .map(byte)
                    .collect::<Result<Vec<u8>, _>>()?;
                visitor.visit_byte_buf(bytes)
            }
            other => Err(mismatch("bytes", &other)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Nil => visitor.visit_none(),
            other => visitor.visit_some(Node(other)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Nil => visitor.visit_unit(),
            other => Err(mismatch("nil", &other)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        if name != REF_TOKEN {
            return visitor.visit_newtype_struct(self);
        }
        match self.0 {
            Value::Ref(p) => visitor.visit_newtype_struct(Node(park(p)?)),
            // A marker handed on by a visitor that wraps a reference.
            marker if resolve(&marker).is_some() => visitor.visit_newtype_struct(Node(marker)),
            other => Err(mismatch("an object reference", &other)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::List(items) => visit_list(items.into_iter(), visitor),
            // Lets a `Vec<u8>` (or any sequence of integers) take raw bytes.
            Value::Bytes(b) => visit_list(b.into_iter().map(|x| Value::Int(x.into())), visitor),
            other => Err(mismatch("a list", &other)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Map(entries) => visit_map(entries, visitor),
            other => Err(mismatch("a map", &other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Map(entries) => visit_map(entries, visitor),
            Value::List(items) => visit_list(items.into_iter(), visitor),
            other => Err(mismatch("a struct (a map or a list)", &other)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Str(s) => visitor.visit_enum(Variant {
                name: Value::Str(s),
                payload: None,
            }),
            Value::Map(entries) => {
                let n = entries.len();
                let mut it = entries.into_iter();
                match (it.next(), it.next()) {
                    (Some((name, payload)), None) => visitor.visit_enum(Variant {
                        name,
                        payload: Some(payload),
                    }),
                    _ => Err(ValueError(format!(
                        "expected an enum as a one-entry map, found a map of {n} entries"
                    ))),
                }
            }
            other => Err(mismatch(
                "an enum (a variant name or a one-entry map)",
                &other,
            )),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::Int(_) | Value::UInt(_) => {
                let n = integer(self.0)?;
                let index = u64::try_from(n).map_err(|_| out_of_range(n, "an index"))?;
                visitor.visit_u64(index)
            }
            other => Err(mismatch("an identifier (a string)", &other)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }
}

/// Runs `visitor` over `items`, failing if it left some unread (a tuple or a struct given
/// too many elements).
fn visit_list<'de, I, V>(items: I, visitor: V) -> Result<V::Value, ValueError>
where
    I: ExactSizeIterator<Item = Value>,
    V: Visitor<'de>,
{
    let total = items.len();
    let mut access = Items(items);
    let out = visitor.visit_seq(&mut access)?;
    match access.0.len() {
        0 => Ok(out),
        left => Err(ValueError(format!(
            "expected a list of {} elements, found {total}",
            total - left
        ))),
    }
}

fn visit_map<'de, V: Visitor<'de>>(
    entries: Vec<(Value, Value)>,
    visitor: V,
) -> Result<V::Value, ValueError> {
    let total = entries.len();
    let mut access = Entries {
        entries: entries.into_iter(),
        value: None,
    };
    let out = visitor.visit_map(&mut access)?;
    match access.entries.len() {
        0 => Ok(out),
        left => Err(ValueError(format!(
            "expected a map of {} entries, found {total}",
            total - left
        ))),
    }
}

/// The elements of a list, one [`Node`] each.
struct Items<I>(I);

impl<'de, I: ExactSizeIterator<Item = Value>> SeqAccess<'de> for Items<I> {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        match self.0.next() {
            Some(v) => seed.deserialize(Node(v)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The entries of a map.
struct Entries {
    entries: std::vec::IntoIter<(Value, Value)>,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = ValueError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ValueError> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(Node(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        match self.value.take() {
            Some(v) => seed.deserialize(Node(v)),
            None => Err(ValueError("map value requested before its key".into())),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum: a variant name and, unless it came as a bare name, its payload.
struct Variant {
    name: Value,
    payload: Option<Value>,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = ValueError;
    type Variant = Payload;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Payload), ValueError> {
        let label = match &self.name {
            Value::Str(s) => s.clone(),
            other => other.to_string(),
        };
        let variant = seed.deserialize(Node(self.name))?;
        Ok((
            variant,
            Payload {
                label,
                payload: self.payload,
            },
        ))
    }
}

/// The payload of an enum variant.
struct Payload {
    label: String,
    payload: Option<Value>,
}

impl Payload {
    fn required(self) -> Result<Value, ValueError> {
        self.payload.ok_or_else(|| {
            ValueError(format!(
                "variant `{}` expects a payload, found a bare variant name",
                self.label
            ))
        })
    }
}

impl<'de> VariantAccess<'de> for Payload {
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        match self.payload {
            None | Some(Value::Nil) => Ok(()),
            Some(other) => Err(ValueError(format!(
                "variant `{}` takes no payload, found {}",
                self.label,
                other.type_name()
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        seed.deserialize(Node(self.required()?))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        Node(self.required()?).deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        Node(self.required()?).deserialize_struct("", fields, visitor)
    }
}

/// Builds a [`Value`] from whatever a deserializer presents.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any netref value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        if let Ok(i) = i64::try_from(v) {
            Ok(Value::Int(i))
        } else if let Ok(u) = u64::try_from(v) {
            Ok(Value::UInt(u))
        } else {
            Err(E::custom(format!("integer {v} does not fit in 64 bits")))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 bits")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    /// A reference arrives as a marker (see the module docs); any other newtype is its
    /// content.
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        let inner = Value::deserialize(deserializer)?;
        match resolve(&inner) {
            Some(found) => found.map(Value::Ref).map_err(D::Error::custom),
            None => Ok(inner),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOC));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(MAX_PREALLOC));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Turns the marker of a parked reference back into its proxy.
struct ProxyVisitor;

impl<'de> Visitor<'de> for ProxyVisitor {
    type Value = Proxy;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object reference")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Proxy, D::Error> {
        let inner = Value::deserialize(deserializer)?;
        match resolve(&inner) {
            Some(found) => found.map_err(D::Error::custom),
            None => Err(D::Error::custom(mismatch("an object reference", &inner))),
        }
    }
}

impl<'de> Deserialize<'de> for Proxy {
    /// Accepts a [`Value::Ref`] only; other deserializers cannot carry references.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Proxy, D::Error> {
        deserializer.deserialize_newtype_struct(REF_TOKEN, ProxyVisitor)
    }
}

impl<'de, T: Object> Deserialize<'de> for Obj<T> {
    /// Accepts a reference to a local object of type `T` (an object lent and sent back),
    /// yielding the original `Arc`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Obj<T>, D::Error> {
        let proxy = Proxy::deserialize(deserializer)?;
        match proxy
            .local_object()
            .and_then(|obj| Obj::<T>::downcast(obj.clone()))
        {
            Some(obj) => Ok(obj),
            None => Err(D::Error::custom(format!(
                "expected a local object of type {}, found {proxy}",
                std::any::type_name::<T>()
            ))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::any::Any;
    use std::collections::{BTreeMap, HashMap};
    use std::fmt::Debug;
    use std::sync::Arc;

    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    use super::{RefScope, ValueDeserializer, REF_TABLE};
    use crate::error::Error;
    use crate::object::{Invocation, Obj, Object, Reply, TypeInfo};
    use crate::proxy::Proxy;
    use crate::value::{from_value, to_value, Value, REF_TOKEN};

    /// A minimal exposed object for reference tests.
    pub(crate) struct Thing(#[allow(dead_code)] pub(crate) u32);

    static THING: TypeInfo = TypeInfo {
        name: "Thing",
        doc: "",
        members: &[],
        call: None,
    };

    impl Object for Thing {
        fn type_info(&self) -> &'static TypeInfo {
            &THING
        }
        fn invoke(self: Arc<Self>, _: usize, _: Invocation) -> Reply {
            Reply::Ready(Ok(Value::Nil))
        }
        fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }
    }

    pub(crate) fn thing(n: u32) -> Obj<Thing> {
        Obj::new(Thing(n))
    }

    struct Other;

    static OTHER: TypeInfo = TypeInfo {
        name: "Other",
        doc: "",
        members: &[],
        call: None,
    };

    impl Object for Other {
        fn type_info(&self) -> &'static TypeInfo {
            &OTHER
        }
        fn invoke(self: Arc<Self>, _: usize, _: Invocation) -> Reply {
            Reply::Ready(Ok(Value::Nil))
        }
        fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }
    }

    fn s(x: &str) -> Value {
        Value::Str(x.to_owned())
    }

    fn round_trip<T>(x: T)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug + 'static,
    {
        let v = to_value(&x).unwrap();
        let back: T = from_value(v.clone()).unwrap_or_else(|e| panic!("{e} in {v}"));
        assert_eq!(back, x);
    }

    fn err<T: DeserializeOwned + Debug + 'static>(v: Value) -> String {
        match from_value::<T>(v) {
            Err(Error::Value(m)) => m,
            other => panic!("expected a value error, got {other:?}"),
        }
    }

    fn parked() -> usize {
        REF_TABLE.with(|t| t.borrow().len())
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Unit;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Meters(f64);

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Pair(u8, String);

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Shape {
        Empty,
        Circle(f64),
        Rect(u32, u32),
        Named { name: String, sides: u8 },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Inner {
        flag: bool,
        letter: char,
        big: u64,
        small: i8,
        wide: i128,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Outer {
        name: String,
        inner: Inner,
        maybe: Option<Box<Outer>>,
        none: Option<u8>,
        shapes: Vec<Shape>,
        tuple: (u8, String, Unit),
        pair: Pair,
        len: Meters,
        by_name: HashMap<String, i32>,
        by_id: BTreeMap<u16, Vec<String>>,
        blob: serde_bytes::ByteBuf,
        #[serde(default)]
        defaulted: u8,
    }

    fn sample() -> Outer {
        Outer {
            name: "root".into(),
            inner: Inner {
                flag: true,
                letter: 'λ',
                big: u64::MAX,
                small: -128,
                wide: i128::from(i64::MIN),
            },
            maybe: Some(Box::new(Outer {
                name: "child".into(),
                inner: Inner {
                    flag: false,
                    letter: 'a',
                    big: 0,
                    small: 0,
                    wide: 0,
                },
                maybe: None,
                none: None,
                shapes: vec![],
                tuple: (0, String::new(), Unit),
                pair: Pair(0, String::new()),
                len: Meters(0.0),
                by_name: HashMap::new(),
                by_id: BTreeMap::new(),
                blob: serde_bytes::ByteBuf::new(),
                defaulted: 0,
            })),
            none: None,
            shapes: vec![
                Shape::Empty,
                Shape::Circle(1.5),
                Shape::Rect(2, 3),
                Shape::Named {
                    name: "tri".into(),
                    sides: 3,
                },
            ],
            tuple: (9, "nine".into(), Unit),
            pair: Pair(1, "one".into()),
            len: Meters(-2.5),
            by_name: [("a".to_string(), 1), ("b".to_string(), -2)]
                .into_iter()
                .collect(),
            by_id: [(3, vec!["x".to_string()]), (1, vec![])]
                .into_iter()
                .collect(),
            blob: serde_bytes::ByteBuf::from(vec![0, 1, 255]),
            defaulted: 4,
        }
    }

    #[test]
    fn round_trips() {
        round_trip(sample());
        round_trip(u64::MAX);
        round_trip(i64::MIN);
        round_trip('\u{1F600}');
        round_trip(Some(Some(3u8)));
        round_trip(None::<String>);
        round_trip((1u8, -2i16, 3.5f32, "four".to_string(), ()));
        round_trip(Unit);
        round_trip(vec![Shape::Empty, Shape::Rect(1, 2)]);
        round_trip(u128::from(u64::MAX));
        round_trip([1u8, 2, 3]);
    }

    #[test]
    fn struct_from_positional_list() {
        let v = Value::List(vec![
            Value::Bool(true),
            s("q"),
            Value::Int(5),
            Value::Int(-1),
            Value::Int(2),
        ]);
        let inner: Inner = from_value(v).unwrap();
        assert_eq!(inner.letter, 'q');
        assert_eq!(inner.wide, 2);
    }

    #[test]
    fn enums_accept_their_forms() {
        assert_eq!(from_value::<Shape>(s("Empty")).unwrap(), Shape::Empty);
        assert_eq!(
            from_value::<Shape>(Value::Map(vec![(s("Empty"), Value::Nil)])).unwrap(),
            Shape::Empty
        );
        assert_eq!(
            from_value::<Shape>(Value::Map(vec![(s("Circle"), Value::Int(2))])).unwrap(),
            Shape::Circle(2.0)
        );
        assert_eq!(
            err::<Shape>(s("Circle")),
            "variant `Circle` expects a payload, found a bare variant name"
        );
        assert_eq!(
            err::<Shape>(Value::Map(vec![(s("Empty"), Value::Int(1))])),
            "variant `Empty` takes no payload, found int"
        );
        assert_eq!(
            err::<Shape>(Value::Map(vec![])),
            "expected an enum as a one-entry map, found a map of 0 entries"
        );
        assert_eq!(
            err::<Shape>(Value::Int(1)),
            "expected an enum (a variant name or a one-entry map), found int"
        );
        assert!(err::<Shape>(s("Hexagon")).contains("unknown variant `Hexagon`"));
    }

    #[test]
    fn bytes_are_flexible() {
        // A `Vec<u8>` parameter accepts raw bytes.
        assert_eq!(
            from_value::<Vec<u8>>(Value::Bytes(vec![1, 2, 250])).unwrap(),
            vec![1, 2, 250]
        );
        let buf: serde_bytes::ByteBuf =
            from_value(Value::List(vec![Value::Int(104), Value::Int(105)])).unwrap();
        assert_eq!(buf.as_slice(), b"hi");
        let buf: serde_bytes::ByteBuf = from_value(s("hi")).unwrap();
        assert_eq!(buf.as_slice(), b"hi");
        assert_eq!(
            err::<serde_bytes::ByteBuf>(Value::List(vec![Value::Int(300)])),
            "integer 300 out of range for u8"
        );
        assert_eq!(
            err::<serde_bytes::ByteBuf>(Value::List(vec![Value::Nil])),
            "expected a byte, found nil"
        );
    }

    #[test]
    fn mismatches_say_what_and_where() {
        assert_eq!(
            err::<u8>(Value::Int(300)),
            "integer 300 out of range for u8"
        );
        assert_eq!(
            err::<u32>(Value::Int(-1)),
            "integer -1 out of range for u32"
        );
        assert_eq!(
            err::<i64>(Value::UInt(u64::MAX)),
            "integer 18446744073709551615 out of range for i64"
        );
        assert_eq!(err::<u8>(s("7")), "expected an integer, found str");
        assert_eq!(err::<String>(Value::Int(1)), "expected a string, found int");
        assert_eq!(err::<bool>(Value::Nil), "expected a bool, found nil");
        assert_eq!(err::<f64>(s("x")), "expected a float, found str");
        assert_eq!(err::<()>(Value::Int(0)), "expected nil, found int");
        assert_eq!(err::<Vec<u8>>(s("x")), "expected a list, found str");
        assert_eq!(
            err::<HashMap<String, u8>>(Value::List(vec![])),
            "expected a map, found list"
        );
        assert_eq!(
            err::<Inner>(Value::Bool(true)),
            "expected a struct (a map or a list), found bool"
        );
        assert_eq!(
            err::<char>(s("ab")),
            "expected a single character, found a string of 2 characters"
        );
        assert_eq!(
            err::<(u8, u8)>(Value::List(vec![Value::Int(1); 3])),
            "expected a list of 2 elements, found 3"
        );
        assert!(err::<(u8, u8)>(Value::List(vec![Value::Int(1)])).contains("invalid length 1"));
        assert!(err::<Inner>(Value::Map(vec![])).contains("missing field `flag`"));
        assert_eq!(
            err::<Proxy>(Value::Int(3)),
            "expected an object reference, found int"
        );
        // Floats take integers.
        assert_eq!(from_value::<f64>(Value::Int(2)).unwrap(), 2.0);
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Holder {
        label: String,
        main: Proxy,
        extra: Option<Proxy>,
        many: Vec<Proxy>,
    }

    #[test]
    fn proxies_keep_identity() {
        let a = Proxy::local(thing(1).erase());
        let b = Proxy::local(thing(2).erase());
        let h = Holder {
            label: "h".into(),
            main: a.clone(),
            extra: None,
            many: vec![b.clone(), a.clone(), b.clone()],
        };
        let v = to_value(&h).unwrap();
        assert_eq!(v.get("main"), Some(&Value::Ref(a.clone())));
        let back: Holder = from_value(v).unwrap();
        assert_eq!(back, h);
        assert_ne!(back.many[0], back.many[1]);
        assert_eq!(parked(), 0);
        round_trip(vec![b.clone(), a.clone()]);
        round_trip(Some(a.attr("x")));
    }

    #[test]
    fn values_carry_references() {
        let p = Proxy::local(thing(1).erase());
        let list = vec![Value::Ref(p.clone()), Value::Int(1)];
        // Through the walk, not the `from_value::<Value>` fast path.
        let v = Value::deserialize(ValueDeserializer::new(Value::List(list.clone()))).unwrap();
        assert_eq!(v, Value::List(list.clone()));
        assert_eq!(
            from_value::<Vec<Value>>(Value::List(list.clone())).unwrap(),
            list
        );
        let map: HashMap<String, Value> =
            from_value(Value::Map(vec![(s("r"), Value::Ref(p.clone()))])).unwrap();
        assert_eq!(map["r"], Value::Ref(p.clone()));
        let v = Value::deserialize(ValueDeserializer::new(Value::Ref(p.clone()))).unwrap();
        assert_eq!(v, Value::Ref(p));
        assert_eq!(parked(), 0);
    }

    #[test]
    fn objects_come_back_as_the_same_arc() {
        let obj = thing(5);
        let v = to_value(&obj).unwrap();
        let back: Obj<Thing> = from_value(v.clone()).unwrap();
        assert!(Obj::ptr_eq(&back, &obj));
        // `obj`, the proxy in `v` and `back`: nothing else kept a copy.
        assert_eq!(Arc::strong_count(obj.arc()), 3);
        drop(back);
        drop(v);
        assert_eq!(Arc::strong_count(obj.arc()), 1);

        let other = Proxy::local(Arc::new(Other) as Arc<dyn Object>);
        assert_eq!(
            err::<Obj<Thing>>(Value::Ref(other)),
            format!(
                "expected a local object of type {}, found <local Other>",
                std::any::type_name::<Thing>()
            )
        );
        let path = Proxy::local(obj.erase()).attr("x");
        assert!(err::<Obj<Thing>>(Value::Ref(path)).starts_with("expected a local object"));
        assert_eq!(
            err::<Obj<Thing>>(s("x")),
            "expected an object reference, found str"
        );
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Either {
        Num(u32),
        Objs { first: Proxy, rest: Vec<Proxy> },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(tag = "kind")]
    enum Tagged {
        Open { target: Proxy },
        Close,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Flat {
        id: u8,
        #[serde(flatten)]
        rest: HashMap<String, Value>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Wrapper {
        either: Either,
        tagged: Tagged,
        flat: Flat,
    }

    #[test]
    fn buffered_shapes_keep_references() {
        let a = Proxy::local(thing(1).erase());
        let b = Proxy::local(thing(2).erase());
        let w = Wrapper {
            either: Either::Objs {
                first: a.clone(),
                rest: vec![b.clone(), a.clone()],
            },
            tagged: Tagged::Open { target: b.clone() },
            flat: Flat {
                id: 1,
                rest: [("p".to_string(), Value::Ref(a.clone()))]
                    .into_iter()
                    .collect(),
            },
        };
        round_trip(w);
        assert_eq!(parked(), 0);

        // At the top level the buffer outlives the deserializer call unless a scope is held.
        let e = Either::Objs {
            first: a.clone(),
            rest: vec![b.clone()],
        };
        let v = to_value(&e).unwrap();
        let back = {
            let _scope = RefScope::enter();
            Either::deserialize(ValueDeserializer::new(v.clone())).unwrap()
        };
        assert_eq!(back, e);
        assert_eq!(parked(), 0);
        assert!(Either::deserialize(ValueDeserializer::new(v)).is_err());
        assert_eq!(parked(), 0);
    }

    #[test]
    fn look_alike_markers_are_data() {
        let fake = Value::List(vec![s(REF_TOKEN), Value::Int(0), Value::Int(0)]);
        let _scope = RefScope::enter();
        let p = Proxy::local(thing(1).erase());
        // Park one reference so index 0 exists.
        let _ = Value::deserialize(ValueDeserializer::new(Value::Ref(p))).unwrap();
        assert_eq!(
            err::<Proxy>(fake.clone()),
            "expected an object reference, found list"
        );
        let v = Value::deserialize(ValueDeserializer::new(fake.clone())).unwrap();
        assert_eq!(v, fake);
    }

    #[test]
    fn foreign_deserializers_cannot_make_references() {
        let e = serde_json::from_str::<Proxy>("3").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected an object reference, found int"),
            "{e}"
        );
        let v: Value =
            serde_json::from_str(r#"{"a":[1,-2,null,"x"],"b":18446744073709551615}"#).unwrap();
        assert_eq!(
            v,
            Value::Map(vec![
                (
                    s("a"),
                    Value::List(vec![Value::Int(1), Value::Int(-2), Value::Nil, s("x")])
                ),
                (s("b"), Value::UInt(u64::MAX)),
            ])
        );
    }
}
