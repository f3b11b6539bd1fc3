//! Helpers for the tests that drive the real `netref` binary: bounded runs, servers on
//! ephemeral loopback ports, and children that are killed when the test ends.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[cfg(unix)]
pub mod pty;

/// The binary under test.
pub const NETREF: &str = env!("CARGO_BIN_EXE_netref");

/// How long any one run may take before it is killed and the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished run printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `netref ARGS` with `stdin` piped in, bounded by [`RUN_TIMEOUT`].
pub fn run(args: &[&str], stdin: &str) -> Output {
    run_with(args, stdin, &[])
}

/// [`run`] with more environment variables.
pub fn run_with(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(NETREF)
        .args(args)
        .env_remove("NETREF_LOG")
        .envs(env.iter().copied())
        .env("NETREF_HISTORY", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netref");
    let mut input = child.stdin.take().expect("piped stdin");
    let text = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
        // Dropping `input` closes it: the REPL sees the end of its input.
    });
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let status = wait_bounded(&mut child, &format!("netref {args:?}"));
    let _ = writer.join();
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Waits for `child` to exit, for at most [`RUN_TIMEOUT`]; kills it and fails after that.
pub fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

/// A child process killed (and reaped) when dropped, with a directory removed then.
pub struct Guard(pub Child, pub Option<PathBuf>);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(dir) = &self.1 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A fresh directory for one server's `files` (a killed server cannot clean up its own).
fn sandbox() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("netref-test-sandbox-{}-{n}", std::process::id()))
}

/// Starts `netref serve ARGS` and waits (bounded) until it says where it listens; returns
/// the guard and that address (`127.0.0.1:PORT` or `unix:PATH`).
pub fn serve(args: &[&str]) -> (Guard, String) {
    let dir = sandbox();
    let mut full = args.to_vec();
    full.extend(["--sandbox", dir.to_str().expect("utf-8 temp path")]);
    let (mut guard, addr, _) = serve_own_sandbox(&full);
    guard.1 = Some(dir);
    (guard, addr)
}

/// [`serve`] without `--sandbox`: the server makes (and should remove) its own. Returns the
/// guard (which removes nothing), the address and the sandbox directory the server named.
pub fn serve_own_sandbox(args: &[&str]) -> (Guard, String, PathBuf) {
    let mut child = Command::new(NETREF)
        .arg("serve")
        .args(args)
        .env_remove("NETREF_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netref serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let guard = Guard(child, None);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                let files = rest.split("files in ").nth(1).unwrap_or("");
                let files = files.split(");").next().unwrap_or("").to_owned();
                let _ = tx.send((addr, PathBuf::from(files)));
            }
            // Keep draining so the server never blocks on a full pipe.
        }
    });
    let (addr, files) = rx
        .recv_timeout(RUN_TIMEOUT)
        .expect("netref serve says where it listens");
    (guard, addr, files)
}

/// A fresh empty directory for one test, named after `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netref-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// A loopback port nobody listens on (bound, then released).
pub fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = l.local_addr().expect("local addr");
    drop(l);
    addr.to_string()
}
