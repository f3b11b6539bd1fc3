//! Exposed objects: the [`Object`] trait the `#[expose]` macro implements, the member
//! descriptions that drive the policy gate and introspection, and [`Obj`], a typed handle to a
//! local object that travels by reference.
//!
//! # Usage
//!
//! You rarely implement [`Object`] by hand: put [`#[netref::expose]`](crate::expose) on an
//! `impl` block and mark members with `#[exposed]`. The macro writes a static [`TypeInfo`]
//! (names, kinds, signatures, doc text) and an [`Object::invoke`] that dispatches by member
//! **index**. The engine's gate maps a requested name to an index only
//! if the name is in the `TypeInfo`, so an unmarked method cannot be reached by any name.
//!
//! `invoke` returns a [`Reply`]: the result itself when the handler finished synchronously
//! (every plain `fn` the macro exposes), or a boxed future for an `async fn`. A synchronous
//! handler therefore costs no allocation and no task.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicI64, Ordering};
//! use netref::{expose, Obj, Proxy};
//!
//! #[derive(Default)]
//! struct Counter { value: AtomicI64 }
//!
//! #[expose]
//! impl Counter {
//!     /// Adds one and returns the new value.
//!     #[exposed]
//!     fn inc(&self) -> i64 { self.value.fetch_add(1, Ordering::SeqCst) + 1 }
//!     fn reset(&self) { self.value.store(0, Ordering::SeqCst) } // not exposed
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let counter = Proxy::local(Obj::new(Counter::default()));
//! assert_eq!(counter.call_method("inc", ()).await.unwrap().as_i64(), Some(1));
//! assert!(counter.call_method("reset", ()).await.unwrap_err().is_no_such_member());
//! # });
//! ```

mod restricted;

pub use restricted::Restricted;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
pub use crate::surface::{MemberInfo, MemberKind, TypeInfo};
use crate::value::{from_value, Value};

/// An object that can be lent by reference: its type description plus a dispatcher.
///
/// Implemented by `#[expose]`, by [`callback`](crate::callback), and by the built-in
/// [`adapters`](crate::adapters). The engine never calls `invoke` with a member index that
/// the gate did not take from [`Object::type_info`], with an operation that does not fit that
/// member's kind.
pub trait Object: Send + Sync + 'static {
    /// The static description of this object's exposed surface.
    fn type_info(&self) -> &'static TypeInfo;

    /// Runs member number `member` (an index into `type_info().members`) with `inv`.
    ///
    /// Return [`Reply::Ready`] with the result when the work is done by the time `invoke`
    /// returns, and [`Reply::Later`] (see [`Reply::later`]) when it has to wait for something.
    /// A ready reply is sent straight away by the connection's reader: no future is boxed
    /// and no task is spawned. So `invoke` should do its synchronous work itself rather than
    /// put it in an `async` block, and it must not block the thread for long, since the
    /// reader waits for it (as it waits for the first poll of a `Later` future).
    ///
    /// `invoke` runs inside the call's context ([`crate::context`]), and a panic in it (or in
    /// the future it returns) is reported to the caller as a `Panicked` error.
    fn invoke(self: Arc<Self>, member: usize, inv: Invocation) -> Reply;

    /// Upcast used to recover the concrete type (identity round trip into [`Obj<T>`]).
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// What [`Object::invoke`] returns: the handler's result, or a future of it.
///
/// [`Reply::Ready`] carries a result computed synchronously; the engine answers it at once,
/// without boxing a future or spawning a task. [`Reply::Later`] carries a boxed future for
/// work that has to wait (an `async fn` handler, a nested remote call); the engine polls it
/// once right away and gives it a task only if it is still pending.
///
/// A `Reply` is itself a future (and `Unpin`), so code that used to `.await` the result of
/// `invoke` keeps working. Like the futures it holds it is `Send`, not `Sync`.
///
/// # Example
///
/// An object written by hand, with one synchronous and one asynchronous member:
///
/// ```
/// use std::any::Any;
/// use std::sync::Arc;
/// use netref::{Invocation, MemberInfo, MemberKind, Object, Proxy, Reply, TypeInfo, Value};
///
/// struct Clock;
///
/// static INFO: TypeInfo = TypeInfo {
///     name: "Clock",
///     doc: "Tells the time.",
///     members: &[
///         MemberInfo { name: "now", kind: MemberKind::Method, signature: "now() -> i64", doc: "" },
///         MemberInfo { name: "later", kind: MemberKind::Method, signature: "later() -> i64", doc: "" },
///     ],
///     call: None,
/// };
///
/// impl Object for Clock {
///     fn type_info(&self) -> &'static TypeInfo {
///         &INFO
///     }
///
///     fn invoke(self: Arc<Self>, member: usize, inv: Invocation) -> Reply {
///         match (member, inv) {
///             (0, Invocation::Call(_)) => Reply::Ready(Ok(Value::Int(12))),
///             (1, Invocation::Call(_)) => Reply::later(async {
///                 tokio::task::yield_now().await;
///                 Ok(Value::Int(13))
///             }),
///             _ => Reply::Ready(Err(netref::Error::remote(
///                 netref::ErrorKind::WrongOperation,
///                 "no such operation",
///             ))),
///         }
///     }
///
///     fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
///         self
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let clock = Proxy::local(Arc::new(Clock) as Arc<dyn Object>);
/// assert_eq!(clock.call_method("now", ()).await.unwrap().as_i64(), Some(12));
/// assert_eq!(clock.call_method("later", ()).await.unwrap().as_i64(), Some(13));
/// # });
/// ```
#[must_use = "a reply does nothing unless it is sent or awaited"]
pub enum Reply {
    /// The result, computed synchronously.
    Ready(Result<Value>),
    /// The result, still to come.
    Later(BoxFuture<'static, Result<Value>>),
}

impl Reply {
    /// A reply that runs `fut` (boxing it once).
    pub fn later<F>(fut: F) -> Reply
    where
        F: Future<Output = Result<Value>> + Send + 'static,
    {
        Reply::Later(Box::pin(fut))
    }

    /// True when the result is already at hand ([`Reply::Ready`]).
    pub fn is_ready(&self) -> bool {
        matches!(self, Reply::Ready(_))
    }
}

impl From<Result<Value>> for Reply {
    fn from(result: Result<Value>) -> Self {
        Reply::Ready(result)
    }
}

impl From<BoxFuture<'static, Result<Value>>> for Reply {
    fn from(fut: BoxFuture<'static, Result<Value>>) -> Self {
        Reply::Later(fut)
    }
}

impl Future for Reply {
    type Output = Result<Value>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Value>> {
        let this = self.get_mut();
        match this {
            Reply::Later(fut) => fut.as_mut().poll(cx),
            Reply::Ready(_) => {
                // `Completed` has no size, so boxing it allocates nothing.
                let Reply::Ready(result) =
                    std::mem::replace(this, Reply::Later(Box::pin(Completed)))
                else {
                    unreachable!("matched as ready above")
                };
                Poll::Ready(result)
            }
        }
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            Reply::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// What a ready [`Reply`] becomes once its result is taken: polling it again is a bug.
struct Completed;

impl Future for Completed {
    type Output = Result<Value>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<Value>> {
        panic!("`Reply` polled after completion")
    }
}

/// The operation the gate hands to [`Object::invoke`] for one member.
#[derive(Debug)]
pub enum Invocation {
    /// Call a method (or the object itself, for callables).
    Call(Args),
    /// Read a property.
    Get,
    /// Write a settable property.
    Set(Value),
}

/// Call arguments: positional values and named values.
///
/// Handlers generated by `#[expose]` first refuse named arguments that name no parameter
/// ([`Args::expect_names`]), then take each parameter with [`Args::take`], and finally refuse
/// leftovers ([`Args::finish`]):
///
/// - a named argument stands for the parameter of that name; giving a parameter both by
///   position and by name is refused;
/// - a parameter that is given neither way is **missing**: that is an error naming it
///   (`missing argument `b``) for every parameter type, [`Value`] included, except an
///   `Option`, which is then `None`. An explicit nil ([`Value::Nil`]) is not missing: it is a
///   value, and decodes as one (`Value::Nil`, `None`, `()`);
/// - a named argument that names no parameter is refused as unexpected, before any
///   parameter is looked at, so a misspelt keyword is reported as itself rather than as the
///   parameter it failed to fill.
///
/// ```
/// use netref::{Args, Value};
/// let args = Args::new().arg(1).arg("x").named("step", 5);
/// assert_eq!(args.positional().len(), 2);
/// assert_eq!(args.named_values()[0].0, "step");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    positional: Vec<Value>,
    named: Vec<(String, Value)>,
    taken: usize,
}

impl Args {
    /// No arguments.
    pub fn new() -> Self {
        Args::default()
    }

    /// Arguments from positional and named values.
    pub fn from_parts(positional: Vec<Value>, named: Vec<(String, Value)>) -> Self {
        Args {
            positional,
            named,
            taken: 0,
        }
    }

    /// Adds a positional argument (converted with [`to_value`](crate::to_value); a value
    /// that cannot be converted becomes [`Value::Nil`]: use [`Args::try_arg`] to see errors).
    pub fn arg(mut self, v: impl serde::Serialize) -> Self {
        self.positional
            .push(crate::value::to_value(&v).unwrap_or_default());
        self
    }

    /// Adds a positional argument, reporting a conversion error.
    pub fn try_arg(mut self, v: impl serde::Serialize) -> Result<Self> {
        self.positional.push(crate::value::to_value(&v)?);
        Ok(self)
    }

    /// Adds a named argument.
    pub fn named(mut self, name: impl Into<String>, v: impl serde::Serialize) -> Self {
        self.named
            .push((name.into(), crate::value::to_value(&v).unwrap_or_default()));
        self
    }

    /// The positional values.
    pub fn positional(&self) -> &[Value] {
        &self.positional
    }

    /// The named values.
    pub fn named_values(&self) -> &[(String, Value)] {
        &self.named
    }

    /// Splits into positional and named values.
    pub fn into_parts(self) -> (Vec<Value>, Vec<(String, Value)>) {
        (self.positional, self.named)
    }

    /// Fails when a named argument names none of `params` (the parameters of the member,
    /// in order): `unexpected argument `secs` (parameters: `seconds`)`.
    ///
    /// Handlers generated by `#[expose]` call it before taking any parameter, so that a
    /// misspelt keyword is reported as unexpected instead of as the missing parameter it was
    /// meant for.
    ///
    /// ```
    /// use netref::Args;
    /// let args = Args::new().named("secs", 1);
    /// let e = args.expect_names(&["seconds"]).unwrap_err();
    /// assert!(e.to_string().contains("unexpected argument `secs`"), "{e}");
    /// assert!(Args::new().named("seconds", 1).expect_names(&["seconds"]).is_ok());
    /// ```
    pub fn expect_names(&self, params: &[&str]) -> Result<()> {
        let Some((name, _)) = self
            .named
            .iter()
            .find(|(n, _)| !params.contains(&n.as_str()))
        else {
            return Ok(());
        };
        let expected = if params.is_empty() {
            "it takes no arguments".to_owned()
        } else {
            let list: Vec<String> = params.iter().map(|p| format!("`{p}`")).collect();
            format!("parameters: {}", list.join(", "))
        };
        Err(Error::bad_args(format!(
            "unexpected argument `{name}` ({expected})"
        )))
    }

    /// Takes parameter number `index` called `name`, decoding it into `T`.
    ///
    /// The argument is the named one called `name` if there is one, else positional argument
    /// number `index`. When there is neither, the parameter is missing: an `Option` parameter
    /// is then `None`, and any other type fails with [`ErrorKind::BadArguments`]
    /// (`missing argument `name``). A given value that does not decode into `T` fails the
    /// same way, naming the argument and the problem.
    ///
    /// ```
    /// use netref::{Args, Value};
    /// let mut args = Args::new().arg(1);
    /// assert_eq!(args.take::<i64>(0, "a").unwrap(), 1);
    /// let e = args.take::<Value>(1, "b").unwrap_err();
    /// assert!(e.to_string().contains("missing argument `b`"), "{e}");
    /// assert_eq!(args.take::<Option<i64>>(2, "c").unwrap(), None);
    /// ```
    ///
    /// [`ErrorKind::BadArguments`]: crate::ErrorKind::BadArguments
    pub fn take<T: DeserializeOwned + 'static>(&mut self, index: usize, name: &str) -> Result<T> {
        self.taken = self.taken.max(index + 1);
        let raw = if let Some(pos) = self.named.iter().position(|(n, _)| n == name) {
            if index < self.positional.len() && !matches!(self.positional[index], Value::Nil) {
                return Err(Error::bad_args(format!(
                    "argument `{name}` given both by position and by name"
                )));
            }
            Some(self.named.swap_remove(pos).1)
        } else {
            self.positional.get_mut(index).map(std::mem::take)
        };
        match raw {
            Some(raw) => from_value(raw).map_err(|e| {
                Error::bad_args(format!("argument `{name}`: {}", strip_value_prefix(&e)))
            }),
            None => T::deserialize(Absent)
                .map_err(|_| Error::bad_args(format!("missing argument `{name}`"))),
        }
    }

    /// Fails when arguments are left over after every parameter was taken.
    pub fn finish(&self) -> Result<()> {
        if self.positional.len() > self.taken {
            return Err(Error::bad_args(format!(
                "expected at most {} positional argument(s), got {}",
                self.taken,
                self.positional.len()
            )));
        }
        if let Some((name, _)) = self.named.first() {
            return Err(Error::bad_args(format!("unexpected argument `{name}`")));
        }
        Ok(())
    }
}

/// What a parameter that was not given decodes from: `None` for an `Option` (serde's
/// `deserialize_option`), an error for every other type. Types that decode from anything
/// ([`Value`] among them) ask for `deserialize_any` and so are refused too, which is what
/// tells a missing argument from an explicit nil.
struct Absent;

impl<'de> serde::Deserializer<'de> for Absent {
    type Error = crate::value::ValueError;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        _visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("missing"))
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_none()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

fn strip_value_prefix(e: &Error) -> String {
    match e {
        Error::Value(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Converts something into call [`Args`]: tuples of serializable values (up to 8), a
/// `Vec<Value>`, or [`Args`] itself.
pub trait IntoArgs {
    /// Performs the conversion.
    fn into_args(self) -> Result<Args>;
}

impl IntoArgs for Args {
    fn into_args(self) -> Result<Args> {
        Ok(self)
    }
}

impl IntoArgs for Vec<Value> {
    fn into_args(self) -> Result<Args> {
        Ok(Args::from_parts(self, Vec::new()))
    }
}

macro_rules! tuple_args {
    ($($name:ident),*) => {
        impl<$($name: serde::Serialize),*> IntoArgs for ($($name,)*) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Result<Args> {
                let ($($name,)*) = self;
                Ok(Args::from_parts(vec![$(crate::value::to_value(&$name)?),*], Vec::new()))
            }
        }
    };
}
tuple_args!();
tuple_args!(A);
tuple_args!(A, B);
tuple_args!(A, B, C);
tuple_args!(A, B, C, D);
tuple_args!(A, B, C, D, E);
tuple_args!(A, B, C, D, E, F);
tuple_args!(A, B, C, D, E, F, G);
tuple_args!(A, B, C, D, E, F, G, H);

/// A local object that travels by reference, with its concrete type.
///
/// `Obj<T>` is an `Arc<T>` that serializes as a reference: put it in a return value, an
/// argument or a struct field and the peer receives a proxy. When a proxy of it comes back,
/// decoding into `Obj<T>` yields the very same `Arc` (`Obj::ptr_eq` holds).
pub struct Obj<T: ?Sized>(pub(crate) Arc<T>);

impl<T: Object> Obj<T> {
    /// Wraps `value` for lending.
    pub fn new(value: T) -> Self {
        Obj(Arc::new(value))
    }

    /// Wraps an existing `Arc`.
    pub fn from_arc(arc: Arc<T>) -> Self {
        Obj(arc)
    }

    /// The inner `Arc`.
    pub fn arc(&self) -> &Arc<T> {
        &self.0
    }

    /// The object as a trait object, as the engine stores it.
    pub fn erase(&self) -> Arc<dyn Object> {
        self.0.clone()
    }

    /// True when both handles point to the same object.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// A view of this object with only the exposed members named in `members`, to lend as
    /// a narrower capability (see [`Restricted`] for what it guarantees).
    ///
    /// Every operation on the view goes through the policy gate with the view's own
    /// description, which lists only those members: the others are refused as
    /// [`NoSuchMember`](crate::ErrorKind::NoSuchMember) and hidden from `dir` and `help`.
    /// Fails with `NoSuchMember` when a name is not an exposed member of `T`.
    ///
    /// ```
    /// use netref::{adapters::List, Obj, Proxy};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let list = Obj::new(List::new());
    /// let append_only = Proxy::local(list.restrict(&["append"]).unwrap());
    /// append_only.call_method("append", (1,)).await.unwrap();
    /// assert!(append_only.call_method("pop", ()).await.unwrap_err().is_no_such_member());
    /// assert_eq!(list.len(), 1);
    /// # });
    /// ```
    pub fn restrict(&self, members: &[&str]) -> Result<Obj<Restricted>> {
        Restricted::new(self.erase(), members).map(Obj::new)
    }

    /// Recovers a typed handle from an erased object, if it is a `T`.
    pub fn downcast(obj: Arc<dyn Object>) -> Option<Self> {
        obj.as_any().downcast::<T>().ok().map(Obj)
    }
}

impl<T: Object> From<Obj<T>> for Arc<dyn Object> {
    fn from(o: Obj<T>) -> Self {
        o.0
    }
}

impl<T: ?Sized> Clone for Obj<T> {
    fn clone(&self) -> Self {
        Obj(self.0.clone())
    }
}

impl<T: ?Sized> Deref for Obj<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized> PartialEq for Obj<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl<T: ?Sized> Eq for Obj<T> {}
impl<T: ?Sized> Hash for Obj<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as *const () as usize).hash(state)
    }
}

impl<T: Object> fmt::Debug for Obj<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Obj<{}>", self.0.type_info().name)
    }
}

/// The address of an object, used as its identity in the export table.
pub(crate) fn object_key(obj: &Arc<dyn Object>) -> usize {
    Arc::as_ptr(obj) as *const () as usize
}
