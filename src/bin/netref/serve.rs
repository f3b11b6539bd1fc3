//! `netref serve`: lend the lab.
//!
//! Ctrl-C (SIGINT) or SIGTERM stops it gracefully: no new connections or calls, the calls in
//! flight get [`GRACE`] to finish, then every connection is closed with a goodbye (a second
//! signal skips the wait). On every exit it removes what it made: the Unix socket file and
//! the temporary sandbox directory (not a `--sandbox DIR` it was given). A socket file
//! left by a server that was killed is replaced; one still in use is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use netref::lab::{Lab, LabOptions};
use netref::{Config, Secret, Server};

/// The default address: loopback only.
const DEFAULT_LISTEN: &str = "127.0.0.1:18861";

/// The default address with `--rpyc`: loopback, RPyC's port.
const DEFAULT_LISTEN_RPYC: &str = "127.0.0.1:18812";

/// How long calls in flight may finish after Ctrl-C or SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The TCP address to listen on [default: 127.0.0.1:18861]; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["unix", "stdio"])]
    listen: Option<String>,
    /// Listen on a Unix socket at PATH instead.
    #[arg(long, value_name = "PATH", conflicts_with = "stdio")]
    unix: Option<PathBuf>,
    /// Serve one connection on this process's stdin and stdout (for `ssh host netref serve
    /// --stdio`), then exit.
    #[arg(long)]
    stdio: bool,
    /// Require clients to prove they know the secret in FILE.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Add `exec(command, on_line)`, which runs commands on this machine for any client.
    #[arg(long)]
    allow_exec: bool,
    /// The directory `files` works in [default: a fresh temporary directory].
    #[arg(long, value_name = "DIR")]
    sandbox: Option<PathBuf>,
    /// Serve TLS with the certificate chain in this PEM file (with --tls-key; TCP only).
    #[arg(long, value_name = "FILE", requires = "tls_key", conflicts_with_all = ["unix", "stdio"])]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, a PEM file.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Speak Python RPyC 6's wire, for Python's `rpyc.connect(host, port)` [default
    /// address: 127.0.0.1:18812]. RPyC has no authentication: an address other machines can
    /// reach needs --tls-cert (Python's `rpyc.ssl_connect`).
    #[arg(long, conflicts_with_all = ["stdio", "secret_file"])]
    rpyc: bool,
    /// Register in the NATS registry at URL (nats://HOST:PORT) under --name, and serve value
    /// calls to that name from NATS (request, cast, fanout).
    #[arg(long, value_name = "URL", requires = "name", conflicts_with = "stdio")]
    nats: Option<String>,
    /// The service name to register under (with --nats), for example `jobs.worker`.
    #[arg(long, value_name = "SERVICE", requires = "nats")]
    name: Option<String>,
    /// The address to announce in the registry [default: the one listened on].
    #[arg(long, value_name = "HOST:PORT", requires = "nats")]
    advertise: Option<String>,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("netref serve: {message}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    // Before anything that must be cleaned up: from here a signal is ours to handle.
    let mut signals = StopSignals::install()?;
    let mut config = Config::default();
    if let Some(path) = &args.secret_file {
        config = config.with_secret(Secret::from_file(path).map_err(|e| e.to_string())?);
    }
    let default_listen = if args.rpyc {
        DEFAULT_LISTEN_RPYC
    } else {
        DEFAULT_LISTEN
    };
    let listen = args.listen.as_deref().unwrap_or(default_listen);
    if args.rpyc && args.unix.is_none() && args.tls_cert.is_none() && !loopback_only(listen).await?
    {
        return Err(format!(
            "refusing to serve RPyC, which has no authentication, on {listen}, which is not a \
             loopback address, without --tls-cert"
        ));
    }
    if args.allow_exec && args.unix.is_none() && !args.stdio {
        // Running commands for anyone who can reach the port: only on loopback, or with
        // a secret.
        let loopback = loopback_only(listen).await?;
        if !loopback && args.secret_file.is_none() {
            return Err(format!(
                "refusing --allow-exec on {listen}, which is not a loopback address, without \
                 --secret-file"
            ));
        }
    }
    let mut options = LabOptions::default().allow_exec(args.allow_exec);
    if let Some(dir) = &args.sandbox {
        options = options.sandbox(dir);
    }
    let lab = Lab::new(options).map_err(|e| format!("cannot create the sandbox: {e}"))?;
    // A sandbox we made is removed here, not by the lab's own `Drop`: a call still in flight
    // at exit keeps the lab alive.
    let _sandbox = args
        .sandbox
        .is_none()
        .then(|| RemoveOnDrop::Dir(lab.sandbox().to_path_buf()));
    let sandbox = lab.sandbox().display().to_string();
    let root = lab.into_root();

    if args.stdio {
        // A signal during the hello stops it too (not only once a peer has said hello).
        let conn = tokio::select! {
            conn = netref::serve_stdio(config, Some(root)) => conn.map_err(|e| e.to_string())?,
            signal = signals.recv() => {
                tracing::info!("{signal} during the hello: stopping");
                return Ok(());
            }
        };
        tracing::info!(%sandbox, "serving the lab on stdio");
        tokio::select! {
            _ = conn.closed() => {}
            signal = signals.recv() => {
                tracing::info!("{signal}: stopping");
                let drain = conn.drain(tokio::time::Instant::now() + GRACE);
                tokio::select! {
                    _ = drain => {}
                    _ = signals.recv() => {}
                }
                conn.close_with("the server is shutting down".into()).await;
            }
        }
        return Ok(());
    }

    let mut server = Server::with_root(root.clone()).config(config);
    if args.rpyc {
        server = server.rpyc();
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        #[cfg(feature = "tls")]
        (Some(cert), Some(key)) => {
            server = server.tls(tls::acceptor(cert, key)?);
            true
        }
        #[cfg(not(feature = "tls"))]
        (Some(_), Some(_)) => {
            return Err("this netref was built without the `tls` feature".into());
        }
        _ => false,
    };
    let mut _socket: Option<RemoveOnDrop> = None;
    let handle = match &args.unix {
        #[cfg(unix)]
        Some(path) => {
            remove_stale_socket(path);
            let handle = server
                .bind_unix(path)
                .map_err(|e| format!("cannot listen on unix:{}: {e}", path.display()))?;
            _socket = Some(RemoveOnDrop::File(path.clone()));
            handle
        }
        #[cfg(not(unix))]
        Some(_) => return Err("unix sockets are not available on this platform".into()),
        None => server
            .bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?,
    };
    let addr = handle.listen_addr().clone();
    if let netref::ListenAddr::Tcp(a) = &addr {
        warn_if_public(*a, args.secret_file.is_some());
    }
    eprintln!(
        "netref serve: listening on {addr} ({}{}the lab{}; files in {sandbox}); Ctrl-C stops",
        if args.rpyc {
            "Python RPyC's wire; "
        } else {
            ""
        },
        if tls { "TLS; " } else { "" },
        if args.allow_exec { ", with exec" } else { "" }
    );
    let registered = match (&args.nats, &args.name) {
        (Some(url), Some(name)) => {
            Some(nats::register(url, name, args.advertise.as_deref(), &handle, root).await?)
        }
        _ => None,
    };
    let signal = signals.recv().await;
    eprintln!("netref serve: {signal}: stopping");
    // Leave the registry and the queue group first: no new client should pick us.
    nats::deregister(registered).await;
    tokio::select! {
        _ = handle.shutdown_graceful(GRACE) => {}
        signal = signals.recv() => {
            eprintln!("netref serve: {signal} again: stopping now");
            handle.shutdown().await;
        }
    }
    Ok(())
}

/// Removes the socket file at `path` when nobody listens on it any more (a server that was
/// killed could not remove its own), so binding there works again. A live socket, or
/// anything that is not a socket, is left for the bind to refuse.
#[cfg(unix)]
fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if !is_socket {
        return;
    }
    if let Err(e) = std::os::unix::net::UnixStream::connect(path) {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            tracing::info!(path = %path.display(), "removing a stale socket");
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The signals that stop the server, installed once so none is missed between two waits.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<StopSignals, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install = |kind| signal(kind).map_err(|e| format!("cannot handle signals: {e}"));
            Ok(StopSignals {
                interrupt: install(SignalKind::interrupt())?,
                terminate: install(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// Waits for the next stop signal and names it.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "interrupted",
                _ = self.terminate.recv() => "terminated",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "interrupted"
        }
    }
}

/// A file or directory this process made, removed when it exits (by any path but a kill).
enum RemoveOnDrop {
    File(PathBuf),
    Dir(PathBuf),
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let (path, removed): (&Path, _) = match self {
            RemoveOnDrop::File(p) => (p, std::fs::remove_file(&*p)),
            RemoveOnDrop::Dir(p) => (p, std::fs::remove_dir_all(&*p)),
        };
        if let Err(e) = removed {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("netref serve: cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Says so when `addr` can be reached from other machines.
fn warn_if_public(addr: SocketAddr, secret: bool) {
    if !addr.ip().is_loopback() {
        eprintln!(
            "netref serve: warning: {addr} is reachable from other machines; anyone who can \
             reach it can use the lab{}",
            if secret {
                " if they know the secret"
            } else {
                " (add --secret-file)"
            }
        );
    }
}

/// True when every address `listen` resolves to is a loopback address.
async fn loopback_only(listen: &str) -> Result<bool, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| format!("cannot resolve {listen}: {e}"))?
        .collect();
    Ok(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()))
}

/// `--nats`: the registry entry and the value-call worker, kept until the server stops.
#[cfg(feature = "nats")]
mod nats {
    use std::sync::Arc;

    use netref::nats::{self, Nats, RegisterOptions, Registration, Worker};
    use netref::{Object, ServerHandle};

    pub(super) async fn register(
        url: &str,
        name: &str,
        advertise: Option<&str>,
        server: &ServerHandle,
        root: Arc<dyn Object>,
    ) -> Result<(Registration, Worker), String> {
        let client = Nats::connect(url).await.map_err(|e| e.to_string())?;
        let mut options = RegisterOptions::default()
            .version(env!("CARGO_PKG_VERSION"))
            .meta("program", "netref serve")
            .meta("pid", std::process::id().to_string());
        if let Some(addr) = advertise {
            options = options.advertise(addr);
        }
        let registration = nats::register_with(&client, name, server, options)
            .await
            .map_err(|e| format!("cannot register `{name}` on {url}: {e}"))?;
        let worker = registration
            .serve(root)
            .await
            .map_err(|e| format!("cannot serve `{name}` on {url}: {e}"))?;
        eprintln!(
            "netref serve: registered as `{name}` (instance {}) on {url}",
            registration.id()
        );
        Ok((registration, worker))
    }

    /// Leaves the registry and the queue group before the server stops.
    pub(super) async fn deregister(registered: Option<(Registration, Worker)>) {
        if let Some((registration, worker)) = registered {
            worker.stop().await;
            registration.deregister().await;
        }
    }
}

#[cfg(not(feature = "nats"))]
mod nats {
    /// Never made: registering fails without the feature.
    pub(super) struct Registered;

    pub(super) async fn register(
        _url: &str,
        _name: &str,
        _advertise: Option<&str>,
        _server: &netref::ServerHandle,
        _root: std::sync::Arc<dyn netref::Object>,
    ) -> Result<Registered, String> {
        Err("this netref was built without the `nats` feature".into())
    }

    pub(super) async fn deregister(_registered: Option<Registered>) {}
}

/// TLS: the acceptor for `Server::tls` from the PEM files.
#[cfg(feature = "tls")]
mod tls {
    use std::path::Path;

    use netref::tls::{self, TlsAcceptor};

    fn read(path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    pub(super) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
        let chain = tls::certs_from_pem(&read(cert)?).map_err(|e| e.to_string())?;
        let key = tls::key_from_pem(&read(key)?).map_err(|e| e.to_string())?;
        TlsAcceptor::new(chain, key).map_err(|e| e.to_string())
    }
}
