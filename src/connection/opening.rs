//! A connection's opening: a connect hook (see
//! [`Server::on_connect_async`](crate::Server::on_connect_async)) runs to completion before
//! the connection serves any incoming call.
//!
//! The reader polls the hook while it waits for input, so replies and control messages are
//! handled as usual and the hook may call the peer. Incoming calls that arrive meanwhile are
//! held here, in arrival order (at most `max_in_flight` of them; the excess is refused as
//! overloaded), and started by the reader, in that order, once the hook has finished. A hook
//! that fails or overruns its time refuses the connection: it is closed with a goodbye that
//! says why, and the calls held are dropped unserved.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::Connection;
use crate::config::ConnectFn;
use crate::protocol::{CallMsg, FLAG_KEEP_ANSWER, FLAG_ONE_WAY};

/// A running connect hook, bounded in time; its error is the reason to close.
pub(crate) type Setup = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The connect hook of a new connection, as the reader runs it.
pub(crate) fn setup(hook: ConnectFn, conn: Connection, limit: Duration) -> Setup {
    Box::pin(async move {
        match tokio::time::timeout(limit, hook(conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("refused by the server's connect hook: {e}")),
            Err(_) => Err(format!(
                "refused: the server's connect hook did not finish within {limit:?}"
            )),
        }
    })
}

/// Waits for `setup` to finish; never, when there is none.
pub(crate) async fn finished(setup: &mut Option<Setup>) -> Result<(), String> {
    match setup {
        Some(s) => s.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The calls held while a connect hook runs.
#[derive(Default)]
pub(crate) struct Opening {
    /// True from the start of a connection with a connect hook until the hook finished.
    holding: AtomicBool,
    held: Mutex<Vec<CallMsg>>,
}

impl Opening {
    /// Starts holding incoming calls (before the reader starts).
    pub(crate) fn hold(&self) {
        self.holding.store(true, Ordering::Release);
    }

    /// True while incoming calls are to be held.
    #[inline]
    pub(crate) fn is_holding(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    /// Holds `call` until the hook has finished; gives it back when `max` calls are held
    /// already (the caller refuses it).
    pub(crate) fn keep(&self, call: CallMsg, max: usize) -> Result<(), CallMsg> {
        let mut held = self.held.lock();
        if held.len() >= max {
            return Err(call);
        }
        held.push(call);
        Ok(())
    }

    /// Drops held call `id` (the peer cancelled it); false when it is not held.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let mut held = self.held.lock();
        let before = held.len();
        held.retain(|c| c.id != id);
        held.len() != before
    }

    /// The peer no longer needs the answer of held call `id`: it still runs, but its answer
    /// is neither kept nor returned.
    pub(crate) fn finish(&self, id: u64) {
        for c in self.held.lock().iter_mut() {
            if c.id == id && c.flags & FLAG_KEEP_ANSWER != 0 {
                c.flags = (c.flags & !FLAG_KEEP_ANSWER) | FLAG_ONE_WAY;
            }
        }
    }

    /// Stops holding and gives back the held calls, in arrival order.
    pub(crate) fn release(&self) -> Vec<CallMsg> {
        let mut held = self.held.lock();
        self.holding.store(false, Ordering::Release);
        std::mem::take(&mut *held)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::config::{Config, Hooks};
    use crate::Value;

    /// A config whose connect hook never finishes, bounded by `limit`.
    fn stuck_hook(limit: std::time::Duration) -> Config {
        Config {
            hooks: Hooks {
                connect: Some(Arc::new(|_conn| Box::pin(std::future::pending()))),
                connect_timeout: limit,
                ..Hooks::default()
            },
            ..Config::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hook_that_overruns_its_time_refuses_the_connection() {
        let limit = std::time::Duration::from_secs(2);
        let root = crate::callback(|| 1i64).local_object().cloned();
        // `server` holds the hook; `client` calls it at once.
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (cr, cw) = tokio::io::split(client_io);
        let (sr, sw) = tokio::io::split(server_io);
        let (client, server) = tokio::join!(
            crate::Connection::from_io(cr, cw, Config::default(), None),
            crate::Connection::from_io(sr, sw, stuck_hook(limit), root),
        );
        let (client, server) = (client.unwrap(), server.unwrap());
        let started = tokio::time::Instant::now();
        let e = client.root().call(()).await.unwrap_err();
        assert!(e.is_disconnected(), "{e}");
        assert!(
            e.to_string()
                .contains("connect hook did not finish within 2s"),
            "{e}"
        );
        assert_eq!(started.elapsed(), limit);
        assert_eq!(server.stats().calls_received, 1);
        server.closed().await;
        client.closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn held_calls_start_in_order_and_a_cancelled_one_never_runs() {
        let (open_tx, open_rx) = tokio::sync::watch::channel(false);
        let mut config = Config::default();
        config.hooks.connect = Some(Arc::new(move |_conn| {
            let mut open = open_rx.clone();
            Box::pin(async move {
                let _ = open.wait_for(|o| *o).await;
                Ok(())
            })
        }));
        let list = crate::Obj::new(crate::adapters::List::new());
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (cr, cw) = tokio::io::split(client_io);
        let (sr, sw) = tokio::io::split(server_io);
        let (client, server) = tokio::join!(
            crate::Connection::from_io(cr, cw, Config::default(), None),
            crate::Connection::from_io(sr, sw, config, Some(list.erase())),
        );
        let (client, _server) = (client.unwrap(), server.unwrap());
        let root = client.root();
        let mut calls = Vec::new();
        for i in 0..10 {
            let root = root.clone();
            calls.push(tokio::spawn(async move {
                root.call_method("append", (i,)).await
            }));
            tokio::task::yield_now().await;
        }
        // One more, dropped before the hook finishes: cancelled while held.
        let dropped = root.call_method("append", (99,));
        let _ = tokio::time::timeout(std::time::Duration::from_millis(10), dropped).await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(list.len(), 0, "nothing is served before the hook finished");
        open_tx.send(true).unwrap();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let expected: Vec<Value> = (0..10).map(Value::Int).collect();
        assert_eq!(list.snapshot(), expected);
    }
}
