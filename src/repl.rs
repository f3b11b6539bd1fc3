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
//! Commands: `:trace on|off|mermaid`, `:tables`, `:stats`, `:time on|off`,
//! `:timeout SECS|off`, `:help`, `:quit`.
//!
//! # Traces
//!
//! With `:trace on`, every message an input causes is printed as it is sent or received,
//! except one-way messages (`Release`, `Finish`, `Cancel`): those carry no answer, so the
//! moment they travel is not ordered against the rest. They are printed after the input's
//! result, once both sides are quiet (with the peer in this process), in a fixed order:
//! cancels, then finishes, then releases; received before sent; by id. A `Release` may carry
//! several ids (the writer batches them); it is shown as one line per id. The REPL's own
//! lookups (type names for display, completion) are not shown. `:trace mermaid` prints the
//! messages of the last traced input as a Mermaid sequence diagram.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::config::Config;
use crate::connection::Connection;
use crate::connection::Tables;
use crate::error::Result;
use crate::lab::{Lab, LabOptions};
use crate::protocol::fmt_id;
use crate::trace::{Direction, Recorder, TraceEvent};
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
    /// Tasks `conn` and `peer` run when idle (reader, writer, keepalive).
    idle_tasks: (u64, u64),
    /// The peer's name in diagrams.
    peer_name: String,
    description: String,
    vars: Mutex<BTreeMap<String, Value>>,
    out: RwLock<Output>,
    trace: AtomicBool,
    time: AtomicBool,
    /// While above zero, calls sent are the REPL's own lookups: not shown.
    mute: AtomicUsize,
    /// Ids of the REPL's own calls whose `Return` is not to be shown either.
    muted_calls: Mutex<HashSet<u64>>,
    /// One-way messages traced during the current input, shown at its end.
    deferred: Mutex<Vec<TraceEvent>>,
    /// The messages shown for the current input.
    current: Recorder,
    /// The messages of the last input traced, and how many did not fit.
    last: Mutex<(Vec<TraceEvent>, u64)>,
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

  partial(root.add, 10)         a callback that calls root.add(10, ...) (re-entrancy)
  pipeline(root.files.open(\"a\", \"w\")).write(\"x\")
                                call on an answer before it arrives (one round trip)

commands:
  :trace on|off      print every protocol message an input causes
  :trace mermaid     the last traced input's messages as a Mermaid sequence diagram
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
        Session::build(conn, None, description, "peer".into())
    }

    /// A session on `conn` whose other end, `peer`, lives in this process, so `:tables`
    /// and `:stats` can show both sides.
    pub fn with_peer(conn: Connection, peer: Connection) -> Session {
        let description = conn.label().to_owned();
        Session::build(conn, Some(peer), description, "peer".into())
    }

    /// Starts a [lab](crate::lab) in this process, connected over an in-memory pair, and a
    /// session attached to it.
    pub async fn embedded(options: LabOptions) -> Result<Session> {
        Session::embedded_with(options, Config::default()).await
    }

    /// [`Session::embedded`] with `config` for both ends of the in-memory connection: its
    /// `call_timeout` is the default deadline of each call (`netref repl --timeout`).
    pub async fn embedded_with(options: LabOptions, config: Config) -> Result<Session> {
        let lab = Lab::new(options)?;
        // Nothing can be lost in memory; pings would only clutter `:trace`.
        let config = Config {
            keepalive_interval: None,
            ..config
        };
        let (server, client) = crate::pair_with(config, Some(lab.into_root()), None).await?;
        Ok(Session::build(
            client,
            Some(server),
            "the lab (in-process)".into(),
            "lab".into(),
        ))
    }

    fn build(
        conn: Connection,
        peer: Option<Connection>,
        description: String,
        peer_name: String,
    ) -> Session {
        let idle_tasks = (
            conn.task_count(),
            peer.as_ref().map_or(0, Connection::task_count),
        );
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let mut vars = BTreeMap::new();
            vars.insert("root".to_owned(), Value::Ref(conn.root()));
            vars.insert("print".to_owned(), Value::Ref(print_callback(weak.clone())));
            Inner {
                conn,
                peer,
                idle_tasks,
                peer_name,
                description,
                vars: Mutex::new(vars),
                out: RwLock::new(Arc::new(|line: &str| println!("{line}"))),
                trace: AtomicBool::new(false),
                time: AtomicBool::new(false),
                mute: AtomicUsize::new(0),
                muted_calls: Mutex::new(HashSet::new()),
                deferred: Mutex::new(Vec::new()),
                current: Recorder::new(10_000),
                last: Mutex::new((Vec::new(), 0)),
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
    ///
    /// With the peer in this process, it returns once both sides are quiet: every message
    /// the input caused (releases included) has arrived, so what follows starts from the
    /// same state every time.
    pub async fn eval(&self, input: &str) -> Outcome {
        let command = input.trim_start().starts_with(':');
        let tracing = self.inner.trace.load(Ordering::Acquire);
        // Only comments: nothing happens, and `:trace mermaid` still shows the last input.
        let recorded = !command && tracing && !syntax::lex(input).is_ok_and(|t| t.is_empty());
        if recorded {
            self.inner.current.clear();
        }
        let started = Instant::now();
        let outcome = self.inner.eval_input(input).await;
        let elapsed = started.elapsed();
        if self.inner.peer.is_some() {
            self.inner.settle().await;
        } else if self.inner.trace.load(Ordering::Acquire) {
            // Let the one-way messages the input caused reach the trace, for a moment.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        self.inner.show_deferred();
        if recorded {
            let dropped = self.inner.current.dropped();
            *self.inner.last.lock() = (self.inner.current.take(), dropped);
        }
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
    crate::Callback::from_sync_fn(move |args: crate::Args| {
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
            ("trace", Some("mermaid")) => {
                if !self.trace.load(Ordering::Acquire) {
                    self.print(
                        "error: :trace mermaid draws the last traced input: turn :trace on first",
                    );
                    return Outcome::Failed;
                }
                let (events, dropped) = self.last.lock().clone();
                let diagram = crate::trace::mermaid(&events, "repl", &self.peer_name)
                    .omitted(dropped)
                    .to_string();
                self.print(diagram.trim_end());
            }
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
            self.deferred.lock().clear();
            return;
        }
        let weak = Arc::downgrade(self);
        self.conn.set_tracer(Some(Arc::new(move |e: &TraceEvent| {
            if let Some(s) = weak.upgrade() {
                s.on_trace(e);
            }
        })));
    }

    /// Shows a traced message now, defers it to the end of the input, or hides it.
    fn on_trace(&self, e: &TraceEvent) {
        match (e.kind, e.direction) {
            // Keepalive is not caused by any input.
            ("Ping" | "Pong", _) => return,
            ("Call", Direction::Sent) if self.mute.load(Ordering::Acquire) > 0 => {
                if let Some(id) = message_id(&e.text) {
                    self.muted_calls.lock().insert(id);
                }
                return;
            }
            ("Return", Direction::Received)
                if message_id(&e.text).is_some_and(|id| self.muted_calls.lock().remove(&id)) =>
            {
                return;
            }
            _ => {}
        }
        if e.is_one_way() && e.kind != "Goodbye" {
            self.deferred.lock().push(e.clone());
        } else {
            self.show_event(e);
        }
    }

    fn show_event(&self, e: &TraceEvent) {
        self.current.record(e);
        self.print(&format!("  {e}"));
    }

    /// Shows the one-way messages held back during the input, one `Release` line per id, in
    /// a fixed order (see the module docs).
    fn show_deferred(&self) {
        let held = std::mem::take(&mut *self.deferred.lock());
        let mut events = Vec::with_capacity(held.len());
        for e in held {
            if e.kind == "Release" {
                for item in e.text.split_whitespace().skip(1) {
                    let mut one = TraceEvent::new(e.direction, format!("Release {item}"));
                    one.connection.clone_from(&e.connection);
                    events.push(one);
                }
            } else {
                events.push(e);
            }
        }
        events.sort_by_key(|e| {
            let rank = match e.kind {
                "Cancel" => 0,
                "Finish" => 1,
                "Release" => 2,
                _ => 3,
            };
            let direction = match e.direction {
                Direction::Received => 0,
                Direction::Sent => 1,
            };
            (rank, direction, sort_id(&e.text))
        });
        for e in &events {
            self.show_event(e);
        }
    }

    /// Waits until both sides are quiet, when the peer is in this process: the tables
    /// agree, every message written has been read, nothing is queued to be written, and no
    /// handler is running. Releases are one-way and may still be on their way when an
    /// input's result arrives. Gives up after a few seconds (a handler that runs on).
    async fn settle(&self) {
        let Some(peer) = &self.peer else { return };
        let mut quiet_checks = 0;
        for _ in 0..2500 {
            if self.quiet(peer) {
                quiet_checks += 1;
                if quiet_checks == 2 {
                    return;
                }
                tokio::task::yield_now().await;
            } else {
                quiet_checks = 0;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    fn quiet(&self, peer: &Connection) -> bool {
        let (a, b) = (self.conn.stats(), peer.stats());
        a.live_imports == b.live_exports
            && a.live_exports == b.live_imports
            && a.messages_sent == b.messages_received
            && b.messages_sent == a.messages_received
            && self.conn.task_count() <= self.idle_tasks.0
            && peer.task_count() <= self.idle_tasks.1
            && self.conn.nothing_queued()
            && peer.nothing_queued()
    }

    async fn tables(&self) {
        self.settle().await;
        let me = self.conn.tables();
        let peer = self.peer.as_ref().map(Connection::tables);
        let mut text = self.table_rows("repl side", &me, peer.as_ref());
        match &peer {
            Some(p) => {
                text.push('\n');
                text.push_str(&self.table_rows("peer side", p, Some(&me)));
            }
            None => text.push_str(&format!(
                "\npeer side: not visible from here; it lends us what we import ({})",
                me.imports.len()
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

    /// `who: N exported, M imported`, then one line per row. An import's type comes from
    /// the owner's row when the owner is in this process, else from what the REPL learnt.
    fn table_rows(&self, who: &str, t: &Tables, owner: Option<&Tables>) -> String {
        let mut text = format!(
            "{who}: {} exported, {} imported",
            t.exports.len(),
            t.imports.len()
        );
        for e in &t.exports {
            let ty = e.type_name.as_deref().unwrap_or("?");
            text.push_str(&format!(
                "\n  export {} {ty}, count {}",
                e.display_id(),
                e.count
            ));
        }
        for e in &t.imports {
            let ty = match owner {
                Some(o) => o
                    .exports
                    .iter()
                    .find(|x| x.id == e.id)
                    .and_then(|x| x.type_name.clone()),
                None => self.types.lock().get(&fmt_id(e.id)).cloned(),
            };
            let ty = ty.map(|t| format!(" {t}")).unwrap_or_default();
            text.push_str(&format!(
                "\n  import {}{ty}, count {}",
                e.display_id(),
                e.count
            ));
        }
        text
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

/// The call id of a `Call N …` or `Return N …` line.
fn message_id(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The order of one-way lines: a call id (`Cancel 3`), or an object id by slot, then
/// generation (`Release #2v1x1`).
fn sort_id(text: &str) -> (u64, u64) {
    let Some(arg) = text.split_whitespace().nth(1) else {
        return (0, 0);
    };
    if let Some(id) = arg.strip_prefix('#') {
        let id = id.split('x').next().unwrap_or("");
        if let Some((slot, generation)) = id.split_once('v') {
            return (
                slot.parse().unwrap_or(u64::MAX),
                generation.parse().unwrap_or(u64::MAX),
            );
        }
    }
    (arg.parse().unwrap_or(u64::MAX), 0)
}

fn holds_ref(v: &Value) -> bool {
    match v {
        Value::Ref(_) => true,
        Value::List(items) => items.iter().any(holds_ref),
        Value::Map(entries) => entries.iter().any(|(k, v)| holds_ref(k) || holds_ref(v)),
        _ => false,
    }
}
