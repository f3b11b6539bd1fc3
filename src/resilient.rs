//! Connections that heal: re-dial with backoff after a loss, with a fresh root.
//!
//! # Usage
//!
//! ```no_run
//! # async fn demo() -> netref::Result<()> {
//! let link = netref::connect_resilient("127.0.0.1:18861").await?;
//! link.on_broken(|b| eprintln!("connection {} lost: {}", b.generation, b.reason));
//! let root = link.root().await?; // waits for a re-dial when the peer is away
//! root.call_method("add", (1, 2)).await?;
//! # Ok(()) }
//! ```
//!
//! A [`Resilient`] holds one [`Connection`] at a time. When it is lost (the peer died or
//! restarted, the network went away, the peer closed it), a task of the `Resilient`:
//!
//! 1. fires every [`on_broken`](Resilient::on_broken) callback once, and wakes every
//!    [`broken`](Resilient::broken) future, with a [`Broken`] naming the lost generation;
//! 2. re-dials the target with exponential backoff ([`ResilientOptions`]: 50 ms doubling up
//!    to 5 s, each delay jittered down by up to half), forever by default;
//! 3. installs the new connection as the next generation: [`Resilient::root`] returns its
//!    fresh root.
//!
//! The target is anything that implements [`Dial`]: an address (`"HOST:PORT"`,
//! `"unix:PATH"`, a [`SocketAddr`]), [`Address`] with a [`Config`], a closure through
//! [`dial_fn`], or a service in the NATS registry (`netref::nats::service`, with the `nats`
//! feature), which discovers afresh on every re-dial.
//!
//! # Object lifetimes
//!
//! Proxies belong to the connection they came from. A proxy taken before a loss (the old
//! root, or any object reached through it) fails with [`ErrorKind::Disconnected`] for ever
//! after, even once a new connection is up: it never reaches the new peer's objects, which
//! may be different objects with different state. Take a fresh root after a loss and
//! rebuild from there; [`Resilient::generation`] tells which connection is current.
//!
//! # Errors
//!
//! Calls in flight when the connection is lost fail at once with
//! [`ErrorKind::Disconnected`] (the engine fails every pending call on loss).
//! [`Resilient::root`] waits up to [`ResilientOptions::wait`] for a re-dial, then fails with
//! `Disconnected`, saying how many attempts failed and the last error.
//!
//! [`ErrorKind::Disconnected`]: crate::ErrorKind::Disconnected

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::proxy::Proxy;

/// Something a [`Resilient`] can (re-)dial.
pub trait Dial: Send + Sync + 'static {
    /// Opens a new connection.
    fn dial(&self) -> BoxFuture<'_, Result<Connection>>;
    /// What is dialled, for messages (`127.0.0.1:18861`, `service `jobs``).
    fn describe(&self) -> String;
}

/// An address (`HOST:PORT` or `unix:PATH`) with the [`Config`] to connect with.
#[derive(Debug, Clone)]
pub struct Address {
    target: String,
    config: Config,
}

impl Address {
    /// `target` (`HOST:PORT` or `unix:PATH`) with the default config.
    pub fn new(target: impl Into<String>) -> Address {
        Address {
            target: target.into(),
            config: Config::default(),
        }
    }

    /// Connects with `config`.
    pub fn config(mut self, config: Config) -> Address {
        self.config = config;
        self
    }
}

impl Dial for Address {
    fn dial(&self) -> BoxFuture<'_, Result<Connection>> {
        Box::pin(async move {
            #[cfg(unix)]
            if let Some(path) = self.target.strip_prefix("unix:") {
                return crate::transport::connect_unix_with(path, self.config.clone(), None).await;
            }
            crate::transport::connect_with(self.target.as_str(), self.config.clone(), None).await
        })
    }

    fn describe(&self) -> String {
        self.target.clone()
    }
}

impl Dial for String {
    fn dial(&self) -> BoxFuture<'_, Result<Connection>> {
        Box::pin(async move { Address::new(self.clone()).dial().await })
    }

    fn describe(&self) -> String {
        self.clone()
    }
}

impl Dial for &'static str {
    fn dial(&self) -> BoxFuture<'_, Result<Connection>> {
        (*self).to_owned().dial_owned()
    }

    fn describe(&self) -> String {
        (*self).to_owned()
    }
}

impl Dial for SocketAddr {
    fn dial(&self) -> BoxFuture<'_, Result<Connection>> {
        self.to_string().dial_owned()
    }

    fn describe(&self) -> String {
        self.to_string()
    }
}

trait DialOwned {
    fn dial_owned(self) -> BoxFuture<'static, Result<Connection>>;
}

impl DialOwned for String {
    fn dial_owned(self) -> BoxFuture<'static, Result<Connection>> {
        Box::pin(async move { Address::new(self).dial().await })
    }
}

/// A closure as a [`Dial`] target (see [`dial_fn`]).
pub struct DialFn<F> {
    name: String,
    f: F,
}

impl<F> fmt::Debug for DialFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialFn").field("name", &self.name).finish()
    }
}

/// Makes `f` (which opens a connection each time it is called) a [`Dial`] target called
/// `name` in messages.
pub fn dial_fn<F, Fut>(name: impl Into<String>, f: F) -> DialFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Connection>> + Send + 'static,
{
    DialFn {
        name: name.into(),
        f,
    }
}

impl<F, Fut> Dial for DialFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Connection>> + Send + 'static,
{
    fn dial(&self) -> BoxFuture<'_, Result<Connection>> {
        Box::pin((self.f)())
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// How a [`Resilient`] re-dials.
#[derive(Debug, Clone)]
pub struct ResilientOptions {
    /// The delay after the first failed re-dial (default 50 ms); it doubles after each.
    pub first_delay: Duration,
    /// The longest delay between two re-dials (default 5 s).
    pub max_delay: Duration,
    /// Failed re-dials after which it gives up until [`Resilient::reconnect`] (default:
    /// never gives up).
    pub max_attempts: Option<u32>,
    /// How long [`Resilient::root`] and [`Resilient::connection`] wait for a re-dial
    /// (default 30 s).
    pub wait: Duration,
}

impl Default for ResilientOptions {
    fn default() -> Self {
        ResilientOptions {
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            max_attempts: None,
            wait: Duration::from_secs(30),
        }
    }
}

impl ResilientOptions {
    /// The delay before re-dial number `attempt` (1-based) after a failure: doubling from
    /// `first_delay`, capped at `max_delay`, jittered down by up to half so that many
    /// clients of one restarted server do not all come back at the same instant.
    fn delay(&self, attempt: u32) -> Duration {
        let doubled = self
            .first_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let delay = doubled.min(self.max_delay);
        let mut byte = [0u8; 1];
        let _ = getrandom::getrandom(&mut byte);
        delay - delay / 2 * u32::from(byte[0]) / 255
    }
}

/// A lost connection, as [`Resilient::on_broken`] and [`Resilient::broken`] report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The generation of the lost connection (1 for the first): proxies taken while
    /// [`Resilient::generation`] was this are dead for good.
    pub generation: u64,
    /// Why it closed, as the engine saw it.
    pub reason: String,
}

#[derive(Clone)]
enum State {
    Up {
        conn: Connection,
        generation: u64,
    },
    Down {
        /// The generation that was lost.
        generation: u64,
        attempts: u32,
        last_error: Option<String>,
        gave_up: bool,
    },
    Closed,
}

type Hook = Arc<dyn Fn(&Broken) + Send + Sync>;

struct Inner {
    target: Arc<dyn Dial>,
    options: ResilientOptions,
    state: watch::Sender<State>,
    hooks: parking_lot::Mutex<Vec<Hook>>,
    last_broken: parking_lot::Mutex<Option<Broken>>,
    /// Re-dial now (skip the backoff, or start again after giving up).
    kick: Arc<Notify>,
    /// Dropped with the last handle: ends the supervising task.
    _alive: watch::Sender<()>,
}

/// A connection that re-dials after a loss. Cheap to clone; dropping the last clone closes
/// the connection and stops re-dialing. See the [module docs](self).
#[derive(Clone)]
pub struct Resilient {
    inner: Arc<Inner>,
}

impl fmt::Debug for Resilient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilient")
            .field("target", &self.inner.target.describe())
            .field("generation", &self.generation())
            .field("up", &self.is_up())
            .finish()
    }
}

/// Connects to `target` and keeps re-dialing it after every loss, with default options.
/// The first dial's failure is returned as it is.
pub async fn connect_resilient(target: impl Dial) -> Result<Resilient> {
    connect_resilient_with(target, ResilientOptions::default()).await
}

/// [`connect_resilient`] with `options`.
pub async fn connect_resilient_with(
    target: impl Dial,
    options: ResilientOptions,
) -> Result<Resilient> {
    let target: Arc<dyn Dial> = Arc::new(target);
    let conn = target.dial().await?;
    let (state, _) = watch::channel(State::Up {
        conn,
        generation: 1,
    });
    let (alive, alive_rx) = watch::channel(());
    let inner = Arc::new(Inner {
        target,
        options,
        state,
        hooks: parking_lot::Mutex::new(Vec::new()),
        last_broken: parking_lot::Mutex::new(None),
        kick: Arc::new(Notify::new()),
        _alive: alive,
    });
    tokio::spawn(supervise(Arc::downgrade(&inner), alive_rx));
    Ok(Resilient { inner })
}

impl Resilient {
    /// The current connection; while re-dialing, waits up to [`ResilientOptions::wait`].
    pub async fn connection(&self) -> Result<Connection> {
        let mut rx = self.inner.state.subscribe();
        // A connection already closed but not yet replaced counts as down: the supervisor
        // is about to notice.
        let ready = |s: &State| match s {
            State::Up { conn, .. } => !conn.is_closed(),
            State::Closed | State::Down { gave_up: true, .. } => true,
            State::Down { .. } => false,
        };
        let waited = tokio::time::timeout(self.inner.options.wait, rx.wait_for(ready))
            .await
            .map(drop);
        let state = rx.borrow().clone();
        match state {
            State::Up { conn, .. } if !conn.is_closed() => Ok(conn),
            State::Up { .. } => Err(Error::Disconnected(format!(
                "{} is away",
                self.inner.target.describe()
            ))),
            State::Closed => Err(Error::Disconnected(
                "the resilient connection was closed".into(),
            )),
            State::Down {
                attempts,
                last_error,
                gave_up,
                ..
            } => {
                let target = self.inner.target.describe();
                let last = last_error.unwrap_or_else(|| "none yet".into());
                Err(Error::Disconnected(if gave_up || waited.is_err() {
                    format!(
                        "{} {target} after {attempts} failed re-dials (last: {last})",
                        if gave_up {
                            "gave up on"
                        } else {
                            "still re-dialing"
                        }
                    )
                } else {
                    format!("{target} is away")
                }))
            }
        }
    }

    /// A proxy of the current connection's root (a fresh one after each re-dial); while
    /// re-dialing, waits up to [`ResilientOptions::wait`].
    pub async fn root(&self) -> Result<Proxy> {
        Ok(self.connection().await?.root())
    }

    /// The current connection, without waiting: `None` while re-dialing.
    pub fn current(&self) -> Option<Connection> {
        match &*self.inner.state.borrow() {
            State::Up { conn, .. } => Some(conn.clone()),
            _ => None,
        }
    }

    /// True while a connection is up.
    pub fn is_up(&self) -> bool {
        matches!(&*self.inner.state.borrow(), State::Up { .. })
    }

    /// The generation of the current (or, while re-dialing, the lost) connection: 1 for the
    /// first, one more after each re-dial.
    pub fn generation(&self) -> u64 {
        match &*self.inner.state.borrow() {
            State::Up { generation, .. } | State::Down { generation, .. } => *generation,
            State::Closed => 0,
        }
    }

    /// Calls `f` once for every loss, from the supervising task, before re-dialing starts.
    /// Keep it short; it must not block.
    pub fn on_broken(&self, f: impl Fn(&Broken) + Send + Sync + 'static) {
        self.inner.hooks.lock().push(Arc::new(f));
    }

    /// Resolves when the connection current now is lost (at once if it already is).
    pub async fn broken(&self) -> Broken {
        let mut rx = self.inner.state.subscribe();
        let generation = self.generation();
        let _ = rx
            .wait_for(|s| match s {
                State::Up { generation: g, .. } => *g > generation,
                State::Down { .. } | State::Closed => true,
            })
            .await;
        self.inner
            .last_broken
            .lock()
            .clone()
            .unwrap_or_else(|| Broken {
                generation,
                reason: "the resilient connection was closed".into(),
            })
    }

    /// Re-dials now when the connection is down (skipping the backoff, or starting again
    /// after giving up), and waits for the result like [`Resilient::connection`].
    pub async fn reconnect(&self) -> Result<Connection> {
        if !self.is_up() {
            // Waiters wait again: a re-dial is coming.
            self.inner.state.send_modify(|s| {
                if let State::Down { gave_up, .. } = s {
                    *gave_up = false;
                }
            });
            self.inner.kick.notify_one();
        }
        self.connection().await
    }

    /// Stops re-dialing and closes the current connection.
    pub async fn close(&self) {
        let old = self.inner.state.send_replace(State::Closed);
        self.inner.kick.notify_one();
        if let State::Up { conn, .. } = old {
            conn.close().await;
        }
    }
}

/// The supervising task: waits for a loss, reports it, re-dials. Ends when the last
/// [`Resilient`] is dropped or it is closed.
async fn supervise(inner: Weak<Inner>, mut alive: watch::Receiver<()>) {
    loop {
        let Some(this) = inner.upgrade() else { return };
        // Always `Up` here: the task starts on a connection and `redial` installs one
        // before it returns `true`; `Closed` ends it.
        let (conn, generation) = match &*this.state.borrow() {
            State::Up { conn, generation } => (conn.clone(), *generation),
            State::Down { .. } | State::Closed => return,
        };
        drop(this);
        tokio::select! {
            _ = conn.closed() => {}
            // The last handle is gone: drop our clone of the connection, which closes it.
            _ = alive.changed() => return,
        }
        let reason = conn
            .close_reason()
            .unwrap_or_else(|| "connection lost".into());
        drop(conn);
        let Some(this) = inner.upgrade() else { return };
        if matches!(&*this.state.borrow(), State::Closed) {
            return;
        }
        let broken = Broken { generation, reason };
        tracing::info!(target = %this.target.describe(), generation, reason = %broken.reason, "connection lost; re-dialing");
        *this.last_broken.lock() = Some(broken.clone());
        this.state.send_replace(State::Down {
            generation,
            attempts: 0,
            last_error: None,
            gave_up: false,
        });
        let hooks = this.hooks.lock().clone();
        for hook in hooks {
            hook(&broken);
        }
        drop(this);
        if !redial(&inner, &mut alive, generation).await {
            return;
        }
    }
}

/// Re-dials until a connection is up (`true`) or the `Resilient` is gone or closed (`false`).
async fn redial(inner: &Weak<Inner>, alive: &mut watch::Receiver<()>, lost: u64) -> bool {
    let mut attempts = 0u32;
    loop {
        let Some(this) = inner.upgrade() else {
            return false;
        };
        let target = this.target.clone();
        drop(this);
        let dialled = tokio::select! {
            d = target.dial() => d,
            _ = alive.changed() => return false,
        };
        let Some(this) = inner.upgrade() else {
            return false;
        };
        if matches!(&*this.state.borrow(), State::Closed) {
            if let Ok(conn) = dialled {
                conn.close().await;
            }
            return false;
        }
        let error = match dialled {
            Ok(conn) => {
                tracing::info!(target = %target.describe(), generation = lost + 1, "re-dialled");
                this.state.send_replace(State::Up {
                    conn,
                    generation: lost + 1,
                });
                return true;
            }
            Err(e) => e.to_string(),
        };
        attempts += 1;
        let gave_up = this.options.max_attempts.is_some_and(|max| attempts >= max);
        this.state.send_replace(State::Down {
            generation: lost,
            attempts,
            last_error: Some(error),
            gave_up,
        });
        let delay = this.options.delay(attempts);
        let kick = this.kick.clone();
        drop(this);
        tokio::select! {
            _ = tokio::time::sleep(delay), if !gave_up => {}
            _ = kick.notified() => {
                attempts = 0;
            }
            _ = alive.changed() => return false,
        }
    }
}
