//! What a handler can know about the call it is running: its deadline.
//!
//! # Usage
//!
//! Inside an exposed method, [`time_left`] says how long the caller will still wait
//! (`None` outside a remote call or without a deadline). When the deadline passes the
//! handler's future is dropped; [`uncancellable`] runs work that must finish regardless.
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

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The state of the remote call a task is serving.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallContext {
    pub(crate) deadline: Option<Instant>,
}

tokio::task_local! {
    pub(crate) static CALL: CallContext;
}

/// The instant the current remote call's caller stops waiting, if any.
pub fn deadline() -> Option<Instant> {
    CALL.try_with(|c| c.deadline).ok().flatten()
}

/// How long the current remote call's caller will still wait, if it set a deadline.
pub fn time_left() -> Option<Duration> {
    deadline().map(|d| d.saturating_duration_since(Instant::now()))
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
