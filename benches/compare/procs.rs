//! Child processes (the peers' servers and clients), RSS readings, and the machine
//! description.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Res<T> = std::result::Result<T, BoxError>;

/// A server in a child process. It prints `LISTEN <port>` first and exits when its standard
/// input closes, so it never outlives the harness; it is also killed when dropped.
pub(crate) struct ServerProc {
    _child: Child,
    _stdin: ChildStdin,
    pub(crate) port: u16,
    /// Its process id, to read its CPU time.
    pub(crate) pid: Option<u32>,
}

impl ServerProc {
    pub(crate) async fn spawn(mut cmd: Command) -> Res<ServerProc> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .map_err(|_| "the server printed no LISTEN line within 60 s")??
            .ok_or("the server exited before listening")?;
        let port = line
            .strip_prefix("LISTEN ")
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("unexpected first line from a server: {line:?}"))?;
        Ok(ServerProc {
            _child: child,
            _stdin: stdin,
            port,
            pid,
        })
    }
}

/// A client in a child process driven by JSON lines: one command in, one reply out.
pub(crate) struct LineClient {
    _child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl LineClient {
    pub(crate) fn spawn(mut cmd: Command) -> Res<LineClient> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        Ok(LineClient {
            _child: child,
            stdin,
            stdout,
        })
    }

    /// Its process id, to read its CPU time.
    pub(crate) fn pid(&self) -> Option<u32> {
        self._child.id()
    }

    pub(crate) async fn request(&mut self, cmd: &serde_json::Value) -> Res<serde_json::Value> {
        let mut line = serde_json::to_string(cmd)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let reply = self
            .stdout
            .next_line()
            .await?
            .ok_or("the client exited without replying")?;
        let reply: serde_json::Value = serde_json::from_str(&reply)?;
        if let Some(e) = reply.get("error") {
            return Err(format!("the client failed: {e}").into());
        }
        Ok(reply)
    }
}

/// This harness's own binary with `args`, for servers and clients in separate processes.
pub(crate) fn self_command(args: &[&str]) -> Res<Command> {
    // `/proc/self/exe` still names this very binary when cargo rebuilds the file meanwhile.
    let exe = Path::new("/proc/self/exe");
    let exe = if exe.exists() {
        exe.to_path_buf()
    } else {
        std::env::current_exe()?
    };
    let mut cmd = Command::new(exe);
    cmd.args(args);
    Ok(cmd)
}

/// Time on a CPU of every thread of process `pid` alive now, from the first field of each
/// thread's `/proc/PID/task/TID/schedstat` (nanoseconds, unlike `stat`'s 10 ms ticks).
/// Threads that have exited are not counted: the peers keep theirs for the whole run.
pub(crate) fn process_cpu(pid: u32) -> Option<Duration> {
    let mut ns = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        // A thread that ends between the listing and the read is skipped.
        if let Some(t) = schedstat_ns(&task.ok()?.path().join("schedstat")) {
            ns += t;
        }
    }
    Some(Duration::from_nanos(ns))
}

/// Time on a CPU of the calling thread (`/proc/thread-self/schedstat`).
pub(crate) fn thread_cpu() -> Option<Duration> {
    schedstat_ns(Path::new("/proc/thread-self/schedstat")).map(Duration::from_nanos)
}

fn schedstat_ns(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident set size of this process, in bytes (`VmRSS` of `/proc/self/status`).
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The repository root (where `Cargo.toml` is).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the benchmark virtualenv, if `scripts/bench-prepare.sh` made it.
pub(crate) fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("NETREF_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/bench-venv"));
    let py = venv.join("bin/python");
    let ok = std::process::Command::new(&py)
        .args([
            "-c",
            "import rpyc, sys; sys.exit(rpyc.__version__ != '6.0.2')",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// What the report says about the machine and the toolchain.
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) memory: String,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) python: Option<String>,
    pub(crate) commit: String,
    pub(crate) date: String,
    /// `/proc/loadavg`'s 1-, 5- and 15-minute load averages when the run started.
    pub(crate) load_start: String,
}

impl Machine {
    pub(crate) fn describe(python: Option<&Path>) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or_else(
                || "unknown".to_owned(),
                |kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0),
            );
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        let root = repo_root();
        let root = root.to_string_lossy();
        let commit = command_line("git", &["-C", &root, "rev-parse", "--short", "HEAD"])
            .map(|c| {
                let dirty = command_line("git", &["-C", &root, "status", "--porcelain"]).is_some();
                if dirty {
                    format!("{c} (with uncommitted changes)")
                } else {
                    c
                }
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory,
            kernel,
            rustc: command_line("rustc", &["-V"]).unwrap_or_else(|| "unknown".to_owned()),
            python: python.and_then(|p| {
                let py = p.to_string_lossy();
                command_line(&py, &["-c", "import sys, rpyc; print('Python', sys.version.split()[0], '+ rpyc', rpyc.__version__)"])
            }),
            commit,
            date: command_line("date", &["-u", "+%Y-%m-%d"]).unwrap_or_else(|| "unknown".to_owned()),
            load_start: load_average(),
        }
    }
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` gives them.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// This process's nice value (field 19 of `/proc/self/stat`).
pub(crate) fn niceness() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(16)?.parse().ok()
}
