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
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
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
        }
    }

    /// Sets the configuration of every accepted connection.
    pub fn config(mut self, config: Config) -> Server {
        self.config = config;
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

    /// Starts accepting on an existing listener.
    pub fn serve(self, listener: TcpListener) -> Result<ServerHandle> {
        let local_addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let live: Live = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn(accept_loop(self, listener, stop_rx, live.clone()));
        Ok(ServerHandle {
            local_addr,
            stop: stop_tx,
            live,
            task: Mutex::new(Some(task)),
        })
    }
}

type Live = Arc<Mutex<HashMap<u64, Connection>>>;

async fn accept_loop(
    server: Server,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    live: Live,
) {
    let next = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let info = ConnectionInfo {
            id: next.fetch_add(1, Ordering::Relaxed),
            peer: Some(peer),
        };
        tokio::spawn(serve_one(server.clone(), stream, info, live.clone()));
    }
}

async fn serve_one(
    server: Server,
    stream: tokio::net::TcpStream,
    info: ConnectionInfo,
    live: Live,
) {
    let root = server.factory.as_ref().map(|f| f(&info));
    let conn = match from_tcp(stream, server.config.clone(), root).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(peer = ?info.peer, error = %e, "handshake failed");
            return;
        }
    };
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

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    live: Live,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl ServerHandle {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections currently open.
    pub fn connection_count(&self) -> usize {
        self.live.lock().len()
    }

    /// Handles of the connections currently open.
    pub fn connections(&self) -> Vec<Connection> {
        self.live.lock().values().cloned().collect()
    }

    /// Stops accepting, closes every connection and waits until they are gone.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let conns = self.connections();
        for c in &conns {
            c.close().await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
