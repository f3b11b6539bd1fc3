//! `netref call TARGET PATH [ARG...]`: one call, its result as JSON on stdout.
//!
//! `PATH = VALUE` (or `--set`) sets a property instead. An ARG `name=VALUE` is a named
//! argument. Each value is JSON when it parses as JSON, else the text itself; with `--json`
//! it must be JSON. An integer that does not fit in 64 bits is refused, not rounded.
//!
//! Exit status: 0 on success, 1 when the call failed on the peer (the error goes to
//! stderr), 2 when the connection could not be made or was lost, or the arguments are bad.

use std::process::ExitCode;

use netref::{Args as CallArgs, ErrorKind, Proxy, Value};

use crate::target::{self, ConnectOpts};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to connect: HOST[:PORT] (port 18861 by default), tcp://HOST:PORT, unix:PATH,
    /// cmd:COMMAND, a command speaking netref on its stdio (a TARGET with a space is one too),
    /// rpyc://HOST[:PORT] (rpycs:// for TLS), a Python RPyC server, or
    /// nats://HOST:PORT/SERVICE, an instance found in the NATS registry.
    target: String,
    /// What to call, from the root: `add`, `counter.inc`, `kv.get`. A property (`counter.value`)
    /// is read when no ARG is given; `counter.step = 5` sets one.
    path: String,
    /// Arguments: `VALUE` is positional, `name=VALUE` named. A VALUE is parsed as JSON (`1`,
    /// `"s"`, `[1,2]`, `{"a":1}`), else taken as a string (`'"a=b"'` is the string `a=b`).
    /// Negative numbers work as they are; put other arguments starting with `-` after `--`.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// Every VALUE must be JSON: text that does not parse is an error, not a string.
    #[arg(long)]
    json: bool,
    /// Set the property PATH to the one ARG (the same as `PATH = VALUE`).
    #[arg(long)]
    set: bool,
    #[command(flatten)]
    connect: ConnectOpts,
}

const REMOTE_ERROR: u8 = 1;
const CONNECTION_ERROR: u8 = 2;

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Request {
    /// Call PATH (or read it, with no arguments).
    Call(Vec<Value>, Vec<(String, Value)>),
    /// Set the property PATH.
    Set(Value),
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let target = match target::parse(&args.target) {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    let (path, request) = match request(&args) {
        Ok(x) => x,
        Err(e) => return usage(&e),
    };
    let attached = match Attached::connect(&target, &args.connect).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netref call: cannot connect to {target}: {e}");
            return ExitCode::from(CONNECTION_ERROR);
        }
    };
    let proxy = attached.root.path_to(path.split('.'));
    let result = match request {
        Request::Call(positional, named) => call_or_get(&proxy, positional, named).await,
        Request::Set(value) => proxy.set(value).await.map(|()| Value::Nil),
    };
    let code = match result {
        Ok(value) => {
            let json = to_json(&value, &type_names(&value).await);
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", netref::repl::render_error(&e));
            if e.is_disconnected() {
                ExitCode::from(CONNECTION_ERROR)
            } else {
                ExitCode::from(REMOTE_ERROR)
            }
        }
    };
    attached.close().await;
    code
}

/// The root of a netref peer or of a Python RPyC server, and how to close its connection.
struct Attached {
    root: Proxy,
    conn: Conn,
}

enum Conn {
    Netref(Box<target::Attached>),
    Rpyc(netref::rpyc::Connection),
}

impl Attached {
    async fn connect(target: &target::Target, opts: &ConnectOpts) -> netref::Result<Attached> {
        if let target::Target::Rpyc { addr, tls } = target {
            let conn = target::connect_rpyc(addr, *tls, opts).await?;
            return Ok(Attached {
                root: conn.root().await?,
                conn: Conn::Rpyc(conn),
            });
        }
        let attached = target::connect(target, opts).await?;
        Ok(Attached {
            root: attached.conn.root(),
            conn: Conn::Netref(Box::new(attached)),
        })
    }

    async fn close(self) {
        drop(self.root);
        match self.conn {
            Conn::Netref(a) => a.close().await,
            Conn::Rpyc(c) => c.close().await,
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("netref call: {message}");
    ExitCode::from(CONNECTION_ERROR)
}

/// The path (checked) and what to do with it, from PATH, the ARGs and `--set`.
fn request(args: &Args) -> Result<(String, Request), String> {
    let mut words: Vec<&str> = args.args.iter().map(String::as_str).collect();
    // `PATH=VALUE` in one word, as `PATH = VALUE`.
    let (path, inline) = match args.path.split_once('=') {
        Some((path, value)) => (path.trim_end(), Some(value.trim_start())),
        None => (args.path.as_str(), None),
    };
    if path.split('.').any(str::is_empty) {
        return Err(format!(
            "bad PATH {:?}: use names separated by dots",
            args.path
        ));
    }
    let set = match (inline, words.first()) {
        (Some(value), _) => {
            if !value.is_empty() {
                words.insert(0, value);
            }
            true
        }
        (None, Some(&"=")) => {
            words.remove(0);
            true
        }
        _ => false,
    };
    if set || args.set {
        let [value] = words[..] else {
            return Err(format!(
                "setting {path} takes one VALUE, not {}",
                words.len()
            ));
        };
        return Ok((
            path.to_owned(),
            Request::Set(parse_value(value, args.json, 1)?),
        ));
    }
    let mut positional = Vec::new();
    let mut named = Vec::new();
    for (i, word) in words.iter().enumerate() {
        match split_named(word) {
            Some((name, value)) => {
                named.push((name.to_owned(), parse_value(value, args.json, i + 1)?));
            }
            None => positional.push(parse_value(word, args.json, i + 1)?),
        }
    }
    Ok((path.to_owned(), Request::Call(positional, named)))
}

/// `name=VALUE` with `name` an identifier: a named argument.
fn split_named(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ident.then_some((name, value))
}

/// Calls the path; with no arguments, a path naming a property is read instead.
async fn call_or_get(
    proxy: &Proxy,
    positional: Vec<Value>,
    named: Vec<(String, Value)>,
) -> netref::Result<Value> {
    let no_args = positional.is_empty() && named.is_empty();
    // A Python attribute that is not callable raises TypeError ("… is not callable").
    let not_callable = |e: &netref::Error| {
        e.kind() == ErrorKind::WrongOperation
            || e.as_remote().is_some_and(|r| {
                r.type_name == "builtins.TypeError" && r.message.ends_with("is not callable")
            })
    };
    match proxy.call(CallArgs::from_parts(positional, named)).await {
        Err(e) if no_args && not_callable(&e) => match proxy.get().await {
            Ok(v) => Ok(v),
            // Neither callable nor readable: the call's error says more.
            Err(_) => Err(e),
        },
        other => other,
    }
}

/// The value of ARG number `n`: JSON when it parses (always, with `strict`), else the text.
fn parse_value(text: &str, strict: bool, n: usize) -> Result<Value, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(json) => {
            check_integers(text).map_err(|e| format!("argument {n}: {e}"))?;
            netref::to_value(&json).map_err(|e| format!("argument {n}: {e}"))
        }
        Err(e) if strict => Err(format!("argument {n} is not JSON ({e}): {text}")),
        Err(_) => Ok(Value::from(text)),
    }
}

/// Refuses integer literals outside i64 and u64 in (valid) JSON text, which serde_json
/// would otherwise turn into rounded floats.
fn check_integers(json: &str) -> Result<(), String> {
    let mut chars = json.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '"' => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '-' | '0'..='9' => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, c)) = chars.peek() {
                    if !matches!(c, '0'..='9' | '.' | 'e' | 'E' | '+' | '-') {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                let number = &json[start..end];
                let integer = !number.contains(['.', 'e', 'E']);
                if integer && number.parse::<i64>().is_err() && number.parse::<u64>().is_err() {
                    return Err(format!(
                        "the integer {number} does not fit in 64 bits (write it as a string, or \
                         as a float such as {number}.0)"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The types of the objects in `v`, by remote id, asked with `help`.
async fn type_names(v: &Value) -> Vec<(u64, String)> {
    let mut refs = Vec::new();
    collect(v, &mut refs);
    let mut out = Vec::new();
    for p in refs.into_iter().take(32) {
        if is_python(&p) {
            continue; // named by its id_pack already
        }
        if let (Some(id), Ok(help)) = (p.remote_id(), p.help().await) {
            if let Some(name) = help.lines().next().and_then(|l| l.split(" - ").next()) {
                out.push((id, name.trim().to_owned()));
            }
        }
    }
    out
}

fn collect(v: &Value, out: &mut Vec<Proxy>) {
    match v {
        Value::Ref(p) => out.push(p.clone()),
        Value::List(items) => items.iter().for_each(|i| collect(i, out)),
        Value::Map(entries) => entries.iter().for_each(|(k, v)| {
            collect(k, out);
            collect(v, out);
        }),
        _ => {}
    }
}

/// JSON for a value: bytes as a list of numbers, non-string map keys as their text, an
/// object as `{"$ref": "Type #id"}`.
fn to_json(v: &Value, types: &[(u64, String)]) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::UInt(u) => J::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) => J::String(s.clone()),
        Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
        Value::List(items) => J::Array(items.iter().map(|i| to_json(i, types)).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Str(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, to_json(v, types))
                })
                .collect(),
        ),
        Value::Ref(p) => {
            let text = match p.remote_id().filter(|_| !is_python(p)) {
                Some(id) => match types.iter().find(|(i, _)| *i == id) {
                    Some((_, t)) => format!("{t} {}", fmt_id(id)),
                    None => fmt_id(id),
                },
                None => p.to_string(),
            };
            let mut m = serde_json::Map::new();
            m.insert("$ref".into(), J::String(text));
            J::Object(m)
        }
    }
}

/// True for a proxy of a Python object (RPyC's wire), which shows as `<python os 0x…>`.
fn is_python(p: &Proxy) -> bool {
    p.to_string().starts_with("<python ")
}

/// An object id as traces show it: slot and generation (`#3v1`).
fn fmt_id(id: u64) -> String {
    format!("#{}v{}", id & 0xffff_ffff, id >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Value {
        parse_value(text, false, 1).expect("a value")
    }

    #[test]
    fn args_are_json_or_text() {
        assert_eq!(value("1"), Value::Int(1));
        assert_eq!(value("\"1\""), Value::from("1"));
        assert_eq!(value("hello"), Value::from("hello"));
        assert_eq!(value("[1, true]"), Value::List(vec![1.into(), true.into()]));
        assert_eq!(value("-2.5"), Value::Float(-2.5));
        assert_eq!(value("null"), Value::Nil);
        assert_eq!(value("18446744073709551615"), Value::UInt(u64::MAX));
        assert_eq!(value("-9223372036854775808"), Value::Int(i64::MIN));
        assert!(parse_value("{", true, 1).is_err());
        assert!(parse_value("hello", true, 1).is_err());
    }

    #[test]
    fn integers_beyond_64_bits_are_refused() {
        for text in [
            "18446744073709551616",
            "-9223372036854775809",
            "[1, 100000000000000000000]",
            "{\"a\": {\"b\": -100000000000000000000}}",
        ] {
            let err = parse_value(text, false, 2).unwrap_err();
            assert!(err.contains("does not fit in 64 bits"), "{text}: {err}");
        }
        // Inside strings, or written as floats, they are fine.
        assert_eq!(
            value("\"100000000000000000000\""),
            Value::from("100000000000000000000")
        );
        assert_eq!(value("1e20"), Value::Float(1e20));
        assert_eq!(
            value("[\"\\\"1\", 1.5E+3]"),
            Value::List(vec!["\"1".into(), 1500.0.into()])
        );
    }

    fn parsed(words: &[&str], json: bool, set: bool) -> Result<(String, Request), String> {
        let args = Args {
            target: "t".into(),
            path: words[0].into(),
            args: words[1..].iter().map(|w| (*w).to_owned()).collect(),
            json,
            set,
            connect: ConnectOpts::default(),
        };
        request(&args)
    }

    #[test]
    fn requests() {
        let call = |p: Vec<Value>, n: Vec<(&str, Value)>| {
            Request::Call(p, n.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        };
        assert_eq!(
            parsed(&["kv.get", "k", "default=0", "x=y=z"], false, false),
            Ok((
                "kv.get".into(),
                call(
                    vec!["k".into()],
                    vec![("default", Value::Int(0)), ("x", "y=z".into())]
                )
            ))
        );
        // Not a name: a positional string.
        assert_eq!(
            parsed(&["echo", "a b=c"], false, false),
            Ok(("echo".into(), call(vec!["a b=c".into()], vec![])))
        );
        for words in [
            &["counter.step", "=", "5"][..],
            &["counter.step=5"],
            &["counter.step=", "5"],
        ] {
            assert_eq!(
                parsed(words, false, false),
                Ok(("counter.step".into(), Request::Set(Value::Int(5)))),
                "{words:?}"
            );
        }
        assert_eq!(
            parsed(&["counter.step", "5"], false, true),
            Ok(("counter.step".into(), Request::Set(Value::Int(5))))
        );
        assert!(parsed(&["counter.step", "=", "1", "2"], false, false).is_err());
        assert!(parsed(&["counter.step", "="], false, false).is_err());
        assert!(parsed(&["counter.step"], false, true).is_err());
        assert!(parsed(&["echo", "n={"], true, false).is_err());
        assert!(parsed(&["a..b"], false, false).is_err());
    }

    #[test]
    fn json_output() {
        let v = Value::Map(vec![
            ("a".into(), Value::Bytes(vec![1, 2])),
            (Value::Int(3), Value::Float(f64::NAN)),
        ]);
        assert_eq!(to_json(&v, &[]).to_string(), r#"{"3":null,"a":[1,2]}"#);
    }
}
