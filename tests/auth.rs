//! Shared-secret authentication over TCP loopback: the right secret lets calls through; a
//! wrong secret, a missing secret or a secret on one side only is refused before any call,
//! with the cause named on the side that detects it; a recorded handshake cannot be replayed
//! in either direction; and the handshake is bounded in time.
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use netref::{Config, Connection, Obj, Object, Result, Secret, Server, Value};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

fn lab_root() -> Arc<dyn Object> {
    Obj::new(Lab::default()).erase()
}

fn with_secret(s: &str) -> Config {
    Config::default().with_secret(Secret::new(s))
}

/// A listener on 127.0.0.1:0 that runs the netref hello with `config` on each accepted
/// connection, lending a `Lab`, and reports every outcome (the server side's error included).
async fn serve(config: Config) -> (SocketAddr, mpsc::UnboundedReceiver<Result<Connection>>) {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (r, w) = stream.into_split();
            let outcome = Connection::from_io(r, w, config.clone(), Some(lab_root())).await;
            if tx.send(outcome).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// The error text of a refused handshake.
fn refusal(outcome: Result<Connection>) -> String {
    match outcome {
        Ok(conn) => panic!("the handshake should have been refused, got {conn:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn the_right_secret_lets_calls_through() {
    init_tracing();
    let server = Server::with_root(lab_root())
        .config(with_secret("s3cret"))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let conn = netref::connect_with(server.local_addr(), with_secret("s3cret"), None)
        .await
        .unwrap();
    let sum = conn.root().call_method("add", (2, 40)).await.unwrap();
    assert_eq!(sum, Value::Int(42));
    conn.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_is_refused_on_both_sides_and_the_server_goes_on() {
    let (addr, mut outcomes) = serve(with_secret("s3cret")).await;

    let e = netref::connect_with(addr, with_secret("guess"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, netref::Error::Auth(_)), "{e:?}");
    assert_eq!(e.kind(), netref::ErrorKind::Protocol);
    let e = e.to_string();
    assert!(e.contains("authentication failed"), "{e}");
    assert!(e.contains("wrong shared secret"), "{e}");
    let server_side = refusal(outcomes.recv().await.unwrap());
    assert!(server_side.contains("wrong shared secret"), "{server_side}");

    // The listener keeps serving: the right secret still works.
    let conn = netref::connect_with(addr, with_secret("s3cret"), None)
        .await
        .unwrap();
    let _server_side = outcomes.recv().await.unwrap().unwrap();
    assert_eq!(
        conn.root().call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );
}

#[tokio::test]
async fn a_client_without_the_required_secret_is_refused() {
    let (addr, mut outcomes) = serve(with_secret("s3cret")).await;

    let e = netref::connect_with(addr, Config::default(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the peer requires a shared secret, but none is configured on this side"),
        "{e}"
    );
    let server_side = refusal(outcomes.recv().await.unwrap());
    assert!(
        server_side.contains("this side requires a shared secret, but the peer has none"),
        "{server_side}"
    );
}

#[tokio::test]
async fn a_secret_on_the_client_only_is_refused() {
    let (addr, mut outcomes) = serve(Config::default()).await;

    let e = netref::connect_with(addr, with_secret("s3cret"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("this side requires a shared secret, but the peer has none"),
        "{e}"
    );
    let server_side = refusal(outcomes.recv().await.unwrap());
    assert!(
        server_side.contains("the peer requires a shared secret"),
        "{server_side}"
    );
}

/// Bytes a [`recording_proxy`] saw, per direction.
#[derive(Default, Clone)]
struct Recording {
    to_server: Arc<Mutex<Vec<u8>>>,
    to_client: Arc<Mutex<Vec<u8>>>,
}

/// A TCP proxy on 127.0.0.1:0 that forwards one connection to `upstream` and records the
/// bytes in each direction.
async fn recording_proxy(upstream: SocketAddr) -> (SocketAddr, Recording) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Recording::default();
    let recorded = rec.clone();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(upstream).await.unwrap();
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        tokio::join!(
            pump(cr, sw, recorded.to_server.clone()),
            pump(sr, cw, recorded.to_client.clone())
        );
    });
    (addr, rec)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.lock().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Writes `bytes` to `stream` and reads what comes back until the peer closes.
async fn replay(mut stream: TcpStream, bytes: &[u8]) -> Vec<u8> {
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return answer,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

/// The hello (16 bytes), the challenge (33) and the proof (32): all a refusing peer may send.
const HANDSHAKE_BYTES: usize = 16 + 33 + 32;

#[tokio::test]
async fn a_recorded_client_handshake_cannot_be_replayed() {
    let (addr, mut outcomes) = serve(with_secret("s3cret")).await;
    let (proxy, rec) = recording_proxy(addr).await;

    // A legitimate session through the recording proxy.
    let conn = netref::connect_with(proxy, with_secret("s3cret"), None)
        .await
        .unwrap();
    let _server_side = outcomes.recv().await.unwrap().unwrap();
    assert_eq!(
        conn.root().call_method("add", (2, 3)).await.unwrap(),
        Value::Int(5)
    );
    conn.close().await;
    let captured = rec.to_server.lock().clone();
    assert!(captured.len() > HANDSHAKE_BYTES, "the session was recorded");

    // The attacker replays everything the client sent, call included, on a new connection.
    let answer = replay(TcpStream::connect(addr).await.unwrap(), &captured).await;
    let server_side = refusal(outcomes.recv().await.unwrap());
    assert!(
        server_side.contains("authentication failed"),
        "{server_side}"
    );
    assert!(server_side.contains("replayed"), "{server_side}");
    // The server sent its hello, challenge and proof, then closed: no frame, so no call ran.
    assert!(
        answer.len() <= HANDSHAKE_BYTES,
        "{} bytes came back",
        answer.len()
    );
    assert_eq!(&answer[..4], b"NREF");
}

#[tokio::test]
async fn a_recorded_server_handshake_cannot_be_replayed_to_a_client() {
    let (addr, mut outcomes) = serve(with_secret("s3cret")).await;
    let (proxy, rec) = recording_proxy(addr).await;
    let conn = netref::connect_with(proxy, with_secret("s3cret"), None)
        .await
        .unwrap();
    let _server_side = outcomes.recv().await.unwrap().unwrap();
    conn.root().call_method("add", (2, 3)).await.unwrap();
    conn.close().await;
    let captured = rec.to_client.lock().clone();

    // A fake server that answers a new client with the recorded bytes.
    let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = fake.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = fake.accept().await.unwrap();
        replay(stream, &captured).await
    });
    let e = netref::connect_with(fake_addr, with_secret("s3cret"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("authentication failed"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_proves_is_dropped_within_the_handshake_time() {
    let (ours, mut theirs) = tokio::io::duplex(4096);
    let (r, w) = tokio::io::split(ours);
    let config = with_secret("s3cret").with_handshake_timeout(Duration::from_secs(3));
    let handshake = tokio::spawn(Connection::from_io(r, w, config, None));

    // The stalling peer sends a valid hello with the auth bit and a challenge, then nothing.
    let mut opening = vec![
        0x4e, 0x52, 0x45, 0x46, 0, 1, 0, 0, 0, 7, 1, 0, 0, 0, 0, 0x40,
    ];
    opening.push(0);
    opening.extend_from_slice(&[0x5a; 32]);
    theirs.write_all(&opening).await.unwrap();

    let e = handshake.await.unwrap().unwrap_err().to_string();
    assert!(e.contains("within 3s"), "{e}");
    drop(theirs);
}
