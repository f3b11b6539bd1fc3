//! A child process's stdin and stdout as a transport.

use std::ffi::OsStr;
use std::ops::Deref;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::config::Config;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::object::Object;

/// How long a child whose output ended during the hello gets to report its exit status.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Spawns `program` with `args` and connects to it over its stdin and stdout, with the
/// default [`Config`] and no root.
///
/// The program must speak netref on its stdio, as [`serve_stdio`](crate::serve_stdio) (and
/// `netref serve --stdio`) does. Its stderr is inherited, so its diagnostics show up in this
/// process's stderr. Through ssh this reaches another machine without opening a port:
/// `connect_command("ssh", ["host", "netref", "serve", "--stdio"])`.
///
/// # Object lifetimes
///
/// The returned [`ChildConnection`] owns the child process and kills it when dropped. When the
/// child exits, its stdout ends and the connection closes; closing the connection closes the
/// child's stdin, which ends a well-behaved server.
///
/// # Errors
///
/// [`Error::Io`] when the program cannot be started; [`Error::Disconnected`] naming the exit
/// status when the child exits before the hello completes; a protocol error when it writes
/// something other than a netref hello (the child is then killed).
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> netref::Result<()> {
/// let mut remote = netref::connect_command("ssh", ["lab1", "netref", "serve", "--stdio"]).await?;
/// let sum: i64 = remote.root().call_method("add", (1, 2)).decode().await?;
/// remote.close().await; // closes the child's stdin: the server exits
/// let status = remote.wait().await?;
/// # Ok(()) }
/// ```
pub async fn connect_command<I, S>(program: impl AsRef<OsStr>, args: I) -> Result<ChildConnection>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    connect_command_with(program, args, Config::default(), None).await
}

/// [`connect_command`] with an explicit [`Config`], lending `root` to the child (it may call
/// back into it).
pub async fn connect_command_with<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
    config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<ChildConnection>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = std::process::Command::new(program);
    command.args(args);
    ChildConnection::spawn(command, config, root).await
}

/// A connection to a child process over its stdin and stdout, owning the process.
///
/// Dereferences to the [`Connection`], so `child.root()` and `child.close()` work directly.
/// Made by [`connect_command`], [`connect_command_with`] or [`ChildConnection::spawn`].
///
/// # Object lifetimes
///
/// The child is killed when this value is dropped (other [`Connection`] handles cloned from
/// it then see the connection close). To let it finish on its own terms, call
/// [`Connection::close`] and then [`ChildConnection::wait`]; [`ChildConnection::into_parts`]
/// takes the process out of this value's care.
#[derive(Debug)]
pub struct ChildConnection {
    conn: Connection,
    child: Child,
}

impl ChildConnection {
    /// Spawns `command` with piped stdin and stdout and runs the hello over them, lending
    /// `root`. Stderr, the environment and the working directory are as `command` sets them
    /// (stderr is inherited by default). The label defaults to `PROGRAM[PID]`.
    ///
    /// # Errors
    ///
    /// As for [`connect_command`].
    pub async fn spawn(
        command: std::process::Command,
        mut config: Config,
        root: Option<Arc<dyn Object>>,
    ) -> Result<ChildConnection> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut command = Command::from(command);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot start `{program}`: {e}"),
            ))
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::Io(std::io::Error::other(format!(
                "`{program}` was started without pipes"
            ))));
        };
        if config.label.is_none() {
            let name = std::path::Path::new(&program)
                .file_name()
                .map_or_else(|| program.clone(), |n| n.to_string_lossy().into_owned());
            config.label = Some(match child.id() {
                Some(pid) => format!("{name}[{pid}]"),
                None => name,
            });
        }
        let config = config.with_role(crate::auth::Role::Initiator);
        match Connection::from_io(stdout, stdin, config, root).await {
            Ok(conn) => Ok(ChildConnection { conn, child }),
            Err(e) => Err(hello_failed(&program, &mut child, e).await),
        }
    }

    /// The connection (also reachable through `Deref`).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The child's process id, while it has not been waited for.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until the child exits and returns its status. The connection is not closed
    /// first: call [`Connection::close`] before this to ask a well-behaved child to exit.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        Ok(self.child.wait().await?)
    }

    /// The child's exit status if it has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Kills the child and waits until it is gone; the connection then closes.
    pub async fn kill(&mut self) -> Result<()> {
        Ok(self.child.kill().await?)
    }

    /// Splits into the connection and the child process, which is still killed when its
    /// `Child` is dropped.
    pub fn into_parts(self) -> (Connection, Child) {
        (self.conn, self.child)
    }
}

impl Deref for ChildConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// The error of a failed hello with a child: names the exit status when the child ended,
/// and kills a child that is still running. A child that answered something other than a
/// hello fails with a protocol error whether or not it has exited by then.
async fn hello_failed(program: &str, child: &mut Child, err: Error) -> Error {
    // Its output ended (or a pipe broke): it is probably exiting, so give it a moment to
    // report a status. Otherwise it answered with something else than a hello: stop it.
    let ended = matches!(err, Error::Io(_));
    let status = if ended {
        match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => None,
        }
    } else {
        child.try_wait().ok().flatten()
    };
    match (status, err) {
        // It answered something other than a hello and has exited since: what it answered
        // is the error, whichever came first.
        (Some(status), Error::Protocol(msg)) => {
            Error::Protocol(format!("{msg} (`{program}` has exited: {status})"))
        }
        (Some(status), err) => Error::Disconnected(format!(
            "`{program}` exited ({status}) before completing the hello: {err}"
        )),
        (None, err) => {
            // Kill and reap, so no zombie is left behind.
            let _ = child.kill().await;
            err
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that answered garbage may have exited by the time the hello's error is
    /// looked at, or not: the error is a protocol error either way.
    #[tokio::test]
    async fn a_garbage_answer_is_a_protocol_error_even_once_the_child_has_exited() {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        child.wait().await.unwrap();
        let bad = Error::Protocol("bad magic: the peer does not speak netref".into());
        let err = hello_failed("sh", &mut child, bad).await;
        assert_eq!(err.kind(), crate::ErrorKind::Protocol, "{err}");
        assert!(err.to_string().contains("bad magic"), "{err}");
        assert!(err.to_string().contains("exit status: 3"), "{err}");
        // A child whose output ended is one that went away.
        let ended = Error::Io(std::io::ErrorKind::UnexpectedEof.into());
        let err = hello_failed("sh", &mut child, ended).await;
        assert_eq!(err.kind(), crate::ErrorKind::Disconnected, "{err}");
    }
}
