//! The figures of `docs/distributed.md`, measured against a real nats-server on loopback:
//!
//! 1. how long a killed worker process stays in the registry (bounds 2 s and 10 s);
//! 2. how long a resilient connection takes to come back after its server restarts;
//! 3. fanout latency to 10 workers;
//! 4. value calls through a queue group of three workers against direct netref calls,
//!    sequential and 32 in flight, in interleaved rounds.
//!
//! ```sh
//! cargo bench --features nats --bench distributed            # about a minute
//! cargo bench --features nats --bench distributed -- --quick  # a smoke run
//! ```
//!
//! The binary doubles as the worker process of figure 1 (chosen by an environment
//! variable), so a death is a real process death.

#[path = "../tests/nats_support/mod.rs"]
mod nats_support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use nats_support::{NatsServer, Reaped};
use netref::nats::{self, Nats, NatsOptions};
use netref::resilient::ResilientOptions;
use netref::{expose, Obj, Server};

/// In a worker process: `URL BUCKET`.
const AS_WORKER: &str = "NETREF_BENCH_DISTRIBUTED_WORKER";

#[derive(Default)]
struct Counter {
    calls: AtomicU64,
}

#[expose]
impl Counter {
    /// Adds one; returns `n + 1`.
    #[exposed]
    fn hit(&self, n: i64) -> i64 {
        self.calls.fetch_add(1, Ordering::Relaxed);
        n + 1
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if let Ok(spec) = std::env::var(AS_WORKER) {
        let (url, bucket) = spec.split_once(' ').expect("URL BUCKET");
        runtime.block_on(worker(url, bucket));
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    runtime.block_on(measure(quick));
}

/// A worker process: registers and serves until killed.
async fn worker(url: &str, bucket: &str) {
    let nats = Nats::connect_with(url, NatsOptions::default().with_bucket(bucket))
        .await
        .expect("nats");
    let root = Obj::new(Counter::default()).erase();
    let server = Server::with_root(root.clone())
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let registration = nats::register(&nats, "bench.worker", &server)
        .await
        .expect("register");
    let _worker = registration.serve(root).await.expect("serve");
    std::future::pending::<()>().await;
}

async fn measure(quick: bool) {
    let server = NatsServer::start();
    let url = server.url();
    println!("nats-server at {url}; quick: {quick}\n");

    let bounds: &[(u64, usize)] = if quick { &[(2, 1)] } else { &[(2, 5), (10, 2)] };
    for &(secs, samples) in bounds {
        leave_registry(&url, Duration::from_secs(secs), samples).await;
    }
    reconnect(if quick { 3 } else { 20 }).await;
    fanout_latency(&url, 10, if quick { 20 } else { 300 }).await;
    throughput(&url, if quick { 1 } else { 5 }).await;
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "n={} min {:.1?} median {:.1?} p90 {:.1?} max {:.1?}",
        v.len(),
        v[0],
        at(0.5),
        at(0.9),
        v[v.len() - 1]
    )
}

/// Figure 1: from `kill -9` of a registered worker process to its entry being gone.
async fn leave_registry(url: &str, bound: Duration, samples: usize) {
    let bucket = format!("bench_{}ms", bound.as_millis());
    let options = NatsOptions::default().with_ttl(bound).with_bucket(&bucket);
    let nats = Nats::connect_with(url, options).await.expect("nats");
    assert_eq!(nats::registry_bound(&nats).await.expect("registry"), bound);
    let mut gone = Vec::new();
    for sample in 0..samples {
        let mut child = Reaped(
            Command::new(std::env::current_exe().expect("this binary"))
                .env(AS_WORKER, format!("{url} {bucket}"))
                .stdin(Stdio::null())
                .spawn()
                .expect("a worker"),
        );
        let id = loop {
            let found = nats::discover(&nats, "bench.worker")
                .await
                .expect("discover");
            if let Some(i) = found.first() {
                break i.id.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // Die at a different point of the heartbeat cycle each time.
        let phase = bound / 3 * (sample as u32 % 3) / 3 + Duration::from_millis(100);
        tokio::time::sleep(phase).await;
        child.kill();
        let killed = Instant::now();
        while nats::discover(&nats, "bench.worker")
            .await
            .expect("discover")
            .iter()
            .any(|i| i.id == id)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        gone.push(killed.elapsed());
    }
    println!(
        "death -> gone from the registry, bound {bound:?}: {}",
        summary(gone)
    );
}

/// Figure 2: a resilient connection whose server restarts on the same port.
async fn reconnect(samples: usize) {
    let root = Obj::new(Counter::default()).erase();
    let first = Server::with_root(root.clone())
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = first.local_addr();
    let link = netref::connect_resilient_with(addr, ResilientOptions::default())
        .await
        .expect("connect");
    let broken_at = Arc::new(parking_lot::Mutex::new(None::<Instant>));
    let seen = broken_at.clone();
    link.on_broken(move |_| *seen.lock() = Some(Instant::now()));
    let mut server = first;
    let (mut to_notice, mut to_up) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        let root_before = link.root().await.expect("root");
        root_before.call_method("hit", (1,)).await.expect("call");
        let lost = Instant::now();
        server.shutdown().await;
        drop(server);
        server = Server::with_root(root.clone())
            .bind(addr)
            .await
            .expect("rebind");
        let back = loop {
            if let Ok(r) = link.root().await {
                if r.call_method("hit", (1,)).await.is_ok() {
                    break lost.elapsed();
                }
            }
        };
        to_up.push(back);
        if let Some(at) = broken_at.lock().take() {
            to_notice.push(at - lost);
        }
    }
    println!(
        "server restart -> on_broken (includes the restart's shutdown): {}",
        summary(to_notice)
    );
    println!(
        "server restart -> a call on the new root works (default backoff, first re-dial \
         after 0 ms, then 25-50 ms, 50-100 ms …): {}",
        summary(to_up)
    );
}

/// Starts `n` value workers, each on its own NATS connection, serving `service`.
async fn workers(url: &str, service: &str, n: usize) -> Vec<(Nats, nats::Worker)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let nats = Nats::connect(url).await.expect("nats");
        let w = nats::serve(&nats, service, Obj::new(Counter::default()).erase())
            .await
            .expect("serve");
        out.push((nats, w));
    }
    out
}

/// Figure 3: `fanout_n` to 10 workers until all 10 answered.
async fn fanout_latency(url: &str, n: usize, samples: usize) {
    let _workers = workers(url, "bench.fan", n).await;
    let nats = Nats::connect(url).await.expect("nats");
    let mut lat = Vec::new();
    for i in 0..samples + 10 {
        let start = Instant::now();
        let replies = nats::fanout_n(&nats, "bench.fan", "hit", (1,), Duration::from_secs(2), n)
            .await
            .expect("fanout");
        assert_eq!(replies.len(), n);
        if i >= 10 {
            lat.push(start.elapsed());
        }
    }
    println!("fanout to {n} workers, all replies in: {}", summary(lat));
}

/// Figure 4: calls per second, queue group of three against one direct connection.
async fn throughput(url: &str, rounds: usize) {
    let _workers = workers(url, "bench.pool", 3).await;
    let nats = Nats::connect(url).await.expect("nats");
    let server = Server::with_root(Obj::new(Counter::default()).erase())
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let conn = netref::connect(server.local_addr()).await.expect("connect");
    let root = conn.root();
    const SEQ: usize = 2000;
    const PAR: usize = 10_000;
    const IN_FLIGHT: usize = 32;
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("queue group, sequential", vec![]),
        ("direct, sequential", vec![]),
        ("queue group, 32 in flight", vec![]),
        ("direct, 32 in flight", vec![]),
    ];
    for _ in 0..rounds {
        let start = Instant::now();
        for i in 0..SEQ as i64 {
            nats::request(&nats, "bench.pool", "hit", (i,))
                .await
                .expect("request");
        }
        rows[0].1.push(SEQ as f64 / start.elapsed().as_secs_f64());
        let start = Instant::now();
        for i in 0..SEQ as i64 {
            root.call_method("hit", (i,)).await.expect("call");
        }
        rows[1].1.push(SEQ as f64 / start.elapsed().as_secs_f64());
        let start = Instant::now();
        let mut pending = FuturesUnordered::new();
        for i in 0..PAR as i64 {
            pending.push(nats::request(&nats, "bench.pool", "hit", (i,)));
            if pending.len() >= IN_FLIGHT {
                pending.next().await.expect("a call").expect("request");
            }
        }
        while let Some(r) = pending.next().await {
            r.expect("request");
        }
        rows[2].1.push(PAR as f64 / start.elapsed().as_secs_f64());
        let start = Instant::now();
        let mut pending = FuturesUnordered::new();
        for i in 0..PAR as i64 {
            pending.push(root.call_method("hit", (i,)));
            if pending.len() >= IN_FLIGHT {
                pending.next().await.expect("a call").expect("call");
            }
        }
        while let Some(r) = pending.next().await {
            r.expect("call");
        }
        rows[3].1.push(PAR as f64 / start.elapsed().as_secs_f64());
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\ncalls per second, median of {rounds} interleaved rounds:");
    let direct_seq = median(&rows[1].1);
    let direct_par = median(&rows[3].1);
    for (i, (name, v)) in rows.iter().enumerate() {
        let base = if i < 2 { direct_seq } else { direct_par };
        println!(
            "  {name:<28} {:>9.0}/s  ({:.2}x direct)",
            median(v),
            median(v) / base
        );
    }
}
