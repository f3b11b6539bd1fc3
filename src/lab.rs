//! The lab: a demo root object for the REPL, the tutorial and tests.
//!
//! # Usage
//!
//! `netref serve` lends a lab on `127.0.0.1:18861`, and `netref repl` with no target starts
//! one in-process and attaches to it (`cargo run -- serve` and `cargo run -- repl` in a
//! netref checkout; `cargo install --path .` puts `netref` on the `PATH`). In your own
//! program, build one with [`Lab::new`] and lend [`Lab::into_root`]:
//!
//! ```
//! use netref::lab::{Lab, LabOptions};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let lab = Lab::new(LabOptions::default()).unwrap();
//! let counter = lab.counter();
//! let (_server, client) = netref::pair(Some(lab.into_root()), None).await.unwrap();
//! let root = client.root();
//!
//! assert_eq!(root.call_method("add", (1, 2)).await.unwrap().as_i64(), Some(3));
//! root.attr("counter").attr("step").set(5).await.unwrap();
//! root.attr("counter").call_method("inc", ()).await.unwrap();
//! assert_eq!(counter.current(), 5);
//! # });
//! ```
//!
//! # Members
//!
//! | member | what it shows |
//! |---|---|
//! | `echo(x)`, `add(a, b)` | values travel by value |
//! | `fail(message)` | how a remote error looks |
//! | `counter` | an object by reference: `inc()`, read-only `value`, settable `step` |
//! | `kv` | a shared [`Map`] |
//! | `sleep(seconds)` | deadlines and cancellation (Ctrl-C in the REPL) |
//! | `time_left()`, `work(seconds)` | the deadline travels with the call; work that cannot finish in time is refused |
//! | `every(n, callback)` | callbacks: calls `callback(i)` for `i` in `0..n` |
//! | `map(xs, f)` | re-entrancy: `f(x)` for each `x`, while `f` may call the lab again |
//! | `race(a, b)` | cancellation: the slower of two calls is cancelled |
//! | `same(a, b)` | identity: an object sent home arrives as itself |
//! | `numbers(n)` | a remote iterator ([`Iter`]) |
//! | `files` | a sandbox directory: `open(name, mode)` lends a [`File`] |
//! | `exec(command, on_line)` | only with [`LabOptions::allow_exec`]: runs a command, streaming its output lines |
//!
//! # Safety
//!
//! `files` refuses names that leave its directory (absolute paths, `..`, symbolic links
//! pointing outside). `exec` does not exist at all (not callable, not listed by `dir`)
//! unless the lab was built with [`LabOptions::allow_exec`]; `netref serve` only sets it
//! with `--allow-exec`.

use std::any::Any;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::adapters::{File, Iter, Map};
use crate::error::{Error, ErrorKind, Result};
use crate::object::{Invocation, MemberInfo, Obj, Object, Reply, TypeInfo};
use crate::proxy::Proxy;
use crate::value::Value;

/// How to build a [`Lab`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LabOptions {
    /// The directory `files` works in. Default: a fresh directory under the system's
    /// temporary directory, removed when the lab is dropped.
    pub sandbox: Option<PathBuf>,
    /// Adds `exec(command, on_line)`, which runs commands on this machine. Default `false`.
    pub allow_exec: bool,
}

impl LabOptions {
    /// Sets [`LabOptions::sandbox`].
    pub fn sandbox(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sandbox = Some(dir.into());
        self
    }

    /// Sets [`LabOptions::allow_exec`].
    pub fn allow_exec(mut self, allow: bool) -> Self {
        self.allow_exec = allow;
        self
    }
}

/// The lab's root object.
pub struct Lab {
    counter: Obj<Counter>,
    kv: Obj<Map>,
    files: Obj<Files>,
    allow_exec: bool,
}

impl Lab {
    /// Builds a lab; fails only when the sandbox directory cannot be created.
    pub fn new(options: LabOptions) -> std::io::Result<Lab> {
        let files = match options.sandbox {
            Some(dir) => Files::open_dir(dir, false)?,
            None => Files::temporary()?,
        };
        Ok(Lab {
            counter: Obj::new(Counter::default()),
            kv: Obj::new(Map::new()),
            files: Obj::new(files),
            allow_exec: options.allow_exec,
        })
    }

    /// The sandbox directory `files` works in.
    pub fn sandbox(&self) -> &Path {
        &self.files.dir
    }

    /// The object to lend as a connection's root (with `exec` when it was allowed).
    pub fn into_root(self) -> Arc<dyn Object> {
        if self.allow_exec {
            let exec = Arc::new(Exec {
                dir: self.files.dir.clone(),
            });
            Arc::new(WithExec {
                lab: Arc::new(self),
                exec,
            })
        } else {
            Arc::new(self)
        }
    }
}

/// The error `fail` returns.
#[derive(Debug)]
pub struct LabError(pub String);

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

fn bad_args(message: impl Into<String>) -> Error {
    Error::remote(ErrorKind::BadArguments, message)
}

/// The netref lab: a playground for the REPL and the tutorial.
#[crate::expose]
impl Lab {
    /// Returns its argument unchanged (any value, by value).
    #[exposed]
    fn echo(&self, x: Value) -> Value {
        x
    }

    /// Adds two numbers (or joins two strings, bytes or lists).
    #[exposed]
    fn add(&self, a: Value, b: Value) -> Result<Value> {
        add_values(a, b)
    }

    /// Always fails with `message`, to show how remote errors look.
    #[exposed]
    fn fail(&self, message: String) -> Result<Value, LabError> {
        Err(LabError(message))
    }

    /// A counter lent by reference.
    #[exposed(property)]
    pub fn counter(&self) -> Obj<Counter> {
        self.counter.clone()
    }

    /// A map shared by every client.
    #[exposed(property)]
    pub fn kv(&self) -> Obj<Map> {
        self.kv.clone()
    }

    /// A sandbox directory: `open(name, mode)` lends a file by reference.
    #[exposed(property)]
    fn files(&self) -> Obj<Files> {
        self.files.clone()
    }

    /// Waits `seconds` (at most one hour), then returns them. Cancel it with Ctrl-C.
    #[exposed]
    async fn sleep(&self, seconds: f64) -> Result<f64> {
        if !(0.0..=3600.0).contains(&seconds) {
            return Err(bad_args("seconds must be between 0 and 3600"));
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Ok(seconds)
    }

    /// Works (sleeps) for `seconds`, at most one hour, and returns them; but first checks
    /// the call's deadline: work that cannot finish in time fails at once with `timed out`
    /// instead of keeping the caller waiting for nothing.
    #[exposed]
    async fn work(&self, seconds: f64) -> Result<f64> {
        if !(0.0..=3600.0).contains(&seconds) {
            return Err(bad_args("seconds must be between 0 and 3600"));
        }
        let wait = Duration::from_secs_f64(seconds);
        if crate::context::time_left().is_some_and(|left| wait > left) {
            return Err(Error::remote(
                ErrorKind::TimedOut,
                format!("{seconds} s of work would pass this call's deadline"),
            ));
        }
        tokio::time::sleep(wait).await;
        Ok(seconds)
    }

    /// The whole seconds (rounded up) this call may still take before its caller stops
    /// waiting: the deadline travels with every call. Nil for a call without one.
    #[exposed]
    fn time_left(&self) -> Option<u64> {
        crate::context::time_left().map(|d| d.as_secs_f64().ceil() as u64)
    }

    /// Calls `callback(i)` for `i` in `0..n`, one after the other; returns `n`.
    #[exposed]
    async fn every(&self, n: u32, callback: Proxy) -> Result<u32> {
        for i in 0..n {
            callback.call((i,)).await?;
        }
        Ok(n)
    }

    /// Calls `f(x)` for each `x` of `xs`, one after the other, and returns the results. With
    /// a callback that calls the lab in turn (`partial(root.add, 10)` in the REPL), each
    /// call comes back in while `map` is still running.
    #[exposed]
    async fn map(&self, xs: Vec<Value>, f: Proxy) -> Result<Vec<Value>> {
        let mut out = Vec::with_capacity(xs.len());
        for x in xs {
            out.push(f.call((x,)).await?);
        }
        Ok(out)
    }

    /// Calls `a()` and `b()` at once and returns the result of the first to finish (`a` on
    /// a tie). The other call is dropped, which cancels it on the side running it.
    #[exposed]
    async fn race(&self, a: Proxy, b: Proxy) -> Result<Value> {
        let (first, second) = (a.call(()), b.call(()));
        tokio::select! {
            biased;
            r = first => r,
            r = second => r,
        }
    }

    /// True when `a` and `b` are the same object here (or equal values): an object sent
    /// back to its owner arrives as itself, not as a proxy of a proxy.
    #[exposed]
    fn same(&self, a: Value, b: Value) -> bool {
        a == b
    }

    /// A remote iterator over `0..n`: `list(root.numbers(5))` in the REPL.
    #[exposed]
    fn numbers(&self, n: u64) -> Obj<Iter> {
        Obj::new(Iter::new(0..n))
    }
}

fn add_values(a: Value, b: Value) -> Result<Value> {
    Ok(match (a, b) {
        (Value::Float(x), Value::Float(y)) => Value::Float(x + y),
        (Value::Float(x), y @ (Value::Int(_) | Value::UInt(_))) => Value::Float(x + as_f64(&y)),
        (x @ (Value::Int(_) | Value::UInt(_)), Value::Float(y)) => Value::Float(as_f64(&x) + y),
        (x @ (Value::Int(_) | Value::UInt(_)), y @ (Value::Int(_) | Value::UInt(_))) => {
            let wide = as_i128(&x) + as_i128(&y);
            match (i64::try_from(wide), u64::try_from(wide)) {
                (Ok(i), _) => Value::Int(i),
                (_, Ok(u)) => Value::UInt(u),
                _ => Value::Float(wide as f64),
            }
        }
        (Value::Str(x), Value::Str(y)) => Value::Str(x + y.as_str()),
        (Value::Bytes(mut x), Value::Bytes(y)) => {
            x.extend(y);
            Value::Bytes(x)
        }
        (Value::List(mut x), Value::List(y)) => {
            x.extend(y);
            Value::List(x)
        }
        (x, y) => {
            return Err(bad_args(format!(
                "cannot add {} and {}",
                x.type_name(),
                y.type_name()
            )))
        }
    })
}

fn as_f64(v: &Value) -> f64 {
    match *v {
        Value::Int(i) => i as f64,
        Value::UInt(u) => u as f64,
        Value::Float(f) => f,
        _ => f64::NAN,
    }
}

fn as_i128(v: &Value) -> i128 {
    match *v {
        Value::Int(i) => i128::from(i),
        Value::UInt(u) => i128::from(u),
        _ => 0,
    }
}

/// A counter: `inc()` adds `step` to `value`.
pub struct Counter {
    value: AtomicI64,
    step: AtomicI64,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            value: AtomicI64::new(0),
            step: AtomicI64::new(1),
        }
    }
}

impl Counter {
    /// The current value, read on this side.
    pub fn current(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }
}

/// A counter lent by reference.
#[crate::expose]
impl Counter {
    /// Adds `step` to the value and returns the new value.
    #[exposed]
    fn inc(&self) -> i64 {
        let step = self.step.load(Ordering::SeqCst);
        self.value
            .fetch_add(step, Ordering::SeqCst)
            .wrapping_add(step)
    }

    /// Sets the value back to zero.
    #[exposed]
    fn reset(&self) {
        self.value.store(0, Ordering::SeqCst);
    }

    /// The current value (read-only: change it with `inc` or `reset`).
    #[exposed(property)]
    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    /// What `inc` adds (settable).
    #[exposed(property)]
    fn step(&self) -> i64 {
        self.step.load(Ordering::SeqCst)
    }

    /// Sets what `inc` adds.
    #[exposed(setter)]
    fn set_step(&self, step: i64) {
        self.step.store(step, Ordering::SeqCst);
    }
}

/// A sandbox directory whose files can be opened by name.
pub struct Files {
    dir: PathBuf,
    /// Removed on drop (a temporary sandbox this lab created).
    owned: bool,
}

impl Files {
    fn open_dir(dir: PathBuf, owned: bool) -> std::io::Result<Files> {
        std::fs::create_dir_all(&dir)?;
        let dir = dir.canonicalize()?;
        Ok(Files { dir, owned })
    }

    fn temporary() -> std::io::Result<Files> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("netref-lab-{}-{n}", std::process::id()));
        Files::open_dir(dir, true)
    }

    /// The path of `name` inside the sandbox, or a refusal when it would leave it.
    fn resolve(&self, name: &str) -> Result<PathBuf> {
        let rel = Path::new(name);
        let plain = !name.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(bad_args(format!(
                "refused: `{name}` is not a plain relative name inside the sandbox"
            )));
        }
        let full = self.dir.join(rel);
        // Symbolic links could still point outside: check what the path really names.
        let real = match full.canonicalize() {
            Ok(p) => p,
            Err(_) => match full.parent().map(Path::canonicalize) {
                Some(Ok(parent)) => parent.join(full.file_name().unwrap_or_default()),
                _ => {
                    return Err(bad_args(format!(
                        "no directory for `{name}` in the sandbox"
                    )))
                }
            },
        };
        if !real.starts_with(&self.dir) {
            return Err(bad_args(format!("refused: `{name}` leaves the sandbox")));
        }
        Ok(real)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn io_failed(e: std::io::Error) -> Error {
    Error::Remote(crate::RemoteError {
        kind: ErrorKind::Failed,
        type_name: "std::io::Error".into(),
        message: e.to_string(),
        chain: Vec::new(),
    })
}

/// A sandbox directory: names are relative and never leave it.
#[crate::expose]
impl Files {
    /// Opens `name` with a Python-style `mode` (`r` by default; `w`, `a`, `x`, `+`, `b`)
    /// and lends the file by reference.
    #[exposed]
    fn open(&self, name: String, mode: Option<String>) -> Result<Obj<File>> {
        let path = self.resolve(&name)?;
        let mode = mode.unwrap_or_else(|| "r".to_owned());
        if !mode.chars().all(|c| "rwaxb+t".contains(c)) {
            return Err(bad_args(format!("unknown file mode {mode:?}")));
        }
        let file = File::open(&path, &mode).map_err(io_failed)?;
        Ok(Obj::new(file))
    }

    /// The names of the files in the sandbox, sorted.
    #[exposed]
    fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_failed)? {
            let entry = entry.map_err(io_failed)?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// True when `name` exists in the sandbox.
    #[exposed]
    fn exists(&self, name: String) -> Result<bool> {
        Ok(self.resolve(&name)?.exists())
    }

    /// Deletes the file `name`.
    #[exposed]
    fn remove(&self, name: String) -> Result<()> {
        let path = self.resolve(&name)?;
        std::fs::remove_file(path).map_err(io_failed)
    }
}

/// Runs commands (only in a lab built with [`LabOptions::allow_exec`]).
struct Exec {
    dir: PathBuf,
}

/// Commands on the serving machine.
#[crate::expose(no_proxy)]
impl Exec {
    /// Runs `command` (a string for the shell, or a list `[program, args...]`) in the
    /// sandbox, calls `on_line(line)` for each line it prints (stdout and stderr), and
    /// returns its exit code (nil when killed by a signal). Cancelling the call kills it.
    #[exposed]
    async fn exec(&self, command: Value, on_line: Proxy) -> Result<Option<i32>> {
        let argv: Vec<String> = match command {
            Value::Str(s) if cfg!(windows) => vec!["cmd".into(), "/C".into(), s],
            Value::Str(s) => vec!["sh".into(), "-c".into(), s],
            Value::List(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s),
                    other => Err(bad_args(format!(
                        "command arguments must be strings, not {}",
                        other.type_name()
                    ))),
                })
                .collect::<Result<_>>()?,
            other => {
                return Err(bad_args(format!(
                    "command must be a string or a list of strings, not {}",
                    other.type_name()
                )))
            }
        };
        let Some((program, args)) = argv.split_first() else {
            return Err(bad_args("empty command"));
        };
        run_streaming(program, args, &self.dir, on_line).await
    }
}

async fn run_streaming(
    program: &str,
    args: &[String],
    dir: &Path,
    on_line: Proxy,
) -> Result<Option<i32>> {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(io_failed)?;
    // Both pipes feed one bounded queue, so lines reach the callback in about the order
    // they were printed and a slow callback slows the command instead of buffering.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    let pump = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        let tx = tx.clone();
        async move {
            let Some(pipe) = pipe else { return };
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            line.pop();
                        }
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if tx.send(text).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    };
    let out = child
        .stdout
        .take()
        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let err = child
        .stderr
        .take()
        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let pumps = tokio::spawn(futures_join(pump(out), pump(err)));
    drop(tx);
    while let Some(line) = rx.recv().await {
        on_line.call((line,)).await?;
    }
    let _ = pumps.await;
    let status = child.wait().await.map_err(io_failed)?;
    Ok(status.code())
}

async fn futures_join<A, B>(a: A, b: B)
where
    A: std::future::Future<Output = ()>,
    B: std::future::Future<Output = ()>,
{
    tokio::join!(a, b);
}

/// The lab with `exec` added: the lab's members followed by `Exec`'s.
struct WithExec {
    lab: Arc<Lab>,
    exec: Arc<Exec>,
}

impl WithExec {
    fn info(&self) -> &'static TypeInfo {
        static INFO: OnceLock<TypeInfo> = OnceLock::new();
        INFO.get_or_init(|| {
            let lab = self.lab.type_info();
            let members: Vec<MemberInfo> = lab
                .members
                .iter()
                .chain(self.exec.type_info().members)
                .map(|m| MemberInfo {
                    name: m.name,
                    kind: m.kind,
                    signature: m.signature,
                    doc: m.doc,
                })
                .collect();
            TypeInfo {
                name: lab.name,
                doc: lab.doc,
                // Built once per process; a few hundred bytes.
                members: Box::leak(members.into_boxed_slice()),
                call: None,
            }
        })
    }
}

impl Object for WithExec {
    fn type_info(&self) -> &'static TypeInfo {
        self.info()
    }

    fn invoke(self: Arc<Self>, member: usize, inv: Invocation) -> Reply {
        let n = self.lab.type_info().members.len();
        if member < n {
            self.lab.clone().invoke(member, inv)
        } else {
            self.exec.clone().invoke(member - n, inv)
        }
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sandbox_refuses_escapes() {
        let lab = Lab::new(LabOptions::default()).unwrap();
        let files = Proxy::local(lab.files.clone());
        for bad in ["../x", "/etc/passwd", "", "a/../../b", "."] {
            let e = files.call_method("open", (bad, "r")).await.expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::BadArguments, "{bad}: {e}");
        }
        let f = files.call_method("open", ("ok.txt", "w")).await.unwrap();
        let f = f.into_proxy().unwrap();
        f.call_method("write", ("hi",)).await.unwrap();
        f.call_method("close", ()).await.unwrap();
        let names: Vec<String> = files.call_method("list", ()).decode().await.unwrap();
        assert_eq!(names, vec!["ok.txt".to_string()]);
    }

    #[tokio::test]
    async fn exec_exists_only_when_allowed() {
        let plain = Proxy::local(Lab::new(LabOptions::default()).unwrap().into_root());
        assert!(!plain.dir().await.unwrap().contains(&"exec".to_string()));
        let e = plain.call_method("exec", ("true", Value::Nil)).await;
        assert!(e.unwrap_err().is_no_such_member());

        let lab = Lab::new(LabOptions::default().allow_exec(true)).unwrap();
        let root = Proxy::local(lab.into_root());
        let dir = root.dir().await.unwrap();
        assert!(dir.contains(&"exec".to_string()) && dir.contains(&"add".to_string()));
        assert_eq!(
            root.call_method("add", (2, 3)).await.unwrap().as_i64(),
            Some(5)
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn exec_streams_lines() {
        let lab = Lab::new(LabOptions::default().allow_exec(true)).unwrap();
        let root = Proxy::local(lab.into_root());
        let lines = Obj::new(crate::adapters::List::new());
        let sink = lines.clone();
        let cb = crate::callback(move |l: String| sink.push(Value::Str(l)));
        let code = root
            .call_method("exec", ("echo one; echo two >&2; exit 3", cb))
            .await
            .unwrap();
        assert_eq!(code.as_i64(), Some(3));
        let mut got: Vec<String> = lines
            .snapshot()
            .into_iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        got.sort();
        assert_eq!(got, vec!["one", "two"]);
    }

    #[tokio::test]
    async fn identity_reentrancy_race_and_deadlines() {
        let lab = Lab::new(LabOptions::default()).unwrap();
        let (_server, client) = crate::pair(Some(lab.into_root()), None).await.unwrap();
        let root = client.root();
        // The lab's own counter, sent home, is itself.
        let c = root.attr("counter").get().await.unwrap();
        let same = root
            .call_method("same", (c.clone(), c.clone()))
            .await
            .unwrap();
        assert_eq!(same, Value::Bool(true));
        let kv = root.attr("kv").get().await.unwrap();
        let same = root.call_method("same", (c, kv)).await.unwrap();
        assert_eq!(same, Value::Bool(false));
        // A callback of ours that calls the lab again while `map` runs.
        let again = root.clone();
        let f = crate::callback_async(move |x: i64| {
            let root = again.clone();
            async move {
                root.call_method("add", (x, 10))
                    .decode::<i64>()
                    .await
                    .unwrap()
            }
        });
        let out: Vec<i64> = root
            .call_method("map", (vec![1, 2, 3], f))
            .decode()
            .await
            .unwrap();
        assert_eq!(out, vec![11, 12, 13]);
        // The slow side of a race is cancelled: its future is dropped.
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = dropped.clone();
        let slow = crate::callback_async(move || {
            let guard = SetOnDrop(flag.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(guard);
            }
        });
        let fast = crate::callback(|| 7);
        let won = root.call_method("race", (slow, fast)).await.unwrap();
        assert_eq!(won.as_i64(), Some(7));
        for _ in 0..500 {
            if dropped.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            dropped.load(Ordering::SeqCst),
            "the slow callback was not cancelled"
        );
        // The deadline travels: the lab sees it and refuses a sleep that would pass it.
        let left = root
            .call_method("time_left", ())
            .timeout(Duration::from_secs(7))
            .await
            .unwrap();
        assert_eq!(left.as_i64(), Some(7));
        let e = root
            .call_method("work", (5,))
            .timeout(Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("would pass"), "{e}");
    }

    struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn add_mixes_numbers() {
        assert_eq!(add_values(1.into(), 2.into()).unwrap(), Value::Int(3));
        assert_eq!(add_values(1.into(), 0.5.into()).unwrap(), Value::Float(1.5));
        assert_eq!(
            add_values("a".into(), "b".into()).unwrap(),
            Value::from("ab")
        );
        assert!(add_values(1.into(), "b".into()).is_err());
        assert_eq!(
            add_values(i64::MAX.into(), 1.into()).unwrap(),
            Value::UInt(i64::MAX as u64 + 1)
        );
    }
}
