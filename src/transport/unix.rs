//! The Unix-domain socket client.

use std::path::Path;
use std::sync::Arc;

use tokio::net::UnixStream;

use crate::config::Config;
use crate::connection::Connection;
use crate::error::Result;
use crate::object::Object;

/// Connects to a netref server listening on the Unix socket at `path`, with the default
/// [`Config`] and no root. Unix only.
///
/// Use a Unix socket for a server on the same machine that file permissions should guard:
/// only users who may open the socket file can connect.
///
/// # Example
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use netref::{expose, Obj, Server};
/// struct Calc;
/// #[expose]
/// impl Calc {
///     /// Adds two numbers.
///     #[exposed]
///     fn add(&self, a: i64, b: i64) -> i64 { a + b }
/// }
///
/// let dir = std::env::temp_dir().join(format!("netref-doc-unix-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("calc.sock");
/// # let _ = std::fs::remove_file(&path);
/// let server = Server::with_root(Obj::new(Calc).erase()).bind_unix(&path)?;
///
/// let conn = netref::connect_unix(&path).await?;
/// let sum: i64 = conn.root().call_method("add", (2, 3)).decode().await?;
/// assert_eq!(sum, 5);
/// # conn.close().await;
/// # server.shutdown().await;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), netref::Error>(()) }).unwrap();
/// ```
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Connection> {
    connect_unix_with(path, Config::default(), None).await
}

/// Connects over the Unix socket at `path` with `config`, lending `root` to the server.
/// Unix only. The connection's label defaults to `unix:PATH`.
pub async fn connect_unix_with(
    path: impl AsRef<Path>,
    config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<Connection> {
    let stream = UnixStream::connect(path.as_ref()).await?;
    from_unix(stream, config.with_role(crate::auth::Role::Initiator), root).await
}

/// Runs the hello on a connected Unix stream. The label defaults to
/// `unix:PATH` with whichever end of the socket has a path.
pub(crate) async fn from_unix(
    stream: UnixStream,
    mut config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<Connection> {
    if config.label.is_none() {
        let named = |addr: std::io::Result<tokio::net::unix::SocketAddr>| {
            addr.ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
        };
        let label = named(stream.peer_addr())
            .or_else(|| named(stream.local_addr()))
            .unwrap_or_else(|| "unix".to_string());
        config.label = Some(label);
    }
    let (r, w) = stream.into_split();
    Connection::from_io(r, w, config, root).await
}
