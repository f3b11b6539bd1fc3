//! Rust → Python over RPyC 6's wire: `netref::rpyc::connect` against real Python processes
//! (`tests/python/rpyc_service.py`, rpyc 6.0.2 from the package index).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::python::PyServer;
use netref::{callback, rpyc, Args, ErrorKind, Obj, Proxy, Value};

async fn service() -> (PyServer, rpyc::Connection, Proxy) {
    common::init_tracing();
    let server = PyServer::start("service", None).await;
    let conn = rpyc::connect(server.addr())
        .await
        .expect("connect to python");
    let root = conn.root().await.unwrap();
    (server, conn, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_kwargs_and_properties() {
    let (_py, _conn, root) = service().await;
    assert_eq!(
        root.call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );
    // the `exposed_` prefix works as Python's own clients use it
    assert_eq!(
        root.call_method("exposed_add", ("a", "b")).await.unwrap(),
        Value::from("ab")
    );
    let hi = Args::new()
        .arg("ada")
        .named("greeting", "hi")
        .named("punct", "?");
    assert_eq!(
        root.call_method("greet", hi).await.unwrap(),
        Value::from("hi, ada?")
    );
    // a property is evaluated on every read, as in Python (RPyC's attribute check reads it
    // too, so each read counts more than once)
    let a = root.attr("counter").get().await.unwrap().as_i64().unwrap();
    let b = root.attr("counter").get().await.unwrap().as_i64().unwrap();
    assert!(b > a, "{a} then {b}");
    // attributes of a plain Python object: read and set through a proxy
    let bx = root
        .call_method("box", ())
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    assert_eq!(bx.attr("value").get().await.unwrap(), Value::Int(1));
    bx.attr("value").set(41).await.unwrap();
    bx.attr("label").set("set from rust").await.unwrap();
    assert_eq!(
        root.call_method("box_state", ()).await.unwrap(),
        Value::List(vec![Value::Int(41), Value::from("set from rust")])
    );
    // a path runs through objects only: a str arrives by value, so it has no methods here
    let e = bx.attr("label").call_method("upper", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_objects_are_proxies_with_their_python_behaviour() {
    let (_py, _conn, root) = service().await;
    let items = root
        .call_method("items", ())
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    items.call_method("append", (4,)).await.unwrap();
    items.call_method("extend", (vec![5, 6],)).await.unwrap();
    assert_eq!(
        root.call_method("items_snapshot", ()).await.unwrap(),
        Value::List((1..=6).map(Value::Int).collect())
    );
    assert_eq!(rpyc::len(&items).await.unwrap(), 6);
    assert_eq!(rpyc::getitem(&items, 2).await.unwrap(), Value::Int(3));
    assert_eq!(rpyc::repr(&items).await.unwrap(), "[1, 2, 3, 4, 5, 6]");
    assert_eq!(rpyc::str(&items).await.unwrap(), "[1, 2, 3, 4, 5, 6]");
    let got = rpyc::iter(&items, 4)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(got, (1..=6).map(Value::Int).collect::<Vec<_>>());
    let names = items.dir().await.unwrap();
    assert!(names.iter().any(|n| n == "append"), "{names:?}");
    // == is Python's: equal lists compare equal, a different one does not
    let same = root
        .call_method("items", ())
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    assert!(rpyc::eq(&items, same.clone()).await.unwrap());
    assert_eq!(items, same, "one proxy per Python object");
    let bx = root.call_method("box", ()).await.unwrap();
    assert!(!rpyc::eq(&items, bx).await.unwrap());
    // a Python object sent back arrives in Python as the original
    assert_eq!(
        root.call_method("is_items", (items.clone(),))
            .await
            .unwrap(),
        Value::Bool(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_callback_runs_a_thousand_times_from_python() {
    let (_py, _conn, root) = service().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let cb = callback(move |i: i64| {
        seen.fetch_add(1, Ordering::SeqCst);
        i * 2
    });
    let total = root.call_method("call_many", (cb, 1000)).await.unwrap();
    assert_eq!(total, Value::Int(2 * (0..1000).sum::<i64>()));
    assert_eq!(calls.load(Ordering::SeqCst), 1000);
    // keyword arguments from Python reach a Rust callback by name
    let kw = netref::Callback::from_sync_fn(|mut a: Args| {
        let x: i64 = a.take(0, "x")?;
        let scale: i64 = a.take(1, "scale")?;
        Ok(Value::Int(x * scale))
    })
    .into_proxy();
    assert_eq!(
        root.call_method("call_kw", (kw,)).await.unwrap(),
        Value::Int(10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_exceptions_arrive_as_remote_errors() {
    let (_py, conn, root) = service().await;
    let e = root.call_method("fail", ()).await.unwrap_err();
    let r = e.as_remote().expect("a remote error");
    assert_eq!(r.type_name, "builtins.ValueError");
    assert_eq!(r.message, "(\"boom\", 42)");
    assert!(
        r.chain
            .iter()
            .any(|c| c.contains("Traceback") && c.contains("exposed_fail")),
        "{:?}",
        r.chain
    );
    let e = root.call_method("missing_key", ()).await.unwrap_err();
    assert_eq!(e.as_remote().unwrap().type_name, "builtins.KeyError");
    // an unknown attribute is Python's AttributeError, a missing member here
    let e = root.call_method("no_such_thing", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchMember);
    // the connection goes on
    assert_eq!(
        root.call_method("add", (2, 2)).await.unwrap(),
        Value::Int(4)
    );
    assert!(!conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_generator_iterates() {
    let (_py, _conn, root) = service().await;
    let g = root
        .call_method("gen", (7,))
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    let items = rpyc::iter(&g, 3).await.unwrap().collect().await.unwrap();
    assert_eq!(items, (0..7).map(|i| Value::Int(i * i)).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_objects_go_by_reference_and_come_back_as_themselves() {
    let (_py, conn, root) = service().await;
    let list = Obj::new(netref::adapters::List::new());
    // Python keeps a reference, calls a method on it, and hands it back
    root.call_method("keep", (list.clone(),)).await.unwrap();
    root.call_method("call_method_of", (list.clone(), "append", 7))
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let back = root.call_method("echo", (list.clone(),)).await.unwrap();
    let back: Obj<netref::adapters::List> = back.decode().unwrap();
    assert!(Obj::ptr_eq(&back, &list));
    assert_eq!(
        root.call_method("is_kept", (list.clone(),)).await.unwrap(),
        Value::Bool(true)
    );
    assert_eq!(conn.export_count(), 1);
    // Python drops it: its DEL empties this side's table
    root.call_method("drop_kept", ()).await.unwrap();
    common::eventually("python released the list", || async {
        conn.export_count() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_proxies_release_python_objects() {
    let (_py, _conn, root) = service().await;
    let lent = || async {
        let v = root.call_method("local_objects", ()).await.unwrap();
        let Value::List(rows) = v else { panic!("{v}") };
        rows.into_iter().map(|r| r.to_string()).collect::<Vec<_>>()
    };
    // only the root is lent before
    assert_eq!(lent().await, vec![r#"["__main__.TestService", 0]"#]);
    {
        let items = root
            .call_method("items", ())
            .await
            .unwrap()
            .into_proxy()
            .unwrap();
        let again = root
            .call_method("items", ())
            .await
            .unwrap()
            .into_proxy()
            .unwrap();
        let bx = root
            .call_method("box", ())
            .await
            .unwrap()
            .into_proxy()
            .unwrap();
        let g = root.call_method("gen", (3,)).await.unwrap();
        assert_eq!(items, again);
        assert_eq!(lent().await.len(), 4, "{:?}", lent().await);
        drop((items, again, bx, g));
    }
    // the DELs were written before the next request: Python has handled them
    assert_eq!(lent().await, vec![r#"["__main__.TestService", 0]"#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpyc_classic_reads_a_live_python_process() {
    common::init_tracing();
    let dir = std::env::temp_dir().join(format!("netref-classic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let py = PyServer::start("classic", Some(&dir)).await;
    let conn = rpyc::connect(py.addr()).await.unwrap();
    let root = conn.root().await.unwrap();
    let os = root
        .call_method("getmodule", ("os",))
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    let cwd = os.call_method("getcwd", ()).await.unwrap();
    assert_eq!(cwd.as_str(), Some(dir.to_str().unwrap()));
    assert_eq!(os.attr("sep").get().await.unwrap(), Value::from("/"));
    assert_eq!(
        os.attr("path")
            .call_method("join", ("a", "b"))
            .await
            .unwrap(),
        Value::from("a/b")
    );
    let r = rpyc::repr(&os).await.unwrap();
    assert!(r.starts_with("<module 'os'"), "{r}");
    conn.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
