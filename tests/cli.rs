//! `netref serve` and `netref call`, driven as real processes on loopback.

mod cli_support;

use std::io::Write;

use cli_support::{closed_port, run, run_with, serve, serve_own_sandbox, temp_dir, NETREF};

#[test]
fn call_prints_a_value_as_json() {
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    let out = run(&["call", &addr, "add", "1", "2"], "");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "3\n");

    let out = run(&["call", &addr, "echo", r#"{"a": [1, "x"]}"#], "");
    assert_eq!(out.stdout, "{\"a\":[1,\"x\"]}\n", "{out:?}");
    // Not JSON: taken as a string.
    let out = run(&["call", &addr, "echo", "hello world"], "");
    assert_eq!(out.stdout, "\"hello world\"\n", "{out:?}");
    let out = run(&["call", &addr, "add", "-1", "-2.5"], "");
    assert_eq!(out.stdout, "-3.5\n", "{out:?}");
    let out = run(&["call", &addr, "echo", "--", "--not-an-option"], "");
    assert_eq!(out.stdout, "\"--not-an-option\"\n", "{out:?}");
    // A property is read when no argument is given.
    let out = run(&["call", &addr, "counter.value"], "");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "0\n"),
        "{out:?}"
    );
}

#[test]
fn call_prints_an_object_as_a_reference() {
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    let out = run(&["call", &addr, "counter"], "");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with("{\"$ref\":\"Counter #"),
        "{}",
        out.stdout
    );
    let out = run(&["call", &addr, "numbers", "3"], "");
    assert!(out.stdout.starts_with("{\"$ref\":\"Iter #"), "{out:?}");
}

#[test]
fn a_remote_error_exits_1() {
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    let out = run(&["call", &addr, "fail", "boom"], "");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.starts_with("error: failed: boom"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("type: netref::lab::LabError"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("root.fail"), "{}", out.stderr);

    let out = run(&["call", &addr, "files.open", "../../etc/passwd"], "");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("sandbox"), "{}", out.stderr);

    let out = run(&["call", &addr, "nope"], "");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("error: no such member"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_refused_connection_exits_2() {
    let addr = closed_port();
    let out = run(&["call", &addr, "add", "1", "2"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_usage_exits_2() {
    let out = run(&["call", "127.0.0.1:1", "a..b"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    let out = run(&["serve", "--listen", "0.0.0.0:0", "--allow-exec"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("refusing --allow-exec"),
        "{}",
        out.stderr
    );
}

#[test]
fn call_through_a_child_process_on_stdio() {
    let target = format!("'{NETREF}' serve --stdio");
    let out = run(&["call", &target, "add", "40", "2"], "");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "42\n"),
        "{out:?}"
    );
}

#[cfg(unix)]
#[test]
fn serve_on_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("netref-cli-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let (_server, addr) = serve(&["--unix", path.to_str().expect("utf-8 temp path")]);
    assert!(addr.starts_with("unix:"), "{addr}");
    let out = run(&["call", &addr, "add", "2", "2"], "");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "4\n"),
        "{out:?}"
    );
    drop(_server);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn exec_exists_only_with_allow_exec() {
    let (_plain, addr) = serve(&["--listen", "127.0.0.1:0"]);
    let out = run(&["call", &addr, "exec", "echo hi", "null"], "");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("error: no such member"),
        "{}",
        out.stderr
    );

    let (_exec, addr) = serve(&["--listen", "127.0.0.1:0", "--allow-exec"]);
    let script = "let c = collector()\nroot.exec([\"echo\", \"from exec\"], c)\nlist(c)\n";
    let out = run(&["repl", &addr], script);
    assert_eq!(out.stdout, "0\n[\"from exec\"]\n", "{out:?}");
}

#[test]
fn secret_file_is_required_by_the_server() {
    let dir = std::env::temp_dir();
    let secret = dir.join(format!("netref-cli-secret-{}", std::process::id()));
    std::fs::write(&secret, "s3cret\n").expect("write the secret");
    let secret = secret.to_str().expect("utf-8 temp path").to_owned();
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0", "--secret-file", &secret]);
    let out = run(
        &["call", &addr, "add", "1", "1", "--secret-file", &secret],
        "",
    );
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "2\n"),
        "{out:?}"
    );
    let out = run(&["call", &addr, "add", "1", "1"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    let _ = std::fs::remove_file(&secret);
}

#[cfg(feature = "tls")]
#[test]
fn tls_on_both_sides() {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "netref cli test ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();

    let dir = std::env::temp_dir().join(format!("netref-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 temp path").to_owned();
    std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(path("server.pem"), leaf.pem()).unwrap();
    std::fs::write(path("server.key"), key.serialize_pem()).unwrap();

    let (_server, addr) = serve(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &path("server.pem"),
        "--tls-key",
        &path("server.key"),
    ]);
    let trusted = ["--tls-ca", &path("ca.pem"), "--tls-name", "localhost"];
    let mut args = vec!["call", &addr, "add", "1", "2"];
    args.extend(trusted);
    let out = run(&args, "");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "3\n"),
        "{out:?}"
    );
    let mut args = vec!["repl", &addr];
    args.extend(trusted);
    let out = run(&args, "root.echo(\"over tls\")\n");
    assert_eq!(out.stdout, "\"over tls\"\n", "{out:?}");
    // Without TLS the hello cannot succeed.
    let out = run(&["call", &addr, "add", "1", "2", "--timeout", "5"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn targets_take_default_ports_schemes_and_commands() {
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    let port = addr.rsplit_once(':').expect("HOST:PORT").1;
    for target in [
        format!("tcp://{addr}"),
        format!(":{port}"),
        format!("tcp:{addr}"),
    ] {
        let out = run(&["call", &target, "add", "1", "2"], "");
        assert_eq!(
            (out.code(), out.stdout.as_str()),
            (Some(0), "3\n"),
            "{target}: {out:?}"
        );
    }
    // A bare host gets the default port (whether or not something listens there).
    let out = run(
        &["call", "127.0.0.1", "add", "1", "2", "--timeout", "5"],
        "",
    );
    assert!(
        out.code() == Some(0) || out.stderr.contains("cannot connect to 127.0.0.1:18861"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("cannot start"), "{out:?}");
    // One word is a host, not a program; a path names the `cmd:` form.
    let out = run(&["call", "./server", "add"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("cmd:./server"), "{}", out.stderr);
    let out = run(&["call", "http://127.0.0.1:1", "add"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("unknown scheme `http://`"),
        "{}",
        out.stderr
    );
    // `cmd:` says it is a command.
    let target = format!("cmd:'{NETREF}' serve --stdio");
    let out = run(&["call", &target, "add", "40", "2"], "");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "42\n"),
        "{out:?}"
    );
}

/// Sends `signal` to a child process.
#[cfg(unix)]
fn send(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    let pid = i32::try_from(child.id()).expect("a pid fits in i32");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("send a signal");
}

#[cfg(unix)]
#[test]
fn serve_stops_on_sigterm_and_cleans_up_with_a_call_in_flight() {
    use nix::sys::signal::Signal;
    let dir = temp_dir("sigterm");
    let socket = dir.join("lab.sock");
    let socket_arg = socket.to_str().expect("utf-8 temp path");
    let (mut server, addr, sandbox) = serve_own_sandbox(&["--unix", socket_arg, "--allow-exec"]);
    assert!(
        sandbox.is_dir() && socket.exists(),
        "{sandbox:?} {socket:?}"
    );

    // A call that stays in flight: a command that says it started, then waits.
    let mut caller = std::process::Command::new(NETREF)
        .args(["repl", &addr])
        .env("NETREF_HISTORY", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start netref repl");
    let mut input = caller.stdin.take().expect("piped stdin");
    // Kept open until the end: the REPL waits for the call, not for more input.
    input
        .write_all(b"root.exec([\"sh\", \"-c\", \"touch started; sleep 20\"], print)\n")
        .expect("write to the REPL");
    let started = sandbox.join("started");
    let deadline = std::time::Instant::now() + cli_support::RUN_TIMEOUT;
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    send(&server.0, Signal::SIGTERM);
    let status = cli_support::wait_bounded(&mut server.0, "netref serve after SIGTERM");
    assert_eq!(status.code(), Some(0), "a graceful stop: {status:?}");
    assert!(!socket.exists(), "the socket file is left behind");
    assert!(!sandbox.exists(), "the sandbox is left behind");
    // The caller hears that the server went away.
    drop(input);
    let status = cli_support::wait_bounded(&mut caller, "netref repl");
    assert_ne!(status.code(), Some(0), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn serve_cleans_up_on_ctrl_c() {
    use nix::sys::signal::Signal;
    let (mut server, addr, sandbox) = serve_own_sandbox(&["--listen", "127.0.0.1:0"]);
    let out = run(&["call", &addr, "files.open", "note.txt", "w"], "");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(sandbox.join("note.txt").exists());
    send(&server.0, Signal::SIGINT);
    let status = cli_support::wait_bounded(&mut server.0, "netref serve after SIGINT");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!sandbox.exists(), "the sandbox is left behind");
}

#[cfg(unix)]
#[test]
fn a_command_targets_child_is_asked_to_stop() {
    // `netref serve --stdio` exits when its stdin closes and removes its sandbox: nothing
    // is left in its temporary directory.
    let tmp = temp_dir("child-tmp");
    let tmp_str = tmp.to_str().expect("utf-8 temp path");
    let target = format!("'{NETREF}' serve --stdio");
    let out = run_with(
        &["call", &target, "add", "1", "2"],
        "",
        &[("TMPDIR", tmp_str)],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("read the temp dir")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // A child that outlives its stdin gets SIGTERM (which it can handle) before any kill.
    let mark = tmp.join("terminated");
    let script = format!(
        "trap 'echo terminated > {mark}; kill $!; exit 0' TERM; '{NETREF}' serve --stdio; \
         sleep 30 & wait",
        mark = mark.display()
    );
    let target = format!("cmd:sh -c \"{script}\"");
    let out = run(&["call", &target, "add", "1", "2"], "");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&mark).ok().as_deref(),
        Some("terminated\n"),
        "the child was not sent SIGTERM"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn logs_have_no_colour_codes_in_a_pipe() {
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    let out = run(&["-vv", "call", &addr, "add", "1", "2"], "");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("DEBUG"), "no debug log: {}", out.stderr);
    assert!(
        !out.stderr.contains('\x1b'),
        "colour codes: {:?}",
        out.stderr
    );
}

#[test]
fn call_sets_properties_and_passes_named_arguments() {
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    for (set, expect) in [
        (vec!["counter.step", "=", "5"], "5\n"),
        (vec!["counter.step", "--set", "7"], "7\n"),
        (vec!["counter.step=9"], "9\n"),
    ] {
        let mut args = vec!["call", &addr];
        args.extend(&set);
        let out = run(&args, "");
        assert_eq!(
            (out.code(), out.stdout.as_str()),
            (Some(0), "null\n"),
            "{set:?}: {out:?}"
        );
        let out = run(&["call", &addr, "counter.step"], "");
        assert_eq!(out.stdout, expect, "{set:?}: {out:?}");
    }
    let out = run(&["call", &addr, "counter.step", "=", "1", "2"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("takes one VALUE"), "{}", out.stderr);
    // A read-only property stays read-only.
    let out = run(&["call", &addr, "counter.value", "=", "1"], "");
    assert_eq!(out.code(), Some(1), "{out:?}");

    // Named arguments, in any order with positional ones.
    let out = run(&["call", &addr, "add", "b=2", "a=40"], "");
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "42\n"),
        "{out:?}"
    );
    let out = run(&["call", &addr, "add", "1", "b=[2]"], "");
    assert_eq!(out.code(), Some(1), "{out:?}"); // 1 + [2]: the lab refuses
    let out = run(&["call", &addr, "add", "a=x", "b=\"=y\""], "");
    assert_eq!(out.stdout, "\"x=y\"\n", "{out:?}");
    let out = run(&["call", &addr, "add", "1", "nope=2"], "");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("nope"), "{}", out.stderr);
}

#[test]
fn call_json_is_strict_and_integers_are_exact() {
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    let out = run(&["call", &addr, "echo", "--json", r#"{"a": [1, "x"]}"#], "");
    assert_eq!(out.stdout, "{\"a\":[1,\"x\"]}\n", "{out:?}");
    for bad in ["{\"a\": 1", "hello", "[1,]"] {
        let out = run(&["call", &addr, "echo", "--json", bad], "");
        assert_eq!(out.code(), Some(2), "{bad}: {out:?}");
        assert!(out.stderr.contains("is not JSON"), "{bad}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    let out = run(&["call", &addr, "echo", "--json", "x=hello"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");

    let out = run(&["call", &addr, "echo", "18446744073709551615"], "");
    assert_eq!(out.stdout, "18446744073709551615\n", "{out:?}");
    let out = run(&["call", &addr, "echo", "-9223372036854775808"], "");
    assert_eq!(out.stdout, "-9223372036854775808\n", "{out:?}");
    for big in ["18446744073709551616", "[1, -9223372036854775809]"] {
        let out = run(&["call", &addr, "echo", big], "");
        assert_eq!(out.code(), Some(2), "{big}: {out:?}");
        assert!(
            out.stderr.contains("does not fit in 64 bits"),
            "{big}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_bad_timeout_is_a_bad_flag() {
    // Reported before connecting: the target does not even have to exist.
    let addr = closed_port();
    for bad in ["0", "-1", "nan", "inf", "1e9", "soon"] {
        let out = run(&["call", &addr, "add", "1", "2", "--timeout", bad], "");
        assert_eq!(out.code(), Some(2), "{bad}: {out:?}");
        assert!(out.stderr.contains("--timeout"), "{bad}: {}", out.stderr);
        assert!(!out.stderr.contains("connect"), "{bad}: {}", out.stderr);
    }
    let out = run(&["repl", "--timeout", "0"], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--timeout"), "{}", out.stderr);
}

#[test]
fn repl_timeout_applies_to_the_embedded_lab() {
    // The lab sees the caller's deadline: whole seconds left, 29 or 30 by default.
    let out = run(&["repl", "--timeout", "100"], "root.time_left()\n");
    assert_eq!(out.code(), Some(0), "{out:?}");
    let left: u64 = out.stdout.trim().parse().expect("a number of seconds");
    assert!((90..=100).contains(&left), "{out:?}");
}

/// Splits a shell line on spaces, honouring '…' and "…" (enough for the docs' examples).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, ' ') => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// Every `$ netref call …` example of docs/repl.md prints what the page says it prints.
#[test]
fn the_docs_call_examples_run_as_written() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/repl.md"))
        .expect("read docs/repl.md");
    let (_server, addr) = serve(&["--listen", "127.0.0.1:0"]);
    // Ports differ from run to run; so does the client's, in an error's `at:` line.
    let ports = |text: &str| {
        let mut out = String::new();
        for line in text.lines() {
            let line = match line.find("127.0.0.1:") {
                Some(i) => {
                    let rest = &line[i + 10..];
                    let digits =
                        rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                    format!("{}127.0.0.1:PORT{}", &line[..i], &rest[digits..])
                }
                None => line.to_owned(),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    };
    let mut lines = doc.lines().peekable();
    let mut examples = 0;
    while let Some(line) = lines.next() {
        // The lab's examples (the RPyC ones need a Python server).
        let Some(command) = line.strip_prefix("$ netref call 127.0.0.1:18861 ") else {
            continue;
        };
        let command = format!("127.0.0.1:18861 {command}");
        let command = command.as_str();
        let mut expected = String::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("$ ") || next.starts_with("```") {
                break;
            }
            expected.push_str(next);
            expected.push('\n');
            lines.next();
        }
        let command = command.split(" #").next().unwrap_or(command).trim();
        let (command, show_status) = match command.strip_suffix("; echo $?") {
            Some(c) => (c, true),
            None => (command, false),
        };
        let mut args = vec!["call".to_owned()];
        args.extend(shell_words(command));
        for a in &mut args {
            if a == "127.0.0.1:18861" {
                a.clone_from(&addr);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, "");
        let mut actual = format!("{}{}", out.stdout, out.stderr);
        if show_status {
            actual.push_str(&format!("{}\n", out.code().unwrap_or(-1)));
        } else {
            assert_eq!(out.code(), Some(0), "{command}: {out:?}");
        }
        assert_eq!(
            ports(&actual),
            ports(&expected),
            "docs/repl.md: $ netref call {command}"
        );
        examples += 1;
    }
    assert!(examples >= 5, "only {examples} examples found");
}

/// Every page that shows a `netref` command says how to get one, and the README says how
/// to depend on the crate, with still exactly two set-up commands.
#[test]
fn the_docs_say_how_to_get_the_netref_command() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut pages = vec![std::path::PathBuf::from(root).join("README.md")];
    for entry in std::fs::read_dir(format!("{root}/docs")).expect("read docs/") {
        let path = entry.expect("a docs entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("read a page");
        // A command to type: a line of a code block that runs `netref`.
        let mut in_code = false;
        let shows = text.lines().any(|l| {
            if l.starts_with("```") {
                in_code = !in_code;
                return false;
            }
            let l = l.strip_prefix("$ ").unwrap_or(l);
            in_code && l.starts_with("netref ")
        });
        if shows {
            assert!(
                text.contains("cargo install --path .") || text.contains("cargo run -- "),
                "{} shows `netref …` but not how to get it",
                page.display()
            );
        }
    }
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    assert!(
        readme.contains("cargo install --path ."),
        "README: no install"
    );
    assert!(
        readme.contains("[dependencies]\nnetref = "),
        "README: no dependency line"
    );
    let quickstart = readme
        .split("## Quickstart")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the Quickstart's commands");
    assert_eq!(quickstart.lines().count(), 2, "{quickstart}");
}

#[cfg(unix)]
#[test]
fn serve_replaces_a_stale_socket_but_not_a_live_one() {
    let dir = temp_dir("stale");
    let socket = dir.join("lab.sock");
    let socket_arg = socket.to_str().expect("utf-8 temp path");
    // What a killed server leaves behind: the file, with nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind a socket"));
    assert!(socket.exists());
    let (_server, addr) = serve(&["--unix", socket_arg]);
    let out = run(&["call", &addr, "add", "1", "2"], "");
    assert_eq!(out.stdout, "3\n", "{out:?}");

    // A second server on a live socket is refused, and leaves it alone.
    let out = run(&["serve", "--unix", socket_arg], "");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("cannot listen on unix:"),
        "{}",
        out.stderr
    );
    let out = run(&["call", &addr, "add", "2", "2"], "");
    assert_eq!(out.stdout, "4\n", "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn serve_stdio_stops_on_sigterm_and_cleans_up() {
    use nix::sys::signal::Signal;
    let tmp = temp_dir("stdio-term");
    let mut server = std::process::Command::new(NETREF)
        .args(["serve", "--stdio"])
        .env("TMPDIR", &tmp)
        .env_remove("NETREF_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start netref serve --stdio");
    // Its sandbox exists once the lab is built; no peer ever says hello.
    let deadline = std::time::Instant::now() + cli_support::RUN_TIMEOUT;
    while std::fs::read_dir(&tmp)
        .expect("read the temp dir")
        .next()
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "no sandbox appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    send(&server, Signal::SIGTERM);
    let status = cli_support::wait_bounded(&mut server, "netref serve --stdio after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("read the temp dir")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&tmp);
}
