//! Connections that heal: `connect_resilient` across a server restart (TCP), and its
//! backoff, giving up and `reconnect` (in-memory pairs, paused time).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netref::resilient::{dial_fn, ResilientOptions};
use netref::{expose, Connection, Obj, Server};

/// A bound on waits that should take moments.
const PATIENCE: Duration = Duration::from_secs(20);

struct Root {
    name: String,
    slow_started: Arc<AtomicBool>,
}

#[expose]
impl Root {
    /// Which server this is.
    #[exposed]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// An object of this server's, reached by reference.
    #[exposed]
    fn child(&self) -> Obj<Leaf> {
        Obj::new(Leaf)
    }

    /// Runs for a minute.
    #[exposed]
    async fn slow(&self) -> u32 {
        self.slow_started.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        1
    }
}

struct Leaf;

#[expose]
impl Leaf {
    /// Answers.
    #[exposed]
    fn ping(&self) -> u32 {
        7
    }
}

fn root(name: &str, slow_started: &Arc<AtomicBool>) -> Obj<Root> {
    Obj::new(Root {
        name: name.into(),
        slow_started: slow_started.clone(),
    })
}

fn quick() -> ResilientOptions {
    ResilientOptions {
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..ResilientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resilient_connection_survives_its_servers_restart() {
    let started = Arc::new(AtomicBool::new(false));
    let one = Server::with_root(root("one", &started).erase())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = one.local_addr();
    let link = netref::connect_resilient_with(addr, quick()).await.unwrap();
    let fired = Arc::new(AtomicU64::new(0));
    let seen = fired.clone();
    link.on_broken(move |b| {
        assert_eq!(b.generation, 1);
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let broken = tokio::spawn({
        let link = link.clone();
        async move { link.broken().await }
    });

    let old_root = link.root().await.unwrap();
    let name: String = old_root.call_method("name", ()).decode().await.unwrap();
    assert_eq!(name, "one");
    let leaf = old_root
        .call_method("child", ())
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    assert_eq!(
        leaf.call_method("ping", ()).await.unwrap().as_i64(),
        Some(7)
    );
    assert_eq!(link.generation(), 1);

    // A call in flight when the server goes away fails at once, not after its minute.
    let in_flight = tokio::spawn(old_root.call_method("slow", ()));
    while !started.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    one.shutdown().await;
    drop(one);
    let failed = tokio::time::timeout(PATIENCE, in_flight)
        .await
        .expect("the in-flight call failed at once")
        .unwrap()
        .unwrap_err();
    assert!(failed.is_disconnected(), "{failed}");

    // The server comes back on the same port, as a new process would.
    let two = Server::with_root(root("two", &started).erase())
        .bind(addr)
        .await
        .unwrap();
    let new_root = link.root().await.unwrap();
    let name: String = new_root.call_method("name", ()).decode().await.unwrap();
    assert_eq!(name, "two");
    assert_eq!(link.generation(), 2);
    assert_eq!(broken.await.unwrap().generation, 1);
    assert_eq!(fired.load(Ordering::SeqCst), 1, "on_broken fired once");

    // Old proxies stay dead: they never reach the new server's objects.
    for old in [&old_root, &leaf] {
        let e = old.call_method("name", ()).await.unwrap_err();
        assert!(e.is_disconnected(), "{e}");
    }
    let e = leaf.call_method("ping", ()).await.unwrap_err();
    assert!(e.is_disconnected(), "{e}");

    link.close().await;
    assert!(link.root().await.unwrap_err().is_disconnected());
    drop(two);
}

/// A dial target of in-memory pairs whose dials fail while `refuse` is above zero; the
/// test holds the server ends so it can drop them (the peer "dies").
struct Lab {
    refuse: AtomicU32,
    dials: AtomicU32,
    servers: parking_lot::Mutex<Vec<Connection>>,
}

#[tokio::test(start_paused = true)]
async fn re_dials_back_off_give_up_and_resume_on_reconnect() {
    let lab = Arc::new(Lab {
        refuse: AtomicU32::new(0),
        dials: AtomicU32::new(0),
        servers: parking_lot::Mutex::new(Vec::new()),
    });
    let target = {
        let lab = lab.clone();
        dial_fn("lab", move || {
            let lab = lab.clone();
            async move {
                let n = lab.dials.fetch_add(1, Ordering::SeqCst);
                if lab
                    .refuse
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
                    .is_ok()
                {
                    return Err(netref::Error::Disconnected("refused".into()));
                }
                let started = Arc::new(AtomicBool::new(false));
                let root = root(&format!("server {n}"), &started).erase();
                let (server, client) = netref::pair(Some(root), None).await?;
                lab.servers.lock().push(server);
                Ok(client)
            }
        })
    };
    let options = ResilientOptions {
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        max_attempts: Some(5),
        wait: Duration::from_secs(60),
    };
    let link = netref::connect_resilient_with(target, options)
        .await
        .unwrap();
    let name = |p: netref::Proxy| async move {
        p.call_method("name", ()).decode::<String>().await.unwrap()
    };
    assert_eq!(name(link.root().await.unwrap()).await, "server 0");

    // The peer dies; three re-dials are refused, the fourth succeeds. The backoff doubles
    // from 100 ms, each delay jittered down by at most half: at least 50 + 100 + 200 ms.
    lab.refuse.store(3, Ordering::SeqCst);
    lab.servers.lock().clear();
    assert_eq!(link.broken().await.generation, 1);
    let lost = tokio::time::Instant::now();
    let root = link.root().await.unwrap();
    let waited = lost.elapsed();
    assert_eq!(name(root).await, "server 4");
    assert!(
        waited >= Duration::from_millis(350) && waited <= Duration::from_millis(700),
        "{waited:?}"
    );
    assert_eq!(link.generation(), 2);

    // This time every re-dial is refused: after five it gives up and says so …
    lab.refuse.store(1000, Ordering::SeqCst);
    lab.servers.lock().clear();
    assert_eq!(link.broken().await.generation, 2);
    let e = link.root().await.unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    assert!(
        e.to_string()
            .contains("gave up on lab after 5 failed re-dials"),
        "{e}"
    );
    assert_eq!(lab.dials.load(Ordering::SeqCst), 5 + 5);
    assert!(link.current().is_none());
    // … until `reconnect` kicks it again.
    lab.refuse.store(0, Ordering::SeqCst);
    let conn = link.reconnect().await.unwrap();
    let got: String = conn.root().call_method("name", ()).decode().await.unwrap();
    assert_eq!(got, "server 10");
    assert_eq!(link.generation(), 3);
}
