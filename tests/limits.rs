//! Each limit: a peer that breaks it gets the documented error, its connection closes, and
//! another client of the same server is unaffected. The hostile peers here write raw bytes.
mod common;

use std::time::Duration;

use common::*;
use netref::{Config, ErrorKind, Obj, Server, ServerHandle, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The native hello with default limits.
const HELLO: [u8; 16] = [b'N', b'R', b'E', b'F', 0, 1, 0, 0, 0, 3, 1, 0, 0, 0, 0, 64];

async fn server(config: Config) -> ServerHandle {
    init_tracing();
    Server::with_factory(|_| Obj::new(Lab::default()).erase())
        .config(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

/// Connects raw, exchanges hellos, sends `bytes`, and returns everything the server sends
/// until it closes (after its hello).
async fn hostile(server: &ServerHandle, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&HELLO).await.unwrap();
    let mut hello = [0u8; 16];
    s.read_exact(&mut hello).await.unwrap();
    assert_eq!(&hello[..4], b"NREF");
    // The server may close while we are still writing: that is fine.
    let _ = s.write_all(bytes).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the server did not close the hostile connection"
    );
    rest
}

/// The reason in a `Goodbye` frame, if `bytes` is one.
fn goodbye_reason(bytes: &[u8]) -> String {
    assert!(bytes.len() > 6, "expected a Goodbye frame, got {bytes:?}");
    assert_eq!(bytes[4], 7, "expected a Goodbye frame, got {bytes:?}");
    String::from_utf8_lossy(&bytes[6..]).into_owned()
}

async fn well_behaved_client_works(server: &ServerHandle) {
    let conn = netref::connect(server.local_addr()).await.unwrap();
    assert_eq!(
        conn.root().call_method("add", (20, 22)).await.unwrap(),
        Value::Int(42)
    );
}

#[tokio::test]
async fn an_oversized_frame_is_refused_without_allocating_it() {
    let server = server(Config::default().with_max_frame(64 * 1024)).await;
    let bystander = netref::connect(server.local_addr()).await.unwrap();
    // Declares a 4 GiB - 1 frame and sends 3 bytes of it.
    let reply = hostile(&server, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    let reason = goodbye_reason(&reply);
    assert!(reason.contains("over the limit of 65536 bytes"), "{reason}");
    well_behaved_client_works(&server).await;
    assert_eq!(
        bystander.root().call_method("add", (1, 1)).await.unwrap(),
        Value::Int(2)
    );
}

#[tokio::test]
async fn a_nesting_bomb_is_refused() {
    let server = server(Config::default()).await;
    let bystander = netref::connect(server.local_addr()).await.unwrap();
    // Return { id: 1, Ok(List[List[...Nil]]) } nested 10,000 deep.
    let depth = 10_000;
    let mut body = vec![1u8, 1, 0];
    for _ in 0..depth {
        body.extend_from_slice(&[7, 1]);
    }
    body.push(0);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let reply = hostile(&server, &frame).await;
    let reason = goodbye_reason(&reply);
    assert!(reason.contains("depth"), "{reason}");
    well_behaved_client_works(&server).await;
    assert!(bystander.root().dir().await.is_ok());
}

#[tokio::test]
async fn a_malformed_frame_is_refused() {
    let server = server(Config::default()).await;
    // A frame whose body is an unknown message tag.
    let reply = hostile(&server, &[0, 0, 0, 2, 0x63, 0x00]).await;
    let reason = goodbye_reason(&reply);
    assert!(reason.contains("malformed"), "{reason}");
    // A string declaring far more bytes than the frame holds.
    let reply = hostile(&server, &[0, 0, 0, 10, 7, 0xfd, 0, 0, 0, 0, 1, 0, 0, 0]).await;
    assert!(goodbye_reason(&reply).contains("malformed"));
    well_behaved_client_works(&server).await;
}

#[tokio::test]
async fn a_peer_that_never_says_hello_is_dropped_after_the_handshake_time() {
    let server = server(Config::default().with_handshake_timeout(Duration::from_millis(300))).await;
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut got = Vec::new();
    // The server sends its hello, then closes when ours does not come.
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept a silent peer");
    assert_eq!(got.len(), 16, "only the server's hello: {got:?}");
    well_behaved_client_works(&server).await;
}

#[tokio::test]
async fn a_bad_hello_is_refused() {
    let server = server(Config::default()).await;
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
    assert!(read.is_ok());
    well_behaved_client_works(&server).await;
}

#[tokio::test]
async fn calls_over_the_in_flight_limit_are_refused_as_overloaded() {
    let server = server(Config::default().with_max_in_flight(4)).await;
    let conn = netref::connect(server.local_addr()).await.unwrap();
    let root = conn.root();
    // Eight slow calls at once: four run, four are refused at once.
    let calls = (0..8).map(|_| root.call_method("sleep", (300u64,)));
    let results = futures_util::future::join_all(calls).await;
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.kind() == ErrorKind::Overloaded))
        .count();
    let done = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((done, refused), (4, 4), "{results:?}");
    // Flow control, not a protocol breach: the connection goes on, and so do others.
    assert_eq!(
        root.call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );
    well_behaved_client_works(&server).await;
}

#[tokio::test]
async fn lending_over_the_export_limit_is_refused_as_overloaded() {
    let server = server(Config::default().with_max_exports(3)).await;
    let conn = netref::connect(server.local_addr()).await.unwrap();
    let root = conn.root();
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(root.call_method("lend", (format!("o{i}"),)).await.unwrap());
    }
    let e = root
        .call_method("lend", ("one too many",))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded, "{e}");
    assert!(e.to_string().contains("limit"), "{e}");
    // Releasing makes room again.
    held.pop();
    eventually("room to lend again", || async {
        root.call_method("lend", ("again",)).await.is_ok()
    })
    .await;
    well_behaved_client_works(&server).await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped_after_the_write_stall_timeout() {
    let server = server(
        Config::default()
            .with_write_stall_timeout(Duration::from_millis(500))
            .with_keepalive(None, Duration::from_secs(45)),
    )
    .await;
    let bystander = netref::connect(server.local_addr()).await.unwrap();
    // A raw client that asks for large replies and never reads them.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&HELLO).await.unwrap();
    let mut hello = [0u8; 16];
    s.read_exact(&mut hello).await.unwrap();
    // Call { id, Root, ["echo"], Call { [Str(64 KiB)] }, no timeout, no flags }.
    let payload = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    let mut closed_by_server = false;
    for id in 1..=2000u32 {
        let mut body = vec![0u8, 0xfc];
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&[0, 1, 4, b'e', b'c', b'h', b'o', 0, 1, 5, 0xfc]);
        body.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        body.extend_from_slice(&payload);
        body.extend_from_slice(&[0, 0, 0]);
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        match tokio::time::timeout(Duration::from_secs(5), s.write_all(&frame)).await {
            Ok(Ok(())) => sent += 1,
            _ => {
                closed_by_server = true;
                break;
            }
        }
    }
    assert!(sent > 10, "sent {sent} calls");
    if !closed_by_server {
        // Everything fit in the buffers: the server still stalls on its replies and drops us.
        let mut sink = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_secs(20), s.read(&mut sink)).await;
    }
    eventually("the server drops the stuck connection", || async {
        server.connection_count() == 1
    })
    .await;
    // The bystander is unaffected.
    assert_eq!(
        bystander.root().call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );
}
