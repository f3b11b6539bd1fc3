//! One RPyC connection: its state, its reader and writer tasks, and the requests this side
//! makes.
//!
//! # Tasks
//!
//! - The **reader** reads frames (the declared length is checked before anything is
//!   buffered), decodes each message and handles it without waiting for any handler: a reply
//!   goes to the request waiting for it, a request from the peer is dispatched
//!   ([`super::serve`]) and, when its handler cannot answer at once, runs in its own task.
//!   So callbacks nest to any depth both ways.
//! - **Sending.** Every message is encoded into the outgoing buffer, in order. Whoever
//!   finds the socket free writes it at once, without waiting: the task that sent (a request
//!   of this side, a handler that finished in its own task) or, for the replies of the
//!   handlers it ran, the reader itself, once it has handled every frame already buffered
//!   (its *cork*: a burst of requests is answered in one go, and a sequential call's reply
//!   leaves without any other task waking up). What the socket does not take at once, and
//!   what is sent while someone else is writing, is left to the **writer** task, which
//!   writes the rest in order.
//!
//! # Limits
//!
//! The outgoing buffer holds at most `Config::send_queue_bytes`: a request waits for room
//! past it, and a peer that stops reading while replies pile up to twice that is dropped.
//! Handlers running at once are bounded by `Config::max_in_flight`; the excess is refused
//! with an exception reply. Every request this side makes fails with `TimedOut` after
//! `Config::call_timeout` (RPyC has no cancellation: a late reply is dropped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch, Notify};

use std::pin::Pin;
use std::task::{Context, Poll};

use super::boxing::{Boxed, IdPack};
use super::brine::Limits;
use super::exports::Exports;
use super::frame;
use super::message::{Handler, Message};
use super::pyobj::PyRef;
use super::vinegar::{PyException, Raised};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::object::Object;
use crate::proxy::Proxy;
use crate::trace::{Direction, TraceEvent, Tracer};
use crate::value::Value;

/// The state of one RPyC connection, shared by its tasks and handles.
pub(crate) struct Session {
    pub(crate) label: String,
    pub(crate) config: Config,
    pub(crate) limits: Limits,
    /// Frames encoded and not yet written, in order.
    out: Mutex<Vec<u8>>,
    out_notify: Notify,
    /// The socket's write half: whoever holds it writes from the front of `out`.
    sink: tokio::sync::Mutex<Pin<Box<dyn AsyncWrite + Send>>>,
    /// Set while the reader handles frames already buffered: it writes what they sent when
    /// it is done, so nobody else needs waking.
    corked: AtomicBool,
    /// A direct write left data in the transport's own buffer: the writer flushes it.
    needs_flush: AtomicBool,
    room: Notify,
    next_seq: AtomicI64,
    pending: Mutex<HashMap<i64, oneshot::Sender<Result<Value>>>>,
    pub(crate) exports: Mutex<Exports>,
    /// The peer's objects this side holds, by id_pack (one live handle per object).
    pub(crate) imports: Mutex<HashMap<IdPack, Weak<PyRef>>>,
    /// What this side lends as its root.
    pub(crate) root: Mutex<Option<Arc<dyn Object>>>,
    /// The peer's root, once asked for: held until the connection closes, as Python does.
    pub(crate) remote_root: Mutex<Option<Proxy>>,
    /// Handlers running in their own tasks.
    pub(crate) in_flight: AtomicUsize,
    closed: AtomicBool,
    close_reason: Mutex<Option<String>>,
    closed_tx: watch::Sender<bool>,
    tasks: AtomicU64,
    tasks_done: Notify,
    link: Mutex<Weak<Link>>,
    tracing_on: AtomicBool,
    tracer: parking_lot::RwLock<Option<Tracer>>,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Batches the writer task wrote (what direct writes left to it).
    pub(crate) writer_batches: AtomicU64,
}

/// What user-facing handles hold: dropping the last one closes the connection.
pub(crate) struct Link {
    pub(crate) session: Arc<Session>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.session.close("every handle was dropped".into());
    }
}

/// Bytes read from the socket at a time (at least).
const READ_CHUNK: usize = 64 * 1024;

/// What the reader's cork gathers at most before it writes anyway.
const CORK_MAX: usize = 64 * 1024;

/// The whole frame at the front of `rest` (this side's own encoding), or all of it.
fn frame_at(rest: &[u8]) -> usize {
    match rest.get(..4) {
        Some(&[a, b, c, d]) => frame::HEADER + u32::from_be_bytes([a, b, c, d]) as usize + 1,
        _ => rest.len(),
    }
    .min(rest.len())
}

/// Writes whole frames of `batch` without waiting, one write call per frame (see
/// `write_loop`), and returns how many bytes the transport took.
fn write_frames(
    mut sink: Pin<&mut (dyn AsyncWrite + Send)>,
    batch: &[u8],
    cx: &mut Context<'_>,
) -> std::io::Result<usize> {
    let mut done = 0;
    while done < batch.len() {
        let end = done + frame_at(&batch[done..]);
        while done < end {
            match sink.as_mut().poll_write(cx, &batch[done..end]) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => done += n,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(done),
            }
        }
    }
    Ok(done)
}

impl Session {
    /// Starts a connection on `reader`/`writer` lending `root`; RPyC has no handshake, so
    /// this returns at once.
    pub(crate) fn start<R, W>(
        reader: R,
        writer: W,
        config: Config,
        root: Option<Arc<dyn Object>>,
    ) -> Arc<Link>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let label = config
            .label
            .clone()
            .unwrap_or_else(|| format!("rpyc{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        let (closed_tx, closed_rx) = watch::channel(false);
        let session = Arc::new(Session {
            label: label.clone(),
            limits: Limits {
                max_depth: config.max_depth,
                max_items: (config.max_frame / 2).max(1024),
            },
            exports: Mutex::new(Exports::new(config.max_exports)),
            config,
            out: Mutex::new(Vec::new()),
            out_notify: Notify::new(),
            sink: tokio::sync::Mutex::new(Box::pin(writer)),
            corked: AtomicBool::new(false),
            needs_flush: AtomicBool::new(false),
            room: Notify::new(),
            next_seq: AtomicI64::new(0),
            pending: Mutex::new(HashMap::new()),
            imports: Mutex::new(HashMap::new()),
            root: Mutex::new(root),
            remote_root: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            closed_tx,
            tasks: AtomicU64::new(0),
            tasks_done: Notify::new(),
            link: Mutex::new(Weak::new()),
            tracing_on: AtomicBool::new(false),
            tracer: parking_lot::RwLock::new(None),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            writer_batches: AtomicU64::new(0),
        });
        let link = Arc::new(Link {
            session: session.clone(),
        });
        *session.link.lock() = Arc::downgrade(&link);
        let span = tracing::info_span!("netref.rpyc", conn = %label);
        use tracing::Instrument;
        session.spawn(write_loop(session.clone(), closed_rx.clone()).instrument(span.clone()));
        session.spawn(read_loop(session.clone(), reader, closed_rx).instrument(span));
        link
    }

    /// The user-facing handle, while one exists.
    pub(crate) fn link(&self) -> Option<Arc<Link>> {
        self.link.lock().upgrade()
    }

    /// Spawns a task counted in [`Session::task_count`].
    pub(crate) fn spawn<F>(self: &Arc<Self>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.fetch_add(1, Ordering::AcqRel);
        let guard = TaskGuard(self.clone());
        tokio::spawn(async move {
            let _guard = guard;
            fut.await;
        });
    }

    /// Tasks of this connection still running.
    pub(crate) fn task_count(&self) -> u64 {
        self.tasks.load(Ordering::Acquire)
    }

    /// True once closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Why the connection closed, once it has.
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.close_reason.lock().clone()
    }

    /// Waits until closed and every task is gone.
    pub(crate) async fn closed(&self) {
        loop {
            let done = self.tasks_done.notified();
            if self.is_closed() && self.task_count() == 0 {
                return;
            }
            done.await;
        }
    }

    /// Installs or removes the tracer.
    pub(crate) fn set_tracer(&self, tracer: Option<Tracer>) {
        self.tracing_on.store(tracer.is_some(), Ordering::Release);
        *self.tracer.write() = tracer;
    }

    fn trace(&self, direction: Direction, msg: &Message) {
        if !self.tracing_on.load(Ordering::Acquire) {
            return;
        }
        if let Some(t) = self.tracer.read().as_ref() {
            t(&TraceEvent::new(direction, super::trace::describe(msg)));
        }
    }

    /// Closes the connection: sends `CLOSE` when it can, fails every waiting request, and
    /// frees everything lent through it. Runs once.
    pub(crate) fn close(&self, reason: String) {
        if self.is_closed() {
            return;
        }
        // Tell the peer, as Python's close() does; it cleans up and hangs up.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.push(&Message::Request {
            seq,
            handler: Handler::Close.id(),
            args: Boxed::Value(super::brine::Brine::Tuple(Vec::new())).into_brine(),
        });
        self.teardown(reason);
    }

    /// Marks the connection closed and empties every table (dropping outside the locks).
    pub(crate) fn teardown(&self, reason: String) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!(conn = %self.label, %reason, "rpyc connection closed");
        *self.close_reason.lock() = Some(reason.clone());
        let pending: Vec<_> = self.pending.lock().drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Err(Error::Disconnected(reason.clone())));
        }
        let exports = self.exports.lock().clear();
        let imports: Vec<_> = self.imports.lock().drain().collect();
        let root = self.root.lock().take();
        let remote_root = self.remote_root.lock().take();
        // A tracer may hold another connection (the REPL's): let it go with this one.
        self.tracing_on.store(false, Ordering::Release);
        let tracer = self.tracer.write().take();
        drop((exports, imports, root, remote_root, tracer));
        let _ = self.closed_tx.send(true);
        self.out_notify.notify_one();
        self.room.notify_waiters();
    }

    /// Appends one message's frame to the outgoing buffer (never waits). Past twice the
    /// buffer's bound the peer is taken to have stopped reading and the connection closes.
    pub(crate) fn push(&self, msg: &Message) {
        if self.is_closed() {
            return;
        }
        let mut payload = Vec::new();
        msg.encode(&mut payload);
        self.trace(Direction::Sent, msg);
        let over = {
            let mut out = self.out.lock();
            if frame::encode(&payload, false, &mut out).is_err() {
                return;
            }
            (
                out.len() > self.config.send_queue_bytes.saturating_mul(2),
                out.len() >= CORK_MAX,
            )
        };
        let (over, full) = over;
        self.sent.fetch_add(1, Ordering::Relaxed);
        if over {
            self.teardown("the peer stopped reading: the send buffer is full".into());
            return;
        }
        // The reader writes what gathered once it has handled what it has buffered (this
        // check comes after the append, and the reader uncorks before it writes).
        if !self.corked.load(Ordering::SeqCst) || full {
            self.write_now();
        }
    }

    /// Writes the outgoing buffer from this task if the socket is free and takes it without
    /// waiting; what is left (the socket is busy, or another writer holds it) is the writer
    /// task's, which this wakes.
    pub(crate) fn write_now(&self) {
        let Ok(mut sink) = self.sink.try_lock() else {
            // Whoever holds it takes the buffer before letting go, or the writer will.
            self.out_notify.notify_one();
            return;
        };
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut wrote_any = false;
        loop {
            let batch = std::mem::take(&mut *self.out.lock());
            if batch.is_empty() {
                break;
            }
            wrote_any = true;
            match write_frames(sink.as_mut(), &batch, &mut cx) {
                Ok(n) if n == batch.len() => {}
                Ok(n) => {
                    // The socket is full: the rest goes back in front, for the writer.
                    let mut out = self.out.lock();
                    let later = std::mem::replace(&mut *out, batch[n..].to_vec());
                    out.extend_from_slice(&later);
                    drop(out);
                    drop(sink);
                    self.out_notify.notify_one();
                    self.room.notify_waiters();
                    return;
                }
                Err(e) => {
                    drop(sink);
                    self.teardown(format!("write failed: {e}"));
                    return;
                }
            }
        }
        if wrote_any {
            self.room.notify_waiters();
            match sink.as_mut().poll_flush(&mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    drop(sink);
                    self.teardown(format!("write failed: {e}"));
                    return;
                }
                Poll::Pending => {
                    self.needs_flush.store(true, Ordering::Release);
                    drop(sink);
                    self.out_notify.notify_one();
                    return;
                }
            }
        }
        drop(sink);
        // Something appended while the lock was held may have found it taken.
        if !self.out.lock().is_empty() {
            self.out_notify.notify_one();
        }
    }

    /// Waits until the outgoing buffer is under its bound.
    async fn wait_room(&self) -> Result<()> {
        loop {
            let room = self.room.notified();
            if self.is_closed() {
                return Err(self.disconnected());
            }
            if self.out.lock().len() <= self.config.send_queue_bytes {
                return Ok(());
            }
            room.await;
        }
    }

    /// A receiver that turns true when the connection closes.
    pub(crate) fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed_tx.subscribe()
    }

    /// The error of an operation on a closed connection.
    pub(crate) fn disconnected(&self) -> Error {
        Error::Disconnected(
            self.close_reason()
                .unwrap_or_else(|| "connection closed".into()),
        )
    }

    /// Sends request `handler` with `args` (boxed here: this side's objects are lent, the
    /// peer's go home) and waits for its unboxed result.
    pub(crate) async fn request(
        self: &Arc<Self>,
        handler: Handler,
        args: Vec<Value>,
    ) -> Result<Value> {
        if self.is_closed() {
            return Err(self.disconnected());
        }
        self.wait_room().await?;
        let mut lent = Vec::new();
        let boxed = match self.box_args(args, &mut lent) {
            Ok(b) => b,
            Err(e) => {
                self.unsend(lent);
                return Err(e);
            }
        };
        let (tx, rx) = oneshot::channel();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().insert(seq, tx);
        let guard = PendingGuard { session: self, seq };
        if self.is_closed() {
            // Closed after the check above: teardown may have missed this entry.
            return Err(self.disconnected());
        }
        self.push(&Message::Request {
            seq,
            handler: handler.id(),
            args: boxed.into_brine(),
        });
        let out = match tokio::time::timeout(self.config.call_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.disconnected()),
            Err(_) => Err(Error::remote(
                ErrorKind::TimedOut,
                format!(
                    "no reply to {handler} within {:?}",
                    self.config.call_timeout
                ),
            )),
        };
        drop(guard);
        out
    }

    /// Sends a request whose reply nobody waits for (`DEL`).
    pub(crate) fn request_nowait(&self, handler: Handler, args: Boxed) {
        if self.is_closed() {
            return;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.push(&Message::Request {
            seq,
            handler: handler.id(),
            args: args.into_brine(),
        });
    }

    /// Undoes the counting of objects boxed for a message that was never sent.
    pub(crate) fn unsend(&self, lent: Vec<IdPack>) {
        let mut freed = Vec::new();
        {
            let mut exports = self.exports.lock();
            for pack in &lent {
                freed.extend(exports.unsend(pack));
            }
        }
        drop(freed);
    }

    /// Handles one decoded message from the peer.
    fn handle(self: &Arc<Self>, msg: Message) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.trace(Direction::Received, &msg);
        match msg {
            Message::Reply { seq, value } => {
                let result = Boxed::from_brine(value).and_then(|b| self.unbox(b));
                self.settle(seq, result);
            }
            Message::Exception { seq, value } => {
                self.settle(seq, Err(Raised::from_brine(value).into_error()));
            }
            Message::Request { seq, handler, args } => {
                super::serve::handle_request(self, seq, handler, args)
            }
        }
    }

    fn settle(&self, seq: i64, result: Result<Value>) {
        let tx = self.pending.lock().remove(&seq);
        match tx {
            Some(tx) => {
                let _ = tx.send(result);
            }
            // A DEL's reply, or a reply that came after its request timed out.
            None => drop(result),
        }
    }

    /// Answers the peer's request `seq` with `result`.
    pub(crate) fn answer(&self, seq: i64, result: Result<Value>) {
        let msg = match result.and_then(|v| {
            let mut lent = Vec::new();
            match self.box_value(v, &mut lent, 0) {
                Ok(b) => Ok(b),
                Err(e) => {
                    self.unsend(lent);
                    Err(e)
                }
            }
        }) {
            Ok(boxed) => Message::Reply {
                seq,
                value: boxed.into_brine(),
            },
            Err(e) if e.is_stop_iteration() => Message::Exception {
                seq,
                value: super::vinegar::stop_iteration(),
            },
            Err(e) => Message::Exception {
                seq,
                value: PyException::from_error(&e).to_brine(),
            },
        };
        self.push(&msg);
    }
}

/// Removes a request's entry when its waiter goes (answered, timed out or dropped).
struct PendingGuard<'a> {
    session: &'a Session,
    seq: i64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.session.pending.lock().remove(&self.seq);
    }
}

struct TaskGuard(Arc<Session>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::AcqRel);
        self.0.tasks_done.notify_waiters();
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    session: Arc<Session>,
    mut reader: R,
    mut closed: watch::Receiver<bool>,
) {
    let max = session.config.max_frame;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let reason = loop {
        // Every whole frame already buffered, corked: their replies go out together below.
        let mut start = 0;
        session.corked.store(true, Ordering::SeqCst);
        let err = loop {
            match frame::split(&buf[start..], max) {
                Ok(Some(f)) => {
                    let whole = &buf[start..start + f.len];
                    let decoded = frame::payload(whole, &f, max)
                        .and_then(|p| Message::decode(&p, session.limits));
                    start += f.len;
                    match decoded {
                        Ok(msg) => session.handle(msg),
                        Err(e) => break Some(e),
                    }
                    if session.is_closed() {
                        break None;
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        session.corked.store(false, Ordering::SeqCst);
        session.write_now();
        buf.drain(..start);
        if let Some(e) = err {
            break format!("protocol error from the peer: {e}");
        }
        if session.is_closed() {
            return;
        }
        buf.reserve(frame::missing(&buf).max(READ_CHUNK));
        let n = tokio::select! {
            n = reader.read_buf(&mut buf) => n,
            _ = closed.wait_for(|c| *c) => return,
        };
        match n {
            Ok(0) => break "the peer closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break format!("read failed: {e}"),
        }
    };
    session.teardown(reason);
}

async fn write_loop(session: Arc<Session>, closed: watch::Receiver<bool>) {
    let stall = session.config.write_stall_timeout;
    loop {
        let notified = session.out_notify.notified();
        let mut sink = session.sink.lock().await;
        let batch = std::mem::take(&mut *session.out.lock());
        if batch.is_empty() {
            if session.needs_flush.swap(false, Ordering::AcqRel) {
                match tokio::time::timeout(stall, sink.flush()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break session.teardown(format!("write failed: {e}")),
                    Err(_) => {
                        break session.teardown("the peer stopped reading: a write stalled".into())
                    }
                }
            }
            drop(sink);
            if *closed.borrow() {
                break;
            }
            notified.await;
            continue;
        }
        session.room.notify_waiters();
        session.writer_batches.fetch_add(1, Ordering::Relaxed);
        let wrote = tokio::time::timeout(stall, async {
            // One write per frame: over TLS each frame is then a record of its own. Python's
            // channel polls the socket, not its TLS buffer, so a second frame sharing a record
            // with the first would wait there unseen (a callback never answered).
            let mut rest = &batch[..];
            while !rest.is_empty() {
                let n = frame_at(rest);
                sink.write_all(&rest[..n]).await?;
                rest = &rest[n..];
            }
            sink.flush().await
        })
        .await;
        drop(sink);
        match wrote {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                session.teardown(format!("write failed: {e}"));
                break;
            }
            Err(_) => {
                session.teardown("the peer stopped reading: a write stalled".into());
                break;
            }
        }
    }
    let _ = session.sink.lock().await.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::{expose, Config, Obj};

    struct Calc;

    #[expose]
    impl Calc {
        #[exposed]
        fn add(&self, a: i64, b: i64) -> i64 {
            a + b
        }
    }

    /// A request goes out from the task that makes it and a reply from the reader that ran
    /// its handler: in a sequential exchange no frame waits for the writer task.
    #[tokio::test]
    async fn sequential_calls_never_wake_the_writer() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let server = super::super::from_io(ar, aw, Config::default(), Some(Obj::new(Calc).erase()));
        let client = super::super::from_io(br, bw, Config::default(), None);
        let root = client.root().await.unwrap();
        for i in 0..200 {
            let v = root.call_method("add", (i, 1)).await.unwrap();
            assert_eq!(v.as_i64(), Some(i + 1));
        }
        for conn in [&client, &server] {
            let super::super::Inner::Session(link) = &conn.inner else {
                panic!("from_io runs RPyC's own engine")
            };
            let s = &link.session;
            assert!(s.sent.load(Ordering::Relaxed) >= 200);
            assert_eq!(s.writer_batches.load(Ordering::Relaxed), 0);
        }
        client.close().await;
        server.closed().await;
    }
}
