//! Streams with credit-based flow control: server → client, client → server, both ways,
//! errors, cancellation by drop, a stalled consumer bounding its producer, and the typed form.
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use netref::{expose, Obj, RemoteStream, Stream};

/// Counts the items its producers made and notes when a producer is dropped.
#[derive(Default)]
pub struct Feed {
    produced: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[expose]
impl Feed {
    /// `0..n`, counting each item as it is made.
    #[exposed]
    fn count(&self, n: u64) -> Stream<u64> {
        let produced = self.produced.clone();
        let guard = SetOnDrop(self.dropped.clone());
        Stream::new(futures_util::stream::iter(0..n).map(move |i| {
            let _ = &guard;
            produced.fetch_add(1, Ordering::SeqCst);
            i
        }))
    }

    /// `n` items, then an error.
    #[exposed]
    fn failing(&self, n: u64) -> Stream<u64> {
        let items = (0..n)
            .map(Ok)
            .chain(std::iter::once(Err("the feed broke".to_string())));
        Stream::try_new(futures_util::stream::iter(items))
    }

    /// Sums a stream the caller lends.
    #[exposed]
    async fn total(&self, xs: RemoteStream<u64>) -> netref::Result<u64> {
        let mut xs = xs.with_window(64);
        let mut sum = 0;
        while let Some(x) = xs.next().await {
            sum += x?;
        }
        Ok(sum)
    }

    /// A chat: answers each incoming line as it comes.
    #[exposed]
    fn chat(&self, incoming: RemoteStream<String>) -> Stream<String> {
        Stream::try_new(incoming.map(|line| line.map(|l| format!("echo: {l}"))))
    }
}

async fn feed_pair() -> (Obj<Feed>, netref::Connection, netref::Connection) {
    let feed = Obj::new(Feed::default());
    let (server, client) = netref::pair(Some(feed.erase()), None).await.unwrap();
    (feed, server, client)
}

#[tokio::test]
async fn server_streaming_costs_one_round_trip_per_window() {
    let (_feed, _server, client) = feed_pair().await;
    let n = 100_000u64;
    let stream: RemoteStream<u64> = client
        .root()
        .call_method("count", (n,))
        .decode()
        .await
        .unwrap();
    let window = 512u64;
    let mut stream = stream.with_window(window as u32);
    let before = client.stats().round_trips;
    let mut expected = 0;
    while let Some(x) = stream.next().await {
        assert_eq!(x.unwrap(), expected);
        expected += 1;
    }
    assert_eq!(expected, n);
    let trips = client.stats().round_trips - before;
    // One pull per window, plus the one that reads the end.
    assert!(trips <= n / window + 2, "{trips} round trips for {n} items");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_consumer_bounds_the_producer_and_dropping_stops_it() {
    let (feed, _server, client) = feed_pair().await;
    let stream: RemoteStream<u64> = client
        .root()
        .call_method("count", (1_000_000u64,))
        .decode()
        .await
        .unwrap();
    let window = 100u64;
    let mut stream = stream.with_window(window as u32);
    for i in 0..10 {
        assert_eq!(stream.next().await.unwrap().unwrap(), i);
    }
    // The consumer stops; give everything time to run. The holder keeps at most two
    // requests in flight and sends one only when it holds no item, so at most two windows
    // are made ahead of the consumer (the 10 consumed included).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let produced = feed.produced.load(Ordering::SeqCst);
    assert!(
        produced <= 2 * window,
        "{produced} items produced for 10 consumed"
    );
    assert!(!feed.dropped.load(Ordering::SeqCst));
    drop(stream);
    common::eventually("the producer is dropped", || {
        let dropped = feed.dropped.clone();
        async move { dropped.load(Ordering::SeqCst) }
    })
    .await;
    assert!(feed.produced.load(Ordering::SeqCst) <= 2 * window);
}

#[tokio::test]
async fn an_error_ends_the_stream_after_the_items_before_it() {
    let (_feed, _server, client) = feed_pair().await;
    let mut stream: RemoteStream<u64> = client
        .root()
        .call_method("failing", (3,))
        .decode()
        .await
        .unwrap();
    for i in 0..3 {
        assert_eq!(stream.next().await.unwrap().unwrap(), i);
    }
    let e = stream.next().await.unwrap().unwrap_err();
    assert!(e.to_string().contains("the feed broke"), "{e}");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn a_stream_pulled_in_process_keeps_its_items_before_the_error() {
    // A proxy of a local stream answers its pulls at once, while items are still buffered:
    // the error waits behind them, and the buffer stays within two windows.
    let feed = Feed::default();
    let lent = netref::to_value(&feed.failing(7))
        .unwrap()
        .into_proxy()
        .unwrap();
    let mut stream = RemoteStream::<u64>::from_proxy(lent).with_window(2);
    for i in 0..7 {
        assert_eq!(stream.next().await.unwrap().unwrap(), i);
    }
    let e = stream.next().await.unwrap().unwrap_err();
    assert!(e.to_string().contains("the feed broke"), "{e}");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn a_dynamic_peer_iterates_a_stream_as_a_remote_iterator() {
    let (_feed, _server, client) = feed_pair().await;
    let stream = client
        .root()
        .call_method("count", (5u64,))
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    let items = stream.iter(2).await.unwrap().collect().await.unwrap();
    assert_eq!(items, (0..5).map(netref::Value::Int).collect::<Vec<_>>());
}

#[tokio::test]
async fn client_streaming_the_owner_pulls_a_lent_stream() {
    let (_feed, _server, client) = feed_pair().await;
    let xs = Stream::new(futures_util::stream::iter(0..10_000u64));
    let total: u64 = client
        .root()
        .call_method("total", (xs,))
        .decode()
        .await
        .unwrap();
    assert_eq!(total, (0..10_000u64).sum::<u64>());
}

#[tokio::test]
async fn bidirectional_streaming_a_chat() {
    let (_feed, _server, client) = feed_pair().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(4);
    let outgoing = Stream::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    }));
    let mut replies: RemoteStream<String> = client
        .root()
        .call_method("chat", (outgoing,))
        .decode()
        .await
        .unwrap();
    // Each line is answered before the next is written: both directions are live at once.
    for line in ["hello", "how are you", "bye"] {
        tx.send(line.to_string()).await.unwrap();
        let reply = replies.next().await.unwrap().unwrap();
        assert_eq!(reply, format!("echo: {line}"));
    }
    drop(tx);
    assert!(replies.next().await.is_none());
}

#[tokio::test]
async fn typed_proxies_map_streams_both_ways() {
    let (_feed, _server, client) = feed_pair().await;
    let feed: FeedProxy = client.root_as().await.unwrap();
    let numbers: RemoteStream<u64> = feed.count(5).await.unwrap();
    let got: Vec<u64> = numbers.map(|x| x.unwrap()).collect().await;
    assert_eq!(got, [0, 1, 2, 3, 4]);
    let total = feed
        .total(Stream::new(futures_util::stream::iter(1..=4u64)))
        .await
        .unwrap();
    assert_eq!(total, 10);
}
