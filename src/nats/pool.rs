//! Worker pools and fanout: value calls to a service name, carried by NATS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use futures_util::StreamExt;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::{call_subject, check_service, fanout_subject, nats_error, new_instance_id, wire, Nats};
use crate::connection::{spans_wanted, DottedPath, TraceId};
use crate::context::{CallContext, CALL};
use crate::error::{Error, ErrorKind, Result};
use crate::object::{Args, IntoArgs, Object};
use crate::proxy::Proxy;
use crate::value::Value;

/// The most replies one [`fanout`] gathers; any more are not read.
pub const MAX_FANOUT_REPLIES: usize = 10_000;

/// The queue group every instance of a service joins for requests and casts.
const QUEUE_GROUP: &str = "netref";

/// One instance's answer to a [`fanout`].
#[derive(Debug)]
pub struct FanoutReply {
    /// The instance that answered ([`Worker::id`], or [`Instance::id`](super::Instance)
    /// when it serves through its [`Registration`](super::Registration)).
    pub instance: String,
    /// Its result.
    pub result: Result<Value>,
}

/// Serves value calls to a service from NATS: requests and casts as one member of the
/// service's queue group, fanouts as every instance. Dropping it (or [`Worker::stop`])
/// unsubscribes; calls already running finish and answer.
#[derive(Debug)]
pub struct Worker {
    id: String,
    service: String,
    stop: watch::Sender<bool>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl Worker {
    /// The id this worker answers fanouts under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The service it serves.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Unsubscribes and waits until the subscriptions are gone.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves value calls to `service` on `root`, under a fresh instance id (use
/// [`Registration::serve`](super::Registration::serve) to answer under a registration's id).
/// Calls go through the exposure gate like any call: `root`'s exposed members are all a
/// caller can reach.
pub async fn serve(nats: &Nats, service: &str, root: impl Into<Arc<dyn Object>>) -> Result<Worker> {
    serve_as(nats, service, new_instance_id(), root.into()).await
}

struct Ctx {
    client: async_nats::Client,
    id: String,
    service: String,
    /// The number of the next call this worker serves (its spans' `call`).
    next_call: AtomicU64,
    root: Arc<dyn Object>,
    slots: Arc<Semaphore>,
    /// The deadline of a cast (which carries none).
    cast_deadline: Duration,
}

pub(crate) async fn serve_as(
    nats: &Nats,
    service: &str,
    id: String,
    root: Arc<dyn Object>,
) -> Result<Worker> {
    check_service(service)?;
    let client = nats.client().clone();
    let calls = client
        .queue_subscribe(call_subject(service), QUEUE_GROUP.into())
        .await
        .map_err(|e| nats_error("cannot subscribe", e))?;
    let fanouts = client
        .subscribe(fanout_subject(service))
        .await
        .map_err(|e| nats_error("cannot subscribe", e))?;
    // Once the server has the subscriptions, a request sent after this returns reaches us.
    client
        .flush()
        .await
        .map_err(|e| nats_error("cannot subscribe", e))?;
    let ctx = Arc::new(Ctx {
        client,
        id: id.clone(),
        service: service.to_owned(),
        next_call: AtomicU64::new(1),
        root,
        slots: Arc::new(Semaphore::new(nats.options().max_in_flight.max(1))),
        cast_deadline: nats.options().call_timeout,
    });
    let (stop, stopped) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(listen(ctx.clone(), calls, stopped.clone())),
        tokio::spawn(listen(ctx, fanouts, stopped)),
    ];
    Ok(Worker {
        id,
        service: service.to_owned(),
        stop,
        tasks: parking_lot::Mutex::new(tasks),
    })
}

async fn listen(ctx: Arc<Ctx>, mut sub: async_nats::Subscriber, mut stop: watch::Receiver<bool>) {
    loop {
        let msg = tokio::select! {
            m = sub.next() => match m {
                Some(m) => m,
                None => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        // At most `max_in_flight` at once; the rest wait in the subscription's buffer.
        let permit = tokio::select! {
            p = ctx.slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            answer(&ctx, msg).await;
            drop(permit);
        });
    }
    let _ = sub.unsubscribe().await;
}

/// The trace id a request's header carries (0: none).
fn sent_trace(msg: &async_nats::Message) -> Result<u64> {
    match msg.headers.as_ref().and_then(|h| h.get(wire::TRACE_HEADER)) {
        Some(value) => wire::decode_trace(value.as_str()),
        None => Ok(0),
    }
}

async fn answer(ctx: &Ctx, msg: async_nats::Message) {
    let decoded = wire::decode_request(&msg.payload).and_then(|req| Ok((req, sent_trace(&msg)?)));
    let result = match decoded {
        Ok((req, trace)) => serve_one(ctx, req, trace).await,
        Err(e) => Err(e),
    };
    match msg.reply {
        Some(reply) => {
            let bytes = wire::encode_reply(&ctx.id, &result);
            if let Err(e) = ctx.client.publish(reply, bytes.into()).await {
                tracing::debug!(error = %e, "could not send a reply");
            }
        }
        None => {
            if let Err(e) = result {
                tracing::debug!(subject = %msg.subject, error = %e, "a cast failed");
            }
        }
    }
}

/// Runs one request on the worker's root, inside the context the native engine gives a
/// served call: its deadline (the one it carries, or the worker's bound for a cast without
/// one) and its trace id (the caller's, or one minted here when the span is enabled), which
/// [`context`](crate::context) shows the handler and the calls it makes inherit; under a
/// `netref.serve` span.
async fn serve_one(ctx: &Ctx, req: wire::Request, trace: u64) -> Result<Value> {
    let limit = req.deadline.unwrap_or(ctx.cast_deadline);
    let span = spans_wanted().then(|| {
        tracing::debug_span!(
            "netref.serve",
            conn = %ctx.id,
            call = ctx.next_call.fetch_add(1, Ordering::Relaxed),
            target = %ctx.service,
            path = %DottedPath(&req.path),
            trace = tracing::field::Empty,
        )
    });
    let trace = match (trace, &span) {
        (0, Some(s)) if !s.is_disabled() => crate::context::mint_trace(),
        (t, _) => t,
    };
    if let Some(span) = span.as_ref().filter(|_| trace != 0) {
        span.record("trace", tracing::field::display(TraceId(trace)));
    }
    // A deadline too far for the clock to hold is none.
    let served = CallContext {
        deadline: Instant::now().checked_add(limit),
        trace,
    };
    let call = Proxy::local(ctx.root.clone())
        .path_to(req.path)
        .call(Args::from_parts(req.positional, req.named));
    let call = CALL.scope(served, tokio::time::timeout(limit, call));
    let done = match span {
        Some(span) => call.instrument(span).await,
        None => call.await,
    };
    done.unwrap_or_else(|_| {
        Err(Error::remote(
            ErrorKind::TimedOut,
            format!("the call ran past its deadline of {limit:?}"),
        ))
    })
}

/// A value call about to leave: its payload, its headers (the trace id, when there is one)
/// and its `netref.call` span.
struct Leaving {
    payload: Vec<u8>,
    headers: Option<HeaderMap>,
    span: Option<tracing::Span>,
}

/// The number of the next value call this process sends (its span's `call`).
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// What `deadline` a call made here carries: the one `given`, else what is left of the
/// deadline of the call this task serves, else `default`. The served call's deadline having
/// passed is `TimedOut`, and nothing is sent.
fn inherited(given: Option<Duration>, default: Option<Duration>) -> Result<Option<Duration>> {
    match (given, crate::context::deadline()) {
        (Some(d), _) => Ok(Some(d)),
        (None, Some(at)) => {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::remote(
                    ErrorKind::TimedOut,
                    "the deadline of the call this handler serves has passed",
                ));
            }
            Ok(Some(left))
        }
        (None, None) => Ok(default),
    }
}

/// Builds a value call to `service`: `method` (a member name, or a dotted path such as
/// `"jobs.status"`) with `args` and `deadline`. It carries the trace id of the call this
/// task serves, or, outside one, a fresh one when its span is enabled.
fn build(
    service: &str,
    method: &str,
    args: impl IntoArgs,
    deadline: Option<Duration>,
) -> Result<Leaving> {
    let path: Vec<String> = if method.is_empty() {
        Vec::new()
    } else {
        method.split('.').map(str::to_owned).collect()
    };
    let (positional, named) = args.into_args()?.into_parts();
    let payload = wire::encode_request(&path, &positional, &named, deadline)?;
    let span = spans_wanted().then(|| {
        tracing::debug_span!(
            "netref.call",
            conn = "nats",
            call = NEXT_CALL.fetch_add(1, Ordering::Relaxed),
            target = %service,
            path = %DottedPath(&path),
            trace = tracing::field::Empty,
        )
    });
    let enabled = span.as_ref().is_some_and(|s| !s.is_disabled());
    let trace = match crate::context::trace_id() {
        Some(t) => t,
        None if enabled => crate::context::mint_trace(),
        None => 0,
    };
    if let Some(span) = span.as_ref().filter(|_| trace != 0) {
        span.record("trace", tracing::field::display(TraceId(trace)));
    }
    let headers = (trace != 0).then(|| {
        let mut headers = HeaderMap::new();
        headers.insert(wire::TRACE_HEADER, wire::trace_header(trace));
        headers
    });
    Ok(Leaving {
        payload,
        headers,
        span,
    })
}

/// Runs `fut` inside `span`, if there is one.
async fn within<F: std::future::Future>(span: Option<tracing::Span>, fut: F) -> F::Output {
    match span {
        Some(span) => fut.instrument(span).await,
        None => fut.await,
    }
}

/// Calls `method` with `args` on one instance of `service`, picked by NATS among the
/// service's queue group. Arguments and result travel by value.
///
/// Its deadline is what is left of the call this task serves, when a handler makes it (as
/// a native call made there inherits it; see [`context`](crate::context)), and otherwise
/// the handle's default ([`NatsOptions::call_timeout`](super::NatsOptions)). Either way it
/// carries the trace id of the served call, if any.
pub async fn request(
    nats: &Nats,
    service: &str,
    method: &str,
    args: impl IntoArgs,
) -> Result<Value> {
    check_service(service)?;
    let deadline =
        inherited(None, Some(nats.options().call_timeout))?.unwrap_or(nats.options().call_timeout);
    send(nats, service, method, args, deadline).await
}

/// [`request`] with its own deadline (also inside a handler: this one, not what is left of
/// the served call's).
pub async fn request_within(
    nats: &Nats,
    service: &str,
    method: &str,
    args: impl IntoArgs,
    deadline: Duration,
) -> Result<Value> {
    check_service(service)?;
    send(nats, service, method, args, deadline).await
}

async fn send(
    nats: &Nats,
    service: &str,
    method: &str,
    args: impl IntoArgs,
    deadline: Duration,
) -> Result<Value> {
    let leaving = build(service, method, args, Some(deadline))?;
    let mut request = async_nats::Request::new()
        .payload(leaving.payload.into())
        .timeout(Some(deadline));
    if let Some(headers) = leaving.headers {
        request = request.headers(headers);
    }
    let sent = nats.client().send_request(call_subject(service), request);
    let msg = within(leaving.span, sent)
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::TimedOut => Error::remote(
                ErrorKind::TimedOut,
                format!("no reply from service `{service}` within {deadline:?}"),
            ),
            async_nats::RequestErrorKind::NoResponders => Error::Disconnected(format!(
                "no instance of service `{service}` serves value calls"
            )),
            _ => nats_error("request", e),
        })?;
    wire::decode_reply(&msg.payload)?.1
}

/// Sends `method(args)` one way to one instance of `service` (picked by NATS). Returns once
/// the message has left for the NATS server; nothing says whether an instance ran it
/// (NATS delivers at most once, and to nobody when no instance is serving).
///
/// Made by a handler, it carries what is left of the served call's deadline (which bounds
/// it on the worker) and its trace id; otherwise no deadline, and the worker bounds it by
/// its own [`NatsOptions::call_timeout`](super::NatsOptions).
pub async fn cast(nats: &Nats, service: &str, method: &str, args: impl IntoArgs) -> Result<()> {
    check_service(service)?;
    let leaving = build(service, method, args, inherited(None, None)?)?;
    let client = nats.client();
    let sent = async {
        match leaving.headers {
            Some(headers) => {
                client
                    .publish_with_headers(call_subject(service), headers, leaving.payload.into())
                    .await
            }
            None => {
                client
                    .publish(call_subject(service), leaving.payload.into())
                    .await
            }
        }
        .map_err(|e| nats_error("cast", e))?;
        client.flush().await.map_err(|e| nats_error("cast", e))
    };
    within(leaving.span, sent).await
}

/// Calls `method(args)` on **every** instance of `service` and gathers the replies that
/// arrive within `deadline`. An instance that is dead, slow or partitioned away is simply
/// missing from the result; an instance whose handler failed is there with its error.
/// Returns at once, empty, when no instance is serving.
pub async fn fanout(
    nats: &Nats,
    service: &str,
    method: &str,
    args: impl IntoArgs,
    deadline: Duration,
) -> Result<Vec<FanoutReply>> {
    gather(nats, service, method, args, deadline, MAX_FANOUT_REPLIES).await
}

/// [`fanout`] that returns as soon as `expect` replies have come (for example the number of
/// instances [`discover`](super::discover) lists), or at the deadline.
pub async fn fanout_n(
    nats: &Nats,
    service: &str,
    method: &str,
    args: impl IntoArgs,
    deadline: Duration,
    expect: usize,
) -> Result<Vec<FanoutReply>> {
    let expect = expect.min(MAX_FANOUT_REPLIES);
    gather(nats, service, method, args, deadline, expect).await
}

async fn gather(
    nats: &Nats,
    service: &str,
    method: &str,
    args: impl IntoArgs,
    deadline: Duration,
    expect: usize,
) -> Result<Vec<FanoutReply>> {
    check_service(service)?;
    let until = tokio::time::Instant::now() + deadline;
    let leaving = build(service, method, args, Some(deadline))?;
    let Leaving {
        payload,
        headers,
        span,
    } = leaving;
    let gathered = async {
        let client = nats.client();
        let inbox = client.new_inbox();
        let mut replies = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| nats_error("fanout", e))?;
        let subject = fanout_subject(service);
        match headers {
            Some(headers) => {
                client
                    .publish_with_reply_and_headers(subject, inbox, headers, payload.into())
                    .await
            }
            None => {
                client
                    .publish_with_reply(subject, inbox, payload.into())
                    .await
            }
        }
        .map_err(|e| nats_error("fanout", e))?;
        client.flush().await.map_err(|e| nats_error("fanout", e))?;
        let mut out = Vec::new();
        while out.len() < expect {
            let msg = match tokio::time::timeout_at(until, replies.next()).await {
                Ok(Some(msg)) => msg,
                Ok(None) | Err(_) => break,
            };
            if msg.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                break;
            }
            match wire::decode_reply(&msg.payload) {
                Ok((instance, result)) => out.push(FanoutReply { instance, result }),
                Err(e) => tracing::debug!(error = %e, "skipping a malformed fanout reply"),
            }
        }
        let _ = replies.unsubscribe().await;
        Ok(out)
    };
    within(span, gathered).await
}
