//! The bytes of a value call over NATS: a request (path, arguments, deadline) and its reply
//! (the instance that answered, a value or an error). By value only: there is no encoding for
//! a reference, so a [`Value::Ref`] is refused when a message is built, never sent.
//!
//! Every message starts with [`MAGIC`] and [`VERSION`]. A value is a tag byte and its
//! payload: integers and floats as 8 little-endian bytes, lengths and counts as LEB128
//! varints. Decoding treats the bytes as hostile: a count is checked against the bytes left
//! before anything is allocated, nesting is bounded by [`MAX_DEPTH`], and trailing bytes are
//! an error.
//!
//! A request's payload is `N`, `1`, the deadline in milliseconds (varint; 0: none, a cast
//! from outside a served call), the path (a count, then each segment as a length and UTF-8
//! bytes), the positional arguments (a count, then each value) and the named ones (a count,
//! then each name and value). The caller's trace id travels beside the payload, in the NATS
//! header [`TRACE_HEADER`] (`Netref-Trace: 0123456789abcdef`, exactly 16 hex digits), and
//! only when there is one: so the payload is the same bytes whether or not a trace rides
//! along, a worker that predates the header serves the request as before (it reads only the
//! payload), and a request without the header (from such a caller) is served without a
//! trace. A header that is not 16 hex digits makes the request malformed.

use std::time::Duration;

use crate::error::{Error, ErrorKind, RemoteError, Result};
use crate::protocol::KINDS;
use crate::value::Value;

/// The first byte of every message.
const MAGIC: u8 = b'N';
/// The encoding's version.
const VERSION: u8 = 1;
/// The deepest nesting of lists and maps a decoded value may have (as [`Config::max_depth`](crate::Config)).
pub(crate) const MAX_DEPTH: usize = 64;

const T_NIL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_UINT: u8 = 4;
const T_FLOAT: u8 = 5;
const T_STR: u8 = 6;
const T_BYTES: u8 = 7;
const T_LIST: u8 = 8;
const T_MAP: u8 = 9;

/// The NATS header a request, cast or fanout carries its caller's trace id in.
pub(crate) const TRACE_HEADER: &str = "Netref-Trace";

/// A trace id as [`TRACE_HEADER`] carries it: 16 lowercase hex digits.
pub(crate) fn trace_header(trace: u64) -> String {
    format!("{trace:016x}")
}

/// Reads [`TRACE_HEADER`]'s value: exactly 16 hex digits (0 reads as no trace).
pub(crate) fn decode_trace(text: &str) -> Result<u64> {
    if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(format!(
            "the {TRACE_HEADER} header is not 16 hex digits: {:?}",
            text.chars().take(40).collect::<String>()
        )));
    }
    u64::from_str_radix(text, 16).map_err(|e| malformed(format!("{TRACE_HEADER}: {e}")))
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    /// The member path on the worker's root (`["jobs", "status"]`).
    pub(crate) path: Vec<String>,
    /// Positional arguments.
    pub(crate) positional: Vec<Value>,
    /// Named arguments.
    pub(crate) named: Vec<(String, Value)>,
    /// What is left of the caller's deadline; `None` for a cast.
    pub(crate) deadline: Option<Duration>,
}

/// Where a reference was found, for the error that refuses it.
fn no_refs(what: &str) -> Error {
    Error::Value(format!(
        "{what} is an object reference; NATS carries values only (request, cast and fanout \
         pass arguments and results by value): connect to an instance directly \
         (`nats::connect_service`) to pass objects by reference"
    ))
}

/// Encodes a request, refusing references.
pub(crate) fn encode_request(
    path: &[String],
    positional: &[Value],
    named: &[(String, Value)],
    deadline: Option<Duration>,
) -> Result<Vec<u8>> {
    let mut out = vec![MAGIC, VERSION];
    let ms = deadline.map_or(0, |d| d.as_millis().clamp(1, u128::from(u64::MAX)) as u64);
    varint(&mut out, ms);
    varint(&mut out, path.len() as u64);
    for seg in path {
        string(&mut out, seg);
    }
    varint(&mut out, positional.len() as u64);
    for (i, v) in positional.iter().enumerate() {
        value(&mut out, v).map_err(|()| no_refs(&format!("argument {}", i + 1)))?;
    }
    varint(&mut out, named.len() as u64);
    for (name, v) in named {
        string(&mut out, name);
        value(&mut out, v).map_err(|()| no_refs(&format!("argument `{name}`")))?;
    }
    Ok(out)
}

/// Decodes a request.
pub(crate) fn decode_request(bytes: &[u8]) -> Result<Request> {
    let mut r = Reader::new(bytes)?;
    let ms = r.varint()?;
    let deadline = (ms != 0).then(|| Duration::from_millis(ms));
    let n = r.count()?;
    let mut path = ahead(n);
    for _ in 0..n {
        path.push(r.string()?);
    }
    let n = r.count()?;
    let mut positional = ahead(n);
    for _ in 0..n {
        positional.push(r.value(0)?);
    }
    let n = r.count()?;
    let mut named = ahead(n);
    for _ in 0..n {
        let name = r.string()?;
        named.push((name, r.value(0)?));
    }
    r.end()?;
    Ok(Request {
        path,
        positional,
        named,
        deadline,
    })
}

/// Encodes a value on its own (a registry entry), refusing references.
pub(crate) fn encode_value(v: &Value) -> Result<Vec<u8>> {
    let mut out = vec![MAGIC, VERSION];
    value(&mut out, v).map_err(|()| no_refs("a registry entry"))?;
    Ok(out)
}

/// Decodes a value encoded by [`encode_value`].
pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value> {
    let mut r = Reader::new(bytes)?;
    let v = r.value(0)?;
    r.end()?;
    Ok(v)
}

/// Encodes a reply from instance `instance`. A result holding a reference becomes an error
/// reply that says so.
pub(crate) fn encode_reply(instance: &str, result: &Result<Value>) -> Vec<u8> {
    let mut out = vec![MAGIC, VERSION];
    string(&mut out, instance);
    let start = out.len();
    let error = match result {
        Ok(v) => {
            out.push(0);
            match value(&mut out, v) {
                Ok(()) => return out,
                Err(()) => {
                    out.truncate(start);
                    no_refs("the result").into_remote()
                }
            }
        }
        Err(e) => match e {
            Error::Remote(r) => r.clone(),
            other => RemoteError::new(other.kind(), other.to_string()),
        },
    };
    out.push(1);
    out.push(kind_code(error.kind));
    string(&mut out, &error.type_name);
    string(&mut out, &error.message);
    varint(&mut out, error.chain.len() as u64);
    for hop in &error.chain {
        string(&mut out, hop);
    }
    out
}

/// Decodes a reply: the instance that sent it and its result.
pub(crate) fn decode_reply(bytes: &[u8]) -> Result<(String, Result<Value>)> {
    let mut r = Reader::new(bytes)?;
    let instance = r.string()?;
    let result = match r.byte()? {
        0 => Ok(r.value(0)?),
        1 => {
            let kind = kind_from(r.byte()?);
            let type_name = r.string()?;
            let message = r.string()?;
            let n = r.count()?;
            let mut chain = ahead(n);
            for _ in 0..n {
                chain.push(r.string()?);
            }
            Err(Error::Remote(RemoteError {
                kind,
                type_name,
                message,
                chain,
            }))
        }
        other => return Err(malformed(format!("unknown reply status {other}"))),
    };
    r.end()?;
    Ok((instance, result))
}

/// An error kind travels as its index in the native wire's table, so both wires agree.
fn kind_code(kind: ErrorKind) -> u8 {
    KINDS.iter().position(|k| *k == kind).unwrap_or(4) as u8
}

/// An unknown code (a newer peer's kind) reads as `Failed`.
fn kind_from(code: u8) -> ErrorKind {
    KINDS
        .get(usize::from(code))
        .copied()
        .unwrap_or(ErrorKind::Failed)
}

/// Room for the first of `n` declared items. A count is checked against the bytes left, but
/// every level of a nested list could still declare about as many items as the message has
/// bytes: reserve a few ahead and grow as items arrive.
fn ahead<T>(n: usize) -> Vec<T> {
    const PREALLOC: usize = 64;
    Vec::with_capacity(n.min(PREALLOC))
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends `v`; `Err(())` when it holds a reference.
fn value(out: &mut Vec<u8>, v: &Value) -> std::result::Result<(), ()> {
    match v {
        Value::Nil => out.push(T_NIL),
        Value::Bool(false) => out.push(T_FALSE),
        Value::Bool(true) => out.push(T_TRUE),
        Value::Int(i) => {
            out.push(T_INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::UInt(u) => {
            out.push(T_UINT);
            out.extend_from_slice(&u.to_le_bytes());
        }
        Value::Float(x) => {
            out.push(T_FLOAT);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Str(s) => {
            out.push(T_STR);
            string(out, s);
        }
        Value::Bytes(b) => {
            out.push(T_BYTES);
            varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::List(items) => {
            out.push(T_LIST);
            varint(out, items.len() as u64);
            for item in items {
                value(out, item)?;
            }
        }
        Value::Map(entries) => {
            out.push(T_MAP);
            varint(out, entries.len() as u64);
            for (k, item) in entries {
                value(out, k)?;
                value(out, item)?;
            }
        }
        Value::Ref(_) => return Err(()),
    }
    Ok(())
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::Protocol(format!("malformed NATS message: {what}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self> {
        match bytes {
            [MAGIC, VERSION, rest @ ..] => Ok(Reader { bytes: rest }),
            [MAGIC, v, ..] => Err(malformed(format!("unknown version {v}"))),
            _ => Err(malformed("not a netref message")),
        }
    }

    fn end(&self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(malformed(format!("{} trailing bytes", self.bytes.len())))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(malformed("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn fixed(&mut self) -> Result<[u8; 8]> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(a)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(malformed("varint too long"))
    }

    /// A count of items that take at least one byte each: never more than the bytes left,
    /// so a declared count cannot make us allocate.
    fn count(&mut self) -> Result<usize> {
        let n = self.varint()?;
        if n > self.bytes.len() as u64 {
            return Err(malformed(format!(
                "count {n} with {} bytes left",
                self.bytes.len()
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String> {
        let n = self.count()?;
        let raw = self.take(n)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| malformed("a string is not UTF-8"))
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        Ok(match self.byte()? {
            T_NIL => Value::Nil,
            T_FALSE => Value::Bool(false),
            T_TRUE => Value::Bool(true),
            T_INT => Value::Int(i64::from_le_bytes(self.fixed()?)),
            T_UINT => Value::UInt(u64::from_le_bytes(self.fixed()?)),
            T_FLOAT => Value::Float(f64::from_le_bytes(self.fixed()?)),
            T_STR => Value::Str(self.string()?),
            T_BYTES => {
                let n = self.count()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            T_LIST | T_MAP if depth >= MAX_DEPTH => {
                return Err(malformed(format!("nested deeper than {MAX_DEPTH}")))
            }
            T_LIST => {
                let n = self.count()?;
                let mut items = ahead(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::List(items)
            }
            T_MAP => {
                let n = self.count()?;
                let mut entries = ahead(n / 2);
                for _ in 0..n {
                    let k = self.value(depth + 1)?;
                    entries.push((k, self.value(depth + 1)?));
                }
                Value::Map(entries)
            }
            tag => return Err(malformed(format!("unknown value tag {tag}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_travels_as_itself() {
        for kind in KINDS {
            assert_eq!(kind_from(kind_code(kind)), kind);
        }
        assert_eq!(
            kind_from(kind_code(ErrorKind::StopIteration)),
            ErrorKind::StopIteration
        );
    }

    fn sample() -> Value {
        Value::Map(vec![
            (Value::Str("n".into()), Value::Int(-7)),
            (Value::Str("big".into()), Value::UInt(u64::MAX)),
            (Value::Str("x".into()), Value::Float(1.5)),
            (
                Value::Str("l".into()),
                Value::List(vec![
                    Value::Nil,
                    Value::Bool(true),
                    Value::Bytes(vec![0, 255]),
                ]),
            ),
        ])
    }

    /// The peak virtual size of this process, in bytes.
    fn vm_peak() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmPeak:"))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .expect("a VmPeak line")
    }

    #[test]
    fn nested_declared_counts_reserve_nothing_near_them() {
        // A request whose one argument is 60 nested lists, each declaring 8M items (fewer
        // than the bytes left), then a tag that does not exist. Reserving the counts would
        // take the peak virtual size up by 60 × 8M × the size of a `Value` (over 15 GiB)
        // before the bad tag is read; untouched, so only the peak virtual size shows it.
        const BODY: usize = 16 << 20;
        let mut bytes = vec![MAGIC, VERSION, 0, 0, 1];
        for _ in 0..60 {
            bytes.push(T_LIST);
            varint(&mut bytes, (BODY / 2) as u64);
        }
        bytes.push(0xff);
        bytes.resize(BODY, 0);
        let before = vm_peak();
        let e = decode_request(&bytes).unwrap_err();
        let grew = vm_peak() - before;
        assert!(e.to_string().contains("unknown value tag 255"), "{e}");
        assert!(grew < 2 << 30, "the peak virtual size grew by {grew} bytes");
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let path = vec!["a".to_owned(), "b".to_owned()];
        let named = vec![("k".to_owned(), Value::Str("v".into()))];
        let bytes = encode_request(
            &path,
            &[sample()],
            &named,
            Some(Duration::from_millis(1500)),
        )
        .unwrap();
        let req = decode_request(&bytes).unwrap();
        assert_eq!(req.path, path);
        assert_eq!(req.positional, vec![sample()]);
        assert_eq!(req.named, named);
        assert_eq!(req.deadline, Some(Duration::from_millis(1500)));

        let (who, result) = decode_reply(&encode_reply("w1", &Ok(sample()))).unwrap();
        assert_eq!((who.as_str(), result.unwrap()), ("w1", sample()));
        let err = Error::remote(ErrorKind::NoSuchMember, "no member `x`");
        let (_, result) = decode_reply(&encode_reply("w1", &Err(err))).unwrap();
        let e = result.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchMember);
        assert!(e.to_string().contains("no member `x`"), "{e}");
    }

    #[test]
    fn references_are_refused_with_a_pointer_to_direct_connections() {
        let r = Value::List(vec![Value::Ref(crate::Proxy::local(crate::Obj::new(
            crate::adapters::List::new(),
        )))]);
        let e = encode_request(&[], &[Value::Int(1), r.clone()], &[], None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Value);
        let text = e.to_string();
        assert!(text.contains("argument 2 is an object reference"), "{text}");
        assert!(text.contains("connect_service"), "{text}");
        let (_, result) = decode_reply(&encode_reply("w", &Ok(r))).unwrap();
        let e = result.unwrap_err();
        assert!(
            e.to_string().contains("the result is an object reference"),
            "{e}"
        );
    }

    #[test]
    fn hostile_bytes_are_errors_not_panics_or_allocations() {
        // A count far beyond the bytes present.
        let mut huge = vec![MAGIC, VERSION, 0, 0];
        varint(&mut huge, u64::MAX >> 1);
        assert!(decode_request(&huge).is_err());
        // Nesting past the bound.
        let mut deep = vec![MAGIC, VERSION, 0, 0, 1];
        for _ in 0..=MAX_DEPTH {
            deep.extend_from_slice(&[T_LIST, 1]);
        }
        deep.push(T_NIL);
        deep.push(0);
        let e = decode_request(&deep).unwrap_err();
        assert!(e.to_string().contains("nested deeper"), "{e}");
        // Truncation at every length, and garbage.
        let good = encode_request(&["p".into()], &[sample()], &[], None).unwrap();
        for n in 0..good.len() {
            assert!(decode_request(&good[..n]).is_err(), "prefix {n}");
        }
        assert!(decode_request(b"GET / HTTP/1.1").is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_request(&trailing).is_err());
        assert!(decode_reply(&[MAGIC, VERSION, 0, 7]).is_err());
    }

    #[test]
    fn a_trace_header_is_exactly_sixteen_hex_digits() {
        for t in [1, 0xdead_beef, u64::MAX] {
            assert_eq!(decode_trace(&trace_header(t)).unwrap(), t);
        }
        assert_eq!(trace_header(0xab), "00000000000000ab");
        assert_eq!(decode_trace("00000000000000AB").unwrap(), 0xab);
        for bad in [
            "",
            "ab",
            "+000000000000000",
            "0000000000000000a",
            "000000000000000g",
        ] {
            let e = decode_trace(bad).unwrap_err();
            assert!(e.to_string().contains("Netref-Trace"), "{bad:?}: {e}");
        }
    }
}
