//! Callbacks, re-entrancy, shared lists and call ordering.
mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::*;
use netref::adapters::List;
use netref::{callback, expose, Obj, Proxy, Result, Value};

#[tokio::test]
async fn server_calls_a_client_callback_ten_thousand_times() {
    let (_server, conn, _) = lab_client().await;
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let cb = callback(move |i: i64| {
        seen.fetch_add(1, Ordering::SeqCst);
        i * 2
    });
    let n: u32 = 10_000;
    let sum: i64 = conn
        .root()
        .call_method("sum_callbacks", (cb, n))
        .decode()
        .await
        .unwrap();
    let expected: i64 = (0..i64::from(n)).map(|i| i * 2).sum();
    assert_eq!(sum, expected);
    assert_eq!(calls.load(Ordering::SeqCst), n);
}

/// The client side of the re-entrancy test: calls the server's `bounce` back.
struct Bouncer {
    server: Proxy,
    me: parking_lot::Mutex<Option<Proxy>>,
}

/// Bounces calls back to the server.
#[expose]
impl Bouncer {
    /// Calls `server.bounce(me, depth)` and adds one.
    #[exposed]
    async fn bounce(&self, depth: u32) -> Result<u32> {
        if depth == 0 {
            return Ok(0);
        }
        let me = self.me.lock().clone().expect("set before use");
        let r: u32 = self
            .server
            .call_method("bounce", (me, depth - 1))
            .decode()
            .await?;
        Ok(r + 1)
    }
}

#[tokio::test]
async fn nested_reentrancy_to_depth_100_client_to_server() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();
    let bouncer = Arc::new(Bouncer {
        server: root.clone(),
        me: parking_lot::Mutex::new(None),
    });
    let me = Proxy::local(bouncer.clone() as Arc<dyn netref::Object>).attr("bounce");
    *bouncer.me.lock() = Some(me.clone());
    let depth: u32 = root
        .call_method("bounce", (me, 100u32))
        .decode()
        .await
        .unwrap();
    assert_eq!(depth, 100);
    bouncer.me.lock().take();
}

#[tokio::test]
async fn nested_reentrancy_to_depth_100_server_to_client() {
    // Roles reversed: the *server* starts the chain through a proxy of the client's root.
    let drops = DropCounter::default();
    let server = lab_server(drops).await;
    let client_lab = Obj::new(Lab::default()).erase();
    let conn = netref::connect_with(
        server.local_addr(),
        netref::Config::default(),
        Some(client_lab),
    )
    .await
    .unwrap();
    let server_conn = server_side(&server).await;
    let client_root = server_conn.root();
    let server_root = conn.root();
    // The server asks the client's Lab to bounce with a callback into the server's Lab.
    let depth: u32 = client_root
        .call_method("bounce", (server_root_bouncer(&server_conn), 100u32))
        .decode()
        .await
        .unwrap();
    assert_eq!(depth, 100);
    drop(server_root);
}

/// A server-side callback that asks the client's root to bounce back to it.
fn server_root_bouncer(server_conn: &netref::Connection) -> Proxy {
    let client_root = server_conn.root();
    let me: Arc<parking_lot::Mutex<Option<Proxy>>> = Arc::new(parking_lot::Mutex::new(None));
    let me2 = me.clone();
    let cb = netref::callback_async(move |depth: u32| {
        let client_root = client_root.clone();
        let me = me2.lock().clone();
        async move {
            if depth == 0 {
                return Ok::<u32, netref::Error>(0);
            }
            let me = me.expect("set before use");
            let r: u32 = client_root
                .call_method("bounce", (me, depth - 1))
                .decode()
                .await?;
            Ok::<u32, netref::Error>(r + 1)
        }
    });
    *me.lock() = Some(cb.clone());
    cb
}

#[tokio::test]
async fn server_appends_to_a_lent_list() {
    let (_server, conn, _) = lab_client().await;
    let list = Obj::new(List::new());
    let ret = conn
        .root()
        .call_method("fill", (list.clone(), 5u32))
        .await
        .unwrap();
    assert_eq!(ret, Value::Nil, "nothing comes back by value");
    assert_eq!(list.snapshot(), (0..5).map(Value::Int).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_thousand_unawaited_appends_land_in_order() {
    let (_server, conn, _) = lab_client().await;
    // The server lends a list; the client fires 1,000 appends without awaiting each.
    let list = Obj::new(List::new());
    conn.set_root(Some(list.erase()));
    let server = _server;
    let server_conn = server_side(&server).await;
    let remote_list = server_conn.root();
    let calls: Vec<_> = (0..1000)
        .map(|i| remote_list.call_method("append", (i,)))
        .collect();
    for r in futures_util::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(
        list.snapshot(),
        (0..1000).map(Value::Int).collect::<Vec<_>>()
    );
}

/// No `tracing` subscriber listens in this test binary: no trace id is minted, and none
/// travels (the frames stay as small as before).
#[tokio::test]
async fn without_a_subscriber_a_callback_sees_no_trace_id() {
    let (_server, conn, _) = lab_client().await;
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let saw = seen.clone();
    let cb = callback(move |i: i64| {
        saw.lock().push(netref::context::trace_id());
        i
    });
    let _: i64 = conn
        .root()
        .call_method("sum_callbacks", (cb, 3u32))
        .decode()
        .await
        .unwrap();
    assert_eq!(*seen.lock(), vec![None, None, None]);
}
