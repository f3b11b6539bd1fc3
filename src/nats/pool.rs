//! Worker pools and fanout: value calls to a service name, carried by NATS.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::{call_subject, check_service, fanout_subject, nats_error, new_instance_id, wire, Nats};
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

async fn answer(ctx: &Ctx, msg: async_nats::Message) {
    let result = match wire::decode_request(&msg.payload) {
        Ok(req) => {
            let deadline = req.deadline.unwrap_or(ctx.cast_deadline);
            let call = Proxy::local(ctx.root.clone())
                .path_to(req.path)
                .call(Args::from_parts(req.positional, req.named))
                .timeout(deadline);
            match tokio::time::timeout(deadline, call).await {
                Ok(r) => r,
                Err(_) => Err(Error::remote(
                    ErrorKind::TimedOut,
                    format!("the call ran past its deadline of {deadline:?}"),
                )),
            }
        }
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

/// The request bytes for `method` (a member name, or a dotted path such as
/// `"jobs.status"`) with `args`.
fn build(method: &str, args: impl IntoArgs, deadline: Option<Duration>) -> Result<Vec<u8>> {
    let path: Vec<String> = if method.is_empty() {
        Vec::new()
    } else {
        method.split('.').map(str::to_owned).collect()
    };
    let (positional, named) = args.into_args()?.into_parts();
    wire::encode_request(&path, &positional, &named, deadline)
}

/// Calls `method` with `args` on one instance of `service`, picked by NATS among the
/// service's queue group, with the handle's default deadline
/// ([`NatsOptions::call_timeout`](super::NatsOptions)). Arguments and result travel by value.
pub async fn request(
    nats: &Nats,
    service: &str,
    method: &str,
    args: impl IntoArgs,
) -> Result<Value> {
    request_within(nats, service, method, args, nats.options().call_timeout).await
}

/// [`request`] with its own deadline.
pub async fn request_within(
    nats: &Nats,
    service: &str,
    method: &str,
    args: impl IntoArgs,
    deadline: Duration,
) -> Result<Value> {
    check_service(service)?;
    let payload = build(method, args, Some(deadline))?;
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(deadline));
    let msg = nats
        .client()
        .send_request(call_subject(service), request)
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
pub async fn cast(nats: &Nats, service: &str, method: &str, args: impl IntoArgs) -> Result<()> {
    check_service(service)?;
    let payload = build(method, args, None)?;
    let client = nats.client();
    client
        .publish(call_subject(service), payload.into())
        .await
        .map_err(|e| nats_error("cast", e))?;
    client.flush().await.map_err(|e| nats_error("cast", e))
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
    let payload = build(method, args, Some(deadline))?;
    let client = nats.client();
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| nats_error("fanout", e))?;
    client
        .publish_with_reply(fanout_subject(service), inbox, payload.into())
        .await
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
}
