//! The markdown report: results, ratios netref/peer, and the targets.

use std::fmt::Write as _;
use std::path::Path;

use crate::stats::{summarize, Sample, Summary};
use crate::{MemoryResult, Results, System, Workload};

const BEGIN: &str = "<!-- compare:begin (written by `cargo bench --bench compare`) -->";
const END: &str = "<!-- compare:end -->";

fn system_name(s: System) -> &'static str {
    match s {
        System::Netref => "netref",
        System::Rpyc => "RPyC 6.0.2",
        System::Tarpc => "tarpc 0.37",
        System::Raw => "raw TCP",
        System::PyToNetref => "Python client → netref server",
        System::NetrefToPy => "netref client → Python server",
        System::NetrefDynamic => "netref, dynamic",
    }
}

fn workload_name(w: Workload, bytes: usize) -> String {
    match w {
        Workload::EchoFresh => "`root.echo(1)`, path resolved per call".into(),
        Workload::EchoCached => "`echo(1)` on a cached method handle".into(),
        Workload::Callback => "server → client callback round trip".into(),
        Workload::Attr => "read a remote property".into(),
        Workload::InFlight => "64 calls in flight on one connection".into(),
        Workload::Bytes => format!("echo {} of random bytes", size(bytes)),
        Workload::Typed => "typed `echo_int(1)`, sequential".into(),
        Workload::Stream => "server → client stream of `u64` items".into(),
        Workload::Memory => "memory".into(),
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// What each system actually does in a workload, where it differs from the name.
fn note(w: Workload, s: System) -> &'static str {
    match (w, s) {
        (Workload::EchoFresh, System::Rpyc) => "`conn.root.echo(1)`",
        (Workload::EchoCached, System::Rpyc) => "`f = conn.root.echo; f(1)`",
        (Workload::Attr, System::Rpyc) => "`conn.root.value`",
        (Workload::InFlight, System::Rpyc) => "`rpyc.async_`",
        (Workload::EchoFresh, System::Netref) => "`conn.root().call_method(\"echo\", (1,))`",
        (Workload::EchoCached, System::Netref) => "`f = root.attr(\"echo\"); f.call((1,))`",
        (Workload::Attr, System::Netref) => "`root.attr(\"value\").get()`",
        (Workload::Bytes, System::Netref) => "`Value::Bytes`",
        (Workload::Bytes, System::Tarpc) => "`serde_bytes::ByteBuf`",
        (Workload::EchoFresh | Workload::EchoCached, System::Tarpc) => "`client.echo(ctx, 1)`",
        (Workload::Attr, System::Tarpc) => "`client.value(ctx)`",
        (
            Workload::EchoFresh | Workload::EchoCached | Workload::Attr | Workload::Callback,
            System::Raw,
        ) => "32-byte ping-pong",
        (Workload::InFlight, System::Raw) => "32-byte frames, pipelined",
        (Workload::Typed, System::Netref) => {
            "`bench.echo_int(1)` on the generated `BenchRootProxy`"
        }
        (Workload::Typed, System::NetrefDynamic) => "`root.call_method(\"echo_int\", (1,))`",
        (Workload::Typed, System::Tarpc) => "`client.echo(ctx, 1)`",
        (Workload::Typed, System::Raw) => "32-byte ping-pong",
        (Workload::Stream, System::Netref) => "`RemoteStream<u64>` from `bench.count(0)`",
        (Workload::Stream, System::Raw) => {
            "12-byte frames (length + `u64`) written back to back by the server"
        }
        _ => "",
    }
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn us(x: f64) -> String {
    if x >= 1000.0 {
        thousands(x)
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mem_summary(runs: &[MemoryResult]) -> Option<(f64, f64)> {
    if runs.is_empty() {
        return None;
    }
    Some((
        median(runs.iter().map(MemoryResult::owner_per_object).collect()),
        median(runs.iter().map(MemoryResult::holder_per_proxy).collect()),
    ))
}

/// One target of the issue, checked against the run.
struct Target {
    text: &'static str,
    measured: Option<f64>,
    /// `true`: measured must be ≥ bound; `false`: ≤ bound.
    at_least: bool,
    bound: f64,
    unit: &'static str,
    /// For a ratio to a peer: the raw baseline's ratio to that peer, the most any system
    /// could reach on this machine.
    ceiling: Option<f64>,
}

/// Renders the report. Returns the markdown and the list of workloads that produced no
/// number (empty when the run is complete).
pub(crate) fn render(r: &Results) -> (String, Vec<String>) {
    let spec = &r.spec;
    let sum = |w: Workload, s: System| summarize(r.samples(w, s));
    let mut problems = r.errors.clone();
    let mut md = String::new();
    let m = &r.machine;
    let _ = writeln!(md, "## Results\n");
    let _ = writeln!(
        md,
        "- **Command:** `{}`{}",
        spec.command,
        if spec.quick {
            " (quick mode: tiny sizes, not for comparison)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "- **Machine:** {} CPUs, {}, {} RAM, Linux {}",
        m.cpus, m.cpu_model, m.memory, m.kernel
    );
    let _ = writeln!(
        md,
        "- **Toolchain:** {}; {}",
        m.rustc,
        m.python.as_deref().unwrap_or("no Python peer")
    );
    let _ = writeln!(md, "- **netref:** commit {}, measured {}", m.commit, m.date);
    let _ = writeln!(
        md,
        "- **Load average** (1/5/15 min) at the start: {}; at the end: {}{}",
        m.load_start,
        r.load_end,
        if r.busy {
            " (**the machine was busy: other work shared its CPUs during the run**)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "- **Method:** {} round(s) per workload and system; in each round every system runs \
         {:?} after a {:?} warm-up, cut into {} slice(s) taken in turn with the other \
         systems' in rotating order; calls/s is the median over rounds, p50/p99 are over \
         every timed call; netref ÷ system is the median over rounds of the ratio of the two \
         rates within the round (above 1: netref is faster); the Rust clients run {}",
        spec.rounds,
        spec.time,
        spec.warmup,
        spec.slices,
        if spec.current_thread_clients {
            "each on a thread of its own, in a current-thread runtime"
        } else {
            "on the harness's multi-thread runtime, called from its `block_on`"
        }
    );
    if !spec.busy_poll.is_zero() {
        let _ = writeln!(
            md,
            "- **netref busy-polls:** every netref side runs with `Config::busy_poll` of {:?} \
             (`--busy-poll-us`), its servers on a current-thread runtime",
            spec.busy_poll
        );
    }
    for (s, why) in &r.skipped {
        let _ = writeln!(md, "- **Skipped:** {}: {why}", system_name(*s));
    }

    let _ = writeln!(md, "\n### Calls over TCP loopback\n");
    let _ = writeln!(
        md,
        "| workload | system | calls/s | p50 µs | p99 µs | netref ÷ system | how |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|---|");
    for w in Workload::CALLS {
        if !spec.runs(w) {
            continue;
        }
        let ours = sum(w, System::Netref);
        let mut first = true;
        for &s in r.systems.iter().filter(|s| s.in_calls_table()) {
            let label = if first {
                workload_name(w, spec.bytes)
            } else {
                String::new()
            };
            first = false;
            if !s.has(w) {
                let _ = writeln!(
                    md,
                    "| {label} | {} | n/a | | | | no such feature |",
                    system_name(s)
                );
                continue;
            }
            let Some(x) = sum(w, s) else {
                problems.push(format!("{w:?} on {s:?} produced no number"));
                let _ = writeln!(md, "| {label} | {} | **missing** | | | | |", system_name(s));
                continue;
            };
            let rate = if w == Workload::Bytes {
                format!(
                    "{} ({} MB/s)",
                    thousands(x.rate),
                    thousands(x.rate * spec.bytes as f64 / 1e6)
                )
            } else {
                thousands(x.rate)
            };
            let ratio = match (s, ours) {
                (System::Netref, _) => "".to_owned(),
                (_, Some(_)) => paired(r, (w, System::Netref), (w, s))
                    .map_or_else(|| "–".to_owned(), |x| format!("{x:.2}×")),
                (_, None) => "–".to_owned(),
            };
            let _ = writeln!(
                md,
                "| {label} | {} | {rate} | {} | {} | {ratio} | {} |",
                system_name(s),
                us(x.p50_us),
                us(x.p99_us),
                note(w, s)
            );
        }
    }

    mixed_section(r, &mut md, &mut problems);
    typed_and_streams_section(r, &mut md, &mut problems);

    if spec.runs(Workload::Memory) {
        let _ = writeln!(
            md,
            "\n### Memory with {} live references\n\nRSS growth (`VmRSS` of `/proc/self/status`) of \
             the owner's server process while the holder's client process takes references to \
             {} objects the owner made beforehand, {} per call, divided by their number.\n",
            thousands(spec.mem_n as f64),
            thousands(spec.mem_n as f64),
            thousands(spec.mem_batch as f64)
        );
        let _ = writeln!(
            md,
            "| system | owner bytes per exported object | holder bytes per proxy | runs |"
        );
        let _ = writeln!(md, "|---|--:|--:|--:|");
        for &s in r.systems.iter().filter(|s| s.has(Workload::Memory)) {
            match mem_summary(r.memory_of(s)) {
                Some((owner, holder)) => {
                    let _ = writeln!(
                        md,
                        "| {} | {owner:.0} | {holder:.0} | {} |",
                        system_name(s),
                        r.memory_of(s).len()
                    );
                }
                None => {
                    problems.push(format!("Memory on {s:?} produced no number"));
                    let _ = writeln!(md, "| {} | **missing** | **missing** | 0 |", system_name(s));
                }
            }
        }
    }

    // The targets.
    let rate = |w, s| sum(w, s).map(|x: Summary| x.rate);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let fresh = rate(Workload::EchoFresh, System::Netref);
    let ours = |w| (w, System::Netref);
    let mem = mem_summary(r.memory_of(System::Netref));
    let targets = [
        Target {
            text: "fresh-path call ≥ 0.75× raw ping-pong",
            measured: paired(
                r,
                ours(Workload::EchoFresh),
                (Workload::EchoFresh, System::Raw),
            ),
            at_least: true,
            bound: 0.75,
            unit: "×",
            ceiling: None,
        },
        Target {
            text: "fresh-path call ≥ 1.2× tarpc",
            measured: paired(
                r,
                ours(Workload::EchoFresh),
                (Workload::EchoFresh, System::Tarpc),
            ),
            at_least: true,
            bound: 1.2,
            unit: "×",
            ceiling: paired(
                r,
                (Workload::EchoFresh, System::Raw),
                (Workload::EchoFresh, System::Tarpc),
            ),
        },
        Target {
            text: "fresh-path call ≥ 8× RPyC's cached call",
            measured: ratio(fresh, rate(Workload::EchoCached, System::Rpyc)),
            at_least: true,
            bound: 8.0,
            unit: "×",
            ceiling: paired(
                r,
                (Workload::EchoCached, System::Raw),
                (Workload::EchoCached, System::Rpyc),
            ),
        },
        Target {
            text: "fresh-path call ≥ 15× RPyC's uncached call",
            measured: paired(
                r,
                ours(Workload::EchoFresh),
                (Workload::EchoFresh, System::Rpyc),
            ),
            at_least: true,
            bound: 15.0,
            unit: "×",
            ceiling: paired(
                r,
                (Workload::EchoFresh, System::Raw),
                (Workload::EchoFresh, System::Rpyc),
            ),
        },
        Target {
            text: "callback round trip ≥ 0.75× raw ping-pong",
            measured: paired(
                r,
                ours(Workload::Callback),
                (Workload::Callback, System::Raw),
            ),
            at_least: true,
            bound: 0.75,
            unit: "×",
            ceiling: None,
        },
        Target {
            text: "64 in flight ≥ 2× tarpc",
            measured: paired(
                r,
                ours(Workload::InFlight),
                (Workload::InFlight, System::Tarpc),
            ),
            at_least: true,
            bound: 2.0,
            unit: "×",
            ceiling: paired(
                r,
                (Workload::InFlight, System::Raw),
                (Workload::InFlight, System::Tarpc),
            ),
        },
        Target {
            text: "1 MiB echo ≥ 600 MB/s",
            measured: rate(Workload::Bytes, System::Netref)
                .map(|x| x * spec.bytes as f64 / 1e6)
                .filter(|_| spec.bytes == 1024 * 1024),
            at_least: true,
            bound: 600.0,
            unit: " MB/s",
            ceiling: None,
        },
        Target {
            text: "≤ 150 bytes per live exported object (owner)",
            measured: mem.map(|m| m.0).filter(|_| spec.mem_n == 100_000),
            at_least: false,
            bound: 150.0,
            unit: " B",
            ceiling: None,
        },
        Target {
            text: "≤ 150 bytes per proxy (holder)",
            measured: mem.map(|m| m.1).filter(|_| spec.mem_n == 100_000),
            at_least: false,
            bound: 150.0,
            unit: " B",
            ceiling: None,
        },
    ];
    let mixed = |w, s| paired(r, (w, s), (w, System::Rpyc));
    // The Python side left in a pair can go no faster than on a CPU all along: where it
    // handles the same messages per call as in Python → Python, the most any peer could
    // reach is 1 ÷ the fraction of that run the same Python program was busy. Not for the
    // Python server of the uncached echo: Python's client sends it three messages per call
    // (GETATTR, CALL, DEL), netref's one (CALLATTR).
    let py_client = |w| python_ceiling(r, w, Sample::client_busy);
    let py_server = |w| python_ceiling(r, w, Sample::server_busy);
    let targets: Vec<Target> = targets
        .into_iter()
        .chain([
            Target {
                text: "RPyC wire, Python client → netref server ≥ 1.5× Python → Python",
                measured: mixed(Workload::EchoFresh, System::PyToNetref),
                at_least: true,
                bound: 1.5,
                unit: "×",
                ceiling: py_client(Workload::EchoFresh),
            },
            Target {
                text: "RPyC wire, netref client → Python server ≥ 1.5× Python → Python",
                measured: mixed(Workload::EchoFresh, System::NetrefToPy),
                at_least: true,
                bound: 1.5,
                unit: "×",
                ceiling: None,
            },
            Target {
                text: "the same, 64 calls in flight: Python client → netref server",
                measured: mixed(Workload::InFlight, System::PyToNetref),
                at_least: true,
                bound: 1.5,
                unit: "×",
                ceiling: py_client(Workload::InFlight),
            },
            Target {
                text: "the same, 64 calls in flight: netref client → Python server",
                measured: mixed(Workload::InFlight, System::NetrefToPy),
                at_least: true,
                bound: 1.5,
                unit: "×",
                ceiling: py_server(Workload::InFlight),
            },
            Target {
                text: "typed call no slower than a dynamic one (typed ÷ dynamic ≥ 1)",
                measured: paired(
                    r,
                    ours(Workload::Typed),
                    (Workload::Typed, System::NetrefDynamic),
                ),
                at_least: true,
                bound: 1.0,
                unit: "×",
                ceiling: None,
            },
            Target {
                text: "streaming small items ≥ 0.5× raw TCP's pipelined frame rate",
                measured: paired(r, ours(Workload::Stream), (Workload::Stream, System::Raw)),
                at_least: true,
                bound: 0.5,
                unit: "×",
                ceiling: None,
            },
        ])
        .collect();
    let _ = writeln!(md, "\n### Targets (issues 6, 14 and 15)\n");
    let _ = writeln!(md, "| target | measured | verdict | ceiling |");
    let _ = writeln!(md, "|---|--:|---|--:|");
    for t in &targets {
        let (measured, verdict) = match t.measured {
            Some(v) if t.unit == "×" => (format!("{v:.2}×"), verdict(t, v)),
            Some(v) => (format!("{}{}", thousands(v), t.unit), verdict(t, v)),
            None if spec.quick => ("–".to_owned(), "not judged in quick mode".to_owned()),
            None => ("–".to_owned(), "not measured".to_owned()),
        };
        let ceiling = t.ceiling.map_or_else(String::new, |c| format!("{c:.2}×"));
        let _ = writeln!(md, "| {} | {measured} | {verdict} | {ceiling} |", t.text);
    }
    let _ = writeln!(
        md,
        "\nThe ceiling is the most any system could reach on this machine: against a peer, \
         raw TCP's ratio to that peer; on RPyC's wire, where the Python side left in the pair \
         handles the same messages per call as in Python → Python, 1 ÷ the fraction of the \
         Python → Python run that this same Python program was on a CPU (median over rounds: \
         the `busy` columns of the RPyC table)."
    );
    (md, problems)
}

/// The pairs on RPyC's wire with one side netref, against Python → Python in the same
/// rounds.
fn mixed_section(r: &Results, md: &mut String, problems: &mut Vec<String>) {
    let mixed: Vec<System> = r.systems.iter().copied().filter(|s| s.is_mixed()).collect();
    if mixed.is_empty() || !r.systems.contains(&System::Rpyc) {
        return;
    }
    let spec = &r.spec;
    let _ = writeln!(
        md,
        "\n### RPyC's wire with one side netref\n\nThe same Python peers \
         (`scripts/rpyc_client.py`, `scripts/rpyc_server.py`) with the other side replaced \
         by netref (`Server::rpyc`, `netref::rpyc::connect`); ratio is the median over \
         rounds of the pair's rate over Python → Python's in the same round.\n"
    );
    let _ = writeln!(
        md,
        "| workload | pair | calls/s | p50 µs | p99 µs | ÷ Python → Python | client busy | server busy |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|--:|");
    for w in Workload::CALLS {
        if !spec.runs(w) {
            continue;
        }
        let mut first = true;
        for s in std::iter::once(System::Rpyc).chain(mixed.iter().copied()) {
            let label = if first {
                workload_name(w, spec.bytes)
            } else {
                String::new()
            };
            first = false;
            let name = if s == System::Rpyc {
                "Python client → Python server"
            } else {
                system_name(s)
            };
            let Some(x) = summarize(r.samples(w, s)) else {
                problems.push(format!("{w:?} on {s:?} produced no number"));
                let _ = writeln!(md, "| {label} | {name} | **missing** | | | | | |");
                continue;
            };
            let ratio = if s == System::Rpyc {
                String::new()
            } else {
                paired(r, (w, s), (w, System::Rpyc))
                    .map_or_else(|| "–".to_owned(), |x| format!("{x:.2}×"))
            };
            let busy = |f: fn(&Sample) -> Option<f64>| {
                let v: Option<Vec<f64>> = r.samples(w, s).iter().map(f).collect();
                v.map_or_else(String::new, |v| format!("{:.2}", median(v)))
            };
            let _ = writeln!(
                md,
                "| {label} | {name} | {} | {} | {} | {ratio} | {} | {} |",
                thousands(x.rate),
                us(x.p50_us),
                us(x.p99_us),
                busy(Sample::client_busy),
                busy(Sample::server_busy)
            );
        }
    }
}

/// Issue 15's rows: a typed call against the same call made by name, tarpc and the raw
/// ping-pong; a stream of small items against raw TCP frames written back to back.
fn typed_and_streams_section(r: &Results, md: &mut String, problems: &mut Vec<String>) {
    let spec = &r.spec;
    let workloads = [Workload::Typed, Workload::Stream];
    if !workloads.iter().any(|w| spec.runs(*w)) {
        return;
    }
    let _ = writeln!(
        md,
        "\n### Typed calls and streams\n\nThe typed call and the dynamic call reach the same \
         member with the same message, each on its own connection to its own server process; \
         the stream's rate is items per second (the clock is read once per 64 items, so there \
         is no latency per item). netref ÷ system as above: the median over rounds of the \
         ratio within each round.\n"
    );
    let _ = writeln!(
        md,
        "| workload | system | calls or items /s | p50 µs | p99 µs | netref ÷ system | how |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|---|");
    for w in workloads {
        if !spec.runs(w) {
            continue;
        }
        let mut first = true;
        for &s in r.systems.iter().filter(|s| s.has(w)) {
            let label = if first {
                workload_name(w, spec.bytes)
            } else {
                String::new()
            };
            first = false;
            let name = if (w, s) == (Workload::Typed, System::Netref) {
                "netref, typed"
            } else {
                system_name(s)
            };
            let Some(x) = summarize(r.samples(w, s)) else {
                problems.push(format!("{w:?} on {s:?} produced no number"));
                let _ = writeln!(md, "| {label} | {name} | **missing** | | | | |");
                continue;
            };
            let latency = |v: f64| if v.is_finite() { us(v) } else { String::new() };
            let ratio = if s == System::Netref {
                String::new()
            } else {
                paired(r, (w, System::Netref), (w, s))
                    .map_or_else(|| "–".to_owned(), |x| format!("{x:.2}×"))
            };
            let how = match (w, s) {
                (Workload::Stream, System::Netref) => {
                    format!("{}, {} items per request", note(w, s), spec.window)
                }
                _ => note(w, s).to_owned(),
            };
            let _ = writeln!(
                md,
                "| {label} | {name} | {} | {} | {} | {ratio} | {how} |",
                thousands(x.rate),
                latency(x.p50_us),
                latency(x.p99_us),
            );
        }
    }
}

/// 1 ÷ the median over rounds of the fraction of Python → Python's run of `w` that one of its
/// two programs (`busy` picks which) spent on a CPU.
fn python_ceiling(r: &Results, w: Workload, busy: fn(&Sample) -> Option<f64>) -> Option<f64> {
    let v: Option<Vec<f64>> = r.samples(w, System::Rpyc).iter().map(busy).collect();
    let b = median(v.filter(|v| !v.is_empty())?);
    (b > 0.0).then(|| 1.0 / b)
}

/// netref's rate over a peer's in the same workload: the median over rounds of the ratio
/// within each round (the two ran back to back, so a slow drift of the machine cancels out).
fn paired(r: &Results, a: (Workload, System), b: (Workload, System)) -> Option<f64> {
    let (xa, xb) = (r.samples(a.0, a.1), r.samples(b.0, b.1));
    if xa.is_empty() || xa.len() != xb.len() {
        return None;
    }
    let ratios = xa
        .iter()
        .zip(xb)
        .map(|(p, q)| p.rate() / q.rate())
        .collect();
    Some(median(ratios)).filter(|x| x.is_finite())
}

fn verdict(t: &Target, v: f64) -> String {
    let ok = if t.at_least {
        v >= t.bound
    } else {
        v <= t.bound
    };
    if ok { "meets" } else { "**misses**" }.to_owned()
}

/// Puts `section` between the markers of the doc at `path` (creating the doc if needed),
/// leaving the hand-written text around them alone.
pub(crate) fn write_doc(path: &Path, section: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{section}\n{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &old[..b], &old[e + END.len()..]),
        _ if old.is_empty() => format!("# Benchmarks\n\n{block}\n"),
        _ => format!("{}\n\n{block}\n", old.trim_end()),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, new)
}
