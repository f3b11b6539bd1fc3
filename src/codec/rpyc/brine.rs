//! Brine: RPyC's value serialization, read and written byte for byte as Python's
//! `rpyc.core.brine` does.
//!
//! # Usage
//!
//! [`encode`] appends a [`Brine`] value to a buffer with the shortest tag, as Python does;
//! [`decode`] reads one value from a byte slice under [`Limits`] and fails on trailing bytes.
//! Every form Python can write is accepted, including the long tuple, bytes and int tags.
//!
//! # Limits
//!
//! Brine comes from the peer, so decoding is hostile-input safe: nesting deeper than
//! [`Limits::max_depth`] or more than [`Limits::max_items`] values in one message is refused,
//! a declared length or count is checked against the bytes actually present before anything
//! is allocated (and a tuple reserves room for at most 64 items ahead of those that
//! arrived), and ints longer than [`MAX_INT_DIGITS`] digits (Python's own default limit
//! for `int(str)`) are refused. Brine has no pickle form and none is accepted: an unknown tag
//! is an error, never a fallback.

use std::fmt;

use crate::error::{Error, Result};

/// Longest decimal digit string accepted for an int (Python's `sys.int_info` default
/// `str_digits_check_threshold` is 640 and its default limit 4300).
pub(crate) const MAX_INT_DIGITS: usize = 4300;

/// Most items a tuple reserves room for before they arrive.
const PREALLOC_ITEMS: usize = 64;

const TAG_NONE: u8 = 0x00;
const TAG_EMPTY_BYTES: u8 = 0x01;
const TAG_EMPTY_TUPLE: u8 = 0x02;
const TAG_TRUE: u8 = 0x03;
const TAG_FALSE: u8 = 0x04;
const TAG_NOT_IMPLEMENTED: u8 = 0x05;
const TAG_ELLIPSIS: u8 = 0x06;
const TAG_STR: u8 = 0x08;
const TAG_BYTES1: u8 = 0x0A;
const TAG_BYTES_L1: u8 = 0x0E;
const TAG_BYTES_L4: u8 = 0x0F;
const TAG_TUP1: u8 = 0x10;
const TAG_TUP_L1: u8 = 0x14;
const TAG_TUP_L4: u8 = 0x15;
const TAG_INT_L1: u8 = 0x16;
const TAG_INT_L4: u8 = 0x17;
const TAG_FLOAT: u8 = 0x18;
const TAG_SLICE: u8 = 0x19;
const TAG_FROZENSET: u8 = 0x1A;
const TAG_COMPLEX: u8 = 0x1B;
/// Immediate ints: byte `b` in `0x20..=0xEF` is the int `b - 0x50`.
const IMM_FIRST: u8 = 0x20;
const IMM_LAST: u8 = 0xEF;
const IMM_BIAS: i64 = 0x50;

/// One brine value: exactly the types Python's `brine.dumpable` accepts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Brine {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An int that fits `i64`.
    Int(i64),
    /// An int beyond `i64`, as its canonical decimal text (`-` and digits, no leading zero).
    BigInt(String),
    /// A float.
    Float(f64),
    /// A complex number (real, imaginary).
    Complex(f64, f64),
    /// A `str`.
    Str(String),
    /// A `bytes`.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Brine>),
    /// A `slice(start, stop, step)`.
    Slice(Box<[Brine; 3]>),
    /// A frozenset, as its members in wire order.
    FrozenSet(Vec<Brine>),
    /// `NotImplemented`.
    NotImplemented,
    /// `Ellipsis` (`...`).
    Ellipsis,
}

impl Brine {
    /// A `str` value.
    pub(crate) fn str(s: impl Into<String>) -> Brine {
        Brine::Str(s.into())
    }

    /// The int, when this is one that fits `i64`.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Brine::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items, when this is a tuple.
    pub(crate) fn as_tuple(&self) -> Option<&[Brine]> {
        match self {
            Brine::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The items, when this is a tuple (taking them).
    pub(crate) fn into_tuple(self) -> Option<Vec<Brine>> {
        match self {
            Brine::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// Python's name of this value's type (`"int"`, `"tuple"` …), for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Brine::None => "NoneType",
            Brine::Bool(_) => "bool",
            Brine::Int(_) | Brine::BigInt(_) => "int",
            Brine::Float(_) => "float",
            Brine::Complex(..) => "complex",
            Brine::Str(_) => "str",
            Brine::Bytes(_) => "bytes",
            Brine::Tuple(_) => "tuple",
            Brine::Slice(_) => "slice",
            Brine::FrozenSet(_) => "frozenset",
            Brine::NotImplemented => "NotImplementedType",
            Brine::Ellipsis => "ellipsis",
        }
    }
}

impl fmt::Display for Brine {
    /// Python's `repr` of the value (close enough for traces: floats use Rust's shortest form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Brine::None => f.write_str("None"),
            Brine::Bool(true) => f.write_str("True"),
            Brine::Bool(false) => f.write_str("False"),
            Brine::Int(i) => write!(f, "{i}"),
            Brine::BigInt(s) => f.write_str(s),
            Brine::Float(x) => write_float(f, *x),
            Brine::Complex(re, im) => {
                f.write_str("(")?;
                write_float(f, *re)?;
                f.write_str(if *im < 0.0 { "-" } else { "+" })?;
                write_float(f, im.abs())?;
                f.write_str("j)")
            }
            Brine::Str(s) => write!(f, "{s:?}"),
            Brine::Bytes(b) => {
                f.write_str("b'")?;
                for &c in b {
                    if (c.is_ascii_graphic() || c == b' ') && c != b'\'' && c != b'\\' {
                        write!(f, "{}", c as char)?;
                    } else {
                        write!(f, "\\x{c:02x}")?;
                    }
                }
                f.write_str("'")
            }
            Brine::Tuple(items) => {
                f.write_str("(")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                if items.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
            Brine::Slice(s) => write!(f, "slice({}, {}, {})", s[0], s[1], s[2]),
            Brine::FrozenSet(items) => {
                f.write_str("frozenset({")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("})")
            }
            Brine::NotImplemented => f.write_str("NotImplemented"),
            Brine::Ellipsis => f.write_str("Ellipsis"),
        }
    }
}

fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        write!(f, "{x:.1}")
    } else {
        write!(f, "{x}")
    }
}

/// Bounds on what [`decode`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Deepest nesting of tuples, slices, frozensets and strs.
    pub(crate) max_depth: usize,
    /// Most values (of any kind, nested ones included) in one decoded message.
    pub(crate) max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_items: 1 << 20,
        }
    }
}

/// Appends `value` to `out` in brine, choosing the shortest tag as Python does.
pub(crate) fn encode(value: &Brine, out: &mut Vec<u8>) {
    match value {
        Brine::None => out.push(TAG_NONE),
        Brine::Bool(true) => out.push(TAG_TRUE),
        Brine::Bool(false) => out.push(TAG_FALSE),
        Brine::NotImplemented => out.push(TAG_NOT_IMPLEMENTED),
        Brine::Ellipsis => out.push(TAG_ELLIPSIS),
        Brine::Int(i) => encode_int(*i, out),
        Brine::BigInt(s) => encode_digits(s.as_bytes(), out),
        Brine::Float(x) => {
            out.push(TAG_FLOAT);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Brine::Complex(re, im) => {
            out.push(TAG_COMPLEX);
            out.extend_from_slice(&re.to_be_bytes());
            out.extend_from_slice(&im.to_be_bytes());
        }
        Brine::Str(s) => {
            out.push(TAG_STR);
            encode_bytes(s.as_bytes(), out);
        }
        Brine::Bytes(b) => encode_bytes(b, out),
        Brine::Tuple(items) => encode_tuple(items, out),
        Brine::Slice(s) => {
            out.push(TAG_SLICE);
            encode_tuple(&s[..], out);
        }
        Brine::FrozenSet(items) => {
            out.push(TAG_FROZENSET);
            encode_tuple(items, out);
        }
    }
}

/// Encodes `value` into a fresh buffer.
#[cfg(test)]
pub(crate) fn to_bytes(value: &Brine) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out);
    out
}

fn encode_int(i: i64, out: &mut Vec<u8>) {
    if (-48..=159).contains(&i) {
        out.push((i + IMM_BIAS) as u8);
    } else {
        encode_digits(i.to_string().as_bytes(), out);
    }
}

fn encode_digits(digits: &[u8], out: &mut Vec<u8>) {
    if digits.len() < 256 {
        out.push(TAG_INT_L1);
        out.push(digits.len() as u8);
    } else {
        out.push(TAG_INT_L4);
        out.extend_from_slice(&(digits.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(digits);
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    match b.len() {
        0 => out.push(TAG_EMPTY_BYTES),
        n @ 1..=4 => out.push(TAG_BYTES1 + (n as u8 - 1)),
        n if n < 256 => {
            out.push(TAG_BYTES_L1);
            out.push(n as u8);
        }
        n => {
            out.push(TAG_BYTES_L4);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(b);
}

fn encode_tuple(items: &[Brine], out: &mut Vec<u8>) {
    match items.len() {
        0 => out.push(TAG_EMPTY_TUPLE),
        n @ 1..=4 => out.push(TAG_TUP1 + (n as u8 - 1)),
        n if n < 256 => {
            out.push(TAG_TUP_L1);
            out.push(n as u8);
        }
        n => {
            out.push(TAG_TUP_L4);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    for item in items {
        encode(item, out);
    }
}

/// Decodes exactly one brine value from `bytes` (trailing bytes are an error).
pub(crate) fn decode(bytes: &[u8], limits: Limits) -> Result<Brine> {
    let mut r = Reader {
        bytes,
        pos: 0,
        items: 0,
        limits,
    };
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(bad(format!(
            "{} trailing byte(s) after the value",
            bytes.len() - r.pos
        )));
    }
    Ok(v)
}

fn bad(msg: impl fmt::Display) -> Error {
    Error::Protocol(format!("malformed brine: {msg}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    items: usize,
    limits: Limits,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                bad(format!(
                    "{n} byte(s) declared at offset {}, {} present",
                    self.pos,
                    self.bytes.len() - self.pos
                ))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn f64(&mut self) -> Result<f64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn value(&mut self, depth: usize) -> Result<Brine> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(bad(format!(
                "more than {} values in one message",
                self.limits.max_items
            )));
        }
        let tag = self.u8()?;
        Ok(match tag {
            TAG_NONE => Brine::None,
            TAG_EMPTY_BYTES => Brine::Bytes(Vec::new()),
            TAG_EMPTY_TUPLE => Brine::Tuple(Vec::new()),
            TAG_TRUE => Brine::Bool(true),
            TAG_FALSE => Brine::Bool(false),
            TAG_NOT_IMPLEMENTED => Brine::NotImplemented,
            TAG_ELLIPSIS => Brine::Ellipsis,
            TAG_STR => {
                self.nest(depth)?;
                let Brine::Bytes(b) = self.value(depth + 1)? else {
                    return Err(bad("a str tag not followed by bytes"));
                };
                Brine::Str(String::from_utf8(b).map_err(|_| bad("a str that is not UTF-8"))?)
            }
            0x0A..=0x0D => Brine::Bytes(self.take((tag - TAG_BYTES1 + 1) as usize)?.to_vec()),
            TAG_BYTES_L1 => {
                let n = self.u8()? as usize;
                Brine::Bytes(self.take(n)?.to_vec())
            }
            TAG_BYTES_L4 => {
                let n = self.u32()?;
                Brine::Bytes(self.take(n)?.to_vec())
            }
            0x10..=0x13 => self.tuple(depth, (tag - TAG_TUP1 + 1) as usize)?,
            TAG_TUP_L1 => {
                let n = self.u8()? as usize;
                self.tuple(depth, n)?
            }
            TAG_TUP_L4 => {
                let n = self.u32()?;
                self.tuple(depth, n)?
            }
            TAG_INT_L1 => {
                let n = self.u8()? as usize;
                self.int(n)?
            }
            TAG_INT_L4 => {
                let n = self.u32()?;
                self.int(n)?
            }
            TAG_FLOAT => Brine::Float(self.f64()?),
            TAG_COMPLEX => Brine::Complex(self.f64()?, self.f64()?),
            TAG_SLICE => {
                self.nest(depth)?;
                match self.value(depth + 1)? {
                    Brine::Tuple(items) if items.len() == 3 => {
                        let [a, b, c]: [Brine; 3] = items.try_into().map_err(|_| bad("slice"))?;
                        Brine::Slice(Box::new([a, b, c]))
                    }
                    other => {
                        return Err(bad(format!(
                            "a slice needs a 3-tuple, found {}",
                            other.type_name()
                        )))
                    }
                }
            }
            TAG_FROZENSET => {
                self.nest(depth)?;
                match self.value(depth + 1)? {
                    Brine::Tuple(items) => Brine::FrozenSet(items),
                    other => {
                        return Err(bad(format!(
                            "a frozenset needs a tuple, found {}",
                            other.type_name()
                        )))
                    }
                }
            }
            IMM_FIRST..=IMM_LAST => Brine::Int(tag as i64 - IMM_BIAS),
            other => {
                return Err(bad(format!(
                    "unknown tag 0x{other:02x} at offset {} (pickle and other forms are refused)",
                    self.pos - 1
                )))
            }
        })
    }

    fn nest(&self, depth: usize) -> Result<()> {
        if depth >= self.limits.max_depth {
            return Err(bad(format!(
                "nested deeper than {} levels",
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    fn tuple(&mut self, depth: usize, n: usize) -> Result<Brine> {
        self.nest(depth)?;
        // Each item takes at least one byte: a count beyond the bytes left is a lie, refused
        // before anything is allocated.
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(bad(format!(
                "a tuple of {n} items declared with {left} byte(s) left"
            )));
        }
        // Checked against the bytes left, a count can still be a million in a 1 MiB frame
        // at every level of nesting: reserve a few items ahead, and grow as they arrive.
        let mut items = Vec::with_capacity(n.min(PREALLOC_ITEMS));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Brine::Tuple(items))
    }

    fn int(&mut self, n: usize) -> Result<Brine> {
        if n > MAX_INT_DIGITS + 1 {
            return Err(bad(format!(
                "an int of {n} digits (at most {MAX_INT_DIGITS} accepted)"
            )));
        }
        let text = self.take(n)?;
        parse_int(text).ok_or_else(|| bad("an int that is not decimal text"))
    }
}

/// Parses Python's `str(int)` text (an optional sign, then digits) into an int value.
fn parse_int(text: &[u8]) -> Option<Brine> {
    let (neg, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let s = std::str::from_utf8(text).ok()?;
    if let Ok(i) = s.parse::<i64>() {
        return Some(Brine::Int(i));
    }
    // Canonical form: no plus sign, no leading zeros.
    let trimmed = std::str::from_utf8(digits).ok()?.trim_start_matches('0');
    if trimmed.is_empty() {
        return Some(Brine::Int(0));
    }
    Some(Brine::BigInt(if neg {
        format!("-{trimmed}")
    } else {
        trimmed.to_owned()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(v: Brine) -> Vec<u8> {
        let bytes = to_bytes(&v);
        assert_eq!(
            decode(&bytes, Limits::default()).unwrap(),
            v,
            "{bytes:02x?}"
        );
        bytes
    }

    #[test]
    fn matches_the_traced_bytes() {
        // "add" = 08 0c 61 64 64; "" = 08 01
        assert_eq!(rt(Brine::str("add")), [0x08, 0x0c, b'a', b'd', b'd']);
        assert_eq!(rt(Brine::str("")), [0x08, 0x01]);
        // (0, (3, ())) of the GETROOT request: 11 50 11 53 11 51 02 minus the label
        assert_eq!(
            rt(Brine::Tuple(vec![
                Brine::Int(0),
                Brine::Tuple(vec![Brine::Int(3), Brine::Tuple(vec![])])
            ])),
            [0x11, 0x50, 0x11, 0x53, 0x02]
        );
        assert_eq!(rt(Brine::Int(-48)), [0x20]);
        assert_eq!(rt(Brine::Int(159)), [0xef]);
        assert_eq!(rt(Brine::Int(160)), [0x16, 3, b'1', b'6', b'0']);
        assert_eq!(
            rt(Brine::Int(94188668838560))[..2],
            [0x16, 0x0e],
            "ids are decimal text"
        );
    }

    #[test]
    fn every_form_round_trips() {
        for v in [
            Brine::None,
            Brine::Bool(true),
            Brine::Bool(false),
            Brine::NotImplemented,
            Brine::Ellipsis,
            Brine::Int(i64::MIN),
            Brine::Int(i64::MAX),
            Brine::BigInt("123456789012345678901234567890".into()),
            Brine::BigInt("-99999999999999999999".into()),
            Brine::BigInt("9".repeat(300)),
            Brine::Float(1.5),
            Brine::Float(f64::INFINITY),
            Brine::Complex(1.0, -2.0),
            Brine::Bytes(vec![1, 2, 3]),
            Brine::Bytes(vec![7; 255]),
            Brine::Bytes(vec![7; 256]),
            Brine::Str("héllo".into()),
            Brine::Tuple((0..5).map(Brine::Int).collect()),
            Brine::Tuple((0..300).map(Brine::Int).collect()),
            Brine::Slice(Box::new([Brine::Int(1), Brine::None, Brine::Int(-1)])),
            Brine::FrozenSet(vec![Brine::str("a"), Brine::Int(2)]),
        ] {
            rt(v);
        }
    }

    #[test]
    fn hostile_input_is_refused_clearly() {
        let lim = Limits::default();
        // unknown tags, pickle's opcode 0x80 included
        for tag in [0x07u8, 0x09, 0x1c, 0x1f, 0xf0, 0xff] {
            let e = decode(&[tag], lim).unwrap_err().to_string();
            assert!(e.contains("unknown tag"), "{e}");
        }
        // absurd lengths allocate nothing
        let e = decode(&[0x0f, 0xff, 0xff, 0xff, 0xff], lim).unwrap_err();
        assert!(e.to_string().contains("declared"), "{e}");
        let e = decode(&[0x15, 0xff, 0xff, 0xff, 0xff, 0x00], lim).unwrap_err();
        assert!(e.to_string().contains("tuple of"), "{e}");
        // depth
        let deep = [0x10u8; 100];
        let e = decode(&deep, lim).unwrap_err();
        assert!(e.to_string().contains("deeper"), "{e}");
        // item count
        let mut many = vec![0x15, 0, 0, 0x10, 0];
        many.extend(std::iter::repeat_n(0x00, 0x1000));
        let e = decode(
            &many,
            Limits {
                max_depth: 8,
                max_items: 100,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("values in one message"), "{e}");
        // bad ints, bad utf-8, trailing bytes, wrong inner types
        assert!(decode(&[0x16, 2, b'1', b'x'], lim).is_err());
        assert!(decode(&[0x16, 0], lim).is_err());
        assert!(decode(&[0x08, 0x0a, 0xff], lim).is_err());
        assert!(decode(&[0x00, 0x00], lim).is_err());
        assert!(decode(&[0x08, 0x50], lim).is_err());
        assert!(decode(&[0x19, 0x11, 0x50, 0x50], lim).is_err());
        let e = decode(&[0x17, 0, 1, 0, 0], lim).unwrap_err();
        assert!(e.to_string().contains("digits"), "{e}");
    }

    #[test]
    fn non_canonical_ints_are_read_as_python_would() {
        let lim = Limits::default();
        assert_eq!(decode(b"\x16\x02+7", lim).unwrap(), Brine::Int(7));
        assert_eq!(decode(b"\x16\x03007", lim).unwrap(), Brine::Int(7));
        let big = format!("-000{}", "1".repeat(30));
        let mut bytes = vec![0x16, big.len() as u8];
        bytes.extend_from_slice(big.as_bytes());
        assert_eq!(
            decode(&bytes, lim).unwrap(),
            Brine::BigInt(format!("-{}", "1".repeat(30)))
        );
    }

    #[test]
    fn display_is_python_like() {
        let v = Brine::Tuple(vec![
            Brine::str("a"),
            Brine::Int(1),
            Brine::None,
            Brine::Bytes(b"x\x00".to_vec()),
            Brine::Tuple(vec![Brine::Float(2.0)]),
        ]);
        assert_eq!(v.to_string(), r#"("a", 1, None, b'x\x00', (2.0,))"#);
    }
}
