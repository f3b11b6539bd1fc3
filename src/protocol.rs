//! The messages two peers exchange: the engine's vocabulary on every wire.
//!
//! The engine produces and consumes these types; a wire ([`codec`](crate::codec): the
//! native one today, RPyC's later) turns them into bytes. Like the codec, this module
//! imports nothing from the engine: values here are [`WireValue`]s, with references as ids,
//! and the engine converts them to and from its own values where it counts references.
//! `docs/protocol.md` is the normative description of the native encoding.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bincode::de::{BorrowDecoder, Decoder};
use bincode::enc::Encoder;
use bincode::error::{AllowedEnumVariants, DecodeError, EncodeError};
use bincode::{BorrowDecode, Decode, Encode};

use crate::error::{ErrorKind, RemoteError};

/// What a call is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, BorrowDecode)]
pub(crate) enum Target {
    /// The receiver's root object.
    Root,
    /// An object in the receiver's export table.
    Object(u64),
    /// The kept answer of an earlier pipelined call made by the sender.
    Answer(u64),
}

/// A string on the wire. Decoded by borrowing from the frame, so its declared length is
/// checked against the bytes actually present before anything is allocated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct WStr(pub(crate) String);

impl Encode for WStr {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.0.as_str().encode(e)
    }
}

impl<'de, C> BorrowDecode<'de, C> for WStr {
    #[inline]
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        <&'de str>::borrow_decode(d).map(|s| WStr(s.to_owned()))
    }
}

/// An attribute path on the wire. Shared with the proxy that sends it (encoding clones no
/// segment) and decoded straight into the shared form the receiving proxy keeps; each
/// segment is checked like a [`WStr`], and the declared count allocates nothing up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WPath(pub(crate) Arc<[String]>);

impl Default for WPath {
    fn default() -> Self {
        WPath(empty_path())
    }
}

/// The empty path, shared: every plain proxy (each export and import) would otherwise
/// allocate one.
pub(crate) fn empty_path() -> Arc<[String]> {
    static EMPTY: std::sync::LazyLock<Arc<[String]>> =
        std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    EMPTY.clone()
}

impl From<Vec<&str>> for WPath {
    fn from(v: Vec<&str>) -> Self {
        WPath(v.into_iter().map(str::to_owned).collect::<Vec<_>>().into())
    }
}

impl Encode for WPath {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        (self.0.len() as u64).encode(e)?;
        for seg in self.0.iter() {
            seg.as_str().encode(e)?;
        }
        Ok(())
    }
}

impl<'de, C> BorrowDecode<'de, C> for WPath {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        let n = seq_len(d)?;
        if n <= CACHED_SEGMENTS {
            // Short paths are read borrowed and looked up among this thread's recent paths
            // first: repeated calls to one method share one `Arc`.
            let mut short: [Option<Cow<'de, str>>; CACHED_SEGMENTS] = Default::default();
            let mut bytes = 0;
            for seg in short.iter_mut().take(n) {
                let s = <&'de str>::borrow_decode(d)?;
                bytes += s.len();
                *seg = Some(Cow::Borrowed(s));
            }
            return Ok(cached_path(&short[..n], bytes));
        }
        let segs: WVec<WStr> = grow(d, n)?;
        Ok(WPath(segs.0.into_iter().map(|s| s.0).collect()))
    }
}

/// Paths of at most this many segments are looked up in [`RECENT_PATHS`].
pub(crate) const CACHED_SEGMENTS: usize = 8;
/// Paths longer than this many bytes are not kept in [`RECENT_PATHS`].
const CACHED_PATH_BYTES: usize = 256;

/// Recently decoded paths and the slot the next one replaces.
type RecentPaths = (usize, [Option<Arc<[String]>>; 8]);

thread_local! {
    /// Paths recently decoded on this thread, replaced round-robin. Thread-local so that the
    /// cache takes no lock: each reader decodes on its own thread.
    static RECENT_PATHS: std::cell::RefCell<RecentPaths> =
        std::cell::RefCell::new((0, Default::default()));
}

/// The path of `segs`, shared with an equal recently decoded one when there is one.
pub(crate) fn cached_path(segs: &[Option<std::borrow::Cow<'_, str>>], bytes: usize) -> WPath {
    if segs.is_empty() {
        return WPath::default();
    }
    let same = |p: &Arc<[String]>| {
        p.len() == segs.len()
            && p.iter()
                .zip(segs)
                .all(|(a, b)| Some(a.as_str()) == b.as_deref())
    };
    let make = || -> Arc<[String]> {
        segs.iter()
            .map(|s| s.as_deref().unwrap_or_default().to_owned())
            .collect()
    };
    if bytes > CACHED_PATH_BYTES {
        return WPath(make());
    }
    RECENT_PATHS.with(|cell| {
        let mut cache = cell.borrow_mut();
        if let Some(hit) = cache.1.iter().flatten().find(|p| same(p)) {
            return WPath(hit.clone());
        }
        let path = make();
        let slot = cache.0;
        cache.1[slot] = Some(path.clone());
        cache.0 = (slot + 1) % cache.1.len();
        WPath(path)
    })
}

impl From<&str> for WStr {
    fn from(s: &str) -> Self {
        WStr(s.to_owned())
    }
}

/// Raw bytes on the wire, decoded by borrowing (see [`WStr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WBytes(pub(crate) Vec<u8>);

impl Encode for WBytes {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.0.as_slice().encode(e)
    }
}

impl<'de, C> BorrowDecode<'de, C> for WBytes {
    #[inline]
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        <&'de [u8]>::borrow_decode(d).map(|b| WBytes(b.to_vec()))
    }
}

/// A sequence on the wire: a count, then the items. Decoded growing as items actually
/// arrive: the count is the peer's word, and bincode's own `Vec` decoding would allocate
/// all of it before reading an item (checked only against a configured byte limit, which
/// the standard configuration has not). Only for item types that take at least one byte.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WVec<T>(pub(crate) Vec<T>);

impl<T> Default for WVec<T> {
    fn default() -> Self {
        WVec(Vec::new())
    }
}

impl<T> From<Vec<T>> for WVec<T> {
    fn from(v: Vec<T>) -> Self {
        WVec(v)
    }
}

impl<T> FromIterator<T> for WVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        WVec(iter.into_iter().collect())
    }
}

impl<T> IntoIterator for WVec<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a WVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> std::ops::Deref for WVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Encode> Encode for WVec<T> {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        (self.0.len() as u64).encode(e)?;
        for item in &self.0 {
            item.encode(e)?;
        }
        Ok(())
    }
}

impl<'de, C, T: BorrowDecode<'de, C>> BorrowDecode<'de, C> for WVec<T> {
    #[inline]
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        let n = seq_len(d)?;
        grow(d, n)
    }
}

/// A sequence's declared count.
#[inline]
fn seq_len<D: Decoder>(d: &mut D) -> Result<usize, DecodeError> {
    let n = u64::decode(d)?;
    usize::try_from(n).map_err(|_| DecodeError::OutsideUsizeRange(n))
}

/// At most this many items are allocated ahead of a declared count; the rest grow as items
/// actually decode. Not the bytes left in the frame either: with nesting, each level could
/// claim room for all of them.
const PREALLOC: usize = 64;

/// The `n` items of a sequence whose count was read, decoded one by one (the first one
/// missing ends the frame as malformed, as a value over the depth limit ends it first when
/// it comes first).
#[inline]
fn grow<'de, C, T: BorrowDecode<'de, C>, D: BorrowDecoder<'de, Context = C>>(
    d: &mut D,
    n: usize,
) -> Result<WVec<T>, DecodeError> {
    let cap = n.min(PREALLOC);
    let mut v = Vec::with_capacity(cap);
    for _ in 0..n {
        v.push(T::borrow_decode(d)?);
    }
    Ok(WVec(v))
}

/// A reference inside a wire value, named from the receiver's point of view.
#[derive(Debug, Clone, PartialEq, Encode, BorrowDecode)]
pub(crate) enum WireRef {
    /// An object the sender owns: the receiver imports it (or counts one more receipt).
    Sender(u64),
    /// An object the receiver owns, coming home (identity round trip), with an optional
    /// attribute path to apply on it.
    Receiver { target: Target, path: WPath },
}

/// A value on the wire: the engine's `Value` with references replaced by ids.
#[derive(Debug, Clone, PartialEq, Encode)]
pub(crate) enum WireValue {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(WStr),
    Bytes(WBytes),
    List(WVec<WireValue>),
    Map(WVec<(WireValue, WireValue)>),
    Ref(WireRef),
}

/// What decoding one frame carries along: how much deeper values may still nest. The
/// messages that hold values decode with it as bincode's context.
#[derive(Debug)]
pub(crate) struct DecodeCx {
    /// Value levels still allowed below the current one.
    pub(crate) depth_left: usize,
}

impl DecodeCx {
    /// A context allowing values nested `max_depth` levels deep (0: no value at all).
    pub(crate) fn new(max_depth: usize) -> DecodeCx {
        DecodeCx {
            depth_left: max_depth,
        }
    }
}

/// The only decoding written by hand among the messages: the derive cannot count depth.
impl<'de> BorrowDecode<'de, DecodeCx> for WireValue {
    fn borrow_decode<D: BorrowDecoder<'de, Context = DecodeCx>>(
        d: &mut D,
    ) -> Result<Self, DecodeError> {
        let cx = d.context();
        if cx.depth_left == 0 {
            return Err(DecodeError::Other("value nesting depth over the limit"));
        }
        cx.depth_left -= 1;
        let v = decode_value(d);
        d.context().depth_left += 1;
        v
    }
}

/// One value's tag and contents (the depth already counted); tags in declaration order, as
/// the derived `Encode` writes them.
#[inline]
fn decode_value<'de, D: BorrowDecoder<'de, Context = DecodeCx>>(
    d: &mut D,
) -> Result<WireValue, DecodeError> {
    Ok(match u32::decode(d)? {
        0 => WireValue::Nil,
        1 => WireValue::Bool(bool::decode(d)?),
        2 => WireValue::Int(i64::decode(d)?),
        3 => WireValue::UInt(u64::decode(d)?),
        4 => WireValue::Float(f64::decode(d)?),
        5 => WireValue::Str(WStr::borrow_decode(d)?),
        6 => WireValue::Bytes(WBytes::borrow_decode(d)?),
        7 => WireValue::List(WVec::borrow_decode(d)?),
        8 => WireValue::Map(WVec::borrow_decode(d)?),
        9 => WireValue::Ref(WireRef::borrow_decode(d)?),
        found => {
            return Err(DecodeError::UnexpectedVariant {
                type_name: "WireValue",
                allowed: &AllowedEnumVariants::Range { min: 0, max: 9 },
                found,
            })
        }
    })
}

/// One operation on the wire.
#[derive(Debug, Clone, PartialEq, Encode, BorrowDecode)]
#[bincode(decode_context = "DecodeCx")]
pub(crate) enum WireOp {
    Call {
        args: WVec<WireValue>,
        named: WVec<(WStr, WireValue)>,
    },
    Get,
    Set(WireValue),
    Dir,
    Help,
    /// Sent only to a peer whose hello has `FEATURE_DESCRIBE`.
    Describe,
    /// Sent only to a peer whose hello has `FEATURE_DESCRIBE`.
    Bind,
}

/// A remote error on the wire.
#[derive(Debug, Clone, PartialEq, Encode, BorrowDecode)]
pub(crate) struct WireError {
    pub(crate) kind: WKind,
    pub(crate) type_name: WStr,
    pub(crate) message: WStr,
    pub(crate) chain: WVec<WStr>,
}

/// An [`ErrorKind`] on the wire: its index in declaration order. A wrapper rather than
/// bincode's derive on the public `ErrorKind`, which would put bincode in netref's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WKind(pub(crate) ErrorKind);

/// Every kind, at its wire index (the NATS wire uses the same indices).
pub(crate) const KINDS: [ErrorKind; 13] = [
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

impl Encode for WKind {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        (self.0 as u32).encode(e)
    }
}

impl<'de, C> BorrowDecode<'de, C> for WKind {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        let found = u32::decode(d)?;
        match KINDS.get(found as usize) {
            Some(&k) => Ok(WKind(k)),
            None => Err(DecodeError::UnexpectedVariant {
                type_name: "ErrorKind",
                allowed: &AllowedEnumVariants::Range { min: 0, max: 12 },
                found,
            }),
        }
    }
}

impl From<RemoteError> for WireError {
    fn from(e: RemoteError) -> Self {
        WireError {
            kind: WKind(e.kind),
            type_name: WStr(e.type_name),
            message: WStr(e.message),
            chain: e.chain.into_iter().map(WStr).collect(),
        }
    }
}

impl From<WireError> for RemoteError {
    fn from(e: WireError) -> Self {
        RemoteError {
            kind: e.kind.0,
            type_name: e.type_name.0,
            message: e.message.0,
            chain: e.chain.into_iter().map(|s| s.0).collect(),
        }
    }
}

/// Flag: the sender expects no `Return` for this call.
pub(crate) const FLAG_ONE_WAY: u8 = 1;
/// Flag: keep the answer for pipelined calls until `Finish`; send no `Return`.
pub(crate) const FLAG_KEEP_ANSWER: u8 = 2;
/// Flag: a trace id (a varint) follows the flags. Sent only to a peer whose hello announces
/// trace ids.
pub(crate) const FLAG_TRACE: u8 = 4;

/// A call message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallMsg {
    /// The caller's id for this call; unique among the caller's calls in flight.
    pub(crate) id: u64,
    pub(crate) target: Target,
    pub(crate) path: WPath,
    pub(crate) op: WireOp,
    /// Milliseconds left until the deadline when the call was sent (0: none).
    pub(crate) timeout_ms: u32,
    pub(crate) flags: u8,
    /// The trace this call belongs to: on the wire only with [`FLAG_TRACE`] (0 without).
    pub(crate) trace: u64,
}

/// By hand: `trace` is on the wire only when the flags say it follows.
impl Encode for CallMsg {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.id.encode(e)?;
        self.target.encode(e)?;
        self.path.encode(e)?;
        self.op.encode(e)?;
        self.timeout_ms.encode(e)?;
        self.flags.encode(e)?;
        if self.flags & FLAG_TRACE != 0 {
            self.trace.encode(e)?;
        }
        Ok(())
    }
}

impl<'de> BorrowDecode<'de, DecodeCx> for CallMsg {
    fn borrow_decode<D: BorrowDecoder<'de, Context = DecodeCx>>(
        d: &mut D,
    ) -> Result<Self, DecodeError> {
        let id = u64::decode(d)?;
        let target = Target::borrow_decode(d)?;
        let path = WPath::borrow_decode(d)?;
        let op = WireOp::borrow_decode(d)?;
        let timeout_ms = u32::decode(d)?;
        let flags = u8::decode(d)?;
        let trace = if flags & FLAG_TRACE != 0 {
            u64::decode(d)?
        } else {
            0
        };
        Ok(CallMsg {
            id,
            target,
            path,
            op,
            timeout_ms,
            flags,
            trace,
        })
    }
}

/// Every message of the native protocol after the hello.
#[derive(Debug, Clone, PartialEq, Encode, BorrowDecode)]
#[bincode(decode_context = "DecodeCx")]
pub(crate) enum Message {
    Call(CallMsg),
    Return {
        id: u64,
        result: Result<WireValue, WireError>,
    },
    /// `(id, count)` pairs: the sender received `id` `count` times and holds it no more.
    Release(WVec<(u64, u64)>),
    Cancel(u64),
    Finish(u64),
    Ping(u64),
    Pong(u64),
    Goodbye(WStr),
}

impl Message {
    /// A short name for traces.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Message::Call(_) => "Call",
            Message::Return { .. } => "Return",
            Message::Release(_) => "Release",
            Message::Cancel(_) => "Cancel",
            Message::Finish(_) => "Finish",
            Message::Ping(_) => "Ping",
            Message::Pong(_) => "Pong",
            Message::Goodbye(_) => "Goodbye",
        }
    }
}

/// Renders an object id the way traces show it: slot and generation (`#3v1`).
pub(crate) fn fmt_id(id: u64) -> String {
    format!("#{}v{}", id & 0xffff_ffff, id >> 32)
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Root => f.write_str("root"),
            Target::Object(id) => f.write_str(&fmt_id(*id)),
            Target::Answer(q) => write!(f, "answer(call {q})"),
        }
    }
}

/// Writes `[a, b, …]`.
pub(crate) fn fmt_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    f.write_str("[")?;
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{v}")?;
    }
    f.write_str("]")
}

/// Writes `{k: v, …}`.
pub(crate) fn fmt_map<K: fmt::Display, V: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    entries: &[(K, V)],
) -> fmt::Result {
    f.write_str("{")?;
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{k}: {v}")?;
    }
    f.write_str("}")
}

fn fmt_path(f: &mut fmt::Formatter<'_>, path: &WPath) -> fmt::Result {
    for seg in path.0.iter() {
        write!(f, ".{seg}")?;
    }
    Ok(())
}

impl fmt::Display for WireValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireValue::Nil => f.write_str("nil"),
            WireValue::Bool(b) => write!(f, "{b}"),
            WireValue::Int(i) => write!(f, "{i}"),
            WireValue::UInt(u) => write!(f, "{u}"),
            WireValue::Float(x) => write!(f, "{x:?}"),
            WireValue::Str(s) => write!(f, "{:?}", s.0),
            WireValue::Bytes(b) if b.0.len() > 16 => write!(f, "<{} bytes>", b.0.len()),
            WireValue::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(&b.0)),
            WireValue::List(items) => fmt_list(f, items),
            WireValue::Map(entries) => fmt_map(f, entries),
            WireValue::Ref(WireRef::Sender(id)) => write!(f, "ref {}", fmt_id(*id)),
            WireValue::Ref(WireRef::Receiver { target, path }) => {
                write!(f, "your {target}")?;
                fmt_path(f, path)
            }
        }
    }
}

impl fmt::Display for Message {
    /// One readable line per message, for traces and teaching.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Call(c) => {
                write!(f, "Call {} {}", c.id, c.target)?;
                fmt_path(f, &c.path)?;
                match &c.op {
                    WireOp::Call { args, named } => {
                        f.write_str("(")?;
                        let mut first = true;
                        for a in args {
                            if !first {
                                f.write_str(", ")?;
                            }
                            first = false;
                            write!(f, "{a}")?;
                        }
                        for (k, v) in named {
                            if !first {
                                f.write_str(", ")?;
                            }
                            first = false;
                            write!(f, "{}={v}", k.0)?;
                        }
                        f.write_str(")")?;
                    }
                    WireOp::Get => f.write_str(" get")?,
                    WireOp::Set(v) => write!(f, " = {v}")?,
                    WireOp::Dir => f.write_str(" dir")?,
                    WireOp::Help => f.write_str(" help")?,
                    WireOp::Describe => f.write_str(" describe")?,
                    WireOp::Bind => f.write_str(" bind")?,
                }
                if c.flags & FLAG_KEEP_ANSWER != 0 {
                    f.write_str(" [pipelined]")?;
                }
                if c.flags & FLAG_ONE_WAY != 0 {
                    f.write_str(" [one-way]")?;
                }
                Ok(())
            }
            Message::Return { id, result: Ok(v) } => write!(f, "Return {id} = {v}"),
            Message::Return { id, result: Err(e) } => {
                write!(f, "Return {id} error {}: {}", e.kind.0, e.message.0)
            }
            Message::Release(items) => {
                f.write_str("Release")?;
                for (id, n) in items {
                    write!(f, " {}x{n}", fmt_id(*id))?;
                }
                Ok(())
            }
            Message::Cancel(id) => write!(f, "Cancel {id}"),
            Message::Finish(id) => write!(f, "Finish {id}"),
            Message::Ping(n) => write!(f, "Ping {n}"),
            Message::Pong(n) => write!(f, "Pong {n}"),
            Message::Goodbye(r) => write!(f, "Goodbye {:?}", r.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire index of every kind: a new kind fails to compile here until it is given one
    /// (at the end, so no kind already on the wire moves).
    fn index(kind: ErrorKind) -> u32 {
        match kind {
            ErrorKind::NoSuchObject => 0,
            ErrorKind::NoSuchMember => 1,
            ErrorKind::WrongOperation => 2,
            ErrorKind::BadArguments => 3,
            ErrorKind::Failed => 4,
            ErrorKind::Panicked => 5,
            ErrorKind::Overloaded => 6,
            ErrorKind::Cancelled => 7,
            ErrorKind::TimedOut => 8,
            ErrorKind::Disconnected => 9,
            ErrorKind::Protocol => 10,
            ErrorKind::Value => 11,
            ErrorKind::StopIteration => 12,
        }
    }

    #[test]
    fn error_kinds_keep_their_wire_index() {
        for (i, &k) in KINDS.iter().enumerate() {
            assert_eq!(index(k), i as u32, "{k:?}");
            let bytes = bincode::encode_to_vec(WKind(k), bincode::config::standard()).unwrap();
            assert_eq!(bytes, [i as u8], "{k:?}");
            let (back, _): (WKind, usize) =
                bincode::borrow_decode_from_slice(&bytes, bincode::config::standard()).unwrap();
            assert_eq!(back.0, k);
        }
        let refused: Result<(WKind, usize), _> =
            bincode::borrow_decode_from_slice(&[13], bincode::config::standard());
        assert!(refused.is_err());
    }
}
