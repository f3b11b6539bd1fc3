//! Faults: a peer killed mid-call, a half-open link, a peer that stops reading, a thousand
//! connections in churn, and a server shut down with calls in flight.
//!
//! After each: every pending call failed with the right kind, both object tables are empty,
//! every connection's task count is zero, [`netref::live_tasks`] is back to its baseline,
//! open file descriptors are back, and resident memory is back to its baseline within a
//! tolerance. The tests run one at a time (a lock) because the task count, descriptors and
//! memory are process-wide; each prints its figures past the harness's capture.
//!
//! Time-dependent behaviour (keepalive, the write-stall limit over an in-memory link) runs on
//! paused tokio time; the TCP tests use real time with short limits and assert no timings.
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::wire::{self, Msg, O, T, W};
use common::*;
use netref::{expose, Config, Connection, ErrorKind, Obj, Proxy, Server, ServerHandle, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};

/// Resident memory may stay this much above its baseline after a fault (allocator caches).
const RSS_TOLERANCE: u64 = 64 << 20;
/// Descriptors may stay this many above their baseline (runtime internals).
const FD_TOLERANCE: usize = 8;

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A current-thread runtime on paused time (time-dependent faults).
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a paused runtime")
}

/// A multi-thread runtime with two workers, like a server on this machine.
fn two_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// What the process looked like before a fault.
struct Baseline {
    name: &'static str,
    tasks: u64,
    rss: u64,
    fds: usize,
    started: Instant,
}

impl Baseline {
    fn take(name: &'static str) -> Baseline {
        init_tracing();
        Baseline {
            name,
            tasks: netref::live_tasks(),
            rss: rss_bytes(),
            fds: open_fds(),
            started: Instant::now(),
        }
    }

    /// Waits until netref's tasks are back to the baseline, then checks descriptors and
    /// memory, and prints the figures.
    async fn back(&self, extra: &str) {
        eventually("netref's tasks are back to the baseline", || async {
            netref::live_tasks() == self.tasks
        })
        .await;
        let rss = rss_bytes();
        let fds = open_fds();
        report(&format!(
            "faults/{}: {extra}; tasks {} -> {}; fds {} -> {fds}; RSS {:.1} -> {:.1} MiB; {:.1?}",
            self.name,
            self.tasks,
            netref::live_tasks(),
            self.fds,
            mib(self.rss),
            mib(rss),
            self.started.elapsed(),
        ));
        assert!(
            fds <= self.fds + FD_TOLERANCE,
            "descriptors left open: {} -> {fds}",
            self.fds
        );
        assert!(
            rss <= self.rss + RSS_TOLERANCE,
            "resident memory {:.1} -> {:.1} MiB",
            mib(self.rss),
            mib(rss)
        );
    }
}

/// A closed connection holds nothing and runs nothing.
async fn assert_empty(what: &str, conn: &Connection) {
    tokio::time::timeout(Duration::from_secs(30), conn.closed())
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection's tasks did not end"));
    let stats = conn.stats();
    assert_eq!(
        (stats.live_exports, stats.live_imports, conn.task_count()),
        (0, 0, 0),
        "{what}: exports, imports and tasks after the fault"
    );
    let e = conn.root().call_method("add", (1, 2)).await.unwrap_err();
    assert!(
        e.is_disconnected(),
        "{what}: a new call after the fault: {e}"
    );
}

/// The pending call failed as disconnected.
fn assert_disconnected(what: &str, r: netref::Result<Value>) -> String {
    match r {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Disconnected, "{what}: {e}");
            e.to_string()
        }
        Ok(v) => panic!("{what}: succeeded with {v:?} after the fault"),
    }
}

/// A callback that signals when the peer calls it and then blocks until the connection goes;
/// its closure owns a `Tracked`, so its drop is counted.
fn blocking_callback(entered: Arc<Notify>, drops: &DropCounter) -> Proxy {
    let owned = Tracked {
        name: "callback".into(),
        drops: drops.clone(),
    };
    let gate = Arc::new(Semaphore::new(0));
    netref::callback_async(move |i: i64| {
        let _owned = &owned;
        let entered = entered.clone();
        let gate = gate.clone();
        async move {
            entered.notify_one();
            let _never = gate.acquire().await;
            i
        }
    })
}

// ---- A peer killed mid-call ----

/// The child: the `netref` binary serving its lab on stdio when this build has it, else the
/// `stdio_peer` example.
enum Child {
    Lab(std::path::PathBuf),
    StdioPeer(std::path::PathBuf),
}

fn child_program() -> Child {
    match option_env!("CARGO_BIN_EXE_netref") {
        Some(bin) => Child::Lab(bin.into()),
        None => Child::StdioPeer(example_bin("stdio_peer")),
    }
}

#[test]
fn a_peer_killed_mid_call() {
    let _serial = serial();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let base = Baseline::take("peer-killed-mid-call");
        let program = child_program();
        let mut child = match &program {
            Child::Lab(bin) => netref::connect_command(bin, ["serve", "--stdio"]).await,
            Child::StdioPeer(bin) => netref::connect_command(bin, std::iter::empty::<&str>()).await,
        }
        .expect("start the child");
        let conn = child.connection().clone();
        let root = conn.root();
        let drops = DropCounter::default();
        let entered = Arc::new(Notify::new());

        // In flight when the child dies: a call the child is running, a call during which the
        // child is calling us back (our callback is blocked), and objects lent both ways.
        let mut pending = Vec::new();
        let mut held = Vec::new();
        match &program {
            Child::Lab(_) => {
                pending.push(tokio::spawn({
                    let root = root.clone();
                    async move { root.call_method("sleep", (3600.0,)).await }
                }));
                let cb = blocking_callback(entered.clone(), &drops);
                pending.push(tokio::spawn({
                    let root = root.clone();
                    async move { root.call_method("every", (1000u32, cb)).await }
                }));
                let lent = Obj::new(Tracked {
                    name: "lent".into(),
                    drops: drops.clone(),
                });
                root.attr("kv")
                    .call_method("set", ("k", lent))
                    .await
                    .unwrap();
                held.push(root.attr("counter").get().await.unwrap());
                held.push(root.call_method("numbers", (10u64,)).await.unwrap());
            }
            Child::StdioPeer(_) => {
                let cb = blocking_callback(entered.clone(), &drops);
                pending.push(tokio::spawn({
                    let root = root.clone();
                    async move { root.call_method("repeat", (cb, 1000u32)).await }
                }));
            }
        }
        tokio::time::timeout(Duration::from_secs(30), entered.notified())
            .await
            .expect("the child calls our callback");
        let before = conn.stats();
        assert!(before.live_exports >= 1, "{before:?}");
        let pid = child.id();

        child.kill().await.expect("kill the child");
        let mut reasons = Vec::new();
        for p in pending {
            reasons.push(assert_disconnected("a call in flight", p.await.unwrap()));
        }
        assert_empty("the parent's side", &conn).await;
        for h in held {
            let p = h.into_proxy().unwrap();
            assert!(p
                .call_method("inc", ())
                .await
                .unwrap_err()
                .is_disconnected());
        }
        let lent_objects = match program {
            Child::Lab(_) => 2,
            Child::StdioPeer(_) => 1,
        };
        assert_eq!(
            drops.dropped(),
            lent_objects,
            "what we lent was freed (the callback's closure included)"
        );
        assert!(child.try_wait().unwrap().is_some(), "the child was reaped");
        drop(child);
        drop(root);
        drop(conn);
        base.back(&format!(
            "child {pid:?} killed with {} calls in flight, {} exports and {} imports; \
             calls failed as: {}",
            reasons.len(),
            before.live_exports,
            before.live_imports,
            reasons[0]
        ))
        .await;
    });
}

// ---- A half-open link ----

/// Copies bytes between two in-memory links until `cut`, then keeps both open and silent:
/// neither side sees an end of stream or an error, as with a dead network path.
async fn relay(a: tokio::io::DuplexStream, b: tokio::io::DuplexStream, cut: Arc<Notify>) {
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    tokio::select! {
        _ = async {
            tokio::join!(
                tokio::io::copy(&mut ar, &mut bw),
                tokio::io::copy(&mut br, &mut aw)
            )
        } => {}
        _ = cut.notified() => {}
    }
    // Hold all four halves open until the test ends this task.
    std::future::pending::<()>().await;
    drop((ar, aw, br, bw));
}

#[test]
fn a_half_open_link() {
    let _serial = serial();
    let rt = paused_runtime();
    rt.block_on(async {
        let base = Baseline::take("half-open-link");
        let (a_io, a_relay) = tokio::io::duplex(64 * 1024);
        let (b_io, b_relay) = tokio::io::duplex(64 * 1024);
        let cut = Arc::new(Notify::new());
        let relay_task = tokio::spawn(relay(a_relay, b_relay, cut.clone()));
        let config = Config::default()
            .with_keepalive(Some(Duration::from_secs(5)), Duration::from_secs(15))
            .with_call_timeout(Duration::from_secs(3600));
        let a_drops = DropCounter::default();
        let b_drops = DropCounter::default();
        let a_root = Obj::new(Lab {
            drops: a_drops.clone(),
            ..Lab::default()
        })
        .erase();
        let b_root = Obj::new(Lab {
            drops: b_drops.clone(),
            ..Lab::default()
        })
        .erase();
        let (ar, aw) = tokio::io::split(a_io);
        let (br, bw) = tokio::io::split(b_io);
        let (a, b) = tokio::join!(
            Connection::from_io(ar, aw, config.clone(), Some(a_root)),
            Connection::from_io(br, bw, config, Some(b_root)),
        );
        let (a, b) = (a.unwrap(), b.unwrap());

        // Both directions busy: each side runs a call of the other, each holds an object of
        // the other, and A is calling B's callback (blocked) inside B's call.
        let entered = Arc::new(Notify::new());
        let cb_drops = DropCounter::default();
        let cb = blocking_callback(entered.clone(), &cb_drops);
        let calls = vec![
            tokio::spawn({
                let r = b.root();
                async move { r.call_method("sleep", (3_600_000u64,)).await }
            }),
            tokio::spawn({
                let r = a.root();
                async move { r.call_method("sleep", (3_600_000u64,)).await }
            }),
            tokio::spawn({
                let r = b.root();
                async move { r.call_method("sum_callbacks", (cb, 3u32)).await }
            }),
        ];
        let from_a = b.root().call_method("lend", ("a's",)).await.unwrap();
        let from_b = a.root().call_method("lend", ("b's",)).await.unwrap();
        entered.notified().await;
        let (sa, sb) = (a.stats(), b.stats());
        assert!(sa.live_exports >= 1 && sa.live_imports >= 1, "{sa:?}");
        assert!(sb.live_exports >= 2 && sb.live_imports >= 1, "{sb:?}");

        // The path dies silently.
        cut.notify_one();
        let mut reasons = Vec::new();
        for c in calls {
            let reason = assert_disconnected("a call across the dead link", c.await.unwrap());
            assert!(reason.contains("keepalive"), "{reason}");
            reasons.push(reason);
        }
        assert_empty("side A", &a).await;
        assert_empty("side B", &b).await;
        for p in [from_a, from_b] {
            let e = p.into_proxy().unwrap().call_method("name", ()).await;
            assert!(e.unwrap_err().is_disconnected());
        }
        assert_eq!(a_drops.dropped(), 1, "A freed what it lent");
        assert_eq!(b_drops.dropped(), 1, "B freed what it lent");
        assert_eq!(cb_drops.dropped(), 1, "B freed the callback A held");
        drop((a, b));
        relay_task.abort();
        base.back(&format!(
            "3 calls in flight both ways failed on paused time as: {}",
            reasons[0]
        ))
        .await;
    });
}

// ---- A peer that stops reading ----

/// Hands out large values for small requests.
struct Blobs;

/// Large replies.
#[expose]
impl Blobs {
    /// `kib` KiB of bytes (at most 1024).
    #[exposed]
    fn blob(&self, kib: u32) -> serde_bytes::ByteBuf {
        serde_bytes::ByteBuf::from(vec![0x5a; kib.min(1024) as usize * 1024])
    }

    /// Adds two numbers.
    #[exposed]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn blob_call(id: u64, kib: i64) -> Vec<u8> {
    wire::frame(&Msg::Call(wire::Call::new(
        id,
        T::Root,
        &["blob"],
        O::Call(vec![W::Int(kib)], vec![]),
    )))
}

/// Close reasons by peer address, as a server's `on_disconnect` hook records them.
type Closed = Arc<Mutex<Vec<(Option<SocketAddr>, String)>>>;

/// A server lending `Blobs`, recording close reasons by peer address.
async fn blob_server(config: Config) -> (ServerHandle, Closed) {
    let closed: Closed = Arc::default();
    let record = closed.clone();
    let server = Server::with_factory(|_| Obj::new(Blobs).erase())
        .config(config)
        .on_disconnect(move |info, conn| {
            let stats = conn.stats();
            assert_eq!(
                (stats.live_exports, stats.live_imports, conn.task_count()),
                (0, 0, 0)
            );
            record
                .lock()
                .unwrap()
                .push((info.peer, conn.close_reason().unwrap_or_default()));
        })
        .bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    (server, closed)
}

/// Samples resident memory on a thread until dropped; keeps the peak.
struct PeakRss {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl PeakRss {
    fn start() -> PeakRss {
        let peak = Arc::new(AtomicU64::new(rss_bytes()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        PeakRss { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Connects a raw peer with a small receive buffer, says hello, and never reads again.
async fn non_reader(addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(&wire::HELLO).await.unwrap();
    let mut hello = [0u8; 16];
    s.read_exact(&mut hello).await.unwrap();
    s
}

/// Waits for the server's record of the connection from `peer`.
async fn close_reason(closed: &Closed, peer: SocketAddr) -> String {
    let mut reason = None;
    for _ in 0..1200 {
        reason = closed
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| *p == Some(peer))
            .map(|(_, r)| r.clone());
        if reason.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reason.expect("the server dropped the peer that stopped reading")
}

#[test]
fn a_peer_that_stops_reading_is_dropped_after_the_write_stall_limit() {
    let _serial = serial();
    let rt = two_worker_runtime();
    rt.block_on(async {
        let base = Baseline::take("slow-reader");
        let stall = Duration::from_secs(2);
        let (server, closed) = blob_server(Config::default().with_write_stall_timeout(stall)).await;
        let bystander = netref::connect(server.local_addr()).await.unwrap();
        let peak = PeakRss::start();

        // 64 replies of 256 KiB (16 MiB): far more than the socket buffers hold, well under
        // the send queue's 1024 frames. The writer blocks; the stall limit drops the peer.
        let mut slow = non_reader(server.local_addr()).await;
        let peer = slow.local_addr().unwrap();
        let mut calls = Vec::new();
        for id in 1..=64 {
            calls.extend(blob_call(id, 256));
        }
        slow.write_all(&calls).await.unwrap();
        // Others are served meanwhile.
        let mut answered = 0;
        let reason = loop {
            let r: i64 = bystander
                .root()
                .call_method("add", (answered, 1))
                .decode()
                .await
                .unwrap();
            assert_eq!(r, answered + 1);
            answered += 1;
            if let Some(r) = closed
                .lock()
                .unwrap()
                .iter()
                .find(|(p, _)| *p == Some(peer))
            {
                break r.1.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(answered < 3000, "the peer was never dropped");
        };
        assert!(reason.contains("stopped reading"), "{reason}");
        let peak_rss = peak.peak();
        assert!(
            peak_rss < base.rss + 256 * 1024 * 1024,
            "the queued replies held {:.1} MiB",
            mib(peak_rss - base.rss)
        );
        drop(slow);
        assert_eq!(server.connection_count(), 1, "only the bystander is left");
        assert!(!bystander.is_closed());
        bystander.close().await;
        assert_empty("the bystander", &bystander).await;
        server.shutdown().await;
        drop(server);
        base.back(&format!(
            "64 x 256 KiB replies unread: dropped ({reason}); the bystander got {answered} \
             answers meanwhile; peak RSS {:.1} MiB over the baseline",
            mib(peak_rss.saturating_sub(base.rss))
        ))
        .await;
    });
}

#[test]
fn a_peer_flooding_calls_without_reading_is_dropped_with_bounded_memory() {
    let _serial = serial();
    let rt = two_worker_runtime();
    rt.block_on(async {
        let base = Baseline::take("flooding-non-reader");
        let (server, closed) =
            blob_server(Config::default().with_write_stall_timeout(Duration::from_secs(2))).await;
        let bystander = netref::connect(server.local_addr()).await.unwrap();
        let peak = PeakRss::start();
        // More calls than the send queue (1024) and the overflow allowance (max_in_flight,
        // 1024) together, each answered with 16 KiB.
        let mut slow = non_reader(server.local_addr()).await;
        let peer = slow.local_addr().unwrap();
        let mut sent = 0u64;
        for chunk in 0..10u64 {
            let mut calls = Vec::new();
            for id in 0..500 {
                calls.extend(blob_call(chunk * 500 + id + 1, 16));
            }
            if slow.write_all(&calls).await.is_err() {
                break;
            }
            sent += 500;
        }
        let reason = close_reason(&closed, peer).await;
        assert!(
            reason.contains("stopped reading") || reason.contains("does not read"),
            "{reason}"
        );
        let peak_rss = peak.peak();
        assert!(
            peak_rss < base.rss + 256 * 1024 * 1024,
            "the queued replies held {:.1} MiB",
            mib(peak_rss - base.rss)
        );
        let r: i64 = bystander
            .root()
            .call_method("add", (2, 3))
            .decode()
            .await
            .unwrap();
        assert_eq!(r, 5);
        drop(slow);
        bystander.close().await;
        assert_empty("the bystander", &bystander).await;
        server.shutdown().await;
        drop(server);
        base.back(&format!(
            "{sent} calls for 16 KiB each, none read: dropped ({reason}); peak RSS {:.1} MiB \
             over the baseline",
            mib(peak_rss.saturating_sub(base.rss))
        ))
        .await;
    });
}

/// The same over an in-memory link on paused time, with the default 30 s limit.
#[test]
fn a_peer_that_stops_reading_on_paused_time() {
    let _serial = serial();
    let rt = paused_runtime();
    rt.block_on(async {
        let base = Baseline::take("slow-reader-paused");
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (r, w) = tokio::io::split(ours);
        let peer = tokio::spawn(async move {
            let (mut tr, mut tw) = tokio::io::split(theirs);
            tw.write_all(&wire::HELLO).await.unwrap();
            let mut hello = [0u8; 16];
            tr.read_exact(&mut hello).await.unwrap();
            let mut calls = Vec::new();
            for id in 1..=32 {
                calls.extend(blob_call(id, 256));
            }
            tw.write_all(&calls).await.unwrap();
            // Never read; keep both halves open.
            std::future::pending::<()>().await;
            drop((tr, tw));
        });
        let started = tokio::time::Instant::now();
        let conn = Connection::from_io(r, w, Config::default(), Some(Obj::new(Blobs).erase()))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(600), conn.closed())
            .await
            .expect("the stalled connection closes");
        let waited = started.elapsed();
        let reason = conn.close_reason().unwrap();
        assert!(reason.contains("stopped reading"), "{reason}");
        assert_empty("the server side", &conn).await;
        peer.abort();
        drop(conn);
        base.back(&format!(
            "32 x 256 KiB replies unread over a 64 KiB link: dropped after {waited:?} of \
             paused time ({reason})"
        ))
        .await;
    });
}

/// The send queue is bounded in bytes too: a peer asking for 1 MiB replies and reading
/// none finds at most `send_queue_bytes` queued, and is dropped once as many bytes again
/// wait for room, long before the write-stall limit.
#[test]
fn the_send_queue_is_bounded_in_bytes() {
    let _serial = serial();
    let rt = paused_runtime();
    rt.block_on(async {
        let base = Baseline::take("send-queue-bytes");
        const BUDGET: usize = 2 << 20;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (r, w) = tokio::io::split(ours);
        let (more_tx, mut more_rx) = tokio::sync::mpsc::channel::<std::ops::Range<u64>>(1);
        let peer = tokio::spawn(async move {
            let (mut tr, mut tw) = tokio::io::split(theirs);
            tw.write_all(&wire::HELLO).await.unwrap();
            let mut hello = [0u8; 16];
            tr.read_exact(&mut hello).await.unwrap();
            while let Some(ids) = more_rx.recv().await {
                let mut calls = Vec::new();
                for id in ids {
                    calls.extend(blob_call(id, 1024));
                }
                let _ = tw.write_all(&calls).await;
            }
            // Never read; keep both halves open.
            std::future::pending::<()>().await;
            drop((tr, tw));
        });
        let config = Config::default()
            .with_send_queue_bytes(BUDGET)
            .with_write_stall_timeout(Duration::from_secs(3600))
            .with_keepalive(None, Duration::from_secs(3600));
        let conn = Connection::from_io(r, w, config, Some(Obj::new(Blobs).erase()))
            .await
            .unwrap();
        // Three replies of 1 MiB: one partly written, two queued (exactly the budget).
        more_tx.send(1..4).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let queued = conn.stats().queued_bytes as usize;
        assert!(!conn.is_closed(), "{:?}", conn.close_reason());
        assert!(
            queued > 0 && queued <= BUDGET,
            "{queued} bytes queued against a budget of {BUDGET}"
        );
        // Twenty more: the queue stays full, the overflow fills, the peer is dropped.
        more_tx.send(4..24).await.unwrap();
        tokio::time::timeout(Duration::from_secs(60), conn.closed())
            .await
            .expect("the connection closes before the write-stall limit");
        let reason = conn.close_reason().unwrap();
        assert!(reason.contains("does not read its replies"), "{reason}");
        assert_empty("the server side", &conn).await;
        peer.abort();
        drop(conn);
        base.back(&format!(
            "1 MiB replies unread with send_queue_bytes = 2 MiB: {queued} bytes queued after 3 \
             calls; dropped after 20 more ({reason})"
        ))
        .await;
    });
}

// ---- Churn ----

#[test]
fn a_thousand_connections_in_churn() {
    let _serial = serial();
    let rt = two_worker_runtime();
    rt.block_on(async {
        let base = Baseline::take("churn");
        const N: usize = 1000;
        const AT_ONCE: usize = 50;
        let server_drops = DropCounter::default();
        let server = lab_server(server_drops.clone()).await;
        let addr = server.local_addr();
        let client_drops = DropCounter::default();
        let peak = PeakRss::start();
        let limit = Arc::new(Semaphore::new(AT_ONCE));
        let failed_as_disconnected = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..N {
            let permit = limit.clone().acquire_owned().await.unwrap();
            let client_drops = client_drops.clone();
            let failed = failed_as_disconnected.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let conn = netref::connect(addr).await.expect("connect");
                let root = conn.root();
                let i = i as i64;
                assert_eq!(
                    root.call_method("add", (i, 1)).await.unwrap(),
                    Value::Int(i + 1)
                );
                // An object each way and a callback round.
                let theirs = root.call_method("lend", ("t",)).await.unwrap();
                let mine = Obj::new(Tracked {
                    name: "m".into(),
                    drops: client_drops.clone(),
                });
                root.call_method("echo", (mine,)).await.unwrap();
                let cb = netref::callback(|x: i64| x + 1);
                assert_eq!(
                    root.call_method("sum_callbacks", (cb, 3u32)).await.unwrap(),
                    Value::Int(6)
                );
                match i % 3 {
                    // Closed with a call in flight.
                    0 => {
                        let slow = tokio::spawn({
                            let root = root.clone();
                            async move { root.call_method("sleep", (60_000u64,)).await }
                        });
                        tokio::task::yield_now().await;
                        conn.close().await;
                        let r = slow.await.unwrap();
                        assert!(r.unwrap_err().is_disconnected());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    // Closed by this side.
                    1 => conn.close().await,
                    // Every handle dropped: that closes it too.
                    _ => {
                        drop((theirs, root, conn));
                        return None;
                    }
                }
                drop((theirs, root));
                Some(conn)
            }));
        }
        let mut conns = Vec::new();
        for t in tasks {
            conns.extend(t.await.expect("a churn client"));
        }
        eventually("the server has no connections left", || async {
            server.connection_count() == 0
        })
        .await;
        for c in &conns {
            assert_empty("a churn client", c).await;
        }
        drop(conns);
        eventually("everything lent was freed", || async {
            server_drops.dropped() == N && client_drops.dropped() == N
        })
        .await;
        let peak_rss = peak.peak();
        server.shutdown().await;
        drop(server);
        base.back(&format!(
            "{N} connections, {AT_ONCE} at a time, each with calls, a callback and objects \
             both ways; {} closed with a call in flight (failed as disconnected); {N} + {N} \
             objects freed; peak RSS {:.1} MiB",
            failed_as_disconnected.load(Ordering::Relaxed),
            mib(peak_rss)
        ))
        .await;
    });
}

// ---- Shutdown with calls in flight ----

#[test]
fn a_server_shutdown_with_calls_in_flight() {
    let _serial = serial();
    let rt = two_worker_runtime();
    rt.block_on(async {
        let base = Baseline::take("shutdown");
        const CLIENTS: usize = 20;
        let server_drops = DropCounter::default();
        let server = lab_server(server_drops.clone()).await;
        let cb_drops = DropCounter::default();
        let mut conns = Vec::new();
        let mut pending = Vec::new();
        let mut held: Vec<Proxy> = Vec::new();
        for _ in 0..CLIENTS {
            let conn = netref::connect(server.local_addr()).await.unwrap();
            let root = conn.root();
            held.push(
                root.call_method("lend", ("s",))
                    .await
                    .unwrap()
                    .into_proxy()
                    .unwrap(),
            );
            pending.push(tokio::spawn({
                let root = root.clone();
                async move { root.call_method("sleep", (60_000u64,)).await }
            }));
            let entered = Arc::new(Notify::new());
            let cb = blocking_callback(entered.clone(), &cb_drops);
            pending.push(tokio::spawn({
                let root = root.clone();
                async move { root.call_method("sum_callbacks", (cb, 2u32)).await }
            }));
            entered.notified().await;
            conns.push(conn);
        }
        eventually("every call is running on the server", || async {
            server.connection_count() == CLIENTS
                && server
                    .connections()
                    .iter()
                    .all(|(_, c)| c.stats().calls_received >= 3)
        })
        .await;
        let server_conns: Vec<_> = server.connections().into_iter().map(|(_, c)| c).collect();

        server.shutdown().await;
        let mut reasons = Vec::new();
        for p in pending {
            reasons.push(assert_disconnected("a call in flight", p.await.unwrap()));
        }
        assert!(
            reasons.iter().all(|r| r.contains("shutting down")),
            "{reasons:?}"
        );
        for c in &server_conns {
            assert_empty("a server-side connection", c).await;
        }
        for c in &conns {
            assert_empty("a client", c).await;
        }
        for p in &held {
            assert!(p
                .call_method("name", ())
                .await
                .unwrap_err()
                .is_disconnected());
        }
        assert_eq!(
            server_drops.dropped(),
            CLIENTS,
            "the server freed what it lent"
        );
        assert_eq!(
            cb_drops.dropped(),
            CLIENTS,
            "the clients freed their callbacks"
        );
        drop((conns, server_conns, held));
        drop(server);
        base.back(&format!(
            "{CLIENTS} clients, {} calls in flight (a sleep and a blocked callback each), \
             all failed as: {}",
            reasons.len(),
            reasons[0]
        ))
        .await;
    });
}

#[test]
fn a_graceful_shutdown_lets_short_calls_finish_and_fails_the_rest() {
    let _serial = serial();
    let rt = two_worker_runtime();
    rt.block_on(async {
        let base = Baseline::take("graceful-shutdown");
        let server = lab_server(DropCounter::default()).await;
        let conn = netref::connect(server.local_addr()).await.unwrap();
        let root = conn.root();
        let server_conn = server_side(&server).await;
        let short = tokio::spawn({
            let root = root.clone();
            async move { root.call_method("sleep", (100u64,)).await }
        });
        let long = tokio::spawn({
            let root = root.clone();
            async move { root.call_method("sleep", (60_000u64,)).await }
        });
        eventually("both calls are running", || async {
            server_conn.stats().calls_received >= 2
        })
        .await;
        server.shutdown_graceful(Duration::from_secs(2)).await;
        assert_eq!(short.await.unwrap().unwrap(), Value::Int(100));
        let reason = assert_disconnected("a call past the grace period", long.await.unwrap());
        assert!(reason.contains("shutting down"), "{reason}");
        assert_empty("the client", &conn).await;
        assert_empty("the server side", &server_conn).await;
        drop((root, conn, server_conn, server));
        base.back(&format!(
            "a short call finished within the grace period, the long one failed as: {reason}"
        ))
        .await;
    });
}
