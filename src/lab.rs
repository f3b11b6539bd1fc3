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
//! | `stream(n)` | a stream ([`Stream`]) of `0..n`, pulled by its holder with flow control |
//! | `files` | a sandbox directory: `open(name, mode)` lends a [`File`](crate::adapters::File) |
//! | `exec(command, on_line)` | only with [`LabOptions::allow_exec`]: runs a command, streaming its output lines |
//!
//! # Safety
//!
//! `files` refuses names that leave its directory (absolute paths, `..`, symbolic links
//! pointing outside). `exec` does not exist at all (not callable, not listed by `dir`)
//! unless the lab was built with [`LabOptions::allow_exec`]; `netref serve` only sets it
//! with `--allow-exec`.

mod counter;
mod exec;
mod files;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use counter::Counter;
pub use files::Files;

use crate::adapters::{Iter, Map};
use crate::error::{Error, ErrorKind, Result};
use crate::object::{Obj, Object};
use crate::proxy::Proxy;
use crate::stream::Stream;
use crate::value::Value;
use exec::{Exec, WithExec};

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

    /// A stream of `0..n`, made only as its holder pulls it: `s.pull(4)` takes up to four
    /// items, `list(s)` the rest; `RemoteStream<u64>` in Rust.
    #[exposed]
    fn stream(&self, n: u64) -> Stream<u64> {
        Stream::new(futures_util::stream::iter(0..n))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

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
