//! Hostile input against a live server, property-based.
//!
//! Every case opens a raw TCP connection to one running server (lending the test `Lab`),
//! completes the hello, writes bytes made by a strategy, ends its direction of the stream and
//! reads until the server closes. The oracle is a model of `docs/protocol.md`
//! (`common::wire::decode_with` plus the framing rules): it says how the server must end each
//! byte stream (clean end of stream, a truncated read, an oversized frame, a malformed
//! message, a nesting bomb, a goodbye), and the server's close reason, seen through the
//! `on_disconnect` hook, must say the same. Streams the model calls well formed must leave the
//! connection open: a ping sent after them is answered.
//!
//! After every case a well-behaved client of the same server must get a correct answer, and
//! the process's resident memory must stay under a bound; cases that declare huge sizes
//! check that memory does not move by anything near the declared size. Counts are printed
//! (past the harness's capture). `NETREF_HOSTILE_SCALE` multiplies the case counts (default
//! 1: about 9,600 cases, under a minute in a debug build on two cores) and
//! `NETREF_HOSTILE_SEED` replays a run (the seed is printed).
mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use common::wire::{self, Bad, Msg, O, T, W};
use common::*;
use netref::{Args, Config, Connection, ErrorKind, Obj, Server, ServerHandle, Value};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The hostile server's frame limit: small, so a frame that stays under it is cheap.
const MAX_FRAME: usize = 1 << 20;
/// The hostile server's nesting limit (the default).
const MAX_DEPTH: usize = 64;
/// The resident memory this test process must stay under, whatever a case sends.
const RSS_BOUND: u64 = 768 << 20;
/// How much one case that declares a huge size may move resident memory.
const DECLARED_SLACK: u64 = 32 << 20;

/// One test at a time: resident memory is process-wide.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Panics anywhere in the process other than the `Lab`'s deliberate one.
static STRAY_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = format!("{info}");
            if !text.contains("boom went the handler") {
                STRAY_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// How the server must end a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum End {
    /// Every frame was a valid message: the stream ended between frames.
    Clean,
    /// The stream ended inside a frame (its length or its body).
    Truncated,
    /// A frame declared more than the server's max frame.
    Oversized,
    /// A frame body that is not exactly one valid message.
    Malformed,
    /// A value nested deeper than the server's max depth.
    TooDeep,
    /// A valid `Goodbye`.
    Goodbye,
}

/// The model: how `stream` (the bytes after the hello, then end of stream) must end.
fn model(mut stream: &[u8]) -> End {
    loop {
        if stream.is_empty() {
            return End::Clean;
        }
        if stream.len() < 4 {
            return End::Truncated;
        }
        let len = u32::from_be_bytes([stream[0], stream[1], stream[2], stream[3]]) as usize;
        if len > MAX_FRAME {
            return End::Oversized;
        }
        if stream.len() - 4 < len {
            return End::Truncated;
        }
        match wire::decode_with(&stream[4..4 + len], MAX_DEPTH) {
            Ok(Msg::Goodbye(_)) => return End::Goodbye,
            Ok(_) => {}
            Err(Bad::Malformed) => return End::Malformed,
            Err(Bad::Depth) => return End::TooDeep,
        }
        stream = &stream[4 + len..];
    }
}

/// How the server says it ended a connection.
fn category(reason: &str) -> End {
    if reason == "the peer closed the connection" {
        End::Clean
    } else if reason.starts_with("read failed") {
        End::Truncated
    } else if reason.starts_with("protocol error") && reason.contains("nesting depth") {
        End::TooDeep
    } else if reason.starts_with("protocol error: frame of") && reason.contains("over the limit") {
        End::Oversized
    } else if reason.starts_with("protocol error") {
        End::Malformed
    } else if reason.starts_with("the peer said goodbye") {
        End::Goodbye
    } else {
        panic!("an unexpected close reason: {reason:?}")
    }
}

/// What the server recorded when a connection closed.
#[derive(Debug, Clone)]
struct Closed {
    reason: String,
    live_exports: u64,
    live_imports: u64,
    tasks: u64,
}

/// One live server, a well-behaved client of it, and the bookkeeping of a campaign.
struct Fixture {
    rt: tokio::runtime::Runtime,
    server: ServerHandle,
    closed: Arc<Mutex<HashMap<SocketAddr, Closed>>>,
    bystander: Connection,
    answered: AtomicU64,
    peak_rss: Arc<AtomicU64>,
    corpus: Vec<Vec<u8>>,
}

impl Fixture {
    fn new() -> Fixture {
        count_panics();
        init_tracing();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let closed: Arc<Mutex<HashMap<SocketAddr, Closed>>> = Arc::default();
        let record = closed.clone();
        let config = Config::default()
            .with_max_frame(MAX_FRAME)
            .with_max_depth(MAX_DEPTH);
        let server = rt.block_on(async {
            Server::with_factory(|_| Obj::new(Lab::default()).erase())
                .config(config)
                .on_disconnect(move |info, conn| {
                    if let Some(peer) = info.peer {
                        let stats = conn.stats();
                        record.lock().unwrap().insert(
                            peer,
                            Closed {
                                reason: conn.close_reason().unwrap_or_default(),
                                live_exports: stats.live_exports,
                                live_imports: stats.live_imports,
                                tasks: conn.task_count(),
                            },
                        );
                    }
                })
                .bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port")
        });
        let addr = server.local_addr();
        let bystander = rt.block_on(netref::connect(addr)).expect("the bystander");
        let corpus = rt.block_on(record_corpus(addr));
        let peak_rss = Arc::new(AtomicU64::new(rss_bytes()));
        let peak = peak_rss.clone();
        // Samples resident memory while the campaign runs (stops when the fixture goes).
        std::thread::spawn(move || {
            while Arc::strong_count(&peak) > 1 {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Fixture {
            rt,
            server,
            closed,
            bystander,
            answered: AtomicU64::new(0),
            peak_rss,
            corpus,
        }
    }

    /// Runs one case: writes `stream` after the hello and checks how the server ends it.
    async fn case(&self, stream: &[u8]) -> End {
        let expected = model(stream);
        let mut peer = RawPeer::connect(self.server.local_addr()).await;
        let local = peer.local_addr();
        // An earlier connection from the same port (ports are reused quickly) may have left a
        // record nobody took, such as the corpus recorder's relay: this connection is open,
        // so any record under its address now is stale.
        self.closed.lock().unwrap().remove(&local);
        let written = peer.send(stream).await;
        if expected == End::Clean {
            assert!(written, "the server closed on a well-formed stream");
            // Well formed: the connection must still answer.
            for m in peer.ping(0x5eed).await {
                check_reply(&m);
            }
        }
        peer.finish_writing().await;
        let tail = peer.read_to_end().await;
        let closed = self.closed_record(local).await;
        let got = category(&closed.reason);
        assert_eq!(
            got,
            expected,
            "the server ended the stream as {got:?} ({:?}), the protocol says {expected:?}; \
             stream {:02x?}",
            closed.reason,
            &stream[..stream.len().min(64)]
        );
        assert!(
            !closed.reason.contains("panic"),
            "closed by a panic: {}",
            closed.reason
        );
        assert_eq!(
            (closed.live_exports, closed.live_imports, closed.tasks),
            (0, 0, 0),
            "the closed connection left something behind: {closed:?}"
        );
        // A Goodbye, when one reached us, carries the same reason.
        if let Some(Ok(Msg::Goodbye(said))) = wire::split_frames(&tail)
            .last()
            .map(|b| wire::decode(b).ok_or(()))
        {
            assert_eq!(said, closed.reason);
        }
        self.bystander_answers().await;
        let after = rss_bytes();
        assert!(after < RSS_BOUND, "resident memory {} MiB", mib(after));
        expected
    }

    /// The close record of the connection from `peer`, once the server has it.
    async fn closed_record(&self, peer: SocketAddr) -> Closed {
        let mut found = None;
        eventually("the server closes the hostile connection", || {
            found = self.closed.lock().unwrap().remove(&peer);
            let done = found.is_some();
            async move { done }
        })
        .await;
        found.expect("a close record")
    }

    /// The well-behaved client still gets correct answers.
    async fn bystander_answers(&self) {
        let n = self.answered.fetch_add(1, Ordering::Relaxed) as i64;
        let sum = self
            .bystander
            .root()
            .call_method("add", (n, 1))
            .await
            .expect("the bystander's call");
        assert_eq!(sum, Value::Int(n + 1), "the bystander got a wrong answer");
    }

    /// Runs `cases` cases of `strategy` (each a byte stream) and prints a summary.
    fn campaign<S>(&self, name: &str, cases: u32, strategy: S)
    where
        S: Strategy<Value = Vec<u8>>,
    {
        let cases = scaled(cases);
        let seed = seed();
        let mut runner = TestRunner::new_with_rng(
            RunnerConfig {
                cases,
                failure_persistence: None,
                max_shrink_iters: 256,
                ..RunnerConfig::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
        );
        let ends: Mutex<BTreeMap<End, u32>> = Mutex::default();
        let rss_start = rss_bytes();
        let started = Instant::now();
        let result = runner.run(&strategy, |stream| {
            let end = self.rt.block_on(self.case(&stream));
            *ends.lock().unwrap().entry(end).or_default() += 1;
            Ok(())
        });
        if let Err(e) = result {
            panic!("hostile/{name} (seed {}): {e}", hex(&seed));
        }
        // After the batch: only the bystander is left, and it still works.
        self.rt.block_on(async {
            eventually("only the bystander is connected", || async {
                self.server.connection_count() == 1
            })
            .await;
            self.bystander_answers().await;
            let side = self
                .server
                .connections()
                .into_iter()
                .next()
                .expect("the bystander's server side")
                .1;
            assert_eq!(side.stats().live_exports, 0);
            assert!(!side.is_closed());
        });
        assert_eq!(STRAY_PANICS.load(Ordering::SeqCst), 0, "something panicked");
        let ends = ends.into_inner().unwrap();
        let total: u32 = ends.values().sum();
        report(&format!(
            "hostile/{name}: {total} cases in {:.1?}, ends {ends:?}; bystander answered {} \
             calls so far; RSS {:.1} -> {:.1} MiB (peak {:.1} MiB)",
            started.elapsed(),
            self.answered.load(Ordering::Relaxed),
            mib(rss_start),
            mib(rss_bytes()),
            mib(self.peak_rss.load(Ordering::Relaxed)),
        ));
        assert!(total >= cases, "ran {total} of {cases} cases");
        CASES_RUN.fetch_add(u64::from(total), Ordering::Relaxed);
    }
}

static CASES_RUN: AtomicU64 = AtomicU64::new(0);

/// A reply the hostile peer may get for a well-formed stream: a known error kind, not a
/// panic (the `Lab`'s only panicking member is not among the names tried) and not a
/// disconnection. A protocol-kind reply is a refused request on a connection that stays up
/// (a pipelined answer used as an argument, say).
fn check_reply(m: &Msg) {
    if let Msg::Return(_, Err(e)) = m {
        let kind = e.kind().expect("a known error kind");
        assert!(
            !matches!(kind, ErrorKind::Panicked | ErrorKind::Disconnected),
            "unexpected error reply {e:?}"
        );
    }
}

fn scaled(cases: u32) -> u32 {
    let scale: f64 = std::env::var("NETREF_HOSTILE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((f64::from(cases) * scale) as u32).max(1)
}

/// The campaign's seed: `NETREF_HOSTILE_SEED` (64 hex digits) or a fresh one, printed.
fn seed() -> [u8; 32] {
    static SEED: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let mut seed = [0u8; 32];
        if let Ok(hexed) = std::env::var("NETREF_HOSTILE_SEED") {
            for (i, b) in seed.iter_mut().enumerate() {
                *b = u8::from_str_radix(hexed.get(2 * i..2 * i + 2).unwrap_or("00"), 16)
                    .unwrap_or(0);
            }
        } else {
            let mut x = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id()) << 32;
            for b in seed.iter_mut() {
                // xorshift: enough to spread a clock reading over 32 bytes.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        }
        report(&format!(
            "hostile: seed {} (NETREF_HOSTILE_SEED)",
            hex(&seed)
        ));
        seed
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Real frames: everything a real client writes while it exercises every message kind,
/// recorded by a relay between it and the server.
async fn record_corpus(server: SocketAddr) -> Vec<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a relay port");
    let relay_addr = listener.local_addr().expect("the relay's address");
    let recorded: Arc<Mutex<Vec<u8>>> = Arc::default();
    let rec = recorded.clone();
    let relay = tokio::spawn(async move {
        let (client, _) = listener.accept().await.expect("the client");
        let upstream = TcpStream::connect(server).await.expect("the server");
        let (mut cr, mut cw) = client.into_split();
        let (mut ur, mut uw) = upstream.into_split();
        let up = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        rec.lock().unwrap().extend_from_slice(&buf[..n]);
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = uw.shutdown().await;
        };
        let down = async move {
            let _ = tokio::io::copy(&mut ur, &mut cw).await;
            let _ = cw.shutdown().await;
        };
        tokio::join!(up, down);
    });

    let conn = netref::connect(relay_addr)
        .await
        .expect("connect through the relay");
    let root = conn.root();
    let rich: (
        u64,
        i64,
        f64,
        &str,
        serde_bytes::ByteBuf,
        Vec<Option<u8>>,
        bool,
    ) = (
        u64::MAX - 1,
        -123_456_789,
        2.5,
        "tëxt",
        serde_bytes::ByteBuf::from(vec![0, 1, 255]),
        vec![Some(1), None],
        true,
    );
    let mut map = BTreeMap::new();
    map.insert("k".to_string(), vec![1, 2, 3]);
    root.call_method("add", (1, 2)).await.unwrap();
    root.call_method("echo", (rich,)).await.unwrap();
    root.call_method("echo", (map,)).await.unwrap();
    root.call_method("echo", Args::new().named("x", 7))
        .await
        .unwrap();
    root.attr("value").get().await.unwrap();
    root.attr("step").set(3).await.unwrap();
    root.call_method("inc", ()).await.unwrap();
    root.dir().await.unwrap();
    root.help().await.unwrap();
    root.attr("add").help().await.unwrap();
    let child = root
        .attr("tree")
        .call_method("child", ("a",))
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    child.call_method("path", ()).await.unwrap();
    root.attr("tree")
        .attr("next")
        .call_method("path", ())
        .await
        .unwrap();
    drop(child);
    let lent = root.call_method("lend", ("x",)).await.unwrap();
    drop(lent);
    let mine = Obj::new(Tracked {
        name: "mine".into(),
        drops: DropCounter::default(),
    });
    root.call_method("echo", (mine,)).await.unwrap();
    let theirs = root
        .call_method("lend", ("y",))
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    root.call_method("ask", (theirs.clone(), "name"))
        .await
        .unwrap();
    drop(theirs);
    let cb = netref::callback(|i: i64| i * 2);
    root.call_method("sum_callbacks", (cb, 2u32)).await.unwrap();
    let answer = root.call_method("lend", ("p",)).pipeline().await.unwrap();
    answer.call_method("name", ()).await.unwrap();
    drop(answer);
    let slow = root.call_method("sleep", (60_000u64,));
    let _ = tokio::time::timeout(Duration::from_millis(50), slow).await;
    root.call_method("nope", ()).await.unwrap_err();
    root.call_method("fail", ("x",)).await.unwrap_err();
    eventually("the releases are sent", || async {
        conn.stats().releases_sent >= 1
    })
    .await;
    conn.close().await;
    tokio::time::timeout(RAW_WAIT, relay)
        .await
        .expect("the relay ends")
        .expect("the relay task");

    let bytes = recorded.lock().unwrap().clone();
    assert_eq!(bytes[..16], wire::HELLO, "the client's hello");
    let frames: Vec<Vec<u8>> = wire::split_frames(&bytes[16..])
        .into_iter()
        .map(|body| wire::frame_of(&body))
        .collect();
    // The model reads every real frame, and writes each back byte for byte.
    let mut kinds = BTreeMap::new();
    for f in &frames {
        let msg = wire::decode(&f[4..])
            .unwrap_or_else(|| panic!("the model cannot read a real frame {f:02x?}"));
        assert_eq!(
            &wire::frame(&msg),
            f,
            "the model re-encodes {msg:?} differently"
        );
        let kind = format!("{msg:?}");
        *kinds
            .entry(kind.split('(').next().unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    for needed in ["Call", "Return", "Release", "Cancel", "Finish", "Goodbye"] {
        assert!(
            kinds.contains_key(needed),
            "no {needed} in the corpus: {kinds:?}"
        );
    }
    report(&format!(
        "hostile: corpus of {} real frames recorded from a client: {kinds:?}",
        frames.len()
    ));
    frames
}

// ---- Strategies ----

/// Member names: real ones, private ones, and made-up ones.
fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "add", "echo", "inc", "value", "step", "fail", "tree", "lend", "next", "child",
            "path", "name", "sleep", "ask", "fill", "hidden", "drops", "set_step", "type_info",
            "invoke", "__class__", "", "iter", "next_batch",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_]{0,10}",
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

fn arb_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u64..4, 0u64..4).prop_map(|(v, s)| (v << 32) | s),
        any::<u64>(),
        0u64..300,
    ]
}

fn arb_target() -> impl Strategy<Value = T> {
    prop_oneof![
        3 => Just(T::Root),
        1 => arb_id().prop_map(T::Object),
        1 => (0u64..16).prop_map(T::Answer),
    ]
}

fn arb_value() -> impl Strategy<Value = W> {
    let leaf = prop_oneof![
        Just(W::Nil),
        any::<bool>().prop_map(W::Bool),
        any::<i64>().prop_map(W::Int),
        (0i64..100).prop_map(W::Int),
        any::<u64>().prop_map(W::UInt),
        any::<f64>().prop_map(W::Float),
        arb_name().prop_map(W::Str),
        vec(any::<u8>(), 0..16).prop_map(W::Bytes),
        arb_id().prop_map(W::Sender),
        (arb_target(), vec(arb_name(), 0..3)).prop_map(|(t, p)| W::Receiver(t, p)),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(W::List),
            vec((inner.clone(), inner), 0..3).prop_map(W::Map),
        ]
    })
}

fn arb_op() -> impl Strategy<Value = O> {
    prop_oneof![
        4 => (vec(arb_value(), 0..4), vec((arb_name(), arb_value()), 0..2))
            .prop_map(|(a, n)| O::Call(a, n)),
        1 => Just(O::Get),
        1 => arb_value().prop_map(O::Set),
        1 => Just(O::Dir),
        1 => Just(O::Help),
    ]
}

/// Well-formed messages with made-up ids, targets, member names, operations and values.
fn arb_message() -> impl Strategy<Value = Msg> {
    let call = (
        arb_id(),
        arb_target(),
        vec(arb_name(), 0..4),
        arb_op(),
        prop_oneof![Just(30_000u32), any::<u32>(), 0u32..5],
        prop_oneof![Just(0u8), 0u8..8, any::<u8>()],
        prop_oneof![Just(1u64), any::<u64>()],
    )
        .prop_map(|(id, target, path, op, timeout_ms, flags, trace)| {
            Msg::Call(wire::Call {
                id,
                target,
                path,
                op,
                timeout_ms,
                flags,
                // On the wire only with its flag.
                trace: if flags & wire::FLAG_TRACE != 0 {
                    trace
                } else {
                    0
                },
            })
        });
    let error = (0u64..12, arb_name(), arb_name(), vec(arb_name(), 0..3)).prop_map(
        |(kind, type_name, message, chain)| wire::E {
            kind,
            type_name,
            message,
            chain,
        },
    );
    prop_oneof![
        6 => call,
        1 => (arb_id(), arb_value()).prop_map(|(id, v)| Msg::Return(id, Ok(v))),
        1 => (arb_id(), error).prop_map(|(id, e)| Msg::Return(id, Err(e))),
        1 => vec((arb_id(), any::<u64>()), 0..8).prop_map(Msg::Release),
        1 => arb_id().prop_map(Msg::Cancel),
        1 => arb_id().prop_map(Msg::Finish),
        1 => any::<u64>().prop_map(Msg::Ping),
        1 => any::<u64>().prop_map(Msg::Pong),
    ]
}

/// A change to a real frame.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flips bit `bit` of the byte at `at` (taken modulo the length).
    Flip(usize, u8),
    /// Overwrites a byte, often with a varint marker.
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    /// Adds to the declared length.
    LengthDelta(i32),
    /// Replaces the declared length.
    Length(u32),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(a, b)| Mutation::Flip(a, b)),
        2 => (
            any::<usize>(),
            prop_oneof![any::<u8>(), prop::sample::select(vec![0xfbu8, 0xfc, 0xfd, 0xfe, 0xff, 0, 250])]
        )
            .prop_map(|(a, b)| Mutation::Set(a, b)),
        1 => (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(a, b)| Mutation::Insert(a, b)),
        1 => (any::<usize>(), 1usize..8).prop_map(|(a, n)| Mutation::Delete(a, n)),
        1 => (-16i32..16).prop_map(Mutation::LengthDelta),
        1 => any::<u32>().prop_map(Mutation::Length),
    ]
}

fn mutate(mut frame: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = frame.len().max(1);
        match m {
            Mutation::Flip(at, bit) => {
                if let Some(b) = frame.get_mut(at % n) {
                    *b ^= 1 << bit;
                }
            }
            Mutation::Set(at, v) => {
                if let Some(b) = frame.get_mut(at % n) {
                    *b = *v;
                }
            }
            Mutation::Insert(at, bytes) => {
                let at = at % (frame.len() + 1);
                frame.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete(at, count) => {
                let at = at % n;
                let end = (at + count).min(frame.len());
                frame.drain(at.min(end)..end);
            }
            Mutation::LengthDelta(d) => set_length(&mut frame, |old| old.wrapping_add_signed(*d)),
            Mutation::Length(v) => set_length(&mut frame, |_| *v),
        }
    }
    frame
}

fn set_length(frame: &mut [u8], f: impl FnOnce(u32) -> u32) {
    if frame.len() >= 4 {
        let old = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        frame[..4].copy_from_slice(&f(old).to_be_bytes());
    }
}

/// What may follow a mutated frame: nothing, a ping, or another real frame.
fn arb_suffix(corpus: &[Vec<u8>]) -> impl Strategy<Value = Vec<u8>> {
    let corpus = corpus.to_vec();
    prop_oneof![
        Just(Vec::new()),
        any::<u64>().prop_map(|n| wire::frame(&Msg::Ping(n))),
        prop::sample::select(corpus),
    ]
}

/// A value nested `depth` levels (lists, map keys or map values), built without recursion.
fn nested(depth: usize, container: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let levels = depth.saturating_sub(1);
    match container % 3 {
        0 => {
            for _ in 0..levels {
                out.extend_from_slice(&[7, 1]); // List of one
            }
            out.push(0);
        }
        1 => {
            for _ in 0..levels {
                out.extend_from_slice(&[8, 1]); // Map of one pair; the key nests
            }
            out.push(0);
            out.extend(std::iter::repeat_n(0u8, levels)); // each pair's value: Nil
        }
        _ => {
            for _ in 0..levels {
                out.extend_from_slice(&[8, 1, 0]); // Map of one pair, key Nil; the value nests
            }
            out.push(0);
        }
    }
    out
}

/// A frame body with `value` (already encoded) in `position`.
fn body_with_value(position: u8, value: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    match position % 5 {
        0 => {
            // root.echo(value)
            b.extend_from_slice(&[0, 1, 0, 1, 4]);
            b.extend_from_slice(b"echo");
            b.extend_from_slice(&[0, 1]);
            b.extend_from_slice(value);
            b.extend_from_slice(&[0, 0xfb, 0x30, 0x75, 0]);
        }
        1 => {
            // root.echo(x=value)
            b.extend_from_slice(&[0, 2, 0, 1, 4]);
            b.extend_from_slice(b"echo");
            b.extend_from_slice(&[0, 0, 1, 1, b'x']);
            b.extend_from_slice(value);
            b.extend_from_slice(&[0xfb, 0x30, 0x75, 0]);
        }
        2 => {
            // root.step = value
            b.extend_from_slice(&[0, 3, 0, 1, 4]);
            b.extend_from_slice(b"step");
            b.push(2);
            b.extend_from_slice(value);
            b.extend_from_slice(&[0xfb, 0x30, 0x75, 0]);
        }
        3 => {
            // Return { id 77, Ok(value) }
            b.extend_from_slice(&[1, 77, 0]);
            b.extend_from_slice(value);
        }
        _ => {
            // root.echo([Nil, value]): not the first argument
            b.extend_from_slice(&[0, 4, 0, 1, 4]);
            b.extend_from_slice(b"echo");
            b.extend_from_slice(&[0, 1, 7, 2, 0]);
            b.extend_from_slice(value);
            b.extend_from_slice(&[0, 0xfb, 0x30, 0x75, 0]);
        }
    }
    b
}

/// Frame-body prefixes that end right where a length is declared.
fn length_sites() -> Vec<(&'static str, Vec<u8>)> {
    // Call { id 9, Root, path [], Op::Call { args: 1 value ... } }
    let arg = |tag: &[u8]| {
        let mut b = vec![0, 9, 0, 0, 0, 1];
        b.extend_from_slice(tag);
        b
    };
    vec![
        ("path count", vec![0, 9, 0]),
        ("path string", vec![0, 9, 0, 1]),
        ("argument count", vec![0, 9, 0, 0, 0]),
        ("named count", vec![0, 9, 0, 0, 0, 0]),
        ("named name", vec![0, 9, 0, 0, 0, 0, 1]),
        ("string value", arg(&[5])),
        ("bytes value", arg(&[6])),
        ("list value", arg(&[7])),
        ("map value", arg(&[8])),
        ("reference path", arg(&[9, 1, 0])),
        ("release count", vec![2]),
        ("goodbye reason", vec![7]),
        ("error type name", vec![1, 5, 1, 4]),
        ("error message", vec![1, 5, 1, 4, 0]),
        ("error chain", vec![1, 5, 1, 4, 0, 0]),
        ("returned list", vec![1, 5, 0, 7]),
    ]
}

fn arb_declared() -> impl Strategy<Value = u64> {
    prop_oneof![
        1u64 << 10..1 << 20,
        1u64 << 20..1 << 32,
        (1u64 << 32)..u64::MAX,
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(1u64 << 62),
    ]
}

fn run_campaign(f: impl FnOnce(&Fixture)) {
    let _serial = serial();
    let fixture = Fixture::new();
    f(&fixture);
    report(&format!(
        "hostile: {} cases so far in this process",
        CASES_RUN.load(Ordering::Relaxed)
    ));
    fixture.rt.block_on(fixture.server.shutdown());
}

// ---- The campaigns ----

#[test]
fn random_bytes_after_the_hello() {
    run_campaign(|fx| {
        fx.campaign("random-bytes", 500, vec(any::<u8>(), 0..2048));
        // The same behind a length the limit allows, so the server waits for a body.
        let small_length = (0u32..4096, vec(any::<u8>(), 0..2048)).prop_map(|(len, rest)| {
            let mut b = len.to_be_bytes().to_vec();
            b.extend(rest);
            b
        });
        fx.campaign("random-bytes-small-length", 500, small_length);
        // Random bodies behind an honest length: these reach the decoder.
        let frames = vec(vec(any::<u8>(), 0..300), 1..5)
            .prop_map(|bodies| bodies.iter().flat_map(|b| wire::frame_of(b)).collect());
        fx.campaign("random-frames", 800, frames);
        // Small random bodies that start with a real message tag and id.
        let tagged = vec(
            (0u8..8, vec(any::<u8>(), 0..40)).prop_map(|(tag, rest)| {
                let mut b = vec![tag];
                b.extend(rest);
                wire::frame_of(&b)
            }),
            1..5,
        )
        .prop_map(|frames| frames.concat());
        fx.campaign("random-tagged-frames", 800, tagged);
    });
}

#[test]
fn truncated_and_mutated_real_frames() {
    run_campaign(|fx| {
        let corpus = fx.corpus.clone();
        let truncated = (prop::sample::select(corpus.clone()), any::<usize>())
            .prop_map(|(frame, cut)| frame[..1 + cut % (frame.len() - 1)].to_vec());
        fx.campaign("truncated-frames", 500, truncated);
        // A run of real frames cut anywhere.
        let runs = (
            vec(prop::sample::select(corpus.clone()), 1..6),
            any::<usize>(),
        )
            .prop_map(|(frames, cut)| {
                let all = frames.concat();
                all[..cut % (all.len() + 1)].to_vec()
            });
        fx.campaign("truncated-runs", 400, runs);
        let mutated = (
            prop::sample::select(corpus.clone()),
            vec(arb_mutation(), 1..5),
            arb_suffix(&corpus),
        )
            .prop_map(|(frame, mutations, suffix)| {
                let mut out = mutate(frame, &mutations);
                out.extend(suffix);
                out
            });
        fx.campaign("mutated-frames", 3000, mutated);
    });
}

#[test]
fn well_formed_messages_with_made_up_ids_and_names() {
    run_campaign(|fx| {
        let messages = vec(arb_message(), 1..6)
            .prop_map(|msgs| msgs.iter().flat_map(wire::frame).collect::<Vec<u8>>());
        fx.campaign("made-up-messages", 1500, messages);
    });
}

#[test]
fn oversized_lengths_deep_nesting_and_huge_declared_sizes() {
    run_campaign(|fx| {
        let oversized =
            ((MAX_FRAME as u32 + 1)..=u32::MAX, vec(any::<u8>(), 0..64)).prop_map(|(len, rest)| {
                let mut b = len.to_be_bytes().to_vec();
                b.extend(rest);
                b
            });
        fx.campaign("oversized-lengths", 300, oversized);

        // Nesting around the limit, and far past it.
        let bombs = (
            prop_oneof![(MAX_DEPTH - 3)..=(MAX_DEPTH + 3), (MAX_DEPTH + 1)..100_000,],
            any::<u8>(),
            any::<u8>(),
        )
            .prop_map(|(depth, container, position)| {
                wire::frame_of(&body_with_value(position, &nested(depth, container)))
            });
        fx.campaign("nesting-bombs", 400, bombs);

        // A declared length far past the bytes present, in every place a length can be.
        let sites = length_sites();
        let declared = (
            prop::sample::select(sites),
            arb_declared(),
            vec(any::<u8>(), 0..32),
        )
            .prop_map(|((_, mut body), len, filler)| {
                wire::varint(&mut body, len);
                body.extend(filler);
                wire::frame_of(&body)
            });
        fx.campaign("huge-declared-sizes", 600, declared);

        // Lists inside lists, each declaring a huge length.
        let nested_huge = (1usize..=MAX_DEPTH + 2, arb_declared()).prop_map(|(levels, len)| {
            let mut value = Vec::new();
            for _ in 0..levels {
                value.push(7);
                wire::varint(&mut value, len);
            }
            wire::frame_of(&body_with_value(0, &value))
        });
        fx.campaign("nested-huge-declared-sizes", 200, nested_huge);
    });
}

/// Memory does not follow a declared size: each of these frames declares up to 4 GiB (or a
/// collection of 2^64 - 1 items) and is refused while resident memory stays put.
#[test]
fn declared_sizes_are_never_allocated() {
    run_campaign(|fx| {
        fx.rt.block_on(async {
            let mut cases: Vec<(String, Vec<u8>)> = vec![
                (
                    "a 4 GiB frame".into(),
                    vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
                ),
                (
                    "a frame one byte over the limit".into(),
                    (MAX_FRAME as u32 + 1).to_be_bytes().to_vec(),
                ),
            ];
            for (site, mut body) in length_sites() {
                wire::varint(&mut body, u64::MAX);
                cases.push((format!("{site} of 2^64 - 1"), wire::frame_of(&body)));
            }
            for (what, stream) in &cases {
                let before = rss_bytes();
                let end = fx.case(stream).await;
                let after = rss_bytes();
                assert!(
                    after < before + DECLARED_SLACK,
                    "{what}: resident memory went from {:.1} to {:.1} MiB",
                    mib(before),
                    mib(after)
                );
                assert!(
                    matches!(end, End::Oversized | End::Malformed),
                    "{what}: {end:?}"
                );
            }
            // Many at once, each left open: still nothing near the declared sizes.
            let before = rss_bytes();
            let mut open = Vec::new();
            for _ in 0..64 {
                let mut peer = RawPeer::connect(fx.server.local_addr()).await;
                peer.send(&[0xff, 0xff, 0xff, 0xfe, 0, 0]).await;
                open.push(peer);
            }
            for peer in &mut open {
                let tail = peer.read_to_end().await;
                let frames = wire::split_frames(&tail);
                let said = frames.last().and_then(|f| wire::decode(f));
                assert!(
                    matches!(&said, Some(Msg::Goodbye(r)) if r.contains("over the limit")),
                    "{said:?}"
                );
            }
            let after = rss_bytes();
            assert!(
                after < before + DECLARED_SLACK,
                "64 frames declaring 4 GiB each: resident memory {:.1} -> {:.1} MiB",
                mib(before),
                mib(after)
            );
            fx.bystander_answers().await;
            CASES_RUN.fetch_add(cases.len() as u64 + 64, Ordering::Relaxed);
            report(&format!(
                "hostile/declared-sizes: {} cases, then 64 open at once; RSS {:.1} -> {:.1} MiB",
                cases.len(),
                mib(before),
                mib(after)
            ));
        });
    });
}

/// A server lending the test `Lab` under the default limits, and a well-behaved client.
async fn default_lab_server() -> (ServerHandle, Connection) {
    let server = Server::with_factory(|_| Obj::new(Lab::default()).erase())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let bystander = netref::connect(server.local_addr()).await.unwrap();
    (server, bystander)
}

/// 64 peers each declare a frame of exactly the default limit (16 MiB, so it is allowed),
/// send a few bytes of it and stall. The server holds what arrived, not what was declared:
/// 64 x 16 MiB would be 1 GiB; the reads grow in 64 KiB steps.
#[test]
fn sixty_four_stalled_frames_of_the_full_declared_size_hold_little_memory() {
    let _serial = serial();
    init_tracing();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let (server, bystander) = default_lab_server().await;
        let limit = Config::default().max_frame as u32;
        let before = rss_bytes();
        let mut open = Vec::new();
        for i in 0..64u8 {
            let mut peer = RawPeer::connect(server.local_addr()).await;
            let mut start = limit.to_be_bytes().to_vec();
            start.extend_from_slice(&[0, 1, 0, i]);
            peer.send(&start).await;
            open.push(peer);
        }
        // Every peer's bytes have reached the server once it has answered around them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            bystander.root().call_method("add", (2, 2)).await.unwrap(),
            Value::Int(4)
        );
        let held = rss_bytes();
        assert_eq!(
            server.connection_count(),
            65,
            "the stalled peers stay connected"
        );
        assert!(
            held < before + DECLARED_SLACK,
            "64 stalled frames declaring 16 MiB each: resident memory {:.1} -> {:.1} MiB",
            mib(before),
            mib(held)
        );
        drop(open);
        CASES_RUN.fetch_add(64, Ordering::Relaxed);
        report(&format!(
            "hostile/declared-full-frames: 64 peers each declared a 16 MiB frame (the limit) \
             and sent 4 bytes of it; RSS {:.1} -> {:.1} MiB while they stalled (1 GiB if \
             allocated as declared)",
            mib(before),
            mib(held)
        ));
    });
}

/// The server under the default limits refuses a 4 GiB frame the same way, and the model
/// writes the call of `docs/protocol.md`'s trace byte for byte.
#[test]
fn a_4_gib_frame_under_the_default_limits_is_refused() {
    let _serial = serial();
    init_tracing();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let (server, bystander) = default_lab_server().await;
        let before = rss_bytes();
        let mut peer = RawPeer::connect(server.local_addr()).await;
        peer.send(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).await;
        let tail = peer.read_to_end().await;
        let said = wire::split_frames(&tail)
            .last()
            .and_then(|f| wire::decode(f));
        assert!(
            matches!(&said, Some(Msg::Goodbye(r)) if r.contains("over the limit of 16777216 bytes")),
            "{said:?}"
        );
        assert!(rss_bytes() < before + DECLARED_SLACK);
        assert_eq!(
            bystander.root().call_method("add", (2, 2)).await.unwrap(),
            Value::Int(4)
        );
    });
    let add = wire::frame(&Msg::Call(wire::Call::new(
        1,
        T::Root,
        &["add"],
        O::Call(vec![W::Int(1), W::Int(2)], vec![]),
    )));
    assert_eq!(
        add,
        [
            0, 0, 0, 0x13, 0, 1, 0, 1, 3, b'a', b'd', b'd', 0, 2, 2, 2, 2, 4, 0, 0xfb, 0x30, 0x75,
            0
        ]
    );
}
