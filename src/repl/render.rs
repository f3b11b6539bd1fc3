//! How the REPL shows values and errors.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rhai::{Dynamic, EvalAltResult, FnPtr, Map, ParseErrorType, Position};

use super::values::{Builtin, Named, Opaque, Remote};
use super::Inner;
use crate::error::{Error, ErrorKind};
use crate::protocol::fmt_id;
use crate::proxy::{Proxy, Target};
use crate::value::Value;

/// Why an input failed, when the failure is netref's rather than the language's.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    /// From netref: a remote error, a disconnection…
    Net(Arc<Error>),
    /// An operation that does not fit the value.
    Type(String),
    /// `quit()`: leave.
    Quit,
}

impl Failure {
    /// The error as one line, without the `error: ` of a block.
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::Net(e) => {
                let block = render_error(e);
                let first = block.lines().next().unwrap_or_default();
                first.strip_prefix("error: ").unwrap_or(first).to_owned()
            }
            Failure::Type(m) => format!("type error: {m}"),
            Failure::Quit => "quit".to_owned(),
        }
    }
}

impl From<Failure> for Box<EvalAltResult> {
    fn from(f: Failure) -> Self {
        EvalAltResult::ErrorRuntime(Dynamic::from(f), Position::NONE).into()
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
        Error::Limit { message, .. } => format!("{message} (on this side; nothing was sent)"),
        Error::Misuse(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The failure inside a script error, if it is one of ours.
pub(crate) fn failure_of(e: &EvalAltResult) -> Option<Failure> {
    match e.unwrap_inner() {
        EvalAltResult::ErrorRuntime(d, _) => d.clone().try_cast::<Failure>(),
        _ => None,
    }
}

/// A script error as the error a closure's caller receives.
pub(crate) fn as_remote_error(e: &EvalAltResult) -> Error {
    match failure_of(e) {
        Some(Failure::Net(n)) => match &*n {
            Error::Remote(r) => Error::Remote(r.clone()),
            other => Error::remote(other.kind(), strip_kind(other)),
        },
        _ => {
            let text = error_text(e, "");
            let message = text
                .strip_prefix("error: ")
                .unwrap_or(&text)
                .replace('\n', " ");
            Error::remote(ErrorKind::Failed, message)
        }
    }
}

/// Renders a failed input: one block, `error: …`, then details. `input` is the source, for
/// the caret under a syntax error; `file` names it when it is not a REPL input.
pub(crate) fn error_text(e: &EvalAltResult, input: &str) -> String {
    let inner = e.unwrap_inner();
    let mut s = match inner {
        EvalAltResult::ErrorRuntime(d, _) => match d.clone().try_cast::<Failure>() {
            Some(Failure::Net(n)) => render_error(&n),
            Some(Failure::Type(m)) => format!("error: type error: {m}"),
            Some(Failure::Quit) => "quit".to_owned(),
            None => format!("error: thrown: {}", plain(d)),
        },
        EvalAltResult::ErrorParsing(p, pos) => return syntax_error(p, *pos, input),
        EvalAltResult::ErrorVariableNotFound(name, _) => {
            format!("error: name error: no variable `{name}`; declare one with `let {name} = …`")
        }
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            format!("error: name error: no function {}", netref_types(sig))
        }
        EvalAltResult::ErrorTerminated(_, _) => "error: cancelled: cancelled (Ctrl-C)".to_owned(),
        EvalAltResult::ErrorMismatchDataType(want, got, _) => format!(
            "error: type error: expected {}, found {}",
            a_type(&netref_types(want)),
            a_type(&netref_types(got))
        ),
        other => {
            let mut text = other.to_string();
            if let Some(at) = text.rfind(" (line ") {
                text.truncate(at);
            }
            format!("error: {}", netref_types(&text))
        }
    };
    // Where it happened, inside functions first.
    let mut frames = Vec::new();
    let mut cur = e;
    while let EvalAltResult::ErrorInFunctionCall(name, _, next, pos) = cur {
        frames.push((name.clone(), *pos));
        cur = next;
    }
    let at = cur.position();
    if !at.is_none() && input.lines().nth(1).is_some() {
        let _ = write!(s, "\n  at line {}", at.line().unwrap_or(0));
    }
    for (name, pos) in frames {
        if !name.starts_with("anon$") {
            let _ = write!(
                s,
                "\n  in {name}(), called at line {}",
                pos.line().unwrap_or(0)
            );
        }
    }
    s
}

fn syntax_error(p: &ParseErrorType, pos: Position, input: &str) -> String {
    let mut s = format!("error: syntax error: {}", netref_types(&p.to_string()));
    if let Some(line_no) = pos.line() {
        if let Some(line) = input.lines().nth(line_no - 1) {
            let col = pos.position().unwrap_or(1).saturating_sub(1);
            if input.lines().nth(1).is_some() {
                let _ = write!(s, "\n  at line {line_no}");
            }
            let _ = write!(s, "\n  {line}\n  {}^", " ".repeat(col));
        }
    }
    s
}

/// True when `e` means the input stops short: more lines could complete it.
pub(crate) fn is_incomplete(p: &ParseErrorType, pos: Position, input: &str) -> bool {
    use rhai::LexError;
    match p {
        ParseErrorType::UnexpectedEOF => true,
        ParseErrorType::BadInput(LexError::UnterminatedString) => true,
        ParseErrorType::MissingToken(..) | ParseErrorType::MissingSymbol(..) => {
            let lines = input.trim_end().lines().count().max(1);
            pos.is_none()
                || pos.line().is_some_and(|l| l > lines)
                || (pos.line() == Some(lines)
                    && pos.position().unwrap_or(0)
                        > input
                            .trim_end()
                            .lines()
                            .last()
                            .map_or(0, |l| l.chars().count()))
        }
        _ => false,
    }
}

/// netref's names for Rhai's types in a message (whole words only).
fn netref_types(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(match word.as_str() {
            "i64" => "int",
            "f64" => "float",
            "string" | "ImmutableString" | "rhai::ImmutableString" => "str",
            "array" => "list",
            "Fn" => "closure",
            w => w.strip_suffix('$').unwrap_or(w),
        });
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '$' | ':') {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The type of a value, by netref's names.
pub(crate) fn type_name(d: &Dynamic) -> String {
    if d.is_unit() {
        "nil"
    } else if d.is_bool() {
        "bool"
    } else if d.is_int() {
        "int"
    } else if d.is_float() {
        "float"
    } else if d.is_string() || d.is_char() {
        "str"
    } else if d.is_blob() {
        "blob"
    } else if d.is_array() {
        "list"
    } else if d.is_map() {
        "map"
    } else if d.is_fnptr() {
        "closure"
    } else if d.is::<Remote>() {
        "object"
    } else if d.is::<Builtin>() {
        "built-in"
    } else if let Some(o) = d.clone().try_cast::<Opaque>() {
        return o.0.type_name().to_owned();
    } else if d.is::<Named>() {
        "named arguments"
    } else {
        return d.type_name().to_owned();
    }
    .to_owned()
}

/// `a list`, `an int`: a type name with its article.
pub(crate) fn a_type(t: &str) -> String {
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// A value with no quotes around a top-level string (for `print` and thrown values).
fn plain(d: &Dynamic) -> String {
    if d.is_string() {
        d.clone().into_string().unwrap_or_default()
    } else {
        format!("{d}")
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

/// The methods listed in a type's `help` text (member lines are indented by two spaces;
/// properties end with `property)`).
fn methods_from_help(help: &str) -> std::collections::HashSet<String> {
    help.lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter(|l| !l.trim_end().ends_with("property)"))
        .filter_map(|l| {
            let name = l.trim().split(['(', ':']).next()?.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

/// Reads a path. When the owner refuses because a segment is a plain value (a property
/// holding a map: `root.stats.processed`), reads the shorter path and looks the rest up here.
pub(crate) fn get_path(p: Proxy) -> BoxFuture<'static, crate::Result<Value>> {
    Box::pin(async move {
        let err = match p.get().await {
            Err(e) if e.kind() == ErrorKind::WrongOperation && p.path().len() >= 2 => e,
            other => return other,
        };
        let Some((last, init)) = p.path().split_last() else {
            return Err(err);
        };
        let mut parent = p.clone();
        parent.path = init.to_vec().into();
        match get_path(parent).await {
            Ok(Value::Map(entries)) => entries
                .into_iter()
                .find(|(k, _)| k.as_str() == Some(last))
                .map(|(_, v)| v)
                .ok_or(err),
            Ok(Value::Ref(obj)) => obj.attr(last.as_str()).get().await,
            _ => Err(err),
        }
    })
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
        self.methods
            .lock()
            .entry(name.clone())
            .or_insert_with(|| Arc::new(methods_from_help(&help)));
        Some(name)
    }

    /// Renders a value after learning the types of the objects in it (blocking: for the
    /// evaluating thread). `quote` quotes a top-level string.
    pub(crate) fn render_dynamic(&self, d: &Dynamic, quote: bool) -> String {
        let mut refs = Vec::new();
        collect_refs(d, &mut refs, 32);
        if !refs.is_empty() {
            let _ = self.block(async {
                for p in &refs {
                    self.type_of(p).await;
                }
                Ok(())
            });
        }
        let mut s = String::new();
        self.render_into(d, quote, &mut s);
        s
    }

    /// Renders a netref value after learning its objects' types (async: `:tables`).
    pub(crate) async fn render_value(&self, v: &Value) -> String {
        if let Value::Ref(p) = v {
            self.type_of(p).await;
        }
        let d = super::values::to_dynamic(v.clone(), self.epoch());
        let mut s = String::new();
        self.render_into(&d, true, &mut s);
        s
    }

    fn render_into(&self, d: &Dynamic, quote: bool, s: &mut String) {
        if d.is_string() && !quote {
            s.push_str(&d.clone().into_string().unwrap_or_default());
        } else if d.is_string() {
            let _ = write!(s, "{:?}", d.clone().into_string().unwrap_or_default());
        } else if d.is_unit() {
            s.push_str("()");
        } else if d.is_blob() {
            let _ = write!(s, "{}", Value::Bytes(d.clone().cast::<rhai::Blob>()));
        } else if d.is_array() {
            let items = d
                .read_lock::<rhai::Array>()
                .map(|a| a.clone())
                .unwrap_or_default();
            s.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                self.render_into(item, true, s);
            }
            s.push(']');
        } else if d.is_map() {
            let map = d.read_lock::<Map>().map(|m| m.clone()).unwrap_or_default();
            s.push_str("#{");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{:?}: ", k.as_str());
                self.render_into(v, true, s);
            }
            s.push('}');
        } else if let Some(r) = d.clone().try_cast::<Remote>() {
            s.push_str(&self.render_ref(&r));
        } else if let Some(f) = d.clone().try_cast::<FnPtr>() {
            if f.fn_name().starts_with("anon$") {
                s.push_str("<closure>");
            } else {
                let _ = write!(s, "Fn({})", f.fn_name());
            }
        } else if let Some(b) = d.clone().try_cast::<Builtin>() {
            let _ = write!(s, "<built-in {}>", b.0);
        } else if let Some(o) = d.clone().try_cast::<Opaque>() {
            let _ = write!(s, "{}", o.0);
        } else {
            let _ = write!(s, "{d}");
        }
    }

    fn render_ref(&self, r: &Remote) -> String {
        let p = &r.proxy;
        if let Some(obj) = p.local_object() {
            return format!("<local {}>", obj.type_info().name);
        }
        let known = object_key(p).and_then(|k| self.types.lock().get(&k).cloned());
        let lost = if r.epoch == self.epoch() {
            ""
        } else {
            ", lost"
        };
        match (&p.target, known) {
            (Target::Root(_), Some(t)) if p.path().is_empty() => format!("<root {t}{lost}>"),
            (Target::Remote(i), Some(t)) if p.path().is_empty() => {
                format!("<{t} {}{lost}>", fmt_id(i.id))
            }
            (Target::Remote(i), None) if p.path().is_empty() => {
                format!("<ref {}{lost}>", fmt_id(i.id))
            }
            _ => p.to_string(),
        }
    }
}

fn collect_refs(d: &Dynamic, out: &mut Vec<Proxy>, max: usize) {
    if out.len() >= max {
        return;
    }
    if let Some(r) = d.clone().try_cast::<Remote>() {
        if r.proxy.path().is_empty() && !r.proxy.is_local() {
            out.push(r.proxy);
        }
    } else if d.is_array() {
        if let Some(items) = d.read_lock::<rhai::Array>() {
            items.iter().for_each(|i| collect_refs(i, out, max));
        }
    } else if d.is_map() {
        if let Some(map) = d.read_lock::<Map>() {
            map.values().for_each(|v| collect_refs(v, out, max));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RemoteError;

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
        let methods = methods_from_help(
            "Counter - A counter.\n  inc() -> i64\n      Adds step.\n  value: i64  (read-only property)",
        );
        assert_eq!(methods.into_iter().collect::<Vec<_>>(), ["inc"]);
    }

    #[test]
    fn articles() {
        assert_eq!(a_type("int"), "an int");
        assert_eq!(a_type("list"), "a list");
        assert_eq!(a_type("object"), "an object");
    }
}
