//! Remote iteration: the end of a sequence is distinct from every item (nil included), for
//! one-at-a-time `next()`, for the batched `Proxy::iter`, and for iterators written by users.

use std::sync::{Arc, Mutex};

use netref::adapters::Iter;
use netref::{expose, Connection, ErrorKind, Obj, Object, Value};

/// `root` lent over an in-memory pair; returns the client's end first.
async fn lend(root: Arc<dyn Object>) -> (Connection, Connection) {
    netref::pair(None, Some(root)).await.unwrap()
}

fn items() -> Vec<Value> {
    vec![Value::Nil, Value::Int(7), Value::Nil]
}

#[tokio::test]
async fn next_tells_the_end_from_a_nil_item() {
    let it = Obj::new(Iter::new(items())).erase();
    let (client, _server) = lend(it).await;
    let root = client.root();
    assert_eq!(root.call_method("next", ()).await.unwrap(), Value::Nil);
    assert_eq!(root.call_method("next", ()).await.unwrap(), Value::Int(7));
    assert_eq!(root.call_method("next", ()).await.unwrap(), Value::Nil);
    // Before, the end was a nil too.
    let end = root.call_method("next", ()).await.unwrap_err();
    assert_eq!(end.kind(), ErrorKind::StopIteration, "{end}");
    assert!(end.is_stop_iteration());
    // It stays at the end, and the connection stays usable.
    assert!(root
        .call_method("next", ())
        .await
        .unwrap_err()
        .is_stop_iteration());
    let rest: Vec<Value> = root.call_method("next_batch", (4,)).decode().await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn batched_iteration_keeps_nil_items() {
    for batch in [1, 2, 64] {
        let it = Obj::new(Iter::new(items())).erase();
        let (client, _server) = lend(it).await;
        let mut remote = client.root().iter(batch).await.unwrap();
        assert_eq!(remote.next().await.unwrap(), Some(Value::Nil));
        assert_eq!(remote.next().await.unwrap(), Some(Value::Int(7)));
        assert_eq!(remote.next().await.unwrap(), Some(Value::Nil));
        assert_eq!(remote.next().await.unwrap(), None, "batch {batch}");
        assert_eq!(remote.next().await.unwrap(), None);
        let all = client.root().iter(batch).await.unwrap().collect().await;
        assert_eq!(all.unwrap(), Vec::<Value>::new(), "already exhausted");
    }
}

/// An iterator written by hand with only `next`, ending the way netref's own does.
struct Countdown(Mutex<Vec<Value>>);

#[expose]
impl Countdown {
    /// The next item, or the end.
    #[exposed]
    fn next(&self) -> netref::Result<Value> {
        self.0
            .lock()
            .unwrap()
            .pop()
            .ok_or_else(netref::Error::stop_iteration)
    }
}

#[tokio::test]
async fn an_iterator_with_only_next_is_iterated_to_its_end() {
    let mut stack = items();
    stack.reverse();
    let it = Obj::new(Countdown(Mutex::new(stack))).erase();
    let (client, _server) = lend(it).await;
    let all = client
        .root()
        .iter(16)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(all, items());
}

#[test]
fn blocking_iteration_keeps_nil_items() {
    let root = Obj::new(Iter::new(items())).erase();
    let (_server, client) = netref::blocking::Connection::pair(Some(root), None).unwrap();
    let got: Vec<Value> = client
        .root()
        .iter(2)
        .unwrap()
        .collect::<netref::Result<_>>()
        .unwrap();
    assert_eq!(got, items());
}
