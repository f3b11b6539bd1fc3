//! The send path: encode buffers, the sink (the transport's write half), direct writes, the
//! cork and gathering, the bounded send queue, and the control queue of one-way messages.
//!
//! A frame is encoded in the sender's task and written straight to the transport when
//! nothing is queued ahead of it ([`Shared::write_now`]); otherwise it gathers in
//! [`Sink::partial`] or waits in the bounded queue for the writer task (`writer.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

use super::{Import, Shared};
use crate::codec::Protocol;
use crate::error::Result;
use crate::protocol::Message;
use crate::proxy::Proxy;
use crate::stats::Counters;
use crate::trace::Direction;

/// What sending one message did to the tables, so it can be undone if the message never
/// leaves, and what must stay alive until it is written.
#[derive(Default)]
pub(crate) struct SendCtx {
    /// Export ids counted for this message.
    pub(crate) exported: Vec<u64>,
    /// Proxies of the peer's objects named in this message: kept alive until the frame is
    /// written, so their `Release` cannot overtake it.
    pub(crate) hold: Vec<Proxy>,
}

/// Room an encode buffer starts with: a call or a small reply fits without growing it.
const ENCODE_CAPACITY: usize = 128;

thread_local! {
    /// An encode buffer kept for the next frame sent from this thread: a frame written at
    /// once (the usual case) is copied out, so its buffer can serve again. Thread-local so
    /// that reusing it takes no lock: a frame is encoded and written by the task that sends
    /// it, without an await in between.
    static ENCODE_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A cleared buffer to encode a frame into (this thread's spare one, or a new one).
#[inline]
fn encode_buffer() -> Vec<u8> {
    let mut buf = ENCODE_BUFFER.with(|b| b.take());
    if buf.capacity() == 0 {
        buf.reserve(ENCODE_CAPACITY);
    }
    buf
}

/// Keeps `buf` as this thread's spare encode buffer, unless it grew large.
#[inline]
fn reuse_encode_buffer(mut buf: Vec<u8>) {
    if buf.capacity() <= ENCODE_KEEP {
        buf.clear();
        ENCODE_BUFFER.with(|b| b.set(buf));
    }
}

/// The largest encode buffer kept for reuse. Large values sent again and again (blobs of a
/// MiB, say) then reuse one buffer per thread instead of allocating and freeing megabytes
/// per message, which glibc's allocator can turn into fresh pages (page faults) each time.
const ENCODE_KEEP: usize = 4 * 1024 * 1024;

/// A corked reader writes what it gathered once this much is waiting.
const CORK_BYTES: usize = 64 * 1024;

thread_local! {
    /// The address of the connection whose reader is handling frames on this thread (0:
    /// none; see [`Cork`]), compared with a connection's own address, never followed.
    /// Thread-local because the reader runs the handlers of buffered frames synchronously on
    /// its own thread: what is sent from this thread meanwhile comes from those handlers.
    static CORK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };

    /// The address of the connection whose corked reader left frames in [`Sink::partial`]
    /// on this thread since it last uncorked (0: none), so that a reader that gathered
    /// nothing (it only handled replies) wakes nobody when it uncorks.
    static GATHERED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// While alive, frames this thread sends on its connection gather in [`Sink::partial`]
/// instead of being written one by one: the reader holds one while it handles frames that
/// are already buffered, so the replies to a burst of calls leave in one write. The reader
/// calls [`Shared::uncork`] before it waits for more input.
///
/// A cork covers only synchronous code (the reader never awaits while holding one), so no
/// other task can run on the thread and see it.
pub(crate) struct Cork {
    previous: usize,
}

impl Drop for Cork {
    fn drop(&mut self) {
        CORK.with(|c| c.set(self.previous));
    }
}

/// How soon a frame must reach the transport.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Write it now if the transport takes it: somebody waits for exactly this frame.
    Now,
    /// Other frames are in flight: gather it with what the sender sends next, and write them
    /// together on the sender's next poll (the flush step of [`Call`](crate::Call)).
    Soon,
}

/// Writes as much of `bytes` as `io` takes without waiting, in the write calls `wire` asks
/// for (see [`Protocol::write_span`]); an error is the reason to close.
fn poll_write_all(
    io: &mut Box<dyn AsyncWrite + Send + Unpin>,
    cx: &mut std::task::Context<'_>,
    bytes: &[u8],
    wire: &Protocol,
) -> std::result::Result<usize, String> {
    let mut written = 0;
    let mut end = 0;
    while written < bytes.len() {
        if written >= end {
            end = written + wire.write_span(&bytes[written..]);
        }
        match std::pin::Pin::new(&mut *io).poll_write(cx, &bytes[written..end]) {
            std::task::Poll::Ready(Ok(0)) => {
                return Err("write failed: the transport accepts no more bytes".into())
            }
            std::task::Poll::Ready(Ok(n)) => written += n,
            std::task::Poll::Ready(Err(e)) => return Err(format!("write failed: {e}")),
            std::task::Poll::Pending => break,
        }
    }
    Ok(written)
}

/// The transport's write half, shared by the writer task and senders that write directly.
pub(crate) struct Sink {
    pub(crate) io: Box<dyn AsyncWrite + Send + Unpin>,
    /// The unwritten tail of a frame a direct sender could not finish without waiting; the
    /// writer task writes it before anything else.
    pub(crate) partial: Vec<u8>,
}

/// An encoded frame on its way to the writer.
pub(crate) struct Frame {
    pub(crate) bytes: Vec<u8>,
    /// Proxies that must outlive the write (see [`SendCtx::hold`]).
    pub(crate) hold: Vec<Proxy>,
}

/// One-way messages queued from synchronous contexts (`Drop`), drained by the writer.
#[derive(Default)]
pub(crate) struct Control {
    /// Pending `(id, count)` releases. Not bounded by a constant: it holds at most one entry
    /// per import dropped since the writer last ran, and the writer drains it every wake-up.
    pub(crate) releases: Vec<(u64, u64)>,
    pub(crate) finishes: Vec<u64>,
    pub(crate) cancels: Vec<u64>,
    pub(crate) pongs: Vec<u64>,
    pub(crate) pings: Vec<u64>,
    pub(crate) goodbye: Option<String>,
}

/// The control queue: one-way messages waiting for the writer, which takes them all at
/// each wake-up ([`ControlQueue::take`]).
#[derive(Default)]
pub(crate) struct ControlQueue(Mutex<Control>);

impl ControlQueue {
    /// Everything queued, leaving the queue empty.
    pub(crate) fn take(&self) -> Control {
        std::mem::take(&mut *self.0.lock())
    }

    /// True when nothing but possibly a goodbye is queued.
    #[cfg(feature = "cli")]
    pub(crate) fn is_empty(&self) -> bool {
        let c = self.0.lock();
        c.releases.is_empty()
            && c.finishes.is_empty()
            && c.cancels.is_empty()
            && c.pongs.is_empty()
            && c.pings.is_empty()
    }

    fn push(&self, f: impl FnOnce(&mut Control)) {
        f(&mut self.0.lock());
    }
}

impl Shared {
    /// Encodes `msg` and hands it to the writer; undoes its counting if it cannot be sent.
    pub(crate) async fn send(&self, msg: &Message, ctx: SendCtx) -> Result<()> {
        self.send_as(msg, ctx, Urgency::Now).await
    }

    /// [`Shared::send`], saying how soon the frame must be written (see [`Urgency`]).
    pub(crate) async fn send_as(
        &self,
        msg: &Message,
        ctx: SendCtx,
        urgency: Urgency,
    ) -> Result<()> {
        let Some((bytes, ctx)) = self.try_write(msg, ctx, urgency)? else {
            return Ok(());
        };
        self.enqueue(bytes, ctx).await
    }

    /// Encodes `msg` and writes it now if [`Shared::write_now`] can. Returns the frame and
    /// its context when it must be queued instead; undoes the message's counting when it
    /// cannot be sent at all (it does not encode, or the connection is closed).
    pub(super) fn try_write(
        &self,
        msg: &Message,
        ctx: SendCtx,
        urgency: Urgency,
    ) -> Result<Option<(Vec<u8>, SendCtx)>> {
        let mut bytes = encode_buffer();
        if let Err(e) = self.wire.encode(msg, &mut bytes) {
            self.unsend(ctx);
            return Err(e);
        }
        if self.is_closed() {
            self.unsend(ctx);
            return Err(self.disconnected());
        }
        tracing::trace!(msg = msg.name(), bytes = bytes.len(), "send");
        self.trace(Direction::Sent, msg, bytes.len());
        if self.write_now(&bytes, urgency) {
            // On the wire (or first in line for it): held proxies may go.
            drop(ctx.hold);
            reuse_encode_buffer(bytes);
            return Ok(None);
        }
        Ok(Some((bytes, ctx)))
    }

    /// Like [`Shared::send`] for the reader, which must never wait for the writer: when the
    /// queue is full, a task finishes the send. An error means nothing was sent and the
    /// message's counting was undone.
    #[inline]
    pub(crate) fn send_nowait(self: &Arc<Self>, msg: &Message, ctx: SendCtx) -> Result<()> {
        if let Some((bytes, ctx)) = self.try_write(msg, ctx, Urgency::Now)? {
            self.queue_nowait(bytes, ctx);
        }
        Ok(())
    }

    /// Sends a whole frame a wire answers on its own ([`Inbound::Frame`]), like
    /// [`Shared::send_nowait`].
    ///
    /// [`Inbound::Frame`]: crate::codec::Inbound::Frame
    pub(crate) fn send_frame_nowait(self: &Arc<Self>, bytes: Vec<u8>) {
        if self.is_closed() || self.write_now(&bytes, Urgency::Now) {
            return;
        }
        self.queue_nowait(bytes, SendCtx::default());
    }

    /// Queues a frame for the writer without waiting: when the queue is full, a task
    /// finishes the send.
    fn queue_nowait(self: &Arc<Self>, bytes: Vec<u8>, ctx: SendCtx) {
        let len = bytes.len();
        let reserved = self.try_reserve(len);
        let frame = Frame {
            bytes,
            hold: ctx.hold,
        };
        let frame = if reserved {
            match self.out.try_send(frame) {
                Ok(()) => {
                    self.control_notify.notify_one();
                    return;
                }
                Err(mpsc::error::TrySendError::Full(frame)) => frame,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        } else {
            frame
        };
        // The queue is full: the peer is slow to read. Replies waiting for room are bounded
        // like calls in flight, and in bytes like the queue; past that the peer is not
        // reading at all.
        let waiting = self.overflow.fetch_add(1, Ordering::AcqRel) + 1;
        let waiting_bytes = self.overflow_bytes.fetch_add(len, Ordering::AcqRel) + len;
        if waiting > self.config.max_in_flight || waiting_bytes > self.config.send_queue_bytes {
            self.overflow.fetch_sub(1, Ordering::AcqRel);
            self.overflow_bytes.fetch_sub(len, Ordering::AcqRel);
            self.teardown(format!(
                "the peer does not read its replies ({waiting} replies, {waiting_bytes} bytes \
                 waiting for room in a full send queue)"
            ));
            return;
        }
        let shared = self.clone();
        self.spawn_task(async move {
            if reserved || shared.reserve(len).await.is_ok() {
                shared.overflow_bytes.fetch_sub(len, Ordering::AcqRel);
                if shared.out.send(frame).await.is_ok() {
                    shared.control_notify.notify_one();
                }
            } else {
                shared.overflow_bytes.fetch_sub(len, Ordering::AcqRel);
            }
            shared.overflow.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Counts `len` more bytes into the send queue if they fit [`Config::send_queue_bytes`]
    /// (anything fits an empty queue).
    fn try_reserve(&self, len: usize) -> bool {
        let budget = self.config.send_queue_bytes;
        self.queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q.saturating_add(len) <= budget).then_some(q + len)
            })
            .is_ok()
    }

    /// Waits until `len` bytes fit the send queue, and counts them in; fails when the
    /// connection closes meanwhile.
    async fn reserve(&self, len: usize) -> Result<()> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.is_closed() {
                return Err(self.disconnected());
            }
            if self.try_reserve(len) {
                return Ok(());
            }
            room.await;
        }
    }

    /// Puts a frame on the wire, or first in line for it, without waiting: returns false
    /// when the frame must be queued for the writer task instead (frames are queued ahead of
    /// it, or the writer is busy).
    ///
    /// How it goes on depends on who sends:
    /// - inside the reader's [`Cork`] (replies and calls made by handlers the reader runs
    ///   inline), the frame joins [`Sink::partial`], and the reader writes them all in one go
    ///   before it next waits for input;
    /// - with [`Urgency::Soon`] (a call while others are in flight), it joins
    ///   [`Sink::partial`] and its sender writes it with whatever else gathered meanwhile
    ///   (the flush step of [`Call`](crate::Call));
    /// - otherwise it is written straight to the transport. A frame the transport only partly
    ///   takes leaves its tail in [`Sink::partial`] for the writer task.
    fn write_now(&self, bytes: &[u8], urgency: Urgency) -> bool {
        if self.out.capacity() != self.out.max_capacity() {
            return false; // frames are queued: keep their order
        }
        let Ok(mut sink) = self.sink.try_lock() else {
            return false; // the writer is busy
        };
        if self.out.capacity() != self.out.max_capacity() {
            return false;
        }
        let corked = CORK.with(|c| c.get() == self.address());
        // Small frames gather; a large one is not worth a copy to save a system call.
        let gather = (corked || urgency == Urgency::Soon) && bytes.len() < CORK_BYTES;
        if gather && sink.partial.len() < CORK_BYTES {
            sink.partial.extend_from_slice(bytes);
            if corked {
                GATHERED.with(|g| g.set(self.address()));
            }
            Counters::add(&self.counters.messages_sent, 1);
            // A `Soon` frame is written by its sender's next poll (the flush step of `Call`), a
            // corked one by the reader before it waits.
            if corked && sink.partial.len() >= CORK_BYTES {
                self.write_partial(&mut sink);
            }
            return true;
        }
        if corked {
            // What gathered goes first, then this frame straight from its buffer.
            self.write_partial(&mut sink);
        }
        if !sink.partial.is_empty() {
            return false;
        }
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let written = match poll_write_all(&mut sink.io, &mut cx, bytes, &self.wire) {
            Ok(n) => n,
            Err(e) => {
                self.teardown(e);
                return true;
            }
        };
        Counters::add(&self.counters.messages_sent, 1);
        Counters::add(&self.counters.bytes_sent, written as u64);
        if written < bytes.len() {
            sink.partial.extend_from_slice(&bytes[written..]);
            self.control_notify.notify_one();
            return true;
        }
        self.poll_flush(&mut sink, &mut cx);
        true
    }

    /// Writes what [`Sink::partial`] holds as far as the transport takes it without waiting;
    /// the writer task is told to finish the rest.
    fn write_partial(&self, sink: &mut Sink) {
        if sink.partial.is_empty() {
            return;
        }
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let Sink { io, partial } = sink;
        let written = match poll_write_all(io, &mut cx, partial, &self.wire) {
            Ok(n) => n,
            Err(e) => {
                self.teardown(e);
                return;
            }
        };
        Counters::add(&self.counters.bytes_sent, written as u64);
        partial.drain(..written);
        if !partial.is_empty() {
            self.control_notify.notify_one();
            return;
        }
        self.poll_flush(sink, &mut cx);
    }

    fn poll_flush(&self, sink: &mut Sink, cx: &mut std::task::Context<'_>) {
        match std::pin::Pin::new(&mut sink.io).poll_flush(cx) {
            std::task::Poll::Ready(Ok(())) => {}
            std::task::Poll::Ready(Err(e)) => self.teardown(format!("flush failed: {e}")),
            // Buffered in the transport (TLS, say): the writer task finishes the flush.
            std::task::Poll::Pending => self.control_notify.notify_one(),
        }
    }

    /// This connection's identity for [`CORK`].
    #[inline]
    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Starts a cork on this thread (see [`Cork`]).
    #[inline]
    pub(crate) fn cork(&self) -> Cork {
        Cork {
            previous: CORK.with(|c| c.replace(self.address())),
        }
    }

    /// Writes what gathered in [`Sink::partial`]: called by a [`Call`](crate::Call)'s flush
    /// step.
    #[inline]
    pub(crate) fn uncork(&self) {
        match self.sink.try_lock() {
            Ok(mut sink) => self.write_partial(&mut sink),
            // The writer holds the sink: it takes the gathered frames when it next runs.
            Err(_) => self.control_notify.notify_one(),
        }
    }

    /// [`Shared::uncork`] for the reader, before it waits for input. When someone else holds
    /// the sink, the writer task is woken only if this reader gathered frames: a reader
    /// that handled replies alone has nothing to hand over, and in a sequential exchange the
    /// holder is usually the caller it just woke, writing its next call (waking the writer
    /// then would cost a thread wake-up per call for nothing).
    #[inline]
    pub(crate) fn uncork_reader(&self) {
        let gathered = GATHERED.with(|g| g.replace(0)) == self.address();
        match self.sink.try_lock() {
            Ok(mut sink) => self.write_partial(&mut sink),
            Err(_) if gathered => self.control_notify.notify_one(),
            // Whoever holds the sink found it as the reader left it; frames it gathers, or
            // a tail it leaves, are its own to hand over.
            Err(_) => {}
        }
    }

    /// The part of [`Shared::send_as`] after [`Shared::try_write`]: waits for room in the
    /// send queue and queues the frame for the writer task.
    pub(crate) async fn enqueue(&self, bytes: Vec<u8>, ctx: SendCtx) -> Result<()> {
        let len = bytes.len();
        if !self.try_reserve(len) {
            if let Err(e) = self.reserve(len).await {
                drop(ctx.hold);
                return Err(e);
            }
        }
        let frame = Frame {
            bytes,
            hold: ctx.hold,
        };
        // `try_send` first: it neither yields to the scheduler's budget nor overtakes
        // senders already waiting for room, so calls polled in order are queued in order.
        let frame = match self.out.try_send(frame) {
            Ok(()) => {
                self.control_notify.notify_one();
                return Ok(());
            }
            Err(mpsc::error::TrySendError::Full(frame)) => frame,
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(self.disconnected()),
        };
        self.control_notify.notify_one();
        if self.out.send(frame).await.is_err() {
            // The writer is gone: the connection is closing and the tables are cleared.
            return Err(self.disconnected());
        }
        self.control_notify.notify_one();
        Ok(())
    }

    /// A dying import handle: queue its release.
    pub(crate) fn drop_import(&self, id: u64, handle: *const Import) {
        let count = self.imports.forget(id, handle);
        let Some(count) = count else {
            return;
        };
        if self.wire.rpyc().is_some() {
            // RPyC's `DEL` is a request like any other, which Python handles in order: it
            // is written now, so a call made after the drop cannot overtake it.
            if let Some(me) = self.me.upgrade() {
                let msg = Message::Release(vec![(id, count)].into());
                // Nothing counted; a failure means the connection is closing.
                let _ = me.send_nowait(&msg, SendCtx::default());
                return;
            }
        }
        self.queue_control(|c| c.releases.push((id, count)));
    }

    /// A dropped pipelined answer: the peer may forget it.
    pub(crate) fn queue_finish(&self, id: u64) {
        self.queue_control(|c| c.finishes.push(id));
    }

    /// A call this side no longer waits for: the peer may stop it.
    pub(crate) fn queue_cancel(&self, id: u64) {
        if self.features & crate::codec::native::FEATURE_CANCEL == 0 {
            return; // the peer's hello does not announce `Cancel`: it would not read one
        }
        self.queue_control(|c| c.cancels.push(id));
    }

    /// The answer to the peer's `Ping(n)`.
    pub(crate) fn queue_pong(&self, n: u64) {
        self.control.push(|c| c.pongs.push(n));
        self.control_notify.notify_one();
    }

    /// A keepalive probe.
    pub(crate) fn queue_ping(&self, n: u64) {
        self.control.push(|c| c.pings.push(n));
        self.control_notify.notify_one();
    }

    /// The goodbye the writer sends last (the first reason given wins).
    pub(crate) fn queue_goodbye(&self, reason: &str) {
        self.control.push(|c| {
            c.goodbye.get_or_insert_with(|| reason.to_owned());
        });
    }

    /// Queues a one-way message unless the connection is closed, and wakes the writer.
    fn queue_control(&self, f: impl FnOnce(&mut Control)) {
        if !self.is_closed() {
            self.control.push(f);
            self.control_notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncReadExt, AsyncWrite};

    use super::Urgency;
    use crate::codec::test_wire::FramedWire;
    use crate::codec::Protocol;
    use crate::{Config, Connection};

    /// A write half that counts its flushes: the writer task flushes each time it runs.
    struct CountFlushes<W> {
        inner: W,
        flushes: Arc<AtomicUsize>,
    }

    impl<W: AsyncWrite + Unpin> AsyncWrite for CountFlushes<W> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            self.flushes.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    async fn let_tasks_run() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// In a sequential exchange the reader, done with a reply, uncorks while the caller it
    /// woke holds the sink to write its next call: the writer task has nothing to do then,
    /// and is not woken. A reader that gathered a frame does hand it to the writer.
    #[tokio::test]
    async fn a_reader_wakes_the_writer_only_for_frames_it_gathered() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (ar, aw) = tokio::io::split(a);
        let (mut peer, _peer_w) = tokio::io::split(b);
        let flushes = Arc::new(AtomicUsize::new(0));
        let writer = CountFlushes {
            inner: aw,
            flushes: flushes.clone(),
        };
        let wire = Protocol::Test(FramedWire::default());
        let conn = Connection::start(ar, writer, Config::default(), None, wire);
        let shared = conn.link.shared.clone();
        let_tasks_run().await;
        let before = flushes.load(Ordering::Relaxed);

        let held = shared.sink.try_lock().expect("the sink is free");
        shared.uncork_reader();
        drop(held);
        let_tasks_run().await;
        assert_eq!(
            flushes.load(Ordering::Relaxed),
            before,
            "the writer task ran"
        );

        // A frame gathered under the reader's cork, then the sink taken by someone else: the
        // writer writes the frame.
        {
            let _cork = shared.cork();
            assert!(shared.write_now(b"gathered", Urgency::Now));
        }
        let held = shared.sink.try_lock().expect("the sink is free");
        shared.uncork_reader();
        drop(held);
        let mut got = [0u8; 8];
        tokio::time::timeout(std::time::Duration::from_secs(5), peer.read_exact(&mut got))
            .await
            .expect("the gathered frame was written")
            .unwrap();
        assert_eq!(&got, b"gathered");
        assert!(flushes.load(Ordering::Relaxed) > before);
        drop(conn);
    }
}
