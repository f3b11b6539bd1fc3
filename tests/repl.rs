//! `netref repl`, driven end to end with piped stdin; the completer through the library;
//! and `examples/live_debug.rs` attached to from the real binary.

mod cli_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cli_support::{run, serve};
use netref::repl::{Outcome, Session};

/// Runs the in-process lab's REPL on `script`.
fn repl(script: &str) -> cli_support::Output {
    run(&["repl"], script)
}

#[test]
fn quit_on_a_fresh_start() {
    let out = repl(":quit\n");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout, "",
        "no prompt or greeting when stdin is not a terminal"
    );
    // The end of the input leaves as well.
    let out = repl("root.add(1, 2)\n");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "3\n"),
        "{out:?}"
    );
}

#[test]
fn a_session_end_to_end() {
    let script = r#"
root.add(1, 2)
let x = root.add(20, 22)
x
root.counter.step = 5
root.counter.inc()
root.counter.step
root.counter.value = 1
root.nope(1)
root.add(2, 2)
root.every(3, print)
list(root.numbers(5))
root.echo(#{name: "lab", "tags": [blob(2, 1), true, ()], n: -1.5})
root.kv.set("k",
            [1, 2])
root.kv["k"]
let f = root.add; f(1, 2)
let total = 0; root.every(100, |i| total += i * 10); total
let s = 0; for x in root.numbers(1000) { s += x }; s
print(root.counter)
1 == 1
0x10
:quit
root.add(100, 100)
"#;
    let out = repl(script);
    // Two inputs failed: the session went on, and says so in its exit status.
    assert_eq!(out.code(), Some(1), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let expected_head = ["3", "42", "5", "5", "4"];
    assert_eq!(lines[..5], expected_head, "{}", out.stdout);
    // Setting a read-only property: one readable error block on stderr, and the session
    // goes on.
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        errors[0],
        "error: wrong operation: property `value` of `Counter` is read-only"
    );
    assert!(errors[1].starts_with("  at: "), "{}", out.stderr);
    assert_eq!(
        errors[2],
        "error: no such member: `Lab` has no exposed member `nope`"
    );
    assert!(errors[3].starts_with("  at: ") && errors[3].ends_with("root.nope"));
    // The callback prints on the REPL side, then the call returns 3.
    assert_eq!(lines[5..9], ["0", "1", "2", "3"]);
    assert_eq!(lines[9], "[0, 1, 2, 3, 4]");
    assert_eq!(
        lines[10],
        r#"#{"n": -1.5, "name": "lab", "tags": [b"\x01\x01", true, ()]}"#
    );
    assert_eq!(lines[11], "[1, 2]");
    assert_eq!(lines[12], "3", "a variable holding a method calls it");
    // A closure lent as a callback, summed over 100 calls.
    assert_eq!(lines[13], (0..100).map(|i| i * 10).sum::<i64>().to_string());
    // A loop over a remote iterator (pulled in batches).
    assert_eq!(lines[14], (0..1000).sum::<i64>().to_string());
    assert!(
        lines[15].starts_with("<Counter #1v") && lines[15].ends_with('>'),
        "{}",
        out.stdout
    );
    assert_eq!(lines[16..18], ["true", "16"]);
    assert_eq!(lines.len(), 18, "nothing after :quit runs: {}", out.stdout);
}

#[test]
fn errors_exit_1_at_the_end_and_syntax_errors_point() {
    let out = repl("root.add(1,,2)\nroot.add(1, 1)\nx = 1\nroot.nope\n");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "2\n");
    assert_eq!(
        out.stderr,
        "error: syntax error: Unexpected ','\n  root.add(1,,2)\n             ^\n\
         error: name error: no variable `x`; declare one with `let x = …`\n\
         error: no such member: `Lab` has no exposed member `nope`\n  at: memory/first: root.nope\n"
    );
}

#[test]
fn trace_names_the_messages() {
    let out =
        repl(":trace on\nroot.echo(\"hi\")\nroot.every(1, print)\n:trace off\nroot.add(1, 1)\n");
    let text = &out.stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("  -> Call ") && lines[0].ends_with("root.echo(\"hi\")"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("  <- Return ") && lines[1].ends_with("= \"hi\""),
        "{text}"
    );
    assert_eq!(lines[2], "\"hi\"");
    // The callback's call comes back to us, and the callback is released afterwards.
    assert!(text.contains("root.every("), "{text}");
    assert!(text.contains("  <- Call "), "{text}");
    assert!(text.contains("  -> Return "), "{text}");
    assert!(text.contains("Release"), "{text}");
    assert_eq!(
        lines.last(),
        Some(&"2"),
        "no trace after :trace off: {text}"
    );
    assert!(!text.contains("Ping"), "{text}");
}

#[test]
fn tables_count_references_and_drop_them() {
    let script = r#"
:tables
let f = root.files.open("notes.txt", "w")
f.write("hello")
:tables
f = ()
:tables
let g = root.counter
g = ()
:tables
"#;
    let out = repl(script);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let text = out.stdout;
    let blocks: Vec<&str> = text.split("repl side: ").skip(1).collect();
    assert_eq!(blocks.len(), 4, "{text}");
    let empty = "0 exported, 0 imported\npeer side: 0 exported, 0 imported\n";
    assert!(blocks[0].starts_with(empty), "{text}");
    // One row per object on each side: the holder's import and the owner's export, with
    // the same id and count, and the type from the owner.
    assert!(
        blocks[1].starts_with(
            "0 exported, 1 imported\n  import #1v1 File, count 1\n\
             peer side: 1 exported, 0 imported\n  export #1v1 File, count 1\n\
             variables holding objects: f = <File #1v1>"
        ),
        "{text}"
    );
    assert!(blocks[2].starts_with(empty), "{text}");
    assert!(blocks[3].starts_with(empty), "{text}");
}

#[test]
fn one_way_messages_come_after_the_result_in_a_fixed_order() {
    let script = ":trace mermaid\n:trace on\nroot.race(partial(root.sleep, 10), partial(root.add, 1, 2))\n:tables\n:trace mermaid\n";
    let out = repl(script);
    // `:trace mermaid` before `:trace on` is refused.
    assert_eq!(out.code(), Some(1), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        out.stderr.starts_with("error: :trace mermaid"),
        "{}",
        out.stderr
    );
    let result = lines.iter().position(|l| *l == "3").expect("the result");
    let after: Vec<&str> = lines[result + 1..]
        .iter()
        .copied()
        .take_while(|l| l.starts_with("  "))
        .collect();
    // The lab cancels its call of the slow callback; the callback's own call to `sleep`
    // is cancelled in turn; then the lab releases both callbacks.
    assert_eq!(after.len(), 4, "{}", out.stdout);
    assert!(after[0].starts_with("  <- Cancel "), "{}", out.stdout);
    assert!(after[1].starts_with("  -> Cancel "), "{}", out.stdout);
    assert_eq!(after[2..], ["  <- Release #1v1x1", "  <- Release #2v1x1"]);
    // Nothing is in flight afterwards: both tables are empty.
    assert!(
        out.stdout
            .contains("repl side: 0 exported, 0 imported\npeer side: 0 exported, 0 imported"),
        "{}",
        out.stdout
    );
    // The diagram has one arrow per message shown, one-way ones with an open head.
    let diagram = out
        .stdout
        .split("sequenceDiagram\n")
        .nth(1)
        .expect("a diagram");
    let arrows: Vec<&str> = diagram.lines().filter(|l| l.contains(": ")).collect();
    let traced = lines
        .iter()
        .filter(|l| l.starts_with("  ->") || l.starts_with("  <-"));
    assert_eq!(arrows.len(), traced.count(), "{diagram}");
    assert!(diagram.contains("    participant A as repl\n    participant B as lab\n"));
    assert!(arrows[0].starts_with("    A->>B: Call "), "{diagram}");
    assert!(arrows.iter().any(|a| a.starts_with("    B-)A: Cancel ")));
    assert!(arrows.iter().any(|a| a.starts_with("    A-)B: Cancel ")));
    assert!(arrows.iter().any(|a| a.starts_with("    B-->>A: Return ")));
    assert!(
        arrows.contains(&"    B-)A: Release #35;1v1x1"),
        "ids are escaped: {diagram}"
    );
}

#[test]
fn pipelining_is_one_round_trip_and_partial_calls_back_in() {
    let script = r#":trace on
root.files.open.pipeline("b.txt", "w").write("two")
root.map([1, 2], partial(root.add, 10))
"#;
    let out = repl(script);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("  -> Call ")
            && lines[0].ends_with(r#"root.files.open("b.txt", "w") [pipelined]"#),
        "{}",
        out.stdout
    );
    let id = lines[0].split_whitespace().nth(2).unwrap();
    assert!(
        lines[1].ends_with(&format!(r#"answer(call {id}).write("two")"#)),
        "the write is sent before the open has returned: {}",
        out.stdout
    );
    assert!(lines[2].starts_with("  <- Return ") && lines[2].ends_with(" = 3"));
    assert_eq!(lines[3], "3");
    assert_eq!(lines[4], format!("  -> Finish {id}"));
    // `partial` makes a callback of ours that calls the lab while `map` is running.
    let rest = &lines[5..];
    assert_eq!(rest.last(), Some(&"  <- Release #1v1x1"), "{}", out.stdout);
    assert!(rest.contains(&"[11, 12]"));
    let nested = rest
        .iter()
        .filter(|l| l.ends_with("root.add(10, 1)"))
        .count();
    assert_eq!(nested, 1, "{}", out.stdout);
}

#[test]
fn echo_prints_a_transcript() {
    let out = run(
        &["repl", "--echo"],
        "// a comment\nroot.add(1,\n  2)\n\nroot.nope\n",
    );
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(
        out.stdout,
        "netref> // a comment\nnetref> root.add(1,\n   ...>   2)\n3\nnetref> root.nope\n\
         error: no such member: `Lab` has no exposed member `nope`\n  at: memory/first: root.nope\n"
    );
}

#[test]
fn time_and_help_and_dir() {
    let out =
        repl(":time on\nroot.sleep(0.01)\n:time off\ndir(root.counter)\nhelp(root.add)\n:help\n");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0.01");
    assert!(
        lines[1].starts_with("time: ") && lines[1].ends_with(" ms"),
        "{}",
        out.stdout
    );
    assert_eq!(lines[2], r#"["inc", "reset", "value", "step"]"#);
    assert_eq!(lines[3], "add(a: Value, b: Value) -> Result<Value>");
    assert!(out.stdout.contains(":trace on|off"), "{}", out.stdout);
}

#[test]
fn a_remote_lab_through_the_binary() {
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    let out = run(
        &["repl", &addr],
        "root.counter.inc()\nroot.counter.inc()\n:tables\n",
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["1", "2"]);
    assert_eq!(lines[2], "repl side: 0 exported, 0 imported");
    assert!(
        lines[3].starts_with("peer side: not visible from here"),
        "{}",
        out.stdout
    );
    // A second client sees the same lab; `:tables` names the types of what it imports,
    // even of objects it never displayed.
    let out = run(
        &["repl", &addr],
        "root.counter.value\nlet c = root.counter\nlet k = root.kv\n:tables\n",
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[..2],
        ["2", "repl side: 0 exported, 2 imported"],
        "{out:?}"
    );
    let mut rows = lines[2..4].to_vec();
    rows.sort();
    assert!(
        rows[0].starts_with("  import #") && rows[0].ends_with(" Counter, count 1"),
        "{}",
        out.stdout
    );
    assert!(rows[1].ends_with(" Map, count 1"), "{}", out.stdout);
    let out = run(&["repl", &cli_support::closed_port()], "root\n");
    assert_eq!(out.code(), Some(2), "{out:?}");
}

#[tokio::test]
async fn completion_of_members_variables_and_commands() {
    let session = Session::embedded(Default::default()).await.unwrap();
    session.set_output(|_: &str| {});
    assert_eq!(
        session.complete("root.co", 7).await,
        (5, vec!["counter".to_string()])
    );
    let (start, all) = session.complete("root.", 5).await;
    assert_eq!(start, 5);
    for m in [
        "add", "counter", "echo", "every", "files", "kv", "numbers", "sleep",
    ] {
        assert!(all.contains(&m.to_string()), "{all:?}");
    }
    assert!(!all.contains(&"exec".to_string()));
    assert_eq!(
        session.complete("root.counter.s", 14).await,
        (13, vec!["step".to_string()])
    );
    assert_eq!(
        session.complete("x = root.add(1, root.k", 22).await,
        (21, vec!["kv".to_string()])
    );
    assert_eq!(session.eval("let cnt = root.counter").await, Outcome::Ok);
    assert_eq!(
        session.complete("cn", 2).await,
        (0, vec!["cnt".to_string()])
    );
    assert_eq!(
        session.complete("cnt.i", 5).await,
        (4, vec!["inc".to_string()])
    );
    assert_eq!(
        session.complete("pr", 2).await,
        (0, vec!["print".to_string()])
    );
    assert_eq!(
        session.complete(":tr", 3).await,
        (0, vec![":trace".to_string()])
    );
    assert_eq!(session.complete(":trace o", 8).await.1, vec!["off", "on"]);
    assert_eq!(session.complete(":trace m", 8).await.1, vec!["mermaid"]);
    assert_eq!(
        session.complete("\"root.co", 8).await.1,
        Vec::<String>::new()
    );
    session.close().await;
}

#[tokio::test]
async fn completion_is_cached_per_type() {
    let session = Session::embedded(Default::default()).await.unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    session.set_output(move |l: &str| sink.lock().unwrap().push(l.to_owned()));
    session
        .eval("let a = root.files.open(\"a\", \"w\"); let b = root.files.open(\"b\", \"w\")")
        .await;
    let before = session.connection().stats().calls_sent;
    assert!(session.complete("a.wr", 4).await.1 == vec!["write".to_string()]);
    let after_a = session.connection().stats().calls_sent;
    assert!(session.complete("b.wr", 4).await.1 == vec!["write".to_string()]);
    let after_b = session.connection().stats().calls_sent;
    assert!(after_a > before);
    // `b` is a File too: one `help` to learn its type, no second `dir`.
    assert_eq!(after_b - after_a, 1);
    session.close().await;
}

#[tokio::test]
async fn a_dropped_eval_cancels_its_call() {
    let session = Session::embedded(Default::default()).await.unwrap();
    session.set_output(|_: &str| {});
    let slow = session.eval("root.sleep(30)");
    assert!(tokio::time::timeout(Duration::from_millis(200), slow)
        .await
        .is_err());
    // The session goes on at once.
    assert_eq!(session.eval("root.add(1, 1)").await, Outcome::Ok);
    session.close().await;
}

#[allow(dead_code)]
#[path = "../examples/live_debug.rs"]
mod live_debug;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_the_live_debug_example() {
    use tracing_subscriber::filter::LevelFilter;
    let (tap, control) = live_debug::init_logging(LevelFilter::WARN);
    let service = live_debug::start(tap, control, LevelFilter::WARN);
    let debug = netref::debug::serve(service.root.clone(), 0).await.unwrap();
    let addr = debug.local_addr().to_string();
    assert!(debug.local_addr().ip().is_loopback());

    let script = "let n = root.stats.processed\ntype(n)\nroot.config.log_level\nroot.config.log_level = \"debug\"\nroot.config.log_level\nroot.config.log_level = \"error\"\n";
    let out = tokio::task::spawn_blocking(move || run(&["repl", &addr], script))
        .await
        .unwrap();
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "\"int\"\n\"warn\"\n\"debug\"\n");

    // The level really changed in the service.
    let local = netref::Proxy::local(service.root.clone());
    let level = local.attr("config").attr("log_level").get().await.unwrap();
    assert_eq!(level.as_str(), Some("error"));

    // Tap the logs over a connection: job reports arrive at the subscriber.
    let conn = netref::connect(debug.local_addr()).await.unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let cb = netref::callback(move |l: String| sink.lock().unwrap().push(l));
    conn.root()
        .attr("logs")
        .call_method("subscribe", (cb, "info"))
        .await
        .unwrap();
    conn.root().call_method("submit", (3,)).await.unwrap();
    for _ in 0..1000 {
        if lines.lock().unwrap().iter().any(|l| l.contains("job done")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = lines.lock().unwrap().clone();
    // The target is the module path: `live_debug` when run as the example.
    assert!(
        got.iter()
            .any(|l| l.starts_with("INFO ") && l.contains("live_debug: job done")),
        "{got:?}"
    );
    conn.close().await;

    // The example script does the same from `netref run` (one service per test process:
    // its log tap is the process's tracing subscriber).
    let script = example_script("live_debug.rhai");
    let addr = debug.local_addr().to_string();
    let out = tokio::task::spawn_blocking(move || run(&["run", &script, &addr], ""))
        .await
        .unwrap();
    assert_eq!(out.code(), Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].starts_with("3 workers; "), "{}", out.stdout);
    assert_eq!(lines[1], "log level: error -> debug");
    let tapped: u64 = lines[2]
        .strip_prefix("tapped ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(tapped >= 20, "the closure saw every submitted job: {out:?}");
    assert_eq!(lines[3], "log level back to error");
    let level = local.attr("config").attr("log_level").get().await.unwrap();
    assert_eq!(level.as_str(), Some("error"));
    debug.shutdown().await;
}

/// The path of a file in `examples/scripts/`.
fn example_script(name: &str) -> String {
    format!("{}/examples/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A script file for one test, removed when dropped.
struct TempScript(std::path::PathBuf);

impl TempScript {
    fn new(name: &str, text: &str) -> TempScript {
        let path = std::env::temp_dir().join(format!("netref-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write the script");
        TempScript(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a utf-8 temp path")
    }
}

impl Drop for TempScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn run_the_fanout_example_script() {
    let out = run(&["run", &example_script("fanout.rhai"), "--", "6"], "");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "6 jobs done, sum of squares 55\nrace won with 42\n\
         a failing job: failed: thrown: job 2 failed\nfiles: [\"report.txt\"]\n",
        "{out:?}"
    );
    assert_eq!(out.stderr, "");
    // Its own check of its arguments: an uncaught error, with its position.
    let out = run(&["run", &example_script("fanout.rhai"), "--", "0"], "");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: thrown: JOBS must be at least 1, not 0\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("fanout.rhai:10:"), "{}", out.stderr);
}

#[test]
fn run_exit_codes_and_positions() {
    let script = TempScript::new(
        "fails.rhai",
        "#!/usr/bin/env -S netref run\nlet x = root.add(1, 2);\nprint(x);\n\nroot.counter.nope(x);\nprint(\"never\");\n",
    );
    let out = run(&["run", script.path()], "");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "3\n");
    assert!(
        out.stderr
            .starts_with("error: no such member: `Counter` has no exposed member `nope`\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("  at {}:5:", script.path())),
        "the position of the failed call: {}",
        out.stderr
    );
    // Against a remote lab, with arguments; `quit()` ends a script with status 0.
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    let ok = TempScript::new(
        "ok.rhai",
        "print(args);\nprint(root.add(args[0], args[1]));\nquit();\nprint(\"never\");\n",
    );
    let out = run(&["run", ok.path(), &addr, "--", "a", "b"], "");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "[\"a\", \"b\"]\nab\n"),
        "{out:?}"
    );
    // A connection failure: 2.
    let out = run(&["run", ok.path(), &cli_support::closed_port()], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
    // A syntax error is an uncaught error too.
    let bad = TempScript::new("bad.rhai", "let x = ;\n");
    let out = run(&["run", bad.path()], "");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("error: syntax error: "),
        "{}",
        out.stderr
    );
}

#[test]
fn load_runs_a_file_in_the_session() {
    let lib = TempScript::new(
        "lib.rhai",
        "fn double(x) { x * 2 }\nlet loaded = root.add(20, 1);\n",
    );
    let out = repl(&format!(
        ":load {}\nloaded\ndouble(loaded)\n:load /nonexistent/netref.rhai\n",
        lib.path()
    ));
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "21\n42\n");
    assert!(
        out.stderr
            .starts_with("error: cannot read /nonexistent/netref.rhai"),
        "{}",
        out.stderr
    );
}

/// The REPL in a pseudo-terminal, as a person types into it.
#[cfg(unix)]
mod terminal {
    use super::cli_support::pty::Pty;

    fn lab() -> Pty {
        let mut t = Pty::spawn(&["repl"]);
        t.expect("netref> ");
        t
    }

    fn quit(mut t: Pty) {
        t.send(":quit\r");
        assert_eq!(t.wait(), Some(0), "{}", t.screen());
    }

    #[test]
    fn lines_typed_in_one_burst_all_run() {
        let mut t = lab();
        t.send("let x = 1\rlet y = 20\rlet z = 300\rprint(`sum=${x + y + z}`)\r");
        t.expect("sum=321");
        quit(t);
    }

    #[test]
    fn a_bracketed_paste_of_three_statements_runs_all_three() {
        let mut t = lab();
        // Pasted text waits for Enter, like a typed line; then each statement runs.
        t.paste("let a = root.add(1, 2)\nlet b = a * 10\nprint(`pasted=${a + b}`)\n");
        t.send("\r");
        t.expect("pasted=33");
        t.paste("let c = 4\nprint(`c=${c}`)");
        t.send("\r");
        t.expect("c=4");
        // Unbracketed, as a terminal without bracketed paste sends it: line by line.
        t.send("let d = 5\rlet e = d + 1\rprint(`e=${e}`)\r");
        t.expect("e=6");
        quit(t);
    }

    #[test]
    fn closures_and_loops_over_remote_iterators() {
        let mut t = lab();
        t.send("let total = 0\r");
        t.send("root.every(100, |i| total += i * 10)\r");
        t.expect("100");
        t.send("print(`total=${total}`)\r");
        let want: i64 = (0..100).map(|i| i * 10).sum();
        t.expect(&format!("total={want}"));
        t.send("let s = 0; for n in root.numbers(1000) { s += n }; print(`s=${s}`)\r");
        t.expect(&format!("s={}", (0..1000).sum::<i64>()));
        quit(t);
    }

    #[test]
    fn the_repl_outlives_its_peer_and_reconnects() {
        let addr = super::cli_support::closed_port();
        let (server, _) = super::serve(&["--listen", &addr]);
        let mut t = Pty::spawn(&["repl", &addr]);
        t.expect("netref> ");
        t.send("let kept = 41\rlet c = root.counter\rprint(`one=${root.add(1, 0)}`)\r");
        t.expect("one=1");
        // The server stops: the REPL says so and stays.
        drop(server);
        t.send("root.add(1, 1)\r");
        t.expect("the connection is closed");
        t.send("print(`kept=${kept}`)\r");
        t.expect("kept=41");
        // It comes back on the same address: `:reconnect` dials it again.
        let (_server, _) = super::serve(&["--listen", &addr]);
        t.send(":reconnect\r");
        t.expect("attached to");
        t.send("print(`two=${root.add(kept, 1)}`)\r");
        t.expect("two=42");
        // A proxy of the lost connection says so.
        t.send("c.inc()\r");
        t.expect("belongs to a connection that was lost");
        quit(t);
    }

    #[test]
    fn the_repl_heals_when_its_server_restarts() {
        let addr = super::cli_support::closed_port();
        let (server, _) = super::serve(&["--listen", &addr]);
        let mut t = Pty::spawn(&["repl", &addr]);
        t.expect("netref> ");
        t.send("let kept = 41\rlet c = root.counter\rprint(`one=${root.add(1, 0)}`)\r");
        t.expect("one=1");
        // The server stops: the REPL says so by itself, at the prompt, before any input
        // (its connection's on_broken), and stays.
        drop(server);
        t.expect("the connection is closed");
        t.expect("re-dialing");
        // It comes back on the same address: the next input takes the new connection, no
        // `:reconnect` needed; the variable holding a plain value kept it.
        let (server, _) = super::serve(&["--listen", &addr]);
        t.send("print(`two=${root.add(kept, 1)}`)\r");
        t.expect("again (connection 2)");
        t.expect("two=42");
        // A proxy of the lost connection says so.
        t.send("c.inc()\r");
        t.expect("belongs to a connection that was lost");
        // Once more, through `:reconnect`, to connection 3.
        drop(server);
        t.expect("the connection is closed");
        let (_server, _) = super::serve(&["--listen", &addr]);
        t.send(":reconnect\r");
        t.expect("again (connection 3)");
        t.send("print(`three=${root.add(kept, 2)}`)\r");
        t.expect("three=43");
        quit(t);
    }

    #[test]
    fn an_unfinished_input_continues_after_a_continuation_prompt() {
        let mut t = lab();
        t.send("root.add(1,\r");
        t.expect("...> ");
        t.send("2)\r");
        t.expect("3");
        quit(t);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_input_shows_its_cancel_in_its_own_trace() {
    let session = Session::embedded(Default::default()).await.unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    session.set_output(move |l: &str| sink.lock().unwrap().push(l.to_owned()));
    assert_eq!(session.eval(":trace on").await, Outcome::Ok);
    let canceller = session.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        canceller.cancel();
    });
    // The input ends with an error once cancelled; its `Cancel` is shown before it returns.
    assert_eq!(session.eval("root.sleep(30)").await, Outcome::Failed);
    let shown = lines.lock().unwrap().clone();
    let cancel = shown.iter().position(|l| l.starts_with("  -> Cancel "));
    let error = shown.iter().position(|l| l.starts_with("error: cancelled"));
    assert!(cancel.is_some() && error.is_some(), "{shown:?}");
    // A loop stops too.
    let canceller = session.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        canceller.cancel();
    });
    assert_eq!(session.eval("loop { }").await, Outcome::Failed);
    assert_eq!(session.eval("root.add(1, 1)").await, Outcome::Ok);
    session.close().await;
}

/// A session on a `Resilient` connection follows it: the loss is reported as it happens,
/// the next input takes the re-dialed connection (no `:reconnect`), plain values stay,
/// proxies of the lost connection stay dead; `close` stops the re-dialing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healing_session_follows_its_connection_through_a_restart() {
    use netref::lab::{Lab, LabOptions};
    use netref::resilient::ResilientOptions;
    use netref::Server;

    let lab = || Lab::new(LabOptions::default()).unwrap().into_root();
    let first = Server::with_root(lab()).bind("127.0.0.1:0").await.unwrap();
    let addr = first.local_addr();
    let options = ResilientOptions {
        wait: Duration::from_secs(10),
        ..ResilientOptions::default()
    };
    let link = netref::connect_resilient_with(addr, options).await.unwrap();
    let session = Session::healing(link.clone()).await.unwrap();
    assert!(session.heals());
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    session.set_output(move |l: &str| sink.lock().unwrap().push(l.to_owned()));
    let shown = |lines: &Arc<Mutex<Vec<String>>>| lines.lock().unwrap().clone();
    assert_eq!(session.eval("let kept = 41").await, Outcome::Ok);
    assert_eq!(session.eval("root.counter.inc()").await, Outcome::Ok);
    assert_eq!(session.eval("let c = root.counter").await, Outcome::Ok);
    let first_conn = session.connection();

    // The server goes away: the session says so without an input.
    first.shutdown().await;
    drop(first);
    let broken = tokio::time::timeout(Duration::from_secs(10), link.broken())
        .await
        .expect("on_broken within 10 s");
    assert_eq!(broken.generation, 1);
    // The notice comes from the on_broken callbacks, which run just after that.
    let notice = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let said = shown(&lines);
            if let Some(l) = said.iter().find(|l| l.contains("the connection is closed")) {
                break l.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no notice: {:?}", shown(&lines)));
    assert!(notice.contains("re-dialing"), "{notice}");

    // A fresh lab on the same address: the next input re-dials through the Resilient.
    let _second = Server::with_root(lab()).bind(addr).await.unwrap();
    lines.lock().unwrap().clear();
    assert_eq!(session.eval("kept + root.add(0, 1)").await, Outcome::Ok);
    let said = shown(&lines);
    assert!(
        said.iter().any(|l| l.contains("again (connection 2)")),
        "{said:?}"
    );
    assert_eq!(said.last().map(String::as_str), Some("42"), "{said:?}");
    assert_eq!(link.generation(), 2);
    assert!(first_conn.is_closed());
    assert!(!session.connection().is_closed());
    // The new peer's objects are its own: a fresh counter, not the one counted before.
    lines.lock().unwrap().clear();
    assert_eq!(session.eval("root.counter.value").await, Outcome::Ok);
    assert_eq!(shown(&lines), ["0"]);
    // The proxy taken before the loss stays dead.
    assert_eq!(session.eval("c.inc()").await, Outcome::Failed);
    let said = shown(&lines);
    assert!(
        said.iter()
            .any(|l| l.contains("belongs to a connection that was lost")),
        "{said:?}"
    );

    // Closing the session stops the Resilient: no re-dial after it.
    session.close().await;
    assert!(link.current().is_none_or(|c| c.is_closed()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(link.generation(), 0, "closed, not re-dialed");
}

/// Every REPL session `docs/repl.md` shows against the lab runs as written: each
/// ```` ```text ```` block of `netref> ` lines before the live-debugging section, run in a
/// fresh lab, prints exactly what the page shows.
#[test]
fn the_docs_repl_sessions_run_as_written() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/repl.md"))
        .expect("read docs/repl.md");
    let lab_part = &doc[..doc.find("## Live debugging").expect("the section")];
    let mut checked = 0;
    for block in lab_part.split("```text\n").skip(1) {
        let body = &block[..block.find("```").expect("a closed block")];
        if !body.starts_with("netref> ") {
            continue;
        }
        let inputs: String = body
            .lines()
            .filter_map(|l| l.strip_prefix("netref> "))
            .map(|l| format!("{l}\n"))
            .collect();
        let out = run(&["repl", "--echo"], &inputs);
        assert_eq!(out.stdout, body, "docs/repl.md block:\n{body}");
        checked += 1;
    }
    assert!(checked >= 5, "{checked} sessions checked");
}

#[test]
fn the_rough_edges_of_the_language() {
    // `0x10` and `1 == 1` work; bare :trace, :time and :timeout say their state and usage;
    // type names take the right article; `quit` and `exit()` leave.
    let out = repl(":trace\n:time\n:timeout\n0x10\n1 == 1\nlen(5)\nquit\nroot.add(1, 1)\n");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(
        out.stdout,
        "trace is off; usage: :trace on|off|mermaid\ntime is off; usage: :time on|off\n\
         timeout is off (the connection's default); usage: :timeout SECONDS (0 < SECONDS <= 86400) or :timeout off\n\
         16\ntrue\n",
        "{out:?}"
    );
    assert_eq!(out.stderr, "error: type error: an int has no length\n");
    let out = repl("exit()\nroot.add(1, 1)\n");
    assert_eq!((out.code(), out.stdout.as_str()), (Some(0), ""), "{out:?}");
}
