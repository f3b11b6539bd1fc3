//! TARGET: where `call` and `repl` connect, and the options every connection takes.
//!
//! # Forms
//!
//! | TARGET | means |
//! |---|---|
//! | `HOST:PORT`, `tcp://HOST:PORT`, `tcp:HOST:PORT` | TCP (TLS with `--tls-ca`) |
//! | `HOST`, `:PORT` | TCP with the default port 18861, or the default host 127.0.0.1 |
//! | `unix:PATH`, `unix://PATH` | a Unix socket |
//! | `nats://HOST:PORT/SERVICE` | an instance of SERVICE found in that NATS server's registry (the `nats` feature) |
//! | `cmd:PROGRAM [ARG...]`, or anything with a space | a command speaking netref on its stdio |
//! | `rpyc://HOST[:PORT]`, `rpycs://HOST[:PORT]` | Python RPyC 6's wire (TLS with `rpycs`, trusting `--tls-ca`); default port 18812 |
//!
//! A scheme (`NAME://`) is dispatched by one `match` in [`parse`] and one in [`connect`]: a
//! new transport is a [`Target`] variant and an arm in each.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use netref::{Config, Connection, Secret};

/// The port `netref serve` listens on by default, and a TARGET without a port reaches.
pub(crate) const DEFAULT_PORT: u16 = 18861;

/// The host a TARGET of only `:PORT` reaches.
pub(crate) const DEFAULT_HOST: &str = "127.0.0.1";

/// How long a command target's child gets to exit after its stdin closes, and again after
/// SIGTERM, before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(3);

/// Options for connecting to a TARGET.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ConnectOpts {
    /// A file holding the shared secret the server requires.
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Connect with TLS, trusting the CA certificates in this PEM file (TCP targets).
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// The name to verify the server's certificate against (default: the target's host).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub(crate) tls_name: Option<String>,
    /// The deadline of each call, in seconds, more than 0 and at most 86400 (default 30).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `HOST:PORT`, both always present.
    Tcp(String),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// A command (program and arguments) speaking netref on its stdio.
    Command(Vec<String>),
    /// A Python RPyC 6 server (`rpyc://`, or `rpycs://` with `tls`): `HOST:PORT`.
    Rpyc {
        /// `HOST:PORT`.
        addr: String,
        /// `rpycs://`: TLS.
        tls: bool,
    },
    /// `nats://HOST:PORT/SERVICE`: an instance of SERVICE found in the NATS registry.
    Nats {
        /// The NATS server, `nats://HOST:PORT`.
        url: String,
        /// The service name.
        service: String,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => f.write_str(a),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Command(argv) => write!(f, "`{}`", argv.join(" ")),
            Target::Rpyc { addr, tls } => {
                write!(f, "{}://{addr}", if *tls { "rpycs" } else { "rpyc" })
            }
            Target::Nats { url, service } => write!(f, "{url}/{service}"),
        }
    }
}

impl Target {
    /// True when a lost connection to it can be dialed again as it was: TCP (TLS too), a
    /// Unix socket, a NATS service. Not a command (a new child would start from nothing),
    /// nor `rpyc://` (a bridge of two connections).
    pub(crate) fn redialable(&self) -> bool {
        matches!(self, Target::Tcp(_) | Target::Unix(_) | Target::Nats { .. })
    }
}

/// The forms of a TARGET, for messages.
const FORMS: &str = "HOST[:PORT], tcp://HOST:PORT, unix:PATH, cmd:COMMAND, \
                     rpyc://HOST[:PORT], or nats://HOST:PORT/SERVICE";

/// Reads a TARGET (see the module docs for the forms).
pub(crate) fn parse(s: &str) -> Result<Target, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("empty TARGET: use {FORMS}"));
    }
    if let Some(command) = s.strip_prefix("cmd:") {
        return parse_command(command);
    }
    if let Some((scheme, rest)) = s.split_once("://") {
        if is_scheme(scheme) {
            return match scheme {
                "tcp" => parse_tcp(rest),
                "unix" => parse_unix(rest),
                "rpyc" | "rpycs" => parse_rpyc(rest, scheme == "rpycs"),
                "nats" => {
                    let (url, service) = parse_nats(s)?;
                    let service = service.ok_or_else(|| {
                        format!("`{s}` names no service: use nats://HOST:PORT/SERVICE")
                    })?;
                    Ok(Target::Nats { url, service })
                }
                _ => Err(format!(
                    "unknown scheme `{scheme}://` in TARGET `{s}`: use {FORMS}"
                )),
            };
        }
    }
    if let Some(path) = s.strip_prefix("unix:") {
        return parse_unix(path);
    }
    if let Some(addr) = s.strip_prefix("tcp:") {
        return parse_tcp(addr);
    }
    if s.contains(char::is_whitespace) {
        return parse_command(s);
    }
    parse_tcp(s)
}

/// True for the `NAME` of `NAME://`: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `HOST:PORT`, `HOST`, `:PORT`, `[V6]:PORT`, `[V6]` or a bare IPv6 address.
fn parse_tcp(addr: &str) -> Result<Target, String> {
    let bad_port =
        |p: &str| format!("bad port `{p}` in TARGET `{addr}`: a port is a number from 1 to 65535");
    let port = |p: &str| match p {
        "" => Ok(DEFAULT_PORT),
        p => match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad_port(p)),
            Ok(n) => Ok(n),
        },
    };
    if let Some(rest) = addr.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return Err(format!("unclosed `[` in TARGET `{addr}`"));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!(
                "`{ip}` is not an IPv6 address (in TARGET `{addr}`)"
            ));
        }
        let port = match after {
            "" => DEFAULT_PORT,
            _ => match after.strip_prefix(':') {
                Some(p) => port(p)?,
                None => return Err(bad_port(after)),
            },
        };
        return Ok(Target::Tcp(format!("[{ip}]:{port}")));
    }
    if addr.parse::<Ipv6Addr>().is_ok() {
        return Ok(Target::Tcp(format!("[{addr}]:{DEFAULT_PORT}")));
    }
    let (host, port) = match addr.rsplit_once(':') {
        Some((host, p)) => (host, port(p)?),
        None => (addr, DEFAULT_PORT),
    };
    let host = if host.is_empty() { DEFAULT_HOST } else { host };
    let name_like = !host.starts_with(['-', '.'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !name_like {
        return Err(format!(
            "`{addr}` is not a host or address; a command target is written `cmd:{addr}` \
             (TARGET is {FORMS})"
        ));
    }
    Ok(Target::Tcp(format!("{host}:{port}")))
}

/// `rpyc://HOST[:PORT]`: a TCP address whose default port is RPyC's.
fn parse_rpyc(addr: &str, tls: bool) -> Result<Target, String> {
    let port = netref::rpyc::DEFAULT_PORT;
    let with_port = match addr.rsplit_once(':') {
        _ if addr.parse::<Ipv6Addr>().is_ok() => format!("[{addr}]:{port}"),
        Some((_, p)) if !addr.ends_with(']') && p.parse::<u16>().is_ok() => addr.to_owned(),
        _ => format!("{addr}:{port}"),
    };
    match parse_tcp(&with_port)? {
        Target::Tcp(addr) => Ok(Target::Rpyc { addr, tls }),
        other => Err(format!("`{other}` is not an address for rpyc://")),
    }
}

fn parse_unix(path: &str) -> Result<Target, String> {
    if path.is_empty() {
        return Err("`unix:` needs a socket path".into());
    }
    Ok(Target::Unix(PathBuf::from(path)))
}

fn parse_command(command: &str) -> Result<Target, String> {
    let argv = split_command(command)?;
    if argv.is_empty() {
        return Err("`cmd:` needs a command".into());
    }
    Ok(Target::Command(argv))
}

/// Splits `nats://HOST:PORT[/SERVICE]` into the server's URL and the service, if any.
pub(crate) fn parse_nats(s: &str) -> Result<(String, Option<String>), String> {
    let rest = s
        .strip_prefix("nats://")
        .ok_or_else(|| format!("`{s}` is not a nats:// address"))?;
    let (server, service) = match rest.split_once('/') {
        Some((server, "")) => (server, None),
        Some((server, service)) => (server, Some(service.to_owned())),
        None => (rest, None),
    };
    if server.is_empty() || server.contains(char::is_whitespace) {
        return Err(format!("`{s}`: expected nats://HOST:PORT[/SERVICE]"));
    }
    Ok((format!("nats://{server}"), service))
}

/// Splits a command line on white space, honouring '…', "…" and backslash escapes.
fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' in the command".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err("unterminated \" in the command".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" in the command".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

impl ConnectOpts {
    /// The connection config these options ask for.
    pub(crate) fn config(&self) -> netref::Result<Config> {
        let mut config = Config::default();
        if let Some(path) = &self.secret_file {
            config = config.with_secret(Secret::from_file(path)?);
        }
        if let Some(timeout) = self.timeout {
            config = config.with_call_timeout(timeout);
        }
        Ok(config)
    }
}

/// `--timeout SECONDS`: checked while the command line is read, so a bad value is reported
/// as a bad flag, before anything connects.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
        _ => Err("the deadline is in seconds, more than 0 and at most 86400 (a day)".into()),
    }
}

/// A connection, with the child process behind it for command targets.
pub(crate) struct Attached {
    pub(crate) conn: Connection,
    /// Killed on drop; [`Attached::close`] asks it to stop first.
    child: Option<tokio::process::Child>,
    /// For `rpyc://`: the in-process end lending the Python root through
    /// [`netref::rpyc::Connection::bridge`], and the RPyC connection behind it.
    pub(crate) bridge: Option<(Connection, netref::rpyc::Connection)>,
}

impl Attached {
    fn plain(conn: Connection) -> Attached {
        Attached {
            conn,
            child: None,
            bridge: None,
        }
    }

    /// Closes the connection; a command target's child is then asked to stop, so it can
    /// clean up: its stdin is closed with the connection, after [`CHILD_GRACE`] it gets
    /// SIGTERM, and after another it is killed.
    pub(crate) async fn close(mut self) {
        self.conn.close().await;
        if let Some((peer, rpyc)) = self.bridge.take() {
            peer.close().await;
            rpyc.close().await;
        }
        if let Some(child) = self.child.take() {
            stop_child(child).await;
        }
    }
}

/// Waits for a child whose stdin is closed; then SIGTERM; then SIGKILL.
async fn stop_child(mut child: tokio::process::Child) {
    if exited(&mut child).await {
        return;
    }
    #[cfg(unix)]
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        use nix::sys::signal::{kill, Signal};
        tracing::debug!(pid, "the command target is still running: SIGTERM");
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
        if exited(&mut child).await {
            return;
        }
    }
    tracing::warn!("the command target did not stop: killing it");
    let _ = child.kill().await;
}

/// True when `child` exits within [`CHILD_GRACE`].
async fn exited(child: &mut tokio::process::Child) -> bool {
    matches!(
        tokio::time::timeout(CHILD_GRACE, child.wait()).await,
        Ok(Ok(_))
    )
}

/// Connects to `target`.
pub(crate) async fn connect(target: &Target, opts: &ConnectOpts) -> netref::Result<Attached> {
    let config = opts.config()?;
    if opts.tls_ca.is_some() && !matches!(target, Target::Tcp(_)) {
        return Err(netref::Error::Value(format!(
            "--tls-ca needs a TCP target, not {target}"
        )));
    }
    match target {
        Target::Tcp(addr) => connect_tcp(addr, opts, config).await.map(Attached::plain),
        Target::Unix(path) => connect_unix(path, config).await.map(Attached::plain),
        Target::Command(argv) => connect_command(argv, config).await,
        Target::Rpyc { addr, tls } => {
            // The Python root, lent through an in-process pair so netref's tools reach it.
            let rpyc = connect_rpyc(addr, *tls, opts).await?;
            let bridge = rpyc.bridge().await?;
            let quiet = Config::default().with_keepalive(None, Duration::from_secs(45));
            let (peer, conn) = netref::pair_with(quiet, Some(bridge), None).await?;
            // RPyC's own messages go to whatever traces the bridge (the REPL's `:trace`), in
            // place among the bridge's: a call, the requests it took, its return.
            let traced = conn.clone();
            rpyc.set_tracer(Some(std::sync::Arc::new(
                move |e: &netref::trace::TraceEvent| {
                    if let Some(t) = traced.tracer() {
                        t(e);
                    }
                },
            )));
            Ok(Attached {
                conn,
                child: None,
                bridge: Some((peer, rpyc)),
            })
        }
        Target::Nats { url, service } => connect_nats(url, service, config)
            .await
            .map(Attached::plain),
    }
}

/// Connects to a Python RPyC server (`rpyc://`, `rpycs://` with `--tls-ca`).
pub(crate) async fn connect_rpyc(
    addr: &str,
    tls: bool,
    opts: &ConnectOpts,
) -> netref::Result<netref::rpyc::Connection> {
    let config = opts.config()?;
    if config.secret.is_some() {
        return Err(netref::Error::Value(
            "RPyC's wire has no authentication: --secret-file does not apply to rpyc://".into(),
        ));
    }
    if !tls {
        if opts.tls_ca.is_some() {
            return Err(netref::Error::Value(
                "--tls-ca goes with rpycs://, RPyC over TLS".into(),
            ));
        }
        return netref::rpyc::connect_with(addr, config, None).await;
    }
    rpyc_tls(addr, opts, config).await
}

#[cfg(feature = "tls")]
async fn rpyc_tls(
    addr: &str,
    opts: &ConnectOpts,
    config: Config,
) -> netref::Result<netref::rpyc::Connection> {
    use netref::tls;
    let Some(ca) = &opts.tls_ca else {
        return Err(netref::Error::Value(
            "rpycs:// needs --tls-ca, the CA that signed the server's certificate".into(),
        ));
    };
    let pem = std::fs::read(ca).map_err(|e| {
        netref::Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", ca.display()),
        ))
    })?;
    let client = tls::TlsClientConfig::new(tls::certs_from_pem(&pem)?)?;
    let host = match opts.tls_name.as_deref() {
        Some(n) => n.to_owned(),
        None => addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    };
    netref::rpyc::connect_tls(addr, &host, &client, config).await
}

#[cfg(not(feature = "tls"))]
async fn rpyc_tls(
    _addr: &str,
    _opts: &ConnectOpts,
    _config: Config,
) -> netref::Result<netref::rpyc::Connection> {
    Err(netref::Error::Io(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "this netref was built without the `tls` feature",
    )))
}

async fn connect_tcp(addr: &str, opts: &ConnectOpts, config: Config) -> netref::Result<Connection> {
    match &opts.tls_ca {
        Some(ca) => connect_tls(addr, ca, opts.tls_name.as_deref(), config).await,
        None => netref::connect_with(addr, config, None).await,
    }
}

#[cfg(unix)]
async fn connect_unix(path: &std::path::Path, config: Config) -> netref::Result<Connection> {
    netref::connect_unix_with(path, config, None).await
}

#[cfg(not(unix))]
async fn connect_unix(_path: &std::path::Path, _config: Config) -> netref::Result<Connection> {
    Err(netref::Error::Io(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "unix sockets are not available on this platform",
    )))
}

async fn connect_command(argv: &[String], config: Config) -> netref::Result<Attached> {
    let Some((program, args)) = argv.split_first() else {
        return Err(netref::Error::Value("empty command".into()));
    };
    let child = netref::connect_command_with(program, args, config, None).await?;
    let (conn, child) = child.into_parts();
    Ok(Attached {
        conn,
        child: Some(child),
        bridge: None,
    })
}

/// Discovers `service` in the registry of the NATS server at `url` and connects directly.
#[cfg(feature = "nats")]
async fn connect_nats(url: &str, service: &str, config: Config) -> netref::Result<Connection> {
    use netref::nats;
    let nats = nats::Nats::connect(url).await?;
    nats::connect_service_with(&nats, service, nats::Pick::RoundRobin, config).await
}

#[cfg(not(feature = "nats"))]
async fn connect_nats(_url: &str, _service: &str, _config: Config) -> netref::Result<Connection> {
    Err(netref::Error::Io(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "this netref was built without the `nats` feature",
    )))
}

#[cfg(feature = "tls")]
async fn connect_tls(
    addr: &str,
    ca: &std::path::Path,
    name: Option<&str>,
    config: Config,
) -> netref::Result<Connection> {
    use netref::tls;
    let pem = std::fs::read(ca).map_err(|e| {
        netref::Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", ca.display()),
        ))
    })?;
    let client = tls::TlsClientConfig::new(tls::certs_from_pem(&pem)?)?;
    let host = match name {
        Some(n) => n.to_owned(),
        None => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        }
    };
    tls::connect(addr, &host, &client, config, None).await
}

#[cfg(not(feature = "tls"))]
async fn connect_tls(
    _addr: &str,
    _ca: &std::path::Path,
    _name: Option<&str>,
    _config: Config,
) -> netref::Result<Connection> {
    Err(netref::Error::Io(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "this netref was built without the `tls` feature",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> Result<Target, String> {
        Ok(Target::Tcp(s.into()))
    }

    #[test]
    fn tcp_targets() {
        assert_eq!(parse("127.0.0.1:18861"), tcp("127.0.0.1:18861"));
        assert_eq!(parse("localhost:1"), tcp("localhost:1"));
        assert_eq!(parse("[::1]:80"), tcp("[::1]:80"));
        assert_eq!(parse("tcp://host.example:9"), tcp("host.example:9"));
        assert_eq!(parse("tcp:host:9"), tcp("host:9"));
        // The defaults: port 18861, host 127.0.0.1.
        assert_eq!(parse("127.0.0.1"), tcp("127.0.0.1:18861"));
        assert_eq!(parse("lab1"), tcp("lab1:18861"));
        assert_eq!(parse(":9000"), tcp("127.0.0.1:9000"));
        assert_eq!(parse("tcp://[::1]"), tcp("[::1]:18861"));
        assert_eq!(parse("::1"), tcp("[::1]:18861"));
        assert!(parse("host:0").is_err());
        assert!(parse("host:99999").is_err());
        assert!(parse("host:http").is_err());
        assert!(parse("[::1").is_err());
        assert!(parse("[nope]:1").is_err());
    }

    #[test]
    fn other_targets() {
        assert_eq!(parse("unix:/tmp/s"), Ok(Target::Unix("/tmp/s".into())));
        assert_eq!(parse("unix:///tmp/s"), Ok(Target::Unix("/tmp/s".into())));
        assert_eq!(parse("unix:/tmp/a b"), Ok(Target::Unix("/tmp/a b".into())));
        assert_eq!(
            parse("ssh host 'netref serve' --stdio"),
            Ok(Target::Command(vec![
                "ssh".into(),
                "host".into(),
                "netref serve".into(),
                "--stdio".into()
            ]))
        );
        assert_eq!(
            parse("cmd:netref"),
            Ok(Target::Command(vec!["netref".into()]))
        );
        assert_eq!(
            parse("sh -c 'curl http://x'"),
            Ok(Target::Command(vec![
                "sh".into(),
                "-c".into(),
                "curl http://x".into()
            ]))
        );
        // A path is not a host: it names the `cmd:` form.
        let err = parse("./server").unwrap_err();
        assert!(err.contains("cmd:./server"), "{err}");
        let err = parse("http://x:1").unwrap_err();
        assert!(err.contains("unknown scheme `http://`"), "{err}");
        assert_eq!(
            parse("nats://127.0.0.1:4222/jobs.worker"),
            Ok(Target::Nats {
                url: "nats://127.0.0.1:4222".into(),
                service: "jobs.worker".into()
            })
        );
        assert!(parse("nats://127.0.0.1:4222").is_err());
        assert_eq!(parse_nats("nats://h:1/"), Ok(("nats://h:1".into(), None)));
        assert!(parse("unix:").is_err());
        assert!(parse("cmd:").is_err());
        assert!(parse("  ").is_err());
        assert!(parse("a 'b").is_err());
    }

    #[test]
    fn rpyc_targets() {
        let rpyc = |addr: &str, tls| {
            Ok(Target::Rpyc {
                addr: addr.into(),
                tls,
            })
        };
        assert_eq!(
            parse("rpyc://127.0.0.1:18812"),
            rpyc("127.0.0.1:18812", false)
        );
        assert_eq!(parse("rpyc://lab1"), rpyc("lab1:18812", false));
        assert_eq!(parse("rpycs://lab1:9"), rpyc("lab1:9", true));
        assert_eq!(parse("rpyc://[::1]"), rpyc("[::1]:18812", false));
        assert_eq!(parse("rpyc://::1"), rpyc("[::1]:18812", false));
        assert_eq!(parse("rpyc://[::1]:5"), rpyc("[::1]:5", false));
        assert!(parse("rpyc://host:0").is_err());
        assert!(parse("rpyc://a b").is_err());
        assert_eq!(parse("rpycs://h:1").unwrap().to_string(), "rpycs://h:1");
    }
}
