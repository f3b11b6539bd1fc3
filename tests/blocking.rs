//! The blocking API, from plain synchronous test functions (no `#[tokio::test]`): the servers
//! run on their own thread and runtime.

mod common;

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

use common::*;
use netref::adapters::Iter as RemoteItems;
use netref::{blocking, expose, ErrorKind, Obj, Proxy, Value};

#[test]
fn calls_properties_dir_and_help_over_tcp() {
    let server = ServerThread::lab();
    let conn = blocking::Connection::connect(server.addr()).unwrap();
    let root = conn.root();

    assert_eq!(root.call_method("add", (1, 2)).unwrap().as_i64(), Some(3));
    let echoed: Vec<String> = root
        .call_method("echo", (vec!["a", "b"],))
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(echoed, ["a", "b"]);

    assert_eq!(root.attr("step").get_as::<i64>().unwrap(), 0);
    root.attr("step").set(5).unwrap();
    assert_eq!(root.attr("step").get().unwrap().as_i64(), Some(5));
    assert_eq!(root.call_method("inc", ()).unwrap().as_i64(), Some(5));
    assert_eq!(root.attr("value").get_as::<i64>().unwrap(), 5);

    let members = root.dir().unwrap();
    assert!(members.iter().any(|m| m == "add"), "{members:?}");
    assert!(!members.iter().any(|m| m == "hidden"), "{members:?}");
    assert!(root
        .attr("add")
        .help()
        .unwrap()
        .contains("Adds two numbers"));

    let err = root.call_method("hidden", ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSuchMember);
    let err = root.call_method("fail", ("no",)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.to_string().contains("refused: no"), "{err}");

    // Paths and pipelining.
    let path = root
        .path_to(["tree", "next"])
        .call_method("child", ("x",))
        .unwrap();
    let path = conn.wrap(path.into_proxy().unwrap());
    assert_eq!(
        path.call_method("path", ()).unwrap().as_str(),
        Some("tree/next/x")
    );
    let a = root.attr("tree").attr("child").pipeline(("a",)).unwrap();
    let b = a.attr("child").pipeline(("b",)).unwrap();
    assert_eq!(b.call_method("path", ()).unwrap(), Value::from("tree/a/b"));
    conn.close().unwrap();
    assert!(conn.is_closed());
}

#[test]
fn the_server_calls_a_blocking_callback_while_the_caller_waits() {
    let server = ServerThread::lab();
    let conn = blocking::Connection::connect(server.addr()).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let double = blocking::callback(move |i: i64| {
        seen.fetch_add(1, Ordering::SeqCst);
        i * 2
    });
    let n = 25;
    let sum: i64 = conn
        .root()
        .call_method("sum_callbacks", (double, n))
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(sum, (0..i64::from(n)).map(|i| i * 2).sum::<i64>());
    assert_eq!(calls.load(Ordering::SeqCst), n);
}

#[test]
fn a_blocking_callback_may_call_back_into_the_server() {
    let server = ServerThread::lab();
    let conn = blocking::Connection::connect(server.addr()).unwrap();
    let root = conn.root();
    let inner = root.clone();
    // Each callback makes a blocking call to the server, which is itself waiting for the
    // callback: nested calls in both directions.
    let plus_100 = blocking::callback(move |i: i64| -> netref::Result<i64> {
        inner.call_method("add", (i, 100))?.decode()
    });
    let sum: i64 = root
        .call_method("sum_callbacks", (plus_100, 4))
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(sum, (0..4).sum::<i64>() + 4 * 100);
}

#[test]
fn a_panicking_blocking_callback_is_a_remote_error() {
    let server = ServerThread::lab();
    let conn = blocking::Connection::connect(server.addr()).unwrap();
    let boom = blocking::callback(|i: i64| -> i64 {
        if i == 1 {
            panic!("callback {i} went boom");
        }
        i
    });
    let err = conn
        .root()
        .call_method("sum_callbacks", (boom, 3))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked, "{err}");
    assert!(err.to_string().contains("went boom"), "{err}");
    // The connection is still fine.
    assert_eq!(
        conn.root().call_method("add", (1, 1)).unwrap().as_i64(),
        Some(2)
    );
}

/// Hands a fresh object to a callback.
struct Desk {
    handed: AtomicI64,
}

/// An object with a value.
struct Note(i64);

/// A note.
#[expose]
impl Note {
    /// Its value.
    #[exposed]
    fn value(&self) -> i64 {
        self.0
    }
}

/// A desk that hands out notes.
#[expose]
impl Desk {
    /// Calls `cb(note)` with a fresh note and returns what `cb` returns.
    #[exposed]
    async fn hand(&self, cb: Proxy, value: i64) -> netref::Result<i64> {
        self.handed.fetch_add(1, Ordering::SeqCst);
        cb.call((Obj::new(Note(value)),)).decode().await
    }
}

#[test]
fn a_blocking_callback_can_take_a_blocking_proxy() {
    let desk = Obj::new(Desk {
        handed: AtomicI64::new(0),
    });
    let (_server, conn) = blocking::Connection::pair(Some(desk.erase()), None).unwrap();
    let read_note = blocking::callback(|note: blocking::Proxy| -> netref::Result<i64> {
        Ok(note.call_method("value", ())?.decode::<i64>()? * 10)
    });
    let got = conn
        .root()
        .call_method("hand", (read_note, 7))
        .unwrap()
        .as_i64();
    assert_eq!(got, Some(70));
    assert_eq!(desk.arc().handed.load(Ordering::SeqCst), 1);
}

#[test]
fn a_remote_iterator_is_a_std_iterator() {
    let items = Obj::new(RemoteItems::new(0..7));
    let (_server, conn) = blocking::Connection::pair(Some(items.erase()), None).unwrap();
    let got: Vec<i64> = conn
        .root()
        .iter(3)
        .unwrap()
        .map(|v| v.unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(got, (0..7).collect::<Vec<_>>());
}

#[test]
fn dropping_the_connection_closes_it_and_proxies_then_fail() {
    let (first, second) =
        blocking::Connection::pair(Some(Obj::new(Lab::default()).erase()), None).unwrap();
    let root = second.root();
    assert_eq!(root.call_method("add", (1, 2)).unwrap().as_i64(), Some(3));
    let peer = first.as_async().clone();
    drop(second);
    // Dropping one end closed its connection; the other end sees the end of its stream.
    first.block_on(peer.closed()).unwrap();
    assert!(first.is_closed());
    let err = root.call_method("add", (1, 2)).unwrap_err();
    assert!(err.is_disconnected(), "{err}");
}

#[test]
fn blocking_calls_inside_a_tokio_runtime_fail_instead_of_panicking() {
    let (_server, conn) =
        blocking::Connection::pair(Some(Obj::new(Lab::default()).erase()), None).unwrap();
    let root = conn.root();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let err = root.call_method("add", (1, 2)).unwrap_err();
        assert!(err.to_string().contains("inside a tokio runtime"), "{err}");
        let err = blocking::Connection::pair(None, None).unwrap_err();
        assert!(err.to_string().contains("inside a tokio runtime"), "{err}");
        // The async API is the way in there.
        let sum = root.as_async().call_method("add", (1, 2)).await.unwrap();
        assert_eq!(sum.as_i64(), Some(3));
    });
    // Dropping a blocking connection inside a runtime does not panic either.
    let (a, b) = blocking::Connection::pair(None, None).unwrap();
    rt.block_on(async move {
        drop(a);
        drop(b);
    });
}

#[test]
fn a_blocking_connection_to_a_child_process() {
    let mut conn = blocking::Connection::connect_command(
        example_bin("stdio_peer"),
        std::iter::empty::<&str>(),
    )
    .unwrap();
    let pid = conn.child_id().expect("a child process");
    let root = conn.root();
    assert_eq!(
        root.call_method("pid", ()).unwrap().as_i64(),
        Some(pid.into())
    );
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let one = blocking::callback(move |_: i64| {
        seen.fetch_add(1, Ordering::SeqCst);
        1
    });
    assert_eq!(
        root.call_method("repeat", (one, 6)).unwrap().as_i64(),
        Some(6)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    conn.close().unwrap();
    let status = conn.wait_child().unwrap().expect("a child process");
    assert!(status.success(), "{status}");
}

#[cfg(unix)]
#[test]
fn a_blocking_connection_over_a_unix_socket() {
    let dir = TempDir::new("blocking-unix");
    let path = dir.path().join("lab.sock");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = {
        let _guard = rt.enter();
        tokio::net::UnixListener::bind(&path).unwrap()
    };
    let server = rt.spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, w) = stream.into_split();
        let root = Obj::new(Lab::default()).erase();
        let conn = netref::Connection::from_io(r, w, netref::Config::default(), Some(root))
            .await
            .unwrap();
        conn.closed().await;
    });
    let conn = blocking::Connection::connect_unix(&path).unwrap();
    assert_eq!(
        conn.root().call_method("add", (2, 2)).unwrap().as_i64(),
        Some(4)
    );
    drop(conn);
    rt.block_on(server).unwrap();
}

#[test]
fn the_blocking_types_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<blocking::Connection>();
    send_sync::<blocking::Proxy>();
    fn send<T: Send>() {}
    send::<blocking::Iter>();
}

#[test]
fn a_blocking_proxy_cannot_be_decoded_outside_a_blocking_thread() {
    let items = Obj::new(RemoteItems::new(0..1));
    let (_server, conn) = blocking::Connection::pair(None, None).unwrap();
    let value = netref::to_value(&conn.wrap(Proxy::local(items.erase()))).unwrap();
    let err = value.decode::<blocking::Proxy>().unwrap_err();
    assert!(err.to_string().contains("wrap"), "{err}");
}
