//! TARGET: where `call` and `repl` connect, and the options every connection takes.

use std::path::PathBuf;
use std::time::Duration;

use netref::{Config, Connection, Secret};

/// Options for connecting to a TARGET.
#[derive(Debug, Clone, clap::Args)]
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
    /// The deadline of each call, in seconds (default 30).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<f64>,
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `HOST:PORT`.
    Tcp(String),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// A command (program and arguments) speaking netref on its stdio.
    Command(Vec<String>),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => f.write_str(a),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Command(argv) => write!(f, "`{}`", argv.join(" ")),
        }
    }
}

/// Reads a TARGET: `unix:PATH`, `tcp:HOST:PORT`, `HOST:PORT`, or else a command line.
pub(crate) fn parse(s: &str) -> Result<Target, String> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("`unix:` needs a socket path".into());
        }
        return Ok(Target::Unix(PathBuf::from(path)));
    }
    if let Some(addr) = s.strip_prefix("tcp:") {
        return Ok(Target::Tcp(addr.to_owned()));
    }
    let looks_like_addr = !s.contains(char::is_whitespace)
        && s.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if looks_like_addr {
        return Ok(Target::Tcp(s.to_owned()));
    }
    let argv = split_command(s)?;
    if argv.is_empty() {
        return Err("empty TARGET".into());
    }
    Ok(Target::Command(argv))
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
        if let Some(secs) = self.timeout {
            if !(secs > 0.0 && secs.is_finite() && secs <= 86_400.0) {
                return Err(netref::Error::Value(
                    "--timeout takes seconds between 0 and 86400".into(),
                ));
            }
            config = config.with_call_timeout(Duration::from_secs_f64(secs));
        }
        Ok(config)
    }
}

/// A connection, with the child process behind it for command targets (killed on drop).
pub(crate) struct Attached {
    pub(crate) conn: Connection,
    _child: Option<tokio::process::Child>,
}

/// Connects to `target`.
pub(crate) async fn connect(target: &Target, opts: &ConnectOpts) -> netref::Result<Attached> {
    let config = opts.config()?;
    let (conn, child) = match target {
        Target::Tcp(addr) => match &opts.tls_ca {
            Some(ca) => (
                connect_tls(addr, ca, opts.tls_name.as_deref(), config).await?,
                None,
            ),
            None => (
                netref::connect_with(addr.as_str(), config, None).await?,
                None,
            ),
        },
        #[cfg(unix)]
        Target::Unix(path) => (netref::connect_unix_with(path, config, None).await?, None),
        #[cfg(not(unix))]
        Target::Unix(_) => {
            return Err(netref::Error::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "unix sockets are not available on this platform",
            )))
        }
        Target::Command(argv) => {
            let Some((program, args)) = argv.split_first() else {
                return Err(netref::Error::Value("empty command".into()));
            };
            let child = netref::connect_command_with(program, args, config, None).await?;
            let (conn, child) = child.into_parts();
            (conn, Some(child))
        }
    };
    Ok(Attached {
        conn,
        _child: child,
    })
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

    #[test]
    fn targets() {
        assert_eq!(
            parse("127.0.0.1:18861"),
            Ok(Target::Tcp("127.0.0.1:18861".into()))
        );
        assert_eq!(parse("localhost:1"), Ok(Target::Tcp("localhost:1".into())));
        assert_eq!(parse("[::1]:80"), Ok(Target::Tcp("[::1]:80".into())));
        assert_eq!(parse("unix:/tmp/s"), Ok(Target::Unix("/tmp/s".into())));
        assert_eq!(
            parse("ssh host 'netref serve' --stdio"),
            Ok(Target::Command(vec![
                "ssh".into(),
                "host".into(),
                "netref serve".into(),
                "--stdio".into()
            ]))
        );
        assert_eq!(parse("netref"), Ok(Target::Command(vec!["netref".into()])));
        assert!(parse("unix:").is_err());
        assert!(parse("  ").is_err());
        assert!(parse("a 'b").is_err());
    }
}
