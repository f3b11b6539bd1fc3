//! Serving: accept connections and lend each a root object.
//!
//! # Usage
//!
//! ```no_run
//! use netref::{expose, Obj, Server};
//! struct Echo;
//! #[expose]
//! impl Echo {
//!     /// Returns its argument.
//!     #[exposed]
//!     fn echo(&self, x: netref::Value) -> netref::Value { x }
//! }
//! # async fn demo() -> netref::Result<()> {
//! // A fresh root per connection:
//! let handle = Server::with_factory(|_info| Obj::new(Echo).erase())
//!     .bind("127.0.0.1:0")
//!     .await?;
//! println!("listening on {}", handle.local_addr());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Each accepted connection gets its root from the factory (or shares one root), runs the
//! connect hook, runs the closing hook when it closes (while what it lent is still in its
//! tables), and runs the disconnect hook once it is closed and everything it lent has been
//! freed.
//!
//! # Lifecycle hooks
//!
//! | hook | runs | the connection's tables |
//! |---|---|---|
//! | [`Server::on_connect`], [`Server::on_connect_async`] | after the hello, to completion before any call is served | empty but for the root |
//! | [`Server::on_closing`] | once it is closed, before anything is freed (RPyC's `on_disconnect`) | as they were |
//! | [`Server::on_disconnect`] | after it closed and its tasks are gone | empty: everything lent was freed |
//!
//! [`ServerHandle::connections`] lists the open connections with their [`ConnectionInfo`]
//! (id, peer address), the same info the hooks and the factory receive, so a server can find
//! the connection of a given client. [`Server::one_shot`] serves a single connection.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::connection::Connection;
use crate::error::Result;
use crate::object::Object;
use crate::transport::from_tcp;
use futures_util::future::BoxFuture;

type Factory = Arc<dyn Fn(&ConnectionInfo) -> Arc<dyn Object> + Send + Sync>;
type Hook = Arc<dyn Fn(&ConnectionInfo, &Connection) + Send + Sync>;
type ConnectHook =
    Arc<dyn Fn(ConnectionInfo, Connection) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// What the server knows of one accepted connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// A number unique within this server.
    pub id: u64,
    /// The peer's address.
    pub peer: Option<SocketAddr>,
}

/// A server configuration; [`Server::bind`] starts it.
#[derive(Clone)]
pub struct Server {
    config: Config,
    factory: Option<Factory>,
    /// Run in order before each connection serves its first call.
    on_connect: Vec<ConnectHook>,
    connect_hook_timeout: Duration,
    on_closing: Option<Hook>,
    on_disconnect: Option<Hook>,
    max_connections: usize,
    one_shot: bool,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsAcceptor>,
    /// Speak Python RPyC 6's wire instead of netref's ([`Server::rpyc`]).
    rpyc: bool,
    /// The open RPyC connections (the native ones are in the handle's `state`).
    rpyc_live: RpycLive,
}

type RpycLive = Arc<Mutex<HashMap<u64, crate::rpyc::Connection>>>;

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("max_connections", &self.max_connections)
            .field("one_shot", &self.one_shot)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server that lends every connection the same root object.
    pub fn with_root(root: impl Into<Arc<dyn Object>>) -> Server {
        let root = root.into();
        Server::with_factory(move |_| root.clone())
    }

    /// A server that lends each connection a fresh root made by `factory`.
    pub fn with_factory<F>(factory: F) -> Server
    where
        F: Fn(&ConnectionInfo) -> Arc<dyn Object> + Send + Sync + 'static,
    {
        Server {
            config: Config::default(),
            factory: Some(Arc::new(factory)),
            on_connect: Vec::new(),
            connect_hook_timeout: crate::config::CONNECT_HOOK_TIMEOUT,
            on_closing: None,
            on_disconnect: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            one_shot: false,
            #[cfg(feature = "tls")]
            tls: None,
            rpyc: false,
            rpyc_live: Arc::default(),
        }
    }

    /// Serves TLS on the TCP listener: every accepted connection runs the TLS handshake with
    /// `acceptor` (and its client-certificate policy) before the netref hello.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, acceptor: crate::tls::TlsAcceptor) -> Server {
        self.tls = Some(acceptor);
        self
    }

    /// Speaks Python RPyC 6's own wire instead of netref's: Python's
    /// `rpyc.connect(host, port)` then reaches the root (see [`crate::rpyc`]). RPyC has no
    /// authentication, so listen on loopback or a Unix socket, or add [`Server::tls`]
    /// (Python's `rpyc.ssl_connect`). Each RPyC client is an ordinary [`Connection`] (RPyC's
    /// wire behind the protocol seam): the connect, closing and disconnect hooks run for it,
    /// and [`ServerHandle::connections`] lists it.
    pub fn rpyc(mut self) -> Server {
        self.rpyc = true;
        self
    }

    /// Sets the configuration of every accepted connection.
    /// Sets the configuration of every accepted connection.
    pub fn config(mut self, config: Config) -> Server {
        self.config = config;
        self
    }

    /// Caps the connections open at once (default 1024). A client over the cap completes
    /// the hello, then receives `Goodbye` with the reason and is closed; it sees
    /// "connection limit … reached" as its disconnect reason.
    pub fn max_connections(mut self, n: usize) -> Server {
        self.max_connections = n;
        self
    }

    /// Runs `hook` after each connection's hello and **before** the connection serves any
    /// call: whatever it sets up for the connection is in place for the client's first
    /// call. A hook that has to wait (ask the client something, load state) is
    /// [`Server::on_connect_async`]; both kinds may be added, and run in the order added.
    pub fn on_connect<F>(mut self, hook: F) -> Server
    where
        F: Fn(&ConnectionInfo, &Connection) + Send + Sync + 'static,
    {
        self.on_connect.push(Arc::new(move |info, conn| {
            hook(&info, &conn);
            Box::pin(std::future::ready(Ok(())))
        }));
        self
    }

    /// Runs the future `hook` returns to completion after each connection's hello and
    /// **before** the connection serves any call (RPyC runs `on_connect` the same way).
    ///
    /// While it runs, the connection delivers replies and control messages, so the hook may
    /// call the client (`conn.root()`); the client's calls that arrive meanwhile wait, in
    /// order, and start once the hook has finished (at most
    /// [`Config::max_in_flight`] wait; more are refused as overloaded). When the hook fails,
    /// or does not finish within [`Server::connect_hook_timeout`] (default 10 s), the
    /// connection is refused: it closes with a goodbye saying "refused by the server's
    /// connect hook: …" and its error (or the time it overran), which the client's calls
    /// fail with as [`Error::Disconnected`](crate::Error::Disconnected), and no waiting call
    /// runs.
    ///
    /// ```
    /// use netref::{adapters::Map, Error, Obj, Server};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let sessions = Obj::new(Map::new());
    /// let seen = sessions.clone();
    /// let server = Server::with_root(sessions.erase())
    ///     .on_connect_async(move |info, _conn| {
    ///         let sessions = seen.clone();
    ///         async move {
    ///             if info.id > 1 {
    ///                 return Err(Error::Value("one client only".into()));
    ///             }
    ///             tokio::task::yield_now().await; // some setup that waits
    ///             sessions.insert("client", info.id.into());
    ///             Ok(())
    ///         }
    ///     })
    ///     .bind("127.0.0.1:0")
    ///     .await
    ///     .unwrap();
    /// let first = netref::connect(server.local_addr()).await.unwrap();
    /// // The first call already sees what the hook set up.
    /// let id = first.root().call_method("get", ("client",)).await.unwrap();
    /// assert_eq!(id.as_i64(), Some(1));
    /// let second = netref::connect(server.local_addr()).await.unwrap();
    /// let e = second.root().call_method("get", ("client",)).await.unwrap_err();
    /// assert!(e.to_string().contains("one client only"), "{e}");
    /// # });
    /// ```
    pub fn on_connect_async<F, Fut>(mut self, hook: F) -> Server
    where
        F: Fn(ConnectionInfo, Connection) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        self.on_connect
            .push(Arc::new(move |info, conn| Box::pin(hook(info, conn))));
        self
    }

    /// Bounds the time the connect hooks ([`Server::on_connect_async`]) of one connection
    /// may take together; past it the connection is refused. Default 10 s.
    pub fn connect_hook_timeout(mut self, limit: Duration) -> Server {
        self.connect_hook_timeout = limit;
        self
    }

    /// Runs `hook` when each connection closes, **before** its tables are torn down: the
    /// connection is already closed (calls to the peer fail, its close reason is set), but
    /// its root, the objects it lends and the proxies it holds are all still there, and the
    /// handlers still running have not been cancelled. This is RPyC's `on_disconnect`.
    ///
    /// The hook is installed before the connection's tasks start, so it runs exactly once
    /// for every connection that completed the hello and was not refused, however soon it
    /// closes. It runs synchronously on the task that notices the close (see
    /// [`Connection::on_closing`]): keep it short. A panic in it is caught.
    pub fn on_closing<F>(mut self, hook: F) -> Server
    where
        F: Fn(&ConnectionInfo, &Connection) + Send + Sync + 'static,
    {
        self.on_closing = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` after each connection has closed and freed what it lent (its tables are
    /// empty and its tasks gone). To see what it lent before that, use
    /// [`Server::on_closing`].
    pub fn on_disconnect<F>(mut self, hook: F) -> Server
    where
        F: Fn(&ConnectionInfo, &Connection) + Send + Sync + 'static,
    {
        self.on_disconnect = Some(Arc::new(hook));
        self
    }

    /// Serves a single connection: the first one that completes the hello (and any
    /// authentication) is served, and then the server stops accepting, so later clients are
    /// refused by the operating system. A client whose hello fails does not use up the shot.
    /// Hellos run one at a time, each bounded by [`Config::handshake_timeout`].
    /// [`ServerHandle::stopped`] returns once that connection has closed.
    ///
    /// ```
    /// use netref::{adapters::List, Obj, Server};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let server = Server::with_root(Obj::new(List::new()).erase())
    ///     .one_shot()
    ///     .bind("127.0.0.1:0")
    ///     .await
    ///     .unwrap();
    /// let conn = netref::connect(server.local_addr()).await.unwrap();
    /// conn.root().call_method("append", (1,)).await.unwrap();
    /// // Nobody else gets in.
    /// assert!(netref::connect(server.local_addr()).await.is_err());
    /// conn.close().await;
    /// server.stopped().await;
    /// # });
    /// ```
    pub fn one_shot(mut self) -> Server {
        self.one_shot = true;
        self
    }

    /// Binds a TCP listener on `addr` and starts accepting.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<ServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        self.serve(listener)
    }

    /// Starts accepting on an existing TCP listener.
    pub fn serve(self, listener: TcpListener) -> Result<ServerHandle> {
        let local_addr = ListenAddr::Tcp(listener.local_addr()?);
        Ok(self.start(Listener::Tcp(listener), local_addr))
    }

    /// Binds a Unix socket at `path` (which must not exist) and starts accepting.
    #[cfg(unix)]
    pub fn bind_unix(self, path: impl AsRef<std::path::Path>) -> Result<ServerHandle> {
        let path = path.as_ref().to_path_buf();
        let listener = tokio::net::UnixListener::bind(&path)?;
        Ok(self.start(Listener::Unix(listener), ListenAddr::Unix(path)))
    }

    fn start(self, listener: Listener, local: ListenAddr) -> ServerHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = Arc::new(State::default());
        let busy = Busy::new(&state);
        let rpyc_live = self.rpyc_live.clone();
        let task = tokio::spawn(accept_loop(self, listener, stop_rx, state.clone(), busy));
        ServerHandle {
            rpyc_live,
            local,
            stop: stop_tx,
            state,
            task: Mutex::new(Some(task)),
        }
    }
}

/// The default of [`Server::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
            #[cfg(unix)]
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(std::path::PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// What a server and its handle share.
#[derive(Default)]
struct State {
    /// The open connections, by [`ConnectionInfo::id`].
    live: Mutex<HashMap<u64, (ConnectionInfo, Connection)>>,
    /// The accept loop (while it runs) plus each accepted connection until it is served.
    busy: AtomicUsize,
    /// Told when `busy` drops.
    idle: Notify,
}

/// Counts one unit of [`State::busy`] while it lives.
struct Busy(Arc<State>);

impl Busy {
    fn new(state: &Arc<State>) -> Busy {
        state.busy.fetch_add(1, Ordering::AcqRel);
        Busy(state.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.idle.notify_waiters();
    }
}

async fn accept_loop(
    server: Server,
    listener: Listener,
    mut stop: watch::Receiver<bool>,
    state: Arc<State>,
    _busy: Busy,
) {
    let next = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let accepted = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = match &accepted {
            Accepted::Tcp(_, a) => Some(*a),
            #[cfg(unix)]
            Accepted::Unix(_) => None,
        };
        let info = ConnectionInfo {
            id: next.fetch_add(1, Ordering::Relaxed),
            peer,
        };
        let busy = Busy::new(&state);
        if server.rpyc {
            tokio::spawn(serve_rpyc(
                server.clone(),
                accepted,
                info,
                state.clone(),
                busy,
            ));
            if server.one_shot {
                return;
            }
            continue;
        }
        if server.one_shot {
            // One hello at a time; the first that succeeds is the one served.
            let opened = tokio::select! {
                c = open(&server, accepted, &info, &state) => c,
                _ = stop.wait_for(|s| *s) => return,
            };
            if let Some(conn) = opened {
                tokio::spawn(serve(server, conn, info, state, busy));
                return; // the listener is dropped: nobody else gets in
            }
            continue;
        }
        let server = server.clone();
        let state = state.clone();
        tokio::spawn(async move {
            if let Some(conn) = open(&server, accepted, &info, &state).await {
                serve(server, conn, info, state, busy).await;
            }
        });
    }
}

/// Runs TLS (when the server has an acceptor) and the hello on an accepted TCP stream.
async fn tcp_connection(
    server: &Server,
    stream: tokio::net::TcpStream,
    config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<Connection> {
    #[cfg(feature = "tls")]
    if let Some(acceptor) = &server.tls {
        return crate::tls::accept(stream, acceptor, config, root).await;
    }
    #[cfg(not(feature = "tls"))]
    let _ = server;
    from_tcp(stream, config, root).await
}

/// Runs the hello on an accepted stream; returns the connection when it is to be served
/// (registered in `state` already), or `None` when the hello failed or the server is full.
async fn open(
    server: &Server,
    accepted: Accepted,
    info: &ConnectionInfo,
    state: &State,
) -> Option<Connection> {
    let full = state.live.lock().len() >= server.max_connections;
    let root = if full {
        None
    } else {
        server.factory.as_ref().map(|f| f(info))
    };
    let mut config = if full {
        server.config.clone().with_role(crate::auth::Role::Acceptor)
    } else {
        accepted_config(server, info)
    };
    let made = match accepted {
        Accepted::Tcp(stream, _) => tcp_connection(server, stream, config, root).await,
        #[cfg(unix)]
        Accepted::Unix(stream) => {
            config
                .label
                .get_or_insert_with(|| format!("unix#{}", info.id));
            let (r, w) = stream.into_split();
            Connection::from_io(r, w, config, root).await
        }
    };
    let conn = match made {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(peer = ?info.peer, error = %e, "handshake failed");
            return None;
        }
    };
    if full {
        conn.close_with(format!(
            "refused: the server's connection limit of {} is reached",
            server.max_connections
        ))
        .await;
        return None;
    }
    state
        .live
        .lock()
        .insert(info.id, (info.clone(), conn.clone()));
    Some(conn)
}

/// The configuration of an accepted connection: the server's, with its closing and connect
/// hooks bound to `info`.
fn accepted_config(server: &Server, info: &ConnectionInfo) -> Config {
    let mut config = server.config.clone().with_role(crate::auth::Role::Acceptor);
    if let Some(hook) = &server.on_closing {
        let hook = hook.clone();
        let info = info.clone();
        config.hooks.closing = Some(Arc::new(move |conn: &Connection| hook(&info, conn)));
    }
    if !server.on_connect.is_empty() {
        let hooks = server.on_connect.clone();
        let info = info.clone();
        config.hooks.connect = Some(Arc::new(move |conn: Connection| {
            let hooks = hooks.clone();
            let info = info.clone();
            Box::pin(async move {
                for hook in &hooks {
                    hook(info.clone(), conn.clone()).await?;
                }
                Ok(())
            })
        }));
        config.hooks.connect_timeout = server.connect_hook_timeout;
    }
    config
}

/// Serves an open connection until it is closed and gone, running the hooks.
async fn serve(
    server: Server,
    conn: Connection,
    info: ConnectionInfo,
    state: Arc<State>,
    _busy: Busy,
) {
    conn.closed().await;
    state.live.lock().remove(&info.id);
    if let Some(hook) = &server.on_disconnect {
        hook(&info, &conn);
    }
}

/// Serves one RPyC client as an ordinary connection (RPyC's wire behind the seam): no
/// handshake, so it starts at once (after TLS when configured); over the connection limit
/// the stream is dropped straight away.
async fn serve_rpyc(
    server: Server,
    accepted: Accepted,
    info: ConnectionInfo,
    state: Arc<State>,
    busy: Busy,
) {
    if state.live.lock().len() >= server.max_connections {
        tracing::debug!(peer = ?info.peer, "rpyc connection refused: over the limit");
        return;
    }
    let root = server.factory.as_ref().map(|f| f(&info));
    let mut config = accepted_config(&server, &info);
    let conn = match accepted {
        Accepted::Tcp(stream, peer) => {
            config.label.get_or_insert_with(|| format!("rpyc:{peer}"));
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "set_nodelay failed");
            }
            #[cfg(feature = "tls")]
            if let Some(acceptor) = &server.tls {
                match crate::tls::accept_stream(stream, acceptor, config.handshake_timeout).await {
                    Ok(tls) => {
                        let (r, w) = tokio::io::split(tls);
                        crate::rpyc::serve_io(r, w, config, root)
                    }
                    Err(e) => {
                        tracing::debug!(peer = ?info.peer, error = %e, "tls handshake failed");
                        return;
                    }
                }
            } else {
                let (r, w) = stream.into_split();
                crate::rpyc::serve_io(r, w, config, root)
            }
            #[cfg(not(feature = "tls"))]
            {
                let (r, w) = stream.into_split();
                crate::rpyc::serve_io(r, w, config, root)
            }
        }
        #[cfg(unix)]
        Accepted::Unix(stream) => {
            config
                .label
                .get_or_insert_with(|| format!("rpyc:unix#{}", info.id));
            let (r, w) = stream.into_split();
            crate::rpyc::serve_io(r, w, config, root)
        }
    };
    state
        .live
        .lock()
        .insert(info.id, (info.clone(), conn.clone()));
    server.rpyc_live.lock().insert(info.id, conn.clone().into());
    let id = info.id;
    serve(server.clone(), conn, info, state, busy).await;
    server.rpyc_live.lock().remove(&id);
}

/// A running server. Dropping it stops accepting; open connections go on until closed.
pub struct ServerHandle {
    rpyc_live: RpycLive,
    local: ListenAddr,
    stop: watch::Sender<bool>,
    state: Arc<State>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local", &self.local)
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl ServerHandle {
    /// The TCP address the server listens on (useful after binding port 0).
    ///
    /// For a Unix-socket server this is `0.0.0.0:0`; use [`ServerHandle::listen_addr`].
    pub fn local_addr(&self) -> SocketAddr {
        match &self.local {
            ListenAddr::Tcp(a) => *a,
            ListenAddr::Unix(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// Where the server listens.
    pub fn listen_addr(&self) -> &ListenAddr {
        &self.local
    }

    /// Connections currently open (RPyC ones included).
    pub fn connection_count(&self) -> usize {
        self.state.live.lock().len()
    }

    /// The RPyC connections currently open (see [`Server::rpyc`]), each also listed by
    /// [`ServerHandle::connections`] as the netref connection it is.
    pub fn rpyc_connections(&self) -> Vec<crate::rpyc::Connection> {
        self.rpyc_live.lock().values().cloned().collect()
    }

    /// The connections currently open, each with its [`ConnectionInfo`] (the id and peer
    /// address its factory call and hooks saw), in the order they were accepted.
    ///
    /// A connection is listed from the end of its hello until it has closed and its tasks
    /// are gone (before its [`on_disconnect`](Server::on_disconnect) hook runs).
    pub fn connections(&self) -> Vec<(ConnectionInfo, Connection)> {
        let mut all: Vec<_> = self.state.live.lock().values().cloned().collect();
        all.sort_by_key(|(info, _)| info.id);
        all
    }

    /// The open connection whose [`ConnectionInfo::id`] is `id`, if it is still open.
    pub fn connection(&self, id: u64) -> Option<Connection> {
        self.state
            .live
            .lock()
            .get(&id)
            .map(|(_, conn)| conn.clone())
    }

    /// Waits until the server has stopped accepting (after [`ServerHandle::stop_accepting`],
    /// a shutdown, dropping the handle, or a [one-shot](Server::one_shot) server's
    /// connection) and every connection it accepted is closed and gone, its
    /// [`on_disconnect`](Server::on_disconnect) hook run.
    pub async fn stopped(&self) {
        loop {
            let idle = self.state.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.state.busy.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// A gauge of the open connections that does not keep the server alive (a registry
    /// heartbeat's load figure).
    #[cfg(feature = "nats")]
    pub(crate) fn load_gauge(&self) -> impl Fn() -> usize + Send + 'static {
        let state = Arc::downgrade(&self.state);
        move || state.upgrade().map_or(0, |s| s.live.lock().len())
    }

    /// Becomes `true` when the server stops accepting (and closes when it is dropped).
    #[cfg(feature = "nats")]
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Stops accepting new connections (open ones go on).
    pub async fn stop_accepting(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Stops accepting, closes every connection at once and waits until they are gone.
    pub async fn shutdown(&self) {
        self.shutdown_graceful(Duration::ZERO).await;
    }

    /// Stops accepting, refuses new calls on open connections, lets the calls in flight
    /// finish for up to `grace`, then closes every connection with a `Goodbye` saying the
    /// server is shutting down, and waits until they are gone.
    pub async fn shutdown_graceful(&self, grace: Duration) {
        self.stop_accepting().await;
        let conns: Vec<Connection> = self.connections().into_iter().map(|(_, c)| c).collect();
        let deadline = tokio::time::Instant::now() + grace;
        let drains = conns.iter().map(|c| c.drain(deadline));
        futures_util::future::join_all(drains).await;
        let closes = conns
            .iter()
            .map(|c| c.close_with("the server is shutting down".into()));
        futures_util::future::join_all(closes).await;
        self.state.live.lock().clear();
        self.rpyc_live.lock().clear();
    }

    /// Runs [`ServerHandle::shutdown_graceful`] when `signal` completes (a Ctrl-C future, a
    /// cancellation token's `cancelled()` …), returning at once; await the returned task to
    /// know when the server is gone.
    pub fn shutdown_on<F>(self: &Arc<Self>, signal: F, grace: Duration) -> JoinHandle<()>
    where
        F: std::future::Future + Send + 'static,
    {
        let this = self.clone();
        tokio::spawn(async move {
            signal.await;
            this.shutdown_graceful(grace).await;
        })
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
