//! Two programs share only a trait (`examples/inventory-api`): `typed_server` implements it,
//! `typed_client` calls it through the generated typed proxy. Both run as processes here.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

#[test]
fn a_client_and_a_server_that_share_only_a_trait_talk_through_the_typed_proxy() {
    let mut server = Command::new(common::example_bin("typed_server"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("typed_server starts");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();

    let client = common::example_bin("typed_client");
    let out = Command::new(&client).arg(&addr).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "shop: the corner shop",
        "apples: 5",
        "apples after taking 3: 2",
        "refused: remote failed: only 1 pears in stock, 9 asked",
        "items: [Item { name: \"apples\", count: 2 }, Item { name: \"pears\", count: 1 }]",
        "low: apples (2)",
        "low: pears (1)",
        "low items: 2",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    let out = Command::new(&client)
        .args([addr.as_str(), "--blocking"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("apples: 3"), "{text}");

    // Closing its stdin ends the server.
    server.stdin.take().unwrap().flush().unwrap();
    assert!(server.wait().unwrap().success());
}
