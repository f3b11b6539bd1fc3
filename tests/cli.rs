//! `netref serve` and `netref call`, driven as real processes on loopback.

mod cli_support;

use cli_support::{closed_port, run, serve, NETREF};

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
    let script = "c = collector()\nroot.exec([\"echo\", \"from exec\"], c)\nlist(c)\n";
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
