//! Deadlines and traces travel: a call a handler makes while it serves a call inherits the
//! served call's remaining deadline and its trace id, and both sides' `tracing` spans record
//! that trace id (issue 15, item 4).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netref::{callback, expose, Config, Connection, Obj, Proxy, Result};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// What [`Relay::late`]'s nested call came to.
static LATE: Mutex<Option<String>> = Mutex::new(None);

/// Calls back what it is given.
struct Relay;

#[expose]
impl Relay {
    /// Waits `wait_ms`, then calls `cb()` and returns what it returned.
    #[exposed]
    async fn relay(&self, cb: Proxy, wait_ms: u64) -> Result<Option<u64>> {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        cb.call(()).decode().await
    }

    /// Waits `wait_ms`, then calls `cb()` with a deadline of its own, `own_ms`.
    #[exposed]
    async fn relay_own(&self, cb: Proxy, wait_ms: u64, own_ms: u64) -> Result<Option<u64>> {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        cb.call(())
            .timeout(Duration::from_millis(own_ms))
            .decode()
            .await
    }

    /// Calls `cb()` at once.
    #[exposed]
    async fn call_back(&self, cb: Proxy) -> Result<String> {
        cb.call(()).decode().await
    }

    /// Goes on past its deadline for `wait_ms`, then calls `cb()`; keeps the outcome in
    /// [`LATE`].
    #[exposed]
    async fn late(&self, cb: Proxy, wait_ms: u64) -> Result<()> {
        netref::context::uncancellable(async move {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            let outcome = match cb.call(()).await {
                Ok(_) => "called".to_owned(),
                Err(e) => e.to_string(),
            };
            *LATE.lock().unwrap() = Some(outcome);
        })
        .await;
        Ok(())
    }

    /// The time left of this call, in milliseconds.
    #[exposed]
    fn left_ms(&self) -> Option<u64> {
        netref::context::time_left().map(|d| d.as_millis() as u64)
    }
}

/// A client and a server connection on an in-memory pipe, labelled `client` and `server`;
/// the server lends a `Relay`.
async fn connected() -> (Connection, Connection) {
    connected_as("client", "server").await
}

/// [`connected`] with the given labels.
async fn connected_as(client: &str, server: &str) -> (Connection, Connection) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let root = Obj::new(Relay).erase();
    let server = Connection::from_io(br, bw, Config::default().with_label(server), Some(root));
    let client = Connection::from_io(ar, aw, Config::default().with_label(client), None);
    let (server, client) = tokio::join!(server, client);
    (client.unwrap(), server.unwrap())
}

/// A callback that reports `context::time_left()` on the side it runs, in milliseconds.
fn time_left_callback() -> Proxy {
    callback(|| netref::context::time_left().map(|d| d.as_millis() as u64))
}

#[tokio::test(start_paused = true)]
async fn a_nested_callback_inherits_the_remaining_deadline() {
    let (client, _server) = connected().await;
    let root = client.root();
    // 10 s for the whole call; the server waits 3 s before calling back, so the callback
    // (on the client, the far side of the nested call) has 7 s left, not the connection's
    // default of 30 s.
    let left: Option<u64> = root
        .call_method("relay", (time_left_callback(), 3_000u64))
        .timeout(Duration::from_secs(10))
        .decode()
        .await
        .unwrap();
    let left = left.expect("the callback runs with a deadline");
    assert!((6_900..=7_000).contains(&left), "{left} ms left");

    // A deadline of its own wins over the inherited one.
    let left: Option<u64> = root
        .call_method("relay_own", (time_left_callback(), 3_000u64, 20_000u64))
        .timeout(Duration::from_secs(10))
        .decode()
        .await
        .unwrap();
    assert_eq!(left, Some(20_000));

    // Outside any call, the connection's default applies.
    let left: Option<u64> = root.call_method("left_ms", ()).decode().await.unwrap();
    assert_eq!(left, Some(30_000));
}

#[test]
fn a_blocking_callback_passes_the_served_deadline_on_to_its_calls() {
    let (_server, client) =
        netref::blocking::Connection::pair(Some(Obj::new(Relay).erase()), None).unwrap();
    let root = client.root();
    let inner = client.root();
    // The callback runs on a thread of its own and asks the server, from there, how long
    // its caller (the callback itself, so the relay, so the test) will wait.
    let cb = netref::blocking::callback(move || -> Result<Option<u64>> {
        inner.call_method("left_ms", ())?.decode()
    });
    let left: Option<u64> = root
        .attr("relay")
        .call_timeout((cb, 0u64), Duration::from_secs(10))
        .unwrap()
        .decode()
        .unwrap();
    // Without the served call's deadline the nested call would have the default 30 s.
    let left = left.expect("the nested call has a deadline");
    assert!(left <= 10_000, "{left} ms left");
}

#[tokio::test(start_paused = true)]
async fn a_nested_call_past_the_served_deadline_fails_without_being_sent() {
    let (client, server) = connected().await;
    let called = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = called.clone();
    let cb = callback(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    // The handler goes on past its deadline (uncancellable work), then calls back: the
    // caller stopped waiting long ago, so the nested call fails at once.
    let err = client
        .root()
        .call_method("late", (cb, 5_000u64))
        .timeout(Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), netref::ErrorKind::TimedOut, "{err}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let late = LATE.lock().unwrap().take().expect("the late work ran");
    assert!(
        late.contains("deadline of the call this handler serves has passed"),
        "{late}"
    );
    assert_eq!(called.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(server.stats().calls_sent, 0, "nothing was sent");
}

/// One span as the capture layer saw it.
#[derive(Debug, Clone, Default)]
struct SpanRec {
    name: String,
    fields: HashMap<String, String>,
}

/// Records every span's name and fields (including those recorded later).
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<SpanRec>>>,
    index: Arc<Mutex<HashMap<u64, usize>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").replace('"', ""),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut rec = SpanRec {
            name: attrs.metadata().name().to_owned(),
            ..SpanRec::default()
        };
        attrs.record(&mut Fields(&mut rec.fields));
        let mut spans = self.spans.lock().unwrap();
        self.index
            .lock()
            .unwrap()
            .insert(id.into_u64(), spans.len());
        spans.push(rec);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let Some(&i) = self.index.lock().unwrap().get(&id.into_u64()) else {
            return;
        };
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[i].fields));
    }
}

impl Capture {
    /// The spans named `name` opened on connection `conn`.
    fn spans(&self, name: &str, conn: &str) -> Vec<SpanRec> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name && s.fields.get("conn").map(String::as_str) == Some(conn))
            .cloned()
            .collect()
    }
}

#[tokio::test]
async fn the_trace_id_travels_with_a_call_and_its_nested_callback() {
    // The subscriber sees both sides' spans: the log of two processes, joined. It is the
    // global one, not a thread's default: with a thread's default, another test of this
    // binary running at the same moment could meet netref's span first on its own thread
    // and have `tracing` remember it as wanted by nobody (it did, once, under load). Other
    // tests' spans reach it too; their connections have other labels.
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
    );
    tracing::subscriber::set_global_default(subscriber).expect("the binary's only subscriber");

    let (client, server) = connected_as("traced-client", "traced-server").await;
    assert!(client.peer_features().trace_ids && server.peer_features().trace_ids);
    let seen = Arc::new(Mutex::new(None));
    let saw = seen.clone();
    let cb = callback(move || {
        *saw.lock().unwrap() = netref::context::trace_id();
        "called back".to_owned()
    });
    let r: String = client
        .root()
        .call_method("call_back", (cb,))
        .decode()
        .await
        .unwrap();
    assert_eq!(r, "called back");

    // The client's call, the server serving it, the server's nested call back to the
    // client, and the client serving that: four spans, one trace.
    let call = capture.spans("netref.call", "traced-client");
    let served = capture.spans("netref.serve", "traced-server");
    let nested = capture.spans("netref.call", "traced-server");
    let callback_served = capture.spans("netref.serve", "traced-client");
    assert_eq!(call.len(), 1, "{call:?}");
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(nested.len(), 1, "{nested:?}");
    assert_eq!(callback_served.len(), 1, "{callback_served:?}");
    let trace = call[0].fields.get("trace").cloned().expect("a trace id");
    assert_eq!(trace.len(), 16, "16 hex digits: {trace}");
    for span in [&served[0], &nested[0], &callback_served[0]] {
        assert_eq!(span.fields.get("trace"), Some(&trace), "{span:?}");
    }
    // Each span names its call: the id and path on both sides agree.
    assert_eq!(call[0].fields["path"], "call_back");
    assert_eq!(served[0].fields["path"], "call_back");
    assert_eq!(call[0].fields["call"], served[0].fields["call"]);
    assert_eq!(nested[0].fields["call"], callback_served[0].fields["call"]);
    assert_eq!(nested[0].fields["path"], "");
    // The handler of the callback reads the same trace id.
    let read = seen.lock().unwrap().expect("the callback sees a trace id");
    assert_eq!(format!("{read:016x}"), trace);

    // The next call from the top starts a trace of its own.
    let _: Option<u64> = client
        .root()
        .call_method("left_ms", ())
        .decode()
        .await
        .unwrap();
    let calls = capture.spans("netref.call", "traced-client");
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[1].fields.get("trace"), Some(&trace));
    let serves = capture.spans("netref.serve", "traced-server");
    assert_eq!(serves[1].fields.get("trace"), calls[1].fields.get("trace"));
}
