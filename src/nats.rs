//! Past one machine: discovery, worker pools and fanout over [NATS](https://nats.io).
//!
//! netref does not run a broker or a registry of its own: NATS, an existing messaging
//! system with request/reply, queue groups and a key-value store with expiry, carries what
//! crosses machines without a connection of its own. References stay tied to one netref
//! connection, so the work splits in two:
//!
//! - **NATS carries** discovery (a registry of live instances), and one-shot calls whose
//!   arguments and results are plain values: [`request`] (one member of a queue group,
//!   load-balanced by NATS), [`cast`] (one-way) and [`fanout`] (every instance, replies
//!   gathered until a deadline).
//! - **The direct connection carries** everything by reference: [`connect_service`]
//!   discovers an instance and opens an ordinary netref [`Connection`] (TCP or Unix) to it,
//!   where files, callbacks and objects travel as usual.
//!
//! Behind the `nats` cargo feature (client: `async-nats`).
//!
//! # Usage
//!
//! ```no_run
//! use netref::nats::{self, Nats};
//! use netref::{Obj, Server};
//! # struct Lab;
//! # #[netref::expose] impl Lab { #[exposed] fn add(&self, a: i64, b: i64) -> i64 { a + b } }
//! # async fn demo() -> netref::Result<()> {
//! let nats = Nats::connect("nats://127.0.0.1:4222").await?;
//!
//! // A server: listen, register under a name, and serve value calls from the queue group.
//! let root = Obj::new(Lab).erase();
//! let server = Server::with_root(root.clone()).bind("127.0.0.1:0").await?;
//! let registration = nats::register(&nats, "lab", &server).await?;
//! let _worker = registration.serve(root).await?;
//!
//! // A client: by value through NATS, or by reference over a direct connection.
//! let three = nats::request(&nats, "lab", "add", (1, 2)).await?;
//! let conn = nats::connect_service(&nats, "lab").await?;
//! let five = conn.root().call_method("add", (2, 3)).await?;
//! # Ok(()) }
//! ```
//!
//! # The registry
//!
//! Instances live in a JetStream key-value bucket ([`NatsOptions::bucket`], key
//! `SERVICE.ID`) whose entries expire [`NatsOptions::ttl`] after they were last written (10 s
//! by default). A [`Registration`] rewrites its entry every third of that (the heartbeat,
//! carrying the server's open connection count as its load), and deletes it when it is
//! dropped, deregistered, or its server stops. A process that dies stops its heartbeats, so
//! its entry leaves the registry at most `ttl` after its death. The bound belongs to the
//! bucket: whoever creates the bucket sets it, and everyone else reads it from there.
//!
//! # Errors
//!
//! A NATS failure (server unreachable, no instance serving a subject) is
//! [`ErrorKind::Disconnected`](crate::ErrorKind); a deadline that passes is `TimedOut`; an
//! object reference among the arguments or in a result is [`Error::Value`] with a message
//! that says to use a direct connection; a malformed message is [`Error::Protocol`]. Errors
//! a worker's handler returns arrive as [`Error::Remote`] with their kind.
//!
//! # Deadlines and traces
//!
//! A [`Worker`] serves each call in the context a direct connection gives a served call:
//! [`context::time_left`](crate::context::time_left) is what is left of the request's
//! deadline (a cast without one: [`NatsOptions::call_timeout`] of the worker's handle) and
//! [`context::trace_id`](crate::context::trace_id) the caller's trace id, under a
//! `netref.serve` span. The [`request`]s, [`cast`]s and direct-connection calls its handler
//! makes inherit both, as in the [`context`](crate::context) module's docs; a [`request`],
//! [`cast`] or [`fanout`] runs under a `netref.call` span. The trace id travels in the NATS
//! header `Netref-Trace` (16 hex digits), beside a payload whose bytes do not change, so
//! peers from before it read these requests and send requests these workers read;
//! `docs/distributed.md` lists the bytes.
//!
//! # Limits
//!
//! A request and its reply must fit NATS's `max_payload` (1 MiB by default); decoded values
//! nest at most 64 deep; a worker runs at most [`NatsOptions::max_in_flight`] calls at once
//! and leaves the rest queued in NATS's subscription buffer; a fanout gathers at most
//! [`MAX_FANOUT_REPLIES`] replies.
//!
//! # Partitions
//!
//! See `docs/distributed.md`: what each side sees when NATS, or an instance, goes away.

mod pool;
mod registry;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

#[cfg(doc)]
use crate::Connection;

pub use pool::{
    cast, fanout, fanout_n, request, request_within, serve, FanoutReply, Worker, MAX_FANOUT_REPLIES,
};
pub use registry::{
    connect_service, connect_service_with, discover, discover_all, register, register_with,
    registry_bound, service, Instance, Pick, RegisterOptions, Registration, ServiceTarget,
};

/// Options of a [`Nats`] handle.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// The JetStream key-value bucket of the registry (default `netref_registry`).
    pub bucket: String,
    /// How long an instance stays listed after its last heartbeat, when this handle creates
    /// the bucket (default 10 s; JetStream's floor is 100 ms). Heartbeats run every third of
    /// the bucket's bound.
    pub ttl: Duration,
    /// The deadline of a [`request`] (default 30 s).
    pub call_timeout: Duration,
    /// Value calls a [`Worker`] runs at once (default 256); more wait in NATS's buffer.
    pub max_in_flight: usize,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            bucket: "netref_registry".into(),
            ttl: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            max_in_flight: 256,
        }
    }
}

impl NatsOptions {
    /// Sets [`NatsOptions::ttl`].
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`NatsOptions::bucket`].
    pub fn with_bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = bucket.into();
        self
    }

    /// Sets [`NatsOptions::call_timeout`].
    pub fn with_call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }
}

/// A connection to NATS with netref's options: what every function of this module takes.
/// Cheap to clone.
#[derive(Clone)]
pub struct Nats {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    options: NatsOptions,
    /// The registry bucket, opened (or created) on first use; emptied when a heartbeat
    /// fails, so the next one opens it afresh.
    registry: parking_lot::Mutex<Option<async_nats::jetstream::kv::Store>>,
    /// Round-robin turns of [`connect_service`], per service.
    turns: parking_lot::Mutex<HashMap<String, usize>>,
}

impl fmt::Debug for Nats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nats")
            .field("options", &self.inner.options)
            .finish()
    }
}

impl Nats {
    /// Connects to the NATS server at `url` (`nats://HOST:PORT`, or a comma-separated list
    /// of them) with default options.
    pub async fn connect(url: &str) -> Result<Nats> {
        Nats::connect_with(url, NatsOptions::default()).await
    }

    /// Connects to the NATS server at `url` with `options`.
    pub async fn connect_with(url: &str, options: NatsOptions) -> Result<Nats> {
        let client = async_nats::ConnectOptions::new()
            .name("netref")
            .connect(url)
            .await
            .map_err(|e| nats_error(&format!("cannot connect to {url}"), e))?;
        Ok(Nats::from_client(client, options))
    }

    /// Wraps a client connected elsewhere (with credentials, TLS, several servers …).
    pub fn from_client(client: async_nats::Client, options: NatsOptions) -> Nats {
        let js = async_nats::jetstream::new(client.clone());
        Nats {
            inner: Arc::new(Inner {
                client,
                js,
                options,
                registry: parking_lot::Mutex::new(None),
                turns: parking_lot::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The NATS client underneath.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The options this handle was made with.
    pub fn options(&self) -> &NatsOptions {
        &self.inner.options
    }

    pub(crate) fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.inner.js
    }

    pub(crate) fn registry_cell(
        &self,
    ) -> &parking_lot::Mutex<Option<async_nats::jetstream::kv::Store>> {
        &self.inner.registry
    }

    /// The next round-robin turn for `service`.
    pub(crate) fn next_turn(&self, service: &str) -> usize {
        let mut turns = self.inner.turns.lock();
        let turn = turns.entry(service.to_owned()).or_default();
        *turn = turn.wrapping_add(1);
        *turn - 1
    }
}

/// A NATS failure as a netref error: the messaging system is unreachable or refused.
pub(crate) fn nats_error(context: &str, e: impl fmt::Display) -> Error {
    Error::Disconnected(format!("nats: {context}: {e}"))
}

/// Checks a service name: dot-separated tokens of letters, digits, `-` and `_` (so it is a
/// plain NATS subject and a key-value key prefix), at most 200 bytes.
pub(crate) fn check_service(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Value(format!(
            "bad service name {name:?}: use dot-separated words of letters, digits, `-` and `_`"
        )))
    }
}

/// The subject a service's queue group (requests and casts) listens on.
fn call_subject(service: &str) -> String {
    format!("netref.call.{service}")
}

/// The subject every instance of a service listens on (fanout).
fn fanout_subject(service: &str) -> String {
    format!("netref.fanout.{service}")
}

/// A fresh instance id: 16 hex digits from the OS random source.
fn new_instance_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness: fall back on time and pid, unique enough for an instance name.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        bytes = (nanos ^ u64::from(std::process::id()).rotate_left(40)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_plain_subject_tokens() {
        for good in ["jobs", "jobs.worker", "a-b_c.D9"] {
            assert!(check_service(good).is_ok(), "{good}");
        }
        for bad in [
            "", "jobs.", ".jobs", "jobs..w", "jobs.*", "jobs.>", "a b", "ü",
        ] {
            assert!(check_service(bad).is_err(), "{bad:?}");
        }
        assert_eq!(new_instance_id().len(), 16);
        assert_ne!(new_instance_id(), new_instance_id());
    }
}
