//! The hello negotiates: each side reads the other's version range and feature bits, and
//! sends only what both support (issue 15, item 5). The old peers here are played by hand
//! with `tests/common/wire.rs`.
mod common;

use common::wire::{self, Msg, O, T, W};
use common::{RawPeer, RAW_WAIT};
use netref::{expose, Config, Connection, Error, ErrorKind, Obj, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A hello announcing versions `min..=min + extra` and `features`, default limits.
fn hello(min: u16, extra: u8, features: u32) -> [u8; 16] {
    let mut h = wire::HELLO;
    h[4..6].copy_from_slice(&min.to_be_bytes());
    h[6] = extra;
    h[7..10].copy_from_slice(&features.to_be_bytes()[1..]);
    h
}

/// A hand-played server: sends `hello`, reads the client's, then reads frames and answers
/// each call with `Return(id, 5)`; every message it gets goes to the channel.
async fn raw_server(
    hello: [u8; 16],
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Msg>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(&hello).await.unwrap();
        let mut theirs = [0u8; 16];
        s.read_exact(&mut theirs).await.unwrap();
        loop {
            let Some(body) = wire::read_frame(&mut s).await else {
                return;
            };
            let msg = wire::decode(&body).expect("the client sends what the model reads");
            if let Msg::Call(c) = &msg {
                let reply = wire::frame(&Msg::Return(c.id, Ok(W::Int(5))));
                let _ = s.write_all(&reply).await;
            }
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// A netref client of `addr`.
async fn client_of(addr: std::net::SocketAddr) -> netref::Result<Connection> {
    let s = TcpStream::connect(addr).await.unwrap();
    let (r, w) = s.into_split();
    Connection::from_io(r, w, Config::default(), None).await
}

/// A `tracing` subscriber that enables netref's call spans on this thread, so that calls
/// mint trace ids.
fn spans_on() -> tracing::subscriber::DefaultGuard {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

#[tokio::test]
async fn an_old_peer_is_sent_no_stream_no_cast_and_no_trace_id() {
    let _spans = spans_on();
    let (addr, mut got) = raw_server(wire::HELLO_V1).await;
    let client = client_of(addr).await.unwrap();
    let features = client.peer_features();
    assert_eq!(features.version, 1);
    assert!(features.pipelining && features.cancel, "{features:?}");
    assert!(
        !features.streams && !features.one_way && !features.trace_ids,
        "{features:?}"
    );
    let root = client.root();

    // A stream: a clear error on this side, nothing sent.
    let numbers = Stream::new(futures_util::stream::iter(0..3u64));
    let err = root
        .call_method("total", (numbers,))
        .await
        .expect_err("the peer cannot pull a stream");
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::WrongOperation);
    assert!(err.to_string().contains("stream"), "{err}");
    assert_eq!(client.stats().live_exports, 0, "nothing was lent");

    // A one-way call: the same.
    let err = root
        .call_method_oneway("append", (1,))
        .await
        .expect_err("the peer does not take one-way calls");
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("one-way"), "{err}");

    // Describing and binding: the same.
    for err in [
        root.describe()
            .await
            .expect_err("the peer cannot describe")
            .to_string(),
        root.attr("echo")
            .get_or_bind()
            .await
            .expect_err("nor bind")
            .to_string(),
    ] {
        assert!(err.contains("describing or binding"), "{err}");
    }
    assert!(!features.describe);

    // The connection goes on, and its next call carries no trace id although this side's
    // span would have one.
    let five = root.call_method("echo", (5,)).await.unwrap();
    assert_eq!(five.as_i64(), Some(5));
    let first = tokio::time::timeout(RAW_WAIT, got.recv())
        .await
        .unwrap()
        .unwrap();
    let Msg::Call(c) = first else {
        panic!("the first frame the old peer gets is the echo call: {first:?}")
    };
    assert_eq!(c.path, ["echo"]);
    assert_eq!(c.flags & wire::FLAG_TRACE, 0, "{c:?}");
    assert_eq!(c.trace, 0);
}

#[tokio::test]
async fn a_current_peer_is_sent_the_trace_id() {
    let _spans = spans_on();
    let (addr, mut got) = raw_server(wire::HELLO).await;
    let client = client_of(addr).await.unwrap();
    assert!(client.peer_features().trace_ids);
    client.root().call_method("echo", (5,)).await.unwrap();
    let Some(Msg::Call(c)) = got.recv().await else {
        panic!("a call")
    };
    assert_eq!(c.flags & wire::FLAG_TRACE, wire::FLAG_TRACE, "{c:?}");
    assert_ne!(c.trace, 0);
}

#[tokio::test]
async fn a_peer_with_no_version_in_common_is_refused_clearly() {
    // The peer speaks versions 2 and 3 only.
    let (addr, _got) = raw_server(hello(2, 1, 3)).await;
    let err = client_of(addr).await.expect_err("no version in common");
    let text = err.to_string();
    assert!(
        text.contains("no protocol version in common")
            && text.contains("the peer speaks versions 2 to 3")
            && text.contains("this side version 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_peer_with_a_wider_range_agrees_on_the_highest_common_version() {
    // Versions 1 to 5, every feature: version 1, everything used.
    let (addr, _got) = raw_server(hello(1, 4, 0x3b)).await;
    let client = client_of(addr).await.unwrap();
    let f = client.peer_features();
    assert_eq!(f.version, 1);
    assert!(f.streams && f.one_way && f.trace_ids && f.pipelining && f.cancel);
}

/// Lends streams.
struct Numbers;

#[expose]
impl Numbers {
    /// `0..n`, streamed.
    #[exposed]
    fn upto(&self, n: u64) -> Stream<u64> {
        Stream::new(futures_util::stream::iter(0..n))
    }
}

#[tokio::test]
async fn an_old_client_asking_for_a_stream_gets_a_clear_error_and_the_connection_goes_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (r, w) = s.into_split();
        let root = Obj::new(Numbers).erase();
        Connection::from_io(r, w, Config::default(), Some(root))
            .await
            .unwrap()
    });
    let mut old = RawPeer::connect_with_hello(addr, wire::HELLO_V1).await;
    let server = server.await.unwrap();
    assert!(!server.peer_features().streams);
    let reply = old
        .call(wire::Call::new(
            1,
            T::Root,
            &["upto"],
            O::Call(vec![W::UInt(3)], vec![]),
        ))
        .await;
    let err = reply.expect_err("a stream cannot go to this peer");
    assert_eq!(err.kind(), Some(ErrorKind::WrongOperation), "{err:?}");
    assert!(
        err.message
            .contains("the peer's hello does not announce streams"),
        "{err:?}"
    );
    // Not a protocol error: the connection goes on.
    old.ping(7).await;
    assert!(!server.is_closed());
    assert_eq!(server.stats().live_exports, 0, "the stream was not lent");
}
