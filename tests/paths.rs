//! Lazy paths travel as one message; pipelined chains cost one round trip.
mod common;

use common::*;
use netref::Value;

#[tokio::test]
async fn a_path_call_costs_exactly_one_call_message() {
    let (server, conn, _) = lab_client().await;
    let root = conn.root();
    // Warm up so any one-time traffic is out of the way.
    root.call_method("add", (0, 0)).await.unwrap();
    let server_conn = server_side(&server).await;
    let before = conn.stats();
    let server_before = server_conn.stats();
    let v = root
        .path_to(["tree", "next", "next"])
        .call_method("child", ("c",))
        .await
        .unwrap();
    let path = v
        .into_proxy()
        .unwrap()
        .call_method("path", ())
        .await
        .unwrap();
    assert_eq!(path.as_str(), Some("tree/next/next/c"));
    let after = conn.stats();
    // Two operations: the path call and the `path` call on its result.
    assert_eq!(after.calls_sent - before.calls_sent, 2);
    assert_eq!(after.round_trips - before.round_trips, 2);
    assert_eq!(
        server_conn.stats().calls_received - server_before.calls_received,
        2
    );

    // root.a.b.c(x) alone: one message out.
    let before = conn.stats();
    let v = root
        .attr("tree")
        .attr("next")
        .call_method("child", ("x",))
        .await
        .unwrap();
    let after = conn.stats();
    assert_eq!(after.calls_sent - before.calls_sent, 1);
    // Releases of earlier results may go out meanwhile; nothing else does.
    assert_eq!(
        (after.messages_sent - after.releases_sent) - (before.messages_sent - before.releases_sent),
        1
    );
    drop(v);
}

#[tokio::test]
async fn a_pipelined_chain_of_three_dependent_calls_costs_one_round_trip() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();
    root.call_method("add", (0, 0)).await.unwrap();
    let before = conn.stats();
    let a = root
        .attr("tree")
        .call_method("child", ("a",))
        .pipeline()
        .await
        .unwrap();
    let b = a.call_method("child", ("b",)).pipeline().await.unwrap();
    let path = b.call_method("path", ()).await.unwrap();
    assert_eq!(path, Value::from("tree/a/b"));
    let after = conn.stats();
    assert_eq!(after.calls_sent - before.calls_sent, 3);
    assert_eq!(after.round_trips - before.round_trips, 1);
}

#[tokio::test]
async fn an_error_early_in_a_pipeline_reaches_the_end() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();
    let bad = root.call_method("nope", ()).pipeline().await.unwrap();
    let e = bad.call_method("path", ()).await.unwrap_err();
    assert_eq!(e.kind(), netref::ErrorKind::NoSuchMember, "{e}");
    // Getting a pipelined answer itself gives its value.
    let v = root.call_method("add", (2, 3)).pipeline().await.unwrap();
    assert_eq!(v.get().await.unwrap(), Value::Int(5));
}
