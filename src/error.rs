//! Errors: the local [`Error`], the serializable [`RemoteError`] that crosses the wire, and
//! the [`ErrorKind`] that tells a caller how to react.
//!
//! # Usage
//!
//! Every fallible netref operation returns [`Result<T>`](crate::Result). A failure that
//! happened on the peer arrives as [`Error::Remote`], carrying a [`RemoteError`] whose
//! [`kind`](RemoteError::kind) is the thing to match on. Classifiers such as
//! [`Error::is_disconnected`] and [`Error::kind`] cover the common checks:
//!
//! ```
//! use netref::{Error, ErrorKind};
//! let e = Error::remote(ErrorKind::NoSuchMember, "no member `secret` on `Vault`");
//! assert_eq!(e.kind(), ErrorKind::NoSuchMember);
//! assert!(!e.is_disconnected());
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, in terms a caller can act on.
///
/// The kind travels on the wire, so it is stable and `#[non_exhaustive]`: match with a
/// wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The target id names no live object (never lent, already released, stale or forged).
    NoSuchObject,
    /// The member does not exist or is not exposed; the two are deliberately
    /// indistinguishable so a peer cannot probe for hidden members.
    NoSuchMember,
    /// The operation does not fit the member (calling a property, setting a read-only
    /// property, reading a method).
    WrongOperation,
    /// The arguments did not match the member's signature.
    BadArguments,
    /// The handler returned an error.
    Failed,
    /// The handler panicked; the panic was caught and the connection goes on.
    Panicked,
    /// The peer refused the call because it is over a configured limit.
    Overloaded,
    /// The call was cancelled.
    Cancelled,
    /// The call's deadline passed.
    TimedOut,
    /// The connection is closed or was lost.
    Disconnected,
    /// The peer broke the protocol (malformed frame, bad message, broken limit).
    Protocol,
    /// A value could not be converted to or from its typed form.
    Value,
    /// An iterator's `next` was called after its last item: the end of the sequence, told
    /// apart from every item (nil included). Not a failure; see [`Error::stop_iteration`].
    StopIteration,
}

impl ErrorKind {
    /// A short lowercase name for display (`"no such member"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NoSuchObject => "no such object",
            ErrorKind::NoSuchMember => "no such member",
            ErrorKind::WrongOperation => "wrong operation",
            ErrorKind::BadArguments => "bad arguments",
            ErrorKind::Failed => "failed",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Value => "value error",
            ErrorKind::StopIteration => "stop iteration",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure reported by the peer, in the form that crosses the wire.
///
/// `chain` lists the hops the error travelled through, innermost first: each connection
/// that forwards a call for a third party adds one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The Rust type name of the error value the handler returned (empty when none).
    pub type_name: String,
    /// The error message.
    pub message: String,
    /// The call chain across hops, innermost first (for example `"Lab.files.open"`).
    pub chain: Vec<String>,
}

impl RemoteError {
    /// A remote error of `kind` with `message` and no type name or chain.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RemoteError {
            kind,
            type_name: String::new(),
            message: message.into(),
            chain: Vec::new(),
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if !self.type_name.is_empty() {
            write!(f, " ({})", self.type_name)?;
        }
        if !self.chain.is_empty() {
            write!(f, " [at {}]", self.chain.join(" <- "))?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteError {}

/// The error type of every netref operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operation failed on the peer, or was refused by the exposure gate.
    #[error("remote {0}")]
    Remote(RemoteError),
    /// The connection is closed or was lost.
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// An I/O error on the transport.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the protocol, or a frame could not be encoded.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A value could not be converted to or from its typed form.
    #[error("value error: {0}")]
    Value(String),
    /// A typed proxy was asked for an object of another type
    /// ([`Proxy::typed`](crate::Proxy::typed)). Its [`ErrorKind`] is `Value`.
    #[error(
        "typed proxy `{proxy}` needs an object of type `{expected}`, but the object is a `{found}`"
    )]
    TypeMismatch {
        /// The typed proxy's name (`LabProxy`).
        proxy: &'static str,
        /// The type it serves (`Lab`).
        expected: &'static str,
        /// The type the owner reported.
        found: String,
    },
    /// The handshake's shared-secret authentication failed (wrong or missing secret, a
    /// replayed or reflected handshake). Its [`ErrorKind`] is `Protocol`.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A limit checked on this side refused a message before it was sent: a message over
    /// the peer's frame limit, a value nested deeper than the peer accepts, more objects
    /// lent at once than [`Config::max_exports`](crate::Config::max_exports) allows. Nothing
    /// reached the peer. `kind` says how to react (`Value` or `Overloaded`); a handler whose
    /// result is refused this way answers its caller with a remote error of that kind.
    #[error("{kind} on this side: {message}")]
    Limit {
        /// `Value` for a message or value too large for the peer, `Overloaded` for the
        /// export limit.
        kind: ErrorKind,
        /// What was over which limit.
        message: String,
    },
    /// The API was used in a way it does not allow: a [`Call`](crate::Call) polled again
    /// after it completed, or pipelined after it was awaited. A bug in the calling code,
    /// not a failure of the call; nothing was sent. Its [`ErrorKind`] is `Value`.
    #[error("misuse: {0}")]
    Misuse(String),
    /// The peer cannot take what was about to be sent: its hello does not announce the
    /// feature (a stream to a peer without streams, a one-way or pipelined call to a peer
    /// without them). Nothing was sent, and the connection goes on. Its [`ErrorKind`] is
    /// `WrongOperation`.
    #[error("not supported by the peer: {0}")]
    Unsupported(String),
}

impl Error {
    /// A [`Error::Remote`] of `kind` with `message`.
    pub fn remote(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Remote(RemoteError::new(kind, message))
    }

    /// The kind of this error, as the peer would see it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Remote(r) => r.kind,
            Error::Disconnected(_) | Error::Io(_) => ErrorKind::Disconnected,
            Error::Protocol(_) | Error::Auth(_) => ErrorKind::Protocol,
            Error::Value(_) | Error::TypeMismatch { .. } | Error::Misuse(_) => ErrorKind::Value,
            Error::Unsupported(_) => ErrorKind::WrongOperation,
            Error::Limit { kind, .. } => *kind,
        }
    }

    /// True when the connection is closed or lost (locally or as reported by the peer).
    pub fn is_disconnected(&self) -> bool {
        self.kind() == ErrorKind::Disconnected
    }

    /// True when the target object does not exist (stale, released or forged id).
    pub fn is_no_such_object(&self) -> bool {
        self.kind() == ErrorKind::NoSuchObject
    }

    /// True when the member is unknown or not exposed.
    pub fn is_no_such_member(&self) -> bool {
        self.kind() == ErrorKind::NoSuchMember
    }

    /// The end of an iteration: what an iterator's exposed `next` returns after its last item
    /// (kind [`ErrorKind::StopIteration`]), so that the end cannot be mistaken for an item.
    /// Return it from your own `next` to end the same way.
    ///
    /// ```
    /// let end = netref::Error::stop_iteration();
    /// assert!(end.is_stop_iteration());
    /// assert_eq!(end.kind(), netref::ErrorKind::StopIteration);
    /// ```
    pub fn stop_iteration() -> Self {
        Error::remote(ErrorKind::StopIteration, "the iterator is exhausted")
    }

    /// True when this error is the end of an iteration ([`Error::stop_iteration`]).
    pub fn is_stop_iteration(&self) -> bool {
        self.kind() == ErrorKind::StopIteration
    }

    /// A [`Error::Limit`] of `kind` with `message`.
    pub(crate) fn limit(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Limit {
            kind,
            message: message.into(),
        }
    }

    /// The remote error, if this error came from the peer or the gate.
    pub fn as_remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(r) => Some(r),
            _ => None,
        }
    }

    /// Converts this error into the form that crosses the wire.
    pub fn into_remote(self) -> RemoteError {
        match self {
            Error::Remote(r) => r,
            Error::Limit { kind, message } => RemoteError::new(kind, message),
            other => RemoteError::new(other.kind(), other.to_string()),
        }
    }

    pub(crate) fn disconnected() -> Self {
        Error::Disconnected("connection closed".into())
    }

    /// The error for a caught panic, with the panic's message when it has one.
    pub(crate) fn panicked(payload: Box<dyn std::any::Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "handler panicked".to_owned()
        };
        Error::remote(ErrorKind::Panicked, message)
    }

    pub(crate) fn bad_args(message: impl Into<String>) -> Self {
        Error::remote(ErrorKind::BadArguments, message)
    }
}

impl From<RemoteError> for Error {
    fn from(r: RemoteError) -> Self {
        Error::Remote(r)
    }
}

/// `Result<T, netref::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
