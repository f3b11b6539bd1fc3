//! Blocking proxies, iterators and callbacks.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::iter::FusedIterator;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::runtime::{CallbackScope, Runtime};
use crate::callback::{Callback, SyncHandler};
use crate::error::{Error, ErrorKind, Result};
use crate::object::{Args, IntoArgs};
use crate::proxy::RemoteIter;
use crate::value::Value;

/// A blocking handle to an object (local or remote) plus a lazily built attribute path: the
/// synchronous twin of [`netref::Proxy`](crate::Proxy).
///
/// Every operation blocks the calling thread until the reply arrives, while the owning
/// [`Connection`](super::Connection)'s runtime keeps serving incoming calls (callbacks
/// included). Cloning is cheap; equality, hashing and display follow the wrapped
/// [`netref::Proxy`](crate::Proxy).
///
/// # Object lifetimes
///
/// A blocking proxy keeps the remote object alive like an async one, but not the
/// connection's runtime: once its [`Connection`](super::Connection) is dropped, every
/// operation fails with [`Error::Disconnected`].
///
/// # Passing it on
///
/// A blocking proxy serializes as a reference, so it can be an argument of another call.
/// Decoding one (a callback parameter of type `blocking::Proxy`, say) works on the threads of
/// a blocking runtime, where blocking callbacks run; elsewhere decode a
/// [`netref::Proxy`](crate::Proxy) and [`wrap`](Proxy::wrap) it.
///
/// # Example
///
/// ```
/// use netref::{blocking, expose, Obj};
/// struct Greeter;
/// #[expose]
/// impl Greeter {
///     /// Says hello.
///     #[exposed]
///     fn hello(&self, name: String) -> String { format!("hello, {name}") }
/// }
///
/// let (_server, client) = blocking::Connection::pair(Some(Obj::new(Greeter).erase()), None)?;
/// let root = client.root();
/// let s: String = root.attr("hello").call(("ada",))?.decode()?;
/// assert_eq!(s, "hello, ada");
/// assert_eq!(root.dir()?, ["hello"]);
/// # Ok::<(), netref::Error>(())
/// ```
#[derive(Clone)]
pub struct Proxy {
    inner: crate::Proxy,
    rt: Weak<Runtime>,
}

impl Proxy {
    pub(crate) fn new(inner: crate::Proxy, rt: Weak<Runtime>) -> Proxy {
        Proxy { inner, rt }
    }

    fn runtime(&self) -> Result<Arc<Runtime>> {
        runtime_of(&self.rt)
    }

    /// The proxy of attribute `name` of this one (nothing is sent).
    pub fn attr(&self, name: impl Into<String>) -> Proxy {
        self.wrap(self.inner.attr(name))
    }

    /// This proxy with `segments` appended to its path (nothing is sent).
    pub fn path_to<I, S>(&self, segments: I) -> Proxy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.wrap(self.inner.path_to(segments))
    }

    /// The attribute path this proxy adds to its object.
    pub fn path(&self) -> &[String] {
        self.inner.path()
    }

    /// The peer's id of the object, when this proxy names a remote object.
    pub fn remote_id(&self) -> Option<u64> {
        self.inner.remote_id()
    }

    /// True when the object lives in this process.
    pub fn is_local(&self) -> bool {
        self.inner.is_local()
    }

    /// Calls the object this proxy names and waits for the result.
    ///
    /// Decode a typed result with [`Value::decode`]: `p.call((1, 2))?.decode::<i64>()`.
    pub fn call(&self, args: impl IntoArgs) -> Result<Value> {
        let rt = self.runtime()?;
        let call = self.inner.call(args);
        rt.block_on(call)?
    }

    /// [`call`](Proxy::call) with its own deadline instead of
    /// [`Config::call_timeout`](crate::Config::call_timeout).
    pub fn call_timeout(&self, args: impl IntoArgs, timeout: Duration) -> Result<Value> {
        let rt = self.runtime()?;
        let call = self.inner.call(args).timeout(timeout);
        rt.block_on(call)?
    }

    /// Calls method `name` of this object: `attr(name).call(args)`.
    pub fn call_method(&self, name: &str, args: impl IntoArgs) -> Result<Value> {
        self.attr(name).call(args)
    }

    /// Sends a call and returns a proxy of its answer at once, without waiting for it (see
    /// [`Call::pipeline`](crate::Call::pipeline)): calls on the returned proxy are applied by
    /// the peer to the answer, so a chain of dependent calls costs one round trip.
    pub fn pipeline(&self, args: impl IntoArgs) -> Result<Proxy> {
        let rt = self.runtime()?;
        let call = self.inner.call(args);
        let answer = rt.block_on(call.pipeline())??;
        Ok(self.wrap(answer))
    }

    /// Reads the property this proxy's path names (or returns this object as a value when
    /// the path is empty).
    pub fn get(&self) -> Result<Value> {
        self.runtime()?.block_on(self.inner.get())?
    }

    /// Reads the property and decodes it into `T`.
    pub fn get_as<T: serde::de::DeserializeOwned + 'static>(&self) -> Result<T> {
        self.runtime()?.block_on(self.inner.get_as::<T>())?
    }

    /// Sets the settable property this proxy's path names.
    pub fn set(&self, value: impl Serialize) -> Result<()> {
        self.runtime()?.block_on(self.inner.set(value))?
    }

    /// Lists the exposed members of the object this proxy names.
    pub fn dir(&self) -> Result<Vec<String>> {
        self.runtime()?.block_on(self.inner.dir())?
    }

    /// Describes the object (or the member the path ends in): signatures and doc text of
    /// exposed members only.
    pub fn help(&self) -> Result<String> {
        self.runtime()?.block_on(self.inner.help())?
    }

    /// Iterates the object this proxy names, pulling items in batches of `batch` (see
    /// [`netref::Proxy::iter`](crate::Proxy::iter)).
    pub fn iter(&self, batch: u32) -> Result<Iter> {
        let inner = self.runtime()?.block_on(self.inner.iter(batch))??;
        Ok(Iter {
            inner,
            rt: self.rt.clone(),
            done: false,
        })
    }

    /// A blocking proxy of `proxy` (found in a call's result, say) served by this proxy's
    /// runtime.
    pub fn wrap(&self, proxy: crate::Proxy) -> Proxy {
        Proxy::new(proxy, self.rt.clone())
    }

    /// The async proxy this one wraps.
    pub fn as_async(&self) -> &crate::Proxy {
        &self.inner
    }

    /// Unwraps the async proxy.
    pub fn into_async(self) -> crate::Proxy {
        self.inner
    }

    /// Runs `f(async proxy)` on this proxy's runtime, blocking until it is done.
    pub(crate) fn block_on_async<F, Fut, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce(crate::Proxy) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.runtime()?.block_on(f(self.inner.clone()))?
    }

    /// Runs a typed call to completion and decodes its result, with this proxy's runtime as
    /// the home of any blocking proxies in it.
    pub(crate) fn finish_typed<T: serde::de::DeserializeOwned + 'static>(
        &self,
        call: crate::Call,
    ) -> Result<T> {
        let rt = self.runtime()?;
        let value = rt.block_on(call)??;
        super::runtime::decode_at_home(&self.rt, || crate::value::from_value(value))
    }
}

fn runtime_of(rt: &Weak<Runtime>) -> Result<Arc<Runtime>> {
    rt.upgrade()
        .ok_or_else(|| Error::Disconnected("the blocking connection was dropped".into()))
}

impl From<Proxy> for crate::Proxy {
    fn from(p: Proxy) -> crate::Proxy {
        p.inner
    }
}

impl PartialEq for Proxy {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for Proxy {}

impl Hash for Proxy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl Serialize for Proxy {
    /// Serializes as a reference, like [`netref::Proxy`](crate::Proxy).
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.inner.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Proxy {
    /// Decodes a reference on a thread of a blocking runtime (where blocking callbacks run),
    /// bound to that runtime.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let inner = crate::Proxy::deserialize(deserializer)?;
        match Runtime::current() {
            Some(rt) => Ok(Proxy::new(inner, Arc::downgrade(&rt))),
            None => Err(serde::de::Error::custom(
                "a blocking::Proxy can only be decoded on a netref::blocking thread; \
                 decode a netref::Proxy and wrap it with blocking::Proxy::wrap",
            )),
        }
    }
}

/// The items of a remote iterator, pulled in batches: a std [`Iterator`] over
/// `Result<Value>`. Made by [`Proxy::iter`].
///
/// After an error the iterator ends (it is fused).
#[derive(Debug)]
pub struct Iter {
    inner: RemoteIter,
    rt: Weak<Runtime>,
    done: bool,
}

impl Iterator for Iter {
    type Item = Result<Value>;

    fn next(&mut self) -> Option<Result<Value>> {
        if self.done {
            return None;
        }
        let next = runtime_of(&self.rt).and_then(|rt| rt.block_on(self.inner.next())?);
        match next {
            Ok(Some(v)) => Some(Ok(v)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for Iter {}

/// Lends a synchronous closure by reference, for blocking programs.
///
/// Like [`netref::callback`](crate::callback) (arguments decoded by position, a plain or
/// `netref::Result` return value), but the closure runs on the serving runtime's blocking
/// threads instead of its workers: it may take its time, and it may itself use blocking
/// proxies, so callbacks nest (the peer calls it, it calls the peer, which calls it again…).
/// Parameters may be [`blocking::Proxy`](Proxy). A panic in the closure reaches the caller as
/// a [`RemoteError`](crate::RemoteError) of kind [`ErrorKind::Panicked`].
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use netref::blocking;
///
/// let seen = Arc::new(AtomicU32::new(0));
/// let counter = seen.clone();
/// let tick = blocking::callback(move |i: u32| counter.fetch_add(i, Ordering::SeqCst));
///
/// let (_a, b) = blocking::Connection::pair(None, None)?;
/// let tick = b.wrap(tick);
/// tick.call((5,))?;
/// assert_eq!(seen.load(Ordering::SeqCst), 5);
/// # Ok::<(), netref::Error>(())
/// ```
pub fn callback<M, F: SyncHandler<M>>(f: F) -> crate::Proxy {
    let f = Arc::new(f);
    Callback::from_fn(move |args: Args| {
        let f = f.clone();
        async move {
            if tokio::runtime::Handle::try_current().is_err() {
                // Polled outside tokio (a foreign executor): run in place.
                return run_caught(&*f, args);
            }
            // The call this callback serves, for the calls it makes from its thread.
            let served = crate::context::current();
            let joined = tokio::task::spawn_blocking(move || {
                let _scope = CallbackScope::enter();
                let _served = crate::context::ServedScope::enter(served);
                f.run(args)
            })
            .await;
            match joined {
                Ok(reply) => reply,
                Err(e) if e.is_panic() => Err(panicked(e.into_panic())),
                Err(_) => Err(Error::remote(
                    ErrorKind::Cancelled,
                    "the callback was cancelled",
                )),
            }
        }
    })
    .into_proxy()
}

fn run_caught<M, F: SyncHandler<M>>(f: &F, args: Args) -> Result<Value> {
    let _scope = CallbackScope::enter();
    let _served = crate::context::ServedScope::enter(crate::context::current());
    std::panic::catch_unwind(AssertUnwindSafe(|| f.run(args))).unwrap_or_else(|p| Err(panicked(p)))
}

fn panicked(payload: Box<dyn Any + Send>) -> Error {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into());
    Error::remote(ErrorKind::Panicked, format!("the callback panicked: {msg}"))
}
