//! Distributed jobs: a coordinator hands jobs to worker **processes** over TCP loopback, the
//! workers report progress through coordinator-side callbacks and read their input through
//! a lent list, and one worker is killed mid-job so its job has to go to another worker.
//!
//! ```sh
//! cargo run --example distributed_jobs                  # three workers
//! cargo run --example distributed_jobs -- --workers 5
//! cargo run --features nats --example distributed_jobs -- --nats nats://127.0.0.1:4222
//! ```
//!
//! # What it shows
//!
//! - **Lending yourself.** Each worker connects to the coordinator and calls
//!   `root.register(id, worker)` with its own `Worker` object. The coordinator receives a
//!   proxy and from then on calls *into* the worker over the connection the worker opened:
//!   connections are symmetric, the worker runs no server.
//! - **References inside values.** A [`Job`] is a struct travelling by value, with two
//!   reference fields: `input`, a [`List`] of numbers that stays in the coordinator (the
//!   worker reads it number by number through the proxy and never receives a copy), and
//!   `progress`, a coordinator-side closure the worker calls after each number.
//! - **A lost peer is an error kind.** The coordinator kills worker 1 from inside that
//!   worker's first progress callback, so the worker is certainly mid-job: it is waiting for
//!   the callback's answer. The coordinator's pending `run` call then fails with
//!   [`ErrorKind::Disconnected`]; the job goes back to the front of the queue and the next
//!   free worker takes it.
//! - **A checked result.** Each job sums the squares of its numbers. The coordinator adds up
//!   the job results, compares them with the total it computes locally, and exits with
//!   status 1 on a mismatch.
//!
//! # Past one machine: `--nats URL`
//!
//! With `--nats`, nobody's address is on a command line. Each worker runs its own netref
//! server on a free port, registers it in the NATS registry as `jobs.worker` (see
//! `netref::nats`) and also serves value calls from NATS. The coordinator discovers the
//! workers there, connects to each one directly (the jobs pass references, which only a
//! direct connection carries), starts a replacement when worker 1 is lost (it joins
//! mid-run, found through the registry like the others), reports when the killed worker's
//! entry leaves the registry, and at the end asks every live worker for its status with one
//! NATS fanout. The registry bound of this run is 2 s. Needs a NATS server with JetStream
//! (`nats-server -js`; `scripts/nats-server.sh` installs one).
//!
//! # How it runs
//!
//! One program, two roles. As the coordinator (the default) it binds `127.0.0.1:0`, starts
//! N copies of itself as `distributed_jobs worker ADDR ID`, waits until all of them have
//! registered, and then keeps every live worker busy until the queue is empty. The child
//! processes belong to a [`Fleet`], which kills and reaps whatever is still running when it
//! is dropped, so no path (success, error, panic) leaves a worker behind; and a worker whose
//! coordinator vanishes sees its connection close and exits on its own.
//!
//! # Output
//!
//! Lines as things happen (assignments, the kill, the lost job, completions), then a report:
//! one line per job with the worker that finished it and its sum, one line per worker, the
//! reassignment, and the total against the expected one. `tests/distributed_jobs.rs` runs
//! this program and checks that report.

use std::collections::VecDeque;
use std::error::Error;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use netref::adapters::List;
use netref::{callback, expose, ErrorKind, Obj, Proxy, Server, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How many jobs a run hands out.
pub(crate) const JOBS: usize = 8;
/// How many numbers each job sums.
const JOB_SIZE: usize = 12;
/// The worker that is killed during its first job.
const VICTIM: u32 = 1;
/// The pretend work per number, so that jobs take a moment (a job: about a quarter second).
const STEP: Duration = Duration::from_millis(20);
/// How long the worker processes have to start and register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(20);
/// The deadline of one `run` call.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the workers have to exit after the coordinator hangs up.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The numbers of job `job` (deterministic, so the expected total can be computed anywhere).
pub(crate) fn job_input(job: usize) -> Vec<i64> {
    (0..JOB_SIZE)
        .map(|i| (job * JOB_SIZE + i) as i64 + 1)
        .collect()
}

/// What a job computes, done locally: the sum of the squares of its numbers.
fn local_sum(numbers: &[i64]) -> i64 {
    numbers.iter().map(|n| n * n).sum()
}

// ---------------------------------------------------------------------------------------
// What travels between the two sides

/// One job as it is sent to a worker: a struct sent by value, holding two references.
#[derive(Serialize, Deserialize)]
struct Job {
    /// The numbers to sum: a [`List`] that stays in the coordinator.
    input: Proxy,
    /// A coordinator-side callback, called as `progress(done, total)` after each number.
    progress: Proxy,
}

// ---------------------------------------------------------------------------------------
// The worker process

/// The one object a worker process has: it lends it to the coordinator when it registers.
#[derive(Default)]
struct Worker {
    /// This worker's number.
    id: u32,
    /// Jobs finished so far.
    done: AtomicU64,
}

/// A worker: runs the jobs it is handed.
#[expose]
impl Worker {
    /// `"worker ID: N jobs done"`: what a fanout asks every worker (NATS mode).
    #[exposed]
    fn status(&self) -> String {
        format!(
            "worker {}: {} jobs done",
            self.id,
            self.done.load(Ordering::SeqCst)
        )
    }

    /// Sums the squares of `job.input`, reading it through the proxy one number at a time
    /// and calling `job.progress(done, total)` after each; returns the sum.
    #[exposed]
    async fn run(&self, job: Job) -> netref::Result<i64> {
        let total: u64 = job.input.call_method("len", ()).decode().await?;
        let mut sum = 0;
        for i in 0..total {
            let n: i64 = job.input.call_method("get", (i,)).decode().await?;
            tokio::time::sleep(STEP).await; // the "work"
            sum += n * n;
            job.progress.call((i + 1, total)).await?;
        }
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(sum)
    }
}

/// The worker process: connects, lends itself, then serves until the coordinator hangs up.
async fn worker(addr: &str, id: u32) -> netref::Result<()> {
    let conn = netref::connect(addr).await?;
    let me = Obj::new(Worker {
        id,
        ..Worker::default()
    });
    conn.root().call_method("register", (id, me)).await?;
    // From here on the coordinator calls `run` on the object it was lent; this side only
    // serves. When the coordinator closes the connection (or dies), the worker is done.
    conn.closed().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The coordinator process

/// The coordinator's root object: where workers sign up.
struct Registry {
    arrivals: mpsc::Sender<(u32, Proxy)>,
}

/// Where workers sign up.
#[expose]
impl Registry {
    /// Registers worker `id`, lending the coordinator the worker object itself.
    #[exposed]
    async fn register(&self, id: u32, worker: Proxy) -> netref::Result<()> {
        self.arrivals.send((id, worker)).await.map_err(|_| {
            netref::Error::remote(ErrorKind::Failed, "the coordinator takes no more workers")
        })
    }
}

/// The worker processes. Dropping the fleet kills and reaps every worker still running.
struct Fleet {
    members: Mutex<Vec<Member>>,
}

/// One worker process.
struct Member {
    id: u32,
    child: Child,
    /// Set once the process has been reaped.
    status: Option<ExitStatus>,
    /// When the coordinator killed it.
    killed: Option<std::time::Instant>,
}

impl Fleet {
    /// No workers yet.
    fn new() -> Arc<Fleet> {
        Arc::new(Fleet {
            members: Mutex::new(Vec::new()),
        })
    }

    /// Starts workers `1..=n` as copies of this program: `THIS_PROGRAM worker ADDR ID`.
    fn start(addr: &str, n: u32) -> std::io::Result<Arc<Fleet>> {
        let fleet = Fleet::new();
        for id in 1..=n {
            // On an error here `fleet` is dropped, which stops the workers already started.
            fleet.spawn(id, &["worker", addr])?;
        }
        Ok(fleet)
    }

    /// Starts worker `id` as a copy of this program: `THIS_PROGRAM ROLE… ID`.
    fn spawn(&self, id: u32, role: &[&str]) -> std::io::Result<()> {
        let child = Command::new(std::env::current_exe()?)
            .args(role)
            .arg(id.to_string())
            .stdin(Stdio::null())
            .spawn()?;
        self.lock().push(Member {
            id,
            child,
            status: None,
            killed: None,
        });
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The process id of worker `id`.
    fn pid(&self, id: u32) -> Option<u32> {
        self.lock()
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.child.id())
    }

    /// Kills worker `id` and waits until it is gone (a killed process cannot linger, so
    /// this takes moments).
    fn kill(&self, id: u32) -> std::io::Result<()> {
        let mut members = self.lock();
        if let Some(m) = members.iter_mut().find(|m| m.id == id) {
            m.child.kill()?;
            m.killed = Some(std::time::Instant::now());
            m.status = Some(m.child.wait()?);
        }
        Ok(())
    }

    /// When worker `id` was killed, if it was (NATS mode reports how long it stayed listed).
    #[cfg(feature = "nats")]
    fn killed_at(&self, id: u32) -> Option<std::time::Instant> {
        self.lock()
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.killed)
    }

    /// Waits up to `grace` for every worker to exit; returns each one's exit status (`None`
    /// for a worker still running, which the fleet's `Drop` then kills).
    async fn wait_all(&self, grace: Duration) -> Vec<(u32, Option<ExitStatus>)> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let statuses: Vec<_> = {
                let mut members = self.lock();
                for m in members.iter_mut().filter(|m| m.status.is_none()) {
                    m.status = m.child.try_wait().ok().flatten();
                }
                members.iter().map(|m| (m.id, m.status)).collect()
            };
            let all_gone = statuses.iter().all(|(_, s)| s.is_some());
            if all_gone || tokio::time::Instant::now() >= deadline {
                return statuses;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for m in self.lock().iter_mut().filter(|m| m.status.is_none()) {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
    }
}

/// A registered worker as the coordinator sees it.
struct WorkerHandle {
    id: u32,
    /// The proxy of the worker's own `Worker` object.
    proxy: Proxy,
}

/// How one attempt at a job ended, as the task that awaited it reports.
struct Finished {
    job: usize,
    worker: WorkerHandle,
    result: netref::Result<i64>,
    /// How many numbers the worker had reported done (through the progress callback).
    reported: u64,
}

/// What happened to the jobs, for the report.
struct Log {
    /// Per job: the worker that finished it, and the sum.
    done: Vec<Option<(u32, i64)>>,
    /// Jobs lost with their worker: (worker, job, how many numbers it had reported done).
    lost: Vec<(u32, usize, u64)>,
    /// Lost jobs given to another worker: (job, from worker, to worker).
    reassigned: Vec<(usize, u32, u32)>,
}

/// Sends job `job` to `worker` on a task of `running`. `kill_on_first_report` makes the
/// progress callback kill the worker the first time it reports.
fn start_job(
    running: &mut JoinSet<Finished>,
    job: usize,
    input: &Obj<List>,
    worker: WorkerHandle,
    fleet: Weak<Fleet>,
    kill_on_first_report: bool,
) {
    let reported = Arc::new(AtomicU64::new(0));
    let progress = {
        let reported = reported.clone();
        let worker_id = worker.id;
        // This closure stays here; the worker gets a reference and calls it remotely.
        callback(move |done: u64, total: u64| {
            reported.store(done, Ordering::SeqCst);
            if kill_on_first_report && done == 1 {
                // The worker is waiting for this callback's answer: it is mid-job for sure.
                if let Some(fleet) = fleet.upgrade() {
                    let pid = fleet.pid(worker_id).unwrap_or_default();
                    println!(
                        "worker {worker_id} reported {done}/{total} on job {job}: \
                         killing worker {worker_id} (pid {pid}) mid-job"
                    );
                    if let Err(e) = fleet.kill(worker_id) {
                        eprintln!("could not kill worker {worker_id}: {e}");
                    }
                }
            }
        })
    };
    let job_msg = Job {
        input: Proxy::local(input.erase()),
        progress,
    };
    running.spawn(async move {
        let result = worker
            .proxy
            .call_method("run", (job_msg,))
            .timeout(JOB_TIMEOUT)
            .decode()
            .await;
        Finished {
            job,
            worker,
            result,
            reported: reported.load(Ordering::SeqCst),
        }
    });
}

/// The coordinator: returns `Ok(true)` when the distributed total matches the local one.
async fn coordinator(workers: u32) -> Result<bool, Box<dyn Error>> {
    let (arrivals, mut registered) = mpsc::channel(workers as usize);
    let server = Server::with_root(Obj::new(Registry { arrivals }))
        .bind("127.0.0.1:0")
        .await?;
    let addr = server.local_addr().to_string();
    println!("coordinator on {addr}, starting {workers} worker processes");
    let fleet = Fleet::start(&addr, workers)?;

    // Wait for every worker to lend itself.
    let mut idle = Vec::new();
    while idle.len() < workers as usize {
        let arrival = tokio::time::timeout(REGISTER_TIMEOUT, registered.recv()).await;
        let Ok(Some((id, proxy))) = arrival else {
            return Err(format!("only {} of {workers} workers registered", idle.len()).into());
        };
        let pid = fleet.pid(id).unwrap_or_default();
        println!("worker {id} registered (pid {pid})");
        idle.push(WorkerHandle { id, proxy });
    }
    let (log, idle) = run_jobs(idle, &fleet, &mut registered, |_| {}).await?;

    // Hang up: the workers see their connections close and exit.
    drop(idle);
    server.shutdown().await;
    let statuses = fleet.wait_all(EXIT_GRACE).await;
    Ok(print_report(&log, &statuses))
}

/// Hands the jobs to `idle` workers and to those that arrive on `arrivals` meanwhile,
/// reassigning the job of a worker that is lost, until every job is done. Worker
/// [`VICTIM`] is killed during its first job; `on_first_loss` runs when its loss is seen. Returns the log and the workers still alive.
async fn run_jobs(
    mut idle: Vec<WorkerHandle>,
    fleet: &Arc<Fleet>,
    arrivals: &mut mpsc::Receiver<(u32, Proxy)>,
    on_first_loss: impl FnOnce(&Log),
) -> Result<(Log, VecDeque<WorkerHandle>), Box<dyn Error>> {
    // Hand out jobs in worker order, so worker 1 (the victim) gets the first job.
    idle.sort_by_key(|w| w.id);
    let mut idle: VecDeque<WorkerHandle> = idle.into();
    let mut first_loss = Some(on_first_loss);

    // Each job's input is a List that stays here; workers get references to it.
    let inputs: Vec<Obj<List>> = (0..JOBS)
        .map(|j| {
            let numbers = job_input(j).into_iter().map(Value::Int).collect();
            Obj::new(List::from_vec(numbers))
        })
        .collect();

    let mut queue: VecDeque<usize> = (0..JOBS).collect();
    let mut running = JoinSet::new();
    let mut victim_armed = true;
    let mut log = Log {
        done: vec![None; JOBS],
        lost: Vec::new(),
        reassigned: Vec::new(),
    };

    loop {
        // Keep every idle worker busy while there is work.
        while let Some(job) = queue.pop_front() {
            let Some(worker) = idle.pop_front() else {
                queue.push_front(job);
                break;
            };
            let lost_by = log.lost.iter().find(|(_, j, _)| *j == job).map(|l| l.0);
            match lost_by {
                Some(from) => {
                    println!(
                        "job {job} -> worker {} (reassigned from worker {from})",
                        worker.id
                    );
                    log.reassigned.push((job, from, worker.id));
                }
                None => println!("job {job} -> worker {}", worker.id),
            }
            let kill = victim_armed && worker.id == VICTIM;
            victim_armed &= !kill;
            let fleet = Arc::downgrade(fleet);
            start_job(&mut running, job, &inputs[job], worker, fleet, kill);
        }

        if running.is_empty() {
            if queue.is_empty() {
                break;
            }
            // Work left and nobody to do it: only a worker joining can help.
            let arrival = tokio::time::timeout(REGISTER_TIMEOUT, arrivals.recv()).await;
            let Ok(Some((id, proxy))) = arrival else {
                return Err(format!("no live workers left for jobs {queue:?}").into());
            };
            println!("worker {id} joined mid-run");
            idle.push_back(WorkerHandle { id, proxy });
            continue;
        }

        // Wait for the next job to end, one way or the other, or a worker to join.
        let joined = tokio::select! {
            joined = running.join_next() => joined.expect("a job is running"),
            Some((id, proxy)) = arrivals.recv() => {
                println!("worker {id} joined mid-run");
                idle.push_back(WorkerHandle { id, proxy });
                continue;
            }
        };
        let Finished {
            job,
            worker,
            result,
            reported,
        } = joined?;
        match result {
            Ok(sum) => {
                println!("job {job} done by worker {}: sum {sum}", worker.id);
                log.done[job] = Some((worker.id, sum));
                idle.push_back(worker);
            }
            Err(e) if e.kind() == ErrorKind::Disconnected => {
                // The worker is gone (its proxy is dropped here); the job goes back first.
                println!("job {job} lost: worker {} disconnected ({e})", worker.id);
                log.lost.push((worker.id, job, reported));
                queue.push_front(job);
                if let Some(hook) = first_loss.take() {
                    hook(&log);
                }
            }
            Err(e) => return Err(format!("job {job} failed on worker {}: {e}", worker.id).into()),
        }
    }
    Ok((log, idle))
}

/// Prints the report; returns whether the total is the expected one.
fn print_report(log: &Log, statuses: &[(u32, Option<ExitStatus>)]) -> bool {
    println!();
    println!("report");
    for (job, outcome) in log.done.iter().enumerate() {
        let (worker, sum) = outcome.expect("every job is done when the queue is empty");
        let note = match log.reassigned.iter().find(|(j, _, _)| *j == job) {
            Some((_, from, _)) => format!(" (reassigned from worker {from})"),
            None => String::new(),
        };
        println!("  job {job}: worker {worker}, sum {sum}{note}");
    }
    for (id, status) in statuses {
        let jobs: Vec<usize> = (0..JOBS)
            .filter(|&j| log.done[j].map(|(w, _)| w) == Some(*id))
            .collect();
        let ending = match status {
            Some(s) if s.success() => "exited cleanly".to_owned(),
            Some(s) => format!("ended with {s}"),
            None => "did not exit in time, killed".to_owned(),
        };
        println!("  worker {id}: {} jobs done {jobs:?}, {ending}", jobs.len());
    }
    for (worker, job, reported) in &log.lost {
        println!("  lost: job {job} with worker {worker}, after {reported}/{JOB_SIZE} numbers");
    }
    for (job, from, to) in &log.reassigned {
        println!("  reassigned: job {job} from worker {from} to worker {to}");
    }
    let total: i64 = log.done.iter().flatten().map(|(_, sum)| sum).sum();
    let expected: i64 = (0..JOBS).map(|j| local_sum(&job_input(j))).sum();
    let verdict = if total == expected { "ok" } else { "MISMATCH" };
    println!("  total: {total} (expected {expected}, computed locally): {verdict}");
    total == expected
}

// ---------------------------------------------------------------------------------------
// Over NATS

/// NATS mode: workers find no coordinator address on their command line. Each one runs
/// its own netref server, registers it in the NATS registry as [`SERVICE`](over_nats::SERVICE)
/// and serves value calls there; the coordinator discovers them (also those that start
/// later), connects to each directly for the jobs (references travel on that connection),
/// sees a killed worker leave the registry, and asks every worker for its status with a
/// fanout.
#[cfg(feature = "nats")]
mod over_nats {
    use std::collections::HashMap;
    use std::error::Error;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use netref::nats::{self, Nats, NatsOptions, RegisterOptions};
    use netref::{Obj, Proxy, Server};
    use tokio::sync::{mpsc, Notify};

    use super::REGISTER_TIMEOUT;
    use super::{print_report, run_jobs, Fleet, Worker, WorkerHandle, EXIT_GRACE, VICTIM};

    /// The service name the workers register under.
    pub(crate) const SERVICE: &str = "jobs.worker";
    /// The registry bound this run asks for (when it creates the registry): a killed worker
    /// is gone from the registry at most this long after its death.
    const REGISTRY_TTL: Duration = Duration::from_secs(2);
    /// How often the coordinator looks for new workers.
    const POLL: Duration = Duration::from_millis(100);
    /// How long the status fanout waits for replies.
    const FANOUT_DEADLINE: Duration = Duration::from_secs(2);

    /// A worker process: its own server, registered under [`SERVICE`]; serves until the
    /// coordinator hangs up.
    pub(crate) async fn worker(url: &str, id: u32) -> netref::Result<()> {
        let nats = Nats::connect(url).await?;
        let me = Obj::new(Worker {
            id,
            ..Worker::default()
        });
        let hung_up = Arc::new(Notify::new());
        let on_hang_up = hung_up.clone();
        let server = Server::with_root(me.erase())
            .on_disconnect(move |_, _| on_hang_up.notify_one())
            .bind("127.0.0.1:0")
            .await?;
        let options = RegisterOptions::default()
            .version(env!("CARGO_PKG_VERSION"))
            .meta("worker", id.to_string());
        let registration = nats::register_with(&nats, SERVICE, &server, options).await?;
        // Value calls (the coordinator's status fanout) arrive through NATS.
        let values = registration.serve(me.erase()).await?;
        hung_up.notified().await;
        values.stop().await;
        registration.deregister().await;
        server.shutdown().await;
        Ok(())
    }

    /// Instance ids by worker number, as discovered.
    type Known = Arc<Mutex<HashMap<u32, String>>>;

    /// Polls the registry; connects to each new worker and hands its root to the jobs loop.
    async fn discover(nats: Nats, known: Known, arrivals: mpsc::Sender<(u32, Proxy)>) {
        loop {
            match nats::discover(&nats, SERVICE).await {
                Ok(found) => {
                    for instance in found {
                        let Some(id) = instance.metadata.get("worker").and_then(|w| w.parse().ok())
                        else {
                            continue;
                        };
                        if known.lock().unwrap().contains_key(&id) {
                            continue;
                        }
                        match netref::connect(instance.address.as_str()).await {
                            Ok(conn) => {
                                known.lock().unwrap().insert(id, instance.id.clone());
                                if arrivals.send((id, conn.root())).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => eprintln!("worker {id} at {}: {e}", instance.address),
                        }
                    }
                }
                Err(e) => eprintln!("discovery: {e}"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub(crate) async fn coordinator(url: &str, workers: u32) -> Result<bool, Box<dyn Error>> {
        let nats = Nats::connect_with(url, NatsOptions::default().with_ttl(REGISTRY_TTL)).await?;
        let bound = nats::registry_bound(&nats).await?;
        println!(
            "coordinator on NATS {url} (registry bound {bound:?}), starting {workers} worker \
             processes"
        );
        let fleet = Fleet::new();
        for id in 1..=workers {
            fleet.spawn(id, &["nats-worker", url])?;
        }
        let known = Known::default();
        let (tx, mut arrivals) = mpsc::channel(8);
        let discovery = tokio::spawn(discover(nats.clone(), known.clone(), tx));

        let mut idle = Vec::new();
        while idle.len() < workers as usize {
            let arrival = tokio::time::timeout(REGISTER_TIMEOUT, arrivals.recv()).await;
            let Ok(Some((id, proxy))) = arrival else {
                return Err(format!("only {} of {workers} workers registered", idle.len()).into());
            };
            let pid = fleet.pid(id).unwrap_or_default();
            println!("worker {id} discovered in the registry (pid {pid})");
            idle.push(WorkerHandle { id, proxy });
        }

        // A replacement starts when the first worker is lost: it joins mid-run.
        let late = workers + 1;
        let joiner = Arc::downgrade(&fleet);
        let url_owned = url.to_owned();
        let start_late = move |_: &super::Log| {
            if let Some(fleet) = joiner.upgrade() {
                println!("starting worker {late} mid-run");
                if let Err(e) = fleet.spawn(late, &["nats-worker", &url_owned]) {
                    eprintln!("could not start worker {late}: {e}");
                }
            }
        };
        let (log, idle) = run_jobs(idle, &fleet, &mut arrivals, start_late).await?;

        // The killed worker leaves the registry when its entry expires.
        left_registry(&nats, &fleet, &known, bound).await?;

        // Ask every live worker for its status at once.
        let live = nats::discover(&nats, SERVICE).await?.len();
        let mut replies =
            nats::fanout_n(&nats, SERVICE, "status", (), FANOUT_DEADLINE, live).await?;
        replies.sort_by_key(|r| r.result.as_ref().ok().map(|v| v.to_string()));
        println!("fanout to {live} live workers: {} replies", replies.len());
        for reply in replies {
            println!("status: {}", reply.result?.as_str().unwrap_or("?"));
        }

        // Hang up: each worker sees its connection close, leaves the registry and exits.
        discovery.abort();
        let _ = discovery.await;
        drop(idle);
        drop(arrivals);
        let statuses = fleet.wait_all(EXIT_GRACE).await;
        Ok(print_report(&log, &statuses))
    }

    /// Waits (up to twice the bound) until the killed worker's entry is gone, and says when.
    async fn left_registry(
        nats: &Nats,
        fleet: &Arc<Fleet>,
        known: &Known,
        bound: Duration,
    ) -> Result<(), Box<dyn Error>> {
        let victim = known.lock().unwrap().get(&VICTIM).cloned();
        let (Some(instance), Some(killed)) = (victim, fleet.killed_at(VICTIM)) else {
            return Err(format!("worker {VICTIM} was never discovered and killed").into());
        };
        let limit = Instant::now() + bound * 2;
        while nats::discover(nats, SERVICE)
            .await?
            .iter()
            .any(|i| i.id == instance)
        {
            if Instant::now() > limit {
                return Err(format!(
                    "worker {VICTIM} is still registered {:?} after its death",
                    killed.elapsed()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "worker {VICTIM} left the registry {} ms after it was killed (bound {} ms)",
            killed.elapsed().as_millis(),
            bound.as_millis()
        );
        Ok(())
    }
}

// Command line

/// What this process is.
enum Role {
    Coordinator { workers: u32, nats: Option<String> },
    Worker { addr: String, id: u32 },
    NatsWorker { url: String, id: u32 },
}

const USAGE: &str =
    "usage: distributed_jobs [--workers N] [--nats nats://HOST:PORT]   (2 <= N <= 32, default 3)";
/// A bound on `--workers`, so a typo cannot start thousands of processes.
const MAX_WORKERS: u32 = 32;

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Role, String> {
    let mut workers = 3;
    let mut nats = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // The hidden role the coordinator starts its children in.
            "worker" => {
                let addr = args.next().ok_or("worker: missing ADDR")?;
                let id = args.next().ok_or("worker: missing ID")?;
                let id = id.parse().map_err(|_| format!("worker: bad ID {id:?}"))?;
                return Ok(Role::Worker { addr, id });
            }
            "nats-worker" => {
                let url = args.next().ok_or("nats-worker: missing URL")?;
                let id = args.next().ok_or("nats-worker: missing ID")?;
                let id = id
                    .parse()
                    .map_err(|_| format!("nats-worker: bad ID {id:?}"))?;
                return Ok(Role::NatsWorker { url, id });
            }
            "--nats" => nats = Some(args.next().ok_or(USAGE)?),
            "--workers" => {
                let n = args.next().ok_or(USAGE)?;
                workers = n
                    .parse()
                    .map_err(|_| format!("bad worker count {n:?}\n{USAGE}"))?;
            }
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
        }
    }
    if !(2..=MAX_WORKERS).contains(&workers) {
        return Err(format!(
            "one worker gets killed, so 2 to {MAX_WORKERS} workers\n{USAGE}"
        ));
    }
    Ok(Role::Coordinator { workers, nats })
}

#[cfg(feature = "nats")]
async fn nats_worker(url: &str, id: u32) -> netref::Result<()> {
    over_nats::worker(url, id).await
}

#[cfg(feature = "nats")]
async fn nats_coordinator(url: &str, workers: u32) -> Result<bool, Box<dyn Error>> {
    over_nats::coordinator(url, workers).await
}

#[cfg(not(feature = "nats"))]
const NO_NATS: &str = "NATS mode needs the `nats` feature: cargo run --features nats --example \
                       distributed_jobs -- --nats nats://HOST:PORT";

#[cfg(not(feature = "nats"))]
async fn nats_worker(_url: &str, _id: u32) -> netref::Result<()> {
    Err(netref::Error::Value(NO_NATS.into()))
}

#[cfg(not(feature = "nats"))]
async fn nats_coordinator(_url: &str, _workers: u32) -> Result<bool, Box<dyn Error>> {
    Err(NO_NATS.into())
}

#[tokio::main]
pub(crate) async fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
        Ok(Role::Worker { addr, id }) => match worker(&addr, id).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("worker {id}: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(Role::NatsWorker { url, id }) => match nats_worker(&url, id).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("worker {id}: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(Role::Coordinator { workers, nats }) => match match nats {
            Some(url) => nats_coordinator(&url, workers).await,
            None => coordinator(workers).await,
        } {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("coordinator: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
