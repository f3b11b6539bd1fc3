//! A sequence's declared count is the peer's word: a tiny frame that declares millions of
//! items in any sequence of any message must be refused as malformed without reserving
//! memory for them. Reserved, not touched: a `Vec::with_capacity` of the declared count
//! would not show in resident memory until its pages are written, so this test watches the
//! process's peak *virtual* size (`VmPeak`), which every large allocation moves at once.
//! Both wires: netref's own and RPyC's brine.
mod common;

use common::wire::{self, Msg};
use common::*;

/// The peak virtual size of this process, in bytes.
fn vm_peak() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .expect("a VmPeak line")
}

/// Frame-body prefixes that end right where a sequence declares its count.
fn sequence_sites() -> Vec<(&'static str, Vec<u8>)> {
    // Call { id 9, Root, path [], Op::Call { args: [one value] } }, then the value's tag.
    let arg = |tag: u8| vec![0, 9, 0, 0, 0, 1, tag];
    vec![
        ("path segments", vec![0, 9, 0]),
        ("positional arguments", vec![0, 9, 0, 0, 0]),
        ("named arguments", vec![0, 9, 0, 0, 0, 0]),
        ("list value", arg(7)),
        ("map value", arg(8)),
        ("release pairs", vec![2]),
        // Return { id 5, Err { kind 4, type name "", message "", chain } }
        ("error chain", vec![1, 5, 1, 4, 0, 0]),
        ("returned list", vec![1, 5, 0, 7]),
        ("returned map", vec![1, 5, 0, 8]),
    ]
}

// One thread: no other thread's stack or allocator arena moves the virtual size meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn a_declared_count_reserves_nothing_near_it() {
    let server = lab_server(DropCounter::default()).await;
    let conn = netref::connect(server.local_addr()).await.unwrap();
    let add = |a: i64| {
        let root = conn.root();
        async move { root.call_method("add", (a, 1)).await.unwrap() }
    };
    assert_eq!(add(1).await, netref::Value::Int(2));
    // Sixteen million items: at least 256 MiB for the smallest item type (a release pair),
    // far past any peak the process reached before (the peak, not the size now, is compared).
    const DECLARED: u64 = 1 << 24;
    const BOUND: u64 = 32 << 20;
    let before = vm_peak();
    for (site, mut body) in sequence_sites() {
        wire::varint(&mut body, DECLARED);
        // One real item's worth of bytes, so a decoder that trusts the count starts on it.
        body.extend_from_slice(&[0, 0]);
        let mut peer = RawPeer::connect(server.local_addr()).await;
        peer.send(&wire::frame_of(&body)).await;
        let tail = peer.read_to_end().await;
        let said = wire::split_frames(&tail)
            .last()
            .and_then(|f| wire::decode(f));
        assert!(
            matches!(&said, Some(Msg::Goodbye(r)) if r.contains("malformed")),
            "{site}: {said:?}"
        );
        let grew = vm_peak() - before;
        assert!(
            grew < BOUND,
            "{site} declaring {DECLARED} items: the peak virtual size grew by {grew} bytes"
        );
    }
    // The server still serves.
    assert_eq!(add(4).await, netref::Value::Int(5));

    // RPyC's brine: a tuple's count may not exceed the bytes left in the frame, but in a
    // 1 MiB frame each of 60 nested tuples can still declare about a million items. A
    // decoder that reserved them would reserve over 1 GiB (60 levels × 1M items × the size
    // of a decoded value) before the frame runs out of items.
    let rpyc = netref::Server::with_root(netref::Obj::new(Lab::default()).erase())
        .rpyc()
        .config(netref::Config::default().with_max_frame(1 << 20))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let good = netref::rpyc::connect(rpyc.local_addr()).await.unwrap();
    let root = good.root().await.unwrap();
    assert_eq!(
        root.call_method("add", (1, 1)).await.unwrap(),
        netref::Value::Int(2)
    );
    let before = vm_peak();
    const FRAME: usize = (1 << 20) - 16;
    // Message kind REQUEST, then the nested tuples (tag 0x15: a count in 4 bytes), each
    // declaring every byte left after its own head as an item. The innermost tuple's first
    // item has a tag brine does not have (0xff), so decoding fails there, right after the
    // last count was read; zeros pad the frame to its size.
    let mut payload = vec![0x01];
    for _ in 0..60 {
        let left = FRAME - payload.len() - 5;
        payload.push(0x15);
        payload.extend_from_slice(&(left as u32).to_be_bytes());
    }
    payload.push(0xff);
    payload.resize(FRAME, 0x00);
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.push(0);
    frame.extend_from_slice(&payload);
    frame.push(b'\n');
    let mut raw = tokio::net::TcpStream::connect(rpyc.local_addr())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, &frame)
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut sink).await;
    let grew = vm_peak() - before;
    assert!(
        grew < BOUND,
        "nested brine tuples declaring a million items each: the peak virtual size grew by \
         {grew} bytes"
    );
    assert_eq!(
        root.call_method("add", (2, 1)).await.unwrap(),
        netref::Value::Int(3)
    );
}
