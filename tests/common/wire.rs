//! The native protocol built by hand from `docs/protocol.md`, for peers that write raw
//! bytes: an encoder for every message and a decoder for what a server sends back.

use netref::ErrorKind;

/// The native hello with the default limits (16 MiB frames, depth 64): version 1 only, and
/// the features pipelining, cancel, streams, one-way calls, trace ids, describe and bind,
/// and stream blocks.
pub const HELLO: [u8; 16] = [
    b'N', b'R', b'E', b'F', 0, 1, 0, 0, 0, 0xfb, 1, 0, 0, 0, 0, 64,
];

/// The hello of a peer from before stream blocks: as [`HELLO`] without feature bit 7, so
/// its lent streams answer `pull` only and it reads a window as a list of values.
pub const HELLO_NO_BLOCKS: [u8; 16] = [
    b'N', b'R', b'E', b'F', 0, 1, 0, 0, 0, 0x7b, 1, 0, 0, 0, 0, 64,
];

/// The hello of the first netref builds (an old peer): version 1, pipelining and cancel.
pub const HELLO_V1: [u8; 16] = [b'N', b'R', b'E', b'F', 0, 1, 0, 0, 0, 3, 1, 0, 0, 0, 0, 64];

/// Flag: a trace id follows a call's flags.
pub const FLAG_TRACE: u8 = 4;

/// The error kinds in wire order.
pub const KINDS: [ErrorKind; 13] = [
    ErrorKind::NoSuchObject,
    ErrorKind::NoSuchMember,
    ErrorKind::WrongOperation,
    ErrorKind::BadArguments,
    ErrorKind::Failed,
    ErrorKind::Panicked,
    ErrorKind::Overloaded,
    ErrorKind::Cancelled,
    ErrorKind::TimedOut,
    ErrorKind::Disconnected,
    ErrorKind::Protocol,
    ErrorKind::Value,
    ErrorKind::StopIteration,
];

/// A wire value.
#[derive(Debug, Clone, PartialEq)]
pub enum W {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<W>),
    Map(Vec<(W, W)>),
    /// `Ref(Sender(id))`: an object of the sender.
    Sender(u64),
    /// `Ref(Receiver { target, path })`: an object of the receiver.
    Receiver(T, Vec<String>),
}

/// A call target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum T {
    Root,
    Object(u64),
    Answer(u64),
}

/// An operation.
#[derive(Debug, Clone, PartialEq)]
pub enum O {
    Call(Vec<W>, Vec<(String, W)>),
    Get,
    Set(W),
    Dir,
    Help,
    /// Sent only to a peer with feature bit 6.
    Describe,
    /// Sent only to a peer with feature bit 6.
    Bind,
}

/// A remote error.
#[derive(Debug, Clone, PartialEq)]
pub struct E {
    pub kind: u64,
    pub type_name: String,
    pub message: String,
    pub chain: Vec<String>,
}

impl E {
    /// The kind, when it is a known one.
    pub fn kind(&self) -> Option<ErrorKind> {
        KINDS.get(usize::try_from(self.kind).ok()?).copied()
    }
}

/// A call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: u64,
    pub target: T,
    pub path: Vec<String>,
    pub op: O,
    pub timeout_ms: u32,
    pub flags: u8,
    /// On the wire only when `flags` has [`FLAG_TRACE`].
    pub trace: u64,
}

impl Call {
    /// A call of `op` on `path` from the root, with a 30 s deadline and no flags.
    pub fn new(id: u64, target: T, path: &[&str], op: O) -> Call {
        Call {
            id,
            target,
            path: path.iter().map(|s| s.to_string()).collect(),
            op,
            timeout_ms: 30_000,
            flags: 0,
            trace: 0,
        }
    }
}

/// A message.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Call(Call),
    Return(u64, Result<W, E>),
    Release(Vec<(u64, u64)>),
    Cancel(u64),
    Finish(u64),
    Ping(u64),
    Pong(u64),
    Goodbye(String),
}

/// An unsigned varint: one byte below 251, else a marker and 2, 4 or 8 bytes.
pub fn varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if v <= u64::from(u16::MAX) {
        out.push(0xfb);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(0xfc);
        out.extend_from_slice(&(v as u32).to_le_bytes());
    } else {
        out.push(0xfd);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Zigzag: `0→0, -1→1, 1→2 …`.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub fn value(out: &mut Vec<u8>, w: &W) {
    match w {
        W::Nil => out.push(0),
        W::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        W::Int(i) => {
            out.push(2);
            varint(out, zigzag(*i));
        }
        W::UInt(u) => {
            out.push(3);
            varint(out, *u);
        }
        W::Float(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_le_bytes());
        }
        W::Str(s) => {
            out.push(5);
            string(out, s);
        }
        W::Bytes(b) => {
            out.push(6);
            varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        W::List(items) => {
            out.push(7);
            varint(out, items.len() as u64);
            for i in items {
                value(out, i);
            }
        }
        W::Map(pairs) => {
            out.push(8);
            varint(out, pairs.len() as u64);
            for (k, v) in pairs {
                value(out, k);
                value(out, v);
            }
        }
        W::Sender(id) => {
            out.extend_from_slice(&[9, 0]);
            varint(out, *id);
        }
        W::Receiver(t, path) => {
            out.extend_from_slice(&[9, 1]);
            target(out, *t);
            strings(out, path);
        }
    }
}

pub fn target(out: &mut Vec<u8>, t: T) {
    match t {
        T::Root => out.push(0),
        T::Object(id) => {
            out.push(1);
            varint(out, id);
        }
        T::Answer(id) => {
            out.push(2);
            varint(out, id);
        }
    }
}

pub fn strings(out: &mut Vec<u8>, items: &[String]) {
    varint(out, items.len() as u64);
    for s in items {
        string(out, s);
    }
}

pub fn op(out: &mut Vec<u8>, o: &O) {
    match o {
        O::Call(args, named) => {
            out.push(0);
            varint(out, args.len() as u64);
            for a in args {
                value(out, a);
            }
            varint(out, named.len() as u64);
            for (k, v) in named {
                string(out, k);
                value(out, v);
            }
        }
        O::Get => out.push(1),
        O::Set(v) => {
            out.push(2);
            value(out, v);
        }
        O::Dir => out.push(3),
        O::Help => out.push(4),
        O::Describe => out.push(5),
        O::Bind => out.push(6),
    }
}

/// The body of `m` (no length prefix).
pub fn body(m: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    match m {
        Msg::Call(c) => {
            out.push(0);
            varint(&mut out, c.id);
            target(&mut out, c.target);
            strings(&mut out, &c.path);
            op(&mut out, &c.op);
            varint(&mut out, u64::from(c.timeout_ms));
            out.push(c.flags);
            if c.flags & FLAG_TRACE != 0 {
                varint(&mut out, c.trace);
            }
        }
        Msg::Return(id, r) => {
            out.push(1);
            varint(&mut out, *id);
            match r {
                Ok(v) => {
                    out.push(0);
                    value(&mut out, v);
                }
                Err(e) => {
                    out.push(1);
                    varint(&mut out, e.kind);
                    string(&mut out, &e.type_name);
                    string(&mut out, &e.message);
                    strings(&mut out, &e.chain);
                }
            }
        }
        Msg::Release(pairs) => {
            out.push(2);
            varint(&mut out, pairs.len() as u64);
            for (id, n) in pairs {
                varint(&mut out, *id);
                varint(&mut out, *n);
            }
        }
        Msg::Cancel(id) | Msg::Finish(id) | Msg::Ping(id) | Msg::Pong(id) => {
            out.push(match m {
                Msg::Cancel(_) => 3,
                Msg::Finish(_) => 4,
                Msg::Ping(_) => 5,
                _ => 6,
            });
            varint(&mut out, *id);
        }
        Msg::Goodbye(reason) => {
            out.push(7);
            string(&mut out, reason);
        }
    }
    out
}

/// `body` with its 4-byte big-endian length in front.
pub fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The whole frame of `m`.
pub fn frame(m: &Msg) -> Vec<u8> {
    frame_of(&body(m))
}

/// Reads one native frame (4-byte big-endian length, then the body) from `r`; `None` once
/// the stream ends or fails.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.ok()?;
    let len = u32::from_be_bytes(len) as usize;
    assert!(len <= 64 << 20, "the peer sent a {len}-byte frame");
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// Splits a byte stream (after the hello) into frame bodies; a trailing partial frame is
/// dropped.
pub fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if bytes.len() < 4 + len {
            break;
        }
        out.push(bytes[4..4 + len].to_vec());
        bytes = &bytes[4 + len..];
    }
    out
}

/// Why a frame body is refused, as `docs/protocol.md` (and bincode's standard
/// configuration) define it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Not exactly one message: bad tag, marker, UTF-8 or bool, too few or too many bytes.
    Malformed,
    /// A value nested deeper than the receiver's max depth.
    Depth,
}

/// Decodes one frame body with the default max depth; `None` when it is refused.
pub fn decode(body: &[u8]) -> Option<Msg> {
    decode_with(body, 64).ok()
}

/// Decodes one frame body as a receiver with `max_depth` must: the first problem met,
/// reading front to back, decides the refusal (a declared length is not checked against
/// the bytes left until an element is missing, as bincode does).
pub fn decode_with(body: &[u8], max_depth: usize) -> Result<Msg, Bad> {
    let mut c = Cur {
        b: body,
        i: 0,
        max_depth,
    };
    let m = c.msg()?;
    if c.i == body.len() {
        Ok(m)
    } else {
        Err(Bad::Malformed)
    }
}

struct Cur<'a> {
    b: &'a [u8],
    i: usize,
    max_depth: usize,
}

type R<T> = Result<T, Bad>;
const BAD: Bad = Bad::Malformed;

impl Cur<'_> {
    fn take(&mut self, n: usize) -> R<&[u8]> {
        let end = self.i.checked_add(n).ok_or(BAD)?;
        let s = self.b.get(self.i..end).ok_or(BAD)?;
        self.i = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn fixed<const N: usize>(&mut self) -> R<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| BAD)
    }

    /// A `u64` (or `usize`) varint.
    fn u64(&mut self) -> R<u64> {
        let b = self.u8()?;
        Ok(match b {
            0..=250 => u64::from(b),
            0xfb => u64::from(u16::from_le_bytes(self.fixed()?)),
            0xfc => u64::from(u32::from_le_bytes(self.fixed()?)),
            0xfd => u64::from_le_bytes(self.fixed()?),
            _ => return Err(BAD),
        })
    }

    /// A `u32` varint (also every enum's variant index): no 8-byte form.
    fn u32(&mut self) -> R<u32> {
        let b = self.u8()?;
        Ok(match b {
            0..=250 => u32::from(b),
            0xfb => u32::from(u16::from_le_bytes(self.fixed()?)),
            0xfc => u32::from_le_bytes(self.fixed()?),
            _ => return Err(BAD),
        })
    }

    fn string(&mut self) -> R<String> {
        let n = usize::try_from(self.u64()?).map_err(|_| BAD)?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| BAD)
    }

    /// A sequence: its declared length, then elements until one is missing.
    fn seq<T>(&mut self, mut item: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        let n = self.u64()?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }

    fn strings(&mut self) -> R<Vec<String>> {
        self.seq(Self::string)
    }

    fn target(&mut self) -> R<T> {
        Ok(match self.u32()? {
            0 => T::Root,
            1 => T::Object(self.u64()?),
            2 => T::Answer(self.u64()?),
            _ => return Err(BAD),
        })
    }

    /// A value with `left` levels of nesting still allowed (checked before its tag).
    fn value(&mut self, left: usize) -> R<W> {
        if left == 0 {
            return Err(Bad::Depth);
        }
        Ok(match self.u32()? {
            0 => W::Nil,
            1 => match self.u8()? {
                0 => W::Bool(false),
                1 => W::Bool(true),
                _ => return Err(BAD),
            },
            2 => {
                let z = self.u64()?;
                W::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            3 => W::UInt(self.u64()?),
            4 => W::Float(f64::from_le_bytes(self.fixed()?)),
            5 => W::Str(self.string()?),
            6 => {
                let n = usize::try_from(self.u64()?).map_err(|_| BAD)?;
                W::Bytes(self.take(n)?.to_vec())
            }
            7 => W::List(self.seq(|c| c.value(left - 1))?),
            8 => W::Map(self.seq(|c| Ok((c.value(left - 1)?, c.value(left - 1)?)))?),
            9 => match self.u32()? {
                0 => W::Sender(self.u64()?),
                1 => W::Receiver(self.target()?, self.strings()?),
                _ => return Err(BAD),
            },
            _ => return Err(BAD),
        })
    }

    fn top_value(&mut self) -> R<W> {
        let left = self.max_depth;
        self.value(left)
    }

    fn op(&mut self) -> R<O> {
        Ok(match self.u32()? {
            0 => {
                let args = self.seq(Self::top_value)?;
                let named = self.seq(|c| Ok((c.string()?, c.top_value()?)))?;
                O::Call(args, named)
            }
            1 => O::Get,
            2 => O::Set(self.top_value()?),
            3 => O::Dir,
            4 => O::Help,
            5 => O::Describe,
            6 => O::Bind,
            _ => return Err(BAD),
        })
    }

    fn msg(&mut self) -> R<Msg> {
        Ok(match self.u32()? {
            0 => {
                let mut c = Call {
                    id: self.u64()?,
                    target: self.target()?,
                    path: self.strings()?,
                    op: self.op()?,
                    timeout_ms: self.u32()?,
                    flags: self.u8()?,
                    trace: 0,
                };
                if c.flags & FLAG_TRACE != 0 {
                    c.trace = self.u64()?;
                }
                Msg::Call(c)
            }
            1 => {
                let id = self.u64()?;
                let result = match self.u32()? {
                    0 => Ok(self.top_value()?),
                    1 => Err(E {
                        kind: match self.u32()? {
                            k if (k as usize) < KINDS.len() => u64::from(k),
                            _ => return Err(BAD),
                        },
                        type_name: self.string()?,
                        message: self.string()?,
                        chain: self.strings()?,
                    }),
                    _ => return Err(BAD),
                };
                Msg::Return(id, result)
            }
            2 => Msg::Release(self.seq(|c| Ok((c.u64()?, c.u64()?)))?),
            3 => Msg::Cancel(self.u64()?),
            4 => Msg::Finish(self.u64()?),
            5 => Msg::Ping(self.u64()?),
            6 => Msg::Pong(self.u64()?),
            7 => Msg::Goodbye(self.string()?),
            _ => return Err(BAD),
        })
    }
}
