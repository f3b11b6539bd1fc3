//! Lifetimes: counts, releases, aliases, and stale or forged ids.
mod common;

use common::*;
use netref::{ErrorKind, Obj};

#[tokio::test]
async fn export_table_returns_to_its_size_after_the_holder_drops() {
    let (server, conn, drops) = lab_client().await;
    let server_conn = server_side(&server).await;
    let before = server_conn.stats().live_exports;
    let objs: Vec<_> = futures_util::future::join_all(
        (0..10).map(|i| conn.root().call_method("lend", (format!("o{i}"),))),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap().into_proxy().unwrap())
    .collect();
    assert_eq!(server_conn.stats().live_exports, before + 10);
    assert_eq!(conn.stats().live_imports, 10);
    assert_eq!(
        objs[3].call_method("name", ()).await.unwrap().as_str(),
        Some("o3")
    );
    drop(objs);
    eventually("the server frees the 10 objects", || async {
        server_conn.stats().live_exports == before && drops.dropped() == 10
    })
    .await;
    assert_eq!(conn.stats().live_imports, 0);
}

#[tokio::test]
async fn a_hundred_thousand_lend_drop_cycles_leave_both_tables_empty() {
    let (server, conn, _) = lab_client().await;
    let server_conn = server_side(&server).await;
    let root = conn.root();
    let client_drops = DropCounter::default();
    const N: usize = 100_000;
    const BATCH: usize = 500;
    for chunk in 0..N / BATCH {
        let calls = (0..BATCH).map(|i| {
            // Lend one object to the server and get one lent back, per call.
            let mine = Obj::new(Tracked {
                name: format!("c{chunk}-{i}"),
                drops: client_drops.clone(),
            });
            root.call_method("echo", (mine,))
        });
        for r in futures_util::future::join_all(calls).await {
            drop(r.unwrap());
        }
        let lent = root.call_method("lend", ("x",)).await.unwrap();
        drop(lent);
    }
    eventually("both tables are empty", || async {
        let (c, s) = (conn.stats(), server_conn.stats());
        c.live_exports == 0 && c.live_imports == 0 && s.live_exports == 0 && s.live_imports == 0
    })
    .await;
    assert_eq!(client_drops.dropped(), N);
}

#[tokio::test]
async fn an_alias_keeps_the_object_alive_until_it_is_dropped_too() {
    let (server, conn, drops) = lab_client().await;
    let server_conn = server_side(&server).await;
    let root = conn.root();
    let obj = root.call_method("lend", ("aliased",)).await.unwrap();
    let alias = obj.clone();
    // A second receipt of the same id (through an echo) is a second count.
    let again = root.call_method("echo", (obj.clone(),)).await.unwrap();
    assert_eq!(again, obj);
    drop(obj);
    drop(again);
    // Releases are one-way: give them a chance to arrive, then check the object lives.
    root.call_method("add", (1, 1)).await.unwrap();
    assert_eq!(server_conn.stats().live_exports, 1);
    assert_eq!(drops.dropped(), 0);
    let name = alias
        .as_proxy()
        .unwrap()
        .call_method("name", ())
        .await
        .unwrap();
    assert_eq!(name.as_str(), Some("aliased"));
    drop(alias);
    eventually("the object is freed", || async {
        server_conn.stats().live_exports == 0 && drops.dropped() == 1
    })
    .await;
}

#[tokio::test]
async fn stale_and_forged_ids_get_no_such_object() {
    let (server, conn, _) = lab_client().await;
    let server_conn = server_side(&server).await;
    let root = conn.root();
    let obj = root.call_method("lend", ("old",)).await.unwrap();
    let old_id = obj.as_proxy().unwrap().remote_id().unwrap();
    drop(obj);
    eventually("the object is freed", || async {
        server_conn.stats().live_exports == 0
    })
    .await;
    // A newer object may reuse the slot, never the id.
    let newer = root.call_method("lend", ("new",)).await.unwrap();
    let new_id = newer.as_proxy().unwrap().remote_id().unwrap();
    assert_ne!(old_id, new_id);

    let stale = conn.remote_object(old_id);
    let e = stale.call_method("name", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchObject, "{e}");

    for forged in [0u64, 1, 0xdead_beef, u64::MAX, new_id ^ (1 << 40)] {
        let e = conn
            .remote_object(forged)
            .call_method("name", ())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchObject, "id {forged:x}: {e}");
    }
    // An alias of the live id (its generation with the low bit cleared, which slotmap would
    // read as the same key) must not reach it either.
    let alias = new_id & !(1 << 32);
    assert_ne!(alias, new_id);
    let e = conn
        .remote_object(alias)
        .call_method("name", ())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchObject, "alias {alias:x}: {e}");
    // The live one still works, and the connection is fine.
    let name = newer
        .as_proxy()
        .unwrap()
        .call_method("name", ())
        .await
        .unwrap();
    assert_eq!(name.as_str(), Some("new"));
}

#[tokio::test]
async fn table_rows_show_ids_types_and_counts_and_shrink_on_drop() {
    let (server, conn, _) = lab_client().await;
    let server_conn = server_side(&server).await;
    let a = conn.root().call_method("lend", ("a",)).await.unwrap();
    let b = conn.root().call_method("lend", ("b",)).await.unwrap();
    let a = a.into_proxy().unwrap();
    let b = b.into_proxy().unwrap();
    // The same object sent back and forth keeps one id; its counts grow on both sides.
    let again = conn.root().call_method("echo", (a.clone(),)).await.unwrap();
    let s = server_conn.tables();
    assert_eq!(s.exports.len(), 2, "{s:?}");
    let slot = |e: &netref::TableEntry| (e.id & 0xffff_ffff, e.id >> 32);
    assert!(
        slot(&s.exports[0]) < slot(&s.exports[1]),
        "sorted by id: {s:?}"
    );
    assert!(s
        .exports
        .iter()
        .all(|e| e.type_name.as_deref() == Some("Tracked")));
    let c = conn.tables();
    assert!(c.exports.is_empty());
    let ids: Vec<u64> = c.imports.iter().map(|e| e.id).collect();
    let expected: Vec<u64> = s.exports.iter().map(|e| e.id).collect();
    assert_eq!(ids, expected);
    let a_id = a.remote_id().unwrap();
    let count = |t: &netref::Tables, id| {
        t.imports
            .iter()
            .chain(&t.exports)
            .find(|e| e.id == id)
            .map(|e| e.count)
    };
    assert_eq!(count(&c, a_id), count(&s, a_id));
    assert!(count(&c, a_id) >= Some(1));
    assert!(c.imports[0].display_id().starts_with('#'));
    drop((a, again));
    eventually("a is released", || async {
        server_conn.tables().exports.len() == 1 && conn.tables().imports.len() == 1
    })
    .await;
    assert_eq!(server_conn.tables().exports[0].id, b.remote_id().unwrap());
    drop(b);
    eventually("both tables are empty", || async {
        server_conn.tables() == netref::Tables::default() && conn.tables().imports.is_empty()
    })
    .await;
}
