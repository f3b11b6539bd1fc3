//! A small running service with a live debug endpoint: attach a REPL, read its statistics,
//! change its log level, tap its logs. Walked through in `docs/repl.md`.
//!
//! ```text
//! cargo run --example live_debug                 # debug endpoint on 127.0.0.1:18862
//! cargo run -- repl 127.0.0.1:18862              # in another terminal
//! netref> root.stats
//! netref> root.config.log_level = "debug"
//! netref> root.logs.subscribe(print, "info")
//! ```
//!
//! Options: `--port PORT` (0 picks a free one), `--stdio` (lend the debug root on stdin and
//! stdout instead: `cargo run -- repl "cargo run -q --example live_debug -- --stdio"`).
//!
//! The service: a producer makes a job every 100 ms; three workers take jobs from a queue,
//! "process" them (sleep `config.job_ms`), and count what they did; one job in ten fails.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netref::debug::LogTap;
use netref::{expose, Obj};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// Workers processing jobs.
const WORKERS: usize = 3;

/// One unit of work.
#[derive(Debug)]
struct Job {
    id: u64,
}

/// What the service counts.
struct Counters {
    started: Instant,
    submitted: AtomicU64,
    processed: AtomicU64,
    failed: AtomicU64,
    per_worker: Vec<AtomicU64>,
    queued: AtomicU64,
}

/// A snapshot of the statistics, sent by value.
#[derive(Debug, serde::Serialize)]
struct Stats {
    uptime_secs: f64,
    submitted: u64,
    processed: u64,
    failed: u64,
    queued: u64,
    per_worker: Vec<u64>,
}

/// Changes the log level of the service's own output (stderr).
type LevelControl = Box<dyn Fn(LevelFilter) -> Result<(), String> + Send + Sync>;

/// Settings a debugger may change while the service runs.
struct Settings {
    level: Mutex<LevelFilter>,
    set_level: LevelControl,
    job_ms: AtomicU64,
    paused: AtomicBool,
}

/// The service's settings.
#[expose]
impl Settings {
    /// The level of the log written to stderr: error, warn, info, debug, trace or off.
    #[exposed(property)]
    fn log_level(&self) -> String {
        self.level.lock().to_string().to_lowercase()
    }

    /// Changes the log level at once.
    #[exposed(setter)]
    fn set_log_level(&self, level: String) -> Result<(), String> {
        let filter: LevelFilter = level.parse().map_err(|_| {
            format!("unknown level {level:?}: use error, warn, info, debug, trace or off")
        })?;
        (self.set_level)(filter)?;
        *self.level.lock() = filter;
        tracing::warn!(level = %filter, "log level changed");
        Ok(())
    }

    /// How long one job takes, in milliseconds.
    #[exposed(property)]
    fn job_ms(&self) -> u64 {
        self.job_ms.load(Ordering::Relaxed)
    }

    /// Sets how long one job takes (at most 10 s).
    #[exposed(setter)]
    fn set_job_ms(&self, ms: u64) -> Result<(), String> {
        if ms > 10_000 {
            return Err("at most 10000 ms".into());
        }
        self.job_ms.store(ms, Ordering::Relaxed);
        Ok(())
    }

    /// True while the producer makes no new jobs.
    #[exposed(property)]
    fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Pauses or resumes the producer.
    #[exposed(setter)]
    fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }
}

/// What a debugger attaches to.
pub(crate) struct DebugRoot {
    counters: Arc<Counters>,
    settings: Obj<Settings>,
    logs: Obj<LogTap>,
    queue: mpsc::Sender<Job>,
}

/// The job service, live.
#[expose]
impl DebugRoot {
    /// A snapshot of the statistics.
    #[exposed(property)]
    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            uptime_secs: c.started.elapsed().as_secs_f64(),
            submitted: c.submitted.load(Ordering::Relaxed),
            processed: c.processed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
            per_worker: c
                .per_worker
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .collect(),
        }
    }

    /// The settings: log level, job duration, pause.
    #[exposed(property)]
    fn config(&self) -> Obj<Settings> {
        self.settings.clone()
    }

    /// The log tap: `subscribe(callback, level)`.
    #[exposed(property)]
    fn logs(&self) -> Obj<LogTap> {
        self.logs.clone()
    }

    /// Queues `n` extra jobs (at most 1000); returns how many were queued.
    #[exposed]
    async fn submit(&self, n: u32) -> u32 {
        let mut queued = 0;
        for _ in 0..n.min(1000) {
            if !enqueue(&self.counters, &self.queue) {
                break;
            }
            queued += 1;
        }
        queued
    }
}

/// Queues one job; false when the queue is full.
fn enqueue(counters: &Counters, queue: &mpsc::Sender<Job>) -> bool {
    let id = counters.submitted.fetch_add(1, Ordering::Relaxed) + 1;
    match queue.try_send(Job { id }) {
        Ok(()) => {
            counters.queued.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(job = id, "queued");
            true
        }
        Err(_) => {
            counters.submitted.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(job = id, "queue full, job dropped");
            false
        }
    }
}

/// Installs the service's logging: stderr at a level the debug root can change, plus the
/// log tap (which sees every level its subscribers ask for). Returns the tap and the
/// level control.
pub(crate) fn init_logging(initial: LevelFilter) -> (LogTap, LevelControl) {
    let tap = LogTap::new();
    let (filter, handle) = tracing_subscriber::reload::Layer::new(initial);
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    // `try_init`: a test process may already have a subscriber.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(tap.layer())
        .try_init();
    let control: LevelControl =
        Box::new(move |level| handle.reload(level).map_err(|e| e.to_string()));
    (tap, control)
}

/// The running service.
pub(crate) struct Service {
    pub(crate) root: Obj<DebugRoot>,
}

/// Starts the producer and the workers; returns the debug root.
pub(crate) fn start(tap: LogTap, set_level: LevelControl, level: LevelFilter) -> Service {
    let counters = Arc::new(Counters {
        started: Instant::now(),
        submitted: AtomicU64::new(0),
        processed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        per_worker: (0..WORKERS).map(|_| AtomicU64::new(0)).collect(),
        queued: AtomicU64::new(0),
    });
    let settings = Obj::new(Settings {
        level: Mutex::new(level),
        set_level,
        job_ms: AtomicU64::new(30),
        paused: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::channel::<Job>(256);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for worker in 0..WORKERS {
        let (rx, counters, settings) = (rx.clone(), counters.clone(), settings.clone());
        tokio::spawn(async move {
            loop {
                let job = rx.lock().await.recv().await;
                let Some(job) = job else { return };
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(worker, job = job.id, "started");
                let ms = settings.job_ms.load(Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                counters.per_worker[worker].fetch_add(1, Ordering::Relaxed);
                if job.id % 10 == 7 {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(worker, job = job.id, "job failed: the input was malformed");
                } else {
                    counters.processed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(worker, job = job.id, ms, "job done");
                }
            }
        });
    }
    let producer = (tx.clone(), counters.clone(), settings.clone());
    tokio::spawn(async move {
        let (tx, counters, settings) = producer;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if !settings.paused.load(Ordering::Relaxed) && !enqueue(&counters, &tx) {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    Service {
        root: Obj::new(DebugRoot {
            counters,
            settings,
            logs: Obj::new(tap),
            queue: tx,
        }),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut port: u16 = 18862;
    let mut stdio = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().ok_or("--port needs a number")?.parse()?,
            "--stdio" => stdio = true,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let level = LevelFilter::INFO;
    let (tap, control) = init_logging(level);
    let service = start(tap, control, level);
    if stdio {
        // stdout carries the protocol: the log stays on stderr.
        let conn = netref::debug::serve_stdio(service.root.clone()).await?;
        conn.closed().await;
        return Ok(());
    }
    // The one line that lends the debug root (loopback only).
    let debug = netref::debug::serve(service.root.clone(), port).await?;
    eprintln!(
        "live_debug: debug endpoint on {}; attach with `cargo run -- repl {}`",
        debug.local_addr(),
        debug.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
