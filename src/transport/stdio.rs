//! This process's stdin and stdout as a transport.

use std::sync::Arc;

use crate::config::Config;
use crate::connection::Connection;
use crate::error::Result;
use crate::object::Object;

/// Serves one connection over this process's stdin and stdout, lending `root` to the peer.
///
/// This is the far end of [`connect_command`](crate::connect_command): the parent spawns a
/// program (locally, or `ssh host netref serve --stdio` for a remote machine) and talks to it
/// over its pipes, so no port is opened and ssh does the authentication. The connection's
/// label defaults to `"stdio"`.
///
/// # Stdout is the wire
///
/// While the connection is open **nothing else may write to stdout**: no `println!`, no
/// logging to stdout, no child process inheriting it. A stray byte corrupts the stream and
/// the peer closes the connection with a protocol error. Send diagnostics to stderr (with
/// `tracing_subscriber`, `.with_writer(std::io::stderr)`); the parent's
/// [`connect_command`](crate::connect_command) lets the child's stderr through.
///
/// # Shutting down
///
/// The connection closes when the peer closes its end (stdin reaches end of file), says
/// goodbye, or [`Connection::close`] is called. Wait for it with [`Connection::closed`].
/// Tokio reads stdin on a blocking thread that cannot be interrupted, so a runtime dropped
/// while stdin is still open waits for the next input: after the connection closed for any
/// reason other than end of file, end the process with `std::process::exit` or shut the
/// runtime down with `Runtime::shutdown_timeout`.
///
/// # Example
///
/// ```no_run
/// use netref::{expose, Config, Obj};
/// struct Calc;
/// #[expose]
/// impl Calc {
///     /// Adds two numbers.
///     #[exposed]
///     fn add(&self, a: i64, b: i64) -> i64 { a + b }
/// }
///
/// # async fn demo() -> netref::Result<()> {
/// let conn = netref::serve_stdio(Config::default(), Some(Obj::new(Calc).erase())).await?;
/// conn.closed().await;
/// # Ok(()) }
/// ```
pub async fn serve_stdio(mut config: Config, root: Option<Arc<dyn Object>>) -> Result<Connection> {
    if config.label.is_none() {
        config.label = Some("stdio".into());
    }
    let config = config.with_role(crate::auth::Role::Acceptor);
    Connection::from_io(tokio::io::stdin(), tokio::io::stdout(), config, root).await
}
