//! Shared helpers for the integration tests: a test service, servers on 127.0.0.1:0, and an
//! eventual-state waiter.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use netref::{expose, Connection, Obj, Proxy, Result, Server, ServerHandle, Value};

/// Installs a test tracing subscriber once (respects RUST_LOG).
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
}

/// Counts live instances of `Tracked`.
#[derive(Default, Clone)]
pub struct DropCounter(pub Arc<AtomicUsize>);

impl DropCounter {
    pub fn dropped(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// An object whose `Drop` is counted.
pub struct Tracked {
    pub name: String,
    pub drops: DropCounter,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A tracked object.
#[expose]
impl Tracked {
    /// Its name.
    #[exposed]
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A node of a small tree, for paths and pipelining.
pub struct Node {
    pub name: String,
}

/// A named node.
#[expose]
impl Node {
    /// A child node called `name`.
    #[exposed]
    fn child(&self, name: String) -> Obj<Node> {
        Obj::new(Node {
            name: format!("{}/{}", self.name, name),
        })
    }

    /// The path of this node.
    #[exposed]
    fn path(&self) -> String {
        self.name.clone()
    }

    /// A fixed child, as a property.
    #[exposed(property)]
    fn next(&self) -> Obj<Node> {
        Obj::new(Node {
            name: format!("{}/next", self.name),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refused(pub String);

/// The test service.
#[derive(Default)]
pub struct Lab {
    pub value: AtomicI64,
    pub step: AtomicI64,
    pub drops: DropCounter,
}

/// A lab for tests.
#[expose]
impl Lab {
    /// Adds two numbers.
    #[exposed]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Returns its argument.
    #[exposed]
    fn echo(&self, x: Value) -> Value {
        x
    }

    /// Not exposed: must be unreachable.
    fn hidden(&self) -> i64 {
        42
    }

    /// Adds `step` to the value.
    #[exposed]
    fn inc(&self) -> i64 {
        let step = self.step.load(Ordering::SeqCst).max(1);
        self.value.fetch_add(step, Ordering::SeqCst) + step
    }

    /// The current value.
    #[exposed(property)]
    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    /// The increment.
    #[exposed(property)]
    fn step(&self) -> i64 {
        self.step.load(Ordering::SeqCst)
    }

    /// Sets the increment.
    #[exposed(setter)]
    fn set_step(&self, step: i64) {
        self.step.store(step, Ordering::SeqCst)
    }

    /// Always fails with `Refused`.
    #[exposed]
    fn fail(&self, why: String) -> std::result::Result<i64, Refused> {
        Err(Refused(why))
    }

    /// Always panics.
    #[exposed]
    fn boom(&self) -> i64 {
        panic!("boom went the handler")
    }

    /// Calls `cb(i)` for i in 0..n and sums the results.
    #[exposed]
    async fn sum_callbacks(&self, cb: Proxy, n: u32) -> Result<i64> {
        let mut sum = 0;
        for i in 0..n {
            sum += cb.call((i,)).decode::<i64>().await?;
        }
        Ok(sum)
    }

    /// Ping-pong: calls `cb(depth - 1)` and returns what it returns plus one.
    #[exposed]
    async fn bounce(&self, cb: Proxy, depth: u32) -> Result<u32> {
        if depth == 0 {
            return Ok(0);
        }
        let r: u32 = cb.call((depth - 1,)).decode().await?;
        Ok(r + 1)
    }

    /// Appends 0..n to a lent list.
    #[exposed]
    async fn fill(&self, list: Proxy, n: u32) -> Result<()> {
        for i in 0..n {
            list.call_method("append", (i,)).await?;
        }
        Ok(())
    }

    /// Reads a lent file line by line, calling `on_line(line)` for each; returns the count.
    #[exposed]
    async fn count_lines(&self, file: Proxy, on_line: Proxy) -> Result<u64> {
        let mut n = 0;
        loop {
            let line = file.call_method("readline", ()).await?;
            if line.as_str().is_none_or(str::is_empty) {
                return Ok(n);
            }
            on_line.call((line,)).await?;
            n += 1;
        }
    }

    /// Lends a fresh tracked object.
    #[exposed]
    fn lend(&self, name: String) -> Obj<Tracked> {
        Obj::new(Tracked {
            name,
            drops: self.drops.clone(),
        })
    }

    /// The root of a tree.
    #[exposed(property)]
    fn tree(&self) -> Obj<Node> {
        Obj::new(Node {
            name: "tree".into(),
        })
    }

    /// Calls `method()` on `obj` and returns the result.
    #[exposed]
    async fn ask(&self, obj: Proxy, method: String) -> Result<Value> {
        obj.call_method(&method, ()).await
    }

    /// Sleeps for `ms` milliseconds.
    #[exposed]
    async fn sleep(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
}

/// A TCP server on 127.0.0.1:0 lending a fresh `Lab` per connection (all sharing `drops`).
pub async fn lab_server(drops: DropCounter) -> ServerHandle {
    init_tracing();
    Server::with_factory(move |_| {
        Obj::new(Lab {
            drops: drops.clone(),
            ..Lab::default()
        })
        .erase()
    })
    .bind("127.0.0.1:0")
    .await
    .expect("bind a loopback port")
}

/// A server and one client connected to it.
pub async fn lab_client() -> (ServerHandle, Connection, DropCounter) {
    let drops = DropCounter::default();
    let server = lab_server(drops.clone()).await;
    let conn = netref::connect(server.local_addr())
        .await
        .expect("connect to the test server");
    (server, conn, drops)
}

/// Waits (bounded) until `cond` holds; panics with `what` otherwise. For eventual effects of
/// one-way messages (releases), not for timing.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..2000 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The only connection the server has (waiting for it to be registered).
pub async fn server_side(server: &ServerHandle) -> Connection {
    eventually("the server registers the connection", || async {
        server.connection_count() == 1
    })
    .await;
    server.connections().into_iter().next().unwrap()
}
