//! A sequence's declared count is the peer's word: a tiny frame that declares millions of
//! items in any sequence of any message must be refused as malformed without reserving
//! memory for them. Reserved, not touched: a `Vec::with_capacity` of the declared count
//! would not show in resident memory until its pages are written, so this test watches the
//! process's peak *virtual* size (`VmPeak`), which every large allocation moves at once.
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
}
