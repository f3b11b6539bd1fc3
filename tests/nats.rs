//! Discovery, worker pools and fanout against a real nats-server started by the tests (see
//! `tests/nats_support`). The registry bound is 2 s here (10 s by default).

mod nats_support;

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nats_support::{NatsServer, Reaped};
use netref::nats::{self, Nats, NatsOptions, Pick, RegisterOptions};
use netref::{callback, expose, ErrorKind, Obj, Server};

const NETREF: &str = env!("CARGO_BIN_EXE_netref");
/// The registry bound of these tests.
const TTL: Duration = Duration::from_secs(2);
/// Slack on top of the bound for a loaded CI machine (JetStream expires entries on a timer).
const SLACK: Duration = Duration::from_millis(1500);
/// A bound on every wait that should take moments.
const PATIENCE: Duration = Duration::from_secs(30);

async fn client(server: &NatsServer) -> Nats {
    let options = NatsOptions::default().with_ttl(TTL);
    let nats = Nats::connect_with(&server.url(), options).await.unwrap();
    // Creates the registry with this bound before anyone registers.
    assert_eq!(nats::registry_bound(&nats).await.unwrap(), TTL);
    nats
}

/// Polls `discover(service)` until `done` holds, up to [`PATIENCE`].
async fn discover_until(
    nats: &Nats,
    service: &str,
    done: impl Fn(&[nats::Instance]) -> bool,
) -> Vec<nats::Instance> {
    let start = Instant::now();
    loop {
        let found = nats::discover(nats, service).await.unwrap();
        if done(&found) {
            return found;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "registry never settled: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn netref_cli(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(NETREF)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Three `netref serve --nats` processes: discovered, listed, called, fanned out to; one is
/// killed, drops out of the fanout at once and out of the registry within the bound, and
/// `connect_service` never returns it after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_register_and_a_killed_one_leaves_within_the_bound() {
    let server = NatsServer::start();
    let nats = client(&server).await;
    let url = server.url();
    let mut children: Vec<Reaped> = (0..3)
        .map(|_| {
            Reaped(
                std::process::Command::new(NETREF)
                    .args(["serve", "--listen", "127.0.0.1:0", "--nats", &url])
                    .args(["--name", "jobs.worker"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let live = discover_until(&nats, "jobs.worker", |f| f.len() == 3).await;
    let pids: BTreeSet<String> = children.iter().map(|c| c.0.id().to_string()).collect();
    let announced: BTreeSet<String> = live.iter().map(|i| i.metadata["pid"].clone()).collect();
    assert_eq!(announced, pids);
    for i in &live {
        assert_eq!(i.version, env!("CARGO_PKG_VERSION"));
        assert!(i.address.starts_with("127.0.0.1:"), "{i:?}");
    }
    let ids: BTreeSet<String> = live.iter().map(|i| i.id.clone()).collect();

    // `netref ls` prints one line per instance; `netref call nats://…` reaches one.
    let (ok, out, err) = netref_cli(&["ls", &url]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, i) in lines.iter().zip(&live) {
        assert!(line.starts_with("jobs.worker 127.0.0.1:"), "{line}");
        assert!(
            ids.iter().any(|id| line.contains(&format!("id={id}"))),
            "{line}"
        );
        assert!(line.contains(env!("CARGO_PKG_VERSION")), "{line} {i:?}");
    }
    let target = format!("{url}/jobs.worker");
    let (ok, out, err) = netref_cli(&["call", &target, "add", "1", "2"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "3");

    // A fanout reaches all three, each answering under its registry id.
    let replies = nats::fanout(&nats, "jobs.worker", "add", (2, 3), Duration::from_secs(1))
        .await
        .unwrap();
    let answered: BTreeSet<String> = replies.iter().map(|r| r.instance.clone()).collect();
    assert_eq!(answered, ids);
    for r in &replies {
        assert_eq!(r.result.as_ref().unwrap().as_i64(), Some(5));
    }

    // Kill one.
    let victim = live[0].clone();
    let index = children
        .iter()
        .position(|c| c.0.id().to_string() == victim.metadata["pid"])
        .unwrap();
    children[index].kill();
    let killed = Instant::now();

    // Its subscriptions went with its NATS connection: the next fanout gathers two.
    let replies = nats::fanout(&nats, "jobs.worker", "add", (2, 3), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(replies.iter().all(|r| r.instance != victim.id));

    // It leaves the registry within the bound (its last heartbeat was before the kill).
    discover_until(&nats, "jobs.worker", |f| {
        f.iter().all(|i| i.id != victim.id)
    })
    .await;
    let gone = killed.elapsed();
    println!("left the registry {gone:?} after the kill (bound {TTL:?})");
    assert!(gone <= TTL + SLACK, "left after {gone:?}, bound {TTL:?}");

    // From then on, `connect_service` only ever connects to the living.
    for pick in [Pick::RoundRobin, Pick::LeastLoaded, Pick::RoundRobin] {
        for _ in 0..2 {
            let conn =
                nats::connect_service_with(&nats, "jobs.worker", pick, netref::Config::default())
                    .await
                    .unwrap();
            assert_ne!(conn.label(), victim.address);
            let sum = conn.root().call_method("add", (20, 22)).await.unwrap();
            assert_eq!(sum.as_i64(), Some(42));
            conn.close().await;
        }
    }
}

/// A worker's root: counts what reaches it.
#[derive(Default)]
struct Counter {
    calls: AtomicU64,
    casts: AtomicU64,
}

#[expose]
impl Counter {
    /// Counts a call; returns `n + 1`.
    #[exposed]
    fn hit(&self, n: i64) -> i64 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        n + 1
    }

    /// Counts a cast.
    #[exposed]
    fn poke(&self) {
        self.casts.fetch_add(1, Ordering::SeqCst);
    }

    /// Calls so far.
    #[exposed]
    fn status(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Returns an object: a reference, which NATS cannot carry.
    #[exposed]
    fn lend(&self) -> Obj<Counter> {
        Obj::new(Counter::default())
    }

    /// Takes anything.
    #[exposed]
    fn take(&self, _x: netref::Value) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_group_spreads_calls_a_cast_reaches_one_and_a_fanout_gathers_all() {
    let server = NatsServer::start();
    let nats = client(&server).await;
    let counters: Vec<Obj<Counter>> = (0..3).map(|_| Obj::new(Counter::default())).collect();
    let mut workers = Vec::new();
    for c in &counters {
        workers.push(nats::serve(&nats, "pool", c.erase()).await.unwrap());
    }

    // 1,000 requests, 50 at a time: every worker gets some, none is lost or doubled.
    for chunk in 0..20 {
        let calls = (0..50).map(|i| nats::request(&nats, "pool", "hit", (chunk * 50 + i,)));
        for (i, r) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(r.unwrap().as_i64(), Some(chunk * 50 + i as i64 + 1));
        }
    }
    let per_worker: Vec<u64> = counters
        .iter()
        .map(|c| c.arc().calls.load(Ordering::SeqCst))
        .collect();
    println!("1000 queue-group calls per worker: {per_worker:?}");
    assert_eq!(per_worker.iter().sum::<u64>(), 1000);
    assert!(per_worker.iter().all(|&n| n > 0), "{per_worker:?}");

    // A cast runs on exactly one worker.
    nats::cast(&nats, "pool", "poke", ()).await.unwrap();
    let casts = || -> Vec<u64> {
        counters
            .iter()
            .map(|c| c.arc().casts.load(Ordering::SeqCst))
            .collect()
    };
    let start = Instant::now();
    while casts().iter().sum::<u64>() == 0 {
        assert!(start.elapsed() < PATIENCE, "the cast never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A duplicate would have arrived with the first; give it time to show up anyway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(casts().iter().sum::<u64>(), 1, "{:?}", casts());

    // A fanout reaches every instance, answering under its own id; `fanout_n` returns once
    // all have answered.
    let ids: BTreeSet<String> = workers.iter().map(|w| w.id().to_owned()).collect();
    let replies = nats::fanout_n(&nats, "pool", "status", (), PATIENCE, 3)
        .await
        .unwrap();
    let by_id: HashMap<String, i64> = replies
        .iter()
        .map(|r| {
            (
                r.instance.clone(),
                r.result.as_ref().unwrap().as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_id.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert_eq!(by_id.values().sum::<i64>(), 1000);
    // One stops: the fanout gathers the other two within its deadline.
    workers.pop().unwrap().stop().await;
    let replies = nats::fanout(&nats, "pool", "status", (), Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(replies.len(), 2, "{replies:?}");

    // Errors keep their kind; references are refused with a pointer to direct connections.
    let e = nats::request(&nats, "pool", "nope", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{e}");
    let e = nats::request(&nats, "pool", "take", (callback(|| ()),))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value, "{e}");
    assert!(e.to_string().contains("connect_service"), "{e}");
    let e = nats::request(&nats, "pool", "lend", ()).await.unwrap_err();
    assert!(
        e.to_string().contains("the result is an object reference"),
        "{e}"
    );
    let e = nats::cast(&nats, "pool", "take", (callback(|| ()),))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value, "{e}");

    // Nobody serves `idle`: a request says so at once, a fanout is empty at once.
    let e = nats::request(&nats, "idle", "hit", (1,)).await.unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    let replies = nats::fanout(&nats, "idle", "status", (), PATIENCE)
        .await
        .unwrap();
    assert!(replies.is_empty());
    // Malformed bytes on the subject get a protocol error back, and the worker goes on.
    let reply = nats
        .client()
        .request("netref.call.pool", "garbage".into())
        .await
        .unwrap();
    assert!(!reply.payload.is_empty());
    let n = nats::request(&nats, "pool", "hit", (1,)).await.unwrap();
    assert_eq!(n.as_i64(), Some(2));
}

#[expose]
impl Server2 {
    /// Which server this is.
    #[exposed]
    fn name(&self) -> String {
        self.0.clone()
    }
}

/// A named root, to tell servers apart.
struct Server2(String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_service_tries_the_next_instance_and_a_resilient_service_moves_on() {
    let server = NatsServer::start();
    let nats = client(&server).await;

    // An instance whose address refuses connections (nothing listens there any more) …
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let decoy_server = Server::with_root(Obj::new(Server2("decoy".into())).erase())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let decoy = nats::register_with(
        &nats,
        "lab",
        &decoy_server,
        RegisterOptions::default().advertise(&dead),
    )
    .await
    .unwrap();
    // … and a live one.
    let a = Server::with_root(Obj::new(Server2("a".into())).erase())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let reg_a = nats::register(&nats, "lab", &a).await.unwrap();
    assert_eq!(nats::discover(&nats, "lab").await.unwrap().len(), 2);
    for _ in 0..4 {
        let conn = nats::connect_service(&nats, "lab").await.unwrap();
        let name: String = conn.root().call_method("name", ()).decode().await.unwrap();
        assert_eq!(name, "a");
    }
    decoy.deregister().await;

    // A resilient connection to the service follows it from `a` to `b`.
    let link = netref::connect_resilient(nats::service(&nats, "lab"))
        .await
        .unwrap();
    let broken = Arc::new(AtomicU64::new(0));
    let seen = broken.clone();
    link.on_broken(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let old_root = link.root().await.unwrap();
    let name: String = old_root.call_method("name", ()).decode().await.unwrap();
    assert_eq!(name, "a");
    let b = Server::with_root(Obj::new(Server2("b".into())).erase())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let _reg_b = nats::register(&nats, "lab", &b).await.unwrap();
    reg_a.deregister().await;
    a.shutdown().await;
    drop(a);
    let root = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(root) = link.root().await {
                if let Ok(name) = root.call_method("name", ()).decode::<String>().await {
                    break (root, name);
                }
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(root.1, "b");
    assert_eq!(broken.load(Ordering::SeqCst), 1);
    let e = old_root.call_method("name", ()).await.unwrap_err();
    assert!(e.is_disconnected(), "{e}");
}

/// Discovery leaves nothing behind on the NATS server: polling it does not pile up JetStream
/// consumers (a consumer per listing would linger 30 s and, polled often, run into the
/// server's consumer limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_leaves_no_consumers_on_the_server() {
    let server = NatsServer::start();
    let nats = client(&server).await;
    let lab = Server::with_root(Obj::new(Server2("a".into())).erase())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let _registration = nats::register(&nats, "lab", &lab).await.unwrap();
    for _ in 0..50 {
        assert_eq!(nats::discover(&nats, "lab").await.unwrap().len(), 1);
        assert_eq!(nats::discover_all(&nats).await.unwrap().len(), 1);
        assert!(nats::discover(&nats, "la").await.unwrap().is_empty());
    }
    let conn = nats::connect_service(&nats, "lab").await.unwrap();
    conn.close().await;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let mut stream = js
        .get_stream(format!("KV_{}", NatsOptions::default().bucket))
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.consumer_count, 0, "{:?}", info.state);
}

// Deadlines and traces travel over NATS as over a direct connection (issue 15, item 4): a
// request served by a worker runs in the context the native engine gives a served call, and
// the requests, casts and native calls its handler makes inherit its remaining deadline and
// its trace id.

/// What a served call saw: `context::time_left()` in milliseconds, `context::trace_id()`.
type Seen = (Option<u64>, Option<u64>);

fn seen_here() -> Seen {
    (
        netref::context::time_left().map(|d| d.as_millis() as u64),
        netref::context::trace_id(),
    )
}

/// A worker's root that reports what the call it serves carries, and passes calls on over
/// NATS and over a direct connection.
struct Traveller {
    nats: Nats,
    native: Option<netref::Connection>,
    recorded: Arc<std::sync::Mutex<Vec<Seen>>>,
}

#[expose]
impl Traveller {
    /// What this call sees.
    #[exposed]
    fn seen(&self) -> Seen {
        seen_here()
    }

    /// Keeps what this call sees (for casts).
    #[exposed]
    fn record(&self) {
        self.recorded.lock().unwrap().push(seen_here());
    }

    /// `seen` of `service`, over NATS, with no deadline of its own.
    #[exposed]
    async fn relay(&self, service: String) -> netref::Result<Seen> {
        netref::from_value(nats::request(&self.nats, &service, "seen", ()).await?)
    }

    /// `seen` of `service`, over NATS, with a deadline of its own.
    #[exposed]
    async fn relay_own(&self, service: String, own_ms: u64) -> netref::Result<Seen> {
        let own = Duration::from_millis(own_ms);
        netref::from_value(nats::request_within(&self.nats, &service, "seen", (), own).await?)
    }

    /// `seen` of the root of the direct connection this traveller holds.
    #[exposed]
    async fn relay_native(&self) -> netref::Result<Seen> {
        let conn = self.native.as_ref().expect("a direct connection");
        conn.root().call_method("seen", ()).decode().await
    }

    /// Casts `record` to `service`.
    #[exposed]
    async fn relay_cast(&self, service: String) -> netref::Result<()> {
        nats::cast(&self.nats, &service, "record", ()).await
    }
}

fn traveller(nats: &Nats, native: Option<netref::Connection>) -> Obj<Traveller> {
    Obj::new(Traveller {
        nats: nats.clone(),
        native,
        recorded: Arc::default(),
    })
}

/// Waits until `obj` has recorded a cast.
async fn recorded(obj: &Obj<Traveller>) -> Seen {
    let start = Instant::now();
    loop {
        if let Some(seen) = obj.arc().recorded.lock().unwrap().first() {
            return *seen;
        }
        assert!(start.elapsed() < PATIENCE, "the cast never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client whose own default deadline is far longer than the outer calls' below, so an
/// inherited deadline is told from a default one.
async fn patient_client(server: &NatsServer) -> Nats {
    let options = NatsOptions::default()
        .with_ttl(TTL)
        .with_call_timeout(Duration::from_secs(600));
    Nats::connect_with(&server.url(), options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_call_from_a_nats_handler_inherits_the_remaining_deadline() {
    let server = NatsServer::start();
    let nats = patient_client(&server).await;
    // A native server the first worker's handler calls too; its connection's default
    // deadline is 30 s.
    let far = Server::with_root(traveller(&nats, None).erase())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let native = netref::connect(far.local_addr()).await.unwrap();
    let direct = native.clone();
    let near = traveller(&nats, Some(native));
    let _a = nats::serve(&nats, "deadline-a", near.erase())
        .await
        .unwrap();
    let far_worker = traveller(&nats, None);
    let _b = nats::serve(&nats, "deadline-b", far_worker.erase())
        .await
        .unwrap();
    let outer = Duration::from_secs(10);
    let outer_ms = outer.as_millis() as u64;

    // The handler sees its own call's deadline.
    let (left, _): Seen = netref::from_value(
        nats::request_within(&nats, "deadline-b", "seen", (), outer)
            .await
            .unwrap(),
    )
    .unwrap();
    let left = left.expect("a served NATS request has a deadline");
    assert!(left > 0 && left <= outer_ms, "{left} ms left of {outer_ms}");

    // A nested NATS request with no deadline of its own gets what is left of the outer
    // one, not the handle's 600 s.
    let (left, _): Seen = netref::from_value(
        nats::request_within(&nats, "deadline-a", "relay", ("deadline-b",), outer)
            .await
            .unwrap(),
    )
    .unwrap();
    let left = left.expect("the nested request carries a deadline");
    assert!(left > 0 && left <= outer_ms, "{left} ms left of {outer_ms}");

    // A nested call on a direct connection too, not its connection's 30 s.
    let (left, _): Seen = netref::from_value(
        nats::request_within(&nats, "deadline-a", "relay_native", (), outer)
            .await
            .unwrap(),
    )
    .unwrap();
    let left = left.expect("the nested native call carries a deadline");
    assert!(left > 0 && left <= outer_ms, "{left} ms left of {outer_ms}");

    // A nested cast carries it as well (a cast from outside a handler carries none, and the
    // worker bounds it by its own 600 s).
    nats::request_within(&nats, "deadline-a", "relay_cast", ("deadline-b",), outer)
        .await
        .unwrap();
    let (left, _) = recorded(&far_worker).await;
    let left = left.expect("the nested cast carries a deadline");
    assert!(left > 0 && left <= outer_ms, "{left} ms left of {outer_ms}");

    // And the other way: a handler serving a call on a direct connection passes what is
    // left of it on to its NATS request.
    let (left, _): Seen = direct
        .root()
        .call_method("relay", ("deadline-b",))
        .timeout(outer)
        .decode()
        .await
        .unwrap();
    let left = left.expect("the request made by a native handler carries a deadline");
    assert!(left > 0 && left <= outer_ms, "{left} ms left of {outer_ms}");

    // A deadline of its own wins, even a longer one.
    let own_ms = 300_000;
    let (left, _): Seen = netref::from_value(
        nats::request_within(
            &nats,
            "deadline-a",
            "relay_own",
            ("deadline-b", own_ms),
            outer,
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let left = left.expect("a deadline of its own");
    assert!(
        left > outer_ms && left <= own_ms,
        "{left} ms left of {own_ms}"
    );
}

/// One span as [`Capture`] saw it.
#[derive(Debug, Clone, Default)]
struct SpanRec {
    name: String,
    fields: HashMap<String, String>,
}

/// A `tracing` layer that records every span's name and fields (including those recorded
/// later): the log of both sides.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<std::sync::Mutex<Vec<SpanRec>>>,
    index: Arc<std::sync::Mutex<HashMap<u64, usize>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").replace('"', ""),
        );
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
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

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(&i) = self.index.lock().unwrap().get(&id.into_u64()) else {
            return;
        };
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[i].fields));
    }
}

impl Capture {
    /// The trace ids of the spans named `name` whose `target` (the service, on NATS) is
    /// `target`, in order.
    fn traces(&self, name: &str, target: &str) -> Vec<Option<String>> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| {
                s.name == name && s.fields.get("target").map(String::as_str) == Some(target)
            })
            .map(|s| s.fields.get("trace").cloned())
            .collect()
    }
}

/// `n` as the `Netref-Trace` header and the spans show it.
fn hex(n: u64) -> String {
    format!("{n:016x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_id_travels_with_nats_requests_casts_and_their_nested_calls() {
    // The binary's global subscriber (not a thread's default, which another test running at
    // the same moment could make `tracing` cache netref's spans as unwanted): both sides'
    // spans reach it, the log of two processes joined. Other tests' spans reach it too;
    // this one's services have names of their own.
    let capture = Capture::default();
    let subscriber = tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        tracing_subscriber::Layer::with_filter(
            capture.clone(),
            tracing_subscriber::filter::LevelFilter::DEBUG,
        ),
    );
    tracing::subscriber::set_global_default(subscriber).expect("the binary's only subscriber");

    let server = NatsServer::start();
    let nats = patient_client(&server).await;
    let far = Server::with_root(traveller(&nats, None).erase())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let conn = netref::connect(far.local_addr()).await.unwrap();
    let direct = conn.clone();
    let _a = nats::serve(&nats, "trace-a", traveller(&nats, Some(conn)).erase())
        .await
        .unwrap();
    let far_worker = traveller(&nats, None);
    let _b = nats::serve(&nats, "trace-b", far_worker.erase())
        .await
        .unwrap();

    // A request from the top mints a trace; its handler, its nested request and that one's
    // handler all carry it: four spans, one trace, and the far handler reads it.
    let (_, far_trace): Seen = netref::from_value(
        nats::request(&nats, "trace-a", "relay", ("trace-b",))
            .await
            .unwrap(),
    )
    .unwrap();
    let outer = capture.traces("netref.call", "trace-a");
    assert_eq!(outer.len(), 1, "{outer:?}");
    let trace = outer[0].clone().expect("the caller's span has a trace id");
    assert_eq!(trace.len(), 16, "16 hex digits: {trace}");
    assert_eq!(
        capture.traces("netref.serve", "trace-a"),
        [Some(trace.clone())]
    );
    assert_eq!(
        capture.traces("netref.call", "trace-b"),
        [Some(trace.clone())]
    );
    assert_eq!(
        capture.traces("netref.serve", "trace-b"),
        [Some(trace.clone())]
    );
    assert_eq!(far_trace.map(hex), Some(trace.clone()));

    // A call on a direct connection made by the handler carries it on too.
    let (_, native_trace): Seen = netref::from_value(
        nats::request(&nats, "trace-a", "relay_native", ())
            .await
            .unwrap(),
    )
    .unwrap();
    let second = capture.traces("netref.call", "trace-a");
    assert_eq!(second.len(), 2, "{second:?}");
    let second = second[1].clone().expect("a trace id");
    assert_ne!(
        second, trace,
        "the next call from the top starts a trace of its own"
    );
    assert_eq!(native_trace.map(hex), Some(second));

    // A cast made by a handler carries it to the far handler.
    nats::request(&nats, "trace-a", "relay_cast", ("trace-b",))
        .await
        .unwrap();
    let third = capture.traces("netref.call", "trace-a")[2]
        .clone()
        .expect("a trace id");
    let (_, cast_trace) = recorded(&far_worker).await;
    assert_eq!(cast_trace.map(hex), Some(third));

    // And the other way: a handler serving a call on a direct connection carries that
    // call's trace id on to its NATS request.
    let (_, far_trace): Seen = direct
        .root()
        .call_method("relay", ("trace-b",))
        .decode()
        .await
        .unwrap();
    let served = capture.traces("netref.serve", "trace-b");
    // (After the first request's and the cast's.)
    assert_eq!(served.len(), 3, "{served:?}");
    let native_call = served[2].clone().expect("a trace id");
    assert_ne!(native_call, trace);
    assert_eq!(far_trace.map(hex), Some(native_call.clone()));
    let native_served: Vec<Option<String>> = capture
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s.name == "netref.serve" && s.fields.get("path").map(String::as_str) == Some("relay")
        })
        .map(|s| s.fields.get("trace").cloned())
        .collect();
    assert!(
        native_served.contains(&Some(native_call)),
        "the direct connection's span has the same trace: {native_served:?}"
    );

    // On the wire: a cast's payload is the bytes an older peer reads (no deadline from the
    // top, the path, the arguments), and its trace id rides in the `Netref-Trace` header.
    let mut raw = nats
        .client()
        .subscribe("netref.call.trace-raw")
        .await
        .unwrap();
    nats.client().flush().await.unwrap();
    nats::cast(&nats, "trace-raw", "hit", (7,)).await.unwrap();
    let msg = tokio::time::timeout(PATIENCE, raw.next())
        .await
        .expect("the cast arrives")
        .unwrap();
    let mut old = vec![b'N', 1, 0, 1, 3, b'h', b'i', b't', 1, 3];
    old.extend_from_slice(&7i64.to_le_bytes());
    old.push(0);
    assert_eq!(msg.payload.as_ref(), &old[..]);
    let sent = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("Netref-Trace"))
        .expect("the trace id header")
        .as_str()
        .to_owned();
    let cast_span = capture.traces("netref.call", "trace-raw");
    assert_eq!(cast_span, [Some(sent)]);
}

/// A request as a peer without trace ids sends it (and as every peer sends one outside a
/// trace): the payload alone. The worker serves it, with the payload's deadline; a
/// malformed trace header is a protocol error sent back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_trace_header_is_served_and_a_bad_header_is_refused() {
    let server = NatsServer::start();
    let nats = patient_client(&server).await;
    let worker = traveller(&nats, None);
    let _w = nats::serve(&nats, "old-peer", worker.erase())
        .await
        .unwrap();

    // `record()` with a deadline of 5,000 ms (varint 0x88 0x27), built by hand.
    let mut old = vec![b'N', 1, 0x88, 0x27, 1, 6];
    old.extend_from_slice(b"record");
    old.extend_from_slice(&[0, 0]);
    let reply = nats
        .client()
        .request("netref.call.old-peer", old.clone().into())
        .await
        .unwrap();
    // `N`, 1, the instance id (16 bytes), then status 0: a value.
    assert!(reply.headers.is_none());
    assert_eq!(reply.payload[..3], [b'N', 1, 16]);
    assert_eq!(reply.payload[19], 0, "{:?}", reply.payload);
    let (left, _) = recorded(&worker).await;
    let left = left.expect("the payload's deadline");
    assert!(left > 0 && left <= 5_000, "{left} ms left of 5000");

    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Netref-Trace", "not a trace id");
    let request = async_nats::Request::new()
        .payload(old.into())
        .headers(headers);
    let reply = nats
        .client()
        .send_request("netref.call.old-peer", request)
        .await
        .unwrap();
    assert_eq!(reply.payload[19], 1, "an error: {:?}", reply.payload);
    let text = String::from_utf8_lossy(&reply.payload);
    assert!(text.contains("Netref-Trace"), "{text}");
    assert_eq!(worker.arc().recorded.lock().unwrap().len(), 1);
}
