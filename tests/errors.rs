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

#[tokio::test]
async fn a_message_over_the_peers_frame_limit_fails_here_not_remotely() {
    // The server accepts frames of at most 1 KiB; a 4 KiB argument is refused on this side.
    let config = netref::Config::default().with_max_frame(1024);
    let (_server, client) =
        netref::pair_with(config, Some(netref::Obj::new(Lab::default()).erase()), None)
            .await
            .unwrap();
    let root = client.root();
    let e = root
        .call_method("echo", (Value::Bytes(vec![7; 4096]),))
        .await
        .unwrap_err();
    assert!(
        matches!(e, netref::Error::Limit { .. }),
        "a local limit, not a remote error: {e:?}"
    );
    assert!(e.as_remote().is_none());
    assert_eq!(e.kind(), ErrorKind::Value);
    assert!(!e.to_string().starts_with("remote"), "{e}");
    assert!(e.to_string().contains("frame limit"), "{e}");
    // Nothing was sent; the connection goes on.
    assert_eq!(
        root.call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );
}

#[tokio::test]
async fn a_call_polled_after_completion_is_misuse() {
    let (_server, conn, _) = lab_client().await;
    let mut call = conn.root().call_method("add", (1, 2));
    assert_eq!((&mut call).await.unwrap(), Value::Int(3));
    let e = call.await.unwrap_err();
    assert!(matches!(e, netref::Error::Misuse(_)), "{e:?}");
    assert!(e.to_string().contains("polled after completion"), "{e}");
}
