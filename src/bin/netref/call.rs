//! `netref call TARGET PATH [ARG...]`: one call, its result as JSON on stdout.
//!
//! Exit status: 0 on success, 1 when the call failed on the peer (the error goes to
//! stderr), 2 when the connection could not be made or was lost, or the arguments are bad.

use std::process::ExitCode;

use netref::{Args as CallArgs, ErrorKind, Proxy, Value};

use crate::target::{self, ConnectOpts};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to connect: HOST[:PORT] (port 18861 by default), tcp://HOST:PORT, unix:PATH, or
    /// cmd:COMMAND, a command speaking netref on its stdio (a TARGET with a space is one too).
    target: String,
    /// What to call, from the root: `add`, `counter.inc`, `kv.get`. A property (`counter.value`)
    /// is read when no ARG is given.
    path: String,
    /// Arguments, each parsed as JSON (`1`, `"s"`, `[1,2]`, `{"a":1}`), else taken as a string.
    /// Negative numbers work as they are; put other arguments starting with `-` after `--`.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    #[command(flatten)]
    connect: ConnectOpts,
}

const REMOTE_ERROR: u8 = 1;
const CONNECTION_ERROR: u8 = 2;

pub(crate) async fn run(args: Args) -> ExitCode {
    let target = match target::parse(&args.target) {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    let path: Vec<&str> = args.path.split('.').collect();
    if path.iter().any(|s| s.is_empty()) {
        return usage(&format!(
            "bad PATH {:?}: use names separated by dots",
            args.path
        ));
    }
    let mut values = Vec::with_capacity(args.args.len());
    for a in &args.args {
        values.push(parse_arg(a));
    }
    let attached = match target::connect(&target, &args.connect).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netref call: cannot connect to {target}: {e}");
            return ExitCode::from(CONNECTION_ERROR);
        }
    };
    let proxy = attached.conn.root().path_to(path.iter().copied());
    let result = call_or_get(&proxy, values).await;
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

fn usage(message: &str) -> ExitCode {
    eprintln!("netref call: {message}");
    ExitCode::from(CONNECTION_ERROR)
}

/// Calls the path; with no arguments, a path naming a property is read instead.
async fn call_or_get(proxy: &Proxy, values: Vec<Value>) -> netref::Result<Value> {
    let no_args = values.is_empty();
    match proxy.call(CallArgs::from_parts(values, Vec::new())).await {
        Err(e) if no_args && e.kind() == ErrorKind::WrongOperation => match proxy.get().await {
            Ok(v) => Ok(v),
            // Neither callable nor readable: the call's error says more.
            Err(_) => Err(e),
        },
        other => other,
    }
}

/// An argument: JSON when it parses, else the text itself.
fn parse_arg(text: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(json) => netref::to_value(&json).unwrap_or_else(|_| Value::from(text)),
        Err(_) => Value::from(text),
    }
}

/// The types of the objects in `v`, by remote id, asked with `help`.
async fn type_names(v: &Value) -> Vec<(u64, String)> {
    let mut refs = Vec::new();
    collect(v, &mut refs);
    let mut out = Vec::new();
    for p in refs.into_iter().take(32) {
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
            let text = match p.remote_id() {
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

/// An object id as traces show it: slot and generation (`#3v1`).
fn fmt_id(id: u64) -> String {
    format!("#{}v{}", id & 0xffff_ffff, id >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_json_or_text() {
        assert_eq!(parse_arg("1"), Value::Int(1));
        assert_eq!(parse_arg("\"1\""), Value::from("1"));
        assert_eq!(parse_arg("hello"), Value::from("hello"));
        assert_eq!(
            parse_arg("[1, true]"),
            Value::List(vec![1.into(), true.into()])
        );
        assert_eq!(parse_arg("-2.5"), Value::Float(-2.5));
        assert_eq!(parse_arg("null"), Value::Nil);
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
