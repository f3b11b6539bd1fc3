//! RPyC's classic example in netref: the client lends an open file and a callback; the
//! server reads the file's lines through the proxy, calls the callback once per line, and
//! returns the count.
//!
//! Run it with `cargo run --example line_counter [FILE]` (it counts its own source by
//! default). Server and client run in one program over TCP loopback.

use std::sync::{Arc, Mutex};

use netref::adapters::File;
use netref::{callback, expose, Obj, Proxy, Server};

/// The server's root object.
pub(crate) struct LineCounter;

/// Counts lines of files it is lent.
#[expose]
impl LineCounter {
    /// Reads `file` line by line, calling `on_line(number, line)` for each; returns the count.
    #[exposed]
    async fn count(&self, file: Proxy, on_line: Proxy) -> netref::Result<u64> {
        let mut lines = file.iter(64).await?;
        let mut n = 0u64;
        while let Some(line) = lines.next().await? {
            n += 1;
            on_line.call((n, line)).await?;
        }
        Ok(n)
    }
}

/// Starts a server on an ephemeral loopback port, lends it `path` and a callback, and
/// returns the server's count with the lines the callback saw.
pub(crate) async fn run(path: &str) -> netref::Result<(u64, Vec<(u64, String)>)> {
    let server = Server::with_root(Obj::new(LineCounter).erase())
        .bind("127.0.0.1:0")
        .await?;
    let conn = netref::connect(server.local_addr()).await?;

    let file = Obj::new(File::open(path, "r")?);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let on_line = callback(move |n: u64, line: String| {
        sink.lock().expect("not poisoned").push((n, line));
    });
    let count: u64 = conn
        .root()
        .call_method("count", (file, on_line))
        .decode()
        .await?;
    conn.close().await;
    server.shutdown().await;
    let seen = std::mem::take(&mut *seen.lock().expect("not poisoned"));
    Ok((count, seen))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> netref::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/line_counter.rs").into());
    let (count, seen) = run(&path).await?;
    for (n, line) in &seen {
        print!("{n:>4} | {line}");
    }
    println!(
        "{path}: {count} lines (the callback ran {} times)",
        seen.len()
    );
    Ok(())
}
