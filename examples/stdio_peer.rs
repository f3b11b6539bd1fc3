//! A netref peer on stdio: serves a small object over its own stdin and stdout until the
//! other side closes the connection. It is the child process of the child-process transport
//! tests (`tests/transports.rs`, `tests/blocking.rs`); run by hand it waits for a netref hello
//! on stdin.
//!
//! ```sh
//! cargo build --example stdio_peer
//! ```
//!
//! Modes, for the tests of failed hellos: `--exit CODE` exits at once with `CODE`;
//! `--garbage` writes bytes that are not a hello and then waits for the end of stdin.
//!
//! Nothing here writes to stdout except the connection: stdout is the wire.

use std::io::{Read, Write};
use std::time::Duration;

use netref::{expose, Config, Obj, Proxy, Value};
use tokio::sync::watch;

/// The object this peer lends as its root.
struct Peer {
    /// The parent's root, once the connection is up.
    parent: watch::Receiver<Option<Proxy>>,
}

/// A small service reached over stdio.
#[expose]
impl Peer {
    /// Adds two numbers.
    #[exposed]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Calls `cb(i)` for i in 0..n and returns the sum of its results.
    #[exposed]
    async fn repeat(&self, cb: Proxy, n: u32) -> netref::Result<i64> {
        let mut sum = 0;
        for i in 0..n {
            sum += cb.call((i,)).decode::<i64>().await?;
        }
        Ok(sum)
    }

    /// Calls `method(a, b)` on the root object the parent lends.
    #[exposed]
    async fn ask_parent(&self, method: String, a: i64, b: i64) -> netref::Result<Value> {
        let mut parent = self.parent.clone();
        let parent = parent
            .wait_for(Option::is_some)
            .await
            .map_err(|_| netref::Error::Disconnected("no parent connection".into()))?
            .clone();
        match parent {
            Some(parent) => parent.call_method(&method, (a, b)).await,
            None => Err(netref::Error::Disconnected("no parent connection".into())),
        }
    }

    /// This process's id.
    #[exposed]
    fn pid(&self) -> u32 {
        std::process::id()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--exit") => {
            let code = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(1);
            std::process::exit(code);
        }
        Some("--garbage") => {
            let mut out = std::io::stdout();
            let _ = out.write_all(b"this is not a netref hello, just some words\n");
            let _ = out.flush();
            // Wait until the parent gives up (stdin ends), then exit.
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            return;
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stdio_peer: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    let served = runtime.block_on(async {
        let (parent_tx, parent) = watch::channel(None);
        let root = Obj::new(Peer { parent }).erase();
        let conn = netref::serve_stdio(Config::default(), Some(root)).await?;
        // The root now holds a proxy of the parent's root: a cycle through the connection,
        // broken when it closes (its tables, root included, are emptied then).
        let _ = parent_tx.send(Some(conn.root()));
        conn.closed().await;
        Ok::<(), netref::Error>(())
    });
    // Stdin is read on a thread that cannot be interrupted: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if let Err(e) = served {
        eprintln!("stdio_peer: {e}");
        std::process::exit(1);
    }
}
