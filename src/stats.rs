//! Connection statistics, for tests, the REPL and the tutorial.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of one connection's counters.
///
/// `round_trips` counts calls whose caller waited for a `Return`; pipelined calls and
/// one-way messages do not add to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages written to the peer (calls, returns, releases, …).
    pub messages_sent: u64,
    /// Messages read from the peer.
    pub messages_received: u64,
    /// `Call` messages written.
    pub calls_sent: u64,
    /// `Call` messages read.
    pub calls_received: u64,
    /// Calls whose caller waited for the reply.
    pub round_trips: u64,
    /// One-way calls written ([`Proxy::cast`](crate::Proxy::cast)); also counted in
    /// `calls_sent`, never in `round_trips`.
    pub casts_sent: u64,
    /// One-way calls from the peer that failed here (each is logged here, as nothing is sent
    /// back).
    pub casts_failed: u64,
    /// `Release` messages written (each may carry many ids).
    pub releases_sent: u64,
    /// Bytes written, frames included.
    pub bytes_sent: u64,
    /// Bytes read, frames included.
    pub bytes_received: u64,
    /// Objects this side currently lends to the peer (its export table).
    pub live_exports: u64,
    /// Remote objects this side currently holds proxies of (its import table).
    pub live_imports: u64,
    /// Bytes of frames waiting in the send queue right now (bounded by
    /// [`Config::send_queue_bytes`](crate::Config::send_queue_bytes)).
    pub queued_bytes: u64,
    /// Times the reader found input while it kept looking for it instead of sleeping
    /// ([`Config::busy_poll`](crate::Config::busy_poll)); always 0 when that is off.
    pub busy_poll_hits: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_sent: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) calls_sent: AtomicU64,
    pub(crate) calls_received: AtomicU64,
    pub(crate) round_trips: AtomicU64,
    pub(crate) casts_sent: AtomicU64,
    pub(crate) casts_failed: AtomicU64,
    pub(crate) releases_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) busy_poll_hits: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(
        &self,
        live_exports: u64,
        live_imports: u64,
        queued_bytes: u64,
    ) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            messages_sent: g(&self.messages_sent),
            messages_received: g(&self.messages_received),
            calls_sent: g(&self.calls_sent),
            calls_received: g(&self.calls_received),
            round_trips: g(&self.round_trips),
            casts_sent: g(&self.casts_sent),
            casts_failed: g(&self.casts_failed),
            releases_sent: g(&self.releases_sent),
            bytes_sent: g(&self.bytes_sent),
            bytes_received: g(&self.bytes_received),
            live_exports,
            live_imports,
            queued_bytes,
            busy_poll_hits: g(&self.busy_poll_hits),
        }
    }
}
