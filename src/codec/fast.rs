//! Hand-written encoding and decoding of the messages that dominate a busy connection: calls
//! and replies whose values are scalars, and the one-number control messages. The bytes are
//! exactly those of the general bincode path in [`native`](super::native) (checked by the
//! tests below against it); anything else, and anything this code does not fully understand,
//! is left to the general path.
//!
//! The decoder is a filter, not a judge: it accepts only input it can decode completely and
//! canonically, and returns `None` for everything else, including every malformed frame, so
//! that the general decoder, with its limits and error messages, decides those.
//!
//! Why it stays beside bincode's derived general path: measured (issue 12, item 6, in
//! `docs/benchmarks.md`), it saves the server 6.6% of its instructions per call with 64 calls
//! in flight, and without it the derives alone would cost the server 3.6% (sequential) and
//! 9.7% (64 in flight) more than before.

use std::borrow::Cow;

use crate::protocol::{
    cached_path, CallMsg, Message, Target, WBytes, WPath, WStr, WVec, WireOp, WireValue,
    CACHED_SEGMENTS, FLAG_TRACE,
};

// Variant indexes, in declaration order (bincode writes them as varint `u32`s).
const MSG_CALL: u64 = 0;
const MSG_RETURN: u64 = 1;
const MSG_CANCEL: u64 = 3;
const MSG_FINISH: u64 = 4;
const MSG_PING: u64 = 5;
const MSG_PONG: u64 = 6;

const TARGET_ROOT: u64 = 0;
const TARGET_OBJECT: u64 = 1;
const TARGET_ANSWER: u64 = 2;

const OP_CALL: u64 = 0;
const OP_GET: u64 = 1;
const OP_SET: u64 = 2;
const OP_DIR: u64 = 3;
const OP_HELP: u64 = 4;

const VAL_NIL: u64 = 0;
const VAL_BOOL: u64 = 1;
const VAL_INT: u64 = 2;
const VAL_UINT: u64 = 3;
const VAL_FLOAT: u64 = 4;
const VAL_STR: u64 = 5;
const VAL_BYTES: u64 = 6;

const RESULT_OK: u64 = 0;

/// At most this many items are allocated ahead of a declared count: the rest grow as items
/// actually decode (a count is the peer's word; an item takes a byte of the frame but tens
/// of bytes in memory).
const PREALLOC: usize = 64;

/// Appends `msg`'s bincode body to `out` when this module handles its shape; returns false,
/// with `out` untouched, when it does not.
#[inline]
pub(crate) fn encode(msg: &Message, out: &mut Vec<u8>) -> bool {
    match msg {
        Message::Call(c) => {
            if !op_is_scalar(&c.op) {
                return false;
            }
            varint(out, MSG_CALL);
            varint(out, c.id);
            match c.target {
                Target::Root => varint(out, TARGET_ROOT),
                Target::Object(id) => {
                    varint(out, TARGET_OBJECT);
                    varint(out, id);
                }
                Target::Answer(id) => {
                    varint(out, TARGET_ANSWER);
                    varint(out, id);
                }
            }
            varint(out, c.path.0.len() as u64);
            for seg in c.path.0.iter() {
                bytes(out, seg.as_bytes());
            }
            match &c.op {
                WireOp::Call { args, named } => {
                    varint(out, OP_CALL);
                    varint(out, args.len() as u64);
                    for v in args {
                        scalar(out, v);
                    }
                    varint(out, named.len() as u64);
                    for (name, v) in named {
                        bytes(out, name.0.as_bytes());
                        scalar(out, v);
                    }
                }
                WireOp::Get => varint(out, OP_GET),
                WireOp::Set(v) => {
                    varint(out, OP_SET);
                    scalar(out, v);
                }
                WireOp::Dir => varint(out, OP_DIR),
                WireOp::Help => varint(out, OP_HELP),
                // Never here: `op_is_scalar` leaves them to bincode.
                WireOp::Describe | WireOp::Bind => {}
            }
            varint(out, u64::from(c.timeout_ms));
            out.push(c.flags);
            if c.flags & FLAG_TRACE != 0 {
                varint(out, c.trace);
            }
            true
        }
        Message::Return { id, result: Ok(v) } if is_scalar(v) => {
            varint(out, MSG_RETURN);
            varint(out, *id);
            varint(out, RESULT_OK);
            scalar(out, v);
            true
        }
        Message::Cancel(n) => number(out, MSG_CANCEL, *n),
        Message::Finish(n) => number(out, MSG_FINISH, *n),
        Message::Ping(n) => number(out, MSG_PING, *n),
        Message::Pong(n) => number(out, MSG_PONG, *n),
        _ => false,
    }
}

/// A message that is its tag and one number.
fn number(out: &mut Vec<u8>, tag: u64, n: u64) -> bool {
    varint(out, tag);
    varint(out, n);
    true
}

fn is_scalar(v: &WireValue) -> bool {
    matches!(
        v,
        WireValue::Nil
            | WireValue::Bool(_)
            | WireValue::Int(_)
            | WireValue::UInt(_)
            | WireValue::Float(_)
            | WireValue::Str(_)
            | WireValue::Bytes(_)
    )
}

fn op_is_scalar(op: &WireOp) -> bool {
    match op {
        WireOp::Call { args, named } => {
            args.iter().all(is_scalar) && named.iter().all(|(_, v)| is_scalar(v))
        }
        WireOp::Set(v) => is_scalar(v),
        WireOp::Get | WireOp::Dir | WireOp::Help => true,
        WireOp::Describe | WireOp::Bind => false,
    }
}

/// Bincode's variable-length integer: one byte below 251, else a marker and 2, 4 or 8
/// little-endian bytes.
fn varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if v <= u64::from(u16::MAX) {
        out.push(251);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(252);
        out.extend_from_slice(&(v as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A scalar value (the caller checked [`is_scalar`]).
fn scalar(out: &mut Vec<u8>, v: &WireValue) {
    match v {
        WireValue::Nil => varint(out, VAL_NIL),
        WireValue::Bool(b) => {
            varint(out, VAL_BOOL);
            out.push(u8::from(*b));
        }
        WireValue::Int(i) => {
            varint(out, VAL_INT);
            varint(out, ((*i << 1) ^ (*i >> 63)) as u64);
        }
        WireValue::UInt(u) => {
            varint(out, VAL_UINT);
            varint(out, *u);
        }
        WireValue::Float(x) => {
            varint(out, VAL_FLOAT);
            out.extend_from_slice(&x.to_le_bytes());
        }
        WireValue::Str(s) => {
            varint(out, VAL_STR);
            bytes(out, s.0.as_bytes());
        }
        WireValue::Bytes(b) => {
            varint(out, VAL_BYTES);
            bytes(out, &b.0);
        }
        WireValue::List(_) | WireValue::Map(_) | WireValue::Ref(_) => {
            unreachable!("encode checks is_scalar first")
        }
    }
}

/// Decodes `body` when it is a message this module handles, whole and canonical; `None`
/// otherwise (the general decoder then decides). `max_depth` is the nesting limit: with 0,
/// no value may be decoded at all.
#[inline]
pub(crate) fn decode(body: &[u8], max_depth: usize) -> Option<Message> {
    let mut r = Reader { rest: body };
    let msg = match r.varint()? {
        MSG_CALL => {
            let id = r.varint()?;
            let target = match r.varint()? {
                TARGET_ROOT => Target::Root,
                TARGET_OBJECT => Target::Object(r.varint()?),
                TARGET_ANSWER => Target::Answer(r.varint()?),
                _ => return None,
            };
            let path = r.path()?;
            let op = match r.varint()? {
                OP_CALL => {
                    let n = r.len()?;
                    let mut args = Vec::with_capacity(n.min(PREALLOC));
                    for _ in 0..n {
                        args.push(r.scalar(max_depth)?);
                    }
                    let n = r.len()?;
                    let mut named = Vec::with_capacity(n.min(PREALLOC));
                    for _ in 0..n {
                        let name = WStr(r.str()?.to_owned());
                        named.push((name, r.scalar(max_depth)?));
                    }
                    WireOp::Call {
                        args: WVec(args),
                        named: WVec(named),
                    }
                }
                OP_GET => WireOp::Get,
                OP_SET => WireOp::Set(r.scalar(max_depth)?),
                OP_DIR => WireOp::Dir,
                OP_HELP => WireOp::Help,
                _ => return None,
            };
            let timeout_ms = u32::try_from(r.varint()?).ok()?;
            let flags = r.byte()?;
            let trace = if flags & FLAG_TRACE != 0 {
                r.varint()?
            } else {
                0
            };
            Message::Call(CallMsg {
                id,
                target,
                path,
                op,
                timeout_ms,
                flags,
                trace,
            })
        }
        MSG_RETURN => {
            let id = r.varint()?;
            if r.varint()? != RESULT_OK {
                return None;
            }
            Message::Return {
                id,
                result: Ok(r.scalar(max_depth)?),
            }
        }
        MSG_CANCEL => Message::Cancel(r.varint()?),
        MSG_FINISH => Message::Finish(r.varint()?),
        MSG_PING => Message::Ping(r.varint()?),
        MSG_PONG => Message::Pong(r.varint()?),
        _ => return None,
    };
    r.rest.is_empty().then_some(msg)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    /// A varint in its shortest form only.
    fn varint(&mut self) -> Option<u64> {
        match self.byte()? {
            b @ 0..=250 => Some(u64::from(b)),
            251 => {
                let v = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
                (v >= 251).then_some(u64::from(v))
            }
            252 => {
                let v = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
                (v > u32::from(u16::MAX)).then_some(u64::from(v))
            }
            253 => {
                let v = u64::from_le_bytes(self.take(8)?.try_into().ok()?);
                (v > u64::from(u32::MAX)).then_some(v)
            }
            _ => None,
        }
    }

    /// A length that the rest of the frame could hold (each item takes at least a byte).
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.varint()?).ok()?;
        (n <= self.rest.len()).then_some(n)
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn path(&mut self) -> Option<WPath> {
        let n = self.len()?;
        if n > CACHED_SEGMENTS {
            let mut v = Vec::with_capacity(n.min(PREALLOC));
            for _ in 0..n {
                v.push(self.str()?.to_owned());
            }
            return Some(WPath(v.into()));
        }
        let mut segs: [Option<Cow<'a, str>>; CACHED_SEGMENTS] = Default::default();
        let mut total = 0;
        for seg in segs.iter_mut().take(n) {
            let s = self.str()?;
            total += s.len();
            *seg = Some(Cow::Borrowed(s));
        }
        Some(cached_path(&segs[..n], total))
    }

    fn scalar(&mut self, max_depth: usize) -> Option<WireValue> {
        if max_depth == 0 {
            return None;
        }
        Some(match self.varint()? {
            VAL_NIL => WireValue::Nil,
            VAL_BOOL => match self.byte()? {
                0 => WireValue::Bool(false),
                1 => WireValue::Bool(true),
                _ => return None,
            },
            VAL_INT => {
                let z = self.varint()?;
                WireValue::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            VAL_UINT => WireValue::UInt(self.varint()?),
            VAL_FLOAT => WireValue::Float(f64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            VAL_STR => WireValue::Str(WStr(self.str()?.to_owned())),
            VAL_BYTES => {
                let n = self.len()?;
                WireValue::Bytes(WBytes(self.take(n)?.to_vec()))
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::protocol::{DecodeCx, WKind, WireError, WireRef};

    /// The general path's bytes for `msg`.
    fn general(msg: &Message) -> Vec<u8> {
        bincode::encode_to_vec(msg, bincode::config::standard()).unwrap()
    }

    /// The general path's reading of `body`, when it accepts all of it.
    fn general_decode(body: &[u8], max_depth: usize) -> Option<Message> {
        let (msg, used): (Message, usize) = bincode::borrow_decode_from_slice_with_context(
            body,
            bincode::config::standard(),
            DecodeCx::new(max_depth),
        )
        .ok()?;
        (used == body.len()).then_some(msg)
    }

    fn call(id: u64, target: Target, path: Vec<&str>, op: WireOp) -> Message {
        Message::Call(CallMsg {
            id,
            target,
            path: WPath::from(path),
            op,
            timeout_ms: 30_000,
            flags: 0,
            trace: 0,
        })
    }

    fn args(v: Vec<WireValue>) -> WireOp {
        WireOp::Call {
            args: v.into(),
            named: WVec::default(),
        }
    }

    const NUMBERS: [u64; 12] = [
        0,
        1,
        250,
        251,
        0xffff,
        0x1_0000,
        0xffff_ffff,
        0x1_0000_0000,
        u64::MAX - 1,
        u64::MAX,
        123_456,
        7,
    ];

    fn scalars() -> Vec<WireValue> {
        let mut v = vec![
            WireValue::Nil,
            WireValue::Bool(false),
            WireValue::Bool(true),
            WireValue::Float(0.0),
            WireValue::Float(-0.0),
            WireValue::Float(1.5),
            WireValue::Float(f64::INFINITY),
            WireValue::Str(WStr::default()),
            WireValue::Str(WStr("héllo ✓".into())),
            WireValue::Str(WStr("x".repeat(300))),
            WireValue::Bytes(WBytes(Vec::new())),
            WireValue::Bytes(WBytes((0..=255).collect())),
            WireValue::Bytes(WBytes(vec![7; 70_000])),
        ];
        for i in [
            0,
            1,
            -1,
            125,
            126,
            -126,
            -127,
            32_767,
            -32_768,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            v.push(WireValue::Int(i));
        }
        v.extend(NUMBERS.iter().map(|&n| WireValue::UInt(n)));
        v
    }

    /// Messages this module handles.
    fn handled() -> Vec<Message> {
        let mut out = Vec::new();
        for &n in &NUMBERS {
            out.push(call(
                n,
                Target::Root,
                vec!["echo"],
                args(vec![WireValue::Int(1)]),
            ));
            out.push(call(1, Target::Object(n), vec![], WireOp::Get));
            out.push(call(2, Target::Answer(n), vec!["a", "b"], WireOp::Dir));
            out.push(Message::Return {
                id: n,
                result: Ok(WireValue::UInt(n)),
            });
            out.push(Message::Cancel(n));
            out.push(Message::Finish(n));
            out.push(Message::Ping(n));
            out.push(Message::Pong(n));
        }
        for v in scalars() {
            out.push(call(3, Target::Root, vec!["f"], args(vec![v.clone()])));
            out.push(call(4, Target::Root, vec!["p"], WireOp::Set(v.clone())));
            out.push(Message::Return {
                id: 5,
                result: Ok(v),
            });
        }
        out.push(call(6, Target::Root, vec!["m"], args(scalars())));
        out.push(call(
            7,
            Target::Root,
            vec!["greet"],
            WireOp::Call {
                args: vec![WireValue::Str(WStr("ada".into()))].into(),
                named: vec![
                    (WStr("loud".into()), WireValue::Bool(true)),
                    (WStr("n".into()), WireValue::Int(-3)),
                ]
                .into(),
            },
        ));
        out.push(call(8, Target::Root, vec!["h"], WireOp::Help));
        out.push(call(9, Target::Root, vec!["ü"; 8], WireOp::Get));
        out.push(call(9, Target::Root, vec!["s"; 9], WireOp::Get));
        out.push(call(
            10,
            Target::Root,
            vec![&*"long".repeat(80)],
            WireOp::Get,
        ));
        let mut odd = call(11, Target::Root, vec!["x"], args(vec![]));
        if let Message::Call(c) = &mut odd {
            c.timeout_ms = u32::MAX;
            c.flags = 0xff;
            c.trace = u64::MAX;
        }
        out.push(odd);
        let mut traced = call(12, Target::Root, vec!["y"], WireOp::Get);
        if let Message::Call(c) = &mut traced {
            c.flags = FLAG_TRACE;
            c.trace = 0x0123_4567_89ab_cdef;
        }
        out.push(traced);
        out
    }

    /// Messages left to the general path.
    fn not_handled() -> Vec<Message> {
        let list = WireValue::List(vec![WireValue::Int(1)].into());
        vec![
            call(1, Target::Root, vec!["f"], args(vec![list.clone()])),
            call(1, Target::Root, vec!["f"], WireOp::Set(list.clone())),
            call(
                1,
                Target::Root,
                vec!["f"],
                args(vec![WireValue::Ref(WireRef::Sender(3))]),
            ),
            Message::Return {
                id: 1,
                result: Ok(list),
            },
            Message::Return {
                id: 1,
                result: Err(WireError {
                    kind: WKind(ErrorKind::Failed),
                    type_name: WStr("E".into()),
                    message: WStr("no".into()),
                    chain: WVec::default(),
                }),
            },
            Message::Release(vec![(1, 2)].into()),
            Message::Goodbye(WStr("bye".into())),
        ]
    }

    #[test]
    fn encodes_the_bytes_of_the_general_path() {
        for msg in handled() {
            let mut fast = Vec::new();
            assert!(encode(&msg, &mut fast), "not handled: {msg:?}");
            assert_eq!(fast, general(&msg), "{msg:?}");
        }
        for msg in not_handled() {
            let mut out = vec![9];
            assert!(!encode(&msg, &mut out), "handled: {msg:?}");
            assert_eq!(out, [9], "left bytes behind");
        }
    }

    #[test]
    fn decodes_what_the_general_path_decodes() {
        for msg in handled() {
            let bytes = general(&msg);
            let fast = decode(&bytes, 64).unwrap_or_else(|| panic!("not decoded: {msg:?}"));
            // Compared by their bytes: `-0.0 == 0.0`.
            assert_eq!(general(&fast), bytes);
            // No value may be decoded under a nesting limit of 0.
            let has_value = general_decode(&bytes, 0).is_none();
            assert_eq!(decode(&bytes, 0).is_none(), has_value, "{msg:?}");
        }
        for msg in not_handled() {
            assert!(decode(&general(&msg), 64).is_none(), "{msg:?}");
        }
    }

    /// Every mutation of every handled message: what the fast decoder accepts, the general
    /// one accepts too, as the same message.
    #[test]
    fn accepts_nothing_the_general_path_refuses_or_reads_otherwise() {
        let mut checked = 0;
        let mut accepted = 0;
        let mut check = |body: &[u8]| {
            checked += 1;
            if let Some(fast) = decode(body, 64) {
                accepted += 1;
                let slow = general_decode(body, 64)
                    .unwrap_or_else(|| panic!("fast accepted what general refuses: {body:02x?}"));
                assert_eq!(general(&fast), general(&slow), "{body:02x?}");
            }
        };
        for msg in handled().into_iter().chain(not_handled()) {
            let bytes = general(&msg);
            if bytes.len() > 4096 {
                continue;
            }
            for cut in 0..bytes.len() {
                check(&bytes[..cut]);
            }
            let mut longer = bytes.clone();
            longer.push(0);
            check(&longer);
            for i in 0..bytes.len() {
                for b in [
                    0,
                    1,
                    2,
                    5,
                    7,
                    9,
                    250,
                    251,
                    252,
                    253,
                    254,
                    255,
                    bytes[i] ^ 1,
                    bytes[i] ^ 0x80,
                ] {
                    let mut m = bytes.clone();
                    m[i] = b;
                    check(&m);
                }
            }
        }
        // Random frames, from a fixed seed.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let body: Vec<u8> = (0..len)
                .map(|i| (x.rotate_left(i as u32 * 5) % 13) as u8)
                .collect();
            check(&body);
        }
        assert!(
            checked > 200_000 && accepted > 1_000,
            "{checked} {accepted}"
        );
    }
}
