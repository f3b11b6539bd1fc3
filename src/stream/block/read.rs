//! Reading a block: items straight into the holder's type, every length checked against
//! the bytes left (see the parent module for the layout).

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess};
use serde::de::{VariantAccess, Visitor};

use super::{malformed, BlockError, BOOL, BYTES, ENDED, FLOAT, HEADER, INT, LIST, MAP, NIL};
use super::{STR, UINT};
use crate::value::{Value, ValueDeserializer, REF_TOKEN};

/// A received block's header: the items that follow, and whether the stream ended.
pub(crate) fn header(block: &[u8]) -> Result<(u32, bool), BlockError> {
    let (&flags, rest) = block.split_first().ok_or_else(|| malformed("no header"))?;
    let count: [u8; 4] = rest
        .get(..4)
        .and_then(|c| c.try_into().ok())
        .ok_or_else(|| malformed("no item count"))?;
    let count = u32::from_le_bytes(count);
    if flags & !ENDED != 0 {
        return Err(malformed("unknown flags"));
    }
    if count as usize > block.len() - HEADER {
        return Err(malformed("more items declared than bytes"));
    }
    Ok((count, flags & ENDED != 0))
}

/// Reads items out of a block's bytes.
pub(crate) struct Reader<'de> {
    b: &'de [u8],
    i: usize,
    depth_left: usize,
}

impl<'de> Reader<'de> {
    /// A reader of `b` from byte `at`, allowing `max_depth` levels of lists and maps.
    pub(crate) fn new(b: &'de [u8], at: usize, max_depth: usize) -> Reader<'de> {
        Reader {
            b,
            i: at,
            depth_left: max_depth,
        }
    }

    /// Where the next item starts.
    pub(crate) fn position(&self) -> usize {
        self.i
    }

    fn left(&self) -> usize {
        self.b.len() - self.i
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, BlockError> {
        match self.b.get(self.i) {
            Some(&b) => {
                self.i += 1;
                Ok(b)
            }
            None => Err(cut_short()),
        }
    }

    #[inline]
    fn peek(&self) -> Result<u8, BlockError> {
        match self.b.get(self.i) {
            Some(&b) => Ok(b),
            None => Err(cut_short()),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], BlockError> {
        match self
            .i
            .checked_add(n)
            .and_then(|end| self.b.get(self.i..end))
        {
            Some(s) => {
                self.i += n;
                Ok(s)
            }
            None => Err(malformed("a length runs past the block")),
        }
    }

    #[inline]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], BlockError> {
        let a = self
            .b
            .get(self.i..)
            .and_then(|rest| rest.first_chunk::<N>())
            .copied()
            .ok_or_else(cut_short)?;
        self.i += N;
        Ok(a)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, BlockError> {
        Ok(match self.byte()? {
            b @ 0..=250 => u64::from(b),
            251 => u64::from(u16::from_le_bytes(self.fixed()?)),
            252 => u64::from(u32::from_le_bytes(self.fixed()?)),
            253 => u64::from_le_bytes(self.fixed()?),
            _ => return Err(malformed("a bad varint marker")),
        })
    }

    /// A length of elements each at least `min` bytes long, checked against the bytes left.
    fn len(&mut self, min: usize) -> Result<usize, BlockError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.left() / min => Ok(n),
            _ => Err(malformed("a length runs past the block")),
        }
    }

    fn str_body(&mut self) -> Result<&'de str, BlockError> {
        let n = self.len(1)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| malformed("a string is not UTF-8"))
    }

    fn deeper(&mut self) -> Result<(), BlockError> {
        if self.depth_left == 0 {
            return Err(malformed("values nested past the depth limit"));
        }
        self.depth_left -= 1;
        Ok(())
    }

    /// The integer that follows an `INT` tag.
    #[inline]
    fn int(&mut self) -> Result<i64, BlockError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// The integer that follows an `INT` or `UINT` tag.
    #[inline]
    fn integer(&mut self, tag: u8) -> Result<i128, BlockError> {
        let v = self.varint()?;
        Ok(if tag == INT {
            i128::from(((v >> 1) as i64) ^ -((v & 1) as i64))
        } else {
            i128::from(v)
        })
    }

    /// One whole item as a [`Value`], for the shapes read through [`ValueDeserializer`].
    fn value(&mut self) -> Result<Value, BlockError> {
        Ok(match self.byte()? {
            NIL => Value::Nil,
            BOOL => match self.byte()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return Err(malformed("a bool is neither 0 nor 1")),
            },
            t @ (INT | UINT) => {
                let n = self.integer(t)?;
                match i64::try_from(n) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::UInt(n as u64),
                }
            }
            FLOAT => Value::Float(f64::from_le_bytes(self.fixed()?)),
            STR => Value::Str(self.str_body()?.to_owned()),
            BYTES => {
                let n = self.len(1)?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            LIST => {
                self.deeper()?;
                let n = self.len(1)?;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value()?);
                }
                self.depth_left += 1;
                Value::List(items)
            }
            MAP => {
                self.deeper()?;
                let n = self.len(2)?;
                let mut entries = Vec::new();
                for _ in 0..n {
                    entries.push((self.value()?, self.value()?));
                }
                self.depth_left += 1;
                Value::Map(entries)
            }
            _ => return Err(malformed("an unknown value tag")),
        })
    }

    /// Reads the next item as a [`Value`] and hands it to `f` (the dynamic deserializer), so
    /// that shapes read seldom behave exactly as they do for a value.
    fn through_value<V, F>(&mut self, visitor: V, f: F) -> Result<V::Value, BlockError>
    where
        V: Visitor<'de>,
        F: FnOnce(ValueDeserializer, V) -> Result<V::Value, crate::value::ValueError>,
    {
        let v = self.value()?;
        f(ValueDeserializer::new(v), visitor).map_err(|e| BlockError(e.0))
    }

    fn visit_list<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, BlockError> {
        self.deeper()?;
        let total = self.len(1)?;
        let mut access = Items {
            r: &mut *self,
            left: total,
        };
        let out = visitor.visit_seq(&mut access)?;
        let left = access.left;
        self.depth_left += 1;
        match left {
            0 => Ok(out),
            left => Err(BlockError(format!(
                "expected a list of {} elements, found {total}",
                total - left
            ))),
        }
    }

    fn visit_map<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, BlockError> {
        self.deeper()?;
        let total = self.len(2)?;
        let mut access = Entries {
            r: &mut *self,
            left: total,
            value_due: false,
        };
        let out = visitor.visit_map(&mut access)?;
        let left = access.left;
        self.depth_left += 1;
        match left {
            0 => Ok(out),
            left => Err(BlockError(format!(
                "expected a map of {} entries, found {total}",
                total - left
            ))),
        }
    }
}

macro_rules! int_method {
    ($($method:ident => $visit:ident: $t:ty, $via:ident;)*) => {
        $(
            #[inline]
            #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
                match self.peek()? {
                    INT => {
                        self.i += 1;
                        let n = self.int()?;
                        let v = <$t>::try_from(n)
                            .map_err(|_| out_of_range(n.into(), stringify!($t)))?;
                        visitor.$visit(v)
                    }
                    UINT => {
                        self.i += 1;
                        let n = self.varint()?;
                        let v = <$t>::try_from(n)
                            .map_err(|_| out_of_range(n.into(), stringify!($t)))?;
                        visitor.$visit(v)
                    }
                    _ => self.through_value(visitor, |d, v| d.$via(v)),
                }
            }
        )*
    };
}

#[cold]
fn out_of_range(n: i128, ty: &str) -> BlockError {
    BlockError(format!("integer {n} out of range for {ty}"))
}

#[cold]
fn cut_short() -> BlockError {
    malformed("an item is cut short")
}

impl<'de> Deserializer<'de> for &mut Reader<'de> {
    type Error = BlockError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.byte()? {
            NIL => visitor.visit_unit(),
            BOOL => match self.byte()? {
                0 => visitor.visit_bool(false),
                1 => visitor.visit_bool(true),
                _ => Err(malformed("a bool is neither 0 nor 1")),
            },
            t @ (INT | UINT) => {
                let n = self.integer(t)?;
                match u64::try_from(n) {
                    Ok(u) => visitor.visit_u64(u),
                    Err(_) => visitor.visit_i64(n as i64),
                }
            }
            FLOAT => visitor.visit_f64(f64::from_le_bytes(self.fixed()?)),
            STR => visitor.visit_borrowed_str(self.str_body()?),
            BYTES => {
                let n = self.len(1)?;
                visitor.visit_borrowed_bytes(self.take(n)?)
            }
            LIST => self.visit_list(visitor),
            MAP => self.visit_map(visitor),
            _ => Err(malformed("an unknown value tag")),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            BOOL => self.deserialize_any(visitor),
            _ => self.through_value(visitor, |d, v| d.deserialize_bool(v)),
        }
    }

    int_method! {
        deserialize_i8 => visit_i8: i8, deserialize_i8;
        deserialize_i16 => visit_i16: i16, deserialize_i16;
        deserialize_i32 => visit_i32: i32, deserialize_i32;
        deserialize_i64 => visit_i64: i64, deserialize_i64;
        deserialize_i128 => visit_i128: i128, deserialize_i128;
        deserialize_u8 => visit_u8: u8, deserialize_u8;
        deserialize_u16 => visit_u16: u16, deserialize_u16;
        deserialize_u32 => visit_u32: u32, deserialize_u32;
        deserialize_u64 => visit_u64: u64, deserialize_u64;
        deserialize_u128 => visit_u128: u128, deserialize_u128;
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            FLOAT => {
                self.i += 1;
                visitor.visit_f32(f64::from_le_bytes(self.fixed()?) as f32)
            }
            _ => self.through_value(visitor, |d, v| d.deserialize_f32(v)),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            FLOAT => self.deserialize_any(visitor),
            _ => self.through_value(visitor, |d, v| d.deserialize_f64(v)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        self.through_value(visitor, |d, v| d.deserialize_char(v))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            STR => self.deserialize_any(visitor),
            _ => self.through_value(visitor, |d, v| d.deserialize_str(v)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            BYTES => self.deserialize_any(visitor),
            STR => {
                self.i += 1;
                visitor.visit_borrowed_bytes(self.str_body()?.as_bytes())
            }
            _ => self.through_value(visitor, |d, v| d.deserialize_bytes(v)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            NIL => {
                self.i += 1;
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            NIL => self.deserialize_any(visitor),
            _ => self.through_value(visitor, |d, v| d.deserialize_unit(v)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BlockError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BlockError> {
        if name == REF_TOKEN {
            return Err(BlockError(
                "expected an object reference, which a stream block cannot carry".into(),
            ));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            LIST => {
                self.i += 1;
                self.visit_list(visitor)
            }
            _ => self.through_value(visitor, |d, v| d.deserialize_seq(v)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, BlockError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, BlockError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            MAP => {
                self.i += 1;
                self.visit_map(visitor)
            }
            _ => self.through_value(visitor, |d, v| d.deserialize_map(v)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BlockError> {
        match self.peek()? {
            MAP => {
                self.i += 1;
                self.visit_map(visitor)
            }
            LIST => {
                self.i += 1;
                self.visit_list(visitor)
            }
            _ => self.through_value(visitor, |d, v| d.deserialize_struct(name, fields, v)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BlockError> {
        let start = self.i;
        match self.byte()? {
            STR => {
                let label = self.str_body()?;
                visitor.visit_enum(Variant {
                    r: self,
                    label,
                    payload: false,
                })
            }
            MAP => {
                let n = self.len(2)?;
                if n == 1 && self.peek()? == STR {
                    self.i += 1;
                    let label = self.str_body()?;
                    self.deeper()?;
                    let out = visitor.visit_enum(Variant {
                        r: &mut *self,
                        label,
                        payload: true,
                    })?;
                    self.depth_left += 1;
                    Ok(out)
                } else {
                    self.i = start;
                    self.through_value(visitor, |d, v| d.deserialize_enum(name, variants, v))
                }
            }
            _ => {
                self.i = start;
                self.through_value(visitor, |d, v| d.deserialize_enum(name, variants, v))
            }
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        match self.peek()? {
            STR => self.deserialize_any(visitor),
            _ => self.through_value(visitor, |d, v| d.deserialize_identifier(v)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BlockError> {
        self.value()?;
        visitor.visit_unit()
    }
}

/// The elements of a list.
struct Items<'a, 'de> {
    r: &'a mut Reader<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = BlockError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, BlockError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.r).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The entries of a map.
struct Entries<'a, 'de> {
    r: &'a mut Reader<'de>,
    left: usize,
    value_due: bool,
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = BlockError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, BlockError> {
        if self.value_due {
            // The previous value was never asked for: skip it.
            self.r.value()?;
            self.value_due = false;
        }
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.value_due = true;
        seed.deserialize(&mut *self.r).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, BlockError> {
        if !self.value_due {
            return Err(BlockError("map value requested before its key".into()));
        }
        self.value_due = false;
        seed.deserialize(&mut *self.r)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// An enum: a variant name, then (when it came as a one-entry map) its payload.
struct Variant<'a, 'de> {
    r: &'a mut Reader<'de>,
    label: &'de str,
    payload: bool,
}

impl<'a, 'de> EnumAccess<'de> for Variant<'a, 'de> {
    type Error = BlockError;
    type Variant = Variant<'a, 'de>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), BlockError> {
        let name = de::value::BorrowedStrDeserializer::<BlockError>::new(self.label);
        Ok((seed.deserialize(name)?, self))
    }
}

impl<'de> Variant<'_, 'de> {
    fn required(&self) -> Result<(), BlockError> {
        if self.payload {
            Ok(())
        } else {
            Err(BlockError(format!(
                "variant `{}` expects a payload, found a bare variant name",
                self.label
            )))
        }
    }
}

impl<'de> VariantAccess<'de> for Variant<'_, 'de> {
    type Error = BlockError;

    fn unit_variant(self) -> Result<(), BlockError> {
        if !self.payload {
            return Ok(());
        }
        match self.r.value()? {
            Value::Nil => Ok(()),
            other => Err(BlockError(format!(
                "variant `{}` takes no payload, found {}",
                self.label,
                other.type_name()
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, BlockError> {
        self.required()?;
        seed.deserialize(self.r)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, BlockError> {
        self.required()?;
        self.r.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BlockError> {
        self.required()?;
        self.r.deserialize_struct("", fields, visitor)
    }
}
