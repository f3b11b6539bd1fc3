//! The call registry: the calls this side makes, from the one road that builds and sends
//! them ([`Shared::start_call`]) to their result, with the [`Call`] future's state machine
//! and the deadline task.
//!
//! A call is registered in [`Pending`] before its frame leaves, so a reply can never find
//! nothing to settle. Its entry then holds the result (a reply, a timeout, or the
//! connection's end) until the future takes it; dropping the future early removes the entry
//! and asks the peer to cancel the call.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::send::{SendCtx, Urgency};
use super::{AnswerHandle, Link, Shared};
use crate::codec::native::{FEATURE_ONE_WAY, FEATURE_PIPELINING, FEATURE_TRACE};
use crate::dispatch::{self, Op};
use crate::error::{Error, ErrorKind, Result};
use crate::object::Reply;
use crate::protocol::{
    CallMsg, Message, Target, WPath, FLAG_KEEP_ANSWER, FLAG_ONE_WAY, FLAG_TRACE,
};
use crate::proxy::{self, Proxy};
use crate::stats::Counters;
use crate::value::{from_value, Value};

/// Hashes this side's own call ids, which count up from 1: a multiplication spreads them over
/// the table (SipHash's resistance to chosen keys is not needed for ids we pick ourselves).
#[derive(Default, Clone, Copy)]
pub(crate) struct CallIds;

impl std::hash::BuildHasher for CallIds {
    type Hasher = CallIdHasher;
    fn build_hasher(&self) -> CallIdHasher {
        CallIdHasher(0)
    }
}

/// The hasher of [`CallIds`].
pub(crate) struct CallIdHasher(u64);

impl std::hash::Hasher for CallIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A call this side made, from when it is started until its future takes the result or is
/// dropped.
struct PendingCall {
    /// The reply (or timeout, or disconnection), once it has come.
    result: Option<Result<Value>>,
    /// Woken when `result` is set.
    waker: Option<Waker>,
    /// `None`: the call has no deadline (its timeout is too long for a clock to hold, as
    /// [`Duration::MAX`] is).
    deadline: Option<Instant>,
    timeout: Duration,
}

/// The calls this side waits on, and when the deadline task next looks at them.
#[derive(Default)]
struct Calls {
    calls: std::collections::HashMap<u64, PendingCall, CallIds>,
    /// The deadline the deadline task sleeps until; `None` when it waits for a call. A call
    /// due sooner moves it and wakes the task; a later one (the usual case, with one
    /// timeout for all calls) costs nothing.
    armed: Option<Instant>,
    /// The timeout of the call registered last: with no call left to watch, the task stays
    /// armed this far ahead, so that the next call (due later) wakes nobody.
    last_timeout: Duration,
    /// Whether a call was registered since the task last looked (a quiet task disarms).
    registered: bool,
}

/// The pending table: calls this side made that wait for their result, and the ids of
/// calls to come.
pub(crate) struct Pending {
    calls: Mutex<Calls>,
    next_id: AtomicU64,
    /// Wakes the deadline task when a call's deadline comes before the one it waits for.
    deadline_notify: Notify,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            calls: Mutex::default(),
            next_id: AtomicU64::new(1),
            deadline_notify: Notify::new(),
        }
    }
}

impl Pending {
    /// The id of this side's next call.
    #[inline]
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers call `id`, due `timeout` from now. The urgency says whether other calls are
    /// in flight (then its frame may gather with theirs).
    #[inline]
    fn register(&self, id: u64, timeout: Duration) -> Urgency {
        let deadline = deadline_of(timeout);
        let (urgency, sooner) = {
            let mut pending = self.calls.lock();
            pending.calls.insert(
                id,
                PendingCall {
                    result: None,
                    waker: None,
                    deadline,
                    timeout,
                },
            );
            let sooner = deadline.is_some_and(|d| pending.armed.is_none_or(|a| d < a));
            if sooner {
                pending.armed = deadline;
            }
            pending.last_timeout = timeout;
            pending.registered = true;
            // With other calls in flight a few microseconds do not matter, but one write
            // for many frames does.
            let urgency = if pending.calls.len() > 1 {
                Urgency::Soon
            } else {
                Urgency::Now
            };
            (urgency, sooner)
        };
        if sooner {
            self.deadline_notify.notify_one();
        }
        urgency
    }

    /// The result of call `id` when it has come; otherwise remembers `cx`'s waker. `None`
    /// when the call is not registered.
    #[inline]
    fn poll(&self, id: u64, cx: &mut Context<'_>) -> Option<Poll<Result<Value>>> {
        let mut pending = self.calls.lock();
        let call = pending.calls.get_mut(&id)?;
        if let Some(result) = call.result.take() {
            pending.calls.remove(&id);
            return Some(Poll::Ready(result));
        }
        match &mut call.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Some(Poll::Pending)
    }

    /// Gives call `id` its result and wakes its future; a call already settled (timed out,
    /// say) or abandoned keeps what it has.
    #[inline]
    fn settle(&self, id: u64, result: Result<Value>) {
        let waker = {
            let mut pending = self.calls.lock();
            match pending.calls.get_mut(&id) {
                Some(call) if call.result.is_none() => {
                    call.result = Some(result);
                    call.waker.take()
                }
                _ => return,
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Forgets call `id`; true when it was still waiting for its result.
    #[inline]
    fn remove(&self, id: u64) -> bool {
        self.calls
            .lock()
            .calls
            .remove(&id)
            .is_some_and(|c| c.result.is_none())
    }

    /// Fails every call still waiting with `Disconnected(reason)`. The entries stay until
    /// their futures take the error (or are dropped).
    pub(crate) fn fail_all(&self, reason: &str) {
        let wakers: Vec<_> = {
            let mut pending = self.calls.lock();
            pending
                .calls
                .values_mut()
                .filter(|c| c.result.is_none())
                .filter_map(|c| {
                    c.result = Some(Err(Error::Disconnected(reason.to_owned())));
                    c.waker.take()
                })
                .collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Fails the calls whose deadline is past `now` with `TimedOut`, and returns their ids
    /// (to cancel) with the next instant to wake up at.
    ///
    /// With no call left to watch, the task stays armed one timeout ahead while calls keep
    /// coming: sequential calls, each answered before the task looks, would otherwise each
    /// find it disarmed and wake it (a thread woken per call for nothing, which costs most
    /// when the caller is not on a runtime worker). After a quiet period it disarms.
    fn expire(&self, now: Instant) -> (Vec<u64>, Option<Instant>) {
        let mut expired = Vec::new();
        let next = {
            let mut pending = self.calls.lock();
            let mut next: Option<Instant> = None;
            for (id, call) in pending.calls.iter_mut() {
                if call.result.is_some() {
                    continue; // settled, its future has not taken the result yet
                }
                let Some(deadline) = call.deadline else {
                    continue; // no deadline: it waits as long as its reply takes
                };
                if deadline <= now {
                    call.result = Some(Err(Error::remote(
                        ErrorKind::TimedOut,
                        format!("no reply within {:?}", call.timeout),
                    )));
                    expired.push((*id, call.waker.take()));
                } else {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                }
            }
            let next = match next {
                Some(at) => Some(at),
                None if pending.registered => Some(now + pending.last_timeout),
                None => None,
            };
            pending.registered = false;
            pending.armed = next;
            next
        };
        let ids = expired
            .into_iter()
            .map(|(id, waker)| {
                if let Some(w) = waker {
                    w.wake();
                }
                id
            })
            .collect();
        (ids, next)
    }
}

/// How a call's answer comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// In a `Return`: the call is registered in [`Pending`] and its future waits for it.
    Reply,
    /// Kept by the peer for pipelined calls (`FLAG_KEEP_ANSWER`); no `Return` comes.
    Kept,
    /// None: a one-way call (`FLAG_ONE_WAY`); the peer sends nothing back.
    None,
}

/// What became of a call's frame in [`Shared::start_call`].
pub(crate) enum Started {
    /// On the wire or first in line for it. With [`Urgency::Soon`] the caller's next poll
    /// writes it, after yielding once so that its other calls gather behind it.
    Written(Urgency),
    /// It waits for room in the send queue: [`Shared::enqueue`] finishes the send.
    Queued(Vec<u8>, SendCtx),
}

impl Shared {
    /// Starts a call: the one road that builds and sends a `Call` message. Registers the
    /// call as pending (when its answer is a [`Answer::Reply`]), encodes it and writes it or
    /// queues it, without waiting. `timeout` bounds the wait here and travels with the call,
    /// so the peer stops the handler at the same deadline; without one, a call made while
    /// serving a call gets what is left of that call's deadline, and any other the
    /// connection's default. A call made while serving a call also carries on its trace id
    /// (otherwise one is minted when the call's span is enabled).
    ///
    /// Returns the call's id, what became of its frame, and its `netref.call` span (none
    /// unless a subscriber may listen). With [`Answer::Reply`] the caller's [`Call`] future
    /// then follows the returned [`Started`] and polls [`Shared::poll_reply`]; dropping that
    /// future early must call [`Shared::abandon_call`].
    pub(crate) fn start_call(
        &self,
        target: Target,
        path: Arc<[String]>,
        op: Op,
        timeout: Option<Duration>,
        answer: Answer,
    ) -> Result<(u64, Started, Option<tracing::Span>)> {
        if self.is_closed() {
            return Err(self.disconnected());
        }
        match answer {
            Answer::Kept if self.features & FEATURE_PIPELINING == 0 => {
                return Err(unsupported("a pipelined call", "pipelining"))
            }
            Answer::None if self.features & FEATURE_ONE_WAY == 0 => {
                return Err(unsupported("a one-way call", "one-way calls"))
            }
            _ => {}
        }
        let served = crate::context::current();
        let timeout = match (timeout, served.and_then(|c| c.deadline)) {
            (Some(t), _) => t,
            (None, Some(deadline)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::remote(
                        ErrorKind::TimedOut,
                        "the deadline of the call this handler serves has passed",
                    ));
                }
                left
            }
            (None, None) => self.config.call_timeout,
        };
        let id = self.pending.next_id();
        // Built only when a subscriber may want it: otherwise no span at all (see
        // `spans_wanted`).
        let span = spans_wanted().then(|| {
            tracing::debug_span!(
                "netref.call",
                conn = %self.label,
                call = id,
                target = %target,
                path = %DottedPath(&path),
                trace = tracing::field::Empty,
            )
        });
        let enabled = span.as_ref().is_some_and(|s| !s.is_disabled());
        let trace = match served {
            Some(c) if c.trace != 0 => c.trace,
            _ if enabled => crate::context::mint_trace(),
            _ => 0,
        };
        if let Some(span) = span.as_ref().filter(|_| trace != 0) {
            span.record("trace", tracing::field::display(TraceId(trace)));
        }
        let traced = if trace != 0 && self.features & FEATURE_TRACE != 0 {
            FLAG_TRACE
        } else {
            0
        };
        let (urgency, flags) = match answer {
            Answer::Reply => (self.pending.register(id, timeout), 0),
            Answer::Kept => (Urgency::Now, FLAG_KEEP_ANSWER),
            Answer::None => (Urgency::Now, FLAG_ONE_WAY),
        };
        let entered = span.as_ref().map(tracing::Span::enter);
        let mut ctx = SendCtx::default();
        let op = match self.export_op(op, &mut ctx) {
            Ok(op) => op,
            Err(e) => {
                self.unsend(ctx);
                self.pending.remove(id);
                return Err(e);
            }
        };
        let msg = Message::Call(CallMsg {
            id,
            target,
            path: WPath(path),
            op,
            timeout_ms: wire_ms(timeout),
            flags: flags | traced,
            trace: if traced != 0 { trace } else { 0 },
        });
        let started = match self.try_write(&msg, ctx, urgency) {
            Ok(None) => Started::Written(urgency),
            Ok(Some((bytes, ctx))) => Started::Queued(bytes, ctx),
            Err(e) => {
                self.pending.remove(id);
                return Err(e);
            }
        };
        drop(entered);
        Ok((id, started, span))
    }

    /// Sends a call whose answer the peer keeps for pipelining ([`Answer::Kept`]).
    pub(crate) async fn call_pipelined(
        &self,
        link: &Arc<Link>,
        target: Target,
        path: Arc<[String]>,
        op: Op,
        timeout: Option<Duration>,
    ) -> Result<Arc<AnswerHandle>> {
        let (id, started, _span) = self.start_call(target, path, op, timeout, Answer::Kept)?;
        if let Started::Queued(bytes, ctx) = started {
            self.enqueue(bytes, ctx).await?;
        }
        Counters::add(&self.counters.calls_sent, 1);
        Ok(Arc::new(AnswerHandle {
            link: link.clone(),
            id,
        }))
    }

    /// Sends a one-way call ([`Answer::None`]): the peer runs it in order with the other
    /// calls to the same object and sends nothing back. Returns once the frame is written
    /// or queued.
    pub(crate) async fn cast(&self, target: Target, path: Arc<[String]>, op: Op) -> Result<()> {
        let (_, started, _span) = self.start_call(target, path, op, None, Answer::None)?;
        if let Started::Queued(bytes, ctx) = started {
            self.enqueue(bytes, ctx).await?;
        }
        Counters::add(&self.counters.calls_sent, 1);
        Counters::add(&self.counters.casts_sent, 1);
        Ok(())
    }

    /// Counts a call whose frame is on its way.
    #[inline]
    fn count_call(&self) {
        Counters::add(&self.counters.calls_sent, 1);
        Counters::add(&self.counters.round_trips, 1);
    }

    /// The result of call `id` when it has come (a reply, a timeout, or the connection's
    /// end); otherwise remembers `cx`'s waker and returns `Pending`.
    #[inline]
    fn poll_reply(&self, id: u64, cx: &mut Context<'_>) -> Poll<Result<Value>> {
        // Not registered is not reached: an entry lives until its future takes the result or
        // is dropped.
        self.pending
            .poll(id, cx)
            .unwrap_or_else(|| Poll::Ready(Err(self.disconnected())))
    }

    /// Gives call `id` its result (a `Return` came) and wakes its future.
    #[inline]
    pub(crate) fn settle_call(&self, id: u64, result: Result<Value>) {
        self.pending.settle(id, result);
    }

    /// Forgets call `id`, whose future was dropped before its result came, and asks the peer
    /// to cancel it.
    fn abandon_call(&self, id: u64) {
        if self.pending.remove(id) {
            self.queue_cancel(id);
        }
    }
}

/// The error for a feature the peer's hello does not announce.
#[cold]
fn unsupported(what: &str, feature: &str) -> Error {
    Error::Unsupported(format!(
        "{what} cannot be sent: the peer's hello does not announce {feature}"
    ))
}

/// When a call due `timeout` from now expires; `None` (no deadline) when the clock cannot
/// hold that instant, as for [`Duration::MAX`].
#[inline]
fn deadline_of(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A deadline as the wire carries it: whole milliseconds, rounded up so that a deadline
/// that has not passed is never sent as 0, which means none (what a call without a deadline
/// sends).
#[inline]
fn wire_ms(timeout: Duration) -> u32 {
    if deadline_of(timeout).is_none() {
        return 0;
    }
    let ms = timeout
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(timeout.subsec_nanos().div_ceil(1_000_000)));
    u32::try_from(ms).unwrap_or(u32::MAX).max(1)
}

/// True when a subscriber may want netref's `debug` call spans. Checked before a span is
/// built, so that a call costs next to nothing more when nobody listens: the span macros
/// alone would still take `tracing`'s `log` path for a disabled span (when some crate in
/// the build turns on its `log` feature), about a hundred instructions per call and side.
#[inline]
pub(crate) fn spans_wanted() -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    STATIC_MAX_LEVEL >= LevelFilter::DEBUG && LevelFilter::current() >= LevelFilter::DEBUG
}

/// A path as spans show it: `a.b.c`.
pub(crate) struct DottedPath<'a>(pub(crate) &'a [String]);

impl std::fmt::Display for DottedPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(seg)?;
        }
        Ok(())
    }
}

/// A trace id as spans show it: 16 hex digits.
pub(crate) struct TraceId(pub(crate) u64);

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Fails calls whose deadline passed, with `TimedOut`, and asks the peer to cancel them.
pub(crate) async fn deadlines(shared: Arc<Shared>, mut closed: watch::Receiver<bool>) {
    loop {
        let (expired, next) = shared.pending.expire(Instant::now());
        for id in expired {
            shared.queue_cancel(id);
        }
        let wake = shared.pending.deadline_notify.notified();
        tokio::select! {
            _ = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = wake => {}
            _ = closed.wait_for(|c| *c) => return,
        }
    }
}

/// A call not yet sent: await it for the result, or [`pipeline`](Call::pipeline) it.
///
/// Nothing is sent until the call is first polled (awaited) or pipelined; calls polled in
/// order are sent in order. Dropping a call before it completes asks the peer to cancel it.
#[must_use = "a call does nothing until awaited or pipelined"]
pub struct Call {
    state: CallState,
    /// The call's `netref.call` span once it is sent (disabled unless a subscriber
    /// listens): it lasts as long as the call.
    span: Option<tracing::Span>,
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

    /// A call of `op` on what `proxy` names, not sent yet.
    pub(crate) fn new(proxy: Proxy, op: Result<Op>) -> Call {
        Call {
            state: CallState::Unsent {
                proxy,
                op,
                timeout: None,
            },
            span: None,
        }
    }

    /// Overrides the connection's default deadline for this call (before it is sent);
    /// [`Duration::MAX`] means none (see [`Config::call_timeout`](crate::Config)).
    pub fn timeout(mut self, d: Duration) -> Call {
        if let CallState::Unsent { timeout, .. } = &mut self.state {
            *timeout = Some(d);
        }
        self
    }

    /// Sends the call now and returns a proxy of its answer without waiting for it.
    ///
    /// Calls made on the returned proxy are sent at once and applied by the peer to the
    /// answer when it is ready; an error in this call becomes the error of those calls. A
    /// [`timeout`](Call::timeout) set on this call bounds the pipelined call on the peer.
    pub async fn pipeline(mut self) -> Result<Proxy> {
        if !matches!(self.state, CallState::Unsent { .. }) {
            return Err(Error::Misuse(
                "a call already awaited cannot be pipelined".into(),
            ));
        }
        let CallState::Unsent { proxy, op, timeout } =
            std::mem::replace(&mut self.state, CallState::Done)
        else {
            unreachable!("checked just above")
        };
        proxy.pipeline(op?, timeout).await
    }

    /// Awaits the result and decodes it into `T`.
    pub async fn decode<T: serde::de::DeserializeOwned + 'static>(self) -> Result<T> {
        from_value(self.await?)
    }
}

impl Future for Call {
    type Output = Result<Value>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
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
                            proxy::Target::Local(obj) => {
                                match dispatch::start_guarded(obj.clone(), &proxy.path, op) {
                                    Reply::Ready(r) => return Poll::Ready(r),
                                    Reply::Later(fut) => self.state = CallState::Local(fut),
                                }
                            }
                            _ => unreachable!("only local proxies have no connection"),
                        }
                        continue;
                    };
                    let started = shared.start_call(
                        proxy.wire_target(),
                        proxy.path.clone(),
                        op,
                        timeout,
                        Answer::Reply,
                    );
                    self.state = match started {
                        Err(e) => return Poll::Ready(Err(e)),
                        Ok((id, started, span)) => {
                            self.span = span;
                            match started {
                                Started::Written(urgency) => {
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
                                Started::Queued(bytes, ctx) => {
                                    let shared = shared.clone();
                                    let send =
                                        Box::pin(async move { shared.enqueue(bytes, ctx).await });
                                    CallState::Queued { proxy, id, send }
                                }
                            }
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
                        shared.pending.remove(id);
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
                    return Poll::Ready(Err(Error::Misuse("call polled after completion".into())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_go_on_the_wire_in_whole_milliseconds_rounded_up_never_as_none() {
        assert_eq!(wire_ms(Duration::from_secs(30)), 30_000);
        assert_eq!(wire_ms(Duration::from_micros(1_500)), 2);
        assert_eq!(wire_ms(Duration::from_nanos(1)), 1);
        assert_eq!(wire_ms(Duration::from_nanos(999_999_999)), 1_000);
        assert_eq!(wire_ms(Duration::ZERO), 1, "0 would mean no deadline");
        assert_eq!(wire_ms(Duration::from_secs(60 * 86_400)), u32::MAX);
        assert_eq!(wire_ms(Duration::MAX), 0, "no deadline is sent as none");
    }

    /// True when the deadline task was woken (taking the wake-up).
    fn woken(pending: &Pending) -> bool {
        use futures_util::FutureExt;
        pending.deadline_notify.notified().now_or_never().is_some()
    }

    /// Registers call `id` and takes its result at once, as a call answered before the
    /// deadline task looks.
    fn answered_call(pending: &Pending, id: u64, timeout: Duration) {
        pending.register(id, timeout);
        pending.settle(id, Ok(Value::Nil));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            pending.poll(id, &mut cx),
            Some(Poll::Ready(Ok(_)))
        ));
    }

    #[test]
    fn sequential_calls_wake_the_deadline_task_once_not_per_call() {
        let pending = Pending::default();
        let timeout = Duration::from_secs(30);
        answered_call(&pending, 1, timeout);
        assert!(woken(&pending), "the first call arms the task");
        let start = Instant::now();
        // The task looks once every call is answered: it stays armed a timeout ahead.
        let (expired, next) = pending.expire(start);
        assert!(expired.is_empty());
        assert_eq!(next, Some(start + timeout));
        for id in 2..100 {
            answered_call(&pending, id, timeout);
            assert!(!woken(&pending), "call {id} woke the deadline task");
        }
        // A call due sooner than that still wakes it, and times out on time.
        pending.register(100, Duration::from_millis(5));
        assert!(woken(&pending));
        let late = Instant::now() + Duration::from_millis(5);
        let (expired, _) = pending.expire(late);
        assert_eq!(expired, vec![100]);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let Some(Poll::Ready(Err(e))) = pending.poll(100, &mut cx) else {
            panic!("call 100 did not time out");
        };
        assert_eq!(e.kind(), ErrorKind::TimedOut);
    }

    #[test]
    fn a_quiet_deadline_task_disarms_and_the_next_call_wakes_it() {
        let pending = Pending::default();
        let timeout = Duration::from_secs(30);
        answered_call(&pending, 1, timeout);
        assert!(woken(&pending));
        let start = Instant::now();
        assert_eq!(pending.expire(start).1, Some(start + timeout));
        // Nothing registered until the horizon: the task sleeps until a call comes.
        assert_eq!(pending.expire(start + timeout).1, None);
        answered_call(&pending, 2, timeout);
        assert!(woken(&pending));
    }
}
