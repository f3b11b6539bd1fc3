//! netref: the bench root served by a child process, and the client side of each workload.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use netref::{expose, Connection, Obj, Proxy, RemoteStream, Server, Value};
use parking_lot::Mutex;

use crate::procs::{rss_bytes, Res};
use crate::stats::Sample;
use crate::{Spec, Workload};

/// An object lent by reference in the memory workload.
pub(crate) struct Item {
    n: u64,
}

/// A small lent object.
#[expose]
impl Item {
    /// Its number.
    #[exposed]
    fn id(&self) -> u64 {
        self.n
    }
}

/// The root every benchmark connection gets.
#[derive(Default)]
pub(crate) struct BenchRoot {
    value: AtomicI64,
    items: Mutex<Vec<Obj<Item>>>,
}

/// The bench service: the same members as the RPyC and tarpc peers.
#[expose]
impl BenchRoot {
    /// Returns its argument.
    #[exposed]
    fn echo(&self, x: Value) -> Value {
        x
    }

    /// Returns its argument, typed: the member of the typed-call workload (the signature of
    /// tarpc's `echo`).
    #[exposed]
    fn echo_int(&self, x: i64) -> i64 {
        x
    }

    /// `start, start + 1, …` up to `u64::MAX`, streamed: the stream workload's producer.
    #[exposed]
    fn count(&self, start: u64) -> netref::Stream<u64> {
        netref::Stream::new(futures_util::stream::iter(start..u64::MAX))
    }

    /// A property.
    #[exposed(property)]
    fn value(&self) -> i64 {
        self.value.load(Ordering::Relaxed) + 1
    }

    /// Calls `cb(1)` for `warmup_ns`, then for `time_ns`, timing each call here (server →
    /// client round trips). Returns the elapsed time and the latencies, in nanoseconds.
    #[exposed]
    async fn callback_loop(
        &self,
        cb: Proxy,
        warmup_ns: u64,
        time_ns: u64,
    ) -> netref::Result<(u64, Vec<u64>)> {
        let warm_end = Instant::now() + Duration::from_nanos(warmup_ns);
        while Instant::now() < warm_end {
            cb.call((1,)).await?;
        }
        let s = timed!(Duration::from_nanos(time_ns), {
            cb.call((1,)).await?;
        });
        Ok((s.elapsed.as_nanos() as u64, s.lat_ns))
    }

    /// Creates `n` objects kept by the server; returns the RSS afterwards.
    #[exposed]
    fn prepare(&self, n: u64) -> u64 {
        let items = (0..n).map(|n| Obj::new(Item { n })).collect();
        *self.items.lock() = items;
        rss_bytes()
    }

    /// Lends objects `start..start + count` (a list of references).
    #[exposed]
    fn lend(&self, start: u64, count: u64) -> Vec<Obj<Item>> {
        let items = self.items.lock();
        let start = (start as usize).min(items.len());
        let end = (start + count as usize).min(items.len());
        items[start..end].to_vec()
    }

    /// This process's resident set size, in bytes.
    #[exposed]
    fn rss(&self) -> u64 {
        rss_bytes()
    }
}

/// Where the harness passes `--busy-poll-us` to every netref side, its server processes
/// included: microseconds of [`netref::Config::busy_poll`].
pub(crate) const BUSY_POLL_ENV: &str = "NETREF_BENCH_BUSY_POLL_US";

/// `Config::busy_poll` of netref's sides in this run.
pub(crate) fn busy_poll() -> Duration {
    std::env::var(BUSY_POLL_ENV)
        .ok()
        .and_then(|us| us.parse().ok())
        .map_or(Duration::ZERO, Duration::from_micros)
}

/// The configuration of every netref side.
fn config() -> netref::Config {
    netref::Config::default().with_busy_poll(busy_poll())
}

/// The server process: serves a fresh `BenchRoot` per connection on 127.0.0.1.
pub(crate) async fn serve() -> Res<()> {
    let server = Server::with_factory(|_| Obj::new(BenchRoot::default()).erase())
        .config(config())
        .bind("127.0.0.1:0")
        .await?;
    crate::announce_and_wait(server.local_addr().port()).await;
    server.shutdown().await;
    Ok(())
}

/// The server process on RPyC's wire: the same root, for Python's `rpyc` client.
pub(crate) async fn serve_rpyc() -> Res<()> {
    let server = Server::with_factory(|_| Obj::new(BenchRoot::default()).erase())
        .rpyc()
        .config(config())
        .bind("127.0.0.1:0")
        .await?;
    crate::announce_and_wait(server.local_addr().port()).await;
    server.shutdown().await;
    Ok(())
}

/// netref's RPyC client against Python's `scripts/rpyc_server.py`.
pub(crate) struct RpycClient {
    _conn: netref::rpyc::Connection,
    root: Proxy,
}

impl RpycClient {
    pub(crate) async fn connect(port: u16) -> Res<RpycClient> {
        let conn = netref::rpyc::connect_with(("127.0.0.1", port), config(), None).await?;
        let root = conn.root().await?;
        Ok(RpycClient { _conn: conn, root })
    }

    pub(crate) async fn run(&mut self, w: Workload, spec: &Spec) -> Res<Option<Sample>> {
        let _ = self.once(w, spec, spec.warmup).await?;
        self.once(w, spec, spec.time).await
    }

    async fn once(&mut self, w: Workload, spec: &Spec, time: Duration) -> Res<Option<Sample>> {
        let root = &self.root;
        Ok(Some(match w {
            // One CALLATTR per call.
            Workload::EchoFresh => timed!(time, {
                root.call_method("echo", (1,)).await?;
            }),
            // The bound method once (GETATTR), then one CALL per call, as Python's `f(1)`.
            Workload::EchoCached => {
                let f = root.attr("echo").get().await?.into_proxy()?;
                timed!(time, {
                    f.call((1,)).await?;
                })
            }
            Workload::Attr => timed!(time, {
                root.attr("value").get().await?;
            }),
            Workload::Callback => {
                let cb = netref::callback(|x: i64| x);
                let (elapsed_ns, lat_ns): (u64, Vec<u64>) = root
                    .call_method("callback_loop", (cb, 0u64, time.as_nanos() as u64))
                    .decode()
                    .await?;
                Sample {
                    calls: lat_ns.len() as u64,
                    elapsed: Duration::from_nanos(elapsed_ns),
                    lat_ns,
                    ..Sample::default()
                }
            }
            Workload::InFlight => {
                let f = root.attr("echo").get().await?.into_proxy()?;
                let issue = |t0: Instant| {
                    let call = f.call((1,));
                    async move { call.await.map(|_| t0) }
                };
                crate::stats::in_flight(spec.depth, time, issue).await?
            }
            Workload::Bytes => {
                let original = crate::random_bytes(spec.bytes);
                let mut payload = Value::Bytes(original.clone());
                let s = timed!(time, {
                    payload = root.call_method("echo", vec![payload]).await?;
                });
                if payload != Value::Bytes(original) {
                    return Err("the echoed bytes differ".into());
                }
                s
            }
            Workload::Typed | Workload::Stream | Workload::Memory => return Ok(None),
        }))
    }
}

pub(crate) struct Client {
    conn: Connection,
    /// The typed client of the same root (checked once, at connect).
    typed: BenchRootProxy,
    /// Whether the typed-call workload calls dynamically (`System::NetrefDynamic`).
    dynamic: bool,
}

impl Client {
    pub(crate) async fn connect(port: u16, dynamic: bool) -> Res<Client> {
        let conn = netref::connect_with(("127.0.0.1", port), config(), None).await?;
        let typed = conn.root_as().await?;
        Ok(Client {
            conn,
            typed,
            dynamic,
        })
    }

    pub(crate) async fn run(&mut self, w: Workload, spec: &Spec) -> Res<Option<Sample>> {
        let _ = self.once(w, spec, spec.warmup).await?;
        self.once(w, spec, spec.time).await
    }

    async fn once(&mut self, w: Workload, spec: &Spec, time: Duration) -> Res<Option<Sample>> {
        let conn = &self.conn;
        Ok(Some(match w {
            Workload::EchoFresh => timed!(time, {
                conn.root().call_method("echo", (1,)).await?;
            }),
            Workload::EchoCached => {
                let f = conn.root().attr("echo");
                timed!(time, {
                    f.call((1,)).await?;
                })
            }
            Workload::Attr => {
                let root = conn.root();
                timed!(time, {
                    root.attr("value").get().await?;
                })
            }
            Workload::Callback => {
                let cb = netref::callback(|x: i64| x);
                let (elapsed_ns, lat_ns): (u64, Vec<u64>) = conn
                    .root()
                    .call_method("callback_loop", (cb, 0u64, time.as_nanos() as u64))
                    .timeout(time + Duration::from_secs(60))
                    .decode()
                    .await?;
                Sample {
                    calls: lat_ns.len() as u64,
                    elapsed: Duration::from_nanos(elapsed_ns),
                    lat_ns,
                    ..Sample::default()
                }
            }
            Workload::InFlight => {
                let f = conn.root().attr("echo");
                let issue = |t0: Instant| {
                    let call = f.call((1,));
                    async move { call.await.map(|_| t0) }
                };
                crate::stats::in_flight(spec.depth, time, issue).await?
            }
            Workload::Bytes => {
                let original = crate::random_bytes(spec.bytes);
                // The reply becomes the next call's argument: no copy on this side.
                let mut payload = Value::Bytes(original.clone());
                let root = conn.root();
                let s = timed!(time, {
                    payload = root.call_method("echo", vec![payload]).await?;
                });
                if payload != Value::Bytes(original) {
                    return Err("the echoed bytes differ".into());
                }
                s
            }
            // The same member, the same message: through the generated proxy or by name.
            Workload::Typed if self.dynamic => {
                let root = conn.root();
                timed!(time, {
                    root.call_method("echo_int", (1,)).await?;
                })
            }
            Workload::Typed => {
                let bench = &self.typed;
                timed!(time, {
                    let x: i64 = bench.echo_int(1).await?;
                    std::hint::black_box(x);
                })
            }
            Workload::Stream => {
                let stream: RemoteStream<u64> = self.typed.count(0).await?;
                crate::stats::drain(stream.with_window(spec.window), time).await?
            }
            Workload::Memory => return Ok(None),
        }))
    }
}

/// The holder side of the memory workload, in its own process: prints one JSON line.
pub(crate) async fn memory_client(port: u16, n: u64, batch: u64) -> Res<()> {
    let conn = netref::connect(("127.0.0.1", port)).await?;
    let root = conn.root();
    // Warm up the paths used below, so their one-time allocations are not counted.
    root.call_method("prepare", (batch,)).await?;
    let warm = root.call_method("lend", (0u64, batch)).await?;
    drop(warm);
    let owner_before: u64 = root.call_method("prepare", (n,)).decode().await?;
    let holder_before = rss_bytes();
    let mut held: Vec<Proxy> = Vec::with_capacity(n as usize);
    let mut start = 0;
    while start < n {
        let count = batch.min(n - start);
        let Value::List(items) = root.call_method("lend", (start, count)).await? else {
            return Err("lend returned no list".into());
        };
        for item in items {
            held.push(item.into_proxy()?);
        }
        start += count;
    }
    let holder_after = rss_bytes();
    let owner_after: u64 = root.call_method("rss", ()).decode().await?;
    let last: u64 = held
        .last()
        .ok_or("nothing lent")?
        .call_method("id", ())
        .decode()
        .await?;
    if last != n - 1 || held.len() as u64 != n {
        return Err("the lent objects are not the expected ones".into());
    }
    let out = serde_json::json!({
        "n": n,
        "owner_before": owner_before,
        "owner_after": owner_after,
        "holder_before": holder_before,
        "holder_after": holder_after,
    });
    println!("{out}");
    drop(held);
    conn.close().await;
    Ok(())
}
