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
//! members only. Such a connection is an ordinary netref [`Connection`](crate::Connection):
//! RPyC's wire runs behind the protocol seam (`codec::rpyc`), so the server's hooks, stats,
//! tracer and tables apply to it as to any other.
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
//! The wire's layers live in `codec::rpyc` (framing, brine, messages, boxing, exceptions,
//! and the translation to engine messages that serves Python clients). The client
//! direction ([`connect`], [`from_io`]) still runs RPyC's own connection engine here: the
//! connection (`session`), what it lends (`exports`), serving the peer's requests (`serve`)
//! and Python's objects (`pyobj`).

mod bridge;
mod convert;
mod exports;
mod pyobj;
mod serve;
mod session;

use crate::codec::rpyc::{boxing, brine, frame, message, trace, vinegar};

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod python_tests;

use std::fmt;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::ToSocketAddrs;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::object::Object;
use crate::proxy::Proxy;
use crate::trace::Tracer;
use crate::value::Value;
use message::Handler;
use session::{Link, Session};

/// The port Python's `rpyc` servers listen on by default (`rpyc_classic` included).
pub const DEFAULT_PORT: u16 = 18812;

/// One connection on RPyC's wire, to or from a Python process. Cheap to clone; dropping the
/// last handle (and every proxy of the peer's objects) closes it.
///
/// A connection a [`Server::rpyc`](crate::Server::rpyc) accepted (or [`serve_io`] made) is
/// an ordinary netref [`Connection`](crate::Connection) underneath, which
/// [`Connection::connection`] gives: the server's hooks, its stats and tracer apply as to
/// any connection. One made by [`connect`] or [`from_io`] runs RPyC's own connection engine
/// still.
#[derive(Clone)]
pub struct Connection {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    /// RPyC's own engine (`session.rs`): the client direction.
    Session(Arc<Link>),
    /// The netref engine behind the seam (`codec::rpyc`).
    Engine(crate::Connection),
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
    fn from(c: crate::Connection) -> Self {
        Connection {
            inner: Inner::Engine(c),
        }
    }
}

impl Connection {
    /// The peer's root object. [`connect`] asks for it before returning; on a connection
    /// made by [`from_io`] the first call asks (`GETROOT`) and keeps it until the
    /// connection closes, as Python does.
    pub async fn root(&self) -> Result<Proxy> {
        let s = match &self.inner {
            Inner::Session(link) => &link.session,
            Inner::Engine(_) => {
                return Err(Error::Unsupported(
                    "a connection served to a Python client reaches the Python objects it is \
                     given; it does not ask for the client's root"
                        .into(),
                ))
            }
        };
        if let Some(root) = s.remote_root.lock().clone() {
            return Ok(root);
        }
        let root = s
            .request(Handler::GetRoot, Vec::new())
            .await?
            .into_proxy()?;
        Ok(s.remote_root.lock().get_or_insert(root).clone())
    }

    /// Replaces the object this side lends as its root.
    pub fn set_root(&self, root: Option<Arc<dyn Object>>) {
        match &self.inner {
            Inner::Session(link) => {
                let old = std::mem::replace(&mut *link.session.root.lock(), root);
                drop(old);
            }
            Inner::Engine(c) => c.set_root(root),
        }
    }

    /// The netref connection underneath, when this one runs on the netref engine (every
    /// connection a [`Server::rpyc`](crate::Server::rpyc) accepts).
    pub fn connection(&self) -> Option<&crate::Connection> {
        match &self.inner {
            Inner::Engine(c) => Some(c),
            Inner::Session(_) => None,
        }
    }

    /// This connection's label (the peer's address unless [`Config::label`] names it).
    pub fn label(&self) -> &str {
        match &self.inner {
            Inner::Session(link) => &link.session.label,
            Inner::Engine(c) => c.label(),
        }
    }

    /// True once the connection is closed or lost.
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Session(link) => link.session.is_closed(),
            Inner::Engine(c) => c.is_closed(),
        }
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        match &self.inner {
            Inner::Session(link) => link.session.close_reason(),
            Inner::Engine(c) => c.close_reason(),
        }
    }

    /// Sends `CLOSE`, fails every waiting request, frees everything lent, and waits until
    /// the connection's tasks are gone.
    pub async fn close(&self) {
        match &self.inner {
            Inner::Session(link) => link.session.close("closed by this side".into()),
            Inner::Engine(c) => return c.close().await,
        }
        self.closed().await;
    }

    /// Waits until the connection is closed and its tasks are gone.
    pub async fn closed(&self) {
        match &self.inner {
            Inner::Session(link) => link.session.closed().await,
            Inner::Engine(c) => c.closed().await,
        }
    }

    /// Tasks of this connection still running (reader, writer and handlers).
    pub fn task_count(&self) -> u64 {
        match &self.inner {
            Inner::Session(link) => link.session.task_count(),
            Inner::Engine(c) => c.task_count(),
        }
    }

    /// Objects this side lends to the peer right now.
    pub fn export_count(&self) -> usize {
        match &self.inner {
            Inner::Session(link) => link.session.exports.lock().len(),
            Inner::Engine(c) => c.stats().live_exports as usize,
        }
    }

    /// The peer's objects this side holds proxies of right now.
    pub fn import_count(&self) -> usize {
        match &self.inner {
            Inner::Session(link) => link
                .session
                .imports
                .lock()
                .values()
                .filter(|w| w.strong_count() > 0)
                .count(),
            Inner::Engine(c) => c.stats().live_imports as usize,
        }
    }

    /// Both object tables, for `:tables` and teaching: what this side lends (`id_pack`
    /// name and instance id, count) and what it holds.
    pub fn tables(&self) -> Vec<String> {
        let s = match &self.inner {
            Inner::Session(link) => &link.session,
            Inner::Engine(c) => return engine_tables(c),
        };
        let mut lines: Vec<String> = s
            .exports
            .lock()
            .rows()
            .into_iter()
            .map(|(pack, n)| format!("lent {pack} count {n}"))
            .collect();
        let mut held: Vec<String> = s
            .imports
            .lock()
            .keys()
            .map(|pack| format!("held {pack}"))
            .collect();
        held.sort();
        lines.extend(held);
        lines
    }

    /// Messages sent and received so far.
    pub fn message_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        match &self.inner {
            Inner::Session(link) => (
                link.session.sent.load(Relaxed),
                link.session.received.load(Relaxed),
            ),
            Inner::Engine(c) => {
                let st = c.stats();
                (st.messages_sent, st.messages_received)
            }
        }
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
        match &self.inner {
            Inner::Session(link) => link.session.set_tracer(tracer),
            Inner::Engine(c) => c.set_tracer(tracer),
        }
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

/// Runs one RPyC connection on `reader`/`writer`, lending `root`. RPyC has no handshake:
/// this starts the connection's tasks and returns at once (a server calls this for each
/// accepted stream).
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
    Connection {
        inner: Inner::Session(Session::start(reader, writer, config, root)),
    }
}

/// Serves one Python RPyC client on `reader`/`writer`, lending `root`, as an ordinary netref
/// [`Connection`](crate::Connection): RPyC's wire behind the protocol seam
/// (`codec::rpyc`), so the connection's hooks in `config`, its stats, tracer and tables
/// work as on any connection. RPyC has no handshake: this starts the connection's tasks and
/// returns at once ([`Server::rpyc`](crate::Server::rpyc) calls it for each accepted
/// stream). Keepalive is off: a Python client answers a ping only while it waits for a
/// reply of its own, so an idle one would look dead.
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
    config.keepalive_interval = None;
    let wire = crate::codec::Protocol::Rpyc(crate::codec::rpyc::RpycWire::new(&config));
    crate::Connection::start(reader, writer, config, root, wire)
}

/// [`Connection::tables`] of a connection on the netref engine: the engine's exports with
/// the id_packs Python knows them by, then the Python objects held.
fn engine_tables(c: &crate::Connection) -> Vec<String> {
    let Some(wire) = c.rpyc_wire() else {
        return Vec::new();
    };
    let live: std::collections::HashSet<u64> = c.tables().exports.iter().map(|e| e.id).collect();
    let mut lines: Vec<String> = wire
        .lent_rows()
        .into_iter()
        .filter(|(id, _, _)| live.contains(id))
        .map(|(_, pack, n)| format!("lent {pack} count {n}"))
        .collect();
    let held: std::collections::HashSet<u64> = c.tables().imports.iter().map(|e| e.id).collect();
    lines.extend(
        wire.held_rows()
            .into_iter()
            .filter(|(id, _)| held.contains(id))
            .map(|(_, pack)| format!("held {pack}")),
    );
    lines
}

/// Python's `repr(obj)` of a Python object.
pub async fn repr(obj: &Proxy) -> Result<String> {
    let (s, p) = pyobj::resolve(obj).await?;
    text(s.request(Handler::Repr, vec![Value::Ref(p)]).await?)
}

/// Python's `str(obj)` of a Python object.
pub async fn str(obj: &Proxy) -> Result<String> {
    let (s, p) = pyobj::resolve(obj).await?;
    text(s.request(Handler::Str, vec![Value::Ref(p)]).await?)
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
    let (s, p) = pyobj::resolve(a).await?;
    let other = crate::value::to_value(&b)?;
    match s
        .request(Handler::Cmp, vec![Value::Ref(p), other, "__eq__".into()])
        .await?
    {
        Value::Bool(b) => Ok(b),
        // `NotImplemented`: Python would fall back to identity, which the proxies say.
        Value::Str(s) if s == "NotImplemented" => Ok(false),
        other => Ok(!matches!(other, Value::Nil | Value::Int(0))),
    }
}

/// Iterates a Python iterable: `iter(obj)` once, then items in batches of `batch` (RPyC's
/// `BUFFITER`), so a long iteration costs one round trip per batch.
pub async fn iter(obj: &Proxy, batch: u32) -> Result<PyIter> {
    let it = obj.call_method("__iter__", ()).await?.into_proxy()?;
    let (session, it) = pyobj::resolve(&it).await?;
    Ok(PyIter {
        session,
        it,
        buf: std::collections::VecDeque::new(),
        done: false,
        batch: batch.max(1),
    })
}

/// Items of a Python iterator, pulled in batches (see [`iter`]).
pub struct PyIter {
    session: Arc<Session>,
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
            let items = self
                .session
                .request(
                    Handler::BuffIter,
                    vec![Value::Ref(self.it.clone()), Value::from(self.batch)],
                )
                .await?;
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
