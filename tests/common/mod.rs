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
pub mod wire {
    use netref::ErrorKind;

    /// The native hello with the default limits (16 MiB frames, depth 64).
    pub const HELLO: [u8; 16] = [b'N', b'R', b'E', b'F', 0, 1, 0, 0, 0, 3, 1, 0, 0, 0, 0, 64];

    /// The error kinds in wire order.
    pub const KINDS: [ErrorKind; 13] = [
        ErrorKind::NoSuchObject,
        ErrorKind::NoSuchMember,
        ErrorKind::WrongOperation,
        ErrorKind::BadArguments,
        ErrorKind::Failed,
        ErrorKind::Panicked,
        ErrorKind::Overloaded,
        ErrorKind::Cancelled,
        ErrorKind::TimedOut,
        ErrorKind::Disconnected,
        ErrorKind::Protocol,
        ErrorKind::Value,
        ErrorKind::StopIteration,
    ];

    /// A wire value.
    #[derive(Debug, Clone, PartialEq)]
    pub enum W {
        Nil,
        Bool(bool),
        Int(i64),
        UInt(u64),
        Float(f64),
        Str(String),
        Bytes(Vec<u8>),
        List(Vec<W>),
        Map(Vec<(W, W)>),
        /// `Ref(Sender(id))`: an object of the sender.
        Sender(u64),
        /// `Ref(Receiver { target, path })`: an object of the receiver.
        Receiver(T, Vec<String>),
    }

    /// A call target.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum T {
        Root,
        Object(u64),
        Answer(u64),
    }

    /// An operation.
    #[derive(Debug, Clone, PartialEq)]
    pub enum O {
        Call(Vec<W>, Vec<(String, W)>),
        Get,
        Set(W),
        Dir,
        Help,
    }

    /// A remote error.
    #[derive(Debug, Clone, PartialEq)]
    pub struct E {
        pub kind: u64,
        pub type_name: String,
        pub message: String,
        pub chain: Vec<String>,
    }

    impl E {
        /// The kind, when it is a known one.
        pub fn kind(&self) -> Option<ErrorKind> {
            KINDS.get(usize::try_from(self.kind).ok()?).copied()
        }
    }

    /// A call.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Call {
        pub id: u64,
        pub target: T,
        pub path: Vec<String>,
        pub op: O,
        pub timeout_ms: u32,
        pub flags: u8,
    }

    impl Call {
        /// A call of `op` on `path` from the root, with a 30 s deadline and no flags.
        pub fn new(id: u64, target: T, path: &[&str], op: O) -> Call {
            Call {
                id,
                target,
                path: path.iter().map(|s| s.to_string()).collect(),
                op,
                timeout_ms: 30_000,
                flags: 0,
            }
        }
    }

    /// A message.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Msg {
        Call(Call),
        Return(u64, Result<W, E>),
        Release(Vec<(u64, u64)>),
        Cancel(u64),
        Finish(u64),
        Ping(u64),
        Pong(u64),
        Goodbye(String),
    }

    /// An unsigned varint: one byte below 251, else a marker and 2, 4 or 8 bytes.
    pub fn varint(out: &mut Vec<u8>, v: u64) {
        if v < 251 {
            out.push(v as u8);
        } else if v <= u64::from(u16::MAX) {
            out.push(0xfb);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v <= u64::from(u32::MAX) {
            out.push(0xfc);
            out.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            out.push(0xfd);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Zigzag: `0→0, -1→1, 1→2 …`.
    pub fn zigzag(v: i64) -> u64 {
        ((v << 1) ^ (v >> 63)) as u64
    }

    pub fn string(out: &mut Vec<u8>, s: &str) {
        varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    pub fn value(out: &mut Vec<u8>, w: &W) {
        match w {
            W::Nil => out.push(0),
            W::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
            W::Int(i) => {
                out.push(2);
                varint(out, zigzag(*i));
            }
            W::UInt(u) => {
                out.push(3);
                varint(out, *u);
            }
            W::Float(f) => {
                out.push(4);
                out.extend_from_slice(&f.to_le_bytes());
            }
            W::Str(s) => {
                out.push(5);
                string(out, s);
            }
            W::Bytes(b) => {
                out.push(6);
                varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            W::List(items) => {
                out.push(7);
                varint(out, items.len() as u64);
                for i in items {
                    value(out, i);
                }
            }
            W::Map(pairs) => {
                out.push(8);
                varint(out, pairs.len() as u64);
                for (k, v) in pairs {
                    value(out, k);
                    value(out, v);
                }
            }
            W::Sender(id) => {
                out.extend_from_slice(&[9, 0]);
                varint(out, *id);
            }
            W::Receiver(t, path) => {
                out.extend_from_slice(&[9, 1]);
                target(out, *t);
                strings(out, path);
            }
        }
    }

    pub fn target(out: &mut Vec<u8>, t: T) {
        match t {
            T::Root => out.push(0),
            T::Object(id) => {
                out.push(1);
                varint(out, id);
            }
            T::Answer(id) => {
                out.push(2);
                varint(out, id);
            }
        }
    }

    pub fn strings(out: &mut Vec<u8>, items: &[String]) {
        varint(out, items.len() as u64);
        for s in items {
            string(out, s);
        }
    }

    pub fn op(out: &mut Vec<u8>, o: &O) {
        match o {
            O::Call(args, named) => {
                out.push(0);
                varint(out, args.len() as u64);
                for a in args {
                    value(out, a);
                }
                varint(out, named.len() as u64);
                for (k, v) in named {
                    string(out, k);
                    value(out, v);
                }
            }
            O::Get => out.push(1),
            O::Set(v) => {
                out.push(2);
                value(out, v);
            }
            O::Dir => out.push(3),
            O::Help => out.push(4),
        }
    }

    /// The body of `m` (no length prefix).
    pub fn body(m: &Msg) -> Vec<u8> {
        let mut out = Vec::new();
        match m {
            Msg::Call(c) => {
                out.push(0);
                varint(&mut out, c.id);
                target(&mut out, c.target);
                strings(&mut out, &c.path);
                op(&mut out, &c.op);
                varint(&mut out, u64::from(c.timeout_ms));
                out.push(c.flags);
            }
            Msg::Return(id, r) => {
                out.push(1);
                varint(&mut out, *id);
                match r {
                    Ok(v) => {
                        out.push(0);
                        value(&mut out, v);
                    }
                    Err(e) => {
                        out.push(1);
                        varint(&mut out, e.kind);
                        string(&mut out, &e.type_name);
                        string(&mut out, &e.message);
                        strings(&mut out, &e.chain);
                    }
                }
            }
            Msg::Release(pairs) => {
                out.push(2);
                varint(&mut out, pairs.len() as u64);
                for (id, n) in pairs {
                    varint(&mut out, *id);
                    varint(&mut out, *n);
                }
            }
            Msg::Cancel(id) | Msg::Finish(id) | Msg::Ping(id) | Msg::Pong(id) => {
                out.push(match m {
                    Msg::Cancel(_) => 3,
                    Msg::Finish(_) => 4,
                    Msg::Ping(_) => 5,
                    _ => 6,
                });
                varint(&mut out, *id);
            }
            Msg::Goodbye(reason) => {
                out.push(7);
                string(&mut out, reason);
            }
        }
        out
    }

    /// `body` with its 4-byte big-endian length in front.
    pub fn frame_of(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// The whole frame of `m`.
    pub fn frame(m: &Msg) -> Vec<u8> {
        frame_of(&body(m))
    }

    /// Splits a byte stream (after the hello) into frame bodies; a trailing partial frame is
    /// dropped.
    pub fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while bytes.len() >= 4 {
            let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            if bytes.len() < 4 + len {
                break;
            }
            out.push(bytes[4..4 + len].to_vec());
            bytes = &bytes[4 + len..];
        }
        out
    }

    /// Why a frame body is refused, as `docs/protocol.md` (and bincode's standard
    /// configuration) define it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Bad {
        /// Not exactly one message: bad tag, marker, UTF-8 or bool, too few or too many bytes.
        Malformed,
        /// A value nested deeper than the receiver's max depth.
        Depth,
    }

    /// Decodes one frame body with the default max depth; `None` when it is refused.
    pub fn decode(body: &[u8]) -> Option<Msg> {
        decode_with(body, 64).ok()
    }

    /// Decodes one frame body as a receiver with `max_depth` must: the first problem met,
    /// reading front to back, decides the refusal (a declared length is not checked against
    /// the bytes left until an element is missing, as bincode does).
    pub fn decode_with(body: &[u8], max_depth: usize) -> Result<Msg, Bad> {
        let mut c = Cur {
            b: body,
            i: 0,
            max_depth,
        };
        let m = c.msg()?;
        if c.i == body.len() {
            Ok(m)
        } else {
            Err(Bad::Malformed)
        }
    }

    struct Cur<'a> {
        b: &'a [u8],
        i: usize,
        max_depth: usize,
    }

    type R<T> = Result<T, Bad>;
    const BAD: Bad = Bad::Malformed;

    impl Cur<'_> {
        fn take(&mut self, n: usize) -> R<&[u8]> {
            let end = self.i.checked_add(n).ok_or(BAD)?;
            let s = self.b.get(self.i..end).ok_or(BAD)?;
            self.i = end;
            Ok(s)
        }

        fn u8(&mut self) -> R<u8> {
            Ok(self.take(1)?[0])
        }

        fn fixed<const N: usize>(&mut self) -> R<[u8; N]> {
            self.take(N)?.try_into().map_err(|_| BAD)
        }

        /// A `u64` (or `usize`) varint.
        fn u64(&mut self) -> R<u64> {
            let b = self.u8()?;
            Ok(match b {
                0..=250 => u64::from(b),
                0xfb => u64::from(u16::from_le_bytes(self.fixed()?)),
                0xfc => u64::from(u32::from_le_bytes(self.fixed()?)),
                0xfd => u64::from_le_bytes(self.fixed()?),
                _ => return Err(BAD),
            })
        }

        /// A `u32` varint (also every enum's variant index): no 8-byte form.
        fn u32(&mut self) -> R<u32> {
            let b = self.u8()?;
            Ok(match b {
                0..=250 => u32::from(b),
                0xfb => u32::from(u16::from_le_bytes(self.fixed()?)),
                0xfc => u32::from_le_bytes(self.fixed()?),
                _ => return Err(BAD),
            })
        }

        fn string(&mut self) -> R<String> {
            let n = usize::try_from(self.u64()?).map_err(|_| BAD)?;
            let bytes = self.take(n)?;
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| BAD)
        }

        /// A sequence: its declared length, then elements until one is missing.
        fn seq<T>(&mut self, mut item: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
            let n = self.u64()?;
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(item(self)?);
            }
            Ok(out)
        }

        fn strings(&mut self) -> R<Vec<String>> {
            self.seq(Self::string)
        }

        fn target(&mut self) -> R<T> {
            Ok(match self.u32()? {
                0 => T::Root,
                1 => T::Object(self.u64()?),
                2 => T::Answer(self.u64()?),
                _ => return Err(BAD),
            })
        }

        /// A value with `left` levels of nesting still allowed (checked before its tag).
        fn value(&mut self, left: usize) -> R<W> {
            if left == 0 {
                return Err(Bad::Depth);
            }
            Ok(match self.u32()? {
                0 => W::Nil,
                1 => match self.u8()? {
                    0 => W::Bool(false),
                    1 => W::Bool(true),
                    _ => return Err(BAD),
                },
                2 => {
                    let z = self.u64()?;
                    W::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
                }
                3 => W::UInt(self.u64()?),
                4 => W::Float(f64::from_le_bytes(self.fixed()?)),
                5 => W::Str(self.string()?),
                6 => {
                    let n = usize::try_from(self.u64()?).map_err(|_| BAD)?;
                    W::Bytes(self.take(n)?.to_vec())
                }
                7 => W::List(self.seq(|c| c.value(left - 1))?),
                8 => W::Map(self.seq(|c| Ok((c.value(left - 1)?, c.value(left - 1)?)))?),
                9 => match self.u32()? {
                    0 => W::Sender(self.u64()?),
                    1 => W::Receiver(self.target()?, self.strings()?),
                    _ => return Err(BAD),
                },
                _ => return Err(BAD),
            })
        }

        fn top_value(&mut self) -> R<W> {
            let left = self.max_depth;
            self.value(left)
        }

        fn op(&mut self) -> R<O> {
            Ok(match self.u32()? {
                0 => {
                    let args = self.seq(Self::top_value)?;
                    let named = self.seq(|c| Ok((c.string()?, c.top_value()?)))?;
                    O::Call(args, named)
                }
                1 => O::Get,
                2 => O::Set(self.top_value()?),
                3 => O::Dir,
                4 => O::Help,
                _ => return Err(BAD),
            })
        }

        fn msg(&mut self) -> R<Msg> {
            Ok(match self.u32()? {
                0 => Msg::Call(Call {
                    id: self.u64()?,
                    target: self.target()?,
                    path: self.strings()?,
                    op: self.op()?,
                    timeout_ms: self.u32()?,
                    flags: self.u8()?,
                }),
                1 => {
                    let id = self.u64()?;
                    let result = match self.u32()? {
                        0 => Ok(self.top_value()?),
                        1 => Err(E {
                            kind: match self.u32()? {
                                k if (k as usize) < KINDS.len() => u64::from(k),
                                _ => return Err(BAD),
                            },
                            type_name: self.string()?,
                            message: self.string()?,
                            chain: self.strings()?,
                        }),
                        _ => return Err(BAD),
                    };
                    Msg::Return(id, result)
                }
                2 => Msg::Release(self.seq(|c| Ok((c.u64()?, c.u64()?)))?),
                3 => Msg::Cancel(self.u64()?),
                4 => Msg::Finish(self.u64()?),
                5 => Msg::Ping(self.u64()?),
                6 => Msg::Pong(self.u64()?),
                7 => Msg::Goodbye(self.string()?),
                _ => return Err(BAD),
            })
        }
    }
}

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
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the test server");
        let _ = stream.set_nodelay(true);
        stream.write_all(&wire::HELLO).await.expect("send a hello");
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
        use tokio::io::AsyncReadExt;
        let read = async {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await.ok()?;
            let len = u32::from_be_bytes(len) as usize;
            assert!(len <= 64 << 20, "the server sent a {len}-byte frame");
            let mut body = vec![0u8; len];
            self.stream.read_exact(&mut body).await.ok()?;
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
