//! Samples of one timed run and their summaries.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::procs::BoxError;

/// One timed run of one workload on one system.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    /// Calls completed in the timed part.
    pub(crate) calls: u64,
    /// Wall time of the timed part.
    pub(crate) elapsed: Duration,
    /// Latency of each call, in nanoseconds.
    pub(crate) lat_ns: Vec<u64>,
    /// Wall time of the whole run as the harness saw it (warm-up included): the interval
    /// over which the CPU times below are read.
    pub(crate) drive: Duration,
    /// Time the server's process spent on a CPU during `drive`.
    pub(crate) server_cpu: Option<Duration>,
    /// Time the client spent on a CPU during `drive`: its process, or its thread for a Rust
    /// client on a thread of its own; none for clients on the harness's runtime.
    pub(crate) client_cpu: Option<Duration>,
}

/// Keeps `depth` calls in flight for `time`, starting a new one as each completes:
/// `issue(t0)` makes a call that resolves to the `t0` it was given.
pub(crate) async fn in_flight<F, Fut, E>(
    depth: usize,
    time: Duration,
    issue: F,
) -> Result<Sample, E>
where
    F: Fn(Instant) -> Fut,
    Fut: Future<Output = Result<Instant, E>>,
{
    let start = Instant::now();
    let end = start + time;
    let mut set = FuturesUnordered::new();
    for _ in 0..depth {
        set.push(issue(Instant::now()));
    }
    let mut lat_ns = Vec::new();
    while let Some(r) = set.next().await {
        let t0 = r?;
        let now = Instant::now();
        lat_ns.push((now - t0).as_nanos() as u64);
        if now < end {
            set.push(issue(now));
        }
    }
    Ok(Sample {
        calls: lat_ns.len() as u64,
        elapsed: start.elapsed(),
        lat_ns,
        ..Sample::default()
    })
}

/// Reads the items `0, 1, 2, …` of `items` for `time` and counts them (checking each): the
/// rate is items per second. No latency per item: reading the clock for each would cost more
/// than a raw frame; the clock is read once per 64 items.
pub(crate) async fn drain<S, E>(mut items: S, time: Duration) -> Result<Sample, BoxError>
where
    S: futures_util::Stream<Item = Result<u64, E>> + Unpin,
    E: Into<BoxError>,
{
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        let item = items
            .next()
            .await
            .ok_or("the stream ended early")?
            .map_err(Into::into)?;
        if item != n {
            return Err(format!("item {n} arrived as {item}").into());
        }
        n += 1;
        if n % 64 == 0 && start.elapsed() >= time {
            break;
        }
    }
    Ok(Sample {
        calls: n,
        elapsed: start.elapsed(),
        ..Sample::default()
    })
}

impl Sample {
    /// Adds the calls and time of another slice of the same round.
    pub(crate) fn absorb(&mut self, other: Sample) {
        self.calls += other.calls;
        self.elapsed += other.elapsed;
        self.lat_ns.extend(other.lat_ns);
        self.drive += other.drive;
        let add = |a: Option<Duration>, b: Option<Duration>| Some(a? + b?);
        self.server_cpu = add(self.server_cpu, other.server_cpu);
        self.client_cpu = add(self.client_cpu, other.client_cpu);
    }

    /// The fraction of the run the server's process was on a CPU (1.0: one core, all along).
    pub(crate) fn server_busy(&self) -> Option<f64> {
        self.busy(self.server_cpu)
    }

    /// The fraction of the run the client was on a CPU.
    pub(crate) fn client_busy(&self) -> Option<f64> {
        self.busy(self.client_cpu)
    }

    fn busy(&self, cpu: Option<Duration>) -> Option<f64> {
        let drive = self.drive.as_secs_f64();
        (drive > 0.0).then(|| cpu.map(|c| c.as_secs_f64() / drive))?
    }

    pub(crate) fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }
}

/// The summary of a workload's rounds on one system.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    /// The median over rounds of calls per second.
    pub(crate) rate: f64,
    /// Median latency over every call of every round, in microseconds.
    pub(crate) p50_us: f64,
    /// 99th-percentile latency over every call of every round, in microseconds.
    pub(crate) p99_us: f64,
}

pub(crate) fn summarize(rounds: &[Sample]) -> Option<Summary> {
    if rounds.is_empty() || rounds.iter().any(|s| s.calls == 0) {
        return None;
    }
    let mut rates: Vec<f64> = rounds.iter().map(Sample::rate).collect();
    let rate = median_f64(&mut rates);
    let mut lat: Vec<u64> = rounds
        .iter()
        .flat_map(|s| s.lat_ns.iter().copied())
        .collect();
    lat.sort_unstable();
    Some(Summary {
        rate,
        p50_us: percentile(&lat, 0.50) / 1e3,
        p99_us: percentile(&lat, 0.99) / 1e3,
    })
}

fn median_f64(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile of sorted values (`q` in 0..=1).
fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}
