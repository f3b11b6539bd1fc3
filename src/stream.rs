//! Streams with credit-based flow control: [`Stream`] lends a local `futures` stream by
//! reference, [`RemoteStream`] pulls one from the peer.
//!
//! # Usage
//!
//! The four kinds of gRPC, with the same two types:
//!
//! - **server → client**: an exposed member returns a `netref::Stream<T>`; the caller decodes
//!   the result into a [`RemoteStream<T>`], which implements `futures::Stream`;
//! - **client → server**: a caller passes a `netref::Stream<T>` as an argument; the handler
//!   takes a `RemoteStream<T>` parameter and pulls it;
//! - **both ways**: each side lends a stream to the other (a chat);
//! - **unary** is an ordinary call.
//!
//! A typed proxy maps them for you: a member returning `Stream<T>` returns a
//! `RemoteStream<T>` on the client, and a `RemoteStream<T>` parameter takes a `Stream<T>`.
//!
//! # Flow control
//!
//! Nothing is pushed: the holder pulls. A [`RemoteStream`] asks for a *window* of items per
//! request (default [`DEFAULT_WINDOW`], [`RemoteStream::with_window`]) and keeps one request
//! in flight while it hands out the batch before, so a stream of small items costs one round
//! trip per window, not per item. The owner polls its stream only to answer a request, and
//! answers as soon as it has at least one item (it adds the items that are ready at once, up
//! to the window). So a slow or stalled consumer bounds the producer: at most two windows of
//! items exist ahead of the consumer, one in its buffer and one in the request in flight.
//!
//! # Object lifetimes and cancellation
//!
//! The stream travels by reference like any object. Dropping the [`RemoteStream`] cancels
//! its request in flight and releases the reference; the owner then drops its stream, which
//! stops the producer (its `Drop` runs). A closed connection does the same.
//!
//! # Errors
//!
//! A producer made with [`Stream::try_new`] may fail: the items before the error are
//! delivered, then the holder's stream yields the error (as a remote error of kind `Failed`
//! with the error's message) and ends. A lost connection ends it with a disconnected error.
//!
//! # Example
//!
//! ```
//! use futures_util::StreamExt;
//! use netref::{expose, Obj, RemoteStream};
//!
//! struct Numbers;
//!
//! #[expose]
//! impl Numbers {
//!     /// `0..n`, streamed.
//!     #[exposed]
//!     fn upto(&self, n: u64) -> netref::Stream<u64> {
//!         netref::Stream::new(futures_util::stream::iter(0..n))
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (_server, client) = netref::pair(Some(Obj::new(Numbers).erase()), None).await.unwrap();
//! let mut numbers: RemoteStream<u64> =
//!     client.root().call_method("upto", (1000,)).decode().await.unwrap();
//! let mut sum = 0;
//! while let Some(n) = numbers.next().await {
//!     sum += n.unwrap();
//! }
//! assert_eq!(sum, 499_500);
//! # });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::Call;
use crate::error::{Error, Result};
use crate::object::Obj;
use crate::proxy::Proxy;
use crate::value::{from_value, to_value, Value};

/// Items a [`RemoteStream`] asks for per request unless told otherwise.
pub const DEFAULT_WINDOW: u32 = 256;

/// The most items one request may ask for; larger requests are served this many.
pub const MAX_WINDOW: u32 = 65_536;

/// A local stream lent by reference: return it from an exposed member, or pass it as an
/// argument, and the peer pulls it as a [`RemoteStream`]. See the [module docs](self).
pub struct Stream<T> {
    source: Obj<Source>,
    _item: PhantomData<fn() -> T>,
}

impl<T: Serialize + Send + 'static> Stream<T> {
    /// Lends `items`; it is polled only when the holder asks for items.
    pub fn new<S>(items: S) -> Stream<T>
    where
        S: futures_util::Stream<Item = T> + Send + 'static,
    {
        Stream::from_values(items.map(|item| to_value(&item)).boxed())
    }

    /// Lends a fallible stream: an `Err` item ends the holder's stream with that error,
    /// after the items before it.
    pub fn try_new<S, E>(items: S) -> Stream<T>
    where
        S: futures_util::Stream<Item = std::result::Result<T, E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        Stream::from_values(
            items
                .map(|item| match item {
                    Ok(item) => to_value(&item),
                    Err(e) => Err(crate::__private::handler_error(e)),
                })
                .boxed(),
        )
    }

    fn from_values(items: BoxStream<'static, Result<Value>>) -> Stream<T> {
        let source = Obj::new(Source {
            items: tokio::sync::Mutex::new(Some(items)),
        });
        // So that the engine knows a stream when it meets one (see `surface`).
        crate::surface::set_stream_source(crate::object::Object::type_info(&*source));
        Stream {
            source,
            _item: PhantomData,
        }
    }
}

impl<T> Clone for Stream<T> {
    fn clone(&self) -> Self {
        Stream {
            source: self.source.clone(),
            _item: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stream<{}>", std::any::type_name::<T>())
    }
}

impl<T> Serialize for Stream<T> {
    /// Serializes as a reference to the lent stream.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

/// The object behind a lent [`Stream`]: answers pulls.
pub struct Source {
    /// `None` once the stream ended or failed.
    items: tokio::sync::Mutex<Option<BoxStream<'static, Result<Value>>>>,
}

/// A lent stream of items, pulled in windows by its holder.
#[crate::expose(no_proxy)]
impl Source {
    /// Up to `max` items: waits for the first, adds those ready at once. An empty list means
    /// the stream has ended; a failed stream fails this call after its earlier items were
    /// delivered.
    #[exposed]
    async fn pull(&self, max: u32) -> Result<Vec<Value>> {
        let max = max.clamp(1, MAX_WINDOW) as usize;
        let mut slot = self.items.lock().await;
        let Some(items) = slot.as_mut() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(max.min(1024));
        match items.next().await {
            None => {
                *slot = None;
                return Ok(out);
            }
            Some(Err(e)) => {
                *slot = None;
                return Err(e);
            }
            Some(Ok(v)) => out.push(v),
        }
        while out.len() < max {
            match items.next().now_or_never() {
                Some(Some(Ok(v))) => out.push(v),
                Some(None) => {
                    // Ended: the next pull answers the end.
                    *slot = Some(futures_util::stream::empty().boxed());
                    break;
                }
                Some(Some(Err(e))) => {
                    // Failed: the items so far go now, the error with the next pull.
                    *slot = Some(futures_util::stream::once(async move { Err(e) }).boxed());
                    break;
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// [`pull`](Source::pull) under the name of the remote-iterator protocol, so a dynamic
    /// peer iterates a stream as it iterates any remote iterator (`for x in s` and
    /// `list(s)` in the REPL, [`Proxy::iter`]).
    #[exposed]
    async fn next_batch(&self, max: u32) -> Result<Vec<Value>> {
        self.pull(max).await
    }
}

/// A stream the peer lent, pulled in windows: implements `futures::Stream` with items
/// `Result<T>`. See the [module docs](self).
pub struct RemoteStream<T> {
    source: Proxy,
    window: u32,
    buf: VecDeque<Value>,
    pending: Option<Call>,
    done: bool,
    /// The error that ended the stream, handed out after the items buffered before it.
    failed: Option<Error>,
    _item: PhantomData<fn() -> T>,
}

impl<T> RemoteStream<T> {
    /// A remote stream of the lent stream `source` (a proxy of a peer's [`Stream`]).
    pub fn from_proxy(source: Proxy) -> RemoteStream<T> {
        RemoteStream {
            source,
            window: DEFAULT_WINDOW,
            buf: VecDeque::new(),
            pending: None,
            done: false,
            failed: None,
            _item: PhantomData,
        }
    }

    /// Asks for `window` items per request (at least 1, at most [`MAX_WINDOW`]); the producer
    /// runs at most two windows ahead of the consumer.
    pub fn with_window(mut self, window: u32) -> RemoteStream<T> {
        self.window = window.clamp(1, MAX_WINDOW);
        self
    }

    /// The proxy of the lent stream.
    pub fn proxy(&self) -> &Proxy {
        &self.source
    }
}

impl<T: DeserializeOwned + 'static> futures_util::Stream for RemoteStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = &mut *self;
        loop {
            // Keep one request in flight while handing out what is buffered. A request leaves
            // once at most one window is buffered, and is polled at once (that sends it);
            // after that the call is looked at only when the buffer is empty, so handing out
            // an item costs nothing more, and the producer runs at most one window ahead of
            // what is buffered here.
            let mut look = this.buf.is_empty();
            if this.pending.is_none() && !this.done && this.buf.len() <= this.window as usize {
                this.pending = Some(this.source.call_method("pull", (this.window,)));
                look = true;
            }
            if let (true, Some(call)) = (look, this.pending.as_mut()) {
                if let Poll::Ready(result) = Pin::new(call).poll(cx) {
                    this.pending = None;
                    match result.and_then(from_value::<Vec<Value>>) {
                        Ok(items) if items.is_empty() => this.done = true,
                        Ok(items) => this.buf.extend(items),
                        Err(e) => {
                            this.done = true;
                            this.failed = Some(e);
                        }
                    }
                    continue;
                }
            }
            if let Some(v) = this.buf.pop_front() {
                return Poll::Ready(Some(from_value(v)));
            }
            if let Some(e) = this.failed.take() {
                return Poll::Ready(Some(Err(e)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            return Poll::Pending;
        }
    }
}

impl<T> fmt::Debug for RemoteStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStream")
            .field("source", &self.source)
            .field("window", &self.window)
            .field("buffered", &self.buf.len())
            .field("done", &self.done)
            .finish()
    }
}

impl<'de, T> Deserialize<'de> for RemoteStream<T> {
    /// Decodes a reference to a lent [`Stream`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Proxy::deserialize(deserializer).map(RemoteStream::from_proxy)
    }
}

impl<T> Serialize for RemoteStream<T> {
    /// Passes the stream on by reference (to a third party, or home).
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}
