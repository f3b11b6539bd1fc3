//! Identity: one id per lent object, objects come home as themselves, proxies compare equal.
mod common;

use common::*;
use netref::{Obj, Value};

#[tokio::test]
async fn an_object_lent_and_sent_back_arrives_as_the_original() {
    let (_server, conn, _) = lab_client().await;
    let drops = DropCounter::default();
    let mine = Obj::new(Tracked {
        name: "mine".into(),
        drops: drops.clone(),
    });
    let back = conn
        .root()
        .call_method("echo", (mine.clone(),))
        .await
        .unwrap();
    let back: Obj<Tracked> = back.decode().unwrap();
    assert!(Obj::ptr_eq(&back, &mine), "came back as a different object");
    assert!(std::sync::Arc::ptr_eq(back.arc(), mine.arc()));

    // Inside a structure too.
    let nested = conn
        .root()
        .call_method("echo", (vec![mine.clone(), mine.clone()],))
        .await
        .unwrap();
    let items: Vec<Obj<Tracked>> = nested.decode().unwrap();
    assert!(items.iter().all(|o| Obj::ptr_eq(o, &mine)));
}

#[tokio::test]
async fn two_proxies_of_one_remote_object_compare_equal() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();
    let obj = root.call_method("lend", ("x",)).await.unwrap();
    // Send it to the server and back twice: the server sees its own object each time, and
    // we receive the same id again.
    let a = root.call_method("echo", (obj.clone(),)).await.unwrap();
    let b = root.call_method("echo", (obj.clone(),)).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a, obj);
    let (pa, pb) = (a.into_proxy().unwrap(), b.into_proxy().unwrap());
    assert_eq!(pa, pb);
    assert_eq!(pa.remote_id(), pb.remote_id());
    // Different objects differ.
    let other = root.call_method("lend", ("y",)).await.unwrap();
    assert_ne!(other, Value::Ref(pa));
}

#[tokio::test]
async fn one_object_lent_twice_has_one_id() {
    // Over an in-memory pair: the second side lends a list that keeps what it receives.
    let list = Obj::new(netref::adapters::List::new());
    let (first, second) = netref::pair(None, Some(list.erase())).await.unwrap();
    let drops = DropCounter::default();
    let mine = Obj::new(Tracked {
        name: "twice".into(),
        drops: drops.clone(),
    });
    let remote_list = first.root();
    remote_list
        .call_method("append", (mine.clone(),))
        .await
        .unwrap();
    remote_list
        .call_method("append", ((mine.clone(), 7),))
        .await
        .unwrap();
    assert_eq!(first.stats().live_exports, 1, "one id for one object");
    assert_eq!(second.stats().live_imports, 1);
    let items = list.snapshot();
    let a = items[0].as_proxy().unwrap();
    let b = match &items[1] {
        Value::List(pair) => pair[0].as_proxy().unwrap(),
        other => panic!("expected a pair, got {other}"),
    };
    assert_eq!(a, b);
    assert_eq!(a.remote_id(), b.remote_id());
    // Dropping one copy keeps the object; dropping both frees it on the owner.
    list.clear();
    drop(items);
    eventually("the owner frees it", || async {
        first.stats().live_exports == 0
    })
    .await;
    drop(mine);
    assert_eq!(drops.dropped(), 1);
}

#[tokio::test]
async fn a_third_party_reference_forwards_through_the_middle() {
    // A lends an object to B; B passes the proxy on to C; C calls it through B.
    let (a_server, a_conn_of_b, a_drops) = lab_client().await;
    let (c_server, c_conn_of_b, _) = lab_client().await;
    let from_a = a_conn_of_b
        .root()
        .call_method("lend", ("owned by A",))
        .await
        .unwrap();
    // B hands A's object to C, which echoes it back: B gets its own proxy back, unchanged.
    let round = c_conn_of_b
        .root()
        .call_method("echo", (from_a.clone(),))
        .await
        .unwrap();
    assert_eq!(
        round, from_a,
        "a forwarded proxy comes home as the same proxy"
    );
    // C calls a method of A's object: the call goes C -> B -> A, and the answer back.
    let name = c_conn_of_b
        .root()
        .call_method("ask", (from_a.clone(), "name"))
        .await
        .unwrap();
    assert_eq!(name.as_str(), Some("owned by A"));
    // An error on A carries the hops it crossed.
    let e = c_conn_of_b
        .root()
        .call_method("ask", (from_a.clone(), "missing"))
        .await
        .unwrap_err();
    let r = e.as_remote().unwrap();
    assert_eq!(r.kind, netref::ErrorKind::NoSuchMember);
    assert_eq!(
        r.chain.len(),
        3,
        "A, then B forwarding, then C: {:?}",
        r.chain
    );
    drop((from_a, round));
    let a_side = server_side(&a_server).await;
    eventually("A frees its object once B and C let go", || async {
        a_side.stats().live_exports == 0 && a_drops.dropped() == 1
    })
    .await;
    drop(c_server);
}
