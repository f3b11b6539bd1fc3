//! Exceptions on RPyC's wire ("vinegar"): what a `MSG_EXCEPTION` carries, both ways.
//!
//! Python sends `((module, class), args, ((attr, value), …), traceback_text)`, or the int `1`
//! for `StopIteration`, or (legacy) a bare string. A Python exception becomes a
//! [`RemoteError`] whose `type_name` is the dotted class (`"builtins.ValueError"`), whose
//! message is Python's `str(exc)` of the args, and whose [`chain`](RemoteError::chain) holds
//! the traceback text. A netref error goes to Python as a builtin exception class chosen by
//! its [`ErrorKind`] (a hidden or unknown member is an `AttributeError`, so `hasattr` works),
//! with the error's text as its single argument.

use super::brine::Brine;
use crate::error::{Error, ErrorKind, RemoteError};

/// What `StopIteration` is on the wire.
const STOP_ITERATION: i64 = 1;

/// The prefix of the traceback entry in [`RemoteError::chain`].
pub(crate) const TRACEBACK_PREFIX: &str = "Python traceback:\n";

/// A decoded exception value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raised {
    /// `StopIteration` (the bare int 1).
    StopIteration,
    /// Any other exception.
    Exception(PyException),
}

/// One Python exception as it crossed the wire.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PyException {
    /// The class's module (`"builtins"`).
    pub(crate) module: String,
    /// The class's name (`"ValueError"`).
    pub(crate) name: String,
    /// `exc.args`, non-dumpable items already turned into their repr by the sender.
    pub(crate) args: Vec<Brine>,
    /// The exception's public attributes.
    pub(crate) attrs: Vec<(String, Brine)>,
    /// The formatted traceback (`"<traceback denied>"` when the sender withholds it).
    pub(crate) traceback: String,
}

impl Raised {
    /// Reads an exception value; anything that does not fit is described rather than lost.
    pub(crate) fn from_brine(v: Brine) -> Raised {
        match v {
            Brine::Int(STOP_ITERATION) => Raised::StopIteration,
            Brine::Str(s) => Raised::Exception(PyException {
                module: "builtins".into(),
                name: "Exception".into(),
                args: vec![Brine::Str(s)],
                attrs: Vec::new(),
                traceback: String::new(),
            }),
            Brine::Tuple(parts) if parts.len() == 4 => {
                let mut it = parts.into_iter();
                let (class, args, attrs, tb) = (it.next(), it.next(), it.next(), it.next());
                let (module, name) = match class.as_ref().and_then(Brine::as_tuple) {
                    Some([Brine::Str(m), Brine::Str(n)]) => (m.clone(), n.clone()),
                    _ => ("builtins".into(), "Exception".into()),
                };
                let args = args.and_then(Brine::into_tuple).unwrap_or_default();
                let attrs = attrs
                    .and_then(Brine::into_tuple)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|pair| match pair.into_tuple()?.as_slice() {
                        [Brine::Str(k), v] => Some((k.clone(), v.clone())),
                        _ => None,
                    })
                    .collect();
                let traceback = match tb {
                    Some(Brine::Str(s)) => s,
                    _ => String::new(),
                };
                Raised::Exception(PyException {
                    module,
                    name,
                    args,
                    attrs,
                    traceback,
                })
            }
            other => Raised::Exception(PyException {
                module: "builtins".into(),
                name: "Exception".into(),
                args: vec![Brine::Str(format!(
                    "malformed exception from the peer: {other}"
                ))],
                attrs: Vec::new(),
                traceback: String::new(),
            }),
        }
    }

    /// The error a caller sees.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Raised::StopIteration => Error::Remote(RemoteError {
                kind: ErrorKind::StopIteration,
                type_name: "builtins.StopIteration".into(),
                message: String::new(),
                chain: Vec::new(),
            }),
            Raised::Exception(e) => Error::Remote(e.into_remote()),
        }
    }
}

impl PyException {
    /// Python's `str(exc)`: empty for no args, the arg's `str` for one, the tuple's repr
    /// otherwise.
    pub(crate) fn message(&self) -> String {
        match self.args.as_slice() {
            [] => String::new(),
            [Brine::Str(s)] => s.clone(),
            [one] => one.to_string(),
            more => Brine::Tuple(more.to_vec()).to_string(),
        }
    }

    /// The dotted class name (`"builtins.KeyError"`).
    pub(crate) fn type_name(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }

    /// The [`RemoteError`] for this exception. The kind follows the class where one fits
    /// (`AttributeError` is a missing member, `TypeError` bad arguments, `TimeoutError` a
    /// timeout); everything else is `Failed`.
    pub(crate) fn into_remote(self) -> RemoteError {
        let kind = match (self.module.as_str(), self.name.as_str()) {
            ("builtins", "AttributeError") => ErrorKind::NoSuchMember,
            ("builtins", "TypeError") => ErrorKind::BadArguments,
            ("builtins", "TimeoutError") => ErrorKind::TimedOut,
            ("builtins", "StopIteration") => ErrorKind::StopIteration,
            _ => ErrorKind::Failed,
        };
        let mut chain = Vec::new();
        if !self.traceback.is_empty() {
            chain.push(format!("{TRACEBACK_PREFIX}{}", self.traceback));
        }
        RemoteError {
            kind,
            type_name: self.type_name(),
            message: self.message(),
            chain,
        }
    }

    /// The exception Python raises for netref error `e`: a builtin class chosen by kind,
    /// `e`'s text as its argument, and a traceback line naming netref and the call chain.
    pub(crate) fn from_error(e: &Error) -> PyException {
        let name = match e.kind() {
            ErrorKind::NoSuchMember => "AttributeError",
            ErrorKind::NoSuchObject => "KeyError",
            ErrorKind::WrongOperation | ErrorKind::BadArguments => "TypeError",
            ErrorKind::Value => "ValueError",
            ErrorKind::TimedOut => "TimeoutError",
            ErrorKind::Disconnected => "ConnectionError",
            _ => "RuntimeError",
        };
        let (message, chain) = match e {
            Error::Remote(r) => {
                let mut m = format!("{}: {}", r.kind, r.message);
                if !r.type_name.is_empty() {
                    m.push_str(&format!(" ({})", r.type_name));
                }
                (m, r.chain.clone())
            }
            other => (other.to_string(), Vec::new()),
        };
        let mut traceback = String::from("netref (Rust) raised:\n");
        for hop in &chain {
            traceback.push_str("  at ");
            traceback.push_str(hop);
            traceback.push('\n');
        }
        traceback.push_str(&format!("{name}: {message}\n"));
        PyException {
            module: "builtins".into(),
            name: name.into(),
            args: vec![Brine::Str(message)],
            attrs: vec![("_remote_version".into(), Brine::str("<version denied>"))],
            traceback,
        }
    }

    /// The wire value.
    pub(crate) fn to_brine(&self) -> Brine {
        Brine::Tuple(vec![
            Brine::Tuple(vec![
                Brine::str(self.module.as_str()),
                Brine::str(self.name.as_str()),
            ]),
            Brine::Tuple(self.args.clone()),
            Brine::Tuple(
                self.attrs
                    .iter()
                    .map(|(k, v)| Brine::Tuple(vec![Brine::str(k.as_str()), v.clone()]))
                    .collect(),
            ),
            Brine::str(self.traceback.as_str()),
        ])
    }
}

/// The wire value of `StopIteration`.
pub(crate) fn stop_iteration() -> Brine {
    Brine::Int(STOP_ITERATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_python_value_error_becomes_a_remote_error() {
        let v = Brine::Tuple(vec![
            Brine::Tuple(vec![Brine::str("builtins"), Brine::str("ValueError")]),
            Brine::Tuple(vec![Brine::str("boom"), Brine::Int(42)]),
            Brine::Tuple(vec![Brine::Tuple(vec![
                Brine::str("_remote_version"),
                Brine::str("6.0.2"),
            ])]),
            Brine::str("Traceback (most recent call last):\n  File \"x.py\"\nValueError"),
        ]);
        let e = Raised::from_brine(v).into_error();
        let r = e.as_remote().unwrap();
        assert_eq!(r.type_name, "builtins.ValueError");
        assert_eq!(r.message, "(\"boom\", 42)");
        assert_eq!(r.kind, ErrorKind::Failed);
        assert!(r.chain[0].contains("most recent call last"));
    }

    #[test]
    fn stop_iteration_and_legacy_strings() {
        assert_eq!(Raised::from_brine(Brine::Int(1)), Raised::StopIteration);
        let e = Raised::from_brine(Brine::str("old")).into_error();
        assert_eq!(e.as_remote().unwrap().message, "old");
        let e = Raised::from_brine(Brine::Int(7)).into_error();
        assert!(e.as_remote().unwrap().message.contains("malformed"));
    }

    #[test]
    fn netref_errors_get_python_classes() {
        let e = Error::remote(ErrorKind::NoSuchMember, "`Lab` has no exposed member `x`");
        let p = PyException::from_error(&e);
        assert_eq!(
            (p.module.as_str(), p.name.as_str()),
            ("builtins", "AttributeError")
        );
        let back = Raised::from_brine(p.to_brine());
        let Raised::Exception(back) = back else {
            panic!("not an exception")
        };
        assert_eq!(back, p);
        assert!(back.message().contains("no exposed member"));
        let p = PyException::from_error(&Error::bad_args("missing argument `a`"));
        assert_eq!(p.name, "TypeError");
    }
}
