//! A peer process that dies mid-call: the pending call fails at once with the disconnected
//! kind, and every proxy of that connection fails the same way afterwards.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use netref::ErrorKind;

/// Starts `netref serve` on an ephemeral loopback port and returns it with its address.
fn spawn_server() -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netref"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netref serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("netref serve said where it listens")
            .expect("stderr is text");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

#[tokio::test]
async fn killing_the_server_process_mid_call_fails_the_call_as_disconnected() {
    let (mut child, addr) = spawn_server();
    let conn = netref::connect(addr.as_str()).await.unwrap();
    let root = conn.root();
    assert_eq!(
        root.call_method("add", (1, 2)).await.unwrap().as_i64(),
        Some(3)
    );
    let pending = tokio::spawn({
        let root = root.clone();
        async move { root.call_method("sleep", (60,)).await }
    });
    // Make sure the call is in flight on the server before killing it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().expect("kill the server");
    let _ = child.wait();
    let result = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the pending call failed promptly")
        .unwrap();
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    let e = root.call_method("add", (1, 2)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    conn.closed().await;
    assert_eq!(conn.stats().live_exports, 0);
}
