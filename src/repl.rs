//! The REPL behind `netref repl`: an expression language over a connection, with
//! completion, traces and table counts (feature `cli`).
//!
//! # Usage
//!
//! A [`Session`] evaluates one input at a time ([`Session::eval`]) and prints results,
//! callback output and trace lines through its output function
//! ([`Session::set_output`], stdout by default). [`Session::embedded`] starts the
//! [lab](crate::lab) in-process; [`Session::new`] attaches to any connection.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use netref::repl::{Outcome, Session};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let session = Session::embedded(Default::default()).await.unwrap();
//! let lines = Arc::new(Mutex::new(Vec::new()));
//! let sink = lines.clone();
//! session.set_output(move |line: &str| sink.lock().unwrap().push(line.to_owned()));
//!
//! assert_eq!(session.eval("x = root.add(1, 2)").await, Outcome::Ok);
//! session.eval("x").await;
//! session.eval("root.every(2, print)").await;
//! assert_eq!(session.eval("root.nope()").await, Outcome::Failed);
//! let lines = lines.lock().unwrap();
//! assert_eq!(lines[..3], ["3", "0", "1"]);
//! assert!(lines[4].starts_with("error: no such member"));
//!
//! let (start, names) = session.complete("root.co", 7).await;
//! assert_eq!((start, names), (5, vec!["counter".to_string()]));
//! # });
//! ```
//!
//! # The language
//!
//! Literals (`12`, `-1.5`, `"text"`, `b"\x00bytes"`, `[1, 2]`, `{name: "x", "k": 1}`,
//! `true`, `false`, `nil`), variables, `x = expr`, `del x`, attribute paths
//! (`root.counter.value`), calls with positional and named arguments
//! (`root.files.open("a.txt", mode="w")`), attribute assignment (`root.counter.step = 5`),
//! indexing (`xs[0]`, `m["k"]`; on a remote object, `get(k)`), and built-in functions:
//! `list(x)` (drains a remote iterator), `dir(x)`, `help(x)`, `len(x)`, `type(x)` and
//! `collector()`. `print` and collectors are REPL-side callbacks: pass them to remote
//! methods (`root.every(3, print)`). `_` holds the last result. `;` separates statements;
//! an open bracket continues on the next line. See `docs/repl.md`.
//!
//! Commands: `:trace on|off`, `:tables`, `:stats`, `:time on|off`, `:timeout SECS|off`,
//! `:help`, `:quit`.
//!
//! # Errors
//!
//! A failed input prints one block (`error: KIND: MESSAGE`, then the error's type and the
//! remote call chain) and the session goes on; [`Session::eval`] returns
//! [`Outcome::Failed`].
//!
//! # Cancellation
//!
//! Dropping the future of [`Session::eval`] cancels the remote call it is waiting for (the
//! binary does this on Ctrl-C).

mod collector;
mod complete;
mod eval;
mod render;
mod syntax;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::config::Config;
use crate::connection::Connection;
use crate::error::Result;
use crate::lab::{Lab, LabOptions};
use crate::trace::TraceEvent;
use crate::value::Value;

pub use render::render_error;

/// The result of evaluating one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It ran (it may have printed a result).
    Ok,
    /// It failed; the error was printed and the session goes on.
    Failed,
    /// It asked to leave (`:quit`).
    Quit,
}

type Output = Arc<dyn Fn(&str) + Send + Sync>;

/// A REPL session on one connection. Cheap to clone; clones share variables and settings.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("attached_to", &self.inner.description)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    conn: Connection,
    /// The other end, when it lives in this process (the embedded lab).
    peer: Option<Connection>,
    description: String,
    vars: Mutex<BTreeMap<String, Value>>,
    out: RwLock<Output>,
    trace: AtomicBool,
    time: AtomicBool,
    /// While above zero, trace events are not shown (the REPL's own lookups).
    mute: AtomicUsize,
    timeout: Mutex<Option<Duration>>,
    /// Remote type names, by object key (`#id` or `root`).
    types: Mutex<HashMap<String, String>>,
    /// Member names, by type name (`type:Counter`) or by path (`path:root.counter`).
    dirs: Mutex<HashMap<String, Arc<Vec<String>>>>,
}

/// Silences the trace while the REPL makes calls of its own.
pub(crate) struct Mute<'a>(&'a AtomicUsize);

impl Drop for Mute<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

const COMMANDS: &[&str] = &[
    ":help", ":quit", ":trace", ":tables", ":stats", ":time", ":timeout",
];

const HELP: &str = "\
netref repl: evaluate expressions against the peer's objects.

  root                          the peer's root object
  root.add(1, 2)                call a method (named arguments: f(a, b=2))
  root.counter.value            read a property
  root.counter.step = 5         set a settable property
  x = root.files.open(\"a.txt\", \"w\")
                                keep a result (objects stay lent while held)
  x = nil  /  del x             drop it (the peer is told with a Release)
  list(root.numbers(5))         drain a remote iterator
  dir(x)  help(x)  len(x)  type(x)
  root.every(3, print)          pass a REPL-side callback
  c = collector(); root.every(3, c); list(c)
  _                             the last result

literals: 1  -2.5  \"s\"  b\"\\x00\"  [1, 2]  {k: 1}  true  false  nil

commands:
  :trace on|off      print every protocol message an input causes
  :tables            both sides' object tables (exports and imports)
  :stats             both sides' counters
  :time on|off       print how long each input took
  :timeout SECS|off  deadline of each call (default: the connection's)
  :help              this text
  :quit              leave (Ctrl-D works too; Ctrl-C cancels a running call)";

impl Session {
    /// A session on `conn`; `root` is bound to the peer's root object.
    pub fn new(conn: Connection) -> Session {
        let description = conn.label().to_owned();
        Session::build(conn, None, description)
    }

    /// A session on `conn` whose other end, `peer`, lives in this process, so `:tables`
    /// and `:stats` can show both sides.
    pub fn with_peer(conn: Connection, peer: Connection) -> Session {
        let description = conn.label().to_owned();
        Session::build(conn, Some(peer), description)
    }

    /// Starts a [lab](crate::lab) in this process, connected over an in-memory pair, and a
    /// session attached to it.
    pub async fn embedded(options: LabOptions) -> Result<Session> {
        let lab = Lab::new(options)?;
        // Nothing can be lost in memory; pings would only clutter `:trace`.
        let config = Config {
            keepalive_interval: None,
            ..Config::default()
        };
        let (server, client) = crate::pair_with(config, Some(lab.into_root()), None).await?;
        Ok(Session::build(
            client,
            Some(server),
            "the lab (in-process)".into(),
        ))
    }

    fn build(conn: Connection, peer: Option<Connection>, description: String) -> Session {
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let mut vars = BTreeMap::new();
            vars.insert("root".to_owned(), Value::Ref(conn.root()));
            vars.insert("print".to_owned(), Value::Ref(print_callback(weak.clone())));
            Inner {
                conn,
                peer,
                description,
                vars: Mutex::new(vars),
                out: RwLock::new(Arc::new(|line: &str| println!("{line}"))),
                trace: AtomicBool::new(false),
                time: AtomicBool::new(false),
                mute: AtomicUsize::new(0),
                timeout: Mutex::new(None),
                types: Mutex::new(HashMap::new()),
                dirs: Mutex::new(HashMap::new()),
            }
        });
        Session { inner }
    }

    /// Sends every line the session prints (results, errors, callback output, traces) to
    /// `output` instead of stdout. It may be called from any task or thread.
    pub fn set_output(&self, output: impl Fn(&str) + Send + Sync + 'static) {
        *self.inner.out.write() = Arc::new(output);
    }

    /// The connection this session evaluates against.
    pub fn connection(&self) -> &Connection {
        &self.inner.conn
    }

    /// A line saying what the session is attached to, for an interactive greeting.
    pub fn banner(&self) -> String {
        format!(
            "netref repl: attached to {}. `root` is its root object; try `dir(root)`, \
             `help(root)` or :help.",
            self.inner.description
        )
    }

    /// True when `input` is complete enough to evaluate: no open string or bracket and no
    /// trailing `=`, `,` or `.` (used for multi-line input).
    pub fn is_complete(input: &str) -> bool {
        syntax::is_complete(input)
    }

    /// Evaluates one input (statements separated by `;`, or a `:command`) and prints what
    /// it shows.
    pub async fn eval(&self, input: &str) -> Outcome {
        let started = Instant::now();
        let outcome = self.inner.eval_input(input).await;
        let elapsed = started.elapsed();
        if self.inner.trace.load(Ordering::Acquire) {
            // Let the one-way messages the input caused (releases) reach the trace: with the
            // peer in this process, until both tables agree; otherwise for a moment.
            if self.inner.peer.is_some() {
                self.inner.settle().await;
            } else {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
        let command = input.trim_start().starts_with(':');
        if !command && self.inner.time.load(Ordering::Acquire) {
            let ms = elapsed.as_secs_f64() * 1000.0;
            self.inner.print(&format!("time: {ms:.3} ms"));
        }
        outcome
    }

    /// Completion candidates for `line` with the cursor at byte `pos`: the byte offset
    /// where the completed word starts, and the candidates (sorted). Completes commands,
    /// variables and built-ins, and member names from the peer's `dir` (cached per type).
    pub async fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        self.inner.complete(line, pos).await
    }

    /// The value of variable `name`.
    pub fn var(&self, name: &str) -> Option<Value> {
        self.inner.vars.lock().get(name).cloned()
    }

    /// Closes the connection (and the in-process peer, if any).
    pub async fn close(&self) {
        self.inner.conn.set_tracer(None);
        self.inner.vars.lock().clear();
        self.inner.conn.close().await;
        if let Some(peer) = &self.inner.peer {
            peer.close().await;
        }
    }
}

/// The `print` built-in: a callback that prints its arguments on the REPL side.
fn print_callback(session: Weak<Inner>) -> crate::Proxy {
    crate::Callback::from_fn(move |args: crate::Args| {
        let session = session.clone();
        async move {
            if let Some(s) = session.upgrade() {
                let (pos, named) = args.into_parts();
                let mut parts: Vec<String> = pos.iter().map(|v| s.render_plain(v)).collect();
                parts.extend(
                    named
                        .iter()
                        .map(|(k, v)| format!("{k}={}", s.render_plain(v))),
                );
                s.print(&parts.join(" "));
            }
            Ok(Value::Nil)
        }
    })
    .into_proxy()
}

impl Inner {
    pub(crate) fn print(&self, text: &str) {
        let out = self.out.read().clone();
        for line in text.split('\n') {
            out(line);
        }
    }

    pub(crate) fn mute(&self) -> Mute<'_> {
        self.mute.fetch_add(1, Ordering::AcqRel);
        Mute(&self.mute)
    }

    async fn eval_input(self: &Arc<Self>, input: &str) -> Outcome {
        let trimmed = input.trim();
        if let Some(command) = trimmed.strip_prefix(':') {
            return self.command(command).await;
        }
        match self.run(input).await {
            Ok(()) => Outcome::Ok,
            Err(failure) => {
                self.print(&render::failure(&failure, input));
                Outcome::Failed
            }
        }
    }

    async fn command(self: &Arc<Self>, command: &str) -> Outcome {
        let mut words = command.split_whitespace();
        let name = words.next().unwrap_or("");
        let arg = words.next();
        match (name, arg) {
            ("q" | "quit" | "exit", None) => return Outcome::Quit,
            ("help" | "h" | "?", None) => self.print(HELP),
            ("trace", Some("on")) => self.set_trace(true),
            ("trace", Some("off")) => self.set_trace(false),
            ("trace", None) => {
                let on = !self.trace.load(Ordering::Acquire);
                self.set_trace(on);
                self.print(if on { "trace on" } else { "trace off" });
            }
            ("time", Some("on")) => self.time.store(true, Ordering::Release),
            ("time", Some("off")) => self.time.store(false, Ordering::Release),
            ("time", None) => {
                let on = !self.time.fetch_xor(true, Ordering::AcqRel);
                self.print(if on { "time on" } else { "time off" });
            }
            ("timeout", Some("off")) => *self.timeout.lock() = None,
            ("timeout", Some(secs)) => match secs.parse::<f64>() {
                Ok(s) if s > 0.0 && s.is_finite() && s <= 86_400.0 => {
                    *self.timeout.lock() = Some(Duration::from_secs_f64(s));
                }
                _ => {
                    self.print(
                        "error: usage: :timeout SECONDS (0 < SECONDS <= 86400) or :timeout off",
                    );
                    return Outcome::Failed;
                }
            },
            ("tables", None) => self.tables().await,
            ("stats", None) => self.stats().await,
            _ => {
                self.print(&format!(
                    "error: unknown command `:{command}`; commands: {}",
                    COMMANDS.join(" ")
                ));
                return Outcome::Failed;
            }
        }
        Outcome::Ok
    }

    fn set_trace(self: &Arc<Self>, on: bool) {
        self.trace.store(on, Ordering::Release);
        if !on {
            self.conn.set_tracer(None);
            return;
        }
        let weak = Arc::downgrade(self);
        self.conn.set_tracer(Some(Arc::new(move |e: &TraceEvent| {
            let Some(s) = weak.upgrade() else { return };
            // Keepalive is not caused by any input.
            if s.mute.load(Ordering::Acquire) > 0 || matches!(e.kind, "Ping" | "Pong") {
                return;
            }
            s.print(&format!("  {e}"));
        })));
    }

    /// Waits (briefly) until both sides' tables agree, when the peer is in this process:
    /// releases are one-way and may still be on their way.
    async fn settle(&self) {
        let Some(peer) = &self.peer else { return };
        for _ in 0..100 {
            let (a, b) = (self.conn.stats(), peer.stats());
            if a.live_imports == b.live_exports && a.live_exports == b.live_imports {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn tables(&self) {
        self.settle().await;
        let me = self.conn.stats();
        let mut text = format!(
            "repl side: {} exported, {} imported",
            me.live_exports, me.live_imports
        );
        match &self.peer {
            Some(peer) => {
                let p = peer.stats();
                text.push_str(&format!(
                    "\npeer side: {} exported, {} imported",
                    p.live_exports, p.live_imports
                ));
            }
            None => text.push_str(&format!(
                "\npeer side: not visible from here; it lends us what we import ({})",
                me.live_imports
            )),
        }
        let held: Vec<(String, Value)> = self
            .vars
            .lock()
            .iter()
            .filter(|(k, v)| k.as_str() != "root" && k.as_str() != "print" && holds_ref(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut shown = Vec::with_capacity(held.len());
        for (k, v) in &held {
            shown.push(format!("{k} = {}", self.render_full(v).await));
        }
        drop(held);
        if !shown.is_empty() {
            text.push_str("\nvariables holding objects: ");
            text.push_str(&shown.join(", "));
        }
        self.print(&text);
    }

    async fn stats(&self) {
        self.settle().await;
        let line = |who: &str, s: crate::Stats| {
            format!(
                "{who}: messages {} sent / {} received, calls {} sent / {} received, \
                 round trips {}, releases sent {}, bytes {} sent / {} received, \
                 exports {}, imports {}",
                s.messages_sent,
                s.messages_received,
                s.calls_sent,
                s.calls_received,
                s.round_trips,
                s.releases_sent,
                s.bytes_sent,
                s.bytes_received,
                s.live_exports,
                s.live_imports
            )
        };
        let mut text = line("repl side", self.conn.stats());
        if let Some(peer) = &self.peer {
            text.push('\n');
            text.push_str(&line("peer side", peer.stats()));
        }
        self.print(&text);
    }
}

fn holds_ref(v: &Value) -> bool {
    match v {
        Value::Ref(_) => true,
        Value::List(items) => items.iter().any(holds_ref),
        Value::Map(entries) => entries.iter().any(|(k, v)| holds_ref(k) || holds_ref(v)),
        _ => false,
    }
}
