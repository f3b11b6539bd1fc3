//! One-way calls: `Proxy::cast`, `call_method_oneway` and `#[exposed(oneway)]` members of
//! typed proxies. Ordered with other calls, counted, failures logged on the owner only.
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use netref::adapters::{List, ListProxy};
use netref::typed::Blocking;
use netref::{blocking, expose, Obj, Value};

#[tokio::test]
async fn ten_thousand_casts_land_in_order() {
    let list = Obj::new(List::new());
    let (server, client) = netref::pair(Some(list.erase()), None).await.unwrap();
    let root = client.root();
    for i in 0..10_000i64 {
        root.call_method_oneway("append", (i,)).await.unwrap();
    }
    let before = client.stats();
    // A call sent after the casts starts after all of them.
    let len: i64 = root.call_method("len", ()).decode().await.unwrap();
    assert_eq!(len, 10_000);
    let expected: Vec<Value> = (0..10_000i64).map(Value::Int).collect();
    assert_eq!(list.snapshot(), expected);
    assert_eq!(before.casts_sent, 10_000);
    assert_eq!(before.round_trips, 0, "a cast waits for nothing");
    assert!(before.calls_sent >= 10_000);
    assert_eq!(server.stats().casts_failed, 0);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_cast_is_logged_on_the_owner_and_the_connection_goes_on() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let list = Obj::new(List::new());
    let config = netref::Config::default().with_label("owner");
    let (server, client) = netref::pair_with(config, Some(list.erase()), None)
        .await
        .unwrap();
    let root = client.root();
    // Unknown member, bad arguments: the caller is told nothing...
    root.call_method_oneway("explode", ()).await.unwrap();
    root.call_method_oneway("append", ()).await.unwrap();
    root.call_method_oneway("append", (1,)).await.unwrap();
    // ...and the connection goes on.
    assert_eq!(root.call_method("len", ()).await.unwrap().as_i64(), Some(1));
    assert_eq!(server.stats().casts_failed, 2);
    assert_eq!(client.stats().casts_failed, 0);
    let text = log.text();
    assert_eq!(text.matches("one-way call failed").count(), 2, "{text}");
    assert!(text.contains("explode") && text.contains("owner"), "{text}");
    assert!(text.contains("missing argument"), "{text}");
}

/// A journal whose `note` is one-way for typed callers.
#[derive(Default)]
pub struct Journal {
    lines: Mutex<Vec<String>>,
}

#[expose]
impl Journal {
    /// Appends a line; typed callers do not wait for it.
    #[exposed(oneway)]
    fn note(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }

    /// Fails always, for the log.
    #[exposed(oneway)]
    async fn broken(&self) -> netref::Result<()> {
        Err(netref::Error::remote(
            netref::ErrorKind::Failed,
            "broken on purpose",
        ))
    }

    /// The lines so far.
    #[exposed]
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn typed_oneway_members_are_casts() {
    let journal = Obj::new(Journal::default());
    let (server, client) = netref::pair(Some(journal.erase()), None).await.unwrap();
    let typed: JournalProxy = client.root_as().await.unwrap();
    typed.note("a".into()).await.unwrap();
    typed.broken().await.unwrap();
    typed.note("b".into()).await.unwrap();
    assert_eq!(typed.lines().await.unwrap(), ["a", "b"]);
    assert_eq!(client.stats().casts_sent, 2 + 1);
    assert_eq!(server.stats().casts_failed, 1);
    // A dynamic caller may still wait for a one-way member's (empty) answer.
    let v = client.root().call_method("note", ("c",)).await.unwrap();
    assert_eq!(v, Value::Nil);
}

#[test]
fn blocking_casts() {
    let list = Obj::new(List::new());
    let (_server, conn) = blocking::Connection::pair(Some(list.erase()), None).unwrap();
    let root = conn.root();
    root.call_method_oneway("append", ("x",)).unwrap();
    root.attr("append").cast(("y",)).unwrap();
    let typed: ListProxy<Blocking> = conn.root_as().unwrap();
    assert_eq!(typed.len().unwrap(), 2);
    assert_eq!(list.snapshot(), [Value::from("x"), Value::from("y")]);
}

#[tokio::test]
async fn a_cast_on_a_local_object_runs_without_the_caller() {
    let journal = Obj::new(Journal::default());
    let local = netref::Proxy::local(journal.clone());
    local.call_method_oneway("note", ("here",)).await.unwrap();
    assert_eq!(journal.lines.lock().unwrap().as_slice(), ["here"]);
}
