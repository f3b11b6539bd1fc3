//! A window of stream items as one block of bytes: written straight from the producer's
//! `T: Serialize`, read straight into the holder's `T: Deserialize`, with no [`Value`] per
//! item on either side.
//!
//! # Layout
//!
//! ```text
//! flags: u8       bit 0: the stream ended after these items; other bits 0
//! count: u32 LE   items that follow
//! items          `count` values, each in the native wire's value layout
//! ```
//!
//! An item is laid out as the native wire lays out the value [`to_value`](crate::to_value)
//! would make of it (see `docs/protocol.md`, "Values"): a tag byte (0 nil, 1 bool, 2 signed
//! integer as a zigzag varint, 3 unsigned integer above `i64::MAX`, 4 `f64`, 5 string,
//! 6 bytes, 7 list, 8 map), then its contents, lengths as varints. Structs are maps with
//! string keys, enum variants a string or a one-entry map, `None` and `()` nil: the same
//! model as [`Value`], so the holder reads an item exactly as it would read the value
//! (untagged enums and other shapes that look at what comes included). A reference (tag 9)
//! cannot be in a block: the owner sends a stream whose items hold references as values.
//!
//! # Hostile input
//!
//! Every length is checked against the bytes left before anything is read or reserved:
//! `count` and a list's length may not exceed the bytes left (an item takes at least one
//! byte), a map's may not exceed half of them, and a string's or bytes' length must be there
//! in full. Nesting is bounded by the holder's depth limit. A malformed item is an error
//! (which ends the stream), never a panic.

mod read;

use std::fmt;

use serde::de;
use serde::ser::{self, Serialize, Serializer};

use crate::value::REF_TOKEN;

pub(crate) use read::{header, Reader};

/// Bytes before the first item: the flags and the count.
pub(crate) const HEADER: usize = 5;

/// Flag: the stream ended after this block's items.
pub(crate) const ENDED: u8 = 1;

const NIL: u8 = 0;
const BOOL: u8 = 1;
const INT: u8 = 2;
const UINT: u8 = 3;
const FLOAT: u8 = 4;
const STR: u8 = 5;
const BYTES: u8 = 6;
const LIST: u8 = 7;
const MAP: u8 = 8;

/// Why an item could not be written or read.
#[derive(Debug)]
pub(crate) struct BlockError(pub(crate) String);

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BlockError {}

impl ser::Error for BlockError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        BlockError(msg.to_string())
    }
}

impl de::Error for BlockError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        BlockError(msg.to_string())
    }
}

#[cold]
fn malformed(what: &str) -> BlockError {
    BlockError(format!("malformed stream block: {what}"))
}

// ---------------------------------------------------------------------------------------
// Writing

/// Appends `tag` and `v` as bincode's varint: one byte below 251, else a marker and 2, 4
/// or 8 bytes. Each case appends an array of fixed size, which compiles to plain stores.
#[inline]
fn put_tagged(out: &mut Vec<u8>, tag: u8, v: u64) {
    if v < 251 {
        out.extend_from_slice(&[tag, v as u8]);
    } else if let Ok(v) = u16::try_from(v) {
        let [a, b] = v.to_le_bytes();
        out.extend_from_slice(&[tag, 251, a, b]);
    } else if let Ok(v) = u32::try_from(v) {
        let [a, b, c, d] = v.to_le_bytes();
        out.extend_from_slice(&[tag, 252, a, b, c, d]);
    } else {
        let [a, b, c, d, e, f, g, h] = v.to_le_bytes();
        out.extend_from_slice(&[tag, 253, a, b, c, d, e, f, g, h]);
    }
}

/// Appends `v` as bincode's varint (a length).
#[inline]
fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        let [a, b] = v.to_le_bytes();
        out.extend_from_slice(&[251, a, b]);
    } else if let Ok(v) = u32::try_from(v) {
        let [a, b, c, d] = v.to_le_bytes();
        out.extend_from_slice(&[252, a, b, c, d]);
    } else {
        let [a, b, c, d, e, f, g, h] = v.to_le_bytes();
        out.extend_from_slice(&[253, a, b, c, d, e, f, g, h]);
    }
}

fn varint_len(v: u64) -> usize {
    if v < 251 {
        1
    } else if v <= u64::from(u16::MAX) {
        3
    } else if v <= u64::from(u32::MAX) {
        5
    } else {
        9
    }
}

#[inline]
fn put_int(out: &mut Vec<u8>, v: i64) {
    put_tagged(out, INT, ((v << 1) ^ (v >> 63)) as u64);
}

#[inline]
fn put_u64(out: &mut Vec<u8>, v: u64) {
    match i64::try_from(v) {
        Ok(i) => put_int(out, i),
        Err(_) => put_tagged(out, UINT, v),
    }
}

fn put_str(out: &mut Vec<u8>, tag: u8, s: &[u8]) {
    out.push(tag);
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The block being written: the producer's items go straight into `out`.
pub(crate) struct Sink {
    pub(crate) out: Vec<u8>,
    /// Set when an item held an object reference (which a block cannot carry).
    pub(crate) saw_ref: bool,
}

impl Sink {
    /// An empty block (the header filled in by [`Sink::finish`]).
    pub(crate) fn new(capacity: usize) -> Sink {
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&[0; HEADER]);
        Sink {
            out,
            saw_ref: false,
        }
    }

    /// Appends one item; on an error the block is as it was before.
    #[inline]
    pub(crate) fn put<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<(), BlockError> {
        let mark = self.out.len();
        let r = item.serialize(&mut *self);
        if r.is_err() {
            self.out.truncate(mark);
        }
        r
    }

    /// Bytes written so far, header included.
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.out.len()
    }

    /// The finished block of `count` items.
    pub(crate) fn finish(mut self, count: u32, ended: bool) -> Vec<u8> {
        self.out[0] = if ended { ENDED } else { 0 };
        self.out[1..HEADER].copy_from_slice(&count.to_le_bytes());
        self.out
    }
}

/// A list or map being written: its length is written first and fixed at the end if the
/// serializer's hint was wrong or missing.
pub(crate) struct Compound<'a> {
    sink: &'a mut Sink,
    len_at: usize,
    declared: u64,
    count: u64,
}

impl<'a> Compound<'a> {
    fn open(sink: &'a mut Sink, tag: u8, len: Option<usize>) -> Compound<'a> {
        sink.out.push(tag);
        let len_at = sink.out.len();
        let declared = len.unwrap_or(0) as u64;
        put_varint(&mut sink.out, declared);
        Compound {
            sink,
            len_at,
            declared,
            count: 0,
        }
    }

    fn close(self) {
        if self.count != self.declared {
            let mut fixed = Vec::with_capacity(9);
            put_varint(&mut fixed, self.count);
            let old = self.len_at..self.len_at + varint_len(self.declared);
            self.sink.out.splice(old, fixed);
        }
    }
}

impl<'a> Serializer for &'a mut Sink {
    type Ok = ();
    type Error = BlockError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), BlockError> {
        self.out.extend_from_slice(&[BOOL, u8::from(v)]);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), BlockError> {
        put_int(&mut self.out, v.into());
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), BlockError> {
        put_int(&mut self.out, v.into());
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), BlockError> {
        put_int(&mut self.out, v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), BlockError> {
        put_int(&mut self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), BlockError> {
        if let Ok(i) = i64::try_from(v) {
            put_int(&mut self.out, i);
        } else if let Ok(u) = u64::try_from(v) {
            put_u64(&mut self.out, u);
        } else {
            return Err(BlockError(format!("integer {v} does not fit in 64 bits")));
        }
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), BlockError> {
        put_int(&mut self.out, v.into());
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), BlockError> {
        put_int(&mut self.out, v.into());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), BlockError> {
        put_int(&mut self.out, v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), BlockError> {
        put_u64(&mut self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), BlockError> {
        let u = u64::try_from(v)
            .map_err(|_| BlockError(format!("integer {v} does not fit in 64 bits")))?;
        put_u64(&mut self.out, u);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), BlockError> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), BlockError> {
        self.out.push(FLOAT);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), BlockError> {
        put_str(&mut self.out, STR, v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), BlockError> {
        put_str(&mut self.out, STR, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), BlockError> {
        put_str(&mut self.out, BYTES, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), BlockError> {
        self.out.push(NIL);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), BlockError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), BlockError> {
        self.out.push(NIL);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), BlockError> {
        self.out.push(NIL);
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), BlockError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), BlockError> {
        if name == REF_TOKEN {
            self.saw_ref = true;
            return Err(BlockError(
                "an object reference cannot travel in a block".into(),
            ));
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), BlockError> {
        self.out.extend_from_slice(&[MAP, 1]);
        put_str(&mut self.out, STR, variant.as_bytes());
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>, BlockError> {
        Ok(Compound::open(self, LIST, len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, BlockError> {
        Ok(Compound::open(self, LIST, Some(len)))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, BlockError> {
        Ok(Compound::open(self, LIST, Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, BlockError> {
        self.out.extend_from_slice(&[MAP, 1]);
        put_str(&mut self.out, STR, variant.as_bytes());
        Ok(Compound::open(self, LIST, Some(len)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a>, BlockError> {
        Ok(Compound::open(self, MAP, len))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a>, BlockError> {
        Ok(Compound::open(self, MAP, Some(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, BlockError> {
        self.out.extend_from_slice(&[MAP, 1]);
        put_str(&mut self.out, STR, variant.as_bytes());
        Ok(Compound::open(self, MAP, Some(len)))
    }
}

impl Compound<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BlockError> {
        value.serialize(&mut *self.sink)?;
        self.count += 1;
        Ok(())
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), BlockError> {
        put_str(&mut self.sink.out, STR, key.as_bytes());
        self.element(value)
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = BlockError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BlockError> {
        self.element(value)
    }
    fn end(self) -> Result<(), BlockError> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = BlockError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BlockError> {
        self.element(value)
    }
    fn end(self) -> Result<(), BlockError> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = BlockError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BlockError> {
        self.element(value)
    }
    fn end(self) -> Result<(), BlockError> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = BlockError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BlockError> {
        self.element(value)
    }
    fn end(self) -> Result<(), BlockError> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = BlockError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), BlockError> {
        key.serialize(&mut *self.sink)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BlockError> {
        self.element(value)
    }
    fn end(self) -> Result<(), BlockError> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = BlockError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), BlockError> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), BlockError> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = BlockError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), BlockError> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), BlockError> {
        self.close();
        Ok(())
    }
}
