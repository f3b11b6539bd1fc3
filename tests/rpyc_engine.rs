//! An RPyC client of a `Server::rpyc()` is an ordinary netref connection (RPyC's wire
//! behind the protocol seam): the server's connect, closing and disconnect hooks run for it,
//! `ServerHandle::connections()` lists it, and its stats, tracer and export table are the
//! engine's. The client here is netref's own RPyC client; the tests with Python's are in
//! `python_to_rust.rs`.

mod common;

use std::sync::Arc;

use netref::{rpyc, Server, Value};
use parking_lot::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_connections_stats_and_tracer_apply_to_rpyc_clients() {
    common::init_tracing();
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let (e1, e2, e3) = (events.clone(), events.clone(), events.clone());
    let lab = netref::lab::Lab::new(netref::lab::LabOptions::default()).unwrap();
    let server = Server::with_root(lab.into_root())
        .rpyc()
        .on_connect(move |info, _conn| e1.lock().push(format!("connect {}", info.id)))
        .on_closing(move |info, conn| {
            // Closed, but what it lent is still in its tables.
            let lent = conn.stats().live_exports;
            e2.lock().push(format!("closing {} lent {lent}", info.id));
        })
        .on_disconnect(move |info, _conn| e3.lock().push(format!("disconnect {}", info.id)))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = rpyc::connect(server.local_addr()).await.unwrap();
    let root = client.root().await.unwrap();
    assert_eq!(
        root.call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );

    // Listed as a netref connection, and as an RPyC one.
    let conns = server.connections();
    assert_eq!(conns.len(), 1);
    let (info, conn) = conns[0].clone();
    assert_eq!(server.connection_count(), 1);
    let rpyc_conns = server.rpyc_connections();
    assert_eq!(rpyc_conns.len(), 1);
    assert_eq!(rpyc_conns[0].connection().label(), conn.label());

    // The engine's stats count RPyC's requests: GETROOT and the CALLATTR of `add`.
    let stats = conn.stats();
    assert!(stats.calls_received >= 2, "{stats:?}");
    assert_eq!(stats.live_exports, 1, "the root, lent to the client");

    // The tracer shows RPyC's messages.
    let recorder = netref::trace::Recorder::new(100);
    conn.set_tracer(Some(recorder.tracer()));
    assert_eq!(
        root.call_method("add", (2, 3)).await.unwrap(),
        Value::Int(5)
    );
    common::eventually("the reply was traced", || async {
        recorder.events().len() >= 2
    })
    .await;
    let lines: Vec<String> = recorder.events().iter().map(|e| e.to_string()).collect();
    assert!(
        lines[0].starts_with("<- REQUEST") && lines[0].contains("CALLATTR(yours<netref."),
        "{lines:#?}"
    );
    assert!(lines[0].ends_with("\"add\", (2, 3), ())"), "{lines:#?}");
    assert!(
        lines[1].starts_with("-> REPLY") && lines[1].ends_with("= 5"),
        "{lines:#?}"
    );

    // A callback lent by the client: imported, called, released.
    let seen = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let s2 = seen.clone();
    let cb = netref::callback(move |i: i64| {
        s2.fetch_add(i, std::sync::atomic::Ordering::SeqCst);
    });
    root.call_method("every", (4, cb)).await.unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 6);
    common::eventually("the callback was released", || async {
        conn.stats().live_imports == 0
    })
    .await;

    client.close().await;
    common::eventually("the server saw the client go", || async {
        server.connection_count() == 0 && events.lock().len() == 3
    })
    .await;
    let id = info.id;
    assert_eq!(
        *events.lock(),
        [
            format!("connect {id}"),
            format!("closing {id} lent 1"),
            format!("disconnect {id}")
        ]
    );
    assert_eq!(conn.stats().live_exports, 0, "nothing left lent");
    assert!(server.rpyc_connections().is_empty());
    server.shutdown().await;
}
