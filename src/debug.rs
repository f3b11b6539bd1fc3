//! Live debugging: lend a debug root from any tokio program in one line, and tap its logs.
//!
//! # Usage
//!
//! Give your program an `#[expose]`d debug object (statistics, settings, handles to its
//! parts) and lend it on a loopback port:
//!
//! ```no_run
//! use netref::{expose, Obj};
//! struct Debug;
//! #[expose]
//! impl Debug {
//!     /// Jobs done so far.
//!     #[exposed(property)]
//!     fn done(&self) -> u64 { 42 }
//! }
//! # async fn demo() -> netref::Result<()> {
//! let _debug = netref::debug::serve(Obj::new(Debug), 4000).await?; // 127.0.0.1:4000
//! # Ok(()) }
//! ```
//!
//! then attach with `netref repl 127.0.0.1:4000` (`cargo run -- repl 127.0.0.1:4000` in a
//! netref checkout, or `netref` after `cargo install --path .`; [`serve_stdio`] lends it on
//! stdin and stdout instead, for a command TARGET). Keep the returned
//! [`ServerHandle`]: dropping it stops accepting. [`serve`] binds the
//! loopback interface only; [`serve_on`] takes any address, for when you mean it.
//!
//! # Log tap
//!
//! A [`LogTap`] is an object a peer can `subscribe(callback, level)` to: from then on, each
//! `tracing` event of this program at `level` or more severe is sent to the callback as one
//! line of text (`subscribe_records` sends maps with `level`, `target`, `message` and
//! `fields` instead). Install its [`layer`](LogTap::layer) (feature `log-tap`) next to your
//! usual subscriber and lend the tap as a member of your debug object:
//!
//! ```
//! # #[cfg(feature = "log-tap")] {
//! use tracing_subscriber::prelude::*;
//! let tap = netref::debug::LogTap::new();
//! tracing_subscriber::registry().with(tap.layer()).init();
//! // lend `netref::Obj::new(tap)` as, say, the `logs` property of your debug object
//! # }
//! ```
//!
//! In the REPL: `root.logs.subscribe(print, "debug")`.
//!
//! Events of netref itself (targets starting with `netref`) are never tapped, so delivering
//! a line cannot produce more lines. Each subscription has a bounded queue (1024 lines by
//! default, [`LogTap::with_capacity`]); when a slow callback lets it fill, further lines are
//! dropped and counted, and the callback later receives one line saying how many. A
//! subscription ends when its callback fails (for example because the subscriber
//! disconnected), on `unsubscribe(id)`, or when the tap is dropped.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::net::ToSocketAddrs;
use tokio::sync::mpsc;
use tracing::Level;

use crate::error::{Error, ErrorKind, Result};
use crate::object::Object;
use crate::proxy::Proxy;
use crate::server::{Server, ServerHandle};
use crate::value::Value;

/// Lends `root` to every client that connects to `127.0.0.1:port` (port 0 picks a free one;
/// see [`ServerHandle::local_addr`]). Every client shares the one root.
pub async fn serve(root: impl Into<Arc<dyn Object>>, port: u16) -> Result<ServerHandle> {
    serve_on(root, (Ipv4Addr::LOCALHOST, port)).await
}

/// Lends `root` on `addr`, which may be any address. Anyone who can reach it can use every
/// exposed member of `root`: prefer [`serve`] (loopback only) unless you mean it.
pub async fn serve_on(
    root: impl Into<Arc<dyn Object>>,
    addr: impl ToSocketAddrs,
) -> Result<ServerHandle> {
    let handle = Server::with_root(root).bind(addr).await?;
    tracing::info!(addr = %handle.local_addr(), "netref debug endpoint listening");
    Ok(handle)
}

/// Lends `root` on this process's stdin and stdout (for `netref repl "ssh host my-program
/// --debug-stdio"`), and returns the connection; await
/// [`Connection::closed`](crate::Connection::closed) to serve until the peer leaves. The
/// program must write nothing else to stdout (logs go to stderr).
pub async fn serve_stdio(root: impl Into<Arc<dyn Object>>) -> Result<crate::Connection> {
    crate::serve_stdio(crate::Config::default(), Some(root.into())).await
}

/// The default queue of one subscription, in lines.
const DEFAULT_CAPACITY: usize = 1024;

/// A tap on this program's `tracing` events, lent to peers that subscribe to it.
pub struct LogTap {
    shared: Arc<TapShared>,
}

struct TapShared {
    subs: RwLock<Vec<Subscription>>,
    /// The most verbose level any subscriber wants (0 when none), for a cheap early exit.
    max_level: AtomicUsize,
    next_id: AtomicU64,
    capacity: usize,
}

struct Subscription {
    id: u64,
    level: Level,
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

/// One tapped event.
#[derive(Debug, Clone)]
struct Record {
    level: Level,
    target: String,
    message: String,
    fields: Vec<(String, String)>,
}

impl Record {
    fn line(&self) -> String {
        let mut s = format!("{} {}: {}", self.level, self.target, self.message);
        for (k, v) in &self.fields {
            let _ = write!(s, " {k}={v}");
        }
        s
    }

    fn map(&self) -> Value {
        Value::Map(vec![
            ("level".into(), Value::from(self.level.as_str())),
            ("target".into(), Value::from(self.target.as_str())),
            ("message".into(), Value::from(self.message.as_str())),
            (
                "fields".into(),
                Value::Map(
                    self.fields
                        .iter()
                        .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                        .collect(),
                ),
            ),
        ])
    }
}

fn level_rank(level: Level) -> usize {
    match level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Parses `error`, `warn`, `info`, `debug` or `trace` (any case).
fn parse_level(s: &str) -> Result<Level> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Ok(Level::ERROR),
        "warn" | "warning" => Ok(Level::WARN),
        "info" => Ok(Level::INFO),
        "debug" => Ok(Level::DEBUG),
        "trace" => Ok(Level::TRACE),
        _ => Err(Error::remote(
            ErrorKind::BadArguments,
            format!("unknown level {s:?}: use error, warn, info, debug or trace"),
        )),
    }
}

impl Default for LogTap {
    fn default() -> Self {
        LogTap::new()
    }
}

impl LogTap {
    /// A tap with no subscribers.
    pub fn new() -> LogTap {
        LogTap::with_capacity(DEFAULT_CAPACITY)
    }

    /// A tap whose subscriptions each queue at most `lines` lines (at least 1).
    pub fn with_capacity(lines: usize) -> LogTap {
        LogTap {
            shared: Arc::new(TapShared {
                subs: RwLock::new(Vec::new()),
                max_level: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                capacity: lines.max(1),
            }),
        }
    }

    /// The `tracing` layer that feeds this tap; add it to your subscriber.
    #[cfg(feature = "log-tap")]
    pub fn layer(&self) -> TapLayer {
        TapLayer {
            shared: self.shared.clone(),
        }
    }

    /// Current subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.shared.subs.read().len()
    }

    /// Feeds one event by hand (what the layer does for `tracing` events).
    pub fn publish(&self, level: Level, target: &str, message: &str) {
        self.shared.publish(
            || Record {
                level,
                target: target.to_owned(),
                message: message.to_owned(),
                fields: Vec::new(),
            },
            level,
            target,
        );
    }

    fn add(&self, callback: Proxy, level: Option<String>, records: bool) -> Result<u64> {
        let level = match level {
            Some(l) => parse_level(&l)?,
            None => Level::INFO,
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::remote(ErrorKind::Failed, "the log tap needs a tokio runtime"))?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.shared.capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        self.shared.subs.write().push(Subscription {
            id,
            level,
            tx,
            dropped: dropped.clone(),
        });
        self.shared.update_max();
        runtime.spawn(deliver(
            Arc::downgrade(&self.shared),
            id,
            rx,
            dropped,
            callback,
            records,
        ));
        Ok(id)
    }
}

/// Sends queued records to one subscriber's callback, in order, until it fails.
async fn deliver(
    shared: std::sync::Weak<TapShared>,
    id: u64,
    mut rx: mpsc::Receiver<Record>,
    dropped: Arc<AtomicU64>,
    callback: Proxy,
    records: bool,
) {
    while let Some(record) = rx.recv().await {
        let item = if records {
            record.map()
        } else {
            Value::Str(record.line())
        };
        if callback.call((item,)).await.is_err() {
            break;
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let note = format!("[log tap: {lost} line(s) dropped: the callback was too slow]");
            if callback.call((note,)).await.is_err() {
                break;
            }
        }
    }
    if let Some(shared) = shared.upgrade() {
        shared.subs.write().retain(|s| s.id != id);
        shared.update_max();
    }
}

impl TapShared {
    fn update_max(&self) {
        let max = self
            .subs
            .read()
            .iter()
            .map(|s| level_rank(s.level))
            .max()
            .unwrap_or(0);
        self.max_level.store(max, Ordering::Relaxed);
    }

    fn wants(&self, level: Level, target: &str) -> bool {
        level_rank(level) <= self.max_level.load(Ordering::Relaxed) && !target.starts_with("netref")
    }

    fn publish(&self, make: impl FnOnce() -> Record, level: Level, target: &str) {
        if !self.wants(level, target) {
            return;
        }
        let record = make();
        for sub in self.subs.read().iter() {
            if level_rank(level) <= level_rank(sub.level)
                && sub.tx.try_send(record.clone()).is_err()
            {
                sub.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A tap on this program's log: subscribe a callback to receive its events as they happen.
#[crate::expose]
impl LogTap {
    /// Sends each event at `level` (error, warn, info, debug or trace; info when absent) or
    /// more severe to `callback(line)` as one line of text. Returns the subscription id.
    #[exposed]
    fn subscribe(&self, callback: Proxy, level: Option<String>) -> Result<u64> {
        self.add(callback, level, false)
    }

    /// Like `subscribe`, but sends maps with `level`, `target`, `message` and `fields`.
    #[exposed]
    fn subscribe_records(&self, callback: Proxy, level: Option<String>) -> Result<u64> {
        self.add(callback, level, true)
    }

    /// Ends subscription `id`; false when there was none.
    #[exposed]
    fn unsubscribe(&self, id: u64) -> bool {
        let mut subs = self.shared.subs.write();
        let before = subs.len();
        subs.retain(|s| s.id != id);
        let removed = subs.len() != before;
        drop(subs);
        self.shared.update_max();
        removed
    }

    /// The number of current subscriptions.
    #[exposed(property)]
    fn subscribers(&self) -> usize {
        self.subscriber_count()
    }
}

/// The `tracing` layer of a [`LogTap`] (from [`LogTap::layer`]).
#[cfg(feature = "log-tap")]
pub struct TapLayer {
    shared: Arc<TapShared>,
}

#[cfg(feature = "log-tap")]
impl std::fmt::Debug for TapLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapLayer")
            .field("subscribers", &self.shared.subs.read().len())
            .finish()
    }
}

#[cfg(feature = "log-tap")]
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TapLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        let level = *meta.level();
        self.shared.publish(
            || {
                let mut v = FieldVisitor::default();
                event.record(&mut v);
                Record {
                    level,
                    target: meta.target().to_owned(),
                    message: v.message,
                    fields: v.fields.into_iter().collect(),
                }
            },
            level,
            meta.target(),
        );
    }
}

#[cfg(feature = "log-tap")]
#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: std::collections::BTreeMap<String, String>,
}

#[cfg(feature = "log-tap")]
impl tracing::field::Visit for FieldVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields
                .insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields
                .insert(field.name().to_owned(), format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Obj;

    #[tokio::test]
    async fn subscribers_receive_lines_at_their_level() {
        let tap = Obj::new(LogTap::new());
        let p = Proxy::local(tap.clone());
        let lines = Obj::new(crate::adapters::List::new());
        let sink = lines.clone();
        let cb = crate::callback(move |l: String| sink.push(Value::Str(l)));
        let id: u64 = p
            .call_method("subscribe", (cb, "info"))
            .decode()
            .await
            .unwrap();
        assert_eq!(tap.subscriber_count(), 1);
        tap.publish(Level::DEBUG, "app", "too chatty");
        tap.publish(Level::WARN, "app", "disk almost full");
        tap.publish(Level::ERROR, "netref::conn", "never tapped");
        for _ in 0..200 {
            if !lines.snapshot().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            lines.snapshot(),
            vec![Value::from("WARN app: disk almost full")]
        );
        let gone: bool = p.call_method("unsubscribe", (id,)).decode().await.unwrap();
        assert!(gone);
        assert_eq!(tap.subscriber_count(), 0);
        let bad = p.call_method("subscribe", (Value::Nil, "loud")).await;
        assert!(bad.is_err());
    }
}
