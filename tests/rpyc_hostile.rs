//! Hostile RPyC frames against a netref `Server::rpyc()`: random bytes, truncated frames,
//! absurd lengths, deep brine, a zlib bomb, bad requests. Each bad connection gets an
//! exception reply or is closed; no panic, memory stays bounded, and a good client on
//! another connection keeps working throughout.

mod common;

use std::time::Duration;

use netref::{rpyc, Obj, Server, ServerHandle, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> ServerHandle {
    common::init_tracing();
    let lab = netref::lab::Lab::new(netref::lab::LabOptions::default()).unwrap();
    let cfg = netref::Config::default().with_max_frame(1 << 20);
    Server::with_root(lab.into_root())
        .rpyc()
        .config(cfg)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

fn frame(payload: &[u8], compressed: bool) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.push(u8::from(compressed));
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// Sends `bytes` on a fresh connection and returns what the server wrote back before it
/// closed the connection (or before 5 s passed).
async fn send_raw(server: &ServerHandle, bytes: &[u8], then_close: bool) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    let _ = s.write_all(bytes).await;
    if then_close {
        let _ = s.shutdown().await;
    }
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .is_ok();
    (got, closed)
}

/// A good client on its own connection: still served.
async fn still_serves(good: &netref::Proxy) {
    assert_eq!(
        good.call_method("add", (20, 22)).await.unwrap(),
        Value::Int(42)
    );
}

/// A zlib stream of (about) `n` zeros, made by hand so the test need not compress them:
/// one fixed-Huffman block, a literal 0, then matches of 258 bytes at distance 1.
fn zlib_zeros(n: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        len: u32,
    }
    impl Bits {
        fn push_lsb(&mut self, value: u32, count: u32) {
            for i in 0..count {
                self.acc |= ((value >> i) & 1) << self.len;
                self.len += 1;
                if self.len == 8 {
                    self.out.push(self.acc as u8);
                    self.acc = 0;
                    self.len = 0;
                }
            }
        }
        /// Huffman codes go most significant bit first.
        fn push_code(&mut self, code: u32, count: u32) {
            for i in (0..count).rev() {
                self.push_lsb((code >> i) & 1, 1);
            }
        }
    }
    let mut b = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        len: 0,
    };
    b.push_lsb(1, 1); // final block
    b.push_lsb(1, 2); // fixed Huffman codes
    b.push_code(0x30, 8); // literal 0
    let matches = n.saturating_sub(1) / 258;
    for _ in 0..matches {
        b.push_code(0b1100_0101, 8); // length 258 (code 285)
        b.push_code(0, 5); // distance 1
    }
    b.push_code(0, 7); // end of block
    if b.len > 0 {
        b.out.push(b.acc as u8);
    }
    let total = 1 + matches * 258;
    let adler = (((total % 65521) as u32) << 16) | 1;
    b.out.extend_from_slice(&adler.to_be_bytes());
    b.out
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let server = server().await;
    let good_conn = rpyc::connect(server.local_addr()).await.unwrap();
    let good = good_conn.root().await.unwrap();
    still_serves(&good).await;

    // An absurd length: refused at the header, long before 4 GiB could arrive.
    let (_, closed) = send_raw(&server, &[0xff, 0xff, 0xff, 0xff, 0x00, 0x01], false).await;
    assert!(closed, "the server hung up at once");
    still_serves(&good).await;

    // A truncated frame, then EOF.
    let whole = frame(&[0x01, 0x11, 0x50, 0x11, 0x53, 0x11, 0x51, 0x02], false);
    let (_, closed) = send_raw(&server, &whole[..7], true).await;
    assert!(closed);
    // A bad trailer byte, an RPyC 5 message, an empty payload.
    for bad in [
        {
            let mut b = whole.clone();
            *b.last_mut().unwrap() = b'x';
            b
        },
        frame(&[0x12, 0x51, 0x50, 0x00], false),
        frame(&[], false),
    ] {
        let (_, closed) = send_raw(&server, &bad, false).await;
        assert!(closed);
    }
    still_serves(&good).await;

    // Random bytes, some behind a plausible header.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..40 {
        let len = (next() % 300) as usize;
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let bytes = if round % 2 == 0 {
            body
        } else {
            frame(&body, false)
        };
        let (_, _closed) = send_raw(&server, &bytes, true).await;
    }
    still_serves(&good).await;
    common::eventually("only the good client is left", || async {
        server.rpyc_connections().len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_brine_and_a_zlib_bomb_are_refused_with_bounded_memory() {
    let server = server().await;
    let good_conn = rpyc::connect(server.local_addr()).await.unwrap();
    let good = good_conn.root().await.unwrap();

    // 100,000 nested 1-tuples: over the depth limit, refused without recursion trouble.
    let mut payload = vec![0x01, 0x11, 0x50, 0x11, 0x51];
    payload.extend(std::iter::repeat_n(0x10u8, 100_000));
    payload.push(0x00);
    let (_, closed) = send_raw(&server, &frame(&payload, false), false).await;
    assert!(closed);
    still_serves(&good).await;

    // 100 MiB of zeros in a 650 KB zlib stream: inflating stops at the 1 MiB frame limit
    // (without it, memory would grow by the whole 100 MiB).
    let bomb = zlib_zeros(100 << 20);
    assert!(
        bomb.len() < (1 << 20),
        "the bomb fits under the frame limit"
    );
    let mut inflater = flate2::read::ZlibDecoder::new(&bomb[..]);
    let inflated = std::io::copy(&mut inflater, &mut std::io::sink()).unwrap();
    assert!(inflated > 100_000_000, "a valid stream of {inflated} bytes");
    let before = rss_kib();
    let (_, closed) = send_raw(&server, &frame(&bomb, true), false).await;
    assert!(closed);
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 48 * 1024, "memory grew by {grown} KiB");
    still_serves(&good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_exceptions_and_the_connection_goes_on() {
    let server = server().await;
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    // seq 0: unknown handler 99; seq 1: GETATTR with a forged object; seq 2: a bad box;
    // seq 3: PICKLE (refused); seq 4: PING, which must still be answered.
    let forged = [
        0x01, 0x11, 0x51, 0x11, 0x54, 0x11, 0x52, 0x11, 0x11, 0x53, 0x12, 0x08, 0x0b, b'x', b'y',
        0x51, 0x52, 0x11, 0x51, 0x08, 0x0b, b'a', b'b',
    ];
    let requests: Vec<Vec<u8>> = vec![
        vec![
            0x01, 0x11, 0x50, 0x11, 0x16, 0x02, b'9', b'9', 0x11, 0x51, 0x02,
        ],
        forged.to_vec(),
        vec![0x01, 0x11, 0x52, 0x11, 0x54, 0x11, 0x59, 0x00],
        vec![0x01, 0x11, 0x53, 0x11, 0x5e, 0x11, 0x51, 0x02],
        vec![0x01, 0x11, 0x54, 0x11, 0x51, 0x11, 0x51, 0x10, 0x57],
    ];
    for r in &requests {
        s.write_all(&frame(r, false)).await.unwrap();
    }
    // Five answers: four exceptions (type 3) and the PING's reply (type 2) echoing 7.
    let mut kinds = Vec::new();
    let mut buf = Vec::new();
    while kinds.len() < 5 {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("answers within 5 s")
            .unwrap();
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < len + 6 {
                break;
            }
            kinds.push((buf[5], buf[5..5 + len].to_vec()));
            buf.drain(..len + 6);
        }
    }
    let types: Vec<u8> = kinds.iter().map(|(t, _)| *t).collect();
    assert_eq!(types, [3, 3, 3, 3, 2]);
    assert_eq!(
        kinds[4].1,
        [0x02, 0x11, 0x54, 0x11, 0x51, 0x57],
        "PING echoes 7"
    );
    let text = String::from_utf8_lossy(&kinds[3].1).to_string();
    assert!(text.contains("pickling is refused"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netref_client_and_server_talk_rpyc_to_each_other() {
    // No Python here: both ends are this crate, on RPyC's wire.
    let server = server().await;
    let conn = rpyc::connect(server.local_addr()).await.unwrap();
    let root = conn.root().await.unwrap();
    assert_eq!(
        root.call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );
    let counter = root.attr("counter");
    assert_eq!(counter.call_method("inc", ()).await.unwrap(), Value::Int(1));
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let s2 = seen.clone();
    let cb = netref::callback(move |i: i64| {
        s2.fetch_add(i, std::sync::atomic::Ordering::SeqCst);
    });
    root.call_method("every", (4, cb)).await.unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 6);
    let e = root.call_method("hidden_thing", ()).await.unwrap_err();
    assert!(e.is_no_such_member(), "{e}");
    let list = Obj::new(netref::adapters::List::new());
    assert_eq!(
        root.call_method("same", (list.clone(), list.clone()))
            .await
            .unwrap(),
        Value::Bool(true)
    );
    conn.close().await;
    common::eventually("the server dropped the connection", || async {
        server.connection_count() == 0
    })
    .await;
}
