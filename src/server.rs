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
//! connect hook, and runs the disconnect hook once it is closed and everything it lent has been
//! freed.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::connection::Connection;
use crate::error::Result;
use crate::object::Object;
use crate::transport::from_tcp;

type Factory = Arc<dyn Fn(&ConnectionInfo) -> Arc<dyn Object> + Send + Sync>;
type Hook = Arc<dyn Fn(&ConnectionInfo, &Connection) + Send + Sync>;

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
    on_connect: Option<Hook>,
    on_disconnect: Option<Hook>,
    max_connections: usize,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsAcceptor>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("max_connections", &self.max_connections)
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
            on_connect: None,
            on_disconnect: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serves TLS on the TCP listener: every accepted connection runs the TLS handshake with
    /// `acceptor` (and its client-certificate policy) before the netref hello.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, acceptor: crate::tls::TlsAcceptor) -> Server {
        self.tls = Some(acceptor);
        self
    }

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

    /// Runs `hook` after each connection's hello.
    pub fn on_connect<F>(mut self, hook: F) -> Server
    where
        F: Fn(&ConnectionInfo, &Connection) + Send + Sync + 'static,
    {
        self.on_connect = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` after each connection has closed and freed what it lent.
    pub fn on_disconnect<F>(mut self, hook: F) -> Server
    where
        F: Fn(&ConnectionInfo, &Connection) + Send + Sync + 'static,
    {
        self.on_disconnect = Some(Arc::new(hook));
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
        let live: Live = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn(accept_loop(self, listener, stop_rx, live.clone()));
        ServerHandle {
            local,
            stop: stop_tx,
            live,
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

type Live = Arc<Mutex<HashMap<u64, Connection>>>;

async fn accept_loop(
    server: Server,
    listener: Listener,
    mut stop: watch::Receiver<bool>,
    live: Live,
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
        tokio::spawn(serve_one(server.clone(), accepted, info, live.clone()));
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

async fn serve_one(server: Server, accepted: Accepted, info: ConnectionInfo, live: Live) {
    let full = live.lock().len() >= server.max_connections;
    let root = if full {
        None
    } else {
        server.factory.as_ref().map(|f| f(&info))
    };
    let mut config = server.config.clone().with_role(crate::auth::Role::Acceptor);
    let made = match accepted {
        Accepted::Tcp(stream, _) => tcp_connection(&server, stream, config, root).await,
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
            return;
        }
    };
    if full {
        conn.close_with(format!(
            "refused: the server's connection limit of {} is reached",
            server.max_connections
        ))
        .await;
        return;
    }
    live.lock().insert(info.id, conn.clone());
    if let Some(hook) = &server.on_connect {
        hook(&info, &conn);
    }
    conn.closed().await;
    live.lock().remove(&info.id);
    if let Some(hook) = &server.on_disconnect {
        hook(&info, &conn);
    }
}

/// A running server. Dropping it stops accepting; open connections go on until closed.
pub struct ServerHandle {
    local: ListenAddr,
    stop: watch::Sender<bool>,
    live: Live,
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

    /// Connections currently open.
    pub fn connection_count(&self) -> usize {
        self.live.lock().len()
    }

    /// Handles of the connections currently open.
    pub fn connections(&self) -> Vec<Connection> {
        self.live.lock().values().cloned().collect()
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
        let conns = self.connections();
        let deadline = tokio::time::Instant::now() + grace;
        let drains = conns.iter().map(|c| c.drain(deadline));
        futures_util::future::join_all(drains).await;
        let closes = conns
            .iter()
            .map(|c| c.close_with("the server is shutting down".into()));
        futures_util::future::join_all(closes).await;
        self.live.lock().clear();
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
