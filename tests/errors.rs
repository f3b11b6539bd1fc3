//! Handler errors and panics come back as structured remote errors; the connection goes on.
mod common;

use common::*;
use netref::{ErrorKind, Value};

#[tokio::test]
async fn a_handler_err_gives_a_failed_remote_error() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();
    let e = root.call_method("fail", ("no reason",)).await.unwrap_err();
    let r = e.as_remote().expect("a remote error");
    assert_eq!(r.kind, ErrorKind::Failed);
    assert_eq!(r.message, "refused: no reason");
    assert!(r.type_name.ends_with("Refused"), "{}", r.type_name);
    assert_eq!(r.chain.len(), 1, "{:?}", r.chain);
    assert!(r.chain[0].ends_with("root.fail"), "{:?}", r.chain);
    assert_eq!(
        root.call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );
}

#[tokio::test]
async fn a_panicking_handler_gives_a_panicked_remote_error() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();
    let e = root.call_method("boom", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert!(e.to_string().contains("boom went the handler"), "{e}");
    assert!(!conn.is_closed());
    assert_eq!(
        root.call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );
    // And again: the panic left nothing behind.
    let e = root.call_method("boom", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(
        root.call_method("add", (2, 2)).await.unwrap(),
        Value::Int(4)
    );
}

#[tokio::test]
async fn errors_through_a_callback_chain_list_every_hop() {
    let (_server, conn, _) = lab_client().await;
    let cb = netref::callback(|_i: i64| -> netref::Result<i64> {
        Err(netref::Error::remote(ErrorKind::Failed, "client says no"))
    });
    let e = conn
        .root()
        .call_method("sum_callbacks", (cb, 3u32))
        .await
        .unwrap_err();
    let r = e.as_remote().unwrap();
    assert_eq!(r.kind, ErrorKind::Failed);
    assert_eq!(r.message, "client says no");
    // Innermost first: the client's callback, then the server's method.
    assert_eq!(r.chain.len(), 2, "{:?}", r.chain);
    assert!(r.chain[1].ends_with("root.sum_callbacks"), "{:?}", r.chain);
    // The callback's hop names its id as traces print it.
    assert!(r.chain[0].ends_with(": #1v1"), "{:?}", r.chain);
}

#[tokio::test]
async fn a_local_proxy_reports_a_panic_like_a_remote_one() {
    let lab = netref::Proxy::local(netref::Obj::new(Lab::default()));
    let e = lab.call_method("boom", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(lab.call_method("add", (1, 2)).await.unwrap(), Value::Int(3));
}
