//! The reader task: decodes frames and handles each message with one small function.
//!
//! The reader never waits on a handler or on the writer's queue, so callbacks can nest to any
//! depth in both directions without deadlock.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;
use tracing::Instrument;

use super::calls::{spans_wanted, DottedPath, TraceId};
use super::opening::{self, Setup};
use super::send::SendCtx;
use super::tables::{AnswerSlot, AnswerTx};
use super::Shared;
use crate::codec::Inbound;
use crate::context::{CallContext, CALL};
use crate::dispatch::{self, Op};
use crate::error::{Error, ErrorKind, Result};
use crate::object::Reply;
use crate::protocol::{
    CallMsg, Message, Target, WireError, WireValue, FLAG_KEEP_ANSWER, FLAG_ONE_WAY,
};
use crate::proxy::Proxy;
use crate::stats::Counters;
use crate::trace::Direction;
use crate::value::Value;

pub(crate) async fn run<R>(
    shared: Arc<Shared>,
    mut src: BufReader<R>,
    mut closed: watch::Receiver<bool>,
    mut setup: Option<Setup>,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    let mut buf = Vec::new();
    let max = shared.config.max_frame;
    let head = shared.wire.head_len();
    loop {
        // Whole frames already buffered are decoded where they lie: no copy, no wait.
        if let Some(len) = shared.wire.buffered_frame(src.buffer(), max) {
            if shared.is_closed() {
                return;
            }
            let bytes = head + len.body + len.trailer;
            let go_on = receive(&shared, &src.buffer()[head..head + len.body], bytes);
            src.consume(bytes);
            if !go_on {
                return;
            }
            continue;
        }
        // The next read may wait: first write the replies gathered meanwhile.
        shared.uncork_reader();
        let spin = shared.config.busy_poll;
        if !spin.is_zero() && src.buffer().is_empty() {
            match look_before_sleeping(&mut src, spin, &shared).await {
                Looked::Input => {
                    Counters::add(&shared.counters.busy_poll_hits, 1);
                    continue;
                }
                Looked::Nothing => {}
                Looked::Failed(e) => {
                    shared.teardown(format!("read failed: {e}"));
                    return;
                }
            }
        }
        let read = {
            let reading = shared.wire.read_frame(&mut src, max, &mut buf);
            tokio::pin!(reading);
            loop {
                tokio::select! {
                    r = &mut reading => break r,
                    _ = closed.wait_for(|c| *c) => return,
                    // A connect hook runs while the reader waits, without dropping a read
                    // under way; calls wait for it (see `opening.rs`).
                    done = opening::finished(&mut setup), if setup.is_some() => {
                        setup = None;
                        if let Err(reason) = done {
                            shared.close(reason);
                            return;
                        }
                        serve_held(&shared);
                    }
                }
            }
        };
        let len = match read {
            Ok(Some(len)) => len,
            Ok(None) => {
                shared.teardown("the peer closed the connection".into());
                return;
            }
            Err(Error::Protocol(m)) => {
                shared.close(format!("protocol error: {m}"));
                return;
            }
            Err(e) => {
                shared.teardown(format!("read failed: {e}"));
                return;
            }
        };
        if !receive(&shared, &buf, head + len.body + len.trailer) {
            return;
        }
    }
}

/// What [`look_before_sleeping`] found.
enum Looked {
    /// Bytes are in the buffer now.
    Input,
    /// Nothing came within the time, or the input ended (which the read that follows
    /// reports).
    Nothing,
    Failed(std::io::Error),
}

/// Polls `src` (whose buffer is empty) for up to `spin` without letting the thread sleep:
/// between polls the task yields, and the runtime polls its I/O driver without blocking
/// before it runs the task again ([`Config::busy_poll`](crate::Config::busy_poll)). It
/// stops early when the connection closes, so that however long `spin` is, a close with
/// no input after it is seen where the reader waits.
async fn look_before_sleeping<R: AsyncRead + Unpin>(
    src: &mut BufReader<R>,
    spin: Duration,
    shared: &Shared,
) -> Looked {
    // Real time, not tokio's clock: the point is the CPU kept awake, and a paused clock
    // would never reach the end.
    let until = std::time::Instant::now().checked_add(spin);
    loop {
        let polled = std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut *src).poll_fill_buf(cx) {
                Poll::Ready(Ok(bytes)) => Some(Ok(!bytes.is_empty())),
                Poll::Ready(Err(e)) => Some(Err(e)),
                Poll::Pending => None,
            })
        })
        .await;
        match polled {
            Some(Ok(true)) => return Looked::Input,
            // The end of the input: the ordinary read reports it.
            Some(Ok(false)) => return Looked::Nothing,
            Some(Err(e)) => return Looked::Failed(e),
            None => {}
        }
        if shared.is_closed() || until.is_some_and(|u| std::time::Instant::now() >= u) {
            return Looked::Nothing;
        }
        tokio::task::yield_now().await;
    }
}

/// Handles one frame of `bytes` bytes (head and trailer included) whose body is `body`;
/// false when the connection is over.
fn receive(shared: &Arc<Shared>, body: &[u8], bytes: usize) -> bool {
    shared.mark_received();
    Counters::add(&shared.counters.bytes_received, bytes as u64);
    Counters::add(&shared.counters.messages_received, 1);
    let decoded = shared.wire.decode(body, |inbound| match inbound {
        Inbound::Message(msg) => handle_message(shared, msg, bytes),
        Inbound::Frame(frame) => {
            shared.send_frame_nowait(frame);
            true
        }
    });
    match decoded {
        Ok(go_on) => go_on,
        Err(e) => {
            shared.close(e.to_string());
            false
        }
    }
}

/// Handles one message that came in a frame of `bytes` bytes; false when the connection is
/// over.
fn handle_message(shared: &Arc<Shared>, msg: Message, bytes: usize) -> bool {
    tracing::trace!(msg = msg.name(), bytes, "recv");
    shared.trace(Direction::Received, &msg, bytes);
    // Frames this handling sends gather until the buffered input is used up.
    let _cork = shared.cork();
    match msg {
        Message::Call(c) => handle_call(shared, c),
        Message::Return { id, result } => handle_return(shared, id, result),
        Message::Release(items) => handle_release(shared, items.0),
        Message::Cancel(id) => handle_cancel(shared, id),
        Message::Finish(id) => handle_finish(shared, id),
        Message::Ping(n) => handle_ping(shared, n),
        Message::Pong(n) => shared.pings.pong(n),
        Message::Goodbye(reason) => {
            shared.teardown(format!("the peer said goodbye: {}", reason.0));
            return false;
        }
    }
    true
}

/// Where an incoming call starts.
enum Start {
    Object(Proxy),
    Answer(AnswerSlot),
}

fn handle_call(shared: &Arc<Shared>, c: CallMsg) {
    Counters::add(&shared.counters.calls_received, 1);
    if shared.opening.is_holding() {
        // The connect hook is still running: the call waits for it, unless too many do.
        match shared.opening.keep(c, shared.config.max_in_flight) {
            Ok(()) => {}
            Err(c) => serve_call(shared, c, true),
        }
        return;
    }
    serve_call(shared, c, false);
}

/// Starts the calls held while the connect hook ran, in arrival order, and writes the
/// replies that gathered (the reader is about to wait for input again).
fn serve_held(shared: &Arc<Shared>) {
    {
        let _cork = shared.cork();
        for c in shared.opening.release() {
            serve_call(shared, c, false);
        }
    }
    shared.uncork_reader();
}

/// Starts call `c`, or refuses it as overloaded (`over_limit`, or over a limit checked
/// here).
fn serve_call(shared: &Arc<Shared>, c: CallMsg, over_limit: bool) {
    let Some(link) = shared.link() else {
        return; // closing: nothing can be imported or answered any more
    };
    let mut arg_err = None;
    let op = shared.import_op(&link, c.op, &mut arg_err);
    drop(link);
    let path: Arc<[String]> = c.path.0;
    let start = match c.target {
        Target::Answer(q) => shared.answers.get(q).map(Start::Answer).ok_or_else(|| {
            Error::remote(
                ErrorKind::NoSuchObject,
                format!("no kept answer of call {q}"),
            )
        }),
        t => shared.resolve_target(t).map(Start::Object),
    };
    let answer_tx = (c.flags & FLAG_KEEP_ANSWER != 0).then(|| shared.answers.keep(c.id));
    let one_way = c.flags & FLAG_ONE_WAY != 0;
    let max = shared.config.max_in_flight;
    let refusal = if over_limit {
        Some(format!(
            "{max} calls already wait for this connection's connect hook (the limit)"
        ))
    } else if shared.draining.load(std::sync::atomic::Ordering::Acquire) {
        Some("the server is shutting down".to_owned())
    } else if shared.running.len() >= max {
        Some(format!(
            "{max} calls are already running on this connection (the limit)"
        ))
    } else {
        None
    };
    if let Some(why) = refusal {
        // Refused at once: the reader never waits for room.
        drop(op); // releases whatever the call lent us
        let err = Error::remote(ErrorKind::Overloaded, why);
        if let Some(tx) = answer_tx {
            let _ = tx.send(Some(Err(err.into_remote())));
        } else if one_way {
            one_way_failed(shared, c.id, &err);
        } else {
            let task_shared = shared.clone();
            shared.spawn_task(async move { send_return(&task_shared, c.id, Err(err)).await });
        }
        return;
    }
    let deadline = (c.timeout_ms > 0)
        .then(|| tokio::time::Instant::now() + Duration::from_millis(u64::from(c.timeout_ms)));
    let target = c.target;
    let id = c.id;
    // The serving side's span: joined to the caller's by the trace id it sent (or by one
    // minted here, which the calls this handler makes carry on).
    let span = spans_wanted().then(|| {
        tracing::debug_span!(
            "netref.serve",
            conn = %shared.label,
            call = id,
            target = %target,
            path = %DottedPath(&path),
            trace = tracing::field::Empty,
        )
    });
    let trace = match (c.trace, &span) {
        (0, Some(s)) if !s.is_disabled() => crate::context::mint_trace(),
        (t, _) => t,
    };
    if let Some(span) = span.as_ref().filter(|_| trace != 0) {
        span.record("trace", tracing::field::display(TraceId(trace)));
    }
    let ctx = CallContext { deadline, trace };
    // A plain local object (the root, or one we lent) and arguments that imported cleanly:
    // walk the path and run the handler right here, in arrival order, synchronously as far
    // as it goes. A handler that finishes (every plain `fn`) is answered at once: no future
    // is boxed and no task spawned.
    let local = match (&arg_err, &start) {
        (None, Ok(Start::Object(p))) => p.local_object().cloned(),
        _ => None,
    };
    if let Some(obj) = local {
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
            CALL.sync_scope(ctx, || match &span {
                None => dispatch::start(obj, &path, op),
                Some(span) => span.in_scope(|| dispatch::start(obj, &path, op)),
            })
        }));
        match started {
            Ok(Reply::Ready(result)) => {
                let result =
                    result.map_err(|e| add_hop(e, &describe(&shared.label, target, &path)));
                finish_nowait(shared, id, result, answer_tx, one_way);
            }
            Ok(Reply::Later(rest)) => {
                let owner = shared.clone();
                let work = async move {
                    let result = rest.await;
                    result.map_err(|e| add_hop(e, &describe(&owner.label, target, &path)))
                };
                match span {
                    None => run_handler(shared, id, ctx, work, answer_tx, one_way),
                    Some(span) => {
                        run_handler(shared, id, ctx, work.instrument(span), answer_tx, one_way)
                    }
                }
            }
            Err(payload) => {
                finish_nowait(
                    shared,
                    id,
                    Err(Error::panicked(payload)),
                    answer_tx,
                    one_way,
                );
            }
        }
        return;
    }
    // For the error chain only; an `Arc` clone, not a copy of the label per call.
    let owner = shared.clone();
    let work = async move {
        if let Some(e) = arg_err {
            return Err(e);
        }
        let base = match start? {
            Start::Object(p) => p,
            Start::Answer(slot) => match wait_answer(slot).await? {
                Value::Ref(p) => p,
                v if path.is_empty() && matches!(op, Op::Get) => return Ok(v),
                v => {
                    return Err(Error::remote(
                        ErrorKind::WrongOperation,
                        format!("the pipelined answer is a {}, not an object", v.type_name()),
                    ))
                }
            },
        };
        let result = base.join_path(path.clone()).run(op, None).await;
        result.map_err(|e| add_hop(e, &describe(&owner.label, target, &path)))
    };
    match span {
        None => run_handler(shared, id, ctx, work, answer_tx, one_way),
        Some(span) => run_handler(shared, id, ctx, work.instrument(span), answer_tx, one_way),
    }
}

/// Runs the asynchronous part of call `id`: `work` runs inside the call's context, with a
/// panic turned into an error. Its first poll happens right here, in arrival order; if it is
/// still pending it gets a task, registered for `Cancel` and bounded by its deadline.
fn run_handler<F>(
    shared: &Arc<Shared>,
    id: u64,
    ctx: CallContext,
    work: F,
    answer_tx: Option<AnswerTx>,
    one_way: bool,
) where
    F: Future<Output = Result<Value>> + Send + 'static,
{
    let deadline = ctx.deadline;
    let mut work: Pin<Box<dyn Future<Output = Result<Value>> + Send>> = Box::pin(
        CALL.scope(
            ctx,
            AssertUnwindSafe(work)
                .catch_unwind()
                .map(|r| r.unwrap_or_else(|payload| Err(Error::panicked(payload)))),
        ),
    );
    // The first poll runs right here: calls start in the order they were sent, and a
    // handler that finishes at once costs no task.
    let waker = std::task::Waker::noop();
    let first = work.as_mut().poll(&mut Context::from_waker(waker));
    if let Poll::Ready(result) = first {
        finish_nowait(shared, id, result, answer_tx, one_way);
        return;
    }
    // Still running: give it a task, registered for `Cancel` and bounded by its deadline.
    let cancel_rx = shared.running.start(id);
    let task_shared = shared.clone();
    shared.spawn_task(async move {
        let shared = task_shared;
        let result = tokio::select! {
            r = with_deadline(work, deadline) => Some(r),
            _ = cancel_rx => None,
        };
        shared.running.end(id);
        let Some(result) = result else {
            return; // cancelled: the caller no longer waits
        };
        if let Some(tx) = answer_tx {
            let _ = tx.send(Some(result.map_err(Error::into_remote)));
        } else if one_way {
            if let Err(e) = &result {
                one_way_failed(&shared, id, e);
            }
        } else {
            send_return(&shared, id, result).await;
        }
    });
}

/// A one-way call failed: nothing goes back to the caller, so the failure is counted and
/// logged here, and the connection goes on.
fn one_way_failed(shared: &Shared, id: u64, error: &Error) {
    Counters::add(&shared.counters.casts_failed, 1);
    tracing::warn!(
        connection = %shared.label,
        call = id,
        error = %error,
        "one-way call failed"
    );
}

/// Delivers the result of a call that finished on its first poll, without waiting.
fn finish_nowait(
    shared: &Arc<Shared>,
    id: u64,
    result: Result<Value>,
    answer_tx: Option<AnswerTx>,
    one_way: bool,
) {
    if let Some(tx) = answer_tx {
        let _ = tx.send(Some(result.map_err(Error::into_remote)));
    } else if one_way {
        if let Err(e) = &result {
            one_way_failed(shared, id, e);
        }
    } else {
        let (msg, ctx) = return_message(shared, id, result);
        if let Err(e) = shared.send_nowait(&msg, ctx) {
            if let Some(msg) = unsent_return(shared, id, e) {
                let _ = shared.send_nowait(&msg, SendCtx::default());
            }
        }
    }
}

async fn wait_answer(mut slot: AnswerSlot) -> Result<Value> {
    match slot.wait_for(|v| v.is_some()).await {
        Ok(v) => match v.clone() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(Error::Remote(e)),
            None => Err(cancelled()),
        },
        Err(_) => Err(cancelled()),
    }
}

fn cancelled() -> Error {
    Error::remote(
        ErrorKind::Cancelled,
        "the pipelined call this call depends on was cancelled",
    )
}

async fn with_deadline<F: Future<Output = Result<Value>>>(
    fut: F,
    deadline: Option<tokio::time::Instant>,
) -> Result<Value> {
    match deadline {
        None => fut.await,
        Some(d) => tokio::time::timeout_at(d, fut).await.unwrap_or_else(|_| {
            Err(Error::remote(
                ErrorKind::TimedOut,
                "the call's deadline passed",
            ))
        }),
    }
}

/// The `Return` message of call `id`, with the counting it did. A result that cannot be
/// sent (over a limit, say) becomes an error reply.
fn return_message(shared: &Shared, id: u64, result: Result<Value>) -> (Message, SendCtx) {
    let mut ctx = SendCtx::default();
    let wire: std::result::Result<WireValue, WireError> = match result {
        Ok(v) => match shared.export_value(v, &mut ctx, 1) {
            Ok(w) => Ok(w),
            Err(e) => {
                shared.unsend(std::mem::take(&mut ctx));
                Err(e.into_remote().into())
            }
        },
        Err(e) => Err(e.into_remote().into()),
    };
    (Message::Return { id, result: wire }, ctx)
}

/// Sends the reply of call `id`; a reply that cannot be encoded becomes an error reply.
async fn send_return(shared: &Shared, id: u64, result: Result<Value>) {
    let (msg, ctx) = return_message(shared, id, result);
    if let Err(e) = shared.send(&msg, ctx).await {
        if let Some(msg) = unsent_return(shared, id, e) {
            let _ = shared.send(&msg, SendCtx::default()).await;
        }
    }
}

/// The reply of call `id` could not be sent (`e`), and what it counted was undone with it:
/// the error reply to send instead, so the caller learns why rather than waiting for a reply
/// that never comes (the wire did not encode it: over the peer's frame limit, or a value
/// the wire cannot carry). `None` when the connection is closed.
fn unsent_return(shared: &Shared, id: u64, e: Error) -> Option<Message> {
    if shared.is_closed() {
        return None;
    }
    tracing::debug!(connection = %shared.label, call = id, error = %e, "reply not sent; an error reply instead");
    Some(Message::Return {
        id,
        result: Err(e.into_remote().into()),
    })
}

fn handle_return(shared: &Shared, id: u64, result: std::result::Result<WireValue, WireError>) {
    let result = match result {
        Ok(w) => match shared.link() {
            Some(link) => {
                // Imported even when nobody waits any more, so the counts stay exact.
                let mut err = None;
                let v = shared.import_value(&link, w, &mut err);
                match err {
                    Some(e) => Err(e),
                    None => Ok(v),
                }
            }
            None => Err(Error::disconnected()),
        },
        Err(e) => Err(Error::Remote(e.into())),
    };
    shared.settle_call(id, result);
}

fn handle_release(shared: &Shared, items: Vec<(u64, u64)>) {
    shared.exports.release(items);
}

fn handle_cancel(shared: &Shared, id: u64) {
    if shared.opening.is_holding() && shared.opening.cancel(id) {
        return;
    }
    shared.running.end(id);
}

fn handle_finish(shared: &Shared, id: u64) {
    if shared.opening.is_holding() {
        shared.opening.finish(id);
    }
    shared.answers.finish(id);
}

fn handle_ping(shared: &Shared, n: u64) {
    shared.queue_pong(n);
}

fn describe(label: &str, target: Target, path: &[String]) -> String {
    let mut s = format!("{label}: ");
    match target {
        Target::Root => s.push_str("root"),
        // As traces print them.
        Target::Object(id) => s.push_str(&crate::protocol::fmt_id(id)),
        Target::Answer(q) => s.push_str(&format!("answer(call {q})")),
    }
    for seg in path {
        s.push('.');
        s.push_str(seg);
    }
    s
}

fn add_hop(e: Error, hop: &str) -> Error {
    let mut r = e.into_remote();
    r.chain.push(hop.to_owned());
    Error::Remote(r)
}
