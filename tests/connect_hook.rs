//! A server's connect hook runs to completion before the connection serves any call: what
//! it sets up is in place for the first call, with a slow hook and many connections; a hook
//! may call the client meanwhile; a failing hook refuses the connection clearly.
mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::{eventually, init_tracing};
use netref::{expose, Config, Connection, Error, Obj, Server, ServerHandle, Value};
use tokio::sync::watch;

/// What the hooks have set up, by connection id.
#[derive(Default)]
struct Setup {
    ready: Mutex<HashSet<u64>>,
    names: Mutex<Vec<String>>,
}

/// A connection's root: answers whether its connection's setup is in place.
struct Session {
    id: u64,
    setup: Arc<Setup>,
}

#[expose]
impl Session {
    /// True once the connect hook of this connection has finished its setup.
    #[exposed]
    fn ready(&self) -> bool {
        self.setup.ready.lock().unwrap().contains(&self.id)
    }
}

/// A client's root, which the server's hook calls.
struct Client(String);

#[expose]
impl Client {
    /// The client's name.
    #[exposed]
    fn name(&self) -> String {
        self.0.clone()
    }
}

/// A server whose async connect hook waits until `open` is true, asks the client its name,
/// then marks the connection ready.
async fn slow_hook_server(setup: Arc<Setup>, open: watch::Receiver<bool>) -> ServerHandle {
    init_tracing();
    let for_roots = setup.clone();
    Server::with_factory(move |info| {
        Obj::new(Session {
            id: info.id,
            setup: for_roots.clone(),
        })
        .erase()
    })
    .on_connect_async(move |info, conn: Connection| {
        let setup = setup.clone();
        let mut open = open.clone();
        async move {
            open.wait_for(|o| *o)
                .await
                .map_err(|_| Error::Value("the test is over".into()))?;
            // The reader delivers replies while the hook runs: it may call the client.
            let name = conn.root().call_method("name", ()).await?;
            setup
                .names
                .lock()
                .unwrap()
                .push(name.as_str().unwrap_or_default().to_owned());
            setup.ready.lock().unwrap().insert(info.id);
            Ok(())
        }
    })
    .bind("127.0.0.1:0")
    .await
    .expect("bind a loopback port")
}

#[tokio::test]
async fn first_calls_wait_for_a_slow_connect_hook_on_every_connection() {
    const CLIENTS: usize = 16;
    let setup = Arc::new(Setup::default());
    let (open_tx, open_rx) = watch::channel(false);
    let server = slow_hook_server(setup.clone(), open_rx).await;
    let addr = server.local_addr();
    let mut clients = Vec::new();
    let mut first_calls = Vec::new();
    for i in 0..CLIENTS {
        let root = Obj::new(Client(format!("client{i}"))).erase();
        let conn = netref::connect_with(addr, Config::default(), Some(root))
            .await
            .unwrap();
        let me = conn.root();
        // The first call leaves at once, while the hook is still waiting.
        first_calls.push(tokio::spawn(
            async move { me.call_method("ready", ()).await },
        ));
        clients.push(conn);
    }
    // Every first call has reached the server before any hook may finish.
    eventually("every first call reached the server", || async {
        let conns = server.connections();
        conns.len() == CLIENTS && conns.iter().all(|(_, c)| c.stats().messages_received >= 1)
    })
    .await;
    assert!(setup.ready.lock().unwrap().is_empty());
    open_tx.send(true).unwrap();
    for call in first_calls {
        let ready = call.await.unwrap().unwrap();
        assert_eq!(
            ready,
            Value::Bool(true),
            "a call was served before its hook finished"
        );
    }
    let mut names = setup.names.lock().unwrap().clone();
    names.sort();
    let mut expected: Vec<String> = (0..CLIENTS).map(|i| format!("client{i}")).collect();
    expected.sort();
    assert_eq!(names, expected);
    for c in clients {
        c.close().await;
    }
}

#[tokio::test]
async fn a_failing_connect_hook_refuses_the_connection_clearly() {
    init_tracing();
    let disconnected = Arc::new(Mutex::new(Vec::new()));
    let record = disconnected.clone();
    let server = Server::with_root(Obj::new(Client("server".into())).erase())
        .on_connect_async(|info, _conn| async move {
            if info.id == 1 {
                Err(Error::Value("clients must say who they are".into()))
            } else {
                Ok(())
            }
        })
        .on_disconnect(move |info, _| record.lock().unwrap().push(info.id))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let refused = netref::connect(server.local_addr()).await.unwrap();
    let e = refused.root().call_method("name", ()).await.unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("refused by the server's connect hook")
            && text.contains("clients must say who they are"),
        "{text}"
    );
    refused.closed().await;
    assert!(refused.close_reason().unwrap().contains("who they are"));
    // The next client is served; the refused one is gone.
    let welcome = netref::connect(server.local_addr()).await.unwrap();
    let name = welcome.root().call_method("name", ()).await.unwrap();
    assert_eq!(name.as_str(), Some("server"));
    eventually("the refused connection is gone", || async {
        disconnected.lock().unwrap().contains(&1)
    })
    .await;
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn a_plain_connect_hook_also_runs_before_the_first_call() {
    init_tracing();
    let setup = Arc::new(Setup::default());
    let (for_roots, for_hook) = (setup.clone(), setup.clone());
    let server = Server::with_factory(move |info| {
        Obj::new(Session {
            id: info.id,
            setup: for_roots.clone(),
        })
        .erase()
    })
    .on_connect(move |info, _| {
        for_hook.ready.lock().unwrap().insert(info.id);
    })
    .bind("127.0.0.1:0")
    .await
    .unwrap();
    for _ in 0..8 {
        let conn = netref::connect(server.local_addr()).await.unwrap();
        let ready = conn.root().call_method("ready", ()).await.unwrap();
        assert_eq!(ready, Value::Bool(true));
    }
}
