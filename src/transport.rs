//! Transports: TCP, Unix sockets, this process's stdio, a child process's stdio, and an
//! in-memory pair.
//!
//! # Usage
//!
//! | transport | client side | serving side |
//! |---|---|---|
//! | TCP (with `TCP_NODELAY`) | [`connect`], [`connect_with`] | [`Server::bind`](crate::Server::bind) |
//! | Unix socket (Unix only) | `connect_unix`, `connect_unix_with` | a `UnixListener` + [`Connection::from_io`] |
//! | a child's stdin/stdout | [`connect_command`], [`connect_command_with`] | [`serve_stdio`] in the child |
//! | in-memory pipe | [`pair`], [`pair_with`] | (both ends) |
//!
//! Any `AsyncRead + AsyncWrite` pair works through [`Connection::from_io`]; these functions
//! cover the common cases. The connection is symmetric whatever the transport: either side
//! may lend a root and call the other's.
//!
//! # Object lifetimes
//!
//! A transport only carries bytes: everything said in [`Connection`]'s docs holds for each of
//! them. When the byte stream ends (the socket closes, the child process exits), the
//! connection closes and everything lent through it is freed.
//!
//! # Errors
//!
//! Connecting fails with [`Error::Io`](crate::Error::Io) when the transport cannot be opened
//! (no listener, no such program) and with a protocol error when the peer does not speak
//! netref's hello within [`Config::handshake_timeout`](crate::Config::handshake_timeout).
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (first, second) = netref::pair(None, None).await?;
//! assert_eq!(first.label(), "memory/first");
//! assert_eq!(second.label(), "memory/second");
//! # Ok::<(), netref::Error>(()) }).unwrap();
//! ```

mod command;
mod stdio;
#[cfg(unix)]
mod unix;

use std::sync::Arc;

use tokio::net::{TcpStream, ToSocketAddrs};

use crate::config::Config;
use crate::connection::Connection;
use crate::error::Result;
use crate::object::Object;

pub use command::{connect_command, connect_command_with, ChildConnection};
pub use stdio::serve_stdio;
#[cfg(unix)]
pub use unix::{connect_unix, connect_unix_with};

/// Connects to a netref server over TCP with the default [`Config`], lending no root.
///
/// ```no_run
/// # async fn demo() -> netref::Result<()> {
/// let conn = netref::connect("127.0.0.1:18861").await?;
/// let three = conn.root().call_method("add", (1, 2)).await?;
/// # Ok(()) }
/// ```
pub async fn connect(addr: impl ToSocketAddrs) -> Result<Connection> {
    connect_with(addr, Config::default(), None).await
}

/// Connects over TCP with `config`, lending `root` to the server (it may call back into it).
pub async fn connect_with(
    addr: impl ToSocketAddrs,
    config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<Connection> {
    let stream = TcpStream::connect(addr).await?;
    from_tcp(stream, config.with_role(crate::auth::Role::Initiator), root).await
}

pub(crate) async fn from_tcp(
    stream: TcpStream,
    mut config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<Connection> {
    stream.set_nodelay(true)?;
    if config.label.is_none() {
        if let Ok(peer) = stream.peer_addr() {
            config.label = Some(peer.to_string());
        }
    }
    let (r, w) = stream.into_split();
    Connection::from_io(r, w, config, root).await
}

/// Two connected ends in this process, over an in-memory pipe; each end lends the given
/// root. Returns `(first, second)`: `second.root()` reaches `first_root` and vice versa.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (a, b) = netref::pair(None, None).await.unwrap();
/// assert!(!a.is_closed() && !b.is_closed());
/// # });
/// ```
pub async fn pair(
    first_root: Option<Arc<dyn Object>>,
    second_root: Option<Arc<dyn Object>>,
) -> Result<(Connection, Connection)> {
    pair_with(Config::default(), first_root, second_root).await
}

/// [`pair`] with an explicit [`Config`] for both ends.
pub async fn pair_with(
    config: Config,
    first_root: Option<Arc<dyn Object>>,
    second_root: Option<Arc<dyn Object>>,
) -> Result<(Connection, Connection)> {
    const PIPE_BYTES: usize = 256 * 1024;
    let (x, y) = tokio::io::duplex(PIPE_BYTES);
    let (xr, xw) = tokio::io::split(x);
    let (yr, yw) = tokio::io::split(y);
    let label = |side: &str| {
        config
            .label
            .clone()
            .map(|l| format!("{l}/{side}"))
            .unwrap_or_else(|| format!("memory/{side}"))
    };
    let ca = config.clone().with_label(label("first"));
    let cb = config.clone().with_label(label("second"));
    let (a, b) = tokio::join!(
        Connection::from_io(xr, xw, ca, first_root),
        Connection::from_io(yr, yw, cb, second_root)
    );
    Ok((a?, b?))
}
