//! Handlers that finish at once (`Reply::Ready`) and handlers that wait (`Reply::Later`)
//! behave alike: the same results, errors, panics and call context, whether the object is
//! reached through a local proxy or a connection, and whatever mix of the two a path walks
//! through.

use std::sync::Arc;
use std::time::Duration;

use netref::{expose, Args, ErrorKind, Invocation, Obj, Object, Proxy, Reply, Value};

/// A node whose children are reached by sync and async getters alike.
struct Node {
    name: String,
}

fn node(name: &str) -> Obj<Node> {
    Obj::new(Node {
        name: name.to_owned(),
    })
}

/// A node.
#[expose]
impl Node {
    /// Its name.
    #[exposed]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Its name, after yielding once.
    #[exposed]
    async fn name_later(&self) -> String {
        tokio::task::yield_now().await;
        self.name.clone()
    }

    /// A child, read synchronously.
    #[exposed(property)]
    fn now(&self) -> Obj<Node> {
        node(&format!("{}/now", self.name))
    }

    /// A child, read after yielding once.
    #[exposed(property)]
    async fn later(&self) -> Obj<Node> {
        tokio::task::yield_now().await;
        node(&format!("{}/later", self.name))
    }

    /// A number where an object might be expected, read after yielding once.
    #[exposed(property)]
    async fn count(&self) -> i64 {
        tokio::task::yield_now().await;
        3
    }

    /// A callable object, read after yielding once.
    #[exposed(property)]
    async fn doubler(&self) -> Proxy {
        tokio::task::yield_now().await;
        netref::callback(|x: i64| x * 2)
    }

    /// Panics at once.
    #[exposed]
    fn boom(&self) -> i64 {
        panic!("boom at once")
    }

    /// Panics after yielding once.
    #[exposed]
    async fn boom_later(&self) -> i64 {
        tokio::task::yield_now().await;
        panic!("boom later")
    }

    /// A child whose getter panics.
    #[exposed(property)]
    fn broken(&self) -> Obj<Node> {
        panic!("broken getter")
    }

    /// A child, and `n` bytes.
    #[exposed]
    fn heavy(&self, n: usize) -> Vec<Value> {
        vec![
            Proxy::local(node("heavy").erase()).into(),
            Value::Bytes(vec![0; n]),
        ]
    }

    /// The same, after yielding once.
    #[exposed]
    async fn heavy_later(&self, n: usize) -> Vec<Value> {
        tokio::task::yield_now().await;
        self.heavy(n)
    }

    /// The time the caller still waits, in whole seconds, seen at once.
    #[exposed]
    fn budget(&self) -> Option<u64> {
        netref::context::time_left().map(|d| d.as_secs_f64().round() as u64)
    }

    /// The same, seen after yielding once.
    #[exposed]
    async fn budget_later(&self) -> Option<u64> {
        tokio::task::yield_now().await;
        netref::context::time_left().map(|d| d.as_secs_f64().round() as u64)
    }
}

/// Runs `body` against a local proxy of a fresh root node and against the root of a
/// connection lending one.
async fn both<F, Fut>(body: F)
where
    F: Fn(Proxy, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    body(Proxy::local(node("root")), "local").await;
    let (_server, client) = netref::pair(Some(node("root").erase()), None)
        .await
        .unwrap();
    body(client.root(), "remote").await;
    // The connection survived whatever the body did.
    assert_eq!(
        client
            .root()
            .call_method("name", ())
            .await
            .unwrap()
            .as_str(),
        Some("root")
    );
}

#[tokio::test]
async fn paths_through_sync_and_async_getters_reach_the_same_objects() {
    both(|root, side| async move {
        for (path, want) in [
            (&["now", "now"][..], "root/now/now"),
            (&["later", "now"][..], "root/later/now"),
            (&["now", "later"][..], "root/now/later"),
            (&["later", "later", "later"][..], "root/later/later/later"),
        ] {
            for method in ["name", "name_later"] {
                let got = root
                    .path_to(path.iter().copied())
                    .call_method(method, ())
                    .await;
                assert_eq!(
                    got.unwrap().as_str(),
                    Some(want),
                    "{side}: {path:?}.{method}"
                );
            }
            let got: String = root
                .path_to(path.iter().copied())
                .attr("name")
                .call(())
                .decode()
                .await
                .unwrap();
            assert_eq!(got, want, "{side}");
        }
        // A callable object behind an async getter.
        let got = root.attr("doubler").call((21,)).await.unwrap();
        assert_eq!(got.as_i64(), Some(42), "{side}");
        let got = root.path_to(["later", "doubler"]).call((4,)).await.unwrap();
        assert_eq!(got.as_i64(), Some(8), "{side}");
    })
    .await;
}

#[tokio::test]
async fn errors_after_an_async_getter_read_as_after_a_sync_one() {
    both(|root, side| async move {
        let e = root.path_to(["count", "x"]).get().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WrongOperation, "{side}: {e}");
        assert!(
            e.to_string()
                .contains("property `count` of `Node` is a int, not an object"),
            "{side}: {e}"
        );
        let e = root.attr("count").call(()).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("property `count` of `Node` is a int, not an object"),
            "{side}: {e}"
        );
        for path in [&["later", "nope"][..], &["now", "nope"][..]] {
            let e = root.path_to(path.iter().copied()).get().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{side}: {e}");
            assert!(
                e.to_string()
                    .contains("`Node` has no exposed member `nope`"),
                "{side}: {e}"
            );
        }
        let e = root
            .path_to(["later", "name_later"])
            .call(("extra",))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadArguments, "{side}: {e}");
        assert!(
            e.to_string()
                .contains("expected at most 0 positional argument(s), got 1"),
            "{side}: {e}"
        );
    })
    .await;
}

#[tokio::test]
async fn errors_carry_one_hop_for_the_owner_whether_ready_or_later() {
    let (_server, client) = netref::pair(Some(node("root").erase()), None)
        .await
        .unwrap();
    let root = client.root();
    for path in [&["now", "nope"][..], &["later", "nope"][..]] {
        let e = root.path_to(path.iter().copied()).get().await.unwrap_err();
        let r = e.as_remote().expect("a remote error");
        assert_eq!(r.chain.len(), 1, "{path:?}: {:?}", r.chain);
        let want = format!("root.{}", path.join("."));
        assert!(r.chain[0].ends_with(&want), "{path:?}: {:?}", r.chain);
    }
}

#[tokio::test]
async fn panics_at_once_later_and_in_a_getter_are_reported() {
    both(|root, side| async move {
        for (path, message) in [
            (&["boom"][..], "boom at once"),
            (&["boom_later"][..], "boom later"),
            (&["broken", "name"][..], "broken getter"),
            (&["later", "boom"][..], "boom at once"),
            (&["later", "broken", "name"][..], "broken getter"),
        ] {
            let e = root
                .path_to(path.iter().copied())
                .call(())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Panicked, "{side}: {path:?}: {e}");
            assert!(e.to_string().contains(message), "{side}: {path:?}: {e}");
        }
    })
    .await;
}

/// A reply over the peer's frame limit reaches the caller as an error, whether the reader
/// sends it at once or the handler's task later; the child it would have lent is not kept
/// lent, and the connection goes on.
#[tokio::test]
async fn a_reply_over_the_peers_frame_limit_fails_the_call_and_lends_nothing() {
    let config = netref::Config::default().with_max_frame(64 * 1024);
    let (server, client) = netref::pair_with(config, Some(node("root").erase()), None)
        .await
        .unwrap();
    let root = client.root();
    let before = server.tables();
    for method in ["heavy", "heavy_later"] {
        // The deadline only keeps a missing reply from hanging the test.
        let e = root
            .call_method(method, (100_000,))
            .timeout(Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Value, "{method}: {e}");
        assert!(
            e.to_string().contains("over the peer's frame limit"),
            "{method}: {e}"
        );
        assert_eq!(server.tables(), before, "{method}: nothing stays lent");
        let got = root.call_method(method, (10,)).await.unwrap();
        assert!(
            matches!(&got, Value::List(items) if items.len() == 2),
            "{method}: {got:?}"
        );
        drop(got);
        client.flush_releases().await.unwrap();
        assert_eq!(server.tables(), before, "{method}: the child was released");
    }
}

#[tokio::test]
async fn handlers_see_the_call_deadline_at_once_and_later() {
    let (_server, client) = netref::pair(Some(node("root").erase()), None)
        .await
        .unwrap();
    let root = client.root();
    for method in ["budget", "budget_later"] {
        let left: Option<u64> = root
            .call_method(method, ())
            .timeout(Duration::from_secs(7))
            .decode()
            .await
            .unwrap();
        assert_eq!(left, Some(7), "{method}");
        // Through an async getter too.
        let left: Option<u64> = root
            .path_to(["later", method])
            .call(())
            .timeout(Duration::from_secs(5))
            .decode()
            .await
            .unwrap();
        assert_eq!(left, Some(5), "{method}");
    }
    // Outside a remote call there is no deadline.
    let local = Proxy::local(node("root"));
    let left: Option<u64> = local.call_method("budget", ()).decode().await.unwrap();
    assert_eq!(left, None);
}

#[tokio::test]
async fn sync_members_reply_ready_and_async_ones_later() {
    let obj: Arc<dyn Object> = node("root").erase();
    let info = obj.type_info();
    let member = |name: &str| info.find(name).unwrap();
    let call = |name: &str| {
        obj.clone()
            .invoke(member(name), Invocation::Call(Args::new()))
    };

    let reply = call("name");
    assert!(reply.is_ready(), "{reply:?}");
    assert_eq!(reply.await.unwrap().as_str(), Some("root"));
    let reply = obj.clone().invoke(member("now"), Invocation::Get);
    assert!(reply.is_ready(), "{reply:?}");

    let reply = call("name_later");
    assert!(!reply.is_ready(), "{reply:?}");
    assert_eq!(reply.await.unwrap().as_str(), Some("root"));
    assert!(!obj
        .clone()
        .invoke(member("later"), Invocation::Get)
        .is_ready());

    // Bad arguments to a sync member are a ready error, with the usual message.
    let args = Args::new().arg(1);
    let Reply::Ready(Err(e)) = obj.clone().invoke(member("name"), Invocation::Call(args)) else {
        panic!("a ready error expected");
    };
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
    assert!(e
        .to_string()
        .contains("expected at most 0 positional argument(s), got 1"));

    // Sync callbacks are ready too; async ones are later.
    let double = netref::callback(|x: i64| x * 2);
    let cb = double.local_object().unwrap().clone();
    let reply = cb.invoke(0, Invocation::Call(Args::new().arg(4)));
    assert!(reply.is_ready(), "{reply:?}");
    assert_eq!(reply.await.unwrap(), Value::Int(8));
    let slow = netref::callback_async(|x: i64| async move { x * 2 });
    let cb = slow.local_object().unwrap().clone();
    let reply = cb.invoke(0, Invocation::Call(Args::new().arg(4)));
    assert!(!reply.is_ready(), "{reply:?}");
    assert_eq!(reply.await.unwrap(), Value::Int(8));
}
