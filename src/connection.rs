//! One symmetric connection: two tasks, two object tables, and the calls in flight.
//!
//! # Usage
//!
//! A [`Connection`] comes from [`connect`](crate::connect), a [`Server`](crate::Server), or
//! [`pair`](crate::pair). [`Connection::root`] is a proxy of the peer's root object; either
//! side may lend a root.
//!
//! # Object lifetimes
//!
//! Objects lent through a connection stay alive while the peer holds a proxy of them, and
//! all of them are dropped when the connection closes. The connection closes when the peer
//! goes away, on [`Connection::close`], or when the last [`Connection`] handle *and* the last
//! proxy of a remote object on it are dropped.
//!
//! # Concurrency
//!
//! A reader task decodes frames and starts each incoming call in its own task, in the order
//! the calls arrived; a writer task batches frames onto the transport. Handlers may call back
//! into the peer to any depth: nothing waits on the reader.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (a, b) = netref::pair(None, None).await.unwrap();
//! assert_eq!(a.stats().live_exports, 0);
//! b.close().await;
//! # });
//! ```

mod convert;
mod opening;
mod ping;
mod reader;
mod tables;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tracing::Instrument;

pub(crate) use convert::SendCtx;
pub(crate) use tables::{AnswerHandle, Import};
pub use tables::{TableEntry, Tables};

use crate::codec::native::{handshake, NativeCodec};
use crate::codec::Codec;
use crate::config::Config;
use crate::error::{Error, ErrorKind, RemoteError, Result};
use crate::object::Object;
use crate::protocol::{CallMsg, Message, Op, Target, WPath, FLAG_KEEP_ANSWER, FLAG_ONE_WAY};
use crate::proxy::{self, Proxy};
use crate::stats::{Counters, Stats};
use crate::trace::{Direction, TraceEvent, Tracer};
use crate::value::Value;
use tables::{Exports, Imports};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Tasks of every connection in this process (see [`live_tasks`]).
static LIVE_TASKS: AtomicU64 = AtomicU64::new(0);

/// The number of tasks netref runs right now in this process, across all connections
/// (readers, writers, keepalives, handlers still running). After every connection has
/// closed (see [`Connection::closed`]) it is back to zero: nothing is left behind.
pub fn live_tasks() -> u64 {
    LIVE_TASKS.load(Ordering::Acquire)
}

/// Bytes read from the transport at a time.
const READ_BUFFER: usize = 64 * 1024;

/// Room an encode buffer starts with: a call or a small reply fits without growing it.
const ENCODE_CAPACITY: usize = 128;

thread_local! {
    /// An encode buffer kept for the next frame sent from this thread: a frame written at
    /// once (the usual case) is copied out, so its buffer can serve again.
    static ENCODE_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A cleared buffer to encode a frame into (this thread's spare one, or a new one).
fn encode_buffer() -> Vec<u8> {
    let mut buf = ENCODE_BUFFER.with(|b| b.take());
    if buf.capacity() == 0 {
        buf.reserve(ENCODE_CAPACITY);
    }
    buf
}

/// Keeps `buf` as this thread's spare encode buffer, unless it grew large.
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

/// Hashes this side's own call ids, which count up from 1: a multiplication spreads them over
/// the table (SipHash's resistance to chosen keys is not needed for ids we pick ourselves).
#[derive(Default, Clone, Copy)]
pub(crate) struct CallIds;

impl std::hash::BuildHasher for CallIds {
    type Hasher = CallIdHasher;
    fn build_hasher(&self) -> CallIdHasher {
        CallIdHasher(0)
    }
}

/// The hasher of [`CallIds`].
pub(crate) struct CallIdHasher(u64);

impl std::hash::Hasher for CallIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A corked reader writes what it gathered once this much is waiting.
const CORK_BYTES: usize = 64 * 1024;

thread_local! {
    /// The connection whose reader is handling frames on this thread, if any (see [`Cork`]).
    static CORK: std::cell::Cell<*const Shared> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// While alive, frames this thread sends on its connection gather in [`Sink::partial`]
/// instead of being written one by one: the reader holds one while it handles frames that
/// are already buffered, so the replies to a burst of calls leave in one write. The reader
/// calls [`Shared::uncork`] before it waits for more input.
///
/// A cork covers only synchronous code (the reader never awaits while holding one), so no
/// other task can run on the thread and see it.
pub(crate) struct Cork {
    previous: *const Shared,
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

/// Writes as much of `bytes` as `io` takes without waiting; an error is the reason to close.
fn poll_write_all(
    io: &mut Box<dyn AsyncWrite + Send + Unpin>,
    cx: &mut std::task::Context<'_>,
    bytes: &[u8],
) -> std::result::Result<usize, String> {
    let mut written = 0;
    while written < bytes.len() {
        match std::pin::Pin::new(&mut *io).poll_write(cx, &bytes[written..]) {
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

/// A kept answer of a pipelined call, as the callee stores it.
pub(crate) type AnswerSlot = watch::Receiver<Option<std::result::Result<Value, RemoteError>>>;

/// The state both tasks and every handle share.
pub(crate) struct Shared {
    pub(crate) sink: tokio::sync::Mutex<Sink>,
    pub(crate) label: String,
    pub(crate) config: Config,
    pub(crate) codec: Box<dyn Codec>,
    pub(crate) peer_max_depth: usize,
    out: mpsc::Sender<Frame>,
    pub(crate) control: Mutex<Control>,
    pub(crate) control_notify: Notify,
    pub(crate) exports: Mutex<Exports>,
    pub(crate) imports: Mutex<Imports>,
    pub(crate) pending: Mutex<Pending>,
    /// Wakes the deadline task when a call's deadline comes before the one it waits for.
    deadline_notify: Notify,
    pub(crate) answers: Mutex<HashMap<u64, AnswerSlot>>,
    /// Incoming calls still running; dropping a sender cancels its call.
    pub(crate) running: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    pub(crate) root: Mutex<Option<Arc<dyn Object>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    close_reason: Mutex<Option<String>>,
    closed_tx: watch::Sender<bool>,
    pub(crate) counters: Counters,
    /// The user-facing handle, for imports created by the reader.
    link: Mutex<Weak<Link>>,
    /// Tasks of this connection still running (reader, writer, handlers).
    pub(crate) tasks: AtomicU64,
    tasks_done: Notify,
    tracing_on: AtomicBool,
    tracer: parking_lot::RwLock<Option<Tracer>>,
    /// When the connection started; `last_received` counts milliseconds from here.
    started: tokio::time::Instant,
    last_received: AtomicU64,
    /// Set by graceful shutdown: new incoming calls are refused.
    pub(crate) draining: AtomicBool,
    /// Replies waiting for room in a full send queue.
    overflow: std::sync::atomic::AtomicUsize,
    /// Bytes of the replies waiting for room.
    overflow_bytes: std::sync::atomic::AtomicUsize,
    /// Bytes of the frames in the send queue (see [`Config::send_queue_bytes`]).
    pub(crate) queued_bytes: std::sync::atomic::AtomicUsize,
    /// Told when the writer takes frames out of the queue, and on close.
    pub(crate) room: Notify,
    /// Run once by [`Shared::teardown`] before the tables are emptied
    /// ([`Connection::on_closing`]).
    closing: Mutex<Vec<ClosingHook>>,
    /// This very `Shared`, to give closing hooks a handle when the last [`Link`] is gone.
    me: Weak<Shared>,
    /// Incoming calls held while a connect hook runs (`opening.rs`).
    opening: opening::Opening,
    /// Pings waiting for their pong (`ping.rs`).
    pings: ping::Pings,
}

/// What user-facing handles hold: dropping the last one closes the connection.
pub(crate) struct Link {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.close("every handle was dropped".into());
    }
}

/// A handle to one connection. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Connection {
    link: Arc<Link>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("label", &self.link.shared.label)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Connection {
    /// Runs the hello on `reader`/`writer` and starts the connection's tasks. `root` is the
    /// object this side lends as its root (the peer reaches it with [`Connection::root`]).
    pub async fn from_io<R, W>(
        mut reader: R,
        mut writer: W,
        config: Config,
        root: Option<Arc<dyn Object>>,
    ) -> Result<Connection>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let peer = handshake(&mut reader, &mut writer, &config).await?;
        // Frames are read a few bytes at a time (length, then body): buffer the reads.
        let reader = tokio::io::BufReader::with_capacity(READ_BUFFER, reader);
        let codec = NativeCodec {
            max_frame_out: peer.max_frame as usize,
            max_depth: config.max_depth,
        };
        let (out_tx, out_rx) = mpsc::channel(config.send_queue.max(1));
        let (closed_tx, closed_rx) = watch::channel(false);
        let n = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let label = config.label.clone().unwrap_or_else(|| format!("conn{n}"));
        let max_exports = config.max_exports;
        let closing: Vec<ClosingHook> = match &config.hooks.closing {
            Some(hook) => {
                let hook = hook.clone();
                vec![Box::new(move |conn: &Connection| hook(conn))]
            }
            None => Vec::new(),
        };
        let shared = Arc::new_cyclic(|me| Shared {
            sink: tokio::sync::Mutex::new(Sink {
                io: Box::new(writer),
                partial: Vec::new(),
            }),
            label: label.clone(),
            peer_max_depth: peer.max_depth as usize,
            codec: Box::new(codec),
            config,
            out: out_tx,
            control: Mutex::new(Control::default()),
            control_notify: Notify::new(),
            exports: Mutex::new(Exports::new(max_exports)),
            imports: Mutex::new(Imports::default()),
            pending: Mutex::new(Pending::default()),
            deadline_notify: Notify::new(),
            answers: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            root: Mutex::new(root),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            closed_tx,
            counters: Counters::default(),
            link: Mutex::new(Weak::new()),
            tasks: AtomicU64::new(0),
            tasks_done: Notify::new(),
            tracing_on: AtomicBool::new(false),
            tracer: parking_lot::RwLock::new(None),
            started: tokio::time::Instant::now(),
            last_received: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            overflow: std::sync::atomic::AtomicUsize::new(0),
            overflow_bytes: std::sync::atomic::AtomicUsize::new(0),
            queued_bytes: std::sync::atomic::AtomicUsize::new(0),
            room: Notify::new(),
            closing: Mutex::new(closing),
            me: me.clone(),
            opening: opening::Opening::default(),
            pings: ping::Pings::default(),
        });
        let link = Arc::new(Link {
            shared: shared.clone(),
        });
        *shared.link.lock() = Arc::downgrade(&link);
        // A connect hook runs before any incoming call is served: calls are held from the
        // start, and the reader runs the hook.
        let setup = shared.config.hooks.connect.clone().map(|hook| {
            shared.opening.hold();
            let conn = Connection { link: link.clone() };
            opening::setup(hook, conn, shared.config.hooks.connect_timeout)
        });
        let span = tracing::info_span!("netref.conn", conn = %label);
        shared.spawn_task(
            writer::run(shared.clone(), out_rx, closed_rx.clone()).instrument(span.clone()),
        );
        shared.spawn_task(
            reader::run(shared.clone(), reader, closed_rx.clone(), setup).instrument(span.clone()),
        );
        shared.spawn_task(deadlines(shared.clone(), closed_rx.clone()).instrument(span.clone()));
        if let Some(interval) = shared.config.keepalive_interval {
            shared.spawn_task(keepalive(shared.clone(), interval, closed_rx).instrument(span));
        }
        Ok(Connection { link })
    }

    /// A proxy of the peer's root object.
    pub fn root(&self) -> Proxy {
        Proxy::with_target(proxy::Target::Root(self.link.clone()))
    }

    /// A proxy of the peer's object with raw id `id`, as shown by traces and
    /// [`Proxy::remote_id`]. For debugging and tests: this side holds no count for an id it
    /// did not receive, so the object may be freed under it; a wrong, stale or forged id gets
    /// [`ErrorKind::NoSuchObject`] from the peer.
    pub fn remote_object(&self, id: u64) -> Proxy {
        let import = self.link.shared.imports.lock().lookup_raw(&self.link, id);
        Proxy::with_target(proxy::Target::Remote(import))
    }

    /// Replaces the root object this side lends to the peer.
    pub fn set_root(&self, root: Option<Arc<dyn Object>>) {
        let old = std::mem::replace(&mut *self.link.shared.root.lock(), root);
        drop(old);
    }

    /// This connection's label (peer address, `"memory"`, or [`Config::label`]).
    pub fn label(&self) -> &str {
        &self.link.shared.label
    }

    /// A snapshot of the counters and table sizes.
    pub fn stats(&self) -> Stats {
        self.link.shared.stats()
    }

    /// True once the connection is closed or lost.
    pub fn is_closed(&self) -> bool {
        self.link.shared.is_closed()
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.link.shared.close_reason.lock().clone()
    }

    /// Sends a goodbye, fails every pending call, frees everything lent through this
    /// connection, and waits until its tasks are gone.
    pub async fn close(&self) {
        self.link.shared.close("closed by this side".into());
        self.closed().await;
    }

    /// Like [`Connection::close`], with `reason` in the goodbye the peer receives.
    pub async fn close_with(&self, reason: String) {
        self.link.shared.close(reason);
        self.closed().await;
    }

    /// Runs `hook` once when this connection closes (for any reason: either side closing,
    /// the peer lost, a protocol error, the last handle dropped), **before** anything it
    /// lent is freed: when the hook runs the connection is already closed (its pending calls
    /// have failed with [`Error::Disconnected`] and [`Connection::close_reason`] is set), but
    /// its root, the objects it lends and the proxies it holds are all still in the tables
    /// ([`Connection::tables`], [`Connection::stats`]), and handlers still running have not
    /// been cancelled yet. Right after the hook returns they are all dropped. This is when
    /// RPyC runs a service's `on_disconnect`.
    ///
    /// The hook runs synchronously on whichever task notices the close; keep it short and
    /// spawn a task for work that waits. A panic in it is caught. Hooks run in the order
    /// they were added. When the connection is already closed, `hook` runs at once (the
    /// tables are then empty already): a server installs its
    /// [`on_closing`](crate::Server::on_closing) hook before the connection starts, so that
    /// case cannot arise there.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use netref::{adapters::List, Obj};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// // `a` lends a list; `b` puts a callback of its own in it.
    /// let (a, b) = netref::pair(Some(Obj::new(List::new()).erase()), None).await.unwrap();
    /// b.root().call_method("append", (netref::callback(|| ()),)).await.unwrap();
    /// let seen = Arc::new(Mutex::new(None));
    /// let record = seen.clone();
    /// a.on_closing(move |conn| {
    ///     // Closed, but what it holds is still there.
    ///     *record.lock().unwrap() = Some((conn.is_closed(), conn.stats().live_imports));
    /// });
    /// a.close().await;
    /// assert_eq!(*seen.lock().unwrap(), Some((true, 1)));
    /// assert_eq!(a.stats().live_imports, 0);
    /// # drop(b);
    /// # });
    /// ```
    pub fn on_closing<F>(&self, hook: F)
    where
        F: FnOnce(&Connection) + Send + 'static,
    {
        let shared = &self.link.shared;
        {
            let mut hooks = shared.closing.lock();
            if !shared.is_closed() {
                hooks.push(Box::new(hook));
                return;
            }
        }
        run_closing_hook(Box::new(hook), self);
    }

    /// Refuses new incoming calls (with [`ErrorKind::Overloaded`]) and waits until the calls
    /// already running finish or `deadline` passes. Used by graceful shutdown.
    pub async fn drain(&self, deadline: tokio::time::Instant) {
        let shared = &self.link.shared;
        shared.draining.store(true, Ordering::Release);
        loop {
            let done = shared.tasks_done.notified();
            if shared.running.lock().is_empty() || shared.is_closed() {
                return;
            }
            tokio::select! {
                _ = done => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Waits until the connection is closed and all its tasks are gone.
    pub async fn closed(&self) {
        let shared = &self.link.shared;
        loop {
            let done = shared.tasks_done.notified();
            // Only the handlers of this connection and its two tasks are counted.
            if shared.is_closed() && shared.tasks.load(Ordering::Acquire) == 0 {
                return;
            }
            done.await;
        }
    }

    /// Installs (or removes) a function that sees every message this connection sends or
    /// receives, in readable form (see [`crate::trace`]).
    pub fn set_tracer(&self, tracer: Option<Tracer>) {
        let shared = &self.link.shared;
        shared.tracing_on.store(tracer.is_some(), Ordering::Release);
        *shared.tracer.write() = tracer;
    }

    /// Tasks of this connection still running (reader, writer and handlers).
    pub fn task_count(&self) -> u64 {
        self.link.shared.tasks.load(Ordering::Acquire)
    }

    /// A snapshot of both object tables, row by row, sorted by id: what this side lends
    /// (with type names and send counts) and what it holds (with receipt counts). For
    /// teaching and debugging: the REPL's `:tables` prints it.
    ///
    /// ```
    /// use netref::Obj;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let list = Obj::new(netref::adapters::List::new());
    /// let (a, b) = netref::pair(None, Some(list.erase())).await.unwrap();
    /// let cb = netref::callback(|| ());
    /// a.root().call_method("append", (cb.clone(),)).await.unwrap();
    /// let t = a.tables();
    /// assert_eq!(t.exports.len(), 1);
    /// assert_eq!(t.exports[0].type_name.as_deref(), Some("Callback"));
    /// assert_eq!((t.exports[0].display_id().as_str(), t.exports[0].count), ("#1v1", 1));
    /// assert_eq!(b.tables().imports[0].id, t.exports[0].id);
    /// # });
    /// ```
    pub fn tables(&self) -> Tables {
        let shared = &self.link.shared;
        let mut exports = shared.exports.lock().rows();
        let mut imports = shared.imports.lock().rows();
        exports.sort_by_key(TableEntry::sort_key);
        imports.sort_by_key(TableEntry::sort_key);
        Tables { exports, imports }
    }

    /// True when nothing this side has queued is still waiting to be written (no frame in
    /// the send queue, no one-way message waiting, the writer idle). With both ends in one
    /// process, this, equal message counters and idle handlers mean nothing is in flight.
    pub(crate) fn nothing_queued(&self) -> bool {
        let shared = &self.link.shared;
        // The writer holds the sink from before it takes the control queue until the batch
        // is written and counted.
        let Ok(sink) = shared.sink.try_lock() else {
            return false;
        };
        let c = shared.control.lock();
        sink.partial.is_empty()
            && shared.out.capacity() == shared.out.max_capacity()
            && c.releases.is_empty()
            && c.finishes.is_empty()
            && c.cancels.is_empty()
            && c.pongs.is_empty()
            && c.pings.is_empty()
    }
}

impl Shared {
    pub(crate) fn is(&self, link: &Arc<Link>) -> bool {
        std::ptr::eq(Arc::as_ptr(&link.shared), self)
    }

    /// Notes that something arrived from the peer (for keepalive).
    pub(crate) fn mark_received(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_received.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_received.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Reports `msg` to the tracer, if one is installed.
    pub(crate) fn trace(&self, direction: Direction, msg: &Message, bytes: usize) {
        if !self.tracing_on.load(Ordering::Acquire) {
            return;
        }
        let tracer = self.tracer.read().clone();
        if let Some(tracer) = tracer {
            tracer(&TraceEvent {
                direction,
                kind: msg.name(),
                text: msg.to_string(),
                bytes,
                connection: self.label.clone(),
            });
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn link(&self) -> Option<Arc<Link>> {
        self.link.lock().upgrade()
    }

    pub(crate) fn stats(&self) -> Stats {
        let exports = self.exports.lock().len() as u64;
        let imports = self.imports.lock().map.len() as u64;
        let queued = self.queued_bytes.load(Ordering::Acquire) as u64;
        self.counters.snapshot(exports, imports, queued)
    }

    pub(crate) fn disconnected(&self) -> Error {
        match self.close_reason.lock().clone() {
            Some(r) => Error::Disconnected(r),
            None => Error::disconnected(),
        }
    }

    /// Spawns a task counted in [`Shared::tasks`].
    pub(crate) fn spawn_task<F>(self: &Arc<Self>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.fetch_add(1, Ordering::AcqRel);
        LIVE_TASKS.fetch_add(1, Ordering::AcqRel);
        let shared = self.clone();
        tokio::spawn(async move {
            // Counted down even if the runtime drops the task before it finishes.
            let _count = TaskCount(shared);
            fut.await;
        });
    }

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
    fn try_write(
        &self,
        msg: &Message,
        ctx: SendCtx,
        urgency: Urgency,
    ) -> Result<Option<(Vec<u8>, SendCtx)>> {
        let mut bytes = encode_buffer();
        if let Err(e) = self.codec.encode(msg, &mut bytes) {
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
    /// queue is full, a task finishes the send.
    pub(crate) fn send_nowait(self: &Arc<Self>, msg: &Message, ctx: SendCtx) {
        let (bytes, ctx) = match self.try_write(msg, ctx, Urgency::Now) {
            Ok(Some(queue)) => queue,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "reply not sent");
                return;
            }
        };
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
        let corked = CORK.with(|c| std::ptr::eq(c.get(), self));
        // Small frames gather; a large one is not worth a copy to save a system call.
        let gather = (corked || urgency == Urgency::Soon) && bytes.len() < CORK_BYTES;
        if gather && sink.partial.len() < CORK_BYTES {
            sink.partial.extend_from_slice(bytes);
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
        let written = match poll_write_all(&mut sink.io, &mut cx, bytes) {
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
        let written = match poll_write_all(io, &mut cx, partial) {
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

    /// Starts a cork on this thread (see [`Cork`]).
    pub(crate) fn cork(&self) -> Cork {
        Cork {
            previous: CORK.with(|c| c.replace(self)),
        }
    }

    /// Writes what gathered in [`Sink::partial`]: called by the reader before it waits for
    /// input, and by a [`Call`](crate::Call)'s flush step.
    pub(crate) fn uncork(&self) {
        match self.sink.try_lock() {
            Ok(mut sink) => self.write_partial(&mut sink),
            // The writer holds the sink: it takes the gathered frames when it next runs.
            Err(_) => self.control_notify.notify_one(),
        }
    }

    /// Starts a call: registers it as pending, encodes it and writes it or queues it, without
    /// waiting. The caller's [`Call`](crate::Call) future then follows the returned
    /// [`Started`] and polls [`Shared::poll_reply`]; dropping that future early must call
    /// [`Shared::abandon_call`].
    pub(crate) fn start_call(
        &self,
        target: Target,
        path: Arc<[String]>,
        op: Op,
        timeout: Option<Duration>,
    ) -> Result<(u64, Started)> {
        if self.is_closed() {
            return Err(self.disconnected());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let timeout = timeout.unwrap_or(self.config.call_timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        let (urgency, sooner) = {
            let mut pending = self.pending.lock();
            pending.calls.insert(
                id,
                PendingCall {
                    result: None,
                    waker: None,
                    deadline,
                    timeout,
                },
            );
            let sooner = pending.armed.is_none_or(|a| deadline < a);
            if sooner {
                pending.armed = Some(deadline);
            }
            // With other calls in flight a few microseconds do not matter, but one write
            // for many frames does.
            let urgency = if pending.calls.len() > 1 {
                Urgency::Soon
            } else {
                Urgency::Now
            };
            (urgency, sooner)
        };
        if sooner {
            self.deadline_notify.notify_one();
        }
        let mut ctx = SendCtx::default();
        let op = match self.export_op(op, &mut ctx) {
            Ok(op) => op,
            Err(e) => {
                self.unsend(ctx);
                self.forget_call(id);
                return Err(e);
            }
        };
        let msg = Message::Call(CallMsg {
            id,
            target,
            path: WPath(path),
            op,
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            flags: 0,
        });
        match self.try_write(&msg, ctx, urgency) {
            Ok(None) => Ok((id, Started::Written(urgency))),
            Ok(Some((bytes, ctx))) => Ok((id, Started::Queued(bytes, ctx))),
            Err(e) => {
                self.forget_call(id);
                Err(e)
            }
        }
    }

    /// Counts a call whose frame is on its way.
    pub(crate) fn count_call(&self) {
        Counters::add(&self.counters.calls_sent, 1);
        Counters::add(&self.counters.round_trips, 1);
    }

    /// The result of call `id` when it has come (a reply, a timeout, or the connection's
    /// end); otherwise remembers `cx`'s waker and returns `Pending`.
    pub(crate) fn poll_reply(
        &self,
        id: u64,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Value>> {
        let mut pending = self.pending.lock();
        let Some(call) = pending.calls.get_mut(&id) else {
            // Not reached: an entry lives until its future takes the result or is dropped.
            return std::task::Poll::Ready(Err(self.disconnected()));
        };
        if let Some(result) = call.result.take() {
            pending.calls.remove(&id);
            return std::task::Poll::Ready(result);
        }
        match &mut call.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        std::task::Poll::Pending
    }

    /// Gives call `id` its result and wakes its future; a call already settled (timed out,
    /// say) or abandoned keeps what it has.
    pub(crate) fn settle_call(&self, id: u64, result: Result<Value>) {
        let waker = {
            let mut pending = self.pending.lock();
            match pending.calls.get_mut(&id) {
                Some(call) if call.result.is_none() => {
                    call.result = Some(result);
                    call.waker.take()
                }
                _ => return,
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Forgets call `id`, which was never sent.
    pub(crate) fn forget_call(&self, id: u64) {
        self.pending.lock().calls.remove(&id);
    }

    /// Forgets call `id`, whose future was dropped before its result came, and asks the peer
    /// to cancel it.
    pub(crate) fn abandon_call(&self, id: u64) {
        let waiting = self
            .pending
            .lock()
            .calls
            .remove(&id)
            .is_some_and(|c| c.result.is_none());
        if waiting {
            self.queue_cancel(id);
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

    /// Sends a call whose answer the peer keeps for pipelining.
    pub(crate) async fn call_pipelined(
        &self,
        link: &Arc<Link>,
        target: Target,
        path: Arc<[String]>,
        op: Op,
    ) -> Result<Arc<AnswerHandle>> {
        if self.is_closed() {
            return Err(self.disconnected());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut ctx = SendCtx::default();
        let op = match self.export_op(op, &mut ctx) {
            Ok(op) => op,
            Err(e) => {
                self.unsend(ctx);
                return Err(e);
            }
        };
        let msg = Message::Call(CallMsg {
            id,
            target,
            path: WPath(path),
            op,
            timeout_ms: u32::try_from(self.config.call_timeout.as_millis()).unwrap_or(u32::MAX),
            flags: FLAG_KEEP_ANSWER,
        });
        self.send(&msg, ctx).await?;
        Counters::add(&self.counters.calls_sent, 1);
        Ok(Arc::new(AnswerHandle {
            link: link.clone(),
            id,
        }))
    }

    /// Sends a one-way call (`FLAG_ONE_WAY`): the peer runs it in order with the other
    /// calls to the same object and sends nothing back. Returns once the frame is written
    /// or queued.
    pub(crate) async fn cast(&self, target: Target, path: Arc<[String]>, op: Op) -> Result<()> {
        if self.is_closed() {
            return Err(self.disconnected());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut ctx = SendCtx::default();
        let op = match self.export_op(op, &mut ctx) {
            Ok(op) => op,
            Err(e) => {
                self.unsend(ctx);
                return Err(e);
            }
        };
        let msg = Message::Call(CallMsg {
            id,
            target,
            path: WPath(path),
            op,
            timeout_ms: u32::try_from(self.config.call_timeout.as_millis()).unwrap_or(u32::MAX),
            flags: FLAG_ONE_WAY,
        });
        self.send(&msg, ctx).await?;
        Counters::add(&self.counters.calls_sent, 1);
        Counters::add(&self.counters.casts_sent, 1);
        Ok(())
    }

    /// A dying import handle: queue its release.
    pub(crate) fn drop_import(&self, id: u64, handle: *const Import) {
        let count = self.imports.lock().forget(id, handle);
        if let Some(count) = count {
            if !self.is_closed() {
                self.control.lock().releases.push((id, count));
                self.control_notify.notify_one();
            }
        }
    }

    /// Queues `Ping(n)` for the writer.
    pub(crate) fn queue_ping(&self, n: u64) {
        self.control.lock().pings.push(n);
        self.control_notify.notify_one();
    }

    /// A dropped pipelined answer: the peer may forget it.
    pub(crate) fn queue_finish(&self, id: u64) {
        if !self.is_closed() {
            self.control.lock().finishes.push(id);
            self.control_notify.notify_one();
        }
    }

    fn queue_cancel(&self, id: u64) {
        if !self.is_closed() {
            self.control.lock().cancels.push(id);
            self.control_notify.notify_one();
        }
    }

    /// Starts closing: the writer sends a goodbye and stops, the reader stops, and
    /// [`Shared::teardown`] frees everything.
    pub(crate) fn close(&self, reason: String) {
        if self.is_closed() {
            return;
        }
        {
            let mut c = self.control.lock();
            if c.goodbye.is_none() {
                c.goodbye = Some(reason.clone());
            }
        }
        self.teardown(reason);
    }

    /// Marks the connection closed and frees everything it holds. Idempotent.
    pub(crate) fn teardown(&self, reason: String) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!(%reason, "connection closed");
        self.close_reason.lock().get_or_insert(reason.clone());
        let _ = self.closed_tx.send(true);
        self.control_notify.notify_one();
        self.room.notify_waiters();
        // Take everything out under the locks, drop it outside them: an object's `Drop`
        // may reach back into this connection.
        // Pending calls stay registered until their futures take the error (or are dropped).
        let wakers: Vec<_> = {
            let mut pending = self.pending.lock();
            pending
                .calls
                .values_mut()
                .filter(|c| c.result.is_none())
                .filter_map(|c| {
                    c.result = Some(Err(Error::Disconnected(reason.clone())));
                    c.waker.take()
                })
                .collect()
        };
        for w in wakers {
            w.wake();
        }
        self.pings.clear();
        self.run_closing_hooks();
        let running: Vec<_> = self.running.lock().drain().collect();
        drop(running);
        let answers: Vec<_> = self.answers.lock().drain().collect();
        drop(answers);
        let exports = self.exports.lock().take_all();
        drop(exports);
        let imports = std::mem::take(&mut self.imports.lock().map);
        drop(imports);
        let root = self.root.lock().take();
        drop(root);
    }
}

impl Shared {
    /// Runs the [`Connection::on_closing`] hooks (once: they are taken out). Called by
    /// [`Shared::teardown`] after the connection is marked closed, before its tables are
    /// emptied.
    fn run_closing_hooks(&self) {
        let hooks = std::mem::take(&mut *self.closing.lock());
        if hooks.is_empty() {
            return;
        }
        // Closing because the last handle was dropped: lend the hooks a fresh one (the
        // connection is closed already, so dropping it again does nothing).
        let link = self
            .link()
            .or_else(|| self.me.upgrade().map(|shared| Arc::new(Link { shared })));
        let Some(link) = link else {
            return;
        };
        let conn = Connection { link };
        for hook in hooks {
            run_closing_hook(hook, &conn);
        }
    }
}

/// A hook of [`Connection::on_closing`].
type ClosingHook = Box<dyn FnOnce(&Connection) + Send>;

/// Runs one closing hook, containing a panic in it.
fn run_closing_hook(hook: ClosingHook, conn: &Connection) {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(conn)));
    if ran.is_err() {
        tracing::warn!("a connection's closing hook panicked");
    }
}

/// Counts one task of a connection for as long as it lives.
struct TaskCount(Arc<Shared>);

impl Drop for TaskCount {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::AcqRel);
        LIVE_TASKS.fetch_sub(1, Ordering::AcqRel);
        self.0.tasks_done.notify_waiters();
    }
}

/// A call this side made, from when it is started until its future takes the result or is
/// dropped.
pub(crate) struct PendingCall {
    /// The reply (or timeout, or disconnection), once it has come.
    result: Option<Result<Value>>,
    /// Woken when `result` is set.
    waker: Option<std::task::Waker>,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

/// What became of a call's frame in [`Shared::start_call`].
pub(crate) enum Started {
    /// On the wire or first in line for it. With [`Urgency::Soon`] the caller's next poll
    /// writes it, after yielding once so that its other calls gather behind it.
    Written(Urgency),
    /// It waits for room in the send queue: [`Shared::enqueue`] finishes the send.
    Queued(Vec<u8>, SendCtx),
}

/// The calls this side waits on, and when the deadline task next looks at them.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) calls: HashMap<u64, PendingCall, CallIds>,
    /// The deadline the deadline task sleeps until; `None` when it waits for a call. A call
    /// due sooner moves it and wakes the task; a later one (the usual case, with one
    /// timeout for all calls) costs nothing.
    armed: Option<tokio::time::Instant>,
}

/// Fails calls whose deadline passed, with `TimedOut`, and asks the peer to cancel them.
async fn deadlines(shared: Arc<Shared>, mut closed: watch::Receiver<bool>) {
    loop {
        let now = tokio::time::Instant::now();
        let mut expired = Vec::new();
        let next = {
            let mut pending = shared.pending.lock();
            let mut next: Option<tokio::time::Instant> = None;
            for (id, call) in pending.calls.iter_mut() {
                if call.result.is_some() {
                    continue; // settled, its future has not taken the result yet
                }
                if call.deadline <= now {
                    call.result = Some(Err(Error::remote(
                        ErrorKind::TimedOut,
                        format!("no reply within {:?}", call.timeout),
                    )));
                    expired.push((*id, call.waker.take()));
                } else {
                    next = Some(next.map_or(call.deadline, |n| n.min(call.deadline)));
                }
            }
            pending.armed = next;
            next
        };
        for (id, waker) in expired {
            if let Some(w) = waker {
                w.wake();
            }
            shared.queue_cancel(id);
        }
        let wake = shared.deadline_notify.notified();
        tokio::select! {
            _ = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = wake => {}
            _ = closed.wait_for(|c| *c) => return,
        }
    }
}

/// Pings a quiet peer and closes the connection when it stays silent past the timeout, so a
/// half-open link fails its calls instead of hanging them.
async fn keepalive(shared: Arc<Shared>, interval: Duration, mut closed: watch::Receiver<bool>) {
    let timeout = shared.config.keepalive_timeout;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = closed.wait_for(|c| *c) => return,
        }
        let idle = shared.idle();
        if idle >= timeout {
            shared.teardown(format!(
                "no message from the peer for {idle:?} (keepalive timeout {timeout:?})"
            ));
            return;
        }
        if idle >= interval {
            // Numbered like `Connection::ping`'s, so neither takes the other's pong.
            shared.queue_ping(shared.pings.next_id());
        }
    }
}
