//! What a handler can know about the call it is running: its deadline and its trace.
//!
//! # Usage
//!
//! Inside an exposed method, [`time_left`] says how long the caller will still wait
//! (`None` outside a remote call or without a deadline). When the deadline passes the
//! handler's future is dropped; [`uncancellable`] runs work that must finish regardless.
//!
//! # Deadlines and traces travel
//!
//! A call a handler makes while it serves a call (a callback into its caller, a call to a
//! third peer) inherits what is left of the served call's deadline, unless it is given its
//! own with [`Call::timeout`](crate::Call::timeout); so a chain of calls across processes
//! stops when the first caller stops waiting. Likewise it carries the served call's
//! [`trace_id`]: the id the first caller minted, which every `tracing` span of the chain
//! records (`netref.call` on the caller's side, `netref.serve` on the serving side, each
//! with fields `conn`, `call`, `target`, `path` and `trace`), so the logs of several
//! processes join on it. A trace id is minted when a call's span is enabled (a `tracing`
//! subscriber listens at `debug` for `netref`) and no trace is inherited; it is sent only to
//! a peer whose hello says it reads one.
//!
//! Calls over NATS carry them too (feature `nats`): a `netref::nats` worker serves a
//! request inside its deadline and trace, and the requests and casts a handler makes
//! inherit them like its calls on a connection.
//!
//! The blocking API carries them too: a [`blocking::callback`](crate::blocking::callback)
//! runs on a thread of its own, and the calls it makes through a
//! [`blocking::Proxy`](crate::blocking::Proxy) inherit the deadline and trace of the call it
//! serves, as an async handler's calls do.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use netref::{expose, Obj};
//! struct Slow;
//! #[expose]
//! impl Slow {
//!     /// Reports the time left, in whole seconds.
//!     #[exposed]
//!     fn budget(&self) -> Option<u64> {
//!         netref::context::time_left().map(|d| d.as_secs())
//!     }
//! }
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (_s, c) = netref::pair(Some(Obj::new(Slow).erase()), None).await.unwrap();
//! let left: Option<u64> = c.root().call_method("budget", ()).timeout(Duration::from_secs(5)).decode().await.unwrap();
//! assert!(matches!(left, Some(4 | 5)));
//! # });
//! ```

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The state of the remote call a task is serving.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallContext {
    pub(crate) deadline: Option<Instant>,
    /// The trace the call belongs to (0: none).
    pub(crate) trace: u64,
}

tokio::task_local! {
    pub(crate) static CALL: CallContext;
}

thread_local! {
    /// The call a blocking callback serves, on the thread the callback runs on: the blocking
    /// API's calls made there run inside it (see [`ServedScope`]).
    static SERVED: Cell<Option<CallContext>> = const { Cell::new(None) };
}

/// Marks this thread as serving `ctx` (a blocking callback's call) until dropped.
pub(crate) struct ServedScope(Option<CallContext>);

impl ServedScope {
    pub(crate) fn enter(ctx: Option<CallContext>) -> ServedScope {
        ServedScope(SERVED.with(|s| s.replace(ctx)))
    }
}

impl Drop for ServedScope {
    fn drop(&mut self) {
        SERVED.with(|s| s.set(self.0));
    }
}

/// The call this thread serves through a blocking callback, if any.
pub(crate) fn served_on_thread() -> Option<CallContext> {
    SERVED.with(Cell::get)
}

/// The instant the current remote call's caller stops waiting, if any.
pub fn deadline() -> Option<Instant> {
    CALL.try_with(|c| c.deadline).ok().flatten()
}

/// How long the current remote call's caller will still wait, if it set a deadline.
pub fn time_left() -> Option<Duration> {
    deadline().map(|d| d.saturating_duration_since(Instant::now()))
}

/// The trace id of the remote call being served, if its caller sent one (or this side
/// minted one for it); calls made from here carry it on. See the [module docs](self).
pub fn trace_id() -> Option<u64> {
    CALL.try_with(|c| c.trace).ok().filter(|t| *t != 0)
}

/// The context of the remote call being served, if any.
#[inline]
pub(crate) fn current() -> Option<CallContext> {
    CALL.try_with(|c| *c).ok()
}

/// A fresh trace id: never 0, and unlike any other this process or (with overwhelming
/// likelihood) another mints.
pub(crate) fn mint_trace() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SEED: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut b = [0u8; 8];
        // Without the OS's randomness the clock and the process id still tell processes
        // apart.
        if getrandom::getrandom(&mut b).is_err() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            b = (now ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
        }
        u64::from_le_bytes(b)
    });
    // splitmix64 of seed + n: distinct n give distinct ids.
    let mut z = seed.wrapping_add(
        NEXT.fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z.max(1)
}

/// Runs `fut` to completion even if the call that started it is cancelled or times out.
///
/// The future runs as its own task; the handler awaits it. If the handler is dropped, the
/// task goes on (its result is then discarded).
pub async fn uncancellable<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let ctx = CALL.try_with(|c| *c).ok();
    let task = match ctx {
        Some(ctx) => tokio::spawn(CALL.scope(ctx, fut)),
        None => tokio::spawn(fut),
    };
    match task.await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
