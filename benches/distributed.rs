//! The figures of `docs/distributed.md`, measured against a real nats-server on loopback:
//!
//! 1. how long a killed worker process stays in the registry (bounds 2 s and 10 s);
//! 2. how long a resilient connection takes to come back after its server restarts;
//! 3. fanout latency to 10 workers;
//! 4. value calls through a queue group of three workers against direct netref calls,
//!    sequential and 32 in flight, in 21 rounds of interleaved blocks, each round printed
//!    with its own ratios (queue group / direct within the round) and their median.
//!
//! ```sh
//! cargo bench --features nats --bench distributed            # about a minute
//! cargo bench --features nats --bench distributed -- --quick  # a smoke run, ~15 s
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
    throughput(&url, if quick { 3 } else { 21 }).await;
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

/// Figure 4: calls per second, queue group of three against one direct connection, in
/// interleaved rounds. A round is ten blocks; each block runs both ways back to back (which
/// goes first alternates), so both see the same moments of the machine: its speed swings
/// between modes within seconds, and only ratios taken within one round are comparable.
async fn throughput(url: &str, rounds: usize) {
    let _workers = workers(url, "bench.pool", 3).await;
    let nats = Nats::connect(url).await.expect("nats");
    let server = Server::with_root(Obj::new(Counter::default()).erase())
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let conn = netref::connect(server.local_addr()).await.expect("connect");
    let root = conn.root();
    const BLOCKS: usize = 10;
    /// Sequential calls per block and way.
    const SEQ: usize = 200;
    /// Calls per block and way with [`IN_FLIGHT`] at once.
    const PAR: usize = 1000;
    const IN_FLIGHT: usize = 32;
    let (nats, root) = (&nats, &root);
    let queue_seq = move || async move {
        let start = Instant::now();
        for i in 0..SEQ as i64 {
            nats::request(nats, "bench.pool", "hit", (i,))
                .await
                .expect("request");
        }
        start.elapsed()
    };
    let direct_seq = move || async move {
        let start = Instant::now();
        for i in 0..SEQ as i64 {
            root.call_method("hit", (i,)).await.expect("call");
        }
        start.elapsed()
    };
    let queue_par = move || async move {
        let start = Instant::now();
        let mut pending = FuturesUnordered::new();
        for i in 0..PAR as i64 {
            pending.push(nats::request(nats, "bench.pool", "hit", (i,)));
            if pending.len() >= IN_FLIGHT {
                pending.next().await.expect("a call").expect("request");
            }
        }
        while let Some(r) = pending.next().await {
            r.expect("request");
        }
        start.elapsed()
    };
    let direct_par = move || async move {
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
        start.elapsed()
    };
    // A warm-up block, not counted: connections, subscriptions and allocators settle.
    queue_seq().await;
    direct_seq().await;
    queue_par().await;
    direct_par().await;
    // Per round: [queue seq, direct seq, queue par, direct par] in calls per second.
    let mut table: Vec<[f64; 4]> = Vec::new();
    println!(
        "\ncalls per second, {rounds} rounds of {BLOCKS} interleaved blocks ({SEQ} sequential \
         calls, then {PAR} with {IN_FLIGHT} in flight, each way per block):"
    );
    println!(
        "  round  {:>12} {:>12} {:>7}   {:>12} {:>12} {:>7}",
        "queue seq", "direct seq", "ratio", "queue 32", "direct 32", "ratio"
    );
    for round in 0..rounds {
        let mut spent = [Duration::ZERO; 4];
        for block in 0..BLOCKS {
            if (round + block) % 2 == 0 {
                spent[0] += queue_seq().await;
                spent[1] += direct_seq().await;
                spent[2] += queue_par().await;
                spent[3] += direct_par().await;
            } else {
                spent[1] += direct_seq().await;
                spent[0] += queue_seq().await;
                spent[3] += direct_par().await;
                spent[2] += queue_par().await;
            }
        }
        let calls = [SEQ, SEQ, PAR, PAR];
        let r: [f64; 4] =
            std::array::from_fn(|i| (calls[i] * BLOCKS) as f64 / spent[i].as_secs_f64());
        println!(
            "  {:>5}  {:>10.0}/s {:>10.0}/s {:>6.3}x   {:>10.0}/s {:>10.0}/s {:>6.3}x",
            round + 1,
            r[0],
            r[1],
            r[0] / r[1],
            r[2],
            r[3],
            r[2] / r[3]
        );
        table.push(r);
    }
    let stats = |f: &dyn Fn(&[f64; 4]) -> f64| {
        let mut v: Vec<f64> = table.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2], v[v.len() - 1])
    };
    println!("\nqueue group / direct, per-round ratios (min / median / max):");
    let (lo, mid, hi) = stats(&|r| r[0] / r[1]);
    println!("  sequential:   {lo:.3}x / {mid:.3}x / {hi:.3}x");
    let (lo, mid, hi) = stats(&|r| r[2] / r[3]);
    println!("  32 in flight: {lo:.3}x / {mid:.3}x / {hi:.3}x");
    // The machine's quiet mode: rounds whose direct sequential rate is within 20 % of the
    // best round's. Under contention both ways wait mostly for the scheduler, and their
    // ratio says more about the contention than about either way.
    let best = table.iter().map(|r| r[1]).fold(0.0, f64::max);
    let quiet: Vec<[f64; 4]> = table
        .iter()
        .copied()
        .filter(|r| r[1] >= 0.8 * best)
        .collect();
    if !quiet.is_empty() {
        let median = |f: &dyn Fn(&[f64; 4]) -> f64| {
            let mut v: Vec<f64> = quiet.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "  in the {} quiet rounds (direct sequential >= 80 % of the best round): \
             sequential {:.3}x, 32 in flight {:.3}x; queue group {:.0}/s and {:.0}/s, \
             direct {:.0}/s and {:.0}/s",
            quiet.len(),
            median(&|r| r[0] / r[1]),
            median(&|r| r[2] / r[3]),
            median(&|r| r[0]),
            median(&|r| r[2]),
            median(&|r| r[1]),
            median(&|r| r[3]),
        );
    }
    println!("calls per second, median of the rounds:");
    for (i, name) in [
        "queue group, sequential",
        "direct, sequential",
        "queue group, 32 in flight",
        "direct, 32 in flight",
    ]
    .iter()
    .enumerate()
    {
        let (lo, mid, hi) = stats(&|r| r[i]);
        println!("  {name:<28} {mid:>9.0}/s  (range {lo:.0} to {hi:.0})");
    }
    conn.close().await;
}
