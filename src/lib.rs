//! # netref
//!
//! Object-proxy RPC in the style of Python's RPyC: two programs hold one symmetric
//! connection; each keeps a table of the objects it has lent to the other; arguments such as
//! open files and callbacks travel as reference ids; proxies forward attribute access and
//! method calls lazily; only members marked exposed can be reached.
//!
//! # Usage
//!
//! Mark an `impl` block with [`expose`] and its reachable members with `#[exposed]`, lend an
//! instance as a connection's root, and drive it through a [`Proxy`] on the other side:
//!
//! ```
//! use netref::{expose, Obj};
//!
//! struct Calc;
//!
//! #[expose]
//! impl Calc {
//!     /// Adds two numbers.
//!     #[exposed]
//!     fn add(&self, a: i64, b: i64) -> i64 { a + b }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (server, client) = netref::pair(Some(Obj::new(Calc).erase()), None).await.unwrap();
//! let sum: i64 = client.root().call_method("add", (2, 3)).await.unwrap().decode().unwrap();
//! assert_eq!(sum, 5);
//! # drop(server);
//! # });
//! ```
//!
//! Over TCP, serve with [`Server`] and attach with [`connect`].
//!
//! # Object lifetimes
//!
//! The owner counts each time it sends an object's id; the holder counts each time it
//! receives it and, when its last [`Proxy`] is dropped, sends one batched `Release(id, count)`.
//! The owner frees the object when its count returns to zero, and everything lent through a
//! connection is freed when the connection closes. See `docs/architecture.md`.
//!
//! # Errors
//!
//! Every operation returns [`Result`]; failures on the peer arrive as [`RemoteError`] with an
//! [`ErrorKind`]. A handler's `Err` or panic never closes the connection.
//!
//! # Limits
//!
//! Frame size, nesting depth and handshake time are bounded by [`Config`].

#![forbid(unsafe_code)]

// Lets the `#[expose]` expansion's `::netref::` paths resolve inside this crate too.
extern crate self as netref;

mod callback;
pub mod cast;
mod codec;
mod config;
mod connection;
mod dispatch;
mod error;
mod gate;
mod object;
mod protocol;
mod proxy;
mod server;
mod stats;
pub mod stream;
mod surface;
mod transport;
mod value;

pub mod trace;
pub mod typed;

#[cfg(feature = "tls")]
pub mod tls;

pub mod adapters;
pub mod auth;
pub mod blocking;
pub mod context;
pub mod debug;
pub mod lab;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "cli")]
pub mod repl;
pub mod resilient;
pub mod rpyc;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use auth::Secret;
pub use callback::{
    callback, callback_async, AsyncHandler, Callback, CallbackOutput, FallibleOutput, PlainOutput,
    SyncHandler,
};
pub use config::Config;
pub use connection::{live_tasks, Call, Connection, PeerFeatures, TableEntry, Tables};
pub use error::{Error, ErrorKind, RemoteError, Result};
pub use object::{
    Args, IntoArgs, Invocation, MemberInfo, MemberKind, Obj, Object, Reply, Restricted, TypeInfo,
};
pub use proxy::{Proxy, RemoteIter};
pub use resilient::{connect_resilient, connect_resilient_with, Resilient};
pub use server::{ConnectionInfo, ListenAddr, Server, ServerHandle, DEFAULT_MAX_CONNECTIONS};
pub use stats::Stats;
pub use stream::{RemoteStream, Stream};
pub use surface::{DescribedKind, Description, MemberDescription};
pub use transport::{
    connect, connect_command, connect_command_with, connect_with, pair, pair_with, serve_stdio,
    ChildConnection,
};
#[cfg(unix)]
pub use transport::{connect_unix, connect_unix_with};
pub use typed::{HasProxy, TypedCall, TypedProxy};
pub use value::{from_value, to_value, Value};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Marks an `impl` block whose `#[exposed]` members can be reached by a peer.
///
/// The block is kept as written (the `#[exposed]` markers are removed) and the macro adds an
/// implementation of [`Object`] for the type:
///
/// - a static [`TypeInfo`] with the type name, the block's doc comment, and one
///   [`MemberInfo`] per exposed member (name, kind, signature, doc comment);
/// - [`Object::invoke`], which decodes each parameter with serde, runs the method, and encodes
///   the result; a `Result` return's `Err` becomes a [`RemoteError`] of kind
///   [`ErrorKind::Failed`] with the error's type name and message. For a plain `fn` (method,
///   getter or setter) all of this happens before `invoke` returns, as a [`Reply::Ready`]: no
///   future is boxed. For an `async fn` it happens in the [`Reply::Later`] future.
///
/// Markers:
///
/// - `#[exposed]` on `fn name(&self, ...)`: a method.
/// - `#[exposed(property)]` on `fn name(&self) -> T`: a read-only property.
/// - `#[exposed(setter)]` on `fn set_name(&self, value: T)`: makes property `name` settable.
///   (`#[exposed(setter = "name")]` names the property explicitly.)
///
/// Members without a marker are invisible to the peer: they cannot be called, read, set,
/// listed or documented remotely.
///
/// The macro also writes a typed client, `LabProxy` for `Lab` (see [`typed`]): a method per
/// exposed method, a getter per property and `set_<name>` per settable property, checked by
/// the compiler, in an async ([`TypedCall`]) and a blocking flavour. `#[expose]` on a trait
/// defines an interface instead: the trait, `LabServer<T>` serving any implementation, and
/// the same `LabProxy` for clients that have only the trait. Options:
/// `#[expose(proxy = "Name")]`, `#[expose(proxy_vis = "pub(crate)")]`,
/// `#[expose(no_proxy)]`.
pub use netref_macros::expose;
