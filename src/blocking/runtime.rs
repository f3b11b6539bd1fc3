//! The runtime a blocking connection owns, and the rule for when blocking is allowed.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::runtime::Handle;

use crate::error::{Error, Result};

/// Worker threads of each blocking connection's runtime. Incoming calls and the connection's
/// reader and writer run there; blocking callbacks run on the runtime's blocking threads.
pub(crate) const WORKER_THREADS: usize = 2;

/// How long dropping a blocking connection waits for it to close, and then for its
/// runtime's threads to stop, before leaving them behind.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

type Home = Arc<OnceLock<Weak<Runtime>>>;

thread_local! {
    /// On a thread of a blocking runtime: that runtime. Thread-local because which runtime
    /// a thread belongs to is a property of the thread.
    static HOME: RefCell<Option<Home>> = const { RefCell::new(None) };
    /// True while a blocking callback runs on this thread: blocking is allowed there even
    /// though a runtime is current. Thread-local for the same reason.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `decode` with `rt` as this thread's blocking runtime, so that the
/// [`blocking::Proxy`](super::Proxy)s it decodes are bound to `rt`; the thread's own home (if
/// any) is restored afterwards.
pub(crate) fn decode_at_home<T>(rt: &Weak<Runtime>, decode: impl FnOnce() -> T) -> T {
    let cell: OnceLock<Weak<Runtime>> = OnceLock::new();
    let _ = cell.set(rt.clone());
    let previous = HOME.with(|h| h.borrow_mut().replace(Arc::new(cell)));
    struct Restore(Option<Home>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            HOME.with(|h| *h.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    decode()
}

/// A multi-thread tokio runtime owned by blocking connections, shut down (bounded) when the
/// last of them is dropped.
pub(crate) struct Runtime {
    rt: Option<tokio::runtime::Runtime>,
    handle: Handle,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &WORKER_THREADS)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Starts a runtime with [`WORKER_THREADS`] workers.
    pub(crate) fn start() -> Result<Arc<Runtime>> {
        ensure_may_block()?;
        let home: Home = Arc::default();
        let for_threads = home.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("netref-blocking")
            .enable_all()
            .on_thread_start(move || {
                let home = for_threads.clone();
                HOME.with(|h| *h.borrow_mut() = Some(home));
            })
            .build()?;
        let runtime = Arc::new(Runtime {
            handle: rt.handle().clone(),
            rt: Some(rt),
        });
        // Threads started before this line find their home through the shared cell.
        let _ = home.set(Arc::downgrade(&runtime));
        Ok(runtime)
    }

    /// Runs `fut` to completion on this runtime, blocking the calling thread.
    /// On a thread that serves a call (a blocking callback's), `fut` runs in that call's
    /// context, so the calls it makes inherit its deadline and trace.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> Result<F::Output> {
        ensure_may_block()?;
        Ok(match crate::context::served_on_thread() {
            Some(ctx) => self.handle.block_on(crate::context::CALL.scope(ctx, fut)),
            None => self.handle.block_on(fut),
        })
    }

    /// The blocking runtime this thread belongs to, if any (and if it is still alive).
    pub(crate) fn current() -> Option<Arc<Runtime>> {
        HOME.with(|h| {
            h.borrow()
                .as_ref()
                .and_then(|home| home.get())
                .and_then(Weak::upgrade)
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            if Handle::try_current().is_ok() {
                // Dropped on a runtime thread (ours or another): waiting is not allowed there,
                // and waiting for our own threads from one of them could not finish.
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(SHUTDOWN_GRACE);
            }
        }
    }
}

/// True when the calling thread may block: no tokio runtime is current, or a blocking
/// callback is running on it.
pub(crate) fn may_block() -> bool {
    IN_CALLBACK.with(Cell::get) || Handle::try_current().is_err()
}

/// Fails unless [`may_block`].
pub(crate) fn ensure_may_block() -> Result<()> {
    if may_block() {
        Ok(())
    } else {
        Err(in_async_context())
    }
}

/// The error of a blocking call made where blocking would stall a tokio runtime.
fn in_async_context() -> Error {
    Error::Value(
        "netref::blocking was called from inside a tokio runtime, where blocking would \
         stall it; use the async API (netref::Proxy) there, or call from a plain thread"
            .into(),
    )
}

/// Marks this thread as running a blocking callback until dropped.
pub(crate) struct CallbackScope {
    was: bool,
}

impl CallbackScope {
    pub(crate) fn enter() -> CallbackScope {
        CallbackScope {
            was: IN_CALLBACK.with(|c| c.replace(true)),
        }
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(self.was));
    }
}
