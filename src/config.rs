//! Per-connection configuration and limits.

use std::time::Duration;

use crate::auth::{Role, Secret};

/// Settings and limits of one connection. Every limit has a documented default.
///
/// ```
/// let cfg = netref::Config::default();
/// assert_eq!(cfg.max_frame, 16 * 1024 * 1024);
/// assert_eq!(cfg.max_depth, 64);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame accepted from the peer, in bytes. Default 16 MiB.
    pub max_frame: usize,
    /// Deepest value nesting accepted from the peer. Default 64.
    pub max_depth: usize,
    /// Time allowed for the hello exchange. Default 10 s; [`Duration::MAX`]: no bound.
    pub handshake_timeout: Duration,
    /// Default deadline of every call. Default 30 s. [`Duration::MAX`] (or any timeout too
    /// long for the clock to hold) means no deadline: such a call waits as long as its reply
    /// takes, and the peer's handler sees no deadline either
    /// ([`context::time_left`](crate::context::time_left) is `None`).
    pub call_timeout: Duration,
    /// Frames queued for the writer task before senders wait. Default 1024.
    pub send_queue: usize,
    /// Bytes queued for the writer task before senders wait (a frame larger than this still
    /// goes when nothing else is queued). Replies the reader cannot queue wait beside the
    /// queue up to as many bytes again; past that the peer is taken to have stopped reading
    /// and the connection closes. Default 16 MiB.
    pub send_queue_bytes: usize,
    /// A label for traces and errors (default: the peer address, or `"memory"`).
    pub label: Option<String>,
    /// Most objects this side lends at once on one connection; a value that would lend more
    /// fails with [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded). Default 1,000,000.
    pub max_exports: usize,
    /// Most incoming calls running at once; the excess is refused at once with
    /// [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded) (the reader never stalls).
    /// Default 1024.
    pub max_in_flight: usize,
    /// Send a `Ping` after this long without receiving anything. `None` disables
    /// keepalive. Default 15 s.
    pub keepalive_interval: Option<Duration>,
    /// Close the connection (failing its calls with `Disconnected`) after this long without
    /// receiving anything while keepalive is on. Default 45 s.
    pub keepalive_timeout: Duration,
    /// Close the connection when a write to the peer makes no progress for this long (the
    /// peer stopped reading): the send queue stays bounded and a stuck peer is dropped
    /// instead of holding memory and tasks. Default 30 s; [`Duration::MAX`]: no bound.
    pub write_stall_timeout: Duration,
    /// How long the reader keeps looking for input before it lets its thread sleep. Off
    /// (zero) by default.
    ///
    /// A thread asleep must be woken when the next frame arrives, and the waking costs the
    /// peer that sends it: on a virtual machine, an interrupt to the other CPU, 5–15 µs of
    /// the sender's kernel time per frame on the one `docs/benchmarks.md` measures. Against
    /// a peer that sends frames every few tens of microseconds (calls pipelined from a
    /// Python RPyC client, replies streaming from a Python server) those wake-ups can bound
    /// the rate. With a duration here, after the last input the reader polls the transport
    /// (yielding to the runtime in between, which polls its I/O driver without blocking)
    /// for up to that long before it waits: a frame that comes meanwhile finds the thread
    /// awake. The price is CPU: the thread stays busy for that long after every burst of
    /// input, and all along while input keeps coming faster than that.
    ///
    /// It works where the waiting thread is the one that drives I/O: a current-thread tokio
    /// runtime. On a multi-thread runtime another worker may sleep in the I/O driver and be
    /// woken instead. [`Stats::busy_poll_hits`](crate::Stats::busy_poll_hits) counts the
    /// frames it caught.
    pub busy_poll: Duration,
    /// A shared secret both peers must know: the hello then runs a challenge–response
    /// exchange and the connection is refused unless the peer proves it holds the same
    /// secret (see [`crate::auth`]). Both sides must agree: a secret on one side only is
    /// refused too. Default `None` (no authentication).
    pub secret: Option<Secret>,
    /// Which end of the transport this side is, when the transport knows (TCP or TLS
    /// connect, a server's accept); it labels this side's authentication proof.
    pub(crate) role: Role,
    /// Hooks a [`Server`](crate::Server) gives the connections it accepts, installed before
    /// the connection's tasks start so that none can be missed.
    pub(crate) hooks: Hooks,
}

/// What runs when a connection closes, before its tables are torn down (see
/// [`Connection::on_closing`](crate::Connection::on_closing)).
pub(crate) type ClosingFn = std::sync::Arc<dyn Fn(&crate::Connection) + Send + Sync>;

/// What runs when a connection opens, before it serves any call (see
/// [`Server::on_connect_async`](crate::Server::on_connect_async)); an error refuses the
/// connection.
pub(crate) type ConnectFn = std::sync::Arc<
    dyn Fn(crate::Connection) -> futures_util::future::BoxFuture<'static, crate::Result<()>>
        + Send
        + Sync,
>;

/// The default of [`Hooks::connect_timeout`]
/// ([`Server::connect_hook_timeout`](crate::Server::connect_hook_timeout)).
pub(crate) const CONNECT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The hooks of [`Config::hooks`].
#[derive(Clone)]
pub(crate) struct Hooks {
    pub(crate) closing: Option<ClosingFn>,
    pub(crate) connect: Option<ConnectFn>,
    /// How long `connect` may take before the connection is refused.
    pub(crate) connect_timeout: Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            closing: None,
            connect: None,
            connect_timeout: CONNECT_HOOK_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("closing", &self.closing.is_some())
            .field("connect", &self.connect.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame: 16 * 1024 * 1024,
            max_depth: 64,
            handshake_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            send_queue: 1024,
            send_queue_bytes: 16 * 1024 * 1024,
            label: None,
            max_exports: 1_000_000,
            max_in_flight: 1024,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_timeout: Duration::from_secs(45),
            write_stall_timeout: Duration::from_secs(30),
            busy_poll: Duration::ZERO,
            secret: None,
            role: Role::Unknown,
            hooks: Hooks::default(),
        }
    }
}

impl Config {
    /// Sets [`Config::label`].
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets [`Config::call_timeout`].
    pub fn with_call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }

    /// No timer at all: no call deadline, no bound on the hello or on a stalled write, no
    /// keepalive ([`Duration::MAX`] for each timeout, keepalive off).
    ///
    /// For connections whose both ends are this program's own code, such as an in-memory
    /// [`pair`](crate::pair) in a test or an example, whose outcome must then not depend on
    /// how fast the machine runs: a machine stalled for longer than a timeout (a busy build,
    /// a paused VM) would otherwise fail calls whose replies were on their way. Never for a
    /// peer across a network or another process: a dead or stuck peer would then hold its
    /// calls, and this side's memory, forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = netref::Config::default().with_no_timeouts();
    /// assert_eq!(cfg.call_timeout, Duration::MAX);
    /// assert!(cfg.keepalive_interval.is_none());
    /// ```
    pub fn with_no_timeouts(mut self) -> Self {
        self.call_timeout = Duration::MAX;
        self.handshake_timeout = Duration::MAX;
        self.write_stall_timeout = Duration::MAX;
        self.keepalive_interval = None;
        self
    }

    /// Sets [`Config::max_frame`].
    pub fn with_max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Sets [`Config::keepalive_interval`] and [`Config::keepalive_timeout`]; `None`
    /// disables keepalive.
    pub fn with_keepalive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.keepalive_interval = interval;
        self.keepalive_timeout = timeout;
        self
    }

    /// Sets [`Config::write_stall_timeout`].
    pub fn with_write_stall_timeout(mut self, d: Duration) -> Self {
        self.write_stall_timeout = d;
        self
    }

    /// Sets [`Config::busy_poll`].
    pub fn with_busy_poll(mut self, d: Duration) -> Self {
        self.busy_poll = d;
        self
    }

    /// Sets [`Config::send_queue_bytes`].
    pub fn with_send_queue_bytes(mut self, bytes: usize) -> Self {
        self.send_queue_bytes = bytes;
        self
    }

    /// Sets [`Config::max_in_flight`].
    pub fn with_max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = calls;
        self
    }

    /// Sets [`Config::max_exports`].
    pub fn with_max_exports(mut self, objects: usize) -> Self {
        self.max_exports = objects;
        self
    }

    /// Sets [`Config::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// Sets [`Config::max_depth`].
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Sets [`Config::secret`]: the peer must prove it knows the same secret.
    ///
    /// ```
    /// let cfg = netref::Config::default().with_secret(netref::Secret::new("s3cret"));
    /// assert!(cfg.secret.is_some());
    /// ```
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Marks this side as the one that opened (or accepted) the transport, for the
    /// direction label of the authentication proof.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }
}
