//! Python → Rust over RPyC 6's wire: Python's own `rpyc.connect` against a netref
//! `Server::rpyc()` (`tests/python/rpyc_client_checks.py`, rpyc 6.0.2 from the package index).

mod common;

use std::sync::atomic::{AtomicI64, Ordering};

use common::python::PyProc;
use netref::adapters::{Iter, List};
use netref::{expose, Obj, Proxy, Result, Server, Value};
use parking_lot::Mutex;

#[derive(Default)]
struct Counter {
    value: AtomicI64,
}

/// A counter.
#[expose]
impl Counter {
    /// Adds one.
    #[exposed]
    fn inc(&self) -> i64 {
        self.value.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The count.
    #[exposed(property)]
    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }
}

struct Thing {
    name: String,
}

/// A thing lent by reference.
#[expose]
impl Thing {
    /// Its name.
    #[exposed]
    fn name(&self) -> String {
        self.name.clone()
    }
}

struct Calc {
    counter: Obj<Counter>,
    last: Mutex<Option<Obj<Thing>>>,
    label: Mutex<String>,
}

/// The test service.
#[expose]
impl Calc {
    /// Adds two numbers.
    #[exposed]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// A shared counter.
    #[exposed(property)]
    fn counter(&self) -> Obj<Counter> {
        self.counter.clone()
    }

    /// Calls `cb(i)` for i in 0..n.
    #[exposed]
    async fn every(&self, n: u32, cb: Proxy) -> Result<u32> {
        for i in 0..n {
            cb.call((i,)).await?;
        }
        Ok(n)
    }

    /// The sum of `cb(i)` for i in 0..n.
    #[exposed]
    async fn sum_callbacks(&self, n: u32, cb: Proxy) -> Result<i64> {
        let mut sum = 0;
        for i in 0..n {
            sum += cb.call((i,)).await?.as_i64().unwrap_or(0);
        }
        Ok(sum)
    }

    /// An iterator over 0..n.
    #[exposed]
    fn numbers(&self, n: u64) -> Obj<Iter> {
        Obj::new(Iter::new(0..n))
    }

    /// Squares, by value.
    #[exposed]
    fn squares(&self, n: i64) -> Vec<i64> {
        (0..n).map(|i| i * i).collect()
    }

    /// A shared list.
    #[exposed]
    fn items(&self) -> Obj<List> {
        Obj::new(List::from_vec(vec!["a".into(), "b".into(), "c".into()]))
    }

    /// Makes a thing and remembers it.
    #[exposed]
    fn make(&self, name: String) -> Obj<Thing> {
        let t = Obj::new(Thing { name });
        *self.last.lock() = Some(t.clone());
        t
    }

    /// True when `t` is the very thing made last.
    #[exposed]
    fn is_made(&self, t: Obj<Thing>) -> bool {
        self.last
            .lock()
            .as_ref()
            .is_some_and(|l| Obj::ptr_eq(l, &t))
    }

    /// Fails with `message`.
    #[exposed]
    fn fail(&self, message: String) -> std::result::Result<i64, std::io::Error> {
        Err(std::io::Error::other(message))
    }

    /// A label.
    #[exposed(property)]
    fn label(&self) -> String {
        self.label.lock().clone()
    }

    /// Sets the label.
    #[exposed(setter)]
    fn set_label(&self, label: String) {
        *self.label.lock() = label;
    }

    #[allow(dead_code)]
    fn hidden(&self) -> i64 {
        42
    }
}

/// A `Calc` served to RPyC clients on a free loopback port.
async fn calc_server() -> (Obj<Calc>, netref::ServerHandle) {
    let root = Obj::new(Calc {
        counter: Obj::new(Counter::default()),
        last: Mutex::new(None),
        label: Mutex::new(String::new()),
    });
    let server = Server::with_root(root.erase())
        .rpyc()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    (root, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drives_a_rust_service() {
    common::init_tracing();
    let (root, server) = calc_server().await;
    let port = server.local_addr().port().to_string();
    let mut py = PyProc::start("rpyc_client_checks.py", &[&port], None);
    for check in [
        "add",
        "counter",
        "every",
        "callbacks",
        "iteration",
        "dir",
        "hidden",
        "identity",
        "setattr",
        "errors",
        "repr",
    ] {
        assert_eq!(py.line().await, format!("ok {check}"));
    }
    assert_eq!(py.line().await, "DROPPED");
    let conns = server.rpyc_connections();
    assert_eq!(conns.len(), 1);
    let conn = conns[0].clone();
    // Everything Python held was released with DELs (the last one, of the bound method of
    // its final call, may still be on its way), but the root, which Python's connection
    // keeps until it closes.
    common::eventually("python released everything but the root", || async {
        conn.tables().len() == 1
    })
    .await;
    assert!(
        conn.tables()[0].contains("netref.Calc"),
        "{:?}",
        conn.tables()
    );
    assert_eq!(conn.import_count(), 0, "every Python callback was released");
    py.send("bye").await;
    assert_eq!(py.line().await, "CLOSED");
    py.finish().await;
    conn.closed().await;
    assert_eq!(conn.export_count(), 0);
    common::eventually("the server saw the client go", || async {
        server.connection_count() == 0
    })
    .await;
    assert_eq!(root.counter.value.load(Ordering::SeqCst), 2);
    assert_eq!(&*root.label.lock(), "from python");
    server.shutdown().await;
}

/// The worked trace of `docs/rpyc.md`: what Python's `conn.root.add(1, 2)` sends, as this
/// side's tracer shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_of_a_first_call_from_python() {
    common::init_tracing();
    let (_root, server) = calc_server().await;
    let port = server.local_addr().port().to_string();
    let mut py = PyProc::start("rpyc_trace_client.py", &[&port], None);
    assert_eq!(py.line().await, "CONNECTED");
    // The client's TCP connect can return before the server has accepted it.
    common::eventually("the server accepted the python client", || async {
        !server.rpyc_connections().is_empty()
    })
    .await;
    let conn = server.rpyc_connections().pop().expect("the python client");
    let recorder = netref::trace::Recorder::new(100);
    conn.set_tracer(Some(recorder.tracer()));
    py.send("go").await;
    assert_eq!(py.line().await, "3");
    py.finish().await;
    conn.closed().await;
    let lines: Vec<String> = recorder.events().iter().map(|e| e.to_string()).collect();
    let expected = [
        "<- REQUEST 0 GETROOT()",
        "-> REPLY 0 = ref<netref.Calc 0x1>",
        "<- REQUEST 1 INSPECT((\"netref.Calc\", 673935271892, 1))",
        "-> REPLY 1 = ((\"add\", \"Adds two numbers.\"), (\"every\", \"Calls `cb(i)` for i in 0..n.\"), \
         (\"sum_callbacks\", \"The sum of `cb(i)` for i in 0..n.\"), (\"numbers\", \"An iterator over \
         0..n.\"), (\"squares\", \"Squares, by value.… (371 bytes)",
        "<- REQUEST 2 GETATTR(yours<netref.Calc 0x1>, \"add\")",
        "-> REPLY 2 = ref<builtins.method 0x2>",
        "<- REQUEST 3 CALL(yours<builtins.method 0x2>, (1, 2), ())",
        "-> REPLY 3 = 3",
        "<- REQUEST 4 DEL(yours<builtins.method 0x2>, 1)",
        "-> REPLY 4 = None",
        "<- REQUEST 5 CLOSE()",
    ];
    assert_eq!(lines, expected, "{lines:#?}");
}

/// A service whose replies Python cannot be given: each holds objects lent by reference
/// and something RPyC cannot carry.
struct Unsendable;

fn thing(name: &str) -> Value {
    Proxy::local(
        Obj::new(Thing {
            name: name.to_owned(),
        })
        .erase(),
    )
    .into()
}

/// Replies that do not encode.
#[expose]
impl Unsendable {
    /// A fresh thing, and the attribute path `obj.name` of Python's own object (a path
    /// cannot go back to Python).
    #[exposed]
    fn pair(&self, obj: Proxy) -> Vec<Value> {
        vec![thing("lent"), obj.attr("name").into()]
    }

    /// The same, after yielding once (answered from the handler's own task).
    #[exposed]
    async fn pair_later(&self, obj: Proxy) -> Vec<Value> {
        tokio::task::yield_now().await;
        self.pair(obj)
    }

    /// An iterator that gives two things when asked for one.
    #[exposed]
    fn greedy(&self) -> Obj<Greedy> {
        Obj::new(Greedy)
    }

    /// Adds two numbers.
    #[exposed]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

struct Greedy;

/// An iterator that breaks `next_batch`'s contract.
#[expose]
impl Greedy {
    /// Two things, whatever was asked.
    #[exposed]
    fn next_batch(&self, _max: u64) -> Vec<Value> {
        vec![thing("one"), thing("two")]
    }
}

/// A reply that cannot be encoded for Python reaches it as an exception, gives back at
/// once what it would have lent (the export table is as before), and the connection goes
/// on: sent at once or from the handler's task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_python_cannot_be_given_lends_nothing() {
    common::init_tracing();
    let server = Server::with_root(Obj::new(Unsendable).erase())
        .rpyc()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().port().to_string();
    let mut py = PyProc::start("rpyc_unsent_replies.py", &[&port], None);
    assert_eq!(py.line().await, "READY");
    let conn = server.rpyc_connections().pop().expect("the python client");
    // The engine's tables, and the wire's id_packs.
    let tables = || (conn.connection().tables(), conn.tables());
    let before = tables();
    assert_eq!(before.0.exports.len(), 1, "the root: {before:?}");
    assert_eq!(before.1.len(), 1, "the root: {before:?}");
    for (check, says) in [
        ("pair", "cannot go back to Python"),
        ("pair_later", "cannot go back to Python"),
        ("greedy", "next_batch(1) gave 2 items"),
    ] {
        py.send(check).await;
        let line = py.line().await;
        assert!(
            line.starts_with("raised ") && line.contains(says),
            "{check}: {line}"
        );
        // Only the bound method Python read for the call may still be on its way back
        // (its `DEL`); nothing of the reply stays lent.
        common::eventually(
            &format!("{check}: the export table is as before"),
            || async { tables() == before },
        )
        .await;
        py.send("add").await;
        assert_eq!(
            py.line().await,
            "returned 5",
            "{check}: the connection goes on"
        );
    }
    py.finish().await;
    conn.closed().await;
    server.shutdown().await;
}
