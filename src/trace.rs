//! Readable protocol traces, for teaching and debugging.
//!
//! # Usage
//!
//! [`Connection::set_tracer`](crate::Connection::set_tracer) installs a function that sees
//! every message the connection sends or receives, rendered as one readable line:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use netref::{trace::TraceEvent, Obj};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let list = Obj::new(netref::adapters::List::new());
//! let (a, b) = netref::pair(None, Some(list.erase())).await.unwrap();
//! let lines = Arc::new(Mutex::new(Vec::new()));
//! let sink = lines.clone();
//! a.set_tracer(Some(Arc::new(move |e: &TraceEvent| sink.lock().unwrap().push(e.to_string()))));
//! a.root().call_method("append", (1,)).await.unwrap();
//! let lines = lines.lock().unwrap();
//! assert_eq!(lines[0], "-> Call 1 root.append(1)");
//! assert_eq!(lines[1], "<- Return 1 = nil");
//! # });
//! ```
//!
//! # Recording and diagrams
//!
//! A [`Recorder`] keeps the most recent events (a bounded number of them); install
//! [`Recorder::tracer`] on a connection, then [`mermaid`] renders what it kept as a
//! [Mermaid](https://mermaid.js.org) sequence diagram, one arrow per message: `->>` for calls,
//! `-->>` (dashed) for returns, and `-)` (open arrowhead) for one-way messages such as
//! `Release`, `Finish` and `Cancel`, which expect no answer.
//!
//! ```
//! use netref::{trace::{mermaid, Recorder}, Obj};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let list = Obj::new(netref::adapters::List::new());
//! let (a, _b) = netref::pair(None, Some(list.erase())).await.unwrap();
//! let recorder = Recorder::new(100);
//! a.set_tracer(Some(recorder.tracer()));
//! a.root().call_method("append", (1,)).await.unwrap();
//! let diagram = mermaid(&recorder.events(), "client", "server").to_string();
//! assert_eq!(
//!     diagram,
//!     "sequenceDiagram\n    \
//!      participant A as client\n    \
//!      participant B as server\n    \
//!      A->>B: Call 1 root.append(1)\n    \
//!      B-->>A: Return 1 = nil\n"
//! );
//! # });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Which way a traced message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Written by this side.
    Sent,
    /// Read from the peer.
    Received,
}

/// One traced message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TraceEvent {
    /// Which way it went.
    pub direction: Direction,
    /// The message name (`Call`, `Return`, `Release` …).
    pub kind: &'static str,
    /// The message in readable form, for example `Call 1 root.add(1, 2)`.
    pub text: String,
    /// The frame's size in bytes, length prefix included.
    pub bytes: usize,
    /// The connection's label.
    pub connection: String,
}

impl fmt::Display for TraceEvent {
    /// `-> Call 1 root.add(1, 2)` for sent messages, `<- …` for received ones.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.direction {
            Direction::Sent => "->",
            Direction::Received => "<-",
        };
        write!(f, "{arrow} {}", self.text)
    }
}

/// A function that receives trace events.
pub type Tracer = Arc<dyn Fn(&TraceEvent) + Send + Sync>;

impl TraceEvent {
    /// A trace event for `text` (a readable message such as `Call 1 root.add(1, 2)`), for
    /// tools that rebuild traces; `kind` is the text's first word.
    pub fn new(direction: Direction, text: impl Into<String>) -> TraceEvent {
        let text = text.into();
        let kind = KINDS
            .iter()
            .copied()
            .find(|k| text.split_whitespace().next() == Some(*k))
            .unwrap_or("Message");
        TraceEvent {
            direction,
            kind,
            text,
            bytes: 0,
            connection: String::new(),
        }
    }

    /// True for messages that expect no answer: `Release`, `Finish`, `Cancel`, `Ping`,
    /// `Pong`, `Goodbye`, and calls flagged one-way. A message of another wire (kind
    /// `Message`, such as RPyC's `REQUEST` and `REPLY`) is taken as part of an exchange.
    pub fn is_one_way(&self) -> bool {
        match self.kind {
            "Call" => self.text.ends_with(" [one-way]"),
            "Release" | "Finish" | "Cancel" | "Ping" | "Pong" | "Goodbye" => true,
            _ => false,
        }
    }
}

/// The message names a [`TraceEvent::kind`] can hold.
const KINDS: &[&str] = &[
    "Call", "Return", "Release", "Cancel", "Finish", "Ping", "Pong", "Goodbye",
];

/// Keeps the most recent trace events, up to a bound. Cheap to clone; clones share the
/// events.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    events: Mutex<VecDeque<TraceEvent>>,
    capacity: usize,
    dropped: AtomicU64,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("len", &self.inner.events.lock().len())
            .field("capacity", &self.inner.capacity)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Recorder {
    /// A recorder that keeps at most `capacity` events (at least one): when full, the
    /// oldest event is dropped and counted in [`Recorder::dropped`].
    pub fn new(capacity: usize) -> Recorder {
        let capacity = capacity.max(1);
        Recorder {
            inner: Arc::new(RecorderInner {
                events: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
                capacity,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Keeps `event`.
    pub fn record(&self, event: &TraceEvent) {
        let mut events = self.inner.events.lock();
        if events.len() == self.inner.capacity {
            events.pop_front();
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        events.push_back(event.clone());
    }

    /// A tracer that records into this recorder, for
    /// [`Connection::set_tracer`](crate::Connection::set_tracer).
    pub fn tracer(&self) -> Tracer {
        let me = self.clone();
        Arc::new(move |e: &TraceEvent| me.record(e))
    }

    /// The events kept, oldest first.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.inner.events.lock().iter().cloned().collect()
    }

    /// The events kept, oldest first, leaving the recorder empty (the dropped count too).
    pub fn take(&self) -> Vec<TraceEvent> {
        let events = std::mem::take(&mut *self.inner.events.lock());
        self.inner.dropped.store(0, Ordering::Relaxed);
        events.into()
    }

    /// Forgets every event kept, and the dropped count.
    pub fn clear(&self) {
        self.take();
    }

    /// How many events were dropped because the recorder was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

/// Renders `events`, as seen from one connection, as a Mermaid `sequenceDiagram` (see
/// [`Mermaid`]). `this` names the side that recorded them, `peer` the other side.
pub fn mermaid<'a>(events: &'a [TraceEvent], this: &'a str, peer: &'a str) -> Mermaid<'a> {
    Mermaid {
        events,
        this,
        peer,
        omitted: 0,
    }
}

/// A Mermaid sequence diagram of trace events; its [`Display`](fmt::Display) is the
/// diagram's source, ending with a newline.
///
/// The two sides are participants `A` (this side) and `B` (the peer), shown with the given
/// names. Each message is one arrow carrying its readable text: `->>` for a call, `-->>`
/// for a return, `-)` for a one-way message. Characters Mermaid would read as syntax
/// (`#`, `;`, `<`, `>`, `"`, `&`) are written as Mermaid entity codes (`#35;` …), so
/// any message text is safe.
#[derive(Debug, Clone, Copy)]
pub struct Mermaid<'a> {
    events: &'a [TraceEvent],
    this: &'a str,
    peer: &'a str,
    omitted: u64,
}

impl Mermaid<'_> {
    /// Adds a note at the top saying that `n` earlier messages are not shown (for example
    /// [`Recorder::dropped`]); nothing when `n` is zero.
    pub fn omitted(mut self, n: u64) -> Self {
        self.omitted = n;
        self
    }
}

impl fmt::Display for Mermaid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sequenceDiagram")?;
        writeln!(f, "    participant A as {}", escape(self.this))?;
        writeln!(f, "    participant B as {}", escape(self.peer))?;
        if self.omitted > 0 {
            writeln!(
                f,
                "    Note over A,B: {} earlier messages not shown",
                self.omitted
            )?;
        }
        for e in self.events {
            let (from, to) = match e.direction {
                Direction::Sent => ("A", "B"),
                Direction::Received => ("B", "A"),
            };
            let arrow = if e.is_one_way() {
                "-)"
            } else if e.kind == "Return" {
                "-->>"
            } else {
                "->>"
            };
            writeln!(f, "    {from}{arrow}{to}: {}", escape(&e.text))?;
        }
        Ok(())
    }
}

/// `text` on one line, with the characters Mermaid treats as syntax written as entity
/// codes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '"' => out.push_str("#quot;"),
            '&' => out.push_str("#amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(direction: Direction, text: &str) -> TraceEvent {
        TraceEvent::new(direction, text)
    }

    #[test]
    fn kinds_and_one_way() {
        assert_eq!(ev(Direction::Sent, "Call 1 root.x()").kind, "Call");
        assert!(!ev(Direction::Sent, "Call 1 root.x()").is_one_way());
        assert!(ev(Direction::Sent, "Call 1 root.x() [one-way]").is_one_way());
        assert!(!ev(Direction::Received, "Return 1 = nil").is_one_way());
        assert!(ev(Direction::Sent, "Release #1v1x1").is_one_way());
        assert!(ev(Direction::Sent, "Cancel 3").is_one_way());
        // another wire's messages are part of an exchange
        assert!(!ev(Direction::Sent, "REQUEST 2 CALLATTR(x)").is_one_way());
        assert_eq!(ev(Direction::Sent, "Release #1v1x1").kind, "Release");
        assert_eq!(ev(Direction::Sent, "whatever").kind, "Message");
    }

    #[test]
    fn recorder_is_bounded() {
        let r = Recorder::new(2);
        for i in 0..5 {
            r.record(&ev(Direction::Sent, &format!("Cancel {i}")));
        }
        let texts: Vec<String> = r.events().into_iter().map(|e| e.text).collect();
        assert_eq!(texts, ["Cancel 3", "Cancel 4"]);
        assert_eq!(r.dropped(), 3);
        assert_eq!(r.take().len(), 2);
        assert!(r.events().is_empty());
        assert_eq!(r.dropped(), 0);
    }

    #[test]
    fn arrows_and_escapes() {
        let events = [
            ev(Direction::Sent, "Call 3 root.every(2, ref #1v1)"),
            ev(Direction::Received, "Call 1 #1v1(0)"),
            ev(Direction::Sent, "Return 1 = nil"),
            ev(Direction::Received, "Return 3 = \"a;b<c>&\""),
            ev(Direction::Received, "Release #1v1x1"),
        ];
        let text = mermaid(&events, "repl", "the lab (in-process)")
            .omitted(2)
            .to_string();
        let expected = "sequenceDiagram
    participant A as repl
    participant B as the lab (in-process)
    Note over A,B: 2 earlier messages not shown
    A->>B: Call 3 root.every(2, ref #35;1v1)
    B->>A: Call 1 #35;1v1(0)
    A-->>B: Return 1 = nil
    B-->>A: Return 3 = #quot;a#59;b#lt;c#gt;#amp;#quot;
    B-)A: Release #35;1v1x1
";
        assert_eq!(text, expected);
        assert_eq!(escape("a\nb"), "a b");
    }
}
