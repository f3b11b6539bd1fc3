//! Deadlines, cancellation, dead peers, graceful shutdown and the connection cap.
//!
//! Time-dependent tests run over in-memory pairs with paused tokio time (real sockets and a
//! paused clock do not mix: the clock would jump while the kernel holds data).
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use netref::{expose, Config, ErrorKind, Obj, Proxy, Result, Server};
use tokio::sync::Semaphore;

/// Counts ticks while its handlers run.
struct Ticker {
    ticks: Arc<AtomicU64>,
    gate: Arc<Semaphore>,
}

impl Default for Ticker {
    fn default() -> Self {
        Ticker {
            ticks: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

/// Long-running handlers.
#[expose]
impl Ticker {
    /// Ticks every 100 ms, forever.
    #[exposed]
    async fn tick_forever(&self) -> u64 {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.ticks.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Calls `cb()` (which ticks on the other side) and returns its result.
    #[exposed]
    async fn relay(&self, cb: Proxy) -> Result<u64> {
        cb.call(()).decode().await
    }

    /// The time left, in milliseconds, as the handler sees it.
    #[exposed]
    fn time_left_ms(&self) -> Option<u64> {
        netref::context::time_left().map(|d| d.as_millis() as u64)
    }

    /// Waits until the test opens the gate.
    #[exposed]
    async fn wait_gate(&self) -> u64 {
        let _permit = self.gate.acquire().await;
        7
    }
}

async fn ticker_pair(config: Config) -> (netref::Connection, netref::Connection, Arc<AtomicU64>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = Ticker {
        ticks: ticks.clone(),
        ..Ticker::default()
    };
    let (server, client) = netref::pair_with(config, Some(Obj::new(ticker).erase()), None)
        .await
        .unwrap();
    (server, client, ticks)
}

#[tokio::test(start_paused = true)]
async fn a_call_past_its_deadline_times_out_and_the_handler_is_dropped() {
    let (_server, client, ticks) = ticker_pair(Config::default()).await;
    let e = client
        .root()
        .call_method("tick_forever", ())
        .timeout(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    // Give the cancellation a moment (it shares its instant with a tick), then watch.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at_timeout = ticks.load(Ordering::SeqCst);
    assert!(
        (9..=10).contains(&at_timeout),
        "ticked {at_timeout} times in 1 s"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        at_timeout,
        "the handler kept running"
    );
    // The connection is fine.
    let left: Option<u64> = client
        .root()
        .call_method("time_left_ms", ())
        .timeout(Duration::from_secs(3))
        .decode()
        .await
        .unwrap();
    assert_eq!(
        left,
        Some(3000),
        "the handler sees the deadline the caller set"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pipelined_call_keeps_its_own_deadline() {
    // The connection's default is 30 s; the pipelined call asks for 1 s, and the peer must
    // stop it then, failing what depends on its answer.
    let (_server, client, ticks) = ticker_pair(Config::default()).await;
    let start = tokio::time::Instant::now();
    let answer = client
        .root()
        .call_method("tick_forever", ())
        .timeout(Duration::from_secs(1))
        .pipeline()
        .await
        .unwrap();
    let e = answer.get().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "the pipelined call ran for {waited:?}, past its own 1 s deadline"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at_timeout = ticks.load(Ordering::SeqCst);
    assert!(
        (9..=10).contains(&at_timeout),
        "ticked {at_timeout} times in 1 s"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        at_timeout,
        "the handler kept running"
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_deadline_is_the_connections() {
    let config = Config::default().with_call_timeout(Duration::from_secs(2));
    let (_server, client, ticks) = ticker_pair(config).await;
    let e = client
        .root()
        .call_method("tick_forever", ())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(ticks.load(Ordering::SeqCst) >= 19);
}

#[tokio::test(start_paused = true)]
async fn without_timeouts_a_call_waits_for_its_reply_however_long_it_takes() {
    let ticker = Ticker::default();
    let gate = ticker.gate.clone();
    let config = Config::default().with_no_timeouts();
    let (_server, client) = netref::pair_with(config, Some(Obj::new(ticker).erase()), None)
        .await
        .unwrap();
    let root = client.root();
    // The handler sees no deadline: none was sent.
    let left: Option<u64> = root.call_method("time_left_ms", ()).decode().await.unwrap();
    assert_eq!(left, None, "a call without a deadline carried one");
    let waiting = tokio::spawn({
        let root = root.clone();
        async move { root.call_method("wait_gate", ()).decode::<u64>().await }
    });
    // Four hundred days pass with the call in flight (keepalive is off too).
    tokio::time::sleep(Duration::from_secs(400 * 86_400)).await;
    assert!(!waiting.is_finished(), "the call ended without its reply");
    assert!(!client.is_closed());
    gate.add_permits(1);
    assert_eq!(waiting.await.unwrap().unwrap(), 7);
    // A call's own `Duration::MAX` means the same on a connection with a default.
    let (_server, client, _ticks) = ticker_pair(Config::default()).await;
    let left: Option<u64> = client
        .root()
        .call_method("time_left_ms", ())
        .timeout(Duration::MAX)
        .decode()
        .await
        .unwrap();
    assert_eq!(left, None);
}

#[tokio::test(start_paused = true)]
async fn without_timeouts_a_stalled_clock_cannot_fail_a_call_whose_reply_is_on_its_way() {
    // A machine that stops running this process for longer than every timeout (a paused
    // VM, a starved build) and resumes with the reply ready: the clock jumps while no task
    // runs. With the default timeouts the call may then fail as timed out; without any,
    // its reply is what it gets.
    for _ in 0..20 {
        let (_server, client, _ticks) = ticker_pair(Config::default().with_no_timeouts()).await;
        let mut call = std::pin::pin!(client
            .root()
            .call_method("time_left_ms", ())
            .decode::<Option<u64>>());
        // The first poll writes the call and registers it.
        let pending = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(call.as_mut(), cx).is_pending())
        })
        .await;
        assert!(pending);
        tokio::time::advance(Duration::from_secs(3_600)).await;
        assert_eq!(call.await.unwrap(), None);
        assert!(!client.is_closed());
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_cancels_the_handler_and_its_nested_callbacks() {
    let (server, client, server_ticks) = ticker_pair(Config::default()).await;
    let client_ticks = Arc::new(AtomicU64::new(0));
    let ct = client_ticks.clone();
    // The server's handler calls back into this callback, which ticks forever.
    let cb = netref::callback_async(move || {
        let ct = ct.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                ct.fetch_add(1, Ordering::SeqCst);
            }
            #[allow(unreachable_code)]
            0u64
        }
    });
    let call = client.root().call_method("relay", (cb,));
    // Let it run a while, then drop the call's future.
    let r = tokio::time::timeout(Duration::from_secs(1), call).await;
    assert!(r.is_err(), "the relay cannot finish");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at_drop = client_ticks.load(Ordering::SeqCst);
    assert!(at_drop >= 8, "the nested callback ran ({at_drop} ticks)");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        client_ticks.load(Ordering::SeqCst),
        at_drop,
        "the nested callback was not cancelled"
    );
    assert_eq!(
        server.stats().live_imports,
        0,
        "the server let go of the callback"
    );

    // Same for a plain handler: dropping the call stops it.
    let call = client.root().call_method("tick_forever", ());
    let _ = tokio::time::timeout(Duration::from_secs(1), call).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at_drop = server_ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(server_ticks.load(Ordering::SeqCst), at_drop);
}

/// A peer on `theirs` that completes the hello, then reads and drops whatever comes and
/// never writes or closes.
fn silent_peer(theirs: tokio::io::DuplexStream) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut tr, mut tw) = tokio::io::split(theirs);
        let mut hello = [0u8; 16];
        tr.read_exact(&mut hello).await.unwrap();
        tw.write_all(&hello).await.unwrap(); // echo a valid hello back
        let mut sink = [0u8; 1024];
        while tr.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        // Keep the writing half open too.
        std::future::pending::<()>().await;
        drop(tw);
    })
}

#[tokio::test(start_paused = true)]
async fn a_silent_half_open_peer_is_detected_by_keepalive() {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let silent = silent_peer(theirs);
    let config = Config::default()
        .with_keepalive(Some(Duration::from_secs(5)), Duration::from_secs(15))
        .with_call_timeout(Duration::from_secs(600));
    let (r, w) = tokio::io::split(ours);
    let conn = netref::Connection::from_io(r, w, config, None)
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let e = conn.root().call_method("anything", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    assert!(e.to_string().contains("keepalive"), "{e}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(15) && waited <= Duration::from_secs(25),
        "detected after {waited:?}"
    );
    let e = conn.root().call_method("anything", ()).await.unwrap_err();
    assert!(e.is_disconnected());
    silent.abort();
}

#[tokio::test(start_paused = true)]
async fn a_quiet_but_live_peer_is_kept() {
    let config =
        Config::default().with_keepalive(Some(Duration::from_secs(5)), Duration::from_secs(15));
    let (server, client, _) = ticker_pair(config).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(!client.is_closed() && !server.is_closed());
    assert!(client.stats().messages_sent > 0, "pings went out");
    let left: Option<u64> = client
        .root()
        .call_method("time_left_ms", ())
        .decode()
        .await
        .unwrap();
    assert!(left.is_some());
}

#[tokio::test]
async fn graceful_shutdown_finishes_calls_in_flight_and_refuses_new_connections() {
    init_tracing();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let server = Server::with_factory(move |_| {
        Obj::new(Ticker {
            gate: g.clone(),
            ..Ticker::default()
        })
        .erase()
    })
    .bind("127.0.0.1:0")
    .await
    .unwrap();
    let addr = server.local_addr();
    let conn = netref::connect(addr).await.unwrap();
    let root = conn.root();
    let in_flight = tokio::spawn({
        let root = root.clone();
        async move { root.call_method("wait_gate", ()).await }
    });
    let server_conn = server_side(&server).await;
    eventually("the call is running", || async {
        server_conn.stats().calls_received == 1
    })
    .await;
    let server = Arc::new(server);
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown_graceful(Duration::from_secs(60)).await }
    });
    // New connections are refused once the listener stops.
    eventually("the listener is closed", || async {
        netref::connect(addr).await.is_err()
    })
    .await;
    // New calls on the open connection are refused while draining.
    let e = root.call_method("time_left_ms", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded, "{e}");
    assert!(!shutdown.is_finished());
    // The call in flight finishes.
    gate.add_permits(1);
    assert_eq!(in_flight.await.unwrap().unwrap().as_i64(), Some(7));
    shutdown.await.unwrap();
    conn.closed().await;
    let reason = conn.close_reason().unwrap();
    assert!(reason.contains("shutting down"), "{reason}");
}

#[tokio::test]
async fn the_connection_cap_refuses_the_extra_client_with_a_reason() {
    init_tracing();
    let server = Server::with_factory(|_| Obj::new(Ticker::default()).erase())
        .max_connections(1)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let first = netref::connect(server.local_addr()).await.unwrap();
    assert!(first.root().dir().await.is_ok());
    let second = netref::connect(server.local_addr()).await.unwrap();
    let e = second.root().dir().await.unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    second.closed().await;
    let reason = second.close_reason().unwrap();
    assert!(reason.contains("connection limit of 1"), "{reason}");
    // The first client is unaffected.
    assert!(first.root().dir().await.is_ok());
}

/// `Config::busy_poll`: the client's reader keeps looking for the replies instead of
/// sleeping, and counts those it caught; off (the default), it counts none.
#[tokio::test]
async fn a_busy_polling_reader_catches_replies_awake() {
    let server = lab_server(DropCounter::default()).await;
    for spin in [Duration::ZERO, Duration::from_millis(200)] {
        let config = Config::default().with_busy_poll(spin);
        let conn = netref::connect_with(server.local_addr(), config, None)
            .await
            .unwrap();
        let root = conn.root();
        for i in 0..20 {
            assert_eq!(
                root.call_method("add", (i, 1)).await.unwrap(),
                netref::Value::Int(i + 1)
            );
        }
        let hits = conn.stats().busy_poll_hits;
        if spin.is_zero() {
            assert_eq!(hits, 0);
        } else {
            // The server runs on this same thread: it can only answer while the client's
            // reader yields, so every reply that arrives within the spin is caught.
            assert!(hits >= 20, "{hits} replies caught awake");
        }
        // The server closes its end in answer: the reader sees the end of input at once.
        tokio::time::timeout(Duration::from_secs(10), conn.close())
            .await
            .expect("a busy-polling reader ends with its input");
    }
}

/// A reader that looks for input for far longer than the test lasts still lets the other
/// tasks of its (current-thread) runtime run, timers included, and sees the peer go at once.
#[tokio::test]
async fn a_busy_polling_reader_starves_nothing_and_sees_the_peer_close() {
    let server = lab_server(DropCounter::default()).await;
    let config = Config::default().with_busy_poll(Duration::from_secs(3600));
    let conn = netref::connect_with(server.local_addr(), config, None)
        .await
        .unwrap();
    assert_eq!(
        conn.root().call_method("add", (1, 2)).await.unwrap(),
        netref::Value::Int(3)
    );
    // The reader is spinning now, with nothing to read.
    let ticks = Arc::new(AtomicU64::new(0));
    let counting = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(10), counting)
        .await
        .expect("timers still fire beside a spinning reader")
        .unwrap();
    assert_eq!(ticks.load(Ordering::SeqCst), 10);
    server.shutdown().await;
    tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("the spinning reader saw the server go");
}

/// Closing a connection whose reader spins for a long window, to a peer that completed the
/// hello and then neither writes nor closes: the reader stops spinning and the connection
/// ends, though no input comes to stop it.
#[tokio::test]
async fn a_busy_polling_reader_stops_when_its_own_side_closes() {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let silent = silent_peer(theirs);
    let config = Config::default().with_busy_poll(Duration::from_secs(3600));
    let (r, w) = tokio::io::split(ours);
    let conn = netref::Connection::from_io(r, w, config, None)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), conn.close())
        .await
        .expect("close returns");
    tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("the reader saw its own side close");
    silent.abort();
}
