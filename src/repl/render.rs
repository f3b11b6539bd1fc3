//! How the REPL shows values and errors.

use std::fmt::Write as _;
use std::time::Duration;

use super::syntax::SyntaxError;
use super::Inner;
use crate::error::Error;
use crate::protocol::fmt_id;
use crate::proxy::{Proxy, Target};
use crate::value::Value;

/// Why an input failed.
pub(crate) enum Failure {
    /// From netref: a remote error, a disconnection…
    Net(Error),
    /// An unknown variable or key.
    Name(String),
    /// An operation that does not fit the value.
    Type(String),
    /// The input does not parse.
    Syntax(SyntaxError),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Net(e)
    }
}

/// Renders a netref error as one readable block: `error: KIND: MESSAGE`, then the error's
/// type and the remote call chain (innermost hop first), one per line.
///
/// ```
/// use netref::{Error, ErrorKind};
/// let e = Error::remote(ErrorKind::NoSuchMember, "`Lab` has no exposed member `x`");
/// assert_eq!(
///     netref::repl::render_error(&e),
///     "error: no such member: `Lab` has no exposed member `x`"
/// );
/// ```
pub fn render_error(e: &Error) -> String {
    match e {
        Error::Remote(r) => {
            let mut s = format!("error: {}: {}", r.kind, r.message);
            if !r.type_name.is_empty() {
                let _ = write!(s, "\n  type: {}", r.type_name);
            }
            for hop in &r.chain {
                let _ = write!(s, "\n  at: {hop}");
            }
            s
        }
        other => format!("error: {}: {}", other.kind(), strip_kind(other)),
    }
}

/// The message of a local error without the kind its `Display` starts with.
fn strip_kind(e: &Error) -> String {
    match e {
        Error::Disconnected(m) | Error::Protocol(m) | Error::Value(m) => m.clone(),
        Error::Auth(m) => format!("authentication failed: {m}"),
        other => other.to_string(),
    }
}

/// Renders a failure of `input`.
pub(crate) fn failure(f: &Failure, input: &str) -> String {
    match f {
        Failure::Net(e) => render_error(e),
        Failure::Name(m) => format!("error: name error: {m}"),
        Failure::Type(m) => format!("error: type error: {m}"),
        Failure::Syntax(e) => {
            // Show the offending line with a caret under the position.
            let pos = e.pos.min(input.len());
            let line_start = input[..pos].rfind('\n').map_or(0, |i| i + 1);
            let line_end = input[pos..].find('\n').map_or(input.len(), |i| pos + i);
            let line = &input[line_start..line_end];
            let col = input[line_start..pos].chars().count();
            format!(
                "error: syntax error: {}\n  {line}\n  {}^",
                e.message,
                " ".repeat(col)
            )
        }
    }
}

/// The key the type cache uses for a proxy's object (path-less proxies only).
pub(crate) fn object_key(p: &Proxy) -> Option<String> {
    if !p.path().is_empty() {
        return None;
    }
    match &p.target {
        Target::Remote(i) => Some(fmt_id(i.id)),
        Target::Root(_) => Some("root".to_owned()),
        _ => None,
    }
}

/// The type name in a `help` text: its first word.
pub(crate) fn type_from_help(help: &str) -> Option<String> {
    let first = help.lines().next()?;
    let name = first.split(" - ").next()?.trim();
    (!name.is_empty() && !name.contains(['(', ':', ' '])).then(|| name.to_owned())
}

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

impl Inner {
    /// The type name of the object `p` names (its path must be empty), from the cache or
    /// a `help` call.
    pub(crate) async fn type_of(&self, p: &Proxy) -> Option<String> {
        if let Some(obj) = p.local_object() {
            return Some(obj.type_info().name.to_owned());
        }
        let key = object_key(p)?;
        if let Some(t) = self.types.lock().get(&key) {
            return Some(t.clone());
        }
        let _mute = self.mute();
        let help = tokio::time::timeout(LOOKUP_TIMEOUT, p.help())
            .await
            .ok()?
            .ok()?;
        let name = type_from_help(&help)?;
        self.types.lock().insert(key, name.clone());
        Some(name)
    }

    /// Shows a result, after learning the types of the objects in it.
    pub(crate) async fn show(&self, v: &Value) {
        let text = self.render_full(v).await;
        self.print(&text);
    }

    /// Renders a value after learning the types of the objects in it.
    pub(crate) async fn render_full(&self, v: &Value) -> String {
        let mut refs = Vec::new();
        collect_refs(v, &mut refs, 32);
        for p in refs {
            self.type_of(&p).await;
        }
        self.render(v, true)
    }

    /// Renders with the types known so far (no calls): for callbacks such as `print`.
    pub(crate) fn render_plain(&self, v: &Value) -> String {
        self.render(v, false)
    }

    fn render(&self, v: &Value, quote_top: bool) -> String {
        let mut s = String::new();
        self.render_into(v, quote_top, &mut s);
        s
    }

    fn render_into(&self, v: &Value, quote: bool, s: &mut String) {
        match v {
            Value::Str(text) if !quote => s.push_str(text),
            Value::List(items) => {
                s.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    self.render_into(item, true, s);
                }
                s.push(']');
            }
            Value::Map(entries) => {
                s.push('{');
                for (i, (k, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    self.render_into(k, true, s);
                    s.push_str(": ");
                    self.render_into(item, true, s);
                }
                s.push('}');
            }
            Value::Ref(p) => s.push_str(&self.render_ref(p)),
            other => {
                let _ = write!(s, "{other}");
            }
        }
    }

    fn render_ref(&self, p: &Proxy) -> String {
        if let Some(obj) = p.local_object() {
            return format!("<local {}>", obj.type_info().name);
        }
        let known = object_key(p).and_then(|k| self.types.lock().get(&k).cloned());
        match (&p.target, known) {
            (Target::Root(_), Some(t)) if p.path().is_empty() => format!("<root {t}>"),
            (Target::Remote(i), Some(t)) if p.path().is_empty() => {
                format!("<{t} {}>", fmt_id(i.id))
            }
            (Target::Remote(i), None) if p.path().is_empty() => format!("<ref {}>", fmt_id(i.id)),
            _ => p.to_string(),
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<Proxy>, max: usize) {
    if out.len() >= max {
        return;
    }
    match v {
        Value::Ref(p) => out.push(p.clone()),
        Value::List(items) => items.iter().for_each(|i| collect_refs(i, out, max)),
        Value::Map(entries) => entries.iter().for_each(|(k, v)| {
            collect_refs(k, out, max);
            collect_refs(v, out, max);
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, RemoteError};

    #[test]
    fn error_blocks() {
        let e = Error::Remote(RemoteError {
            kind: ErrorKind::Failed,
            type_name: "netref::lab::LabError".into(),
            message: "boom".into(),
            chain: vec!["memory/first: root.fail".into()],
        });
        assert_eq!(
            render_error(&e),
            "error: failed: boom\n  type: netref::lab::LabError\n  at: memory/first: root.fail"
        );
        let s = failure(
            &Failure::Syntax(SyntaxError {
                message: "expected an expression".into(),
                pos: 11,
                incomplete: false,
            }),
            "root.add(1,,2)",
        );
        assert_eq!(
            s,
            "error: syntax error: expected an expression\n  root.add(1,,2)\n             ^"
        );
    }

    #[test]
    fn types_from_help() {
        assert_eq!(
            type_from_help("Counter - A counter.\n  inc() -> i64"),
            Some("Counter".into())
        );
        assert_eq!(type_from_help("Lab"), Some("Lab".into()));
        assert_eq!(type_from_help("inc() -> i64"), None);
        assert_eq!(type_from_help("value: i64  (read-only property)"), None);
    }
}
