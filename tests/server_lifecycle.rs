//! A server's lifecycle: the closing hook runs before a connection's tables are torn down,
//! the handle lists connections with their `ConnectionInfo`, and a one-shot server serves
//! exactly one connection.
mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{eventually, init_tracing, DropCounter, Tracked};
use netref::adapters::List;
use netref::{expose, Config, Connection, Obj, Server, ServerHandle, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A root that lends tracked objects and keeps what it is given.
struct Desk {
    drops: DropCounter,
    kept: List,
}

#[expose]
impl Desk {
    /// Lends a fresh tracked object.
    #[exposed]
    fn lend(&self, name: String) -> Obj<Tracked> {
        Obj::new(Tracked {
            name,
            drops: self.drops.clone(),
        })
    }

    /// Keeps `v` (a callback, say) until the connection closes.
    #[exposed]
    fn keep(&self, v: Value) {
        self.kept.push(v);
    }
}

/// What a hook saw of a connection.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    hook: &'static str,
    id: u64,
    closed: bool,
    reason: Option<String>,
    exports: usize,
    imports: u64,
    lent_alive: bool,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A server lending a `Desk` per connection, logging what its closing and disconnect hooks
/// see.
async fn desk_server(drops: DropCounter, log: Log) -> ServerHandle {
    init_tracing();
    let (closing, disconnect) = (log.clone(), log);
    let (d1, d2, d3) = (drops.clone(), drops.clone(), drops);
    let seen =
        move |hook, drops: &DropCounter, info: &netref::ConnectionInfo, c: &Connection| Seen {
            hook,
            id: info.id,
            closed: c.is_closed(),
            reason: c.close_reason(),
            exports: c.tables().exports.len(),
            imports: c.stats().live_imports,
            lent_alive: drops.dropped() == 0,
        };
    let seen2 = seen;
    Server::with_factory(move |_| {
        Obj::new(Desk {
            drops: d1.clone(),
            kept: List::new(),
        })
        .erase()
    })
    .on_closing(move |info, c| closing.lock().unwrap().push(seen("closing", &d2, info, c)))
    .on_disconnect(move |info, c| {
        disconnect
            .lock()
            .unwrap()
            .push(seen2("disconnect", &d3, info, c))
    })
    .bind("127.0.0.1:0")
    .await
    .expect("bind a loopback port")
}

#[tokio::test]
async fn the_closing_hook_sees_what_the_connection_lent_before_it_is_freed() {
    let drops = DropCounter::default();
    let log = Log::default();
    let server = desk_server(drops.clone(), log.clone()).await;
    let client = netref::connect(server.local_addr()).await.unwrap();
    let root = client.root();
    let lent = root.call_method("lend", ("a",)).await.unwrap();
    let name = lent
        .clone()
        .into_proxy()
        .unwrap()
        .call_method("name", ())
        .await;
    assert_eq!(name.unwrap().as_str(), Some("a"));
    root.call_method("keep", (netref::callback(|| 1),))
        .await
        .unwrap();
    let id = server.connections()[0].0.id;

    client.close().await;
    server.stop_accepting().await;
    server.stopped().await;
    let log = log.lock().unwrap().clone();
    let closing = Seen {
        hook: "closing",
        id,
        closed: true,
        reason: log[0].reason.clone(),
        exports: 1,
        imports: 1,
        lent_alive: true,
    };
    assert!(
        closing.reason.as_deref().unwrap_or("").contains("goodbye"),
        "{log:?}"
    );
    let disconnect = Seen {
        hook: "disconnect",
        exports: 0,
        imports: 0,
        lent_alive: false,
        ..closing.clone()
    };
    assert_eq!(log, [closing, disconnect]);
    assert_eq!(drops.dropped(), 1);
    drop(lent);
}

#[tokio::test]
async fn the_closing_hook_runs_once_for_every_connection_however_soon_it_closes() {
    const CLIENTS: usize = 24;
    let drops = DropCounter::default();
    let log = Log::default();
    let server = desk_server(drops, log.clone()).await;
    let addr = server.local_addr();
    // Half close at once after the hello, half are dropped without a goodbye, and the
    // server shuts the last one down.
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let conn = netref::connect(addr).await.unwrap();
            if i % 2 == 0 {
                conn.close().await;
            } else {
                drop(conn);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let last = netref::connect(addr).await.unwrap();
    eventually("every connection but the last is gone", || async {
        server.connection_count() == 1
    })
    .await;
    server.shutdown().await;
    server.stopped().await;
    assert!(last.root().dir().await.is_err());
    let log = log.lock().unwrap().clone();
    let mut closing: Vec<u64> = log
        .iter()
        .filter(|s| s.hook == "closing")
        .map(|s| s.id)
        .collect();
    closing.sort_unstable();
    assert_eq!(
        closing,
        (1..=CLIENTS as u64 + 1).collect::<Vec<_>>(),
        "{log:?}"
    );
    assert!(log.iter().all(|s| s.closed));
    let shut = log
        .iter()
        .find(|s| s.hook == "closing" && s.id == CLIENTS as u64 + 1);
    assert!(shut
        .unwrap()
        .reason
        .as_deref()
        .unwrap()
        .contains("shutting down"));
}

/// A client over a TCP stream made here, so that its own address is known.
async fn client_at(addr: SocketAddr) -> (SocketAddr, Connection) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    let (r, w) = stream.into_split();
    (
        me,
        Connection::from_io(r, w, Config::default(), None)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn connections_come_with_their_info() {
    let server = desk_server(DropCounter::default(), Log::default()).await;
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(client_at(addr).await);
    }
    eventually("three connections", || async {
        server.connection_count() == 3
    })
    .await;
    let listed = server.connections();
    let ids: Vec<u64> = listed.iter().map(|(info, _)| info.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    // The connection of a given client, by its address.
    for (me, conn) in &clients {
        let (info, side) = listed
            .iter()
            .find(|(info, _)| info.peer == Some(*me))
            .expect("the client's connection is listed with its address");
        assert_eq!(side.label(), me.to_string());
        assert!(server.connection(info.id).is_some());
        conn.root().call_method("keep", (1,)).await.unwrap();
        assert_eq!(side.stats().calls_received, 1);
    }
    let (me, first) = clients.remove(0);
    first.close().await;
    eventually("the first client is gone", || async {
        server.connection_count() == 2
    })
    .await;
    assert!(server.connection(1).is_none());
    assert!(server
        .connections()
        .iter()
        .all(|(info, _)| info.peer != Some(me)));
}

#[tokio::test]
async fn a_one_shot_server_serves_one_connection() {
    init_tracing();
    let served = Arc::new(Mutex::new(Vec::new()));
    let record = served.clone();
    let server = Server::with_root(Obj::new(List::new()).erase())
        .one_shot()
        .on_connect(move |info, _| record.lock().unwrap().push(info.id))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    // A client whose hello fails does not use up the shot.
    let mut junk = TcpStream::connect(addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let conn = netref::connect(addr).await.unwrap();
    conn.root().call_method("append", (1,)).await.unwrap();
    // Nobody else gets in, and the one connection goes on.
    for _ in 0..3 {
        assert!(netref::connect(addr).await.is_err());
    }
    assert_eq!(
        conn.root().call_method("len", ()).await.unwrap(),
        Value::Int(1)
    );
    assert_eq!(server.connection_count(), 1);
    assert_eq!(*served.lock().unwrap(), [2]);
    // The server is done once its connection is.
    conn.close().await;
    server.stopped().await;
    assert_eq!(server.connection_count(), 0);
}
