//! Round trips without a call: [`Connection::ping`] and [`Connection::flush_releases`].
//!
//! A `Ping(n)` is answered by the peer's reader with `Pong(n)` once it has handled everything
//! it received before the ping, since it handles messages in order. The writer puts the
//! batched releases before the pings of the same batch, so a pong also means that every
//! release queued before its ping has been processed: that is the barrier of
//! [`Connection::flush_releases`]. Keepalive pings use the same numbering, so a user's ping
//! and keepalive never answer each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{Connection, Shared};
use crate::error::{Error, ErrorKind, Result};

/// Pings waiting for their pong, by number.
#[derive(Default)]
pub(crate) struct Pings {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl Pings {
    /// A fresh ping number.
    pub(crate) fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// `Pong(n)` came: wakes the ping waiting for it, if any (a keepalive ping has none).
    pub(crate) fn pong(&self, n: u64) {
        if let Some(tx) = self.waiting.lock().remove(&n) {
            let _ = tx.send(());
        }
    }

    /// Fails every waiting ping (the connection closed).
    pub(crate) fn clear(&self) {
        let waiting = std::mem::take(&mut *self.waiting.lock());
        drop(waiting);
    }
}

/// Forgets a ping whose waiter is gone (answered, timed out, or its future dropped).
struct Waiting<'a> {
    pings: &'a Pings,
    n: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pings.waiting.lock().remove(&self.n);
    }
}

impl Shared {
    /// Sends a ping and waits for its pong, at most [`Config::call_timeout`](crate::Config).
    async fn round_trip(&self) -> Result<Duration> {
        if self.is_closed() {
            return Err(self.disconnected());
        }
        let n = self.pings.next_id();
        let (tx, rx) = oneshot::channel();
        self.pings.waiting.lock().insert(n, tx);
        let _waiting = Waiting {
            pings: &self.pings,
            n,
        };
        // Teardown marks the connection closed before it clears the waiting pings: either it
        // cleared ours, or we see it closed here.
        if self.is_closed() {
            return Err(self.disconnected());
        }
        let started = tokio::time::Instant::now();
        self.queue_ping(n);
        let limit = self.config.call_timeout;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(_)) => Err(self.disconnected()),
            Err(_) => Err(Error::remote(
                ErrorKind::TimedOut,
                format!("no pong within {limit:?}"),
            )),
        }
    }
}

impl Connection {
    /// Sends a `Ping` and waits for the peer's `Pong`: the round-trip time of the link,
    /// through the peer's reader (so it includes the time the peer takes to get to the ping
    /// behind what it is handling).
    ///
    /// Fails with [`ErrorKind::TimedOut`] after [`Config::call_timeout`](crate::Config)
    /// without a pong, and with [`Error::Disconnected`] when the connection is or becomes
    /// closed. Pings are one-way control messages: they never run code on the peer and do not
    /// count as calls.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (a, _b) = netref::pair(None, None).await.unwrap();
    /// let rtt = a.ping().await.unwrap();
    /// assert!(rtt < std::time::Duration::from_secs(30));
    /// # });
    /// ```
    pub async fn ping(&self) -> Result<Duration> {
        self.link.shared.round_trip().await
    }

    /// Returns once the peer has processed every `Release` this side queued before the call
    /// (dropping the last proxy of a remote object queues one): when it returns, the peer's
    /// export table no longer counts those references, and an object they were the last
    /// holders of has been freed (its `Drop` has run). A barrier for tests and tools that
    /// check lifetimes, instead of polling.
    ///
    /// A proxy that is still inside a value being sent is released only after that frame is
    /// written, so drop it after the call that carried it has returned. Errors as
    /// [`Connection::ping`], which is the round trip it waits for.
    ///
    /// ```
    /// use netref::{adapters::List, Obj};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// // `b` lends a list; `a` gets a proxy of an iterator over it, then drops it.
    /// let list = Obj::new(List::from_vec(vec![1i64.into(), 2i64.into()]));
    /// let (a, b) = netref::pair(None, Some(list.erase())).await.unwrap();
    /// let it = a.root().call_method("iter", ()).await.unwrap();
    /// assert_eq!(b.stats().live_exports, 1);
    /// drop(it);
    /// a.flush_releases().await.unwrap();
    /// assert_eq!(b.stats().live_exports, 0);
    /// # });
    /// ```
    pub async fn flush_releases(&self) -> Result<()> {
        self.link.shared.round_trip().await.map(|_| ())
    }
}
