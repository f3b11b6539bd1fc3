//! Round trips without a call: `Connection::ping` measures the link, and
//! `Connection::flush_releases` returns once the peer has processed every release queued so
//! far, so lifetimes can be checked without polling.
mod common;

use std::time::Duration;

use common::{lab_client, DropCounter, Tracked};
use netref::{expose, Obj, Value};

#[tokio::test]
async fn ping_measures_a_round_trip_and_fails_once_closed() {
    let (_server, conn, _) = lab_client().await;
    let before = conn.stats();
    let rtt = conn.ping().await.unwrap();
    assert!(rtt < Duration::from_secs(30), "{rtt:?}");
    // Several at once each get their own answer.
    let (a, b, c) = tokio::join!(conn.ping(), conn.ping(), conn.ping());
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let after = conn.stats();
    assert!(after.messages_sent >= before.messages_sent + 4);
    conn.close().await;
    assert!(conn.ping().await.unwrap_err().is_disconnected());
}

#[tokio::test(start_paused = true)]
async fn ping_to_a_silent_peer_times_out() {
    // The peer end is never driven: its reader is the test's, which reads nothing.
    let (near, far) = tokio::io::duplex(64 * 1024);
    let (nr, nw) = tokio::io::split(near);
    let config = netref::Config::default().with_call_timeout(Duration::from_secs(3));
    let (far_r, mut far_w) = tokio::io::split(far);
    // Answer the hello by hand, then stay silent.
    let hello = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut far_r = far_r;
        let mut buf = [0u8; 16];
        far_r.read_exact(&mut buf).await.unwrap();
        far_w.write_all(&buf).await.unwrap();
        (far_r, far_w)
    });
    let conn = netref::Connection::from_io(nr, nw, config, None)
        .await
        .unwrap();
    let _far = hello.await.unwrap();
    let e = conn.ping().await.unwrap_err();
    assert_eq!(e.kind(), netref::ErrorKind::TimedOut, "{e}");
}

/// Lends tracked objects.
struct Shelf {
    drops: DropCounter,
}

#[expose]
impl Shelf {
    /// A fresh tracked object.
    #[exposed]
    fn take(&self, name: String) -> Obj<Tracked> {
        Obj::new(Tracked {
            name,
            drops: self.drops.clone(),
        })
    }
}

#[tokio::test]
async fn flush_releases_returns_once_the_peer_has_freed_what_was_dropped() {
    let drops = DropCounter::default();
    let shelf = Obj::new(Shelf {
        drops: drops.clone(),
    });
    let (client, server) = netref::pair(None, Some(shelf.erase())).await.unwrap();
    for round in 1..=20 {
        let mut held = Vec::new();
        for i in 0..5 {
            held.push(
                client
                    .root()
                    .call_method("take", (format!("{round}.{i}"),))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(server.stats().live_exports, 5);
        drop(held);
        // No polling: once this returns the owner has processed the releases.
        client.flush_releases().await.unwrap();
        assert_eq!(drops.dropped(), round * 5);
        assert_eq!(server.stats().live_exports, 0);
        assert_eq!(client.stats().live_imports, 0);
    }
    // Nothing to flush is fine too, and a closed connection says so.
    client.flush_releases().await.unwrap();
    let kept: Value = client.root().call_method("take", ("last",)).await.unwrap();
    client.close().await;
    assert!(client.flush_releases().await.unwrap_err().is_disconnected());
    drop(kept);
}

#[test]
fn the_blocking_api_has_the_same_barriers() {
    let drops = DropCounter::default();
    let shelf = Obj::new(Shelf {
        drops: drops.clone(),
    });
    let (_server, client) = netref::blocking::Connection::pair(Some(shelf.erase()), None).unwrap();
    client.ping().unwrap();
    let lent = client.root().call_method("take", ("x",)).unwrap();
    drop(lent);
    client.flush_releases().unwrap();
    assert_eq!(drops.dropped(), 1);
}
