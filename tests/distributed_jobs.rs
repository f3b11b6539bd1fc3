//! The distributed-jobs example as a real process tree: a coordinator and three worker
//! processes on loopback, one worker killed mid-job. Checks the report the example prints.
//!
//! This test is built with `harness = false` and includes the example's source, so its binary
//! can *be* the example: with [`AS_EXAMPLE`] in its environment it runs the example's `main`
//! (coordinator or worker, by its arguments, and the coordinator's worker children inherit
//! the variable). The test spawns itself that way, so it does not depend on cargo having
//! built the example binary (`cargo test --test distributed_jobs` does not build examples).

#[path = "../examples/distributed_jobs.rs"]
mod distributed_jobs;
#[cfg(feature = "nats")]
mod nats_support;

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use distributed_jobs::{job_input, JOBS};

/// Set in the environment of a process that should run the example instead of the test.
const AS_EXAMPLE: &str = "NETREF_TEST_RUN_DISTRIBUTED_JOBS_EXAMPLE";
/// The one test this binary runs.
const TEST: &str = "the_coordinator_reassigns_the_killed_workers_job_and_checks_the_total";
/// How long the whole run may take before it is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the output pipes may stay open after the coordinator exits. A worker process
/// inherits them, so a pipe still open means a worker outlived the coordinator.
const PIPE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    if std::env::var_os(AS_EXAMPLE).is_some() {
        return distributed_jobs::main();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut tests: Vec<(&str, fn())> = vec![(
        TEST,
        the_coordinator_reassigns_the_killed_workers_job_and_checks_the_total,
    )];
    #[cfg(feature = "nats")]
    tests.push((
        NATS_TEST,
        over_nats_workers_join_and_die_and_every_job_is_done_once,
    ));
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &tests {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    // A name filter, as the standard harness takes one.
    let filter = args.iter().find(|a| !a.starts_with('-'));
    tests.retain(|(name, _)| filter.is_none_or(|f| name.contains(f.as_str())));
    println!("\nrunning {} tests", tests.len());
    let all = Instant::now();
    for (name, test) in &tests {
        let started = Instant::now();
        test();
        println!("test {name} ... ok ({:.1?})", started.elapsed());
    }
    println!(
        "\ntest result: ok. {} passed; 0 failed; finished in {:.1?}\n",
        tests.len(),
        all.elapsed()
    );
    ExitCode::SUCCESS
}

/// The NATS-mode test.
#[cfg(feature = "nats")]
const NATS_TEST: &str = "over_nats_workers_join_and_die_and_every_job_is_done_once";

/// What the example printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs the example (this binary in its example role) with `args`, bounded by
/// [`RUN_TIMEOUT`], and waits until every process of the tree has let go of its output.
fn run_example(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    run_example_owned(&args)
}

fn run_example_owned(args: &[String]) -> Run {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(args)
        .env(AS_EXAMPLE, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the example") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the example did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = |rx: mpsc::Receiver<String>, name: &str| {
        rx.recv_timeout(PIPE_TIMEOUT).unwrap_or_else(|_| {
            panic!("{name} still open {PIPE_TIMEOUT:?} after the coordinator exited: a worker was left behind")
        })
    };
    Run {
        success: status.success(),
        stdout: output(stdout, "stdout"),
        stderr: output(stderr, "stderr"),
    }
}

/// Reads `pipe` to its end on a thread; the text arrives on the returned channel.
fn read_all(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx
}

/// The numbers after each `marker` in `line`, in order: `numbers_after("job 3: worker 2",
/// &["job ", "worker "])` is `[3, 2]`. `None` when a marker or its number is missing.
fn numbers_after(line: &str, markers: &[&str]) -> Option<Vec<i64>> {
    let mut rest = line;
    let mut out = Vec::new();
    for marker in markers {
        rest = &rest[rest.find(marker)? + marker.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(rest.len());
        out.push(rest[..end].parse().ok()?);
        rest = &rest[end..];
    }
    Some(out)
}

fn the_coordinator_reassigns_the_killed_workers_job_and_checks_the_total() {
    let workers = 3;
    let run = run_example(&["--workers", &workers.to_string()]);
    let all = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.success, "the example failed\n{all}");

    // What each job should sum to, and the total, computed here.
    let job_sums: Vec<i64> = (0..JOBS)
        .map(|j| job_input(j).iter().map(|n| n * n).sum())
        .collect();
    let expected: i64 = job_sums.iter().sum();

    let (events, report) = run
        .stdout
        .split_once("\nreport\n")
        .unwrap_or_else(|| panic!("no report\n{all}"));
    let report: Vec<&str> = report.lines().map(str::trim).collect();
    let with_prefix = |prefix: &str| -> Vec<&str> {
        report
            .iter()
            .copied()
            .filter(|l| l.starts_with(prefix))
            .collect()
    };

    // Every job completed exactly once, as it happened ...
    let mut completions = vec![0; JOBS];
    for line in events.lines().filter(|l| l.contains(" done by worker ")) {
        let [job, _worker, sum] = numbers_after(line, &["job ", "worker ", "sum "])
            .and_then(|v| v.try_into().ok())
            .unwrap_or_else(|| panic!("bad completion line {line:?}\n{all}"));
        let job = usize::try_from(job).expect("a job number");
        completions[job] += 1;
        assert_eq!(sum, job_sums[job], "job {job}'s sum\n{all}");
    }
    assert_eq!(completions, vec![1; JOBS], "completions per job\n{all}");

    // ... and the report has one line per job, with the right sum.
    let mut finished_by = HashMap::new();
    for line in with_prefix("job ") {
        let [job, worker, sum] = numbers_after(line, &["job ", "worker ", "sum "])
            .and_then(|v| v.try_into().ok())
            .unwrap_or_else(|| panic!("bad report line {line:?}\n{all}"));
        let job = usize::try_from(job).expect("a job number");
        assert_eq!(sum, job_sums[job], "job {job}'s sum in the report\n{all}");
        assert!(
            finished_by.insert(job, worker).is_none(),
            "job {job} reported twice\n{all}"
        );
    }
    assert_eq!(finished_by.len(), JOBS, "report lines per job\n{all}");

    // One job was lost with its worker mid-job: it had reported progress, not finished.
    let lost = with_prefix("lost: ");
    assert_eq!(lost.len(), 1, "one job lost\n{all}");
    let [lost_job, victim, reported, size] =
        numbers_after(lost[0], &["job ", "worker ", "after ", "/"])
            .and_then(|v| v.try_into().ok())
            .unwrap_or_else(|| panic!("bad loss line {:?}\n{all}", lost[0]));
    assert!(
        reported >= 1 && reported < size,
        "the loss came mid-job ({reported}/{size})\n{all}"
    );

    // Its job went to another, live worker, which finished it.
    let reassigned = with_prefix("reassigned: ");
    assert_eq!(reassigned.len(), 1, "one reassignment\n{all}");
    let [job, from, to] = numbers_after(reassigned[0], &["job ", "from worker ", "to worker "])
        .and_then(|v| v.try_into().ok())
        .unwrap_or_else(|| panic!("bad reassignment line {:?}\n{all}", reassigned[0]));
    assert_eq!((job, from), (lost_job, victim), "the lost job moved\n{all}");
    assert_ne!(to, victim, "the job went to another worker\n{all}");
    assert_eq!(
        finished_by[&(job as usize)],
        to,
        "the new worker finished it\n{all}"
    );
    assert!(
        !finished_by.values().any(|&w| w == victim),
        "the lost worker finished nothing\n{all}"
    );

    // In that order: the kill, the loss noticed, the job handed to the new worker.
    let position = |needle: String| {
        events
            .find(&needle)
            .unwrap_or_else(|| panic!("no {needle:?} in the events\n{all}"))
    };
    let kill = position(format!("killing worker {victim} "));
    let noticed = position(format!("job {job} lost: worker {victim} disconnected"));
    let handed = position(format!(
        "job {job} -> worker {to} (reassigned from worker {victim})"
    ));
    assert!(
        kill < noticed && noticed < handed,
        "kill, loss, reassignment\n{all}"
    );

    // Every worker is accounted for; the ones not killed exited on their own.
    let worker_lines = with_prefix("worker ");
    assert_eq!(worker_lines.len(), workers, "one line per worker\n{all}");
    for line in worker_lines {
        let id = numbers_after(line, &["worker "]).expect("a worker id")[0];
        if id != victim {
            assert!(line.ends_with("exited cleanly"), "{line:?}\n{all}");
        }
    }

    // The total is the one computed here.
    let totals = with_prefix("total: ");
    assert_eq!(totals.len(), 1, "one total\n{all}");
    let [total, reported_expected] = numbers_after(totals[0], &["total: ", "expected "])
        .and_then(|v| v.try_into().ok())
        .unwrap_or_else(|| panic!("bad total line {:?}\n{all}", totals[0]));
    assert_eq!(total, expected, "the distributed total\n{all}");
    assert_eq!(
        reported_expected, expected,
        "the example's own expectation\n{all}"
    );
}

/// The NATS mode: three workers found through the registry, a fourth joining mid-run, worker
/// 1 killed mid-job (its job reassigned, its entry gone from the registry within the
/// bound), a status fanout to the living; every job done exactly once, the total checked.
#[cfg(feature = "nats")]
fn over_nats_workers_join_and_die_and_every_job_is_done_once() {
    let server = nats_support::NatsServer::start();
    let run = run_example_owned(&["--nats".into(), server.url()]);
    let all = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.success, "the example failed\n{all}");
    let (events, report) = run
        .stdout
        .split_once("\nreport\n")
        .unwrap_or_else(|| panic!("no report\n{all}"));

    // Found through the registry, and one joined mid-run.
    for id in 1..=3 {
        assert!(
            events.contains(&format!("worker {id} discovered in the registry")),
            "{all}"
        );
    }
    assert!(events.contains("starting worker 4 mid-run"), "{all}");
    assert!(events.contains("worker 4 joined mid-run"), "{all}");

    // Every job completed exactly once, with the right sum.
    let job_sums: Vec<i64> = (0..JOBS)
        .map(|j| job_input(j).iter().map(|n| n * n).sum())
        .collect();
    let mut completions = vec![0; JOBS];
    for line in events.lines().filter(|l| l.contains(" done by worker ")) {
        let [job, _worker, sum] = numbers_after(line, &["job ", "worker ", "sum "])
            .and_then(|v| v.try_into().ok())
            .unwrap_or_else(|| panic!("bad completion line {line:?}\n{all}"));
        let job = usize::try_from(job).expect("a job number");
        completions[job] += 1;
        assert_eq!(sum, job_sums[job], "job {job}'s sum\n{all}");
    }
    assert_eq!(completions, vec![1; JOBS], "completions per job\n{all}");

    // The killed worker's job moved; the worker left the registry within the bound (plus
    // JetStream's expiry lag and a loaded machine's slack).
    assert!(events.contains("killing worker 1 "), "{all}");
    assert!(report.contains("reassigned: job "), "{all}");
    let left = events
        .lines()
        .find(|l| l.starts_with("worker 1 left the registry "))
        .unwrap_or_else(|| panic!("worker 1 never left the registry\n{all}"));
    let [after, bound] = numbers_after(left, &["registry ", "bound "])
        .and_then(|v| v.try_into().ok())
        .unwrap_or_else(|| panic!("bad line {left:?}"));
    assert!(after <= bound + 1500, "{left}\n{all}");

    // The fanout reached the three live workers (2, 3, 4), and their counts add up.
    assert!(
        events.contains("fanout to 3 live workers: 3 replies"),
        "{all}"
    );
    let mut fanned = 0;
    let mut done = 0;
    for line in events.lines().filter(|l| l.starts_with("status: worker ")) {
        let [id, jobs] = numbers_after(line, &["worker ", ": "])
            .and_then(|v| v.try_into().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}\n{all}"));
        assert_ne!(id, 1, "{all}");
        fanned += 1;
        done += jobs;
    }
    assert_eq!((fanned, done), (3, JOBS as i64), "{all}");

    // The total is the one computed here.
    let expected: i64 = job_sums.iter().sum();
    assert!(
        report.contains(&format!("total: {expected} (expected {expected}")),
        "{all}"
    );
}
