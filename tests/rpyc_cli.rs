//! The command line on RPyC's wire: `netref serve --rpyc` answers Python's own client, and
//! `netref call rpyc://…` reaches Python servers (rpyc 6.0.2, installed on first use).

mod cli_support;
mod common;

use std::process::Command;

use cli_support::{run, serve};
use common::python::{python, repo};

/// Starts `tests/python/rpyc_service.py MODE` and returns it with its port.
fn python_server(mode: &str) -> (cli_support::Guard, u16) {
    use std::io::BufRead;
    let mut child = Command::new(python())
        .arg(repo().join("tests/python/rpyc_service.py"))
        .arg(mode)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the python server");
    let stdout = child.stdout.take().expect("stdout");
    let guard = cli_support::Guard(child, None);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the python server's port");
    let port = line
        .trim()
        .strip_prefix("LISTEN ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line from the python server: {line}"));
    (guard, port)
}

#[test]
fn serve_rpyc_answers_a_python_script() {
    let (_server, addr) = serve(&["--rpyc", "--listen", "127.0.0.1:0"]);
    let port = addr.rsplit_once(':').expect("HOST:PORT").1;
    let script = r#"
import sys, rpyc
conn = rpyc.connect("127.0.0.1", int(sys.argv[1]))
root = conn.root
assert root.add(1, 2) == 3
assert root.counter.inc() == 1
ticks = []
assert root.every(3, ticks.append) == 3 and ticks == [0, 1, 2]
assert list(root.numbers(4)) == [0, 1, 2, 3]
assert "add" in dir(root) and "internal" not in dir(root)
try:
    root.no_such_member
    raise SystemExit("no AttributeError")
except AttributeError:
    pass
conn.close()
print("python: ok")
"#;
    let out = Command::new(python())
        .args(["-c", script, port])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "python: ok\n");
}

#[test]
fn serve_rpyc_refuses_a_public_address_without_tls() {
    let out = run(&["serve", "--rpyc", "--listen", "0.0.0.0:0"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("no authentication"), "{}", out.stderr);
    let out = run(&["serve", "--rpyc", "--secret-file", "/dev/null"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
}

#[test]
fn call_reaches_a_python_service() {
    let (_py, port) = python_server("service");
    let target = format!("rpyc://127.0.0.1:{port}");
    let out = run(&["call", &target, "add", "1", "2"], "");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "3\n"),
        "{out:?}"
    );
    let out = run(&["call", &target, "greet", "\"ada\""], "");
    assert_eq!(out.stdout, "\"hello, ada!\"\n", "{out:?}");
    // a property is read when it is not callable
    let out = run(&["call", &target, "counter"], "");
    assert_eq!(out.code(), Some(0), "{out:?}");
    // a Python exception: exit status 1, the class and message on stderr
    let out = run(&["call", &target, "fail"], "");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("builtins.ValueError"), "{}", out.stderr);
}

#[test]
fn call_reads_a_live_rpyc_classic_process() {
    let (_py, port) = python_server("classic");
    let target = format!("rpyc://127.0.0.1:{port}");
    let out = run(&["call", &target, "eval", "6*7"], "");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "42\n"),
        "{out:?}"
    );
    let out = run(&["call", &target, "getmodule", "os"], "");
    assert_eq!(out.code(), Some(0), "{out:?}");
    // a module's id_pack names the module itself
    assert!(out.stdout.contains("<python os 0x"), "{}", out.stdout);
    let out = run(&["call", &target, "eval", "__import__('os').getcwd()"], "");
    let cwd = repo().canonicalize().unwrap();
    assert_eq!(
        out.stdout,
        format!("{:?}\n", cwd.to_str().unwrap()),
        "{out:?}"
    );
}

#[test]
fn repl_reaches_a_python_process() {
    let (_py, port) = python_server("classic");
    let target = format!("rpyc://127.0.0.1:{port}");
    let script = "root.getmodule(\"os\").getcwd()\nroot.eval(\"6*7\")\n";
    let out = run(&["repl", &target], script);
    let cwd = repo().canonicalize().unwrap();
    assert_eq!(
        out.stdout,
        format!("{:?}\n42\n", cwd.to_str().unwrap()),
        "{out:?}"
    );
    // `:trace` shows RPyC's own messages among the bridge's, in order
    let out = run(&["repl", &target], ":trace on\nroot.eval(\"40+2\")\n");
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in {out:?}"))
    };
    // the bridge reads the bound method, then calls it
    let call = at("-> Call 1 root.eval(\"40+2\")");
    let getattr = at("-> REQUEST");
    let reply = lines
        .iter()
        .position(|l| l.starts_with("<- REPLY") && l.ends_with("= 42"))
        .unwrap_or_else(|| panic!("no reply of 42 in {out:?}"));
    let ret = at("<- Return 1 = 42");
    assert!(call < getattr && getattr < reply && reply < ret, "{out:?}");
    assert!(
        lines[getattr].contains("GETATTR") && lines[getattr].contains("\"eval\""),
        "{out:?}"
    );
}
