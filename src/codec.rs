//! The wire layer's seam: how a connection's bytes become engine messages and back.
//!
//! A *wire* is one way of putting a connection on a byte stream: its opening (a handshake,
//! or none), its framing, and the translation between its own requests and the engine's
//! messages ([`Message`], in [`protocol`](crate::protocol)). The engine (object tables,
//! gate, dispatch, the call registry) only ever sees `Message`s, so a second wire plugs in
//! here without touching any of them. The native wire is [`native`] (with its hand-written
//! fast path in `fast.rs`); Python RPyC 6's is [`rpyc`], whose requests become engine
//! messages as described below.
//!
//! The wire is chosen when a connection is made and kept in the connection as a
//! [`Protocol`], an enum: each frame costs one `match`, and the native wire is called
//! directly (no `dyn` call per frame).
//!
//! # What a wire implements
//!
//! The [`Wire`] trait, plus an opening run before the connection starts (for the native
//! wire, [`native::handshake`]: hello both ways, the version both speak, then
//! authentication). What the opening settled, [`Wire::version`] and [`Wire::features`] (the
//! peer's, in the native hello's bits), the engine keeps on the connection and checks
//! before it sends what the peer might not read. Then:
//!
//! - **Framing.** Every frame is a head of [`Wire::HEAD`] bytes, a body, and a trailer of
//!   fixed size. [`Wire::frame_len`] reads the body's and the trailer's length from the head
//!   and refuses a body over the engine's limit (the reader checks the length before it
//!   allocates anything). The engine reads whole frames and hands the wire each body.
//! - **Decoding** ([`Wire::decode_into`]): one frame body becomes zero or more [`Inbound`]s,
//!   handed over in order. Usually an engine message; a wire may also answer a request on its
//!   own with [`Inbound::Frame`] (bytes the engine writes as they are, in order with its
//!   other frames), say for a request the engine has no part in.
//! - **Encoding** ([`Wire::encode`]): one engine message becomes one frame appended to
//!   `out`, or nothing when the wire has no such message (a `Cancel` on a wire without
//!   cancellation). A message the wire cannot express at all (a pipelined call on a wire
//!   without pipelining) is an error: the engine reports it to the caller and undoes what
//!   the message counted. So is a `Return` whose value the wire cannot carry (or that is
//!   over a limit): the engine undoes what the value counted and sends the error as that
//!   call's `Return` instead, which the wire must be able to encode (so it keeps what it
//!   knows of the call until a `Return` of it is encoded). `encode` is called from any task
//!   that sends; a wire that keeps state (sequence numbers, id maps) keeps it behind its own
//!   lock.
//!
//! # How requests map to engine messages
//!
//! The engine's vocabulary is small: [`Message::Call`] (a target, a path of names, one
//! operation: call, get, set, dir, help), `Return`, `Release(id, count)`, `Cancel`, `Finish`,
//! `Ping`/`Pong` and `Goodbye`. A wire's request that is one engine operation becomes one
//! `Call` (a "call attribute `name` of object `o`" request is a `Call` with target
//! `Object(o)` and path `[name]`). A request that takes several:
//!
//! - independent operations: several `Call`s with ids the wire picks; the wire sees each
//!   `Return` in [`Wire::encode`], keeps what it needs and writes its own reply when the last
//!   one has come (encoding the others to nothing);
//! - dependent ones: the first `Call` with [`FLAG_KEEP_ANSWER`](crate::protocol) (the engine
//!   keeps its answer and sends no `Return`), the next with target `Answer(first id)`, then a
//!   `Finish(first id)`: the engine's pipelining.
//!
//! Every name still goes through the gate, since every `Call` does.
//!
//! # Ids
//!
//! - **Call ids.** An incoming `Call`'s id is the peer's: the engine only keys its tables
//!   (kept answers, running handlers) with it and echoes it in the `Return`, `Cancel` and
//!   `Finish` that concern that call. Ids of calls this side makes are the engine's (counting
//!   up from 1); a wire with its own numbering (RPyC's per-direction `seq`) maps them when it
//!   encodes the `Call` and maps the peer's reply back to that id when it decodes it.
//! - **Object ids.** `WireRef::Sender(id)` names an object of the sender,
//!   `WireRef::Receiver` one of the receiver. Ids of this side's objects are the engine's
//!   export ids (`u64` slotmap keys, never 0); ids of the peer's objects are whatever `u64`
//!   the wire hands the engine, the same one for as long as the peer names the same object
//!   (a wire whose ids are not integers, such as RPyC's id packs, keeps a map both ways).
//! - **Counting.** The engine counts one send per `WireRef::Sender` it encodes and one
//!   receipt per one it decodes; when its last proxy of a peer's object goes it sends
//!   `Release(id, count)` with the receipts it counted. A wire whose peer releases with its
//!   own message (RPyC's `DEL(obj, count)`) decodes that to a `Release` and encodes the
//!   engine's `Release` to its own.

mod fast;
pub(crate) mod native;
pub(crate) mod rpyc;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Error, Result};
use crate::protocol::Message;

/// The length of one frame, read from its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameLen {
    /// Bytes of the body, after the head.
    pub(crate) body: usize,
    /// Bytes after the body that belong to the frame but carry nothing (0 on the native
    /// wire).
    pub(crate) trailer: usize,
}

/// What one frame of a wire gives the engine, in order.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// An engine message.
    Message(Message),
    /// A whole frame the wire answers on its own, written as it is. The native wire never
    /// does; RPyC's does for the requests the engine has no part in.
    Frame(Vec<u8>),
}

/// One wire: framing, and translation between its frames and engine messages. See the
/// module docs for what each method owes the engine.
pub(crate) trait Wire: Send + Sync + 'static {
    /// Bytes of every frame's head.
    const HEAD: usize;

    /// The body's and trailer's length of the frame `head` ([`Wire::HEAD`] bytes) starts;
    /// an error (which closes the connection) when the body is over `max` bytes or the head
    /// is malformed.
    fn frame_len(&self, head: &[u8], max: usize) -> Result<FrameLen>;

    /// Appends one whole frame carrying `msg` to `out` (or nothing, see the module docs).
    fn encode(&self, msg: &Message, out: &mut Vec<u8>) -> Result<()>;

    /// Decodes one frame body, handing what it carries to `deliver` in order; stops early
    /// when `deliver` returns false (the connection is over). An error closes the
    /// connection with it as the reason.
    fn decode_into(&self, body: &[u8], deliver: impl FnMut(Inbound) -> bool) -> Result<bool>;

    /// The deepest nesting of values the peer accepts.
    fn peer_max_depth(&self) -> usize;

    /// What the peer supports and this side uses, in the native hello's feature bits
    /// (`native::FEATURE_*`): the engine sends a stream, a one-way call, a pipelined call, a
    /// `Cancel` or a trace id only when its bit is here.
    fn features(&self) -> u32;

    /// The protocol version the opening agreed on.
    fn version(&self) -> u16;
}

/// The wire a connection speaks, chosen when it is made.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Protocol {
    /// netref's own wire ([`native`]).
    Native(native::NativeCodec),
    /// Python RPyC 6's wire ([`rpyc`]).
    Rpyc(rpyc::RpycWire),
    /// A second wire for the seam's own tests.
    #[cfg(test)]
    Test(test_wire::FramedWire),
}

impl Protocol {
    /// Bytes of every frame's head.
    #[inline]
    pub(crate) fn head_len(&self) -> usize {
        match self {
            Protocol::Native(_) => native::NativeCodec::HEAD,
            Protocol::Rpyc(_) => rpyc::RpycWire::HEAD,
            #[cfg(test)]
            Protocol::Test(_) => test_wire::FramedWire::HEAD,
        }
    }

    /// See [`Wire::frame_len`].
    #[inline]
    pub(crate) fn frame_len(&self, head: &[u8], max: usize) -> Result<FrameLen> {
        match self {
            Protocol::Native(w) => w.frame_len(head, max),
            Protocol::Rpyc(w) => w.frame_len(head, max),
            #[cfg(test)]
            Protocol::Test(w) => w.frame_len(head, max),
        }
    }

    /// See [`Wire::encode`].
    #[inline]
    pub(crate) fn encode(&self, msg: &Message, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Protocol::Native(w) => w.encode(msg, out),
            Protocol::Rpyc(w) => w.encode(msg, out),
            #[cfg(test)]
            Protocol::Test(w) => w.encode(msg, out),
        }
    }

    /// See [`Wire::decode_into`].
    #[inline]
    pub(crate) fn decode(&self, body: &[u8], deliver: impl FnMut(Inbound) -> bool) -> Result<bool> {
        match self {
            Protocol::Native(w) => w.decode_into(body, deliver),
            Protocol::Rpyc(w) => w.decode_into(body, deliver),
            #[cfg(test)]
            Protocol::Test(w) => w.decode_into(body, deliver),
        }
    }

    /// See [`Wire::peer_max_depth`].
    pub(crate) fn peer_max_depth(&self) -> usize {
        match self {
            Protocol::Native(w) => w.peer_max_depth(),
            Protocol::Rpyc(w) => w.peer_max_depth(),
            #[cfg(test)]
            Protocol::Test(w) => w.peer_max_depth(),
        }
    }

    /// See [`Wire::features`].
    pub(crate) fn features(&self) -> u32 {
        match self {
            Protocol::Native(w) => w.features(),
            Protocol::Rpyc(w) => w.features(),
            #[cfg(test)]
            Protocol::Test(w) => w.features(),
        }
    }

    /// See [`Wire::version`].
    pub(crate) fn version(&self) -> u16 {
        match self {
            Protocol::Native(w) => w.version(),
            Protocol::Rpyc(w) => w.version(),
            #[cfg(test)]
            Protocol::Test(w) => w.version(),
        }
    }

    /// How many bytes of `rest` (which starts a frame) the next write to the transport
    /// should take: all of them, but on RPyC's wire only the frame it starts with. Python
    /// polls its socket, not its TLS buffer, so a second frame sharing a TLS record with the
    /// first would wait there unseen; one write per frame makes each frame a record.
    #[inline]
    pub(crate) fn write_span(&self, rest: &[u8]) -> usize {
        match self {
            Protocol::Rpyc(_) => rpyc::frame_span(rest),
            _ => rest.len(),
        }
    }

    /// RPyC's wire, when this is it.
    pub(crate) fn rpyc(&self) -> Option<&rpyc::RpycWire> {
        match self {
            Protocol::Rpyc(w) => Some(w),
            _ => None,
        }
    }

    /// The frame `buffered` starts with, when all of it is there: its head's length and
    /// [`FrameLen`]. `None` when more bytes are needed, or when the head is refused (left to
    /// [`Protocol::read_frame`], which reports it).
    #[inline]
    pub(crate) fn buffered_frame(&self, buffered: &[u8], max: usize) -> Option<FrameLen> {
        let head = self.head_len();
        let len = self.frame_len(buffered.get(..head)?, max).ok()?;
        (buffered.len() - head >= len.body + len.trailer).then_some(len)
    }

    /// Reads one frame from `r` and leaves its body in `buf`. `Ok(None)` on a clean end of
    /// stream between frames. The declared length is checked against `max` before anything
    /// is allocated, and the body grows as it arrives: a peer that declares a large frame and
    /// sends little of it holds at most one chunk, not the size it declared.
    pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        max: usize,
        buf: &mut Vec<u8>,
    ) -> Result<Option<FrameLen>> {
        const MAX_HEAD: usize = 16;
        let mut head = [0u8; MAX_HEAD];
        let head = &mut head[..self.head_len()];
        match r.read_exact(&mut head[..1]).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        r.read_exact(&mut head[1..]).await?;
        let len = self.frame_len(head, max)?;
        // Bytes are read into the buffer's spare capacity, which is never zeroed first.
        const CHUNK: usize = 64 * 1024;
        buf.clear();
        while buf.len() < len.body {
            let want = (len.body - buf.len()).min(CHUNK);
            buf.reserve(want);
            let n = (&mut *r).take(want as u64).read_buf(buf).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
        let mut trailer = [0u8; MAX_HEAD];
        if len.trailer > 0 {
            let Some(t) = trailer.get_mut(..len.trailer) else {
                return Err(Error::Protocol("frame trailer too long".into()));
            };
            r.read_exact(t).await?;
        }
        Ok(Some(len))
    }
}

#[cfg(test)]
pub(crate) mod test_wire {
    //! A second wire, for tests of the seam: RPyC 6's framing (a 4-byte big-endian length, a
    //! flag byte, the body, a trailing newline), native messages inside, no opening, and
    //! `Ping`s answered by the wire itself without the engine.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::native::NativeCodec;
    use super::{FrameLen, Inbound, Wire};
    use crate::error::{Error, Result};
    use crate::protocol::Message;

    /// See the module docs.
    #[derive(Debug)]
    pub(crate) struct FramedWire {
        inner: NativeCodec,
        /// `Ping`s this wire answered on its own.
        pub(crate) pongs: AtomicUsize,
    }

    impl Default for FramedWire {
        fn default() -> Self {
            FramedWire {
                inner: NativeCodec {
                    max_frame_out: 1 << 20,
                    max_depth: 64,
                    peer_max_depth: 64,
                    features: super::native::FEATURES,
                    version: super::native::MAX_VERSION,
                },
                pongs: AtomicUsize::new(0),
            }
        }
    }

    impl Wire for FramedWire {
        const HEAD: usize = 5;

        fn frame_len(&self, head: &[u8], max: usize) -> Result<FrameLen> {
            let body = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if body > max {
                return Err(Error::Protocol(format!("frame of {body} bytes")));
            }
            if head[4] != 0 {
                return Err(Error::Protocol("compressed frame".into()));
            }
            Ok(FrameLen { body, trailer: 1 })
        }

        fn encode(&self, msg: &Message, out: &mut Vec<u8>) -> Result<()> {
            let start = out.len();
            self.inner.encode(msg, out)?;
            // The native frame's 4-byte length stays; the flag goes after it.
            out.insert(start + 4, 0);
            out.push(b'\n');
            Ok(())
        }

        fn decode_into(
            &self,
            body: &[u8],
            mut deliver: impl FnMut(Inbound) -> bool,
        ) -> Result<bool> {
            let msg = self.inner.decode(body)?;
            if let Message::Ping(n) = msg {
                self.pongs.fetch_add(1, Ordering::Relaxed);
                let mut frame = Vec::new();
                self.encode(&Message::Pong(n), &mut frame)?;
                return Ok(deliver(Inbound::Frame(frame)));
            }
            Ok(deliver(Inbound::Message(msg)))
        }

        fn peer_max_depth(&self) -> usize {
            64
        }

        fn features(&self) -> u32 {
            self.inner.features()
        }

        fn version(&self) -> u16 {
            self.inner.version()
        }
    }
}
