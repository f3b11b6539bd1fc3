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
//! request, budgeted in items and in bytes: at most [`DEFAULT_WINDOW`] items
//! ([`RemoteStream::with_window`]) and about [`DEFAULT_WINDOW_BYTES`] of them
//! ([`RemoteStream::with_window_bytes`]; a window always holds at least one item). So small
//! items come thousands to a request and large ones a few. The owner polls its stream only
//! to answer a request, and answers as soon as it has at least one item (it adds the items
//! that are ready at once, up to the budget).
//!
//! The holder keeps at most two requests in flight and sends a new one only once it has
//! handed out every item it holds: while the consumer works through one window, the next is
//! on its way or already here. So a slow or stalled consumer bounds the producer: at most
//! two windows of items exist ahead of the consumer (buffered here, or in the requests in
//! flight), at most about 128 KiB by default.
//!
//! A window travels as one block of bytes (`pull_block`), written straight from the
//! producer's items (`T: Serialize`) and read straight into the holder's (`T: Deserialize`):
//! no [`Value`] per item on either side. The items are laid out as the values
//! [`to_value`] would make of them, so an item decodes exactly as it would
//! from a value (see `docs/protocol.md`, "Streams"). Two cases fall back to a list of values:
//! a peer whose hello does not announce blocks (it is asked with `pull`, at most
//! [`VALUE_WINDOW`] items a request by default, since a list has no byte budget), and items
//! that hold object references ([`Proxy`], [`Obj`]), which the engine must count: from the
//! first such item on, the owner answers with values. A malformed block ends the stream with
//! an error; the connection goes on.
//!
//! # Object lifetimes and cancellation
//!
//! The stream travels by reference like any object. Dropping the [`RemoteStream`] cancels
//! its requests in flight and releases the reference; the owner then drops its stream, which
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

pub(crate) mod block;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::Call;
use crate::error::{Error, Result};
use crate::object::Obj;
use crate::proxy::Proxy;
use crate::value::{from_value, to_value, Value};

/// Items a [`RemoteStream`] asks for per request unless told otherwise. Small items reach
/// this many per request; larger ones stop at [`DEFAULT_WINDOW_BYTES`].
pub const DEFAULT_WINDOW: u32 = MAX_WINDOW;

/// Bytes of items a [`RemoteStream`] asks for per request unless told otherwise (a request
/// always gets at least one item, however large).
pub const DEFAULT_WINDOW_BYTES: u32 = 64 * 1024;

/// Items per request from a peer that sends each window as a list of values (one whose
/// hello lacks the block feature), unless [`RemoteStream::with_window`] says otherwise: such
/// a window has no byte budget, so it stays small.
pub const VALUE_WINDOW: u32 = 256;

/// The most items one request may ask for; larger requests are served this many.
pub const MAX_WINDOW: u32 = 65_536;

/// The most bytes of items one request may ask for.
pub const MAX_WINDOW_BYTES: u32 = 4 * 1024 * 1024;

/// Requests a [`RemoteStream`] keeps in flight at most.
const AHEAD: usize = 2;

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
        Stream::from_producer(Producer::new(items.map(Ok)))
    }

    /// Lends a fallible stream: an `Err` item ends the holder's stream with that error,
    /// after the items before it.
    pub fn try_new<S, E>(items: S) -> Stream<T>
    where
        S: futures_util::Stream<Item = std::result::Result<T, E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        Stream::from_producer(Producer::new(
            items.map(|item| item.map_err(crate::__private::handler_error)),
        ))
    }

    fn from_producer(producer: impl Produce) -> Stream<T> {
        let source = Obj::new(Source {
            items: tokio::sync::Mutex::new(Box::new(producer)),
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

/// A lent stream's producer behind one dynamic call per window (not per item): the loops
/// that poll the stream and encode its items are compiled for each item type.
trait Produce: Send + 'static {
    /// Up to `max` items as values: waits for the first, adds those ready at once. An empty
    /// list means the end.
    fn values(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<Value>>>;

    /// Up to `max` items, stopping once `max_bytes` are written, as one block
    /// (`Value::Bytes`, see `block.rs`); or as a list of values once an item held an object
    /// reference.
    fn block(&mut self, max: usize, max_bytes: usize) -> BoxFuture<'_, Result<Value>>;
}

/// Where a lent stream stands.
enum State<S> {
    /// Items may come.
    Open(Pin<Box<S>>),
    /// Failed after items that went out: the next pull answers this error.
    Failed(Error),
    /// Ended (the stream is dropped, so its producer has stopped).
    Ended,
}

struct Producer<S, T> {
    state: State<S>,
    /// An item a block could not carry (it holds a reference), first in line as a value.
    held: Option<Value>,
    /// The items hold references: every window goes as values from now on.
    by_value: bool,
    _item: PhantomData<fn() -> T>,
}

impl<S, T> Producer<S, T>
where
    S: futures_util::Stream<Item = Result<T>> + Send + 'static,
    T: Serialize + Send + 'static,
{
    fn new(items: S) -> Self {
        Producer {
            state: State::Open(Box::pin(items)),
            held: None,
            by_value: false,
            _item: PhantomData,
        }
    }

    /// The next item; the stream is dropped as soon as it ends or fails.
    #[inline]
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        match &mut self.state {
            State::Open(items) => {
                let next = std::task::ready!(items.as_mut().poll_next(cx));
                if !matches!(next, Some(Ok(_))) {
                    self.state = State::Ended;
                }
                Poll::Ready(next)
            }
            State::Failed(_) => match std::mem::replace(&mut self.state, State::Ended) {
                State::Failed(e) => Poll::Ready(Some(Err(e))),
                _ => unreachable!("matched just above"),
            },
            State::Ended => Poll::Ready(None),
        }
    }

    /// Waits for the first item of a window.
    async fn first(&mut self) -> Option<Result<T>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    /// An item polled without waiting: `None` when none is ready now.
    #[inline]
    fn ready(&mut self) -> Option<Option<Result<T>>> {
        match self.poll_item(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(item) => Some(item),
            Poll::Pending => None,
        }
    }

    /// A failure met after some items of a window: those go now, the error next time.
    fn defer(&mut self, e: Error) {
        self.state = State::Failed(e);
    }

    async fn pull_values(&mut self, max: usize) -> Result<Vec<Value>> {
        let mut out = Vec::with_capacity(max.min(1024));
        match self.held.take() {
            Some(v) => out.push(v),
            None => match self.first().await {
                None => return Ok(out),
                Some(item) => out.push(item.and_then(|t| to_value(&t))?),
            },
        }
        while out.len() < max {
            match self.ready() {
                None | Some(None) => break,
                Some(Some(item)) => match item.and_then(|t| to_value(&t)) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        self.defer(e);
                        break;
                    }
                },
            }
        }
        Ok(out)
    }

    async fn pull_block(&mut self, max: usize, max_bytes: usize) -> Result<Value> {
        if self.by_value {
            return self.pull_values(max).await.map(Value::List);
        }
        let mut sink = block::Sink::new(max_bytes.min(256 * 1024) + 64);
        let mut count = 0u32;
        let mut item = self.first().await;
        let ended = loop {
            match item {
                None => break true,
                Some(Err(e)) if count == 0 => return Err(e),
                Some(Err(e)) => {
                    self.defer(e);
                    break false;
                }
                Some(Ok(t)) => match sink.put(&t) {
                    Ok(()) => count += 1,
                    Err(_) if sink.saw_ref => {
                        // Items with references travel as values, counted by the engine.
                        self.by_value = true;
                        self.held = Some(to_value(&t)?);
                        if count == 0 {
                            return self.pull_values(max).await.map(Value::List);
                        }
                        break false;
                    }
                    Err(e) if count == 0 => return Err(Error::Value(e.0)),
                    Err(e) => {
                        self.defer(Error::Value(e.0));
                        break false;
                    }
                },
            }
            if count as usize >= max || sink.bytes() - block::HEADER >= max_bytes {
                break false;
            }
            match self.ready() {
                Some(next) => item = next,
                None => break false,
            }
        };
        Ok(Value::Bytes(sink.finish(count, ended)))
    }
}

impl<S, T> Produce for Producer<S, T>
where
    S: futures_util::Stream<Item = Result<T>> + Send + 'static,
    T: Serialize + Send + 'static,
{
    fn values(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<Value>>> {
        Box::pin(self.pull_values(max))
    }

    fn block(&mut self, max: usize, max_bytes: usize) -> BoxFuture<'_, Result<Value>> {
        Box::pin(self.pull_block(max, max_bytes))
    }
}

/// The object behind a lent [`Stream`]: answers pulls.
pub struct Source {
    items: tokio::sync::Mutex<Box<dyn Produce>>,
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
        self.items.lock().await.values(max).await
    }

    /// Up to `max` items and about `max_bytes` bytes of them (at least one item), as one
    /// block of bytes written straight from the items (see `docs/protocol.md`, "Streams"),
    /// or as a list of values when the items hold object references. For peers whose hello
    /// announces stream blocks.
    #[exposed]
    async fn pull_block(&self, max: u32, max_bytes: u32) -> Result<Value> {
        let max = max.clamp(1, MAX_WINDOW) as usize;
        let max_bytes = max_bytes.clamp(1, MAX_WINDOW_BYTES) as usize;
        self.items.lock().await.block(max, max_bytes).await
    }

    /// [`pull`](Source::pull) under the name of the remote-iterator protocol, so a dynamic
    /// peer iterates a stream as it iterates any remote iterator (`for x in s` and
    /// `list(s)` in the REPL, [`Proxy::iter`]).
    #[exposed]
    async fn next_batch(&self, max: u32) -> Result<Vec<Value>> {
        self.pull(max).await
    }
}

/// One request of a [`RemoteStream`]: on its way, or answered at once.
enum Pull {
    Call(Call),
    Done(Result<Value>),
}

/// The items received and not yet handed out.
#[derive(Default)]
struct Buffer {
    /// A block's bytes, where its next item starts, and the items left in it.
    block: Vec<u8>,
    at: usize,
    left: u32,
    /// Items that came as values.
    values: VecDeque<Value>,
}

impl Buffer {
    fn len(&self) -> usize {
        self.left as usize + self.values.len()
    }
}

/// A stream the peer lent, pulled in windows: implements `futures::Stream` with items
/// `Result<T>`. See the [module docs](self).
pub struct RemoteStream<T> {
    source: Proxy,
    /// Items per request, when set with [`RemoteStream::with_window`].
    window: Option<u32>,
    window_bytes: u32,
    /// Whether the owner sends blocks; decided at the first request.
    blocks: Option<bool>,
    /// The deepest nesting an item may have (this side's `max_depth`).
    max_depth: usize,
    buf: Buffer,
    /// Requests in flight, oldest first.
    pending: VecDeque<Pull>,
    done: bool,
    /// The error that ended the stream, handed out after the items buffered before it.
    failed: Option<Error>,
    _item: PhantomData<fn() -> T>,
}

impl<T> RemoteStream<T> {
    /// A remote stream of the lent stream `source` (a proxy of a peer's [`Stream`]).
    pub fn from_proxy(source: Proxy) -> RemoteStream<T> {
        let max_depth = source
            .shared()
            .map_or(crate::Config::default().max_depth, |s| s.config.max_depth);
        RemoteStream {
            source,
            window: None,
            window_bytes: DEFAULT_WINDOW_BYTES,
            blocks: None,
            max_depth,
            buf: Buffer::default(),
            pending: VecDeque::new(),
            done: false,
            failed: None,
            _item: PhantomData,
        }
    }

    /// Asks for at most `window` items per request (at least 1, at most [`MAX_WINDOW`];
    /// default [`DEFAULT_WINDOW`], or [`VALUE_WINDOW`] from a peer without stream blocks).
    /// The producer runs at most three windows ahead of the consumer.
    pub fn with_window(mut self, window: u32) -> RemoteStream<T> {
        self.window = Some(window.clamp(1, MAX_WINDOW));
        self
    }

    /// Asks for at most about `bytes` bytes of items per request (at least 1, at most
    /// [`MAX_WINDOW_BYTES`]; default [`DEFAULT_WINDOW_BYTES`]): a request is answered once
    /// its items reach this size, and always carries at least one item. A peer without
    /// stream blocks ignores it.
    pub fn with_window_bytes(mut self, bytes: u32) -> RemoteStream<T> {
        self.window_bytes = bytes.clamp(1, MAX_WINDOW_BYTES);
        self
    }

    /// The proxy of the lent stream.
    pub fn proxy(&self) -> &Proxy {
        &self.source
    }

    /// Items per request, as the owner's form of reply allows.
    fn items_per_request(&self, blocks: bool) -> u32 {
        match (self.window, blocks) {
            (Some(w), _) => w,
            (None, true) => DEFAULT_WINDOW,
            (None, false) => VALUE_WINDOW,
        }
    }

    /// Sends one more request (and polls it, which writes it).
    fn request(&mut self, cx: &mut Context<'_>) {
        let blocks = *self.blocks.get_or_insert_with(|| blocks_ok(&self.source));
        let window = self.items_per_request(blocks);
        let mut call = if blocks {
            self.source
                .call_method("pull_block", (window, self.window_bytes))
        } else {
            self.source.call_method("pull", (window,))
        };
        // Twice: a call made while another is in flight is written on its second poll.
        let pull = match Pin::new(&mut call).poll(cx) {
            Poll::Ready(r) => Pull::Done(r),
            Poll::Pending => match Pin::new(&mut call).poll(cx) {
                Poll::Ready(r) => Pull::Done(r),
                Poll::Pending => Pull::Call(call),
            },
        };
        self.pending.push_back(pull);
    }

    /// Takes in one reply.
    fn receive(&mut self, reply: Result<Value>) {
        let outcome = match reply {
            Ok(Value::Bytes(b)) => match block::header(&b) {
                Ok((count, ended)) => {
                    self.buf.block = b;
                    self.buf.at = block::HEADER;
                    self.buf.left = count;
                    self.done |= ended;
                    if count == 0 && !ended {
                        Err(Error::Protocol(
                            "a stream block with no items that does not end the stream".into(),
                        ))
                    } else {
                        Ok(())
                    }
                }
                Err(e) => Err(Error::Protocol(e.0)),
            },
            Ok(Value::List(items)) => {
                self.done |= items.is_empty();
                self.buf.values.extend(items);
                Ok(())
            }
            Ok(other) => Err(Error::Protocol(format!(
                "a stream's pull answered {}, not items",
                other.type_name()
            ))),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            self.done = true;
            self.failed = Some(e);
        }
        if self.done {
            // Nothing more will come: the requests still out are cancelled.
            self.pending.clear();
        }
    }
}

/// Whether the stream behind `source` answers in blocks: its connection's peer announced
/// them, or it is in this process.
fn blocks_ok(source: &Proxy) -> bool {
    match source.shared() {
        Some(shared) => shared.peer_has(crate::codec::native::FEATURE_STREAM_BLOCKS),
        None => source.is_local(),
    }
}

impl<T: DeserializeOwned> RemoteStream<T> {
    /// The next item of the block being handed out. A malformed item ends the stream.
    #[inline]
    fn next_from_block(&mut self) -> Result<T> {
        let buf = &mut self.buf;
        let mut r = block::Reader::new(&buf.block, buf.at, self.max_depth);
        match T::deserialize(&mut r) {
            Ok(item) => {
                buf.at = r.position();
                buf.left -= 1;
                if buf.left == 0 && buf.at != buf.block.len() {
                    self.stop(Some(Error::Protocol(
                        "malformed stream block: bytes after its last item".into(),
                    )));
                }
                Ok(item)
            }
            Err(e) => {
                self.stop(None);
                Err(Error::Value(e.0))
            }
        }
    }

    /// Ends the stream at once (after a malformed block), with `e` as its last item: what
    /// is buffered is dropped and the requests in flight are cancelled.
    fn stop(&mut self, e: Option<Error>) {
        self.buf = Buffer::default();
        self.pending.clear();
        self.done = true;
        self.failed = e;
    }
}

impl<T: DeserializeOwned + 'static> futures_util::Stream for RemoteStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = &mut *self;
        loop {
            if this.buf.left > 0 {
                return Poll::Ready(Some(this.next_from_block()));
            }
            if let Some(v) = this.buf.values.pop_front() {
                return Poll::Ready(Some(from_value(v)));
            }
            // Keep up to `AHEAD` requests in flight while at most a window is buffered (here
            // nothing is); a request is polled only when the buffer is empty, so handing out
            // an item costs nothing more.
            while !this.done && this.pending.len() < AHEAD {
                this.request(cx);
            }
            match this.pending.front_mut() {
                Some(Pull::Done(_)) => {
                    if let Some(Pull::Done(r)) = this.pending.pop_front() {
                        this.receive(r);
                    }
                    continue;
                }
                Some(Pull::Call(call)) => {
                    if let Poll::Ready(r) = Pin::new(call).poll(cx) {
                        this.pending.pop_front();
                        this.receive(r);
                        continue;
                    }
                }
                None => {}
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
            .field("in_flight", &self.pending.len())
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
