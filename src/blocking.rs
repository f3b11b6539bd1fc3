//! The blocking API: netref for plain synchronous programs (and the REPL).
//!
//! # Usage
//!
//! A [`blocking::Connection`](Connection) owns a small tokio runtime (two worker threads)
//! that it starts itself, so the program starts no runtime and no thread. Its
//! [`root`](Connection::root) is a [`blocking::Proxy`](Proxy), the synchronous twin of
//! [`netref::Proxy`](crate::Proxy): [`attr`](Proxy::attr) and [`path_to`](Proxy::path_to)
//! build a path locally, and [`call`](Proxy::call), [`call_method`](Proxy::call_method),
//! [`get`](Proxy::get), [`get_as`](Proxy::get_as), [`set`](Proxy::set), [`dir`](Proxy::dir),
//! [`help`](Proxy::help), [`iter`](Proxy::iter) and [`pipeline`](Proxy::pipeline) block until
//! the reply arrives. Values go in as anything serializable (tuples of arguments, as with the
//! async API) and come back as [`Value`](crate::Value), which
//! [`decode`](crate::Value::decode)s into serde types.
//!
//! Connect over TCP ([`Connection::connect`]), a Unix socket (`Connection::connect_unix`), a
//! child process's stdio ([`Connection::connect_command`]), an in-memory pair
//! ([`Connection::pair`]), or any async transport ([`Connection::from_async`]).
//!
//! # Callbacks
//!
//! [`blocking::callback`](callback) lends a plain closure. While the calling thread waits in a
//! call, the runtime keeps serving the peer's calls: a callback runs on the runtime's blocking
//! threads and may itself make blocking calls, so callbacks nest in both directions.
//!
//! # Object lifetimes
//!
//! As with the async API, a remote object lives while a proxy of it does. Dropping a
//! blocking [`Connection`] closes the connection (waiting at most a second for the goodbye
//! to be written and, for a child process, for it to exit before killing it) and then shuts
//! its runtime down, waiting at most another second for running callbacks. Its proxies stay
//! valid values but their operations then fail with
//! [`Error::Disconnected`](crate::Error::Disconnected).
//!
//! # Errors
//!
//! The same [`Error`](crate::Error)s as the async API. In addition, every blocking operation
//! called from inside a tokio runtime (an async task or `block_on`, where blocking would stall
//! the runtime) fails at once with an error saying so instead of panicking; only blocking
//! callbacks, which run on threads made for blocking, are exempt. Async code uses the async
//! API: [`Connection::as_async`] and [`Proxy::as_async`] give it.
//!
//! # Example
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use netref::{blocking, expose, Config, Obj, Proxy};
//!
//! struct Lab;
//! #[expose]
//! impl Lab {
//!     /// Adds two numbers.
//!     #[exposed]
//!     fn add(&self, a: i64, b: i64) -> i64 { a + b }
//!
//!     /// Calls `cb(i)` for i in 0..n.
//!     #[exposed]
//!     async fn every(&self, n: u32, cb: Proxy) -> netref::Result<u32> {
//!         for i in 0..n { cb.call((i,)).await?; }
//!         Ok(n)
//!     }
//! }
//!
//! // No #[tokio::main]: a plain program. (Over TCP: blocking::Connection::connect(addr).)
//! // Both ends are this program, so no timeouts: the example's outcome then does not
//! // depend on how fast the machine runs it.
//! let config = Config::default().with_no_timeouts();
//! let lab = Some(Obj::new(Lab).erase());
//! let (_server, conn) = blocking::Connection::pair_with(config, lab, None)?;
//! let root = conn.root();
//! assert_eq!(root.call_method("add", (1, 2))?.decode::<i64>()?, 3);
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! let cb = blocking::callback(move |i: u32| sink.lock().unwrap().push(i));
//! root.call_method("every", (3, cb))?;
//! assert_eq!(*seen.lock().unwrap(), [0, 1, 2]);
//! # Ok::<(), netref::Error>(())
//! ```

mod proxy;
mod runtime;

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::process::Child;

use crate::config::Config;
use crate::error::Result;
use crate::object::Object;
use crate::stats::Stats;
use crate::transport::ChildConnection;
use runtime::{may_block, Runtime, SHUTDOWN_GRACE};

pub use proxy::{callback, Iter, Proxy};

/// Connects to a netref server over TCP with the default [`Config`]:
/// [`Connection::connect`].
///
/// ```no_run
/// let conn = netref::blocking::connect("127.0.0.1:18861")?;
/// let three: i64 = conn.root().call_method("add", (1, 2))?.decode()?;
/// # Ok::<(), netref::Error>(())
/// ```
pub fn connect(addr: impl std::net::ToSocketAddrs) -> Result<Connection> {
    Connection::connect(addr)
}

/// A connection for synchronous code: a [`netref::Connection`](crate::Connection) plus the
/// runtime that drives it (and, for [`Connection::connect_command`], the child process).
///
/// See the [module docs](self) for the threads, callbacks and shutdown.
pub struct Connection {
    inner: crate::Connection,
    child: Option<Child>,
    rt: Arc<Runtime>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Connection")
            .field("connection", &self.inner)
            .field("child", &self.child.as_ref().and_then(Child::id))
            .finish()
    }
}

impl Connection {
    /// Connects over TCP with the default [`Config`], lending no root. `addr` is resolved
    /// with the standard library (`"host:port"`, a `SocketAddr`, `("host", port)`…); each
    /// address is tried in turn.
    pub fn connect(addr: impl std::net::ToSocketAddrs) -> Result<Connection> {
        Connection::connect_with(addr, Config::default(), None)
    }

    /// Connects over TCP with `config`, lending `root` to the server (it may call back into
    /// it).
    pub fn connect_with(
        addr: impl std::net::ToSocketAddrs,
        config: Config,
        root: Option<Arc<dyn Object>>,
    ) -> Result<Connection> {
        runtime::ensure_may_block()?;
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        Connection::from_async(async move { crate::connect_with(&addrs[..], config, root).await })
    }

    /// Connects to the Unix socket at `path` with the default [`Config`]. Unix only.
    #[cfg(unix)]
    pub fn connect_unix(path: impl AsRef<std::path::Path>) -> Result<Connection> {
        Connection::connect_unix_with(path, Config::default(), None)
    }

    /// Connects to the Unix socket at `path` with `config`, lending `root`. Unix only.
    #[cfg(unix)]
    pub fn connect_unix_with(
        path: impl AsRef<std::path::Path>,
        config: Config,
        root: Option<Arc<dyn Object>>,
    ) -> Result<Connection> {
        let path = path.as_ref().to_path_buf();
        Connection::from_async(crate::connect_unix_with(path, config, root))
    }

    /// Spawns `program` with `args` and connects over its stdin and stdout (see
    /// [`netref::connect_command`](crate::connect_command)). The child is killed if it has
    /// not exited within a second of this connection being dropped.
    pub fn connect_command<I, S>(program: impl AsRef<OsStr>, args: I) -> Result<Connection>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Connection::connect_command_with(program, args, Config::default(), None)
    }

    /// [`Connection::connect_command`] with `config`, lending `root` to the child.
    pub fn connect_command_with<I, S>(
        program: impl AsRef<OsStr>,
        args: I,
        config: Config,
        root: Option<Arc<dyn Object>>,
    ) -> Result<Connection>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = std::process::Command::new(program);
        command.args(args);
        Connection::spawn(command, config, root)
    }

    /// Spawns `command` and connects over its stdin and stdout (see
    /// [`ChildConnection::spawn`](crate::ChildConnection::spawn)).
    pub fn spawn(
        command: std::process::Command,
        config: Config,
        root: Option<Arc<dyn Object>>,
    ) -> Result<Connection> {
        let rt = Runtime::start()?;
        let child = rt.block_on(ChildConnection::spawn(command, config, root))??;
        let (inner, child) = child.into_parts();
        Ok(Connection {
            inner,
            child: Some(child),
            rt,
        })
    }

    /// Two connected ends in this process over an in-memory pipe, sharing one runtime; each
    /// end lends the given root (see [`netref::pair`](crate::pair)). For tests and examples.
    ///
    /// ```
    /// let (a, b) = netref::blocking::Connection::pair(None, None)?;
    /// assert!(!a.is_closed() && !b.is_closed());
    /// drop(a);
    /// assert!(b.root().dir().unwrap_err().is_disconnected());
    /// # Ok::<(), netref::Error>(())
    /// ```
    pub fn pair(
        first_root: Option<Arc<dyn Object>>,
        second_root: Option<Arc<dyn Object>>,
    ) -> Result<(Connection, Connection)> {
        Connection::pair_with(Config::default(), first_root, second_root)
    }

    /// [`Connection::pair`] with an explicit [`Config`] for both ends.
    pub fn pair_with(
        config: Config,
        first_root: Option<Arc<dyn Object>>,
        second_root: Option<Arc<dyn Object>>,
    ) -> Result<(Connection, Connection)> {
        let rt = Runtime::start()?;
        let (a, b) = rt.block_on(crate::pair_with(config, first_root, second_root))??;
        let end = |inner| Connection {
            inner,
            child: None,
            rt: rt.clone(),
        };
        Ok((end(a), end(b)))
    }

    /// Runs `connect` (any async way of making a [`netref::Connection`](crate::Connection))
    /// on a fresh runtime that the returned connection owns.
    ///
    /// ```
    /// let conn = netref::blocking::Connection::from_async(async {
    ///     let (first, second) = netref::pair(None, None).await?;
    ///     # drop(first);
    ///     Ok(second)
    /// })?;
    /// # Ok::<(), netref::Error>(())
    /// ```
    pub fn from_async<F>(connect: F) -> Result<Connection>
    where
        F: Future<Output = Result<crate::Connection>>,
    {
        let rt = Runtime::start()?;
        let inner = rt.block_on(connect)??;
        Ok(Connection {
            inner,
            child: None,
            rt,
        })
    }

    /// A blocking proxy of the peer's root object.
    pub fn root(&self) -> Proxy {
        self.wrap(self.inner.root())
    }

    /// A blocking proxy of `proxy` (found in a call's result, say), served by this
    /// connection's runtime.
    pub fn wrap(&self, proxy: crate::Proxy) -> Proxy {
        Proxy::new(proxy, Arc::downgrade(&self.rt))
    }

    /// A proxy of the peer's object with raw id `id`, for debugging (see
    /// [`netref::Connection::remote_object`](crate::Connection::remote_object)).
    pub fn remote_object(&self, id: u64) -> Proxy {
        self.wrap(self.inner.remote_object(id))
    }

    /// Replaces the root object this side lends to the peer.
    pub fn set_root(&self, root: Option<Arc<dyn Object>>) {
        self.inner.set_root(root);
    }

    /// This connection's label (peer address, program name, or [`Config::label`]).
    pub fn label(&self) -> &str {
        self.inner.label()
    }

    /// A snapshot of the counters and table sizes.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// True once the connection is closed or lost.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.inner.close_reason()
    }

    /// Sends a goodbye, fails every pending call, frees everything lent through this
    /// connection, and waits until its tasks are gone. The runtime keeps running until this
    /// value is dropped.
    pub fn close(&self) -> Result<()> {
        self.rt.block_on(self.inner.close())
    }

    /// Sends a ping and waits for the pong: the round-trip time (see
    /// [`netref::Connection::ping`](crate::Connection::ping)).
    pub fn ping(&self) -> Result<std::time::Duration> {
        self.rt.block_on(self.inner.ping())?
    }

    /// Returns once the peer has processed every release queued so far (see
    /// [`netref::Connection::flush_releases`](crate::Connection::flush_releases)).
    pub fn flush_releases(&self) -> Result<()> {
        self.rt.block_on(self.inner.flush_releases())?
    }

    /// Runs `fut` on this connection's runtime and waits for its output: the way to use an
    /// async API (say [`Connection::as_async`]) from synchronous code.
    ///
    /// ```
    /// let (a, b) = netref::blocking::Connection::pair(None, None)?;
    /// let live = b.block_on(async { a.as_async().stats().live_exports })?;
    /// assert_eq!(live, 0);
    /// # Ok::<(), netref::Error>(())
    /// ```
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output> {
        self.rt.block_on(fut)
    }

    /// The async connection this one drives.
    pub fn as_async(&self) -> &crate::Connection {
        &self.inner
    }

    /// The child process's id, for a connection made by
    /// [`connect_command`](Connection::connect_command) whose child has not been waited for.
    pub fn child_id(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Waits until the child process exits and returns its status (`None` when this is not
    /// a child process's connection). Call [`close`](Connection::close) first to ask a
    /// well-behaved child to exit.
    pub fn wait_child(&mut self) -> Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        Ok(Some(self.rt.block_on(child.wait())??))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let conn = self.inner.clone();
        let child = self.child.take();
        if may_block() {
            // Each step is bounded; timers are made inside `block_on`, which gives them the
            // runtime's context.
            let _ = self.rt.block_on(async move {
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.close()).await;
                if let Some(mut child) = child {
                    // Closing the connection closed the child's stdin: let it exit on its
                    // own, then kill (and reap) it.
                    if tokio::time::timeout(SHUTDOWN_GRACE, child.wait())
                        .await
                        .is_err()
                    {
                        let _ = child.kill().await;
                    }
                }
            });
        } else {
            // Dropped inside an async context: close without waiting (the first poll marks
            // the connection closed and frees its tables); the child is killed when dropped.
            let _ = conn.close().now_or_never();
            drop(child);
        }
        // The runtime shuts down when the last connection sharing it is gone.
    }
}
