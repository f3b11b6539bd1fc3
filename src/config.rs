//! Per-connection configuration and limits.

use std::time::Duration;

/// Settings and limits of one connection. Every limit has a documented default.
///
/// ```
/// let cfg = netref::Config::default();
/// assert_eq!(cfg.max_frame, 16 * 1024 * 1024);
/// assert_eq!(cfg.max_depth, 64);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame accepted from the peer, in bytes. Default 16 MiB.
    pub max_frame: usize,
    /// Deepest value nesting accepted from the peer. Default 64.
    pub max_depth: usize,
    /// Time allowed for the hello exchange. Default 10 s.
    pub handshake_timeout: Duration,
    /// Default deadline of every call. Default 30 s.
    pub call_timeout: Duration,
    /// Frames queued for the writer task before senders wait. Default 1024.
    pub send_queue: usize,
    /// A label for traces and errors (default: the peer address, or `"memory"`).
    pub label: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame: 16 * 1024 * 1024,
            max_depth: 64,
            handshake_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            send_queue: 1024,
            label: None,
        }
    }
}

impl Config {
    /// Sets [`Config::label`].
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets [`Config::call_timeout`].
    pub fn with_call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }

    /// Sets [`Config::max_frame`].
    pub fn with_max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Sets [`Config::max_depth`].
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }
}
