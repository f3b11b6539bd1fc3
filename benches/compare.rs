//! The comparison harness: netref against Python RPyC 6.0.2, tarpc and a raw tokio TCP
//! ping-pong, over TCP loopback, in one run.
//!
//! ```text
//! scripts/bench-prepare.sh                      # once: a virtualenv with rpyc==6.0.2
//! cargo bench --bench compare                   # full run; rewrites docs/benchmarks.md
//! cargo bench --bench compare -- --quick        # CI smoke run: every workload, tiny sizes
//! ```
//!
//! Every system runs its server in a separate process (this binary re-executed with a hidden
//! `--serve SYSTEM`, or `scripts/rpyc_server.py`); each Rust client runs in this process on a
//! thread of its own with a current-thread tokio runtime (as a
//! `#[tokio::main(flavor = "current_thread")]` program would), the RPyC client in
//! `scripts/rpyc_client.py` (one thread too). Two more pairs
//! speak RPyC's wire with one side netref: Python's client against `Server::rpyc`, and
//! `netref::rpyc`'s client against Python's server; they are reported against Python →
//! Python. Each workload runs round by round; in a round every system runs in short slices,
//! taken in turn, so slow drifts and bursts of load from other processes hit every system
//! alike. See `docs/benchmarks.md` for what each workload measures.
//!
//! Options (after `--`): `--quick`, `--rounds N`, `--slices N` (turns per round: each
//! system's warm-up and timed part are cut into N slices run in turn with the other systems',
//! default 8, 1 with `--quick`), `--client-runtime current|multi` (each Rust client on a
//! thread of its own in a current-thread runtime, the default, or all of them on the
//! harness's multi-thread runtime, called from its `block_on`), `--time-ms N`, `--warmup-ms N`,
//! `--out PATH` (where the markdown goes; the full run defaults to `docs/benchmarks.md`,
//! `--quick` writes none unless asked), `--no-rpyc`, `--only WORKLOADS` (comma-separated:
//! `echo_fresh`, `echo_cached`, `callback`, `attr`, `inflight`, `bytes`, `typed`, `stream`,
//! `memory`), `--window N` (items per request of netref's stream, default
//! `netref::stream::DEFAULT_WINDOW`; the byte budget stays at its default), `--busy-poll-us N`
//! (`Config::busy_poll` of every netref side, its servers then on a current-thread runtime;
//! default off).

use std::path::PathBuf;
use std::time::Duration;

/// Times `$body` (which may `.await` and use `?`) in a loop until `$time` has passed;
/// evaluates to a [`stats::Sample`] with one latency per iteration.
macro_rules! timed {
    ($time:expr, $body:block) => {{
        let time: ::std::time::Duration = $time;
        let mut lat_ns: Vec<u64> = Vec::new();
        let start = ::std::time::Instant::now();
        loop {
            let t0 = ::std::time::Instant::now();
            $body
            let t1 = ::std::time::Instant::now();
            lat_ns.push((t1 - t0).as_nanos() as u64);
            if t1 - start >= time {
                break;
            }
        }
        $crate::stats::Sample {
            calls: lat_ns.len() as u64,
            elapsed: start.elapsed(),
            lat_ns,
            ..::std::default::Default::default()
        }
    }};
}

#[path = "compare/netref_sys.rs"]
mod netref_sys;
#[path = "compare/procs.rs"]
mod procs;
#[path = "compare/raw_sys.rs"]
mod raw_sys;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/rpyc_sys.rs"]
mod rpyc_sys;
#[path = "compare/stats.rs"]
mod stats;
#[path = "compare/tarpc_sys.rs"]
mod tarpc_sys;

use procs::{self_command, venv_python, Machine, Res, ServerProc};
use stats::Sample;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Workload {
    EchoFresh,
    EchoCached,
    Callback,
    Attr,
    InFlight,
    Bytes,
    /// `echo_int(1)` through the generated typed proxy (issue 15).
    Typed,
    /// A server → client stream of small items (issue 15).
    Stream,
    Memory,
}

impl Workload {
    fn parse(name: &str) -> Res<Workload> {
        Ok(match name {
            "echo_fresh" => Workload::EchoFresh,
            "echo_cached" => Workload::EchoCached,
            "callback" => Workload::Callback,
            "attr" => Workload::Attr,
            "inflight" => Workload::InFlight,
            "bytes" => Workload::Bytes,
            "typed" => Workload::Typed,
            "stream" => Workload::Stream,
            other => return Err(format!("unknown workload {other:?}").into()),
        })
    }

    /// Every timed workload, in the order they run.
    const TIMED: [Workload; 8] = [
        Workload::EchoFresh,
        Workload::EchoCached,
        Workload::Callback,
        Workload::Attr,
        Workload::InFlight,
        Workload::Bytes,
        Workload::Typed,
        Workload::Stream,
    ];

    /// The workloads every system has a row for (the tables of issues 6 and 14).
    const CALLS: [Workload; 6] = [
        Workload::EchoFresh,
        Workload::EchoCached,
        Workload::Callback,
        Workload::Attr,
        Workload::InFlight,
        Workload::Bytes,
    ];
}

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum System {
    Netref,
    Rpyc,
    Tarpc,
    Raw,
    /// RPyC's wire with Python's client and a netref server (`Server::rpyc`).
    PyToNetref,
    /// RPyC's wire with netref's client (`netref::rpyc`) and Python's server.
    NetrefToPy,
    /// netref calling by name in the typed-call workload, against `Netref` calling through
    /// the generated proxy (the same member and message).
    NetrefDynamic,
}

impl System {
    const ALL: [System; 7] = [
        System::Netref,
        System::Rpyc,
        System::Tarpc,
        System::Raw,
        System::PyToNetref,
        System::NetrefToPy,
        System::NetrefDynamic,
    ];

    /// True for the systems that need Python's rpyc.
    pub(crate) fn needs_python(self) -> bool {
        matches!(self, System::Rpyc | System::PyToNetref | System::NetrefToPy)
    }

    /// True for the mixed pairs on RPyC's wire (reported against Python → Python).
    pub(crate) fn is_mixed(self) -> bool {
        matches!(self, System::PyToNetref | System::NetrefToPy)
    }

    /// True for the systems in the table of every workload (issues 6 and 14).
    pub(crate) fn in_calls_table(self) -> bool {
        !self.is_mixed() && self != System::NetrefDynamic
    }

    /// Whether the system has the workload at all (tarpc has no callbacks or references;
    /// the raw baseline has no objects; the typed call and the stream are measured for
    /// netref, tarpc and raw TCP only, and tarpc has no streams).
    pub(crate) fn has(self, w: Workload) -> bool {
        match w {
            Workload::Typed => matches!(
                self,
                System::Netref | System::NetrefDynamic | System::Tarpc | System::Raw
            ),
            Workload::Stream => matches!(self, System::Netref | System::Raw),
            _ if self == System::NetrefDynamic => false,
            Workload::Callback => self != System::Tarpc,
            Workload::Memory => matches!(self, System::Netref | System::Rpyc),
            _ => true,
        }
    }
}

/// Sizes and times of one run.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) quick: bool,
    pub(crate) rounds: usize,
    /// Turns per round: each system's time in a round is cut into this many slices, run in
    /// turn with the other systems' (so a burst of load hits them all alike).
    pub(crate) slices: u32,
    /// Where the Rust clients run: each on a thread of its own in a current-thread runtime
    /// (`--client-runtime current`, the default), or all on this harness's multi-thread
    /// runtime, called from its `block_on` (`multi`: every reply then crosses from a worker
    /// thread to the calling one).
    pub(crate) current_thread_clients: bool,
    /// `Config::busy_poll` of every netref side (`--busy-poll-us N`, default 0: off); with
    /// it, netref's server processes run on a current-thread runtime.
    pub(crate) busy_poll: Duration,
    pub(crate) warmup: Duration,
    pub(crate) time: Duration,
    /// Calls kept in flight by the in-flight workload.
    pub(crate) depth: usize,
    /// Payload of the bytes workload.
    pub(crate) bytes: usize,
    /// Items per request of netref's stream in the stream workload (`RemoteStream`'s
    /// default unless `--window N`).
    pub(crate) window: u32,
    /// Live references of the memory workload, and how many each call lends.
    pub(crate) mem_n: u64,
    pub(crate) mem_batch: u64,
    pub(crate) mem_rounds: usize,
    pub(crate) out: Option<PathBuf>,
    pub(crate) rpyc: bool,
    /// Only these workloads (`--only echo_fresh,memory`, say).
    pub(crate) only: Option<Vec<Workload>>,
    pub(crate) command: String,
}

impl Spec {
    pub(crate) fn runs(&self, w: Workload) -> bool {
        !matches!(&self.only, Some(only) if !only.contains(&w))
    }

    /// The spec of one slice of a round: its share of the warm-up and of the timed part.
    fn slice(&self) -> Spec {
        let mut slice = self.clone();
        slice.warmup = self.warmup / self.slices;
        slice.time = self.time / self.slices;
        slice
    }
}

impl Spec {
    fn parse(args: &[String]) -> Res<Spec> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut spec = if quick {
            Spec {
                quick,
                rounds: 1,
                slices: 1,
                current_thread_clients: true,
                busy_poll: Duration::ZERO,
                warmup: Duration::from_millis(20),
                time: Duration::from_millis(100),
                depth: 64,
                bytes: 64 * 1024,
                window: netref::stream::DEFAULT_WINDOW,
                mem_n: 5_000,
                mem_batch: 500,
                mem_rounds: 1,
                out: None,
                rpyc: true,
                only: None,
                command: String::new(),
            }
        } else {
            Spec {
                quick,
                rounds: 15,
                slices: 8,
                current_thread_clients: true,
                busy_poll: Duration::ZERO,
                warmup: Duration::from_millis(100),
                time: Duration::from_millis(400),
                depth: 64,
                bytes: 1024 * 1024,
                window: netref::stream::DEFAULT_WINDOW,
                mem_n: 100_000,
                mem_batch: 1_000,
                mem_rounds: 3,
                out: Some(procs::repo_root().join("docs/benchmarks.md")),
                rpyc: true,
                only: None,
                command: String::new(),
            }
        };
        let mut explicit_out = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match a.as_str() {
                "--bench" | "--quick" => {}
                "--rounds" => spec.rounds = value(a)?.parse()?,
                "--slices" => spec.slices = value(a)?.parse()?,
                "--client-runtime" => {
                    spec.current_thread_clients = match value(a)?.as_str() {
                        "current" => true,
                        "multi" => false,
                        other => return Err(format!("--client-runtime: {other:?}").into()),
                    }
                }
                "--busy-poll-us" => {
                    spec.busy_poll = Duration::from_micros(value(a)?.parse()?);
                }
                "--time-ms" => spec.time = Duration::from_millis(value(a)?.parse()?),
                "--warmup-ms" => spec.warmup = Duration::from_millis(value(a)?.parse()?),
                "--out" => {
                    spec.out = Some(PathBuf::from(value(a)?));
                    explicit_out = true;
                }
                "--no-rpyc" => spec.rpyc = false,
                "--window" => spec.window = value(a)?.parse()?,
                "--only" => {
                    let list = value(a)?;
                    let mut only = Vec::new();
                    for name in list.split(',') {
                        only.push(match name {
                            "memory" => Workload::Memory,
                            other => Workload::parse(other)?,
                        });
                    }
                    spec.only = Some(only);
                }
                other => return Err(format!("unknown option {other:?}").into()),
            }
        }
        if spec.only.is_some() && !explicit_out {
            spec.out = None; // a partial run does not replace the published table
        }
        if spec.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        if spec.slices == 0 {
            return Err("--slices must be at least 1".into());
        }
        let extra: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "--bench")
            .collect();
        spec.command = if extra.is_empty() {
            "cargo bench --bench compare".to_owned()
        } else {
            format!("cargo bench --bench compare -- {}", extra.join(" "))
        };
        if let Some(nice) = procs::niceness().filter(|n| *n != 0) {
            spec.command = format!("nice -n {nice} {}", spec.command);
        }
        Ok(spec)
    }
}

/// Owner- and holder-side RSS around lending `n` objects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryResult {
    pub(crate) n: u64,
    pub(crate) owner_before: u64,
    pub(crate) owner_after: u64,
    pub(crate) holder_before: u64,
    pub(crate) holder_after: u64,
}

impl MemoryResult {
    pub(crate) fn from_json(v: &serde_json::Value) -> Res<MemoryResult> {
        let num = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("no `{k}` in the memory client's reply: {v}"))
        };
        Ok(MemoryResult {
            n: num("n")?,
            owner_before: num("owner_before")?,
            owner_after: num("owner_after")?,
            holder_before: num("holder_before")?,
            holder_after: num("holder_after")?,
        })
    }

    pub(crate) fn owner_per_object(&self) -> f64 {
        (self.owner_after as f64 - self.owner_before as f64) / self.n as f64
    }

    pub(crate) fn holder_per_proxy(&self) -> f64 {
        (self.holder_after as f64 - self.holder_before as f64) / self.n as f64
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so every system echoes the same data.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A server process's first line, then serve until the harness closes our stdin.
pub(crate) async fn announce_and_wait(port: u16) {
    use std::io::Write;
    println!("LISTEN {port}");
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
}

/// One client per system, each connected to its server process.
enum Driver {
    Netref(netref_sys::Client),
    NetrefRpyc(netref_sys::RpycClient),
    Rpyc(Box<rpyc_sys::Client>),
    Tarpc(tarpc_sys::Client),
    Raw(raw_sys::Client),
    Thread(ThreadClient),
}

impl Driver {
    async fn run(&mut self, w: Workload, spec: &Spec) -> Res<Option<Sample>> {
        match self {
            Driver::Netref(c) => c.run(w, spec).await,
            Driver::NetrefRpyc(c) => c.run(w, spec).await,
            Driver::Rpyc(c) => c.run(w, spec).await,
            Driver::Tarpc(c) => c.run(w, spec).await,
            Driver::Raw(c) => c.run(w, spec).await,
            Driver::Thread(c) => c.run(w, spec).await,
        }
    }
}

/// Everything measured in one run.
pub(crate) struct Results {
    pub(crate) spec: Spec,
    pub(crate) machine: Machine,
    pub(crate) systems: Vec<System>,
    pub(crate) skipped: Vec<(System, String)>,
    pub(crate) timed: Vec<((Workload, System), Vec<Sample>)>,
    pub(crate) memory: Vec<(System, Vec<MemoryResult>)>,
    /// `/proc/loadavg` when the run ended.
    pub(crate) load_end: String,
    /// Whether another process shared the CPUs (a 1-minute load average above 1.5 at either
    /// end: the harness itself keeps about one core busy).
    pub(crate) busy: bool,
    /// Runs that failed (their cells are missing from the report).
    pub(crate) errors: Vec<String>,
}

impl Results {
    pub(crate) fn samples(&self, w: Workload, s: System) -> &[Sample] {
        self.timed
            .iter()
            .find(|(k, _)| *k == (w, s))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    pub(crate) fn memory_of(&self, s: System) -> &[MemoryResult] {
        self.memory
            .iter()
            .find(|(k, _)| *k == s)
            .map_or(&[], |(_, v)| v.as_slice())
    }
}

async fn spawn_server(system: System, python: Option<&std::path::Path>) -> Res<ServerProc> {
    match system {
        System::Rpyc | System::NetrefToPy => {
            rpyc_sys::spawn_server(python.ok_or("no Python for RPyC")?).await
        }
        System::PyToNetref => ServerProc::spawn(self_command(&["--serve", "netref-rpyc"])?).await,
        System::Netref | System::NetrefDynamic => {
            ServerProc::spawn(self_command(&["--serve", "netref"])?).await
        }
        System::Tarpc => ServerProc::spawn(self_command(&["--serve", "tarpc"])?).await,
        System::Raw => ServerProc::spawn(self_command(&["--serve", "raw"])?).await,
    }
}

/// What the harness asks of a client thread: run a workload, answer with its sample.
type ThreadJob = (
    Workload,
    Spec,
    tokio::sync::oneshot::Sender<Res<Option<Sample>>>,
);

/// A Rust client on a thread of its own, in a current-thread runtime, as a
/// `#[tokio::main(flavor = "current_thread")]` program runs it: the thread that waits for a
/// reply is the one the socket wakes.
struct ThreadClient {
    jobs: Option<tokio::sync::mpsc::UnboundedSender<ThreadJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ThreadClient {
    async fn connect(system: System, port: u16) -> Res<ThreadClient> {
        let (jobs, mut rx) = tokio::sync::mpsc::unbounded_channel::<ThreadJob>();
        let (ready_tx, ready) = tokio::sync::oneshot::channel::<Res<()>>();
        let thread = std::thread::Builder::new()
            .name(format!("client-{system:?}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut driver = match connect_here(system, port, None).await {
                        Ok(d) => d,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while let Some((w, spec, reply)) = rx.recv().await {
                        let before = procs::thread_cpu();
                        let mut r = driver.run(w, &spec).await;
                        if let Ok(Some(s)) = &mut r {
                            s.client_cpu = procs::thread_cpu()
                                .zip(before)
                                .map(|(b, a)| b.saturating_sub(a));
                        }
                        let _ = reply.send(r);
                    }
                });
            })?;
        ready.await.map_err(|_| "the client thread died")??;
        Ok(ThreadClient {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    async fn run(&mut self, w: Workload, spec: &Spec) -> Res<Option<Sample>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .as_ref()
            .ok_or("the client thread is gone")?
            .send((w, spec.clone(), reply))
            .map_err(|_| "the client thread is gone")?;
        rx.await.map_err(|_| "the client thread died")?
    }
}

impl Drop for ThreadClient {
    fn drop(&mut self) {
        self.jobs = None; // the thread's loop ends, its connection closes
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn connect(
    system: System,
    port: u16,
    spec: &Spec,
    python: Option<&std::path::Path>,
) -> Res<Driver> {
    if spec.current_thread_clients && !matches!(system, System::Rpyc | System::PyToNetref) {
        return Ok(Driver::Thread(ThreadClient::connect(system, port).await?));
    }
    connect_here(system, port, python).await
}

/// A client on the runtime this is called from.
async fn connect_here(system: System, port: u16, python: Option<&std::path::Path>) -> Res<Driver> {
    Ok(match system {
        System::Netref => Driver::Netref(netref_sys::Client::connect(port, false).await?),
        System::NetrefDynamic => Driver::Netref(netref_sys::Client::connect(port, true).await?),
        System::Tarpc => Driver::Tarpc(tarpc_sys::Client::connect(port).await?),
        System::Raw => Driver::Raw(raw_sys::Client::connect(port).await?),
        System::Rpyc | System::PyToNetref => Driver::Rpyc(Box::new(rpyc_sys::Client::connect(
            python.ok_or("no Python for RPyC")?,
            port,
        )?)),
        System::NetrefToPy => Driver::NetrefRpyc(netref_sys::RpycClient::connect(port).await?),
    })
}

/// The memory workload of netref, with a fresh server and a fresh client process.
async fn netref_memory(spec: &Spec) -> Res<MemoryResult> {
    let server = spawn_server(System::Netref, None).await?;
    let port = server.port.to_string();
    let n = spec.mem_n.to_string();
    let batch = spec.mem_batch.to_string();
    let out = self_command(&["--memory-client", "netref", &port, &n, &batch])?
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    if !out.status.success() {
        return Err(format!("the netref memory client failed ({})", out.status).into());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    MemoryResult::from_json(&serde_json::from_str(line.trim())?)
}

async fn harness(spec: Spec) -> Res<Results> {
    let mut skipped = Vec::new();
    let mut python = None;
    if spec.rpyc {
        python = venv_python();
        if python.is_none() && !spec.quick {
            eprintln!("compare: no virtualenv with rpyc 6.0.2; running scripts/bench-prepare.sh");
            let status = std::process::Command::new("bash")
                .arg(procs::repo_root().join("scripts/bench-prepare.sh"))
                .status()?;
            if !status.success() {
                return Err("scripts/bench-prepare.sh failed".into());
            }
            python = venv_python();
        }
        if python.is_none() {
            let why = if spec.quick {
                "RPyC skipped: no virtualenv with rpyc 6.0.2 (run scripts/bench-prepare.sh)"
            } else {
                "scripts/bench-prepare.sh ran but its virtualenv has no rpyc 6.0.2"
            };
            if !spec.quick {
                return Err(why.into());
            }
            eprintln!("compare: {why}");
            for s in System::ALL.into_iter().filter(|s| s.needs_python()) {
                skipped.push((s, why.to_owned()));
            }
        }
    } else {
        for s in System::ALL.into_iter().filter(|s| s.needs_python()) {
            skipped.push((s, "RPyC skipped: --no-rpyc".to_owned()));
        }
    }
    let systems: Vec<System> = System::ALL
        .into_iter()
        .filter(|s| !skipped.iter().any(|(k, _)| k == s))
        .collect();
    let machine = Machine::describe(python.as_deref());

    // Servers first (each in its own process), then one client connection per system.
    let mut servers = Vec::new();
    let mut drivers = Vec::new();
    for &s in &systems {
        let server = spawn_server(s, python.as_deref()).await?;
        drivers.push((s, connect(s, server.port, &spec, python.as_deref()).await?));
        servers.push(server);
    }

    let mut timed: Vec<((Workload, System), Vec<Sample>)> = Vec::new();
    let mut errors = Vec::new();
    for w in Workload::TIMED {
        if !spec.runs(w) {
            continue;
        }
        let slice = spec.slice();
        for round in 0..spec.rounds {
            // Each system's turn is cut into slices run in turn with the others', the order
            // rotating from slice to slice and round to round: a burst of load from another
            // process lands on every system of the round alike, not on whichever ran then.
            let n = drivers.len();
            let mut samples: Vec<Option<Sample>> = vec![None; n];
            let mut failed = vec![false; n];
            for turn in 0..spec.slices as usize {
                for i in 0..n {
                    let k = (i + round + turn) % n;
                    let (s, driver) = &mut drivers[k];
                    if !s.has(w) || failed[k] {
                        continue;
                    }
                    let server_cpu = || servers[k].pid.and_then(procs::process_cpu);
                    let (cpu_before, t0) = (server_cpu(), std::time::Instant::now());
                    match driver.run(w, &slice).await {
                        Ok(Some(mut sample)) => {
                            sample.drive = t0.elapsed();
                            sample.server_cpu = server_cpu()
                                .zip(cpu_before)
                                .map(|(b, a)| b.saturating_sub(a));
                            match &mut samples[k] {
                                Some(sum) => sum.absorb(sample),
                                None => samples[k] = Some(sample),
                            }
                        }
                        Ok(None) => {
                            errors.push(format!("{w:?} on {s:?} produced nothing"));
                            failed[k] = true;
                        }
                        Err(e) => {
                            // Reported with the results; the other systems go on.
                            eprintln!("compare: {w:?} on {s:?} failed: {e}");
                            errors.push(format!("{w:?} on {s:?} failed: {e}"));
                            failed[k] = true;
                        }
                    }
                }
            }
            for i in 0..n {
                let k = (i + round) % n;
                let s = drivers[k].0;
                let Some(sample) = samples[k].take().filter(|_| !failed[k]) else {
                    continue;
                };
                eprintln!(
                    "compare: {w:?} round {}/{} {s:?}: {:.0} calls/s",
                    round + 1,
                    spec.rounds,
                    sample.rate()
                );
                match timed.iter_mut().find(|(key, _)| *key == (w, s)) {
                    Some((_, v)) => v.push(sample),
                    None => timed.push(((w, s), vec![sample])),
                }
            }
        }
    }
    drop(drivers);
    drop(servers);

    let mut memory = Vec::new();
    for &s in &systems {
        if !s.has(Workload::Memory) || !spec.runs(Workload::Memory) {
            continue;
        }
        let mut runs = Vec::new();
        for _ in 0..spec.mem_rounds {
            let r = match s {
                System::Netref => netref_memory(&spec).await,
                System::Rpyc => {
                    rpyc_sys::memory(
                        python.as_deref().ok_or("no Python")?,
                        spec.mem_n,
                        spec.mem_batch,
                    )
                    .await
                }
                System::Tarpc
                | System::Raw
                | System::PyToNetref
                | System::NetrefToPy
                | System::NetrefDynamic => {
                    unreachable!("filtered by System::has")
                }
            };
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("compare: Memory on {s:?} failed: {e}");
                    errors.push(format!("Memory on {s:?} failed: {e}"));
                    continue;
                }
            };
            eprintln!(
                "compare: Memory {s:?}: owner {:.0} B/object, holder {:.0} B/proxy",
                r.owner_per_object(),
                r.holder_per_proxy()
            );
            runs.push(r);
        }
        memory.push((s, runs));
    }

    let load_end = procs::load_average();
    let one_minute = |s: &str| {
        s.split_whitespace()
            .next()
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let busy = one_minute(&machine.load_start) > 1.5 || one_minute(&load_end) > 1.5;
    if busy {
        eprintln!("compare: warning: the machine was busy during the run (load {load_end})");
    }
    Ok(Results {
        spec,
        machine,
        systems,
        skipped,
        timed,
        memory,
        load_end,
        busy,
        errors,
    })
}

/// Hidden modes: this binary as a server or a memory client in a separate process.
fn hidden_mode(args: &[String]) -> Option<Res<()>> {
    let rt = || {
        // A reader that busy-polls keeps its thread from sleeping only where that thread
        // drives the I/O (see `Config::busy_poll`).
        if netref_sys::busy_poll().is_zero() {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
    };
    match args.first().map(String::as_str) {
        Some("--serve") => Some((|| {
            let rt = rt()?;
            match args.get(1).map(String::as_str) {
                Some("netref" | "netref-dynamic") => rt.block_on(netref_sys::serve()),
                Some("netref-rpyc") => rt.block_on(netref_sys::serve_rpyc()),
                Some("tarpc") => rt.block_on(tarpc_sys::serve()),
                Some("raw") => rt.block_on(raw_sys::serve()),
                other => Err(format!("--serve: unknown system {other:?}").into()),
            }
        })()),
        Some("--memory-client") => Some((|| {
            let num = |i: usize| -> Res<u64> {
                Ok(args
                    .get(i)
                    .ok_or("--memory-client: missing argument")?
                    .parse()?)
            };
            let port = u16::try_from(num(2)?)?;
            let (n, batch) = (num(3)?, num(4)?);
            if args.get(1).map(String::as_str) != Some("netref") {
                return Err("--memory-client: only netref runs in this binary".into());
            }
            rt()?.block_on(netref_sys::memory_client(port, n, batch))
        })()),
        Some("--drive") => Some((|| {
            // For profilers: `--drive SYSTEM PORT WORKLOAD MILLIS` runs one workload for a
            // while against a server started with `--serve SYSTEM`, and prints the calls made.
            let arg = |i: usize| {
                args.get(i)
                    .map(String::as_str)
                    .ok_or("--drive: missing argument")
            };
            let port: u16 = arg(2)?.parse()?;
            // Several workloads, comma-separated, run one after the other on one connection.
            let workloads = arg(3)?
                .split(',')
                .map(Workload::parse)
                .collect::<Result<Vec<_>, _>>()?;
            let mut spec = Spec::parse(&["--quick".to_owned()])?;
            spec.warmup = Duration::ZERO;
            spec.time = Duration::from_millis(arg(4)?.parse()?);
            spec.bytes = 1024 * 1024;
            let system = match arg(1)? {
                "netref" => System::Netref,
                "netref-dynamic" => System::NetrefDynamic,
                "tarpc" => System::Tarpc,
                "raw" => System::Raw,
                // netref's RPyC client, against `scripts/rpyc_server.py`.
                "netref-rpyc" => System::NetrefToPy,
                other => return Err(format!("--drive: unknown system {other:?}").into()),
            };
            let body = async move {
                let mut driver = connect_here(system, port, None).await?;
                for w in workloads {
                    let s = driver
                        .run(w, &spec)
                        .await?
                        .ok_or("no such workload for that system")?;
                    let mut lat = s.lat_ns.clone();
                    lat.sort_unstable();
                    let at = |q: f64| {
                        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
                            .map_or(0.0, |ns| *ns as f64 / 1e3)
                    };
                    println!(
                        "{} calls in {:?} (p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs)",
                        s.calls,
                        s.elapsed,
                        at(0.5),
                        at(0.99),
                        at(1.0)
                    );
                }
                Res::Ok(())
            };
            rt()?.block_on(body)
        })()),
        _ => None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(r) = hidden_mode(&args) {
        if let Err(e) = r {
            eprintln!("compare ({}): {e}", args.join(" "));
            std::process::exit(1);
        }
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench binaries without `--bench`: nothing to do there.
        println!("compare: run with `cargo bench --bench compare [-- --quick]`");
        return;
    }
    let spec = match Spec::parse(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    // Read by netref's sides here and in the server processes (set before any thread runs).
    std::env::set_var(
        netref_sys::BUSY_POLL_ENV,
        spec.busy_poll.as_micros().to_string(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let results = match rt.block_on(harness(spec)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("compare: failed: {e}");
            std::process::exit(1);
        }
    };
    drop(rt);
    let (markdown, problems) = report::render(&results);
    println!("{markdown}");
    if let Some(path) = &results.spec.out {
        match report::write_doc(path, &markdown) {
            Ok(()) => eprintln!("compare: wrote {}", path.display()),
            Err(e) => {
                eprintln!("compare: cannot write {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    if problems.is_empty() {
        println!("compare: every workload ran and produced a number");
    } else {
        for p in &problems {
            eprintln!("compare: {p}");
        }
        std::process::exit(1);
    }
}
