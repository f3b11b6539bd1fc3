//! Closing or losing a connection frees what was lent through it and fails pending calls.
mod common;

use common::*;
use netref::{ErrorKind, Obj};

#[tokio::test]
async fn dropping_a_connection_frees_lent_objects_and_fails_pending_calls() {
    let (server, conn, drops) = lab_client().await;
    let server_conn = server_side(&server).await;
    let root = conn.root();
    // The server lends three objects; the client lends two.
    let held: Vec<_> = futures_util::future::join_all(
        (0..3).map(|i| root.call_method("lend", (format!("s{i}"),))),
    )
    .await;
    let client_drops = DropCounter::default();
    let mine = Obj::new(Tracked {
        name: "c".into(),
        drops: client_drops.clone(),
    });
    // A call in flight when the connection goes.
    let pending = tokio::spawn({
        let root = root.clone();
        async move { root.call_method("sleep", (60_000u64,)).await }
    });
    eventually("the sleep is running", || async {
        server_conn.stats().calls_received >= 4
    })
    .await;
    assert_eq!(server_conn.stats().live_exports, 3);

    // The client goes away.
    conn.close().await;
    let err = pending.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    assert!(err.is_disconnected());
    eventually(
        "the server frees everything lent through the connection",
        || async { drops.dropped() == 3 && server.connection_count() == 0 },
    )
    .await;
    assert_eq!(server_conn.stats().live_exports, 0);
    assert!(server_conn.is_closed());
    server_conn.closed().await;
    assert_eq!(server_conn.task_count(), 0);
    // Every proxy of the closed connection fails the same way.
    for r in held {
        let p = r.unwrap().into_proxy().unwrap();
        let e = p.call_method("name", ()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected);
    }
    drop(mine);
    assert_eq!(client_drops.dropped(), 1);
}

#[tokio::test]
async fn a_server_going_away_fails_client_calls_and_frees_client_exports() {
    let (server, conn, _) = lab_client().await;
    let root = conn.root();
    let drops = DropCounter::default();
    let tracked = Obj::new(Tracked {
        name: "lent".into(),
        drops: drops.clone(),
    });
    // Lend it for the duration of a long call.
    let call = tokio::spawn({
        let root = root.clone();
        async move {
            let kept = root.call_method("echo", (tracked,)).await?;
            root.call_method("sleep", (60_000u64,)).await.map(|_| kept)
        }
    });
    let server_conn = server_side(&server).await;
    eventually("the sleep is running", || async {
        server_conn.stats().calls_received >= 2
    })
    .await;
    server.shutdown().await;
    let e = call.await.unwrap().unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    conn.closed().await;
    assert_eq!(conn.stats().live_exports, 0);
    assert_eq!(drops.dropped(), 1);
    let e = root.call_method("add", (1, 2)).await.unwrap_err();
    assert!(e.is_disconnected());
}
