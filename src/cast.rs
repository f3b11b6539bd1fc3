//! One-way calls: [`Proxy::cast`] sends a call that expects no answer.
//!
//! # Usage
//!
//! `proxy.cast(args)` (or `proxy.call_method_oneway("name", args)`) sends the call with the
//! wire's one-way flag and resolves as soon as the frame is written or queued: the caller
//! never waits for the handler. The owner runs it like any call, in order with the other
//! calls to the same object (it starts after every call sent before it), bounded by the same
//! deadline, and sends nothing back. A typed proxy sends a member marked
//! `#[exposed(oneway)]` this way.
//!
//! # Errors
//!
//! The future fails only when the call cannot be sent (the connection is closed, an argument
//! does not encode). A failure of the handler (an error, a panic, an unknown member, a full
//! in-flight table) never reaches the caller: the owner logs it (`tracing` at `warn`, with
//! the connection and call id) and counts it in [`Stats::casts_failed`](crate::Stats), and the
//! connection goes on. The sender counts its casts in `Stats::casts_sent` (and `calls_sent`,
//! never `round_trips`).
//!
//! # Example
//!
//! ```
//! use netref::{adapters::List, Obj};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let list = Obj::new(List::new());
//! let (_server, client) = netref::pair(Some(list.erase()), None).await.unwrap();
//! let root = client.root();
//! for i in 0..3 {
//!     root.call_method_oneway("append", (i,)).await.unwrap();
//! }
//! // A call sent after the casts starts after them.
//! assert_eq!(root.call_method("len", ()).await.unwrap().as_i64(), Some(3));
//! assert_eq!(client.stats().casts_sent, 3);
//! # });
//! ```

use std::future::Future;

use crate::dispatch::Op;
use crate::error::{Error, Result};
use crate::object::{Args, IntoArgs, Reply};
use crate::proxy::{Proxy, Target};

impl Proxy {
    /// Sends a one-way call of the object this proxy names (see the [module docs](crate::cast)):
    /// resolves once it is on its way; the result, or a failure, stays with the owner.
    pub fn cast(&self, args: impl IntoArgs) -> impl Future<Output = Result<()>> + Send + 'static {
        cast(self.clone(), args.into_args())
    }

    /// Sends a one-way call of method `name`: `attr(name).cast(args)`.
    pub fn call_method_oneway(
        &self,
        name: &str,
        args: impl IntoArgs,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        cast(self.attr(name), args.into_args())
    }
}

/// Sends `args` one-way to `proxy`.
pub(crate) async fn cast(proxy: Proxy, args: Result<Args>) -> Result<()> {
    let op = Op::Call(args?);
    if let Target::Local(obj) = &proxy.target {
        // In-process: start it now (in order), finish it without the caller.
        match crate::dispatch::start_guarded(obj.clone(), &proxy.path, op) {
            Reply::Ready(Ok(_)) => {}
            Reply::Ready(Err(e)) => local_failed(&e),
            Reply::Later(fut) => {
                let run = async move {
                    if let Err(e) = fut.await {
                        local_failed(&e);
                    }
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(handle) => {
                        handle.spawn(run);
                    }
                    // Outside tokio nothing could run it later: run it now.
                    Err(_) => run.await,
                }
            }
        }
        return Ok(());
    }
    let shared = proxy
        .shared()
        .ok_or_else(|| Error::Value("a remote proxy without a connection".into()))?;
    shared
        .cast(proxy.wire_target(), proxy.path.clone(), op)
        .await
}

fn local_failed(error: &Error) {
    tracing::warn!(error = %error, "one-way call on a local object failed");
}

impl crate::blocking::Proxy {
    /// Sends a one-way call of the object this proxy names, blocking only until it is on its
    /// way (see [`netref::Proxy::cast`](Proxy::cast)).
    pub fn cast(&self, args: impl IntoArgs) -> Result<()> {
        let args = args.into_args();
        self.block_on_async(move |p| cast(p, args))
    }

    /// Sends a one-way call of method `name`: `attr(name).cast(args)`.
    pub fn call_method_oneway(&self, name: &str, args: impl IntoArgs) -> Result<()> {
        self.attr(name).cast(args)
    }
}
