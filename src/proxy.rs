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
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::{AnswerHandle, Call, Import, Link, Shared};
use crate::dispatch::{self, Op};
use crate::error::Result;
use crate::object::{object_key, IntoArgs, Object};
use crate::protocol::empty_path;
use crate::value::{from_value, Value};

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

    /// Describes the object (or the method the path ends in) as data: its type name, doc,
    /// and exposed members with their kinds (method, property, settable property). Needs a
    /// peer that announces it (every netref of this version does).
    pub async fn describe(&self) -> Result<crate::surface::Description> {
        from_value(self.run(Op::Describe, None).await?)
    }

    /// Reads the property the path ends in or, when it is a method, gives the method bound to
    /// its object: a proxy that calls it when called, so `get_or_bind` works on any member
    /// where [`get`](Proxy::get) refuses methods. The gate decides again when it is called.
    pub async fn get_or_bind(&self) -> Result<Value> {
        self.run(Op::Bind, None).await
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
            Target::Local(obj) => dispatch::start_guarded(obj.clone(), &self.path, op).await,
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
            Target::Local(_) => None,
            Target::Remote(import) => Some(&import.link.shared),
            Target::Root(link) => Some(&link.shared),
            Target::Answer(answer) => Some(&answer.link.shared),
        }
    }

    /// Sends a call whose answer the peer keeps, returning a proxy of that answer.
    pub(crate) async fn pipeline(&self, op: Op, timeout: Option<Duration>) -> Result<Proxy> {
        let link = match &self.target {
            Target::Local(obj) => {
                // Nothing to pipeline in-process: run it and wrap the result.
                let v = dispatch::perform(obj.clone(), &self.path, op).await?;
                return v.into_proxy();
            }
            Target::Remote(i) => &i.link,
            Target::Root(l) => l,
            Target::Answer(a) => &a.link,
        };
        let answer = link
            .shared
            .call_pipelined(link, self.wire_target(), self.path.clone(), op, timeout)
            .await?;
        Ok(Proxy::with_target(Target::Answer(answer)))
    }

    /// The wire form of this proxy's target (remote targets only).
    pub(crate) fn wire_target(&self) -> crate::protocol::Target {
        match &self.target {
            Target::Remote(i) => crate::protocol::Target::Object(i.id),
            Target::Root(_) => crate::protocol::Target::Root,
            Target::Answer(a) => crate::protocol::Target::Answer(a.id),
            Target::Local(_) => crate::protocol::Target::Root,
        }
    }

    /// The identity of the target object (used by equality and the export table).
    pub(crate) fn identity(&self) -> usize {
        match &self.target {
            Target::Local(o) => object_key(o),
            Target::Remote(i) => Arc::as_ptr(i) as *const () as usize,
            Target::Root(l) => Arc::as_ptr(l) as *const () as usize,
            Target::Answer(a) => Arc::as_ptr(a) as *const () as usize,
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
            Target::Remote(i) => match i.link.shared.wire.rpyc().and_then(|w| w.held_name(i.id)) {
                // A Python object, by its id_pack.
                Some(name) => f.write_str(&name)?,
                None => write!(f, "<ref {}>", crate::protocol::fmt_id(i.id))?,
            },
            Target::Root(_) => f.write_str("<root>")?,
            Target::Answer(a) => write!(f, "<answer of call {}>", a.id)?,
        }
        for seg in self.path.iter() {
            write!(f, ".{seg}")?;
        }
        Ok(())
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
