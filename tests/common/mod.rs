//! Shared helpers for the integration tests: a test service, servers on 127.0.0.1:0, and an
//! eventual-state waiter.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

pub mod python;

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

/// An in-memory pair lending `root` on the first side: `(server, client)`.
pub async fn pair(root: impl Into<Arc<dyn netref::Object>>) -> (Connection, Connection) {
    init_tracing();
    netref::pair(Some(root.into()), None)
        .await
        .expect("an in-memory pair")
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
    server.connections().into_iter().next().unwrap().1
}

// ---- Transports and the blocking API (tests/transports.rs, tests/blocking.rs) ----

/// A fresh, empty directory under the system temp dir, removed with its contents on drop.
/// Short paths, so Unix socket paths inside stay under the platform's limit.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "netref-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The executable of example `name` of this package, up to date.
///
/// Integration tests may run before (or without) the examples being built (`cargo test
/// --test x` builds no example), so the first call in a test process runs `cargo build
/// --example NAME` with the cargo and profile that built the test, and takes the path from
/// cargo's JSON output. If cargo cannot be run, the sibling `target/<profile>/examples/NAME`
/// is used when it exists.
pub fn example_bin(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, std::path::PathBuf)>> =
        std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let path = build_example(name);
    built.push((name.to_string(), path.clone()));
    path
}

fn build_example(name: &str) -> std::path::PathBuf {
    use std::path::Path;
    let exe = std::env::current_exe().expect("the test executable's path");
    // The test runs as target/<profile dir>/deps/<test>-<hash>.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let sibling = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let output = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--example", name, "--profile", &profile])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .stdin(std::process::Stdio::null())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if sibling.exists() => {
            eprintln!("cannot run cargo ({e}); using {}", sibling.display());
            return sibling;
        }
        Err(e) => panic!("cannot run cargo to build example `{name}`: {e}"),
    };
    assert!(
        output.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name {
            if let Some(path) = msg["executable"].as_str() {
                return path.into();
            }
        }
    }
    panic!("cargo built example `{name}` but reported no executable");
}

/// A netref server on 127.0.0.1:0 running on its own thread and tokio runtime, for tests
/// that are plain synchronous programs (the blocking API). Stopped and joined on drop.
pub struct ServerThread {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Serves `server` (bound to 127.0.0.1:0).
    pub fn start(server: Server) -> ServerThread {
        init_tracing();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("start the server runtime");
            rt.block_on(async move {
                let handle = server
                    .bind("127.0.0.1:0")
                    .await
                    .expect("bind a loopback port");
                let _ = addr_tx.send(handle.local_addr());
                let _ = stop_rx.await;
                handle.shutdown().await;
            });
        });
        let addr = addr_rx
            .recv()
            .expect("the server thread reports its address");
        ServerThread {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A server lending a fresh `Lab` per connection.
    pub fn lab() -> ServerThread {
        ServerThread::start(Server::with_factory(|_| Obj::new(Lab::default()).erase()))
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---- The reliability campaign (tests/hostile.rs, tests/access.rs, tests/faults.rs) ----

/// Resident memory of this process, in bytes (`VmRSS` of `/proc/self/status`; 0 where there
/// is no procfs).
pub fn rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Open file descriptors of this process (0 where there is no procfs).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Mebibytes, for reports.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Writes a line to the real stderr, past the test harness's output capture, so campaign
/// counts show in `cargo test` output and CI logs.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The native protocol built by hand from `docs/protocol.md`, for peers that write raw
/// bytes: an encoder for every message and a decoder for what a server sends back.
pub mod wire;

/// A peer that speaks the native protocol by hand over TCP: it sends whatever bytes a test
/// gives it and decodes what the server sends back. Every read is bounded in time.
pub struct RawPeer {
    pub stream: tokio::net::TcpStream,
}

/// How long a raw peer waits for the server before the test fails.
pub const RAW_WAIT: Duration = Duration::from_secs(30);

impl RawPeer {
    /// Connects and exchanges hellos (ours with the default limits).
    pub async fn connect(addr: std::net::SocketAddr) -> RawPeer {
        RawPeer::connect_with_hello(addr, wire::HELLO).await
    }

    /// Connects and exchanges hellos, ours being `hello` (an old peer's, say).
    pub async fn connect_with_hello(addr: std::net::SocketAddr, hello: [u8; 16]) -> RawPeer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the test server");
        let _ = stream.set_nodelay(true);
        stream.write_all(&hello).await.expect("send a hello");
        let mut hello = [0u8; 16];
        tokio::time::timeout(RAW_WAIT, stream.read_exact(&mut hello))
            .await
            .expect("the server's hello in time")
            .expect("the server's hello");
        assert_eq!(&hello[..4], b"NREF", "the server's hello");
        RawPeer { stream }
    }

    /// This side's address (the server sees it as the peer address).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.stream.local_addr().expect("a local address")
    }

    /// Writes `bytes`; the server may already have closed, which is not an error here.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Writes one message.
    pub async fn send_msg(&mut self, m: &wire::Msg) -> bool {
        self.send(&wire::frame(m)).await
    }

    /// Ends our direction of the stream: the server reads end-of-stream.
    pub async fn finish_writing(&mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.stream.shutdown().await;
    }

    /// The next frame the server sends, decoded (`Err` holds a body that did not decode);
    /// `None` once the stream ends or fails.
    pub async fn recv(&mut self) -> Option<Result<wire::Msg, Vec<u8>>> {
        let read = async {
            let body = wire::read_frame(&mut self.stream).await?;
            Some(wire::decode(&body).ok_or(body))
        };
        tokio::time::timeout(RAW_WAIT, read)
            .await
            .expect("the server neither sent a frame nor closed in time")
    }

    /// Messages until one matches `stop` (included), or until the stream ends.
    pub async fn recv_until(&mut self, mut stop: impl FnMut(&wire::Msg) -> bool) -> Vec<wire::Msg> {
        let mut got = Vec::new();
        while let Some(m) = self.recv().await {
            let m =
                m.unwrap_or_else(|body| panic!("the server sent an undecodable frame {body:02x?}"));
            let done = stop(&m);
            got.push(m);
            if done {
                break;
            }
        }
        got
    }

    /// Sends a ping and reads until its pong: proves the connection is alive. Returns what
    /// came before the pong; panics if the server closed instead.
    pub async fn ping(&mut self, n: u64) -> Vec<wire::Msg> {
        assert!(
            self.send_msg(&wire::Msg::Ping(n)).await,
            "the server closed"
        );
        let mut got = self.recv_until(|m| *m == wire::Msg::Pong(n)).await;
        assert_eq!(
            got.pop(),
            Some(wire::Msg::Pong(n)),
            "the server closed instead of answering ping {n}"
        );
        got
    }

    /// Sends a call and returns its reply (other messages are skipped).
    pub async fn call(&mut self, call: wire::Call) -> Result<wire::W, wire::E> {
        let id = call.id;
        assert!(
            self.send_msg(&wire::Msg::Call(call)).await,
            "the server closed"
        );
        let got = self
            .recv_until(|m| matches!(m, wire::Msg::Return(i, _) if *i == id))
            .await;
        match got.into_iter().last() {
            Some(wire::Msg::Return(_, r)) => r,
            other => panic!("no reply to call {id}: {other:?}"),
        }
    }

    /// Everything the server sends until it closes the stream (bounded in time).
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let read = async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(RAW_WAIT, read)
            .await
            .expect("the server did not close the connection in time");
        out
    }
}
