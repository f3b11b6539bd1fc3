//! Proxies: handles to objects, local or remote, that build attribute paths lazily.
//!
//! # Usage
//!
//! A [`Proxy`] names an object plus a path of attribute names. [`Proxy::attr`] only extends
//! the path locally; nothing is sent until an operation runs: [`Proxy::call`],
//! [`Proxy::call_method`], [`Proxy::get`], [`Proxy::set`], [`Proxy::dir`] or
//! [`Proxy::help`]. The whole path travels in **one** message and the owner checks every
//! segment against the exposure rules.
//!
//! A proxy of a local object ([`Proxy::local`]) runs the very same gate in-process, so a
//! test body can run against a local object and a remote one alike.
//!
//! # Pipelining
//!
//! [`Call::pipeline`] sends a call and returns at once with a proxy of its *answer*; calls
//! on that proxy travel immediately and the owner applies them to the answer when it is
//! ready, so a chain of dependent calls costs one round trip.
//!
//! # Object lifetimes
//!
//! Dropping the last proxy of a remote object queues a batched `Release` for it; dropping a
//! pipelined answer's last proxy queues a `Finish`.
//!
//! # Example
//!
//! ```
//! use netref::{expose, Obj, Proxy};
//! struct Greeter;
//! #[expose]
//! impl Greeter {
//!     /// Says hello.
//!     #[exposed]
//!     fn hello(&self, name: String) -> String { format!("hello, {name}") }
//! }
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let p = Proxy::local(Obj::new(Greeter).erase());
//! let s = p.attr("hello").call(("ada",)).await.unwrap();
//! assert_eq!(s.as_str(), Some("hello, ada"));
//! assert_eq!(p.dir().await.unwrap(), vec!["hello".to_string()]);
//! # });
//! ```

use std::fmt;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::{AnswerHandle, Import, Link, Shared, Started, Urgency};
use crate::error::Result;
use crate::gate;
use crate::object::{object_key, Args, IntoArgs, Object, Reply};
use crate::protocol::Op;
use crate::value::{from_value, Value};

/// The empty path, shared: every plain proxy (each export and import) would otherwise
/// allocate one.
pub(crate) fn empty_path() -> Arc<[String]> {
    static EMPTY: std::sync::LazyLock<Arc<[String]>> =
        std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    EMPTY.clone()
}

/// A handle to an object (local or remote) plus a lazily built attribute path.
///
/// Cloning is cheap. Two proxies are equal when they name the same object and path.
#[derive(Clone)]
pub struct Proxy {
    pub(crate) target: Target,
    pub(crate) path: Arc<[String]>,
}

/// What a proxy points at.
#[derive(Clone)]
pub(crate) enum Target {
    /// An object in this process.
    Local(Arc<dyn Object>),
    /// An object the peer lent us.
    Remote(Arc<Import>),
    /// The peer's root object.
    Root(Arc<Link>),
    /// The kept answer of a pipelined call.
    Answer(Arc<AnswerHandle>),
    /// An object reached over another wire (Python RPyC's, see [`crate::rpyc`]).
    Foreign(Arc<dyn Foreign>),
}

/// An object reached over a wire other than netref's own: every operation on a proxy of it
/// is handed over whole, path included, and the wire decides how to carry it.
pub(crate) trait Foreign: Send + Sync + 'static {
    /// Runs `op` on the member `path` names (the object itself when empty).
    fn run(
        self: Arc<Self>,
        path: Arc<[String]>,
        op: Op,
    ) -> futures_util::future::BoxFuture<'static, Result<Value>>;

    /// A short description for `Display` (`<python builtins.list 0x7f…>`).
    fn describe(&self) -> String;

    /// Upcast, so the wire can recognise its own objects coming home.
    fn as_any(&self) -> &dyn std::any::Any;
}

impl Proxy {
    /// A proxy of a local object; operations run the exposure gate in-process.
    pub fn local(obj: impl Into<Arc<dyn Object>>) -> Proxy {
        Proxy {
            target: Target::Local(obj.into()),
            path: empty_path(),
        }
    }

    pub(crate) fn with_target(target: Target) -> Proxy {
        Proxy {
            target,
            path: empty_path(),
        }
    }

    /// The proxy of attribute `name` of this one (nothing is sent).
    pub fn attr(&self, name: impl Into<String>) -> Proxy {
        let mut path = self.path.to_vec();
        path.push(name.into());
        Proxy {
            target: self.target.clone(),
            path: path.into(),
        }
    }

    /// This proxy with `segments` appended to its path (nothing is sent).
    pub fn path_to<I, S>(&self, segments: I) -> Proxy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut path = self.path.to_vec();
        path.extend(segments.into_iter().map(Into::into));
        Proxy {
            target: self.target.clone(),
            path: path.into(),
        }
    }

    /// This proxy with `path` appended; shares `path` when this proxy's own path is empty.
    pub(crate) fn join_path(&self, path: Arc<[String]>) -> Proxy {
        if self.path.is_empty() {
            return Proxy {
                target: self.target.clone(),
                path,
            };
        }
        self.path_to(path.iter().cloned())
    }

    /// The attribute path this proxy adds to its object.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The peer's id of the object, when this proxy names a remote object (not its root or a
    /// pipelined answer).
    pub fn remote_id(&self) -> Option<u64> {
        match &self.target {
            Target::Remote(i) => Some(i.id),
            _ => None,
        }
    }

    /// True when the object lives in this process.
    pub fn is_local(&self) -> bool {
        matches!(self.target, Target::Local(_))
    }

    /// The local object, when this proxy is a plain (path-less) proxy of one.
    pub fn local_object(&self) -> Option<&Arc<dyn Object>> {
        match &self.target {
            Target::Local(obj) if self.path.is_empty() => Some(obj),
            _ => None,
        }
    }

    /// Calls the object this proxy names (a method when the path ends in one, or a callable
    /// object such as a callback).
    pub fn call(&self, args: impl IntoArgs) -> Call {
        let op = args.into_args().map(Op::Call);
        Call::new(self.clone(), op)
    }

    /// Calls method `name` of this object: `attr(name).call(args)`.
    pub fn call_method(&self, name: &str, args: impl IntoArgs) -> Call {
        self.attr(name).call(args)
    }

    /// Reads the property this proxy's path names (or returns this object as a value when
    /// the path is empty).
    pub async fn get(&self) -> Result<Value> {
        self.run(Op::Get, None).await
    }

    /// Reads the property and decodes it into `T`.
    pub async fn get_as<T: serde::de::DeserializeOwned + 'static>(&self) -> Result<T> {
        from_value(self.get().await?)
    }

    /// Sets the settable property this proxy's path names.
    pub async fn set(&self, value: impl serde::Serialize) -> Result<()> {
        let v = crate::value::to_value(&value)?;
        self.run(Op::Set(v), None).await.map(|_| ())
    }

    /// Lists the exposed members of the object this proxy names.
    pub async fn dir(&self) -> Result<Vec<String>> {
        from_value(self.run(Op::Dir, None).await?)
    }

    /// Describes the object (or the member the path ends in): signatures and doc text of
    /// exposed members only.
    pub async fn help(&self) -> Result<String> {
        from_value(self.run(Op::Help, None).await?)
    }

    /// Iterates the object this proxy names: calls its `iter()` (or uses the object itself
    /// when it has none) and pulls items in batches of `batch` with `next_batch(max)`. An
    /// iterator that has no `next_batch` is pulled one item at a time with `next()`, until
    /// that fails with [`ErrorKind::StopIteration`](crate::ErrorKind::StopIteration).
    ///
    /// [`RemoteIter::next`] tells the end from every item: a nil item is `Some(Value::Nil)`,
    /// the end is `None`.
    pub async fn iter(&self, batch: u32) -> Result<RemoteIter> {
        let it = match self.call_method("iter", ()).await {
            Ok(v) => v.into_proxy()?,
            Err(e) if e.is_no_such_member() => self.clone(),
            Err(e) => return Err(e),
        };
        Ok(RemoteIter {
            it,
            buf: std::collections::VecDeque::new(),
            done: false,
            batch: batch.max(1),
            one_by_one: false,
        })
    }

    /// Runs one operation through the path. Shared by every public operation.
    pub(crate) async fn run(&self, op: Op, timeout: Option<Duration>) -> Result<Value> {
        match &self.target {
            Target::Local(obj) => start_local(obj.clone(), &self.path, op).await,
            Target::Foreign(f) => f.clone().run(self.path.clone(), op).await,
            _ => {
                let mut call = Call::new(self.clone(), Ok(op));
                if let Some(d) = timeout {
                    call = call.timeout(d);
                }
                call.await
            }
        }
    }

    /// The connection a remote proxy's calls go through; `None` for a local object.
    pub(crate) fn shared(&self) -> Option<&Arc<Shared>> {
        match &self.target {
            Target::Local(_) | Target::Foreign(_) => None,
            Target::Remote(import) => Some(&import.link.shared),
            Target::Root(link) => Some(&link.shared),
            Target::Answer(answer) => Some(&answer.link.shared),
        }
    }

    /// Sends a call whose answer the peer keeps, returning a proxy of that answer.
    async fn pipeline(&self, op: Op) -> Result<Proxy> {
        let link = match &self.target {
            Target::Local(obj) => {
                // Nothing to pipeline in-process: run it and wrap the result.
                let v = gate::perform(obj.clone(), &self.path, op).await?;
                return v.into_proxy();
            }
            // The foreign wire has no pipelining: run it and wrap the result.
            Target::Foreign(f) => return f.clone().run(self.path.clone(), op).await?.into_proxy(),
            Target::Remote(i) => &i.link,
            Target::Root(l) => l,
            Target::Answer(a) => &a.link,
        };
        let answer = link
            .shared
            .call_pipelined(link, self.wire_target(), self.path.clone(), op)
            .await?;
        Ok(Proxy::with_target(Target::Answer(answer)))
    }

    /// The wire form of this proxy's target (remote targets only).
    pub(crate) fn wire_target(&self) -> crate::protocol::Target {
        match &self.target {
            Target::Remote(i) => crate::protocol::Target::Object(i.id),
            Target::Root(_) => crate::protocol::Target::Root,
            Target::Answer(a) => crate::protocol::Target::Answer(a.id),
            Target::Local(_) | Target::Foreign(_) => crate::protocol::Target::Root,
        }
    }

    /// The identity of the target object (used by equality and the export table).
    pub(crate) fn identity(&self) -> usize {
        match &self.target {
            Target::Local(o) => object_key(o),
            Target::Remote(i) => Arc::as_ptr(i) as *const () as usize,
            Target::Root(l) => Arc::as_ptr(l) as *const () as usize,
            Target::Answer(a) => Arc::as_ptr(a) as *const () as usize,
            Target::Foreign(f) => Arc::as_ptr(f) as *const () as usize,
        }
    }
}

impl PartialEq for Proxy {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity() && self.path == other.path
    }
}
impl Eq for Proxy {}
impl Hash for Proxy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
        self.path.hash(state);
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Local(o) => write!(f, "<local {}>", o.type_info().name)?,
            Target::Remote(i) => write!(f, "<ref {}>", crate::protocol::fmt_id(i.id))?,
            Target::Root(_) => f.write_str("<root>")?,
            Target::Answer(a) => write!(f, "<answer of call {}>", a.id)?,
            Target::Foreign(o) => f.write_str(&o.describe())?,
        }
        for seg in self.path.iter() {
            write!(f, ".{seg}")?;
        }
        Ok(())
    }
}

/// A call not yet sent: await it for the result, or [`pipeline`](Call::pipeline) it.
///
/// Nothing is sent until the call is first polled (awaited) or pipelined; calls polled in
/// order are sent in order. Dropping a call before it completes asks the peer to cancel it.
#[must_use = "a call does nothing until awaited or pipelined"]
pub struct Call {
    state: CallState,
}

/// The steps of a [`Call`]. A remote call is a plain state machine: its common path
/// (written at once, reply awaited) allocates nothing beyond its frame.
enum CallState {
    Unsent {
        proxy: Proxy,
        op: Result<Op>,
        timeout: Option<Duration>,
    },
    /// A call on a local object, through the gate in-process.
    Local(Pin<Box<dyn Future<Output = Result<Value>> + Send>>),
    /// The frame waits for room in the connection's send queue.
    Queued {
        proxy: Proxy,
        id: u64,
        send: Pin<Box<dyn Future<Output = Result<()>> + Send>>,
    },
    /// The frame was left with others in flight ([`Urgency::Soon`]): yield once so that the
    /// caller's other calls (of a `join` or a `FuturesUnordered`, say) gather behind it,
    /// then write them all in one go from the caller's own thread, without waking the
    /// writer task.
    Flush {
        proxy: Proxy,
        id: u64,
        yielded: bool,
    },
    /// Sent: waiting for the reply.
    Waiting {
        proxy: Proxy,
        id: u64,
    },
    Done,
}

impl Call {
    /// A call of `op` on `proxy` (the typed proxies' entry point).
    pub(crate) fn with_op(proxy: Proxy, op: Result<Op>) -> Call {
        Call::new(proxy, op)
    }

    fn new(proxy: Proxy, op: Result<Op>) -> Call {
        Call {
            state: CallState::Unsent {
                proxy,
                op,
                timeout: None,
            },
        }
    }

    /// Overrides the connection's default deadline for this call (before it is sent).
    pub fn timeout(mut self, d: Duration) -> Call {
        if let CallState::Unsent { timeout, .. } = &mut self.state {
            *timeout = Some(d);
        }
        self
    }

    /// Sends the call now and returns a proxy of its answer without waiting for it.
    ///
    /// Calls made on the returned proxy are sent at once and applied by the peer to the
    /// answer when it is ready; an error in this call becomes the error of those calls.
    pub async fn pipeline(mut self) -> Result<Proxy> {
        if !matches!(self.state, CallState::Unsent { .. }) {
            return Err(crate::error::Error::Value(
                "a call already awaited cannot be pipelined".into(),
            ));
        }
        let CallState::Unsent { proxy, op, .. } =
            std::mem::replace(&mut self.state, CallState::Done)
        else {
            unreachable!("checked just above")
        };
        proxy.pipeline(op?).await
    }

    /// Awaits the result and decodes it into `T`.
    pub async fn decode<T: serde::de::DeserializeOwned + 'static>(self) -> Result<T> {
        from_value(self.await?)
    }
}

impl Future for Call {
    type Output = Result<Value>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        loop {
            match &mut self.state {
                CallState::Unsent { .. } => {
                    let CallState::Unsent { proxy, op, timeout } =
                        std::mem::replace(&mut self.state, CallState::Done)
                    else {
                        unreachable!("matched just above")
                    };
                    let op = match op {
                        Ok(op) => op,
                        Err(e) => return Poll::Ready(Err(e)),
                    };
                    let Some(shared) = proxy.shared() else {
                        match &proxy.target {
                            Target::Foreign(f) => {
                                self.state =
                                    CallState::Local(f.clone().run(proxy.path.clone(), op));
                            }
                            Target::Local(obj) => match start_local(obj.clone(), &proxy.path, op) {
                                Reply::Ready(r) => return Poll::Ready(r),
                                Reply::Later(fut) => self.state = CallState::Local(fut),
                            },
                            _ => unreachable!("only local and foreign proxies have no connection"),
                        }
                        continue;
                    };
                    let started =
                        shared.start_call(proxy.wire_target(), proxy.path.clone(), op, timeout);
                    self.state = match started {
                        Err(e) => return Poll::Ready(Err(e)),
                        Ok((id, Started::Written(urgency))) => {
                            shared.count_call();
                            if urgency == Urgency::Soon {
                                CallState::Flush {
                                    proxy,
                                    id,
                                    yielded: false,
                                }
                            } else {
                                CallState::Waiting { proxy, id }
                            }
                        }
                        Ok((id, Started::Queued(bytes, ctx))) => {
                            let shared = shared.clone();
                            let send = Box::pin(async move { shared.enqueue(bytes, ctx).await });
                            CallState::Queued { proxy, id, send }
                        }
                    };
                }
                CallState::Local(fut) => {
                    let r = std::task::ready!(fut.as_mut().poll(cx));
                    self.state = CallState::Done;
                    return Poll::Ready(r);
                }
                CallState::Queued { send, .. } => {
                    let sent = std::task::ready!(send.as_mut().poll(cx));
                    let CallState::Queued { proxy, id, .. } =
                        std::mem::replace(&mut self.state, CallState::Done)
                    else {
                        unreachable!("matched just above")
                    };
                    let shared = proxy.shared().expect("a queued call is remote");
                    if let Err(e) = sent {
                        shared.forget_call(id);
                        return Poll::Ready(Err(e));
                    }
                    shared.count_call();
                    self.state = CallState::Waiting { proxy, id };
                }
                CallState::Flush { proxy, yielded, .. } => {
                    if !*yielded {
                        *yielded = true;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    proxy.shared().expect("a sent call is remote").uncork();
                    let CallState::Flush { proxy, id, .. } =
                        std::mem::replace(&mut self.state, CallState::Done)
                    else {
                        unreachable!("matched just above")
                    };
                    self.state = CallState::Waiting { proxy, id };
                }
                CallState::Waiting { proxy, id } => {
                    let shared = proxy.shared().expect("a sent call is remote");
                    let r = std::task::ready!(shared.poll_reply(*id, cx));
                    self.state = CallState::Done;
                    return Poll::Ready(r);
                }
                CallState::Done => {
                    return Poll::Ready(Err(crate::error::Error::Value(
                        "call polled after completion".into(),
                    )))
                }
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Dropped before its result came: forget it, and ask the peer to cancel it.
        if let CallState::Queued { proxy, id, .. }
        | CallState::Flush { proxy, id, .. }
        | CallState::Waiting { proxy, id } = &self.state
        {
            if let Some(shared) = proxy.shared() {
                shared.abandon_call(*id);
            }
        }
    }
}

/// Runs `op` on `path` of a local object through the gate, in-process: synchronously as far
/// as the handlers allow (see [`gate::start`]). A panicking handler becomes an error here too,
/// as it would remotely.
pub(crate) fn start_local(obj: Arc<dyn Object>, path: &[String], op: Op) -> Reply {
    match std::panic::catch_unwind(AssertUnwindSafe(|| gate::start(obj, path, op))) {
        Ok(Reply::Ready(r)) => Reply::Ready(r),
        Ok(Reply::Later(fut)) => Reply::later(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r,
                Err(payload) => Err(crate::error::Error::panicked(payload)),
            }
        }),
        Err(payload) => Reply::Ready(Err(crate::error::Error::panicked(payload))),
    }
}

impl From<Args> for Op {
    fn from(a: Args) -> Self {
        Op::Call(a)
    }
}

/// Items of a remote iterator, pulled in batches (see [`Proxy::iter`]).
#[derive(Debug)]
pub struct RemoteIter {
    it: Proxy,
    buf: std::collections::VecDeque<Value>,
    done: bool,
    batch: u32,
    /// The iterator has no `next_batch`: items come from `next()`, one per call.
    one_by_one: bool,
}

impl RemoteIter {
    /// The next item, or `None` at the end.
    ///
    /// The end is distinct from every item: a nil item is `Some(Value::Nil)`. Once `None`
    /// has been returned, every later call returns `None` without asking the peer.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        if self.buf.is_empty() && !self.done {
            if self.one_by_one {
                return self.next_one().await;
            }
            let items: Vec<Value> = match self
                .it
                .call_method("next_batch", (self.batch,))
                .decode()
                .await
            {
                Ok(items) => items,
                Err(e) if e.is_no_such_member() => {
                    self.one_by_one = true;
                    return self.next_one().await;
                }
                Err(e) => return Err(e),
            };
            self.done = items.is_empty();
            self.buf.extend(items);
        }
        Ok(self.buf.pop_front())
    }

    /// One item from the iterator's `next()`; its `stop iteration` error is the end.
    async fn next_one(&mut self) -> Result<Option<Value>> {
        match self.it.call_method("next", ()).await {
            Ok(item) => Ok(Some(item)),
            Err(e) if e.is_stop_iteration() => {
                self.done = true;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every remaining item.
    pub async fn collect(mut self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        while let Some(v) = self.next().await? {
            out.push(v);
        }
        Ok(out)
    }
}
