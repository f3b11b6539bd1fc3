//! Python peers for the RPyC tests: the venv (rpyc 6.0.2, installed on first use by
//! `scripts/rpyc-venv.sh`; a test fails, never skips, when it cannot be installed), Python
//! servers, and Python client scripts.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, installing rpyc 6.0.2 on first use.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(repo().join("scripts/rpyc-venv.sh"))
            .output()
            .expect("run scripts/rpyc-venv.sh");
        assert!(
            out.status.success(),
            "scripts/rpyc-venv.sh failed (python3 and the package index are needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8 path");
        PathBuf::from(text.lines().last().expect("a python path"))
    })
    .clone()
}

/// A Python process speaking line by line on stdin/stdout; killed when dropped.
pub struct PyProc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
}

impl PyProc {
    /// Starts `python tests/python/<script> args…` in `cwd` (default: the repo).
    pub fn start(script: &str, args: &[&str], cwd: Option<&std::path::Path>) -> PyProc {
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/python").join(script))
            .args(args)
            .current_dir(cwd.map_or_else(repo, |p| p.to_path_buf()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start python");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        PyProc {
            child,
            stdin,
            stdout,
        }
    }

    /// The next line of output (without its newline); panics at EOF.
    pub async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            self.stdout.read_line(&mut line),
        )
        .await
        .expect("python answered within 120 s")
        .expect("read python's stdout");
        assert!(n > 0, "python exited early");
        line.trim_end().to_owned()
    }

    /// Sends one line to the process.
    pub async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Waits for the process to end; panics unless it succeeded.
    pub async fn finish(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(std::time::Duration::from_secs(120), self.child.wait())
            .await
            .expect("python finished within 120 s")
            .unwrap();
        assert!(status.success(), "python failed: {status}");
    }
}

/// A Python RPyC server (`tests/python/rpyc_service.py MODE`) and its port.
pub struct PyServer {
    pub proc: PyProc,
    pub port: u16,
}

impl PyServer {
    /// Starts the test service (`"service"`) or rpyc_classic (`"classic"`).
    pub async fn start(mode: &str, cwd: Option<&std::path::Path>) -> PyServer {
        let mut proc = PyProc::start("rpyc_service.py", &[mode], cwd);
        let line = proc.line().await;
        let port = line
            .strip_prefix("LISTEN ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the python server: {line}"));
        PyServer { proc, port }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
