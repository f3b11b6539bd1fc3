//! Python RPyC 6's own wire: netref and Python processes share objects both ways.
//!
//! # Usage
//!
//! **Rust → Python.** [`connect`] reaches a Python `rpyc.ThreadedServer` (or
//! `rpyc_classic`); the connection's [`root`](Connection::root) is a [`Proxy`] of the
//! Python service, driven with the ordinary proxy API: `call_method`, `attr(..).get()`,
//! `attr(..).set(..)`, `dir`, keyword arguments through [`Args`](crate::Args). Python objects
//! that come back are proxies too; [`repr`], [`str`](str()), [`len`], [`getitem`], [`eq`] and
//! [`iter`] give Python's view of them. Rust callbacks and objects passed as arguments are
//! lent to Python by reference.
//!
//! ```no_run
//! # async fn demo() -> netref::Result<()> {
//! let conn = netref::rpyc::connect("127.0.0.1:18812").await?;
//! let os = conn.root().await?.call_method("getmodule", ("os",)).await?.into_proxy()?;
//! let cwd = os.call_method("getcwd", ()).await?;
//! println!("the Python process runs in {cwd}");
//! # Ok(()) }
//! ```
//!
//! **Python → Rust.** [`Server::rpyc`](crate::Server::rpyc) serves RPyC clients, and
//! [`serve_io`] serves one on any byte stream: Python's `rpyc.connect(host, port)` then gets
//! the root object, calls its `#[exposed]` members (`conn.root.add(1, 2)`), passes its own
//! functions as callbacks, iterates netref iterators, and `dir(conn.root)` lists the exposed
//! members only.
//!
//! Both ways the connection is an ordinary netref [`Connection`](crate::Connection): RPyC's
//! wire runs behind the protocol seam (`codec::rpyc`), Python's objects are ordinary
//! imports, and the hooks, stats, tracer and tables apply as to any other connection.
//!
//! # Example
//!
//! Both ends of RPyC's wire in one process, over an in-memory pipe (with Python on either
//! side it works the same):
//!
//! ```
//! use netref::{expose, rpyc, Config, Obj};
//!
//! struct Calc;
//!
//! #[expose]
//! impl Calc {
//!     /// Adds two numbers.
//!     #[exposed]
//!     fn add(&self, a: i64, b: i64) -> i64 { a + b }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (a, b) = tokio::io::duplex(64 * 1024);
//! let (ar, aw) = tokio::io::split(a);
//! let (br, bw) = tokio::io::split(b);
//! let server = rpyc::serve_io(ar, aw, Config::default(), Some(Obj::new(Calc).erase()));
//! let client = rpyc::from_io(br, bw, Config::default(), None);
//! let root = client.root().await.unwrap();
//! assert_eq!(root.call_method("add", (1, 2)).await.unwrap().as_i64(), Some(3));
//! // `dir` lists the exposed members; a hidden or unknown one is "no such member"
//! assert_eq!(root.dir().await.unwrap(), vec!["add".to_string()]);
//! assert!(root.call_method("sub", (1, 2)).await.unwrap_err().is_no_such_member());
//! assert_eq!(server.stats().live_exports, 1); // the root, lent to the client
//! client.close().await;
//! server.closed().await;
//! assert_eq!(server.stats().live_exports, 0);
//! # });
//! ```
//!
//! # What maps to what
//!
//! See `docs/rpyc.md`. Every RPyC request that names a member goes through the same exposure
//! gate as the native wire (by member index, `exposed_` accepted as an alias); a hidden or
//! unknown member is an `AttributeError` in Python that does not say which. Python
//! exceptions arrive as [`RemoteError`](crate::RemoteError)s whose `type_name` is the class
//! (`builtins.ValueError`), whose message is `str(exc)` and whose `chain` holds the
//! traceback text.
//!
//! # Object lifetimes
//!
//! RPyC's own counting: this side counts every time it lends an object, and Python's
//! `DEL(obj, n)` releases `n`; when the last proxy of a Python object is dropped this side
//! sends one `DEL` with the receipts it counted. Closing the connection frees everything.
//!
//! # Limits
//!
//! RPyC has no handshake and no authentication: serve it on loopback, a Unix socket or TLS.
//! `Config::max_frame` bounds a frame and what a compressed frame inflates to,
//! `Config::max_depth` the nesting of values, `Config::max_in_flight` the handlers running
//! at once, `Config::max_exports` the objects lent. There is no pipelining, cancellation or
//! deadline on this wire: a request this side makes fails with `TimedOut` after
//! `Config::call_timeout`, and its late reply is dropped.
//!
//! The wire lives in `codec::rpyc` (framing, brine, messages, boxing, exceptions, and the
//! translation between RPyC's requests and the engine's messages); a connection on it is an
//! ordinary netref [`Connection`](crate::Connection) in both directions, which
//! [`Connection::connection`] gives.

mod bridge;

#[cfg(test)]
use crate::codec::rpyc::{boxing, brine, frame, message, vinegar};

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod python_tests;

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::ToSocketAddrs;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::object::{Invocation, Object, Reply, TypeInfo};
use crate::proxy::Proxy;
use crate::trace::Tracer;
use crate::value::Value;

/// The port Python's `rpyc` servers listen on by default (`rpyc_classic` included).
pub const DEFAULT_PORT: u16 = 18812;

/// One connection on RPyC's wire, to or from a Python process: a netref
/// [`Connection`](crate::Connection) ([`Connection::connection`]) with what RPyC adds, the
/// peer's root read once and kept, as Python does. Cheap to clone; dropping the last handle
/// (and every proxy of the peer's objects) closes it.
#[derive(Clone)]
pub struct Connection {
    conn: crate::Connection,
    root: Arc<Mutex<Option<Proxy>>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("rpyc::Connection")
            .field("label", &self.label())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl From<crate::Connection> for Connection {
    fn from(conn: crate::Connection) -> Self {
        Connection {
            conn,
            root: Arc::default(),
        }
    }
}

impl Connection {
    /// The peer's root object. [`connect`] asks for it before returning; on a connection
    /// made by [`from_io`] the first call asks (`GETROOT`) and keeps it until the
    /// connection closes, as Python does.
    pub async fn root(&self) -> Result<Proxy> {
        if let Some(root) = self.root.lock().clone() {
            return Ok(root);
        }
        let root = self.conn.root().get().await?.into_proxy()?;
        Ok(self.root.lock().get_or_insert(root).clone())
    }

    /// The netref connection underneath: its stats, tracer, tables and hooks are this
    /// connection's.
    pub fn connection(&self) -> &crate::Connection {
        &self.conn
    }

    /// Replaces the object this side lends as its root.
    pub fn set_root(&self, root: Option<Arc<dyn Object>>) {
        self.conn.set_root(root);
    }

    /// This connection's label (the peer's address unless [`Config::label`] names it).
    pub fn label(&self) -> &str {
        self.conn.label()
    }

    /// True once the connection is closed or lost.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.conn.close_reason()
    }

    /// Sends `CLOSE`, fails every waiting request, frees everything lent, and waits until
    /// the connection's tasks are gone.
    pub async fn close(&self) {
        self.conn.close().await;
        let root = self.root.lock().take();
        drop(root);
    }

    /// Waits until the connection is closed and its tasks are gone.
    pub async fn closed(&self) {
        self.conn.closed().await;
    }

    /// Tasks of this connection still running (reader, writer and handlers).
    pub fn task_count(&self) -> u64 {
        self.conn.task_count()
    }

    /// Objects this side lends to the peer right now.
    pub fn export_count(&self) -> usize {
        self.conn.stats().live_exports as usize
    }

    /// The peer's objects this side holds proxies of right now.
    pub fn import_count(&self) -> usize {
        self.conn.stats().live_imports as usize
    }

    /// Both object tables, for `:tables` and teaching: what this side lends (`id_pack`
    /// name and instance id, count) and what it holds (Python's id_packs).
    pub fn tables(&self) -> Vec<String> {
        let Some(wire) = self.conn.rpyc_wire() else {
            return Vec::new();
        };
        let tables = self.conn.tables();
        let live: std::collections::HashSet<u64> = tables.exports.iter().map(|e| e.id).collect();
        let held: std::collections::HashSet<u64> = tables.imports.iter().map(|e| e.id).collect();
        let mut lines: Vec<String> = wire
            .lent_rows()
            .into_iter()
            .filter(|(id, _, _)| live.contains(id))
            .map(|(_, pack, n)| format!("lent {pack} count {n}"))
            .collect();
        lines.extend(
            wire.held_rows()
                .into_iter()
                .filter(|(id, _)| held.contains(id))
                .map(|(_, pack)| format!("held {pack}")),
        );
        lines
    }

    /// Messages sent and received so far.
    pub fn message_counts(&self) -> (u64, u64) {
        let st = self.conn.stats();
        (st.messages_sent, st.messages_received)
    }

    /// The peer's root as a netref [`Object`]: each public name its `dir()` lists is a
    /// settable property (read with `GETATTR`, set with `SETATTR`, called by reading the
    /// bound method and calling it). Lend it on a netref connection and netref's own tools
    /// reach the Python object: `netref repl rpyc://…` does this with an in-process pair.
    ///
    /// The member list is taken once, now. Its description is shared by every bridge to the
    /// same kind of object with the same members (Python's class, without the instance's
    /// address), so bridging again, on this connection or a new one, keeps nothing more.
    pub async fn bridge(&self) -> Result<Arc<dyn Object>> {
        let root = self.root().await?;
        Ok(Arc::new(bridge::Bridge::new(root).await?))
    }

    /// Installs (or removes) a function that sees every RPyC message in readable form
    /// (`-> REQUEST 2 GETATTR(yours<netref.Lab 0x1>, "add")`).
    pub fn set_tracer(&self, tracer: Option<Tracer>) {
        self.conn.set_tracer(tracer);
    }
}

/// Connects over TCP to a Python RPyC 6 server and fetches its root.
pub async fn connect(addr: impl ToSocketAddrs) -> Result<Connection> {
    connect_with(addr, Config::default(), None).await
}

/// Connects over TCP with `config`, lending `root` to the Python side (what its
/// `conn.root` gives), and fetches the server's root.
pub async fn connect_with(
    addr: impl ToSocketAddrs,
    mut config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<Connection> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    if config.label.is_none() {
        config.label = stream.peer_addr().ok().map(|a| format!("rpyc:{a}"));
    }
    let (r, w) = stream.into_split();
    let conn = from_io(r, w, config, root);
    conn.root().await?;
    Ok(conn)
}

/// Connects over the Unix socket at `path` to a Python RPyC server and fetches its root.
#[cfg(unix)]
pub async fn connect_unix(path: impl AsRef<std::path::Path>) -> Result<Connection> {
    let path = path.as_ref();
    let stream = tokio::net::UnixStream::connect(path).await?;
    let config = Config::default().with_label(format!("rpyc:unix:{}", path.display()));
    let (r, w) = stream.into_split();
    let conn = from_io(r, w, config, None);
    conn.root().await?;
    Ok(conn)
}

/// Connects with TLS to a Python RPyC server started with `ssl_keyfile`/`ssl_certfile`,
/// verifying it as `server_name` against `tls`'s roots, and fetches its root.
#[cfg(feature = "tls")]
pub async fn connect_tls(
    addr: impl ToSocketAddrs,
    server_name: &str,
    tls: &crate::tls::TlsClientConfig,
    mut config: Config,
) -> Result<Connection> {
    let (stream, peer) =
        crate::tls::connect_stream(addr, server_name, tls, config.handshake_timeout).await?;
    if config.label.is_none() {
        config.label = peer.map(|p| format!("rpycs:{p}"));
    }
    let (r, w) = tokio::io::split(stream);
    let conn = from_io(r, w, config, None);
    conn.root().await?;
    Ok(conn)
}

/// Runs one RPyC connection on `reader`/`writer`, lending `root` (an empty `VoidService`
/// when `None`: Python's classic server asks for its client's root as it connects). RPyC
/// has no handshake: this starts the connection's tasks and returns at once.
pub fn from_io<R, W>(
    reader: R,
    writer: W,
    config: Config,
    root: Option<Arc<dyn Object>>,
) -> Connection
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let root = root.unwrap_or_else(|| Arc::new(Void));
    serve_io(reader, writer, config, Some(root)).into()
}

/// Serves one Python RPyC client on `reader`/`writer`, lending `root`, as an ordinary netref
/// [`Connection`](crate::Connection) (what [`from_io`] wraps): RPyC's wire behind the
/// protocol seam (`codec::rpyc`), so the connection's hooks in `config`, its stats, tracer
/// and tables work as on any connection. RPyC has no handshake: this starts the
/// connection's tasks and returns at once ([`Server::rpyc`](crate::Server::rpyc) calls it
/// for each accepted stream). Keepalive is off: a Python client answers a ping only while
/// it waits for a reply of its own, so an idle one would look dead.
pub fn serve_io<R, W>(
    reader: R,
    writer: W,
    mut config: Config,
    root: Option<Arc<dyn Object>>,
) -> crate::Connection
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    config.keepalive_interval = None;
    if config.label.is_none() {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        config.label = Some(format!("rpyc{n}"));
    }
    let wire = crate::codec::Protocol::Rpyc(crate::codec::rpyc::RpycWire::new(&config));
    crate::Connection::start(reader, writer, config, root, wire)
}

/// The root of a side that lends nothing: no members.
struct Void;

static VOID_INFO: TypeInfo = TypeInfo {
    name: "VoidService",
    doc: "This side lends nothing.",
    members: &[],
    call: None,
};

impl Object for Void {
    fn type_info(&self) -> &'static TypeInfo {
        &VOID_INFO
    }

    fn invoke(self: Arc<Self>, member: usize, _inv: Invocation) -> Reply {
        Reply::Ready(Err(crate::__private::bad_invocation("VoidService", member)))
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// Python's `repr(obj)` of a Python object (`REPR`).
pub async fn repr(obj: &Proxy) -> Result<String> {
    text(obj.call_method("__repr__", ()).await?)
}

/// Python's `str(obj)` of a Python object (`STR`).
pub async fn str(obj: &Proxy) -> Result<String> {
    text(obj.call_method("__str__", ()).await?)
}

/// Python's `len(obj)`.
pub async fn len(obj: &Proxy) -> Result<usize> {
    obj.call_method("__len__", ()).decode().await
}

/// Python's `obj[key]`.
pub async fn getitem(obj: &Proxy, key: impl serde::Serialize) -> Result<Value> {
    obj.call_method("__getitem__", (key,)).await
}

/// Python's `a == b`, evaluated by the Python side (`CMP`).
pub async fn eq(a: &Proxy, b: impl serde::Serialize) -> Result<bool> {
    let other = crate::value::to_value(&b)?;
    match a.call_method("__eq__", (other,)).await? {
        Value::Bool(b) => Ok(b),
        // `NotImplemented`: Python would fall back to identity, which the proxies say.
        Value::Str(s) if s == "NotImplemented" => Ok(false),
        other => Ok(!matches!(other, Value::Nil | Value::Int(0))),
    }
}

/// Iterates a Python iterable: `iter(obj)` once, then items in batches of `batch` (RPyC's
/// `BUFFITER`, which `next_batch` calls on a Python object become), so a long iteration
/// costs one round trip per batch.
pub async fn iter(obj: &Proxy, batch: u32) -> Result<PyIter> {
    let it = obj.call_method("__iter__", ()).await?.into_proxy()?;
    Ok(PyIter {
        it,
        buf: std::collections::VecDeque::new(),
        done: false,
        batch: batch.max(1),
    })
}

/// Items of a Python iterator, pulled in batches (see [`iter`]).
pub struct PyIter {
    it: Proxy,
    buf: std::collections::VecDeque<Value>,
    done: bool,
    batch: u32,
}

impl fmt::Debug for PyIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PyIter({})", self.it)
    }
}

impl PyIter {
    /// The next item, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        if self.buf.is_empty() && !self.done {
            let items = self.it.call_method("next_batch", (self.batch,)).await?;
            match items {
                Value::List(items) => {
                    self.done = items.is_empty();
                    self.buf.extend(items);
                }
                other => {
                    return Err(Error::Value(format!(
                        "BUFFITER gave a {}, not a tuple",
                        other.type_name()
                    )))
                }
            }
        }
        Ok(self.buf.pop_front())
    }

    /// Every remaining item.
    pub async fn collect(mut self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        while let Some(v) = self.next().await? {
            out.push(v);
        }
        Ok(out)
    }
}

fn text(v: Value) -> Result<String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(Error::Value(format!(
            "expected a str, found {}",
            other.type_name()
        ))),
    }
}
