//! A connection's life: its tasks and their count, keepalive, closing and teardown.
//!
//! [`Shared::teardown`] runs once, whoever gets there first (the reader at end of stream or
//! on a protocol error, the writer on a write error, [`Connection::close`](crate::Connection::close),
//! the last handle dropped, keepalive): it marks the connection closed, fails every pending
//! call, cancels running handlers and empties every table, dropping what they held outside
//! their locks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Connection, Link, Shared};
use crate::error::Error;

/// Tasks of every connection in this process (see [`live_tasks`]).
static LIVE_TASKS: AtomicU64 = AtomicU64::new(0);

/// The number of tasks netref runs right now in this process, across all connections
/// (readers, writers, keepalives, handlers still running). After every connection has
/// closed (see [`Connection::closed`](crate::Connection::closed)) it is back to zero:
/// nothing is left behind.
pub fn live_tasks() -> u64 {
    LIVE_TASKS.load(Ordering::Acquire)
}

/// Counts one task of a connection for as long as it lives.
struct TaskCount(Arc<Shared>);

impl Drop for TaskCount {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::AcqRel);
        LIVE_TASKS.fetch_sub(1, Ordering::AcqRel);
        self.0.tasks_done.notify_waiters();
    }
}

impl Shared {
    /// Spawns a task counted in [`Shared::tasks`].
    pub(crate) fn spawn_task<F>(self: &Arc<Self>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.fetch_add(1, Ordering::AcqRel);
        LIVE_TASKS.fetch_add(1, Ordering::AcqRel);
        let shared = self.clone();
        tokio::spawn(async move {
            // Counted down even if the runtime drops the task before it finishes.
            let _count = TaskCount(shared);
            fut.await;
        });
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The error of an operation on a closed connection, with the reason it closed.
    pub(crate) fn disconnected(&self) -> Error {
        match self.close_reason.lock().clone() {
            Some(r) => Error::Disconnected(r),
            None => Error::disconnected(),
        }
    }

    /// Notes that something arrived from the peer (for keepalive).
    #[inline]
    pub(crate) fn mark_received(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_received.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_received.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Starts closing: the writer sends a goodbye and stops, the reader stops, and
    /// [`Shared::teardown`] frees everything.
    pub(crate) fn close(&self, reason: String) {
        if self.is_closed() {
            return;
        }
        self.queue_goodbye(&reason);
        self.teardown(reason);
    }

    /// Marks the connection closed and frees everything it holds. Idempotent.
    pub(crate) fn teardown(&self, reason: String) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!(%reason, "connection closed");
        self.close_reason.lock().get_or_insert(reason.clone());
        let _ = self.closed_tx.send(true);
        self.control_notify.notify_one();
        self.room.notify_waiters();
        // Every table drops what it held outside its lock: an object's `Drop` may reach
        // back into this connection. Pending calls stay registered until their futures take
        // the error (or are dropped).
        self.pending.fail_all(&reason);
        self.pings.clear();
        self.run_closing_hooks();
        self.running.clear();
        self.answers.clear();
        self.exports.clear();
        self.imports.clear();
        self.root.replace(None);
    }

    /// Waits until the connection is closed and all its tasks are gone.
    pub(crate) async fn wait_closed(&self) {
        loop {
            let done = self.tasks_done.notified();
            // Only the handlers of this connection and its two tasks are counted.
            if self.is_closed() && self.tasks.load(Ordering::Acquire) == 0 {
                return;
            }
            done.await;
        }
    }

    /// Refuses new incoming calls and waits until the calls already running finish or
    /// `deadline` passes.
    pub(crate) async fn drain(&self, deadline: tokio::time::Instant) {
        self.draining.store(true, Ordering::Release);
        loop {
            let done = self.tasks_done.notified();
            if self.running.is_empty() || self.is_closed() {
                return;
            }
            tokio::select! {
                _ = done => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }
}

/// Pings a quiet peer and closes the connection when it stays silent past the timeout, so a
/// half-open link fails its calls instead of hanging them.
pub(crate) async fn keepalive(
    shared: Arc<Shared>,
    interval: Duration,
    mut closed: watch::Receiver<bool>,
) {
    let timeout = shared.config.keepalive_timeout;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = closed.wait_for(|c| *c) => return,
        }
        let idle = shared.idle();
        if idle >= timeout {
            shared.teardown(format!(
                "no message from the peer for {idle:?} (keepalive timeout {timeout:?})"
            ));
            return;
        }
        if idle >= interval {
            // Numbered like `Connection::ping`'s, so neither takes the other's pong.
            shared.queue_ping(shared.pings.next_id());
        }
    }
}

/// A hook of [`Connection::on_closing`].
pub(crate) type ClosingHook = Box<dyn FnOnce(&Connection) + Send>;

impl Shared {
    /// Adds a [`Connection::on_closing`] hook, or runs it at once when the connection is
    /// closed already.
    pub(crate) fn add_closing_hook(&self, hook: ClosingHook, conn: &Connection) {
        {
            let mut hooks = self.closing.lock();
            if !self.is_closed() {
                hooks.push(hook);
                return;
            }
        }
        run_closing_hook(hook, conn);
    }

    /// Runs the [`Connection::on_closing`] hooks (once: they are taken out). Called by
    /// [`Shared::teardown`] after the connection is marked closed, before its tables are
    /// emptied.
    fn run_closing_hooks(&self) {
        let hooks = std::mem::take(&mut *self.closing.lock());
        if hooks.is_empty() {
            return;
        }
        // Closing because the last handle was dropped: lend the hooks a fresh one (the
        // connection is closed already, so dropping it again does nothing).
        let link = self
            .link()
            .or_else(|| self.me.upgrade().map(|shared| Arc::new(Link { shared })));
        let Some(link) = link else {
            return;
        };
        let conn = Connection { link };
        for hook in hooks {
            run_closing_hook(hook, &conn);
        }
    }
}

/// Runs one closing hook, containing a panic in it.
fn run_closing_hook(hook: ClosingHook, conn: &Connection) {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(conn)));
    if ran.is_err() {
        tracing::warn!("a connection's closing hook panicked");
    }
}
