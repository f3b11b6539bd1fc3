//! Callbacks: closures lent by reference.
//!
//! # Usage
//!
//! [`callback`] turns a closure into a [`Proxy`] of a callable object; pass it as an argument
//! (or put it in a struct) and the peer receives a proxy it can call like any function.
//! Arguments are decoded with serde by position; the return value travels back by value.
//! [`callback_async`] does the same for closures returning a future. A synchronous callback
//! runs as soon as its call arrives and is answered without boxing a future or spawning a task.
//!
//! A closure may return a plain serializable value or `netref::Result<T>`: an `Err` reaches
//! the caller as a [`RemoteError`](crate::RemoteError) with its kind kept.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let double = netref::callback(|x: i64| x * 2);
//! assert_eq!(double.call((21,)).await.unwrap().as_i64(), Some(42));
//!
//! let greet = netref::callback_async(|name: String| async move { format!("hi {name}") });
//! assert_eq!(greet.call(("bo",)).await.unwrap().as_str(), Some("hi bo"));
//! # });
//! ```

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::object::{Args, Invocation, MemberInfo, MemberKind, Object, Reply, TypeInfo};
use crate::proxy::Proxy;
use crate::value::{to_value, Value};

type Handler = dyn Fn(Args) -> Reply + Send + Sync;

/// A closure lent by reference. Make one with [`callback`] or [`callback_async`], or from a
/// function over raw [`Args`] with [`Callback::from_fn`] or [`Callback::from_sync_fn`].
pub struct Callback {
    handler: Box<Handler>,
}

static CALLBACK_INFO: TypeInfo = TypeInfo {
    name: "Callback",
    doc: "A function lent by reference: call it directly.",
    members: &[MemberInfo {
        name: "call",
        kind: MemberKind::Method,
        signature: "call(args...)",
        doc: "Runs the function with the given arguments.",
    }],
    call: Some(0),
};

impl Callback {
    /// A callback from a function over raw [`Args`] (any number of arguments) that returns a
    /// future.
    pub fn from_fn<F, Fut>(f: F) -> Callback
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        Callback {
            handler: Box::new(move |args| Reply::later(f(args))),
        }
    }

    /// A callback from a synchronous function over raw [`Args`]: it runs as soon as a call
    /// arrives, and its result is sent without boxing a future.
    ///
    /// ```
    /// use netref::{Args, Callback, Value};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let count = Callback::from_sync_fn(|args: Args| Ok(Value::from(args.positional().len() as u64)))
    ///     .into_proxy();
    /// assert_eq!(count.call((1, 2, 3)).await.unwrap().as_i64(), Some(3));
    /// # });
    /// ```
    pub fn from_sync_fn<F>(f: F) -> Callback
    where
        F: Fn(Args) -> Result<Value> + Send + Sync + 'static,
    {
        Callback {
            handler: Box::new(move |args| Reply::Ready(f(args))),
        }
    }

    /// This callback as a proxy, ready to be passed to a peer.
    pub fn into_proxy(self) -> Proxy {
        Proxy::local(Arc::new(self) as Arc<dyn Object>)
    }
}

impl Object for Callback {
    fn type_info(&self) -> &'static TypeInfo {
        &CALLBACK_INFO
    }

    fn invoke(self: Arc<Self>, member: usize, inv: Invocation) -> Reply {
        match (member, inv) {
            (0, Invocation::Call(args)) => (self.handler)(args),
            _ => Reply::Ready(Err(crate::__private::bad_invocation("Callback", member))),
        }
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// What a callback may return: any serializable value, or `netref::Result` of one. The
/// `Marker` parameter only tells the two cases apart.
pub trait CallbackOutput<Marker>: Send + 'static {
    /// Converts into the reply.
    fn into_reply(self) -> Result<Value>;
}

/// Marker of [`CallbackOutput`] for plain values.
#[derive(Debug)]
pub enum PlainOutput {}
/// Marker of [`CallbackOutput`] for `netref::Result` values.
#[derive(Debug)]
pub enum FallibleOutput {}

impl<T: Serialize + Send + 'static> CallbackOutput<PlainOutput> for T {
    fn into_reply(self) -> Result<Value> {
        to_value(&self)
    }
}

impl<T: Serialize + Send + 'static> CallbackOutput<FallibleOutput> for Result<T, Error> {
    fn into_reply(self) -> Result<Value> {
        self.and_then(|v| to_value(&v))
    }
}

/// A closure usable as a synchronous callback; implemented for `Fn(A, B, …) -> R` with up to
/// six serde-decodable arguments.
pub trait SyncHandler<Marker>: Send + Sync + 'static {
    /// Decodes `args` and runs the closure.
    fn run(&self, args: Args) -> Result<Value>;
}

/// A closure usable as an asynchronous callback; implemented for `Fn(A, B, …) -> Fut` with up
/// to six serde-decodable arguments.
pub trait AsyncHandler<Marker>: Send + Sync + 'static {
    /// Decodes `args` and starts the closure: a [`Reply::Later`] of its future, or a ready
    /// error when the arguments do not decode.
    fn start(&self, args: Args) -> Reply;
}

macro_rules! handlers {
    ($(($($a:ident $i:tt),*)),* $(,)?) => {$(
        impl<F, R, O, $($a),*> SyncHandler<(O, $($a,)*)> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
            R: CallbackOutput<O>,
            O: 'static,
            $($a: DeserializeOwned + Send + 'static,)*
        {
            #[allow(unused_mut, unused_variables, non_snake_case)]
            fn run(&self, mut args: Args) -> Result<Value> {
                $(let $a: $a = args.take($i, concat!("arg", stringify!($i)))?;)*
                args.finish()?;
                CallbackOutput::<O>::into_reply((self)($($a),*))
            }
        }

        impl<F, Fut, R, O, $($a),*> AsyncHandler<(O, $($a,)*)> for F
        where
            F: Fn($($a),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: CallbackOutput<O>,
            O: 'static,
            $($a: DeserializeOwned + Send + 'static,)*
        {
            #[allow(unused_mut, unused_variables, non_snake_case)]
            fn start(&self, mut args: Args) -> Reply {
                let decoded = (|| -> Result<($($a,)*)> {
                    $(let $a: $a = args.take($i, concat!("arg", stringify!($i)))?;)*
                    args.finish()?;
                    Ok(($($a,)*))
                })();
                match decoded {
                    Ok(($($a,)*)) => {
                        let fut = (self)($($a),*);
                        Reply::later(async move { CallbackOutput::<O>::into_reply(fut.await) })
                    }
                    Err(e) => Reply::Ready(Err(e)),
                }
            }
        }
    )*};
}

handlers!(
    (),
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, G 5),
);

/// Lends a synchronous closure by reference. Arguments are decoded by position.
///
/// When a peer calls it, the closure runs as soon as the call arrives, on the connection's
/// reader: keep it short, or use [`callback_async`] for work that waits.
pub fn callback<M, F: SyncHandler<M>>(f: F) -> Proxy {
    Callback::from_sync_fn(move |args| f.run(args)).into_proxy()
}

/// Lends an asynchronous closure (one returning a future) by reference.
pub fn callback_async<M, F: AsyncHandler<M>>(f: F) -> Proxy {
    Callback {
        handler: Box::new(move |args| f.start(args)),
    }
    .into_proxy()
}
