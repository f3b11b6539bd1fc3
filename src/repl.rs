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
//! assert_eq!(session.eval("let x = root.add(1, 2)").await, Outcome::Ok);
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
//! [Rhai](https://rhai.rs): `let`, `fn`, closures (`|x| x * 2`), `if`, `while`, `loop`,
//! `for x in …`, arrays, maps (`#{k: 1}`), strings with interpolation, `throw` and
//! `try`/`catch`. On top of it, netref's values: `root` (the peer's root object), proxies
//! as first-class values (`root.counter.value`, `root.add(1, 2)`, `root.counter.step = 5`,
//! `root.kv["k"]` for the object's `get("k")`, `for x in root.numbers(5) { … }`,
//! `let f = root.add; f(1, 2)`), closures passed to remote methods as callbacks
//! (`root.every(3, |i| print(i * 10))`), and the built-ins `print`, `list`, `dir`, `help`,
//! `len`, `type`, `collector()`, `partial(f, args…)`, `named(#{k: v})` and `quit()`.
//! `x.method.pipeline(args)` sends a call without waiting and gives its answer at once.
//! Variables keep their values from one input to the next. See `docs/repl.md`.
//!
//! Commands: `:trace on|off|mermaid`, `:tables`, `:stats`, `:time on|off`,
//! `:timeout SECS|off`, `:load FILE`, `:reconnect`, `:connect TARGET`, `:help`, `:quit`.
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
//! remote call chain) through the error output ([`Session::set_error_output`]) and the
//! session goes on; [`Session::eval`] returns [`Outcome::Failed`]. An error inside a
//! closure called by the peer goes back to the peer as the call's error.
//!
//! # Cancellation
//!
//! [`Session::cancel`] (Ctrl-C in the binary) cancels the remote call the running input is
//! waiting for, and stops a running loop; the input ends with a `cancelled` error and its
//! `Cancel` shows in its own trace. Dropping the future of [`Session::eval`] does the same.
//!
//! # Reconnecting
//!
//! When the connection is lost the session stays; variables holding plain values keep them,
//! and proxies of the lost connection say so when used.
//!
//! A session on a [`Resilient`] connection ([`Session::healing`], or a [`Dialed::healing`]
//! from the dialer) follows it: the loss is reported through its
//! [`on_broken`](Resilient::on_broken) as it happens (at the prompt too), the `Resilient`
//! re-dials in the background, and the next input, or `:reconnect`, takes its new
//! connection, waiting for a re-dial up to the `Resilient`'s
//! [`wait`](crate::resilient::ResilientOptions::wait). `root` is then the new peer's root.
//! Otherwise `:reconnect` and `:connect TARGET` dial through [`Session::set_dialer`].

mod chains;
mod collector;
mod commands;
mod complete;
mod heal;
mod render;
mod script;
mod values;

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use rhai::{Dynamic, Engine, EvalAltResult, Scope, AST};

use crate::config::Config;
use crate::connection::Connection;
use crate::error::Result;
use crate::lab::{Lab, LabOptions};
use crate::resilient::Resilient;
use crate::trace::{Direction, Recorder, TraceEvent};
use crate::value::Value;

pub use heal::Dialed;
pub use render::render_error;

/// The result of evaluating one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It ran (it may have printed a result).
    Ok,
    /// It failed; the error was printed and the session goes on.
    Failed,
    /// It asked to leave (`:quit`, `quit()`).
    Quit,
}

type Output = Arc<dyn Fn(&str) + Send + Sync>;

/// Re-dials for `:reconnect` (`None`: the session's own target) and `:connect TARGET`.
pub type Dialer = Arc<
    dyn Fn(Option<String>) -> BoxFuture<'static, std::result::Result<Dialed, String>> + Send + Sync,
>;

/// A REPL session on one connection. Cheap to clone; clones share variables and settings.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("attached_to", &self.inner.link().description)
            .finish_non_exhaustive()
    }
}

/// The connection a session evaluates against; replaced by `:reconnect` and `:connect`.
pub(crate) struct Link {
    conn: Connection,
    /// The other end, when it lives in this process (the embedded lab).
    peer: Option<Connection>,
    /// Tasks `conn` and `peer` run when idle (reader, writer, keepalive).
    idle_tasks: (u64, u64),
    /// The peer's name in diagrams.
    peer_name: String,
    description: String,
    /// Counts connections: proxies remember theirs, and a proxy of a lost one says so.
    epoch: u64,
    /// The connection heals through this: `conn` is its connection number `generation`.
    healing: Option<Resilient>,
    generation: u64,
    _keep: Option<Box<dyn Any + Send + Sync>>,
}

pub(crate) struct Inner {
    me: Weak<Inner>,
    link: RwLock<Arc<Link>>,
    engine: Engine,
    /// The variables, kept from one input to the next.
    scope: Mutex<Scope<'static>>,
    /// Every function and closure defined so far (closures are called back later).
    lib: Mutex<AST>,
    chains: Mutex<chains::Chains>,
    /// Set by [`Session::cancel`]: calls in flight fail, loops stop.
    cancelled: AtomicBool,
    cancel: tokio::sync::Notify,
    dialer: Mutex<Option<Dialer>>,
    /// `print` as a callback: one object, however often it is passed.
    print_proxy: OnceLock<crate::Proxy>,
    out: RwLock<Output>,
    err: RwLock<Option<Output>>,
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
    /// The methods of each remote type, from its help.
    methods: Mutex<HashMap<String, Arc<HashSet<String>>>>,
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

thread_local! {
    /// The session evaluating on this thread (for `for x in proxy`).
    static CURRENT: RefCell<Option<Weak<Inner>>> = const { RefCell::new(None) };
}

/// The session evaluating on this thread.
pub(crate) fn current_session() -> Option<Arc<Inner>> {
    CURRENT.with(|c| c.borrow().as_ref().and_then(Weak::upgrade))
}

/// Marks this thread as evaluating for a session until dropped.
struct Current(Option<Weak<Inner>>);

impl Current {
    fn enter(session: Weak<Inner>) -> Current {
        Current(CURRENT.with(|c| c.borrow_mut().replace(session)))
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = self.0.take());
    }
}

/// Cancels the running input when the future of [`Session::eval`] is dropped.
struct CancelOnDrop<'a>(&'a Inner, bool);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.cancel_now();
        }
    }
}

const COMMANDS: &[&str] = &[
    ":help",
    ":quit",
    ":trace",
    ":tables",
    ":stats",
    ":time",
    ":timeout",
    ":load",
    ":reconnect",
    ":connect",
];

const HELP: &str = "\
netref repl: a Rhai script against the peer's objects.

  root                          the peer's root object
  root.add(1, 2)                call a method
  root.counter.value            read a property (one message for the whole path)
  root.counter.step = 5         set a settable property
  root.kv[\"k\"]                  index: the object's get(\"k\")
  let f = root.files.open(\"a.txt\", \"w\")
                                keep a result (objects stay lent while held)
  f = ()                        drop it (the peer is told with a Release)
  for x in root.numbers(5) { print(x * 10) }
  list(root.numbers(5))         drain a remote iterator
  dir(x)  help(x)  len(x)  type(x)
  root.every(3, print)          pass a REPL-side callback
  root.every(3, |i| print(i * 10))
                                a closure lent as a callback (it may call the peer)
  let c = collector(); root.every(3, c); list(c)
  partial(root.add, 10)         a callback that calls root.add(10, ...)
  root.files.open.pipeline(\"a\", \"w\").write(\"x\")
                                call on an answer before it arrives (one round trip)
  root.files.open(\"a\", named(#{mode: \"w\"}))
                                named arguments
  quit()  exit()                leave

The language is Rhai: let, fn, if/else, while, loop, for, closures |x| ..., arrays [1, 2],
maps #{k: 1}, strings, `interpolated ${x}`, throw / try-catch. See docs/repl.md.

commands:
  :trace on|off      print every protocol message an input causes
  :trace mermaid     the last traced input's messages as a Mermaid sequence diagram
  :tables            both sides' object tables (exports and imports)
  :stats             both sides' counters
  :time on|off       print how long each input took
  :timeout SECS|off  deadline of each call (default: the connection's)
  :load FILE         run a script file in this session
  :reconnect         dial the target again (after the connection was lost)
  :connect TARGET    attach to another target
  :help              this text
  :quit              leave (Ctrl-D works too; Ctrl-C cancels a running call)";

/// Parses without evaluating, to tell complete input from unfinished input.
fn parser() -> &'static Engine {
    static PARSER: OnceLock<Engine> = OnceLock::new();
    PARSER.get_or_init(|| {
        let mut e = Engine::new_raw();
        #[allow(deprecated)]
        e.on_parse_token(script::map_token);
        e
    })
}

impl Session {
    /// A session on `conn`; `root` is bound to the peer's root object.
    pub fn new(conn: Connection) -> Session {
        let description = conn.label().to_owned();
        Session::build(conn, None, description, "peer".into(), None)
    }

    /// A session on `conn` whose other end, `peer`, lives in this process, so `:tables`
    /// and `:stats` can show both sides.
    pub fn with_peer(conn: Connection, peer: Connection) -> Session {
        let description = conn.label().to_owned();
        Session::build(conn, Some(peer), description, "peer".into(), None)
    }

    /// A session on `link`'s current connection that follows it through its re-dials (see
    /// [Reconnecting](crate::repl#reconnecting)). Waits for the connection like
    /// [`Resilient::connection`].
    pub async fn healing(link: Resilient) -> Result<Session> {
        let conn = link.connection().await?;
        let description = conn.label().to_owned();
        let generation = link.generation();
        let healing = Some((link.clone(), generation));
        let session = Session::build(conn, None, description.clone(), "peer".into(), healing);
        session.inner.watch(&link, &description);
        Ok(session)
    }

    /// True when the session's connection heals through a [`Resilient`].
    pub fn heals(&self) -> bool {
        self.inner.link().healing.is_some()
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
            None,
        ))
    }

    fn build(
        conn: Connection,
        peer: Option<Connection>,
        description: String,
        peer_name: String,
        healing: Option<(Resilient, u64)>,
    ) -> Session {
        let (healing, generation) = match healing {
            Some((link, generation)) => (Some(link), generation),
            None => (None, 0),
        };
        let link = Link {
            idle_tasks: (
                conn.task_count(),
                peer.as_ref().map_or(0, Connection::task_count),
            ),
            conn,
            peer,
            peer_name,
            description,
            epoch: 1,
            healing,
            generation,
            _keep: None,
        };
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
            me: weak.clone(),
            link: RwLock::new(Arc::new(link)),
            engine: script::engine(weak.clone()),
            scope: Mutex::new(Scope::new()),
            lib: Mutex::new(AST::empty()),
            chains: Mutex::new(chains::Chains::default()),
            cancelled: AtomicBool::new(false),
            cancel: tokio::sync::Notify::new(),
            dialer: Mutex::new(None),
            print_proxy: OnceLock::new(),
            out: RwLock::new(Arc::new(|line: &str| println!("{line}"))),
            err: RwLock::new(None),
            trace: AtomicBool::new(false),
            time: AtomicBool::new(false),
            mute: AtomicUsize::new(0),
            muted_calls: Mutex::new(HashSet::new()),
            deferred: Mutex::new(Vec::new()),
            current: Recorder::new(10_000),
            last: Mutex::new((Vec::new(), 0)),
            timeout: Mutex::new(None),
            types: Mutex::new(HashMap::new()),
            methods: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
        });
        Session { inner }
    }

    /// Sends every line the session prints (results, errors, callback output, traces) to
    /// `output` instead of stdout. It may be called from any task or thread.
    pub fn set_output(&self, output: impl Fn(&str) + Send + Sync + 'static) {
        *self.inner.out.write() = Arc::new(output);
    }

    /// Sends error blocks to `output` instead of the output of [`Session::set_output`].
    pub fn set_error_output(&self, output: impl Fn(&str) + Send + Sync + 'static) {
        *self.inner.err.write() = Some(Arc::new(output));
    }

    /// How `:reconnect` and `:connect TARGET` dial. Without one they say they cannot.
    pub fn set_dialer(&self, dialer: Dialer) {
        *self.inner.dialer.lock() = Some(dialer);
    }

    /// The connection this session evaluates against now.
    pub fn connection(&self) -> Connection {
        self.inner.link().conn.clone()
    }

    /// A line saying what the session is attached to, for an interactive greeting.
    pub fn banner(&self) -> String {
        format!(
            "netref repl: attached to {}. `root` is its root object; try `dir(root)`, \
             `help(root)` or :help.",
            self.inner.link().description
        )
    }

    /// True when `input` is complete enough to evaluate: it parses, or fails to parse for
    /// a reason more lines cannot fix (used for multi-line input). A `:command` is
    /// always complete.
    pub fn is_complete(input: &str) -> bool {
        if input.trim_start().starts_with(':') {
            return true;
        }
        match parser().compile(input) {
            Ok(_) => true,
            Err(e) => !render::is_incomplete(&e.0, e.1, input),
        }
    }

    /// Evaluates one input (a script, or a `:command`) and prints what it shows: the value
    /// of its last statement, unless that is `()`.
    ///
    /// With the peer in this process, it returns once both sides are quiet: every message
    /// the input caused (releases included) has arrived, so what follows starts from the
    /// same state every time.
    pub async fn eval(&self, input: &str) -> Outcome {
        let command = input.trim_start().starts_with(':');
        let tracing = self.inner.trace.load(Ordering::Acquire);
        // Only comments: nothing happens, and `:trace mermaid` still shows the last input.
        let recorded = !command && tracing && !only_comments(input);
        if recorded {
            self.inner.current.clear();
        }
        let started = Instant::now();
        let outcome = self.inner.eval_input(input).await;
        let elapsed = started.elapsed();
        self.inner.finish_input(recorded).await;
        if !command && self.inner.time.load(Ordering::Acquire) {
            let ms = elapsed.as_secs_f64() * 1000.0;
            self.inner.print(&format!("time: {ms:.3} ms"));
        }
        outcome
    }

    /// Runs the script in `path` in this session (as `:load` does).
    pub async fn run_file(&self, path: &str) -> Outcome {
        let outcome = self.inner.load(path).await;
        self.inner.finish_input(false).await;
        outcome
    }

    /// Sets the variable `name` (for a script's arguments, say).
    pub fn set_var(&self, name: &str, value: Value) {
        let d = values::to_dynamic(value, self.inner.epoch());
        self.inner.scope.lock().set_value(name.to_owned(), d);
    }

    /// Cancels the running input: its call in flight is cancelled on the peer and fails,
    /// and a running loop stops. The input ends with a `cancelled` error.
    pub fn cancel(&self) {
        self.inner.cancel_now();
    }

    /// Completion candidates for `line` with the cursor at byte `pos`: the byte offset
    /// where the completed word starts, and the candidates (sorted). Completes commands,
    /// variables and built-ins, and member names from the peer's `dir` (cached per type).
    pub async fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        self.inner.complete(line, pos).await
    }

    /// The value of variable `name` (a closure becomes a callback).
    pub fn var(&self, name: &str) -> Option<Value> {
        let d = self.inner.scope.lock().get_value::<Dynamic>(name)?;
        values::to_value(&self.inner, &d).ok()
    }

    /// Closes the connection (and the in-process peer, if any); a [`Resilient`] one stops
    /// re-dialing.
    pub async fn close(&self) {
        let link = self.inner.link();
        link.conn.set_tracer(None);
        self.inner.scope.lock().clear();
        if let Some(healing) = &link.healing {
            healing.close().await;
        }
        link.conn.close().await;
        if let Some(peer) = &link.peer {
            peer.close().await;
        }
    }
}

/// True when `input` holds nothing but comments and white space.
fn only_comments(input: &str) -> bool {
    input
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("//"))
}

/// The `print` built-in: a callback that prints its arguments on the REPL side.
fn print_callback(session: Weak<Inner>) -> crate::Proxy {
    crate::Callback::from_fn(move |args: crate::Args| {
        let session = session.clone();
        async move {
            // Rendering may look up types (a blocking call): off the connection's task.
            let done = tokio::task::spawn_blocking(move || {
                if let Some(s) = session.upgrade() {
                    let epoch = s.epoch();
                    let (pos, named) = args.into_parts();
                    let mut parts: Vec<String> = pos
                        .into_iter()
                        .map(|v| s.render_dynamic(&values::to_dynamic(v, epoch), false))
                        .collect();
                    parts.extend(named.into_iter().map(|(k, v)| {
                        format!(
                            "{k}={}",
                            s.render_dynamic(&values::to_dynamic(v, epoch), false)
                        )
                    }));
                    s.print(&parts.join(" "));
                }
            });
            let _ = done.await;
            Ok(Value::Nil)
        }
    })
    .into_proxy()
}

impl Inner {
    pub(crate) fn link(&self) -> Arc<Link> {
        self.link.read().clone()
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.link.read().epoch
    }

    /// The value `root` has when no variable shadows it.
    pub(crate) fn root_value(&self) -> values::Remote {
        let link = self.link();
        values::Remote {
            proxy: link.conn.root(),
            epoch: link.epoch,
        }
    }

    pub(crate) fn print(&self, text: &str) {
        let out = self.out.read().clone();
        for line in text.split('\n') {
            out(line);
        }
    }

    pub(crate) fn print_error(&self, text: &str) {
        let out = self
            .err
            .read()
            .clone()
            .unwrap_or_else(|| self.out.read().clone());
        for line in text.split('\n') {
            out(line);
        }
    }

    pub(crate) fn mute(&self) -> Mute<'_> {
        self.mute.fetch_add(1, Ordering::AcqRel);
        Mute(&self.mute)
    }

    fn cancel_now(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.cancel.notify_waiters();
    }

    /// After an input: waits for quiet, shows the held-back one-way messages, and keeps
    /// the input's trace for `:trace mermaid`.
    async fn finish_input(&self, recorded: bool) {
        let link = self.link();
        if link.peer.is_some() {
            self.settle().await;
        } else if self.trace.load(Ordering::Acquire) {
            // Let the one-way messages the input caused reach the trace, for a moment.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        self.show_deferred();
        if recorded {
            let dropped = self.current.dropped();
            *self.last.lock() = (self.current.take(), dropped);
        }
    }

    async fn eval_input(self: &Arc<Self>, input: &str) -> Outcome {
        let trimmed = input.trim();
        if let Some(command) = trimmed.strip_prefix(':') {
            // `:reconnect` and `:connect` dial themselves; other commands take a connection
            // re-dialed meanwhile, without waiting for one.
            let dials = matches!(
                command.split_whitespace().next(),
                Some("reconnect" | "connect")
            );
            if !dials {
                self.follow(false).await;
            }
            return self.command(command).await;
        }
        if !self.follow_for_input().await {
            return Outcome::Failed;
        }
        self.run_blocking(input.to_owned(), None).await
    }

    /// Runs a script on a blocking thread; dropping the future cancels it.
    pub(crate) async fn run_blocking(
        self: &Arc<Self>,
        source: String,
        file: Option<String>,
    ) -> Outcome {
        self.cancelled.store(false, Ordering::Release);
        let mut guard = CancelOnDrop(self, true);
        let me = self.clone();
        let done =
            tokio::task::spawn_blocking(move || me.run_script(&source, file.as_deref())).await;
        guard.1 = false;
        done.unwrap_or(Outcome::Failed)
    }

    /// Compiles and runs `source`, printing its value or its error.
    fn run_script(&self, source: &str, file: Option<&str>) -> Outcome {
        let _current = Current::enter(self.me.clone());
        let mut scope = self.scope.lock();
        let compile = |source: &str| -> std::result::Result<AST, Box<EvalAltResult>> {
            Ok(self.engine.compile_with_scope(&scope, source)?)
        };
        let mut ast = match compile(source) {
            Ok(ast) => ast,
            Err(e) => {
                self.show_error(&e, source, file);
                return Outcome::Failed;
            }
        };
        let names: HashSet<String> = scope.iter_raw().map(|(n, ..)| n.to_owned()).collect();
        let calls = chains::variable_calls(&ast, &names, &self.lib.lock());
        if !calls.is_empty() {
            match compile(&chains::insert_calls(source, &calls)) {
                Ok(rewritten) => ast = rewritten,
                Err(e) => {
                    self.show_error(&e, source, file);
                    return Outcome::Failed;
                }
            }
        }
        ast.set_source(file.unwrap_or("input"));
        self.chains.lock().learn(&ast);
        // The input's functions and closures join the library first: its closures may be
        // called back while it runs, or long after.
        let run = {
            let mut lib = self.lib.lock();
            let mut fns = ast.clone();
            fns.clear_statements();
            *lib = lib.merge(&fns);
            lib.merge(&ast)
        };
        match self.engine.eval_ast_with_scope::<Dynamic>(&mut scope, &run) {
            Ok(v) if v.is_unit() => Outcome::Ok,
            Ok(v) => {
                drop(scope);
                let text = self.render_dynamic(&v, true);
                self.print(&text);
                Outcome::Ok
            }
            Err(e) => {
                drop(scope);
                if matches!(render::failure_of(&e), Some(render::Failure::Quit)) {
                    return Outcome::Quit;
                }
                self.show_error(&e, source, file);
                Outcome::Failed
            }
        }
    }

    fn show_error(&self, e: &EvalAltResult, source: &str, file: Option<&str>) {
        let mut text = render::error_text(e, source);
        if let Some(file) = file {
            text = text
                .lines()
                .filter(|l| !l.starts_with("  at line "))
                .collect::<Vec<_>>()
                .join("\n");
            let pos = e.position();
            if let Some(line) = pos.line() {
                text.push_str(&format!(
                    "\n  at {file}:{line}:{}",
                    pos.position().unwrap_or(1)
                ));
            }
        }
        self.print_error(&text);
    }

    pub(crate) fn set_trace(self: &Arc<Self>, on: bool) {
        self.trace.store(on, Ordering::Release);
        if !on {
            self.link().conn.set_tracer(None);
            self.deferred.lock().clear();
            return;
        }
        let weak = Arc::downgrade(self);
        self.link()
            .conn
            .set_tracer(Some(Arc::new(move |e: &TraceEvent| {
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
    pub(crate) async fn settle(&self) {
        let link = self.link();
        let Some(peer) = &link.peer else { return };
        let mut quiet_checks = 0;
        for _ in 0..2500 {
            if quiet(&link, peer) {
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

/// True when both sides of an in-process pair are quiet: the tables agree, every message
/// written has been read, nothing is queued to be written, and no handler is running.
fn quiet(link: &Link, peer: &Connection) -> bool {
    let conn = &link.conn;
    let (a, b) = (conn.stats(), peer.stats());
    a.live_imports == b.live_exports
        && a.live_exports == b.live_imports
        && a.messages_sent == b.messages_received
        && b.messages_sent == a.messages_received
        && conn.task_count() <= link.idle_tasks.0
        && peer.task_count() <= link.idle_tasks.1
        && conn.nothing_queued()
        && peer.nothing_queued()
}
