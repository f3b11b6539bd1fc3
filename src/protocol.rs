//! The messages two peers exchange: the engine's vocabulary on every wire.
//!
//! The engine produces and consumes these types; a wire ([`codec`](crate::codec): the
//! native one today, RPyC's later) turns them into bytes. Like the codec, this module
//! imports nothing from the engine: values here are [`WireValue`]s, with references as ids,
//! and the engine converts them to and from its own values where it counts references.
//! `docs/protocol.md` is the normative description of the native encoding.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, RemoteError};

/// What a call is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl Serialize for WStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for WStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WStr, E> {
                Ok(WStr(v.to_owned()))
            }
        }
        d.deserialize_str(V)
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

impl Serialize for WPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for seg in self.0.iter() {
            seq.serialize_element(seg.as_str())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for WPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WPath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path of strings")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<WPath, A::Error> {
                // Short paths are read borrowed and looked up among this thread's recent
                // paths first: repeated calls to one method share one `Arc`.
                let mut short: [Option<std::borrow::Cow<'de, str>>; CACHED_SEGMENTS] =
                    Default::default();
                let mut n = 0;
                let mut bytes = 0;
                while n < CACHED_SEGMENTS {
                    match seq.next_element::<SegStr<'de>>()? {
                        Some(seg) => {
                            bytes += seg.0.len();
                            short[n] = Some(seg.0);
                            n += 1;
                        }
                        None => return Ok(cached_path(&short[..n], bytes)),
                    }
                }
                // A long path: grow as segments actually arrive (the declared count is the
                // peer's word).
                let mut v: Vec<String> = short
                    .into_iter()
                    .map(|s| s.map(|c| c.into_owned()).unwrap_or_default())
                    .collect();
                while let Some(seg) = seq.next_element::<WStr>()? {
                    v.push(seg.0);
                }
                Ok(WPath(v.into()))
            }
        }
        d.deserialize_seq(V)
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

/// A path segment, borrowed from the frame when the decoder allows it.
struct SegStr<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for SegStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SegStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<SegStr<'de>, E> {
                Ok(SegStr(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SegStr<'de>, E> {
                Ok(SegStr(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl From<&str> for WStr {
    fn from(s: &str) -> Self {
        WStr(s.to_owned())
    }
}

/// Raw bytes on the wire, decoded by borrowing (see [`WStr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WBytes(pub(crate) Vec<u8>);

impl Serialize for WBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for WBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<WBytes, E> {
                Ok(WBytes(v.to_owned()))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A reference inside a wire value, named from the receiver's point of view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WireRef {
    /// An object the sender owns: the receiver imports it (or counts one more receipt).
    Sender(u64),
    /// An object the receiver owns, coming home (identity round trip), with an optional
    /// attribute path to apply on it.
    Receiver { target: Target, path: WPath },
}

/// A value on the wire: the engine's `Value` with references replaced by ids.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) enum WireValue {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(WStr),
    Bytes(WBytes),
    List(Vec<WireValue>),
    Map(Vec<(WireValue, WireValue)>),
    Ref(WireRef),
}

thread_local! {
    /// Remaining nesting depth while a frame is decoded on this thread (set by
    /// [`with_depth_limit`]). Thread-local because serde's `Deserialize` takes no argument:
    /// the limit travels beside the decoder, which runs synchronously on this thread.
    static DEPTH_LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Runs `f` with wire-value nesting limited to `max_depth`.
pub(crate) fn with_depth_limit<R>(max_depth: usize, f: impl FnOnce() -> R) -> R {
    let old = DEPTH_LEFT.with(|d| d.replace(max_depth));
    let r = f();
    DEPTH_LEFT.with(|d| d.set(old));
    r
}

struct DepthGuard;

impl DepthGuard {
    fn enter<E: de::Error>() -> Result<DepthGuard, E> {
        DEPTH_LEFT.with(|d| {
            let left = d.get();
            if left == 0 {
                Err(E::custom("value nesting depth over the limit"))
            } else {
                d.set(left - 1);
                Ok(DepthGuard)
            }
        })
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH_LEFT.with(|d| d.set(d.get().saturating_add(1)));
    }
}

const WIRE_VALUE_VARIANTS: &[&str] = &[
    "Nil", "Bool", "Int", "UInt", "Float", "Str", "Bytes", "List", "Map", "Ref",
];

impl<'de> Deserialize<'de> for WireValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _guard = DepthGuard::enter::<D::Error>()?;
        d.deserialize_enum("WireValue", WIRE_VALUE_VARIANTS, WireValueVisitor)
    }
}

struct WireValueVisitor;

impl<'de> Visitor<'de> for WireValueVisitor {
    type Value = WireValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a wire value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<WireValue, A::Error> {
        let (tag, v): (u32, _) = data.variant()?;
        Ok(match tag {
            0 => {
                v.unit_variant()?;
                WireValue::Nil
            }
            1 => WireValue::Bool(v.newtype_variant()?),
            2 => WireValue::Int(v.newtype_variant()?),
            3 => WireValue::UInt(v.newtype_variant()?),
            4 => WireValue::Float(v.newtype_variant()?),
            5 => WireValue::Str(v.newtype_variant()?),
            6 => WireValue::Bytes(v.newtype_variant()?),
            7 => WireValue::List(v.newtype_variant()?),
            8 => WireValue::Map(v.newtype_variant()?),
            9 => WireValue::Ref(v.newtype_variant()?),
            n => {
                return Err(de::Error::custom(format!("unknown value tag {n}")));
            }
        })
    }
}

/// One operation on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WireOp {
    Call {
        args: Vec<WireValue>,
        named: Vec<(WStr, WireValue)>,
    },
    Get,
    Set(WireValue),
    Dir,
    Help,
}

/// A remote error on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireError {
    pub(crate) kind: ErrorKind,
    pub(crate) type_name: WStr,
    pub(crate) message: WStr,
    pub(crate) chain: Vec<WStr>,
}

impl From<RemoteError> for WireError {
    fn from(e: RemoteError) -> Self {
        WireError {
            kind: e.kind,
            type_name: WStr(e.type_name),
            message: WStr(e.message),
            chain: e.chain.into_iter().map(WStr).collect(),
        }
    }
}

impl From<WireError> for RemoteError {
    fn from(e: WireError) -> Self {
        RemoteError {
            kind: e.kind,
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

const CALL_FIELDS: &[&str] = &["id", "target", "path", "op", "timeout_ms", "flags", "trace"];

impl Serialize for CallMsg {
    /// The fields in order; `trace` only when the flags say it follows.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let traced = self.flags & FLAG_TRACE != 0;
        let mut st = s.serialize_struct("CallMsg", if traced { 7 } else { 6 })?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("target", &self.target)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("op", &self.op)?;
        st.serialize_field("timeout_ms", &self.timeout_ms)?;
        st.serialize_field("flags", &self.flags)?;
        if traced {
            st.serialize_field("trace", &self.trace)?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for CallMsg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CallMsg;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a call")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<CallMsg, A::Error> {
                fn field<'de, T: Deserialize<'de>, A: de::SeqAccess<'de>>(
                    seq: &mut A,
                    i: usize,
                ) -> Result<T, A::Error> {
                    seq.next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &"a call's fields"))
                }
                let id = field(&mut seq, 0)?;
                let target = field(&mut seq, 1)?;
                let path = field(&mut seq, 2)?;
                let op = field(&mut seq, 3)?;
                let timeout_ms = field(&mut seq, 4)?;
                let flags: u8 = field(&mut seq, 5)?;
                let trace = if flags & FLAG_TRACE != 0 {
                    field(&mut seq, 6)?
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
        d.deserialize_struct("CallMsg", CALL_FIELDS, V)
    }
}

/// Every message of the native protocol after the hello.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Message {
    Call(CallMsg),
    Return {
        id: u64,
        result: Result<WireValue, WireError>,
    },
    /// `(id, count)` pairs: the sender received `id` `count` times and holds it no more.
    Release(Vec<(u64, u64)>),
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
                write!(f, "Return {id} error {}: {}", e.kind, e.message.0)
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
