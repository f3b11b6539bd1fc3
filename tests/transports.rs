//! Transports: Unix sockets, a child process's stdio (with callbacks), and the in-memory pair.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::*;
use netref::{callback, Config, ErrorKind, Obj};

#[cfg(unix)]
mod unix {
    use super::*;

    /// Binds a Unix listener in `dir` and serves one `Lab` connection on it.
    async fn serve_one(
        dir: &TempDir,
    ) -> (
        std::path::PathBuf,
        tokio::task::JoinHandle<netref::Connection>,
    ) {
        let path = dir.path().join("lab.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind a unix socket");
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (r, w) = stream.into_split();
            let root = Obj::new(Lab::default()).erase();
            netref::Connection::from_io(r, w, Config::default(), Some(root))
                .await
                .expect("server hello")
        });
        (path, task)
    }

    #[tokio::test]
    async fn a_unix_socket_round_trip_with_a_callback() {
        init_tracing();
        let dir = TempDir::new("unix");
        let path = dir.path().join("lab.sock");
        let server = netref::Server::with_factory(|_| Obj::new(Lab::default()).erase())
            .bind_unix(&path)
            .expect("bind a unix socket");
        let conn = netref::connect_unix(&path).await.unwrap();
        assert_eq!(conn.label(), format!("unix:{}", path.display()));

        let root = conn.root();
        assert_eq!(
            root.call_method("add", (2, 40)).await.unwrap().as_i64(),
            Some(42)
        );
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let double = callback(move |i: i64| {
            seen.fetch_add(1, Ordering::SeqCst);
            i * 2
        });
        let sum: i64 = root
            .call_method("sum_callbacks", (double, 5))
            .decode()
            .await
            .unwrap();
        assert_eq!(sum, 2 * (1 + 2 + 3 + 4));
        assert_eq!(calls.load(Ordering::SeqCst), 5);

        conn.close().await;
        server.shutdown().await;
        assert_eq!(server.connection_count(), 0);
    }

    #[tokio::test]
    async fn connect_unix_with_lends_a_root_the_server_can_call() {
        let dir = TempDir::new("unix-root");
        let (path, server) = serve_one(&dir).await;
        let ours = Obj::new(Lab::default()).erase();
        let conn =
            netref::connect_unix_with(&path, Config::default().with_label("mine"), Some(ours))
                .await
                .unwrap();
        assert_eq!(conn.label(), "mine");
        let server = server.await.unwrap();
        let back = server.root().call_method("add", (1, 1)).await.unwrap();
        assert_eq!(back.as_i64(), Some(2));
    }

    #[tokio::test]
    async fn a_missing_socket_is_an_io_error() {
        let dir = TempDir::new("unix-missing");
        let err = netref::connect_unix(dir.path().join("nobody.sock"))
            .await
            .unwrap_err();
        assert!(matches!(err, netref::Error::Io(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_unix_peer_that_is_not_netref_fails_the_hello() {
        use tokio::io::AsyncWriteExt;
        let dir = TempDir::new("unix-junk");
        let path = dir.path().join("junk.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let junk = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.write_all(&[0xff; 64]).await;
            stream
        });
        let err = netref::connect_unix(&path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        drop(junk.await);
    }
}

mod child {
    use super::*;

    fn peer() -> std::path::PathBuf {
        example_bin("stdio_peer")
    }

    #[tokio::test]
    async fn a_child_process_round_trip_with_a_callback() {
        init_tracing();
        let mut child = netref::connect_command(peer(), std::iter::empty::<&str>())
            .await
            .unwrap();
        let pid = child.id().expect("the child is running");
        assert_eq!(child.label(), format!("stdio_peer[{pid}]"));

        let root = child.root();
        assert_eq!(
            root.call_method("pid", ()).await.unwrap().as_i64(),
            Some(pid.into())
        );
        assert_eq!(
            root.call_method("add", (20, 22)).await.unwrap().as_i64(),
            Some(42)
        );

        // The child calls back into this process, once per item.
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let square = callback(move |i: i64| {
            seen.fetch_add(1, Ordering::SeqCst);
            i * i
        });
        let sum: i64 = root
            .call_method("repeat", (square, 4))
            .decode()
            .await
            .unwrap();
        assert_eq!(sum, 1 + 4 + 9);
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // Closing the connection closes the child's stdin: it exits on its own.
        child.close().await;
        let status = child.wait().await.unwrap();
        assert!(status.success(), "{status}");
    }

    #[tokio::test]
    async fn the_connection_closes_when_the_child_dies() {
        let mut child = netref::connect_command(peer(), std::iter::empty::<&str>())
            .await
            .unwrap();
        let conn = child.connection().clone();
        child.kill().await.unwrap();
        conn.closed().await;
        assert!(conn.is_closed());
        let err = conn.root().call_method("add", (1, 2)).await.unwrap_err();
        assert!(err.is_disconnected(), "{err}");
    }

    #[tokio::test]
    async fn dropping_the_child_connection_kills_the_child() {
        let child = netref::connect_command(peer(), std::iter::empty::<&str>())
            .await
            .unwrap();
        let conn = child.connection().clone();
        drop(child);
        conn.closed().await;
        assert!(conn.is_closed());
    }

    #[tokio::test]
    async fn the_child_can_call_the_root_the_parent_lends() {
        let ours = Obj::new(Lab::default());
        let child = netref::connect_command_with(
            peer(),
            std::iter::empty::<&str>(),
            Config::default(),
            Some(ours.erase()),
        )
        .await
        .unwrap();
        let sum = child
            .root()
            .call_method("ask_parent", ("add", 30, 12))
            .await
            .unwrap();
        assert_eq!(sum.as_i64(), Some(42));
        let err = child
            .root()
            .call_method("ask_parent", ("hidden", 0, 0))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoSuchMember, "{err}");
    }

    #[tokio::test]
    async fn a_child_that_exits_before_the_hello_is_reported_with_its_status() {
        let err = netref::connect_command(peer(), ["--exit", "3"])
            .await
            .unwrap_err();
        assert!(err.is_disconnected(), "{err}");
        assert!(err.to_string().contains("exited"), "{err}");
    }

    #[tokio::test]
    async fn a_child_that_is_not_netref_fails_the_hello_and_is_stopped() {
        let err = netref::connect_command(peer(), ["--garbage"])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_io_error() {
        let err = netref::connect_command("netref-no-such-program-here", ["x"])
            .await
            .unwrap_err();
        assert!(matches!(err, netref::Error::Io(_)), "{err:?}");
        assert!(
            err.to_string().contains("netref-no-such-program-here"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn spawn_takes_a_prepared_command() {
        let mut command = std::process::Command::new(peer());
        command.stderr(std::process::Stdio::null());
        let child =
            netref::ChildConnection::spawn(command, Config::default().with_label("prepared"), None)
                .await
                .unwrap();
        assert_eq!(child.label(), "prepared");
        let (conn, mut process) = child.into_parts();
        assert_eq!(
            conn.root()
                .call_method("add", (1, 2))
                .await
                .unwrap()
                .as_i64(),
            Some(3)
        );
        conn.close().await;
        assert!(process.wait().await.unwrap().success());
    }
}

#[tokio::test]
async fn the_in_memory_pair_is_symmetric() {
    let (a, b) = netref::pair(
        Some(Obj::new(Lab::default()).erase()),
        Some(Obj::new(Lab::default()).erase()),
    )
    .await
    .unwrap();
    assert_eq!(a.label(), "memory/first");
    assert_eq!(b.label(), "memory/second");
    assert_eq!(
        a.root().call_method("add", (1, 2)).await.unwrap().as_i64(),
        Some(3)
    );
    assert_eq!(
        b.root().call_method("add", (3, 4)).await.unwrap().as_i64(),
        Some(7)
    );
    a.close().await;
    b.closed().await;
}

#[test]
fn a_child_connection_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<netref::ChildConnection>();
}
