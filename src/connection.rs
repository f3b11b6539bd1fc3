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

mod calls;
mod convert;
mod lifecycle;
mod opening;
mod ping;
mod reader;
mod send;
mod tables;
mod writer;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch, Notify};
use tracing::Instrument;

pub use calls::Call;
/// The call spans' helpers, for the NATS wire's spans of the same names.
#[cfg(feature = "nats")]
pub(crate) use calls::{spans_wanted, DottedPath, TraceId};
pub use lifecycle::live_tasks;
pub(crate) use tables::{AnswerHandle, Import};
pub use tables::{TableEntry, Tables};

use crate::codec::native::{handshake, NativeCodec};
use crate::codec::rpyc::Lent;
use crate::codec::Protocol;
use crate::config::Config;
use crate::error::Result;
use crate::object::Object;
use crate::protocol::Message;
use crate::proxy::{self, Proxy};
use crate::stats::{Counters, Stats};
use crate::trace::{Direction, TraceEvent, Tracer};
use calls::Pending;
use lifecycle::ClosingHook;
use send::{ControlQueue, Frame, Sink};
use tables::{Answers, ExportTable, ImportTable, Root, Running};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Bytes read from the transport at a time.
const READ_BUFFER: usize = 64 * 1024;

/// The state both tasks and every handle share. Its tables and queues are behind their own
/// methods (`tables.rs`, `calls.rs`, `send.rs`).
pub(crate) struct Shared {
    /// The transport's write half (`send.rs`).
    sink: tokio::sync::Mutex<Sink>,
    pub(crate) label: String,
    pub(crate) config: Config,
    /// The wire this connection speaks (see [`crate::codec`]).
    pub(crate) wire: Protocol,
    /// The deepest value nesting the peer accepts.
    peer_max_depth: usize,
    /// What the peer supports, in the native hello's feature bits ([`Protocol::features`]).
    features: u32,
    /// The protocol version the hello agreed on.
    version: u16,
    /// The send queue, drained by the writer task.
    out: mpsc::Sender<Frame>,
    /// One-way messages for the writer task.
    control: ControlQueue,
    /// Wakes the writer task.
    control_notify: Notify,
    exports: ExportTable,
    imports: ImportTable,
    /// The calls this side waits on.
    pending: Pending,
    /// Answers kept for the peer's pipelined calls.
    answers: Answers,
    /// The peer's calls still running here.
    running: Running,
    root: Root,
    closed: AtomicBool,
    close_reason: Mutex<Option<String>>,
    closed_tx: watch::Sender<bool>,
    pub(crate) counters: Counters,
    /// The user-facing handle, for imports created by the reader.
    link: Mutex<Weak<Link>>,
    /// Tasks of this connection still running (reader, writer, handlers).
    tasks: AtomicU64,
    tasks_done: Notify,
    tracing_on: AtomicBool,
    tracer: parking_lot::RwLock<Option<Tracer>>,
    /// When the connection started; `last_received` counts milliseconds from here.
    started: tokio::time::Instant,
    last_received: AtomicU64,
    /// Set by graceful shutdown: new incoming calls are refused.
    draining: AtomicBool,
    /// Replies waiting for room in a full send queue.
    overflow: AtomicUsize,
    /// Bytes of the replies waiting for room.
    overflow_bytes: AtomicUsize,
    /// Bytes of the frames in the send queue (see [`Config::send_queue_bytes`]).
    queued_bytes: AtomicUsize,
    /// Told when the writer takes frames out of the queue, and on close.
    room: Notify,
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

/// What a connection's hello settled with its peer ([`Connection::peer_features`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerFeatures {
    /// The protocol version both sides speak (the highest in both ranges).
    pub version: u16,
    /// The peer keeps answers for pipelined calls ([`Call::pipeline`]).
    pub pipelining: bool,
    /// The peer stops a call's handler on `Cancel`.
    pub cancel: bool,
    /// The peer pulls and serves streams ([`Stream`](crate::Stream)).
    pub streams: bool,
    /// The peer runs one-way calls ([`Proxy::cast`]).
    pub one_way: bool,
    /// The peer reads the trace id a call carries ([`context::trace_id`](crate::context::trace_id)).
    pub trace_ids: bool,
    /// The peer describes objects and binds methods ([`Proxy::describe`],
    /// [`Proxy::get_or_bind`](crate::Proxy::get_or_bind)).
    pub describe: bool,
    /// The peer's lent streams send a window as one block of bytes rather than a list of
    /// values ([`RemoteStream`](crate::RemoteStream) asks for blocks only then).
    pub stream_blocks: bool,
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
        let agreed = handshake(&mut reader, &mut writer, &config).await?;
        let wire = Protocol::Native(NativeCodec::new(&config, &agreed));
        Ok(Connection::start(reader, writer, config, root, wire))
    }

    /// Starts the connection's tasks on a stream whose opening (for the native wire, the
    /// hello) is done: the engine's half of the protocol seam (see [`crate::codec`]).
    pub(crate) fn start<R, W>(
        reader: R,
        writer: W,
        config: Config,
        root: Option<Arc<dyn Object>>,
        wire: Protocol,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        // Frames are read a few bytes at a time (length, then body): buffer the reads.
        let reader = tokio::io::BufReader::with_capacity(READ_BUFFER, reader);
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
            peer_max_depth: wire.peer_max_depth(),
            features: wire.features(),
            version: wire.version(),
            wire,
            config,
            out: out_tx,
            control: ControlQueue::default(),
            control_notify: Notify::new(),
            exports: ExportTable::new(max_exports),
            imports: ImportTable::default(),
            pending: Pending::default(),
            answers: Answers::default(),
            running: Running::default(),
            root: Root::new(root),
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
            overflow: AtomicUsize::new(0),
            overflow_bytes: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            room: Notify::new(),
            closing: Mutex::new(closing),
            me: me.clone(),
            opening: opening::Opening::default(),
            pings: ping::Pings::default(),
        });
        if let Some(wire) = shared.wire.rpyc() {
            // RPyC names this side's objects by type: the wire asks the export table.
            let me = Arc::downgrade(&shared);
            wire.set_lookup(Box::new(move |id| {
                let p = me.upgrade()?.exports.get(id)?;
                Some(match &p.target {
                    proxy::Target::Local(obj) if p.path.is_empty() => Lent::Object(obj.type_info()),
                    proxy::Target::Local(_) => Lent::Method,
                    _ => Lent::Forwarded,
                })
            }));
        }
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
        shared.spawn_task(
            calls::deadlines(shared.clone(), closed_rx.clone()).instrument(span.clone()),
        );
        if let Some(interval) = shared.config.keepalive_interval {
            shared.spawn_task(
                lifecycle::keepalive(shared.clone(), interval, closed_rx).instrument(span),
            );
        }
        Connection { link }
    }

    /// A proxy of the peer's root object.
    pub fn root(&self) -> Proxy {
        Proxy::with_target(proxy::Target::Root(self.link.clone()))
    }

    /// A proxy of the peer's object with raw id `id`, as shown by traces and
    /// [`Proxy::remote_id`]. For debugging and tests: this side holds no count for an id it
    /// did not receive, so the object may be freed under it; a wrong, stale or forged id gets
    /// [`ErrorKind::NoSuchObject`](crate::ErrorKind::NoSuchObject) from the peer.
    pub fn remote_object(&self, id: u64) -> Proxy {
        let import = self.link.shared.imports.lookup_raw(&self.link, id);
        Proxy::with_target(proxy::Target::Remote(import))
    }

    /// Replaces the root object this side lends to the peer.
    pub fn set_root(&self, root: Option<Arc<dyn Object>>) {
        self.link.shared.root.replace(root);
    }

    /// What the hello settled with the peer: the protocol version both speak and the
    /// features the peer announced. This side sends only what the peer supports: a stream,
    /// a one-way or pipelined call to a peer without the feature fails at once with
    /// [`Error::Unsupported`](crate::Error::Unsupported), and no trace id or `Cancel` goes
    /// to a peer that would not read it.
    pub fn peer_features(&self) -> PeerFeatures {
        use crate::codec::native::{
            FEATURE_CANCEL, FEATURE_DESCRIBE, FEATURE_ONE_WAY, FEATURE_PIPELINING, FEATURE_STREAMS,
            FEATURE_STREAM_BLOCKS, FEATURE_TRACE,
        };
        let shared = &self.link.shared;
        let has = |bit: u32| shared.features & bit != 0;
        PeerFeatures {
            version: shared.version,
            pipelining: has(FEATURE_PIPELINING),
            cancel: has(FEATURE_CANCEL),
            streams: has(FEATURE_STREAMS),
            one_way: has(FEATURE_ONE_WAY),
            trace_ids: has(FEATURE_TRACE),
            describe: has(FEATURE_DESCRIBE),
            stream_blocks: has(FEATURE_STREAM_BLOCKS),
        }
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
    /// have failed with [`Error::Disconnected`](crate::Error::Disconnected) and
    /// [`Connection::close_reason`] is set), but
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
        self.link.shared.add_closing_hook(Box::new(hook), self);
    }

    /// Refuses new incoming calls (with [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded))
    /// and waits until the calls already running finish or `deadline` passes. Used by
    /// graceful shutdown.
    pub async fn drain(&self, deadline: tokio::time::Instant) {
        self.link.shared.drain(deadline).await;
    }

    /// Waits until the connection is closed and all its tasks are gone.
    pub async fn closed(&self) {
        self.link.shared.wait_closed().await;
    }

    /// Installs (or removes) a function that sees every message this connection sends or
    /// receives, in readable form (see [`crate::trace`]). On RPyC's wire it sees RPyC's
    /// requests and replies (`<- REQUEST 2 GETATTR(yours<netref.Calc 0x1>, "add")`).
    pub fn set_tracer(&self, tracer: Option<Tracer>) {
        let shared = &self.link.shared;
        if let Some(wire) = shared.wire.rpyc() {
            // RPyC's own requests and replies, readably, rather than the engine's messages.
            wire.set_tracer(tracer.clone());
            *shared.tracer.write() = tracer;
            return;
        }
        shared.tracing_on.store(tracer.is_some(), Ordering::Release);
        *shared.tracer.write() = tracer;
    }

    /// RPyC's wire, when this connection speaks it.
    pub(crate) fn rpyc_wire(&self) -> Option<&crate::codec::rpyc::RpycWire> {
        self.link.shared.wire.rpyc()
    }

    /// The tracer [`set_tracer`](Connection::set_tracer) installed, if any. A tool that
    /// stands between this connection and another wire hands that wire's messages to it, so
    /// they appear in the same trace (`netref repl rpyc://…` shows RPyC's requests this way).
    pub fn tracer(&self) -> Option<Tracer> {
        self.link.shared.tracer.read().clone()
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
        let mut exports = shared.exports.rows();
        let mut imports = shared.imports.rows();
        exports.sort_by_key(TableEntry::sort_key);
        imports.sort_by_key(TableEntry::sort_key);
        Tables { exports, imports }
    }

    /// True when nothing this side has queued is still waiting to be written (no frame in
    /// the send queue, no one-way message waiting, the writer idle). With both ends in one
    /// process, this, equal message counters and idle handlers mean nothing is in flight.
    /// (The REPL's lab uses it to know when a trace is complete.)
    #[cfg(feature = "cli")]
    pub(crate) fn nothing_queued(&self) -> bool {
        let shared = &self.link.shared;
        // The writer holds the sink from before it takes the control queue until the batch
        // is written and counted.
        let Ok(sink) = shared.sink.try_lock() else {
            return false;
        };
        sink.partial.is_empty()
            && shared.out.capacity() == shared.out.max_capacity()
            && shared.control.is_empty()
    }
}

impl Shared {
    /// Whether the peer's hello has feature `bit` (`codec::native::FEATURE_*`).
    pub(crate) fn peer_has(&self, bit: u32) -> bool {
        self.features & bit != 0
    }

    #[inline]
    pub(crate) fn is(&self, link: &Arc<Link>) -> bool {
        std::ptr::eq(Arc::as_ptr(&link.shared), self)
    }

    /// Reports `msg` to the tracer, if one is installed.
    #[inline]
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

    #[inline]
    pub(crate) fn link(&self) -> Option<Arc<Link>> {
        self.link.lock().upgrade()
    }

    pub(crate) fn stats(&self) -> Stats {
        let exports = self.exports.len() as u64;
        let imports = self.imports.len() as u64;
        let queued = self.queued_bytes.load(Ordering::Acquire) as u64;
        self.counters.snapshot(exports, imports, queued)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::codec::test_wire::FramedWire;

    /// Two connections over an in-memory stream, both speaking [`FramedWire`]: a wire with
    /// its own framing (a flag byte in the head, a trailer), no opening, and `Ping`s it
    /// answers on its own.
    fn framed_pair(root: Option<Arc<dyn Object>>) -> (Connection, Connection) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let wire = || Protocol::Test(FramedWire::default());
        let server = Connection::start(ar, aw, Config::default(), root, wire());
        let client = Connection::start(br, bw, Config::default(), None, wire());
        (server, client)
    }

    #[tokio::test]
    async fn a_second_wire_with_its_own_framing_plugs_in_at_the_seam() {
        let echo = crate::callback(|v: crate::Value| v);
        let (server, client) = framed_pair(echo.local_object().cloned());
        // One call at a time (each frame read on its own), then 50 in flight (frames found
        // whole in the reader's buffer, trailers and all).
        assert_eq!(client.root().call((41,)).await.unwrap().as_i64(), Some(41));
        let calls: Vec<_> = (0..50i64).map(|i| client.root().call((i,))).collect();
        let results = futures_util::future::join_all(calls).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.unwrap().as_i64(), Some(i as i64));
        }
        // A reference crosses and comes home: the tables count it whatever the wire.
        let cb = crate::callback(|| 7i64);
        let back = client.root().call((cb.clone(),)).await.unwrap();
        assert_eq!(
            back.into_proxy().unwrap(),
            cb,
            "the original object, not a proxy of one"
        );
        // The server's wire answers a `Ping` itself; the client's engine gets the `Pong`.
        let Protocol::Test(server_wire) = &server.link.shared.wire else {
            unreachable!("a framed pair")
        };
        let received = client.stats().messages_received;
        client.link.shared.queue_ping(7);
        for _ in 0..1000 {
            if server_wire.pongs.load(Ordering::Relaxed) == 1
                && client.stats().messages_received > received
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(server_wire.pongs.load(Ordering::Relaxed), 1);
        assert_eq!(client.stats().messages_received, received + 1);
        client.close().await;
        server.closed().await;
    }
}
