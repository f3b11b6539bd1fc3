//! Soak: a long run of mixed calls, with callbacks and lend/drop cycles, against an in-process
//! server over TCP loopback. Prints resident memory and the object tables as it goes and at
//! the end, and fails (exit status 1) if anything is left behind.
//!
//! ```sh
//! cargo run --release --example soak                    # one million operations
//! cargo run --release --example soak -- --ops 200000 --clients 4 --workers 16
//! ```
//!
//! Each operation is one of (in turn): a plain call (`add`, 4 in 10), a call with a
//! structured value (`echo`), a callback round (the server calls a client callback twice), a
//! server-to-client lend/drop cycle (`lend`, a call on the lent object, drop), a
//! client-to-server lend (`echo` of a client object, which comes back as itself), a call the
//! server makes on a client-lent object (`use_token`), and a pipelined chain (`lend(..).name()`
//! in one round trip). Not part of CI: see `docs/reliability.md` for the figures of a run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netref::{expose, Connection, Obj, Proxy, Server, Value};

/// Counts live tokens (on either side).
#[derive(Default)]
struct Counts {
    made: AtomicU64,
    dropped: AtomicU64,
}

/// A small object lent by reference.
struct Token {
    name: String,
    counts: Arc<Counts>,
}

impl Token {
    fn new(name: String, counts: &Arc<Counts>) -> Token {
        counts.made.fetch_add(1, Ordering::Relaxed);
        Token {
            name,
            counts: counts.clone(),
        }
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// A token.
#[expose]
impl Token {
    /// Its name.
    #[exposed]
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// The soak service.
struct Soak {
    counts: Arc<Counts>,
}

/// What the soak clients call.
#[expose]
impl Soak {
    /// Adds two numbers.
    #[exposed]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Returns its argument.
    #[exposed]
    fn echo(&self, x: Value) -> Value {
        x
    }

    /// Lends a fresh token.
    #[exposed]
    fn lend(&self, name: String) -> Obj<Token> {
        Obj::new(Token::new(name, &self.counts))
    }

    /// Calls `cb(i)` for i in 0..n and sums the results.
    #[exposed]
    async fn call_back(&self, cb: Proxy, n: u32) -> netref::Result<i64> {
        let mut sum = 0;
        for i in 0..n {
            sum += cb.call((i64::from(i),)).decode::<i64>().await?;
        }
        Ok(sum)
    }

    /// Calls `name()` on a client-lent token.
    #[exposed]
    async fn use_token(&self, token: Proxy) -> netref::Result<String> {
        token.call_method("name", ()).decode().await
    }
}

struct Options {
    ops: u64,
    clients: usize,
    workers: usize,
}

fn options() -> Options {
    let mut o = Options {
        ops: 1_000_000,
        clients: 4,
        workers: 16,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--ops", Some(v)) => o.ops = v,
            ("--clients", Some(v)) => o.clients = v.max(1) as usize,
            ("--workers", Some(v)) => o.workers = v.max(1) as usize,
            _ => {
                eprintln!("usage: soak [--ops N] [--clients N] [--workers N]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    o
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Exports and imports summed over connections.
/// The server's side of every open connection.
fn server_side(server: &netref::ServerHandle) -> Vec<Connection> {
    server.connections().into_iter().map(|(_, c)| c).collect()
}

fn tables(conns: &[Connection]) -> (u64, u64) {
    conns.iter().fold((0, 0), |(e, i), c| {
        let s = c.stats();
        (e + s.live_exports, i + s.live_imports)
    })
}

/// One operation; `i` picks its kind.
async fn one(root: &Proxy, i: u64, client_counts: &Arc<Counts>) -> netref::Result<()> {
    match i % 10 {
        0..=3 => {
            let n = i as i64;
            let sum: i64 = root.call_method("add", (n, 1)).decode().await?;
            assert_eq!(sum, n + 1);
        }
        4 => {
            let v = (i, format!("item {i}"), vec![1.5, 2.5], Some(true));
            let back: (u64, String, Vec<f64>, Option<bool>) =
                root.call_method("echo", (v.clone(),)).decode().await?;
            assert_eq!(back, v);
        }
        5 => {
            let cb = netref::callback(|x: i64| x * 2);
            let sum: i64 = root.call_method("call_back", (cb, 2u32)).decode().await?;
            assert_eq!(sum, 2);
        }
        6 => {
            let token = root.call_method("lend", (format!("t{i}"),)).await?;
            let name: String = token
                .as_proxy()
                .expect("a token")
                .call_method("name", ())
                .decode()
                .await?;
            assert_eq!(name, format!("t{i}"));
        }
        7 => {
            let mine = Obj::new(Token::new(format!("c{i}"), client_counts));
            let back: Obj<Token> = root.call_method("echo", (mine.clone(),)).decode().await?;
            assert!(
                Obj::ptr_eq(&back, &mine),
                "a lent object comes back as itself"
            );
        }
        8 => {
            let mine = Obj::new(Token::new(format!("u{i}"), client_counts));
            let name: String = root.call_method("use_token", (mine,)).decode().await?;
            assert_eq!(name, format!("u{i}"));
        }
        _ => {
            let answer = root
                .call_method("lend", (format!("p{i}"),))
                .pipeline()
                .await?;
            let name: String = answer.call_method("name", ()).decode().await?;
            assert_eq!(name, format!("p{i}"));
        }
    }
    Ok(())
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let ok = rt.block_on(run(o));
    std::process::exit(if ok { 0 } else { 1 });
}

async fn run(o: Options) -> bool {
    let server_counts = Arc::new(Counts::default());
    let client_counts = Arc::new(Counts::default());
    let sc = server_counts.clone();
    let server = Server::with_factory(move |_| Obj::new(Soak { counts: sc.clone() }).erase())
        .bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let mut clients = Vec::new();
    for _ in 0..o.clients {
        clients.push(
            netref::connect(server.local_addr())
                .await
                .expect("connect to the soak server"),
        );
    }
    println!(
        "soak: {} operations, {} clients x {} workers, server on {}; RSS at start {:.1} MiB",
        o.ops,
        o.clients,
        o.workers,
        server.local_addr(),
        rss_mib()
    );
    println!("| ops done | elapsed | ops/s | RSS MiB | server exports/imports | client exports/imports | tasks |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");

    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for c in &clients {
        for _ in 0..o.workers {
            let root = c.root();
            let (next, done, errors) = (next.clone(), done.clone(), errors.clone());
            let counts = client_counts.clone();
            let total = o.ops;
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    if let Err(e) = one(&root, i, &counts).await {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("soak: operation {i}: {e}");
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    let step = (o.ops / 10).max(1);
    let mut shown = 0;
    let mut peak_rss: f64 = 0.0;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let d = done.load(Ordering::Relaxed);
        peak_rss = peak_rss.max(rss_mib());
        if d >= shown + step || d >= o.ops {
            shown = d - d % step;
            let elapsed = started.elapsed().as_secs_f64();
            let (se, si) = tables(&server_side(&server));
            let (ce, ci) = tables(&clients);
            println!(
                "| {d} | {elapsed:.1} s | {:.0} | {:.1} | {se} / {si} | {ce} / {ci} | {} |",
                d as f64 / elapsed,
                rss_mib(),
                netref::live_tasks()
            );
        }
        if d >= o.ops {
            break;
        }
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();

    // Releases are one-way: give them a moment to land, then read the tables.
    let server_conns = server_side(&server);
    let mut drained = false;
    for _ in 0..500 {
        let (se, si) = tables(&server_conns);
        let (ce, ci) = tables(&clients);
        if se + si + ce + ci == 0 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (se, si) = tables(&server_conns);
    let (ce, ci) = tables(&clients);
    let received: u64 = server_conns.iter().map(|c| c.stats().calls_received).sum();
    let callbacks: u64 = clients.iter().map(|c| c.stats().calls_received).sum();
    let rss_end = rss_mib();
    println!(
        "soak: {} operations in {:.1?} ({:.0}/s), {} errors; the server handled {received} \
         calls and made {callbacks} calls to client objects",
        o.ops,
        elapsed,
        o.ops as f64 / elapsed.as_secs_f64(),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "soak: tables at the end: server exports {se}, imports {si}; client exports {ce}, \
         imports {ci}; netref tasks {}",
        netref::live_tasks()
    );
    let made = |c: &Counts| c.made.load(Ordering::Relaxed);
    let dropped = |c: &Counts| c.dropped.load(Ordering::Relaxed);
    println!(
        "soak: tokens lent by the server {} (dropped {}), by the clients {} (dropped {}); \
         RSS peak {peak_rss:.1} MiB, at the end {rss_end:.1} MiB",
        made(&server_counts),
        dropped(&server_counts),
        made(&client_counts),
        dropped(&client_counts),
    );
    for c in &clients {
        c.close().await;
    }
    server.shutdown().await;
    drop(server_conns);
    for _ in 0..500 {
        if netref::live_tasks() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "soak: after closing: netref tasks {}, RSS {:.1} MiB",
        netref::live_tasks(),
        rss_mib()
    );
    let ok = drained
        && errors.load(Ordering::Relaxed) == 0
        && made(&server_counts) == dropped(&server_counts)
        && made(&client_counts) == dropped(&client_counts)
        && netref::live_tasks() == 0;
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    ok
}
