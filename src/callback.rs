//! Callbacks: closures lent by reference.
//!
//! # Usage
//!
//! [`callback`] turns a closure into a [`Proxy`] of a callable object; pass it as an argument
//! (or put it in a struct) and the peer receives a proxy it can call like any function.
//! Arguments are decoded with serde by position; the return value travels back by value.
//! [`callback_async`] does the same for closures returning a future.
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

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::object::{Args, Invocation, MemberInfo, MemberKind, Object, TypeInfo};
use crate::proxy::Proxy;
use crate::value::{to_value, Value};

type Handler = dyn Fn(Args) -> BoxFuture<'static, Result<Value>> + Send + Sync;

/// A closure lent by reference. Make one with [`callback`] or [`callback_async`].
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
    /// A callback from a function over raw [`Args`] (any number of arguments).
    pub fn from_fn<F, Fut>(f: F) -> Callback
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        Callback {
            handler: Box::new(move |args| Box::pin(f(args))),
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

    fn invoke(
        self: Arc<Self>,
        member: usize,
        inv: Invocation,
    ) -> BoxFuture<'static, Result<Value>> {
        match (member, inv) {
            (0, Invocation::Call(args)) => (self.handler)(args),
            _ => Box::pin(async move { Err(crate::__private::bad_invocation("Callback", member)) }),
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
    /// Decodes `args` and starts the closure.
    fn start(&self, args: Args) -> BoxFuture<'static, Result<Value>>;
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
            fn start(&self, mut args: Args) -> BoxFuture<'static, Result<Value>> {
                let decoded = (|| -> Result<($($a,)*)> {
                    $(let $a: $a = args.take($i, concat!("arg", stringify!($i)))?;)*
                    args.finish()?;
                    Ok(($($a,)*))
                })();
                match decoded {
                    Ok(($($a,)*)) => {
                        let fut = (self)($($a),*);
                        Box::pin(async move { CallbackOutput::<O>::into_reply(fut.await) })
                    }
                    Err(e) => Box::pin(async move { Err(e) }),
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
pub fn callback<M, F: SyncHandler<M>>(f: F) -> Proxy {
    let f = Arc::new(f);
    Callback::from_fn(move |args| {
        let f = f.clone();
        async move { f.run(args) }
    })
    .into_proxy()
}

/// Lends an asynchronous closure (one returning a future) by reference.
pub fn callback_async<M, F: AsyncHandler<M>>(f: F) -> Proxy {
    Callback {
        handler: Box::new(move |args| f.start(args)),
    }
    .into_proxy()
}
