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

use std::fmt;
use std::sync::Arc;

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
