//! The evaluator: statements and expressions against the session's variables and the
//! peer's objects.
//!
//! Attribute paths stay lazy (a [`Proxy`] with a path) until something needs a value, so
//! `root.counter.value` is one `Get` of the path `counter.value`, `root.add(1, 2)` one
//! `Call`, and `dir(root.counter)` lists the counter without fetching it first.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::collector::Collector;
use super::render::Failure;
use super::syntax::{self, Arg, Expr, Stmt};
use super::Inner;
use crate::object::{Args, Obj};
use crate::proxy::Proxy;
use crate::value::Value;

/// An evaluated expression, before it is forced to a value.
pub(crate) enum Term {
    Val(Value),
    /// An attribute path not yet read.
    Lazy(Proxy),
    Builtin(Builtin),
}

/// The built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    List,
    Dir,
    Help,
    Len,
    Type,
    Collector,
    Partial,
    Pipeline,
}

pub(crate) const BUILTINS: &[(&str, Builtin, &str)] = &[
    (
        "list",
        Builtin::List,
        "list(x): the items of a remote iterator or iterable (drained in batches), or of a local list",
    ),
    (
        "dir",
        Builtin::Dir,
        "dir(x): the exposed members of an object; dir(): the variables",
    ),
    (
        "help",
        Builtin::Help,
        "help(x): signatures and docs of an object's exposed members; help(): the REPL's help",
    ),
    (
        "len",
        Builtin::Len,
        "len(x): the length of a list, map, string or bytes, or a remote object's len()",
    ),
    ("type", Builtin::Type, "type(x): the type of a value or object"),
    (
        "collector",
        Builtin::Collector,
        "collector(): a callback that keeps what it is called with: list(c) shows it",
    ),
    (
        "partial",
        Builtin::Partial,
        "partial(f, args...): a callback that calls f(args..., its own args...); \
         partial(root.add, 10) called with 1 calls root.add(10, 1)",
    ),
    (
        "pipeline",
        Builtin::Pipeline,
        "pipeline(x.method(args)): sends the call without waiting and gives its answer at \
         once, to call on: pipeline(root.files.open(\"a\", \"w\")).write(\"hi\") is one round trip",
    ),
];

fn builtin(name: &str) -> Option<Builtin> {
    BUILTINS.iter().find(|b| b.0 == name).map(|b| b.1)
}

fn type_err(message: impl Into<String>) -> Failure {
    Failure::Type(message.into())
}

/// What a statement shows.
pub(crate) enum Shown {
    Value(Value),
    Text(String),
}

impl Inner {
    /// Parses and runs `input`, printing what each statement shows.
    pub(crate) async fn run(self: &Arc<Self>, input: &str) -> Result<(), Failure> {
        let stmts = syntax::parse(input).map_err(Failure::Syntax)?;
        for stmt in &stmts {
            match self.stmt(stmt).await? {
                Some(Shown::Value(v)) => {
                    self.show(&v).await;
                    self.vars.lock().insert("_".into(), v);
                }
                Some(Shown::Text(t)) => self.print(&t),
                None => {}
            }
        }
        Ok(())
    }

    async fn stmt(self: &Arc<Self>, stmt: &Stmt) -> Result<Option<Shown>, Failure> {
        match stmt {
            Stmt::Del(names) => {
                let mut vars = self.vars.lock();
                for n in names {
                    if vars.remove(n).is_none() {
                        return Err(Failure::Name(format!("no variable `{n}`")));
                    }
                }
                Ok(None)
            }
            Stmt::Assign(target, value) => {
                let value = self.value(value).await?;
                self.assign(target, value).await?;
                Ok(None)
            }
            Stmt::Expr(Expr::Call(f, args)) if matches!(**f, Expr::Var(ref n) if n == "help" && !self.is_var("help")) =>
            {
                let shown = self.call_builtin(Builtin::Help, args).await?;
                Ok(Some(shown))
            }
            Stmt::Expr(e) => {
                let shown = match self.term(e).await? {
                    Term::Builtin(b) => Shown::Text(format!("<built-in {}>", builtin_name(b))),
                    t => Shown::Value(self.force(t).await?),
                };
                Ok(match shown {
                    Shown::Value(Value::Nil) => None,
                    s => Some(s),
                })
            }
        }
    }

    fn is_var(&self, name: &str) -> bool {
        self.vars.lock().contains_key(name)
    }

    async fn assign(self: &Arc<Self>, target: &Expr, value: Value) -> Result<(), Failure> {
        match target {
            Expr::Var(name) => {
                self.vars.lock().insert(name.clone(), value);
                Ok(())
            }
            Expr::Attr(base, name) => match self.term(base).await? {
                Term::Lazy(p) | Term::Val(Value::Ref(p)) => {
                    p.attr(name.as_str()).set(value).await?;
                    Ok(())
                }
                _ => Err(type_err(format!(
                    "only an object's properties can be set, not `.{name}` of a plain value"
                ))),
            },
            Expr::Index(base, key) => {
                let key = self.value(key).await?;
                if let Expr::Var(name) = &**base {
                    let mut vars = self.vars.lock();
                    match vars.get_mut(name) {
                        Some(Value::Ref(_)) | None => {}
                        Some(local) => return set_item(local, key, value),
                    }
                }
                match self.term(base).await? {
                    Term::Lazy(p) | Term::Val(Value::Ref(p)) => {
                        p.call_method("set", (key, value)).await?;
                        Ok(())
                    }
                    _ => Err(type_err("only variables and objects take item assignment")),
                }
            }
            _ => Err(type_err("cannot assign to that")),
        }
    }

    /// Evaluates and forces `e` to a value.
    pub(crate) async fn value(self: &Arc<Self>, e: &Expr) -> Result<Value, Failure> {
        let t = self.term(e).await?;
        self.force(t).await
    }

    /// A term as a value: reads a lazy path (an empty path is the object itself).
    pub(crate) async fn force(&self, t: Term) -> Result<Value, Failure> {
        match t {
            Term::Val(v) => Ok(v),
            Term::Lazy(p) if p.path().is_empty() => Ok(Value::Ref(p)),
            Term::Lazy(p) => Ok(get_path(p).await?),
            Term::Builtin(b) => Err(type_err(format!(
                "the built-in `{}` cannot be passed as a value; use `print` or a collector() \
                 as a callback",
                builtin_name(b)
            ))),
        }
    }

    pub(crate) fn term<'a>(
        self: &'a Arc<Self>,
        e: &'a Expr,
    ) -> BoxFuture<'a, Result<Term, Failure>> {
        Box::pin(async move {
            match e {
                Expr::Lit(v) => Ok(Term::Val(v.clone())),
                Expr::Var(name) => {
                    if let Some(v) = self.vars.lock().get(name) {
                        return Ok(Term::Val(v.clone()));
                    }
                    match builtin(name) {
                        Some(b) => Ok(Term::Builtin(b)),
                        None => Err(Failure::Name(format!(
                            "no variable `{name}` (`dir()` lists them)"
                        ))),
                    }
                }
                Expr::Attr(base, name) => match self.term(base).await? {
                    Term::Lazy(p) | Term::Val(Value::Ref(p)) => {
                        Ok(Term::Lazy(p.attr(name.as_str())))
                    }
                    Term::Val(Value::Map(entries)) => entries
                        .into_iter()
                        .find(|(k, _)| k.as_str() == Some(name))
                        .map(|(_, v)| Term::Val(v))
                        .ok_or_else(|| Failure::Name(format!("the map has no key {name:?}"))),
                    Term::Val(v) => Err(type_err(format!(
                        "a {} has no attribute `{name}`",
                        v.type_name()
                    ))),
                    Term::Builtin(b) => Err(type_err(format!(
                        "the built-in `{}` has no attribute `{name}`",
                        builtin_name(b)
                    ))),
                },
                Expr::Call(f, args) => {
                    let callee = self.term(f).await?;
                    match callee {
                        Term::Builtin(b) => match self.call_builtin(b, args).await? {
                            Shown::Value(v) => Ok(Term::Val(v)),
                            Shown::Text(t) => Ok(Term::Val(Value::Str(t))),
                        },
                        Term::Lazy(p) | Term::Val(Value::Ref(p)) => {
                            let args = self.args(args).await?;
                            let mut call = p.call(args);
                            if let Some(t) = *self.timeout.lock() {
                                call = call.timeout(t);
                            }
                            Ok(Term::Val(call.await?))
                        }
                        Term::Val(v) => {
                            Err(type_err(format!("a {} is not callable", v.type_name())))
                        }
                    }
                }
                Expr::Index(base, key) => {
                    let key = self.value(key).await?;
                    match self.term(base).await? {
                        Term::Lazy(p) | Term::Val(Value::Ref(p)) => {
                            Ok(Term::Val(p.call_method("get", (key,)).await?))
                        }
                        Term::Val(v) => Ok(Term::Val(get_item(v, &key)?)),
                        Term::Builtin(_) => Err(type_err("a built-in cannot be indexed")),
                    }
                }
                Expr::List(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(self.value(item).await?);
                    }
                    Ok(Term::Val(Value::List(out)))
                }
                Expr::Map(entries) => {
                    let mut out = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        out.push((self.value(k).await?, self.value(v).await?));
                    }
                    Ok(Term::Val(Value::Map(out)))
                }
                Expr::Neg(inner) => match self.value(inner).await? {
                    Value::Int(i) => i
                        .checked_neg()
                        .map(|n| Term::Val(Value::Int(n)))
                        .ok_or_else(|| type_err("integer overflow")),
                    Value::Float(f) => Ok(Term::Val(Value::Float(-f))),
                    v => Err(type_err(format!("cannot negate a {}", v.type_name()))),
                },
            }
        })
    }

    async fn args(self: &Arc<Self>, args: &[Arg]) -> Result<Args, Failure> {
        let mut pos = Vec::new();
        let mut named = Vec::new();
        for a in args {
            match a {
                Arg::Pos(e) => pos.push(self.value(e).await?),
                Arg::Named(n, e) => named.push((n.clone(), self.value(e).await?)),
            }
        }
        Ok(Args::from_parts(pos, named))
    }

    /// The single argument of a built-in, unforced (so `dir(root.counter)` stays lazy).
    async fn one_arg(
        self: &Arc<Self>,
        b: Builtin,
        args: &[Arg],
        optional: bool,
    ) -> Result<Option<Term>, Failure> {
        match args {
            [] if optional => Ok(None),
            [Arg::Pos(e)] => Ok(Some(self.term(e).await?)),
            _ => Err(Failure::Type(format!(
                "{} takes {}one positional argument",
                builtin_name(b),
                if optional { "zero or " } else { "" }
            ))),
        }
    }

    async fn call_builtin(self: &Arc<Self>, b: Builtin, args: &[Arg]) -> Result<Shown, Failure> {
        match b {
            Builtin::Partial => {
                let Some((Arg::Pos(f), rest)) = args.split_first() else {
                    return Err(type_err("partial(f, args...) takes a function first"));
                };
                let f = match self.term(f).await? {
                    Term::Lazy(p) | Term::Val(Value::Ref(p)) => p,
                    Term::Builtin(_) => {
                        return Err(type_err(
                            "partial() of a built-in: use print or a collector()",
                        ))
                    }
                    Term::Val(v) => {
                        return Err(type_err(format!("a {} is not callable", v.type_name())))
                    }
                };
                let (pos, named) = self.args(rest).await?.into_parts();
                Ok(Shown::Value(Value::Ref(partial(f, pos, named))))
            }
            Builtin::Pipeline => {
                let [Arg::Pos(Expr::Call(f, call_args))] = args else {
                    return Err(type_err(
                        "pipeline() takes one call: pipeline(x.method(args))",
                    ));
                };
                let p = match self.term(f).await? {
                    Term::Lazy(p) | Term::Val(Value::Ref(p)) => p,
                    _ => return Err(type_err("pipeline() takes a call on an object")),
                };
                let call_args = self.args(call_args).await?;
                let answer = p.call(call_args).pipeline().await?;
                Ok(Shown::Value(Value::Ref(answer)))
            }
            Builtin::Collector => {
                if !args.is_empty() {
                    return Err(type_err("collector() takes no arguments"));
                }
                let c = Obj::new(Collector::default());
                Ok(Shown::Value(Value::Ref(Proxy::local(c))))
            }
            Builtin::Dir => match self.one_arg(b, args, true).await? {
                None => {
                    let names = self.vars.lock().keys().cloned().map(Value::Str).collect();
                    Ok(Shown::Value(Value::List(names)))
                }
                Some(Term::Lazy(p) | Term::Val(Value::Ref(p))) => {
                    let names = p.dir().await?;
                    Ok(Shown::Value(Value::List(
                        names.into_iter().map(Value::Str).collect(),
                    )))
                }
                Some(Term::Val(Value::Map(entries))) => Ok(Shown::Value(Value::List(
                    entries.into_iter().map(|(k, _)| k).collect(),
                ))),
                Some(Term::Val(v)) => Err(type_err(format!(
                    "dir() lists an object's members; a {} has none",
                    v.type_name()
                ))),
                Some(Term::Builtin(_)) => Err(type_err("dir() of a built-in: try help(it)")),
            },
            Builtin::Help => match self.one_arg(b, args, true).await? {
                None => Ok(Shown::Text(super::HELP.to_owned())),
                Some(Term::Lazy(p) | Term::Val(Value::Ref(p))) => {
                    let mut text = p.help().await?;
                    // A property holding an object: describe the object too.
                    if !p.path().is_empty() && text.contains("property)") {
                        if let Ok(Value::Ref(obj)) = p.get().await {
                            if let Ok(more) = obj.help().await {
                                text.push_str("\n\n");
                                text.push_str(&more);
                            }
                        }
                    }
                    Ok(Shown::Text(text))
                }
                Some(Term::Builtin(b)) => Ok(Shown::Text(
                    BUILTINS
                        .iter()
                        .find(|x| x.1 == b)
                        .map_or("", |x| x.2)
                        .to_owned(),
                )),
                Some(Term::Val(v)) => Ok(Shown::Text(format!(
                    "a {} value, passed by value",
                    v.type_name()
                ))),
            },
            Builtin::List => match self.one_arg(b, args, false).await? {
                Some(Term::Lazy(p) | Term::Val(Value::Ref(p))) => {
                    let items = p.iter(64).await?.collect().await?;
                    Ok(Shown::Value(Value::List(items)))
                }
                Some(Term::Val(v)) => Ok(Shown::Value(Value::List(local_items(v)?))),
                _ => Err(type_err("list() of a built-in")),
            },
            Builtin::Len => match self.one_arg(b, args, false).await? {
                Some(Term::Lazy(p) | Term::Val(Value::Ref(p))) => {
                    Ok(Shown::Value(p.call_method("len", ()).await?))
                }
                Some(Term::Val(v)) => {
                    let n = match &v {
                        Value::List(items) => items.len(),
                        Value::Map(entries) => entries.len(),
                        Value::Str(s) => s.chars().count(),
                        Value::Bytes(b) => b.len(),
                        other => {
                            return Err(type_err(format!("a {} has no length", other.type_name())))
                        }
                    };
                    Ok(Shown::Value(Value::from(n as u64)))
                }
                _ => Err(type_err("len() of a built-in")),
            },
            Builtin::Type => match self.one_arg(b, args, false).await? {
                Some(t @ Term::Lazy(_)) => {
                    let v = self.force(t).await?;
                    Ok(Shown::Value(Value::Str(self.type_of_value(&v).await)))
                }
                Some(Term::Val(v)) => Ok(Shown::Value(Value::Str(self.type_of_value(&v).await))),
                _ => Ok(Shown::Value(Value::from("built-in"))),
            },
        }
    }

    async fn type_of_value(&self, v: &Value) -> String {
        match v {
            Value::Ref(p) => self.type_of(p).await.unwrap_or_else(|| "object".to_owned()),
            other => other.type_name().to_owned(),
        }
    }
}

/// A REPL-side callback that calls `f` with `pos` followed by its own arguments.
fn partial(f: Proxy, pos: Vec<Value>, named: Vec<(String, Value)>) -> Proxy {
    crate::Callback::from_fn(move |args: Args| {
        let f = f.clone();
        let (mut all, mut all_named) = (pos.clone(), named.clone());
        async move {
            let (more, more_named) = args.into_parts();
            all.extend(more);
            all_named.extend(more_named);
            f.call(Args::from_parts(all, all_named)).await
        }
    })
    .into_proxy()
}

/// Reads a path. When the owner refuses because a segment is a plain value (a property
/// holding a map: `root.stats.processed`), reads the shorter path and looks the rest up here.
fn get_path(p: Proxy) -> BoxFuture<'static, crate::Result<Value>> {
    Box::pin(async move {
        let err = match p.get().await {
            Err(e) if e.kind() == crate::ErrorKind::WrongOperation && p.path().len() >= 2 => e,
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

fn builtin_name(b: Builtin) -> &'static str {
    BUILTINS.iter().find(|x| x.1 == b).map_or("?", |x| x.0)
}

/// The items `list()` makes of a local value.
fn local_items(v: Value) -> Result<Vec<Value>, Failure> {
    Ok(match v {
        Value::List(items) => items,
        Value::Map(entries) => entries.into_iter().map(|(k, _)| k).collect(),
        Value::Str(s) => s.chars().map(|c| Value::Str(c.to_string())).collect(),
        Value::Bytes(b) => b.into_iter().map(Value::from).collect(),
        other => return Err(type_err(format!("a {} is not iterable", other.type_name()))),
    })
}

fn index_of(len: usize, key: &Value) -> Result<usize, Failure> {
    let i = key.as_i64().ok_or_else(|| {
        type_err(format!(
            "an index must be an int, not a {}",
            key.type_name()
        ))
    })?;
    let j = if i < 0 { len as i64 + i } else { i };
    if j < 0 || j as u64 >= len as u64 {
        return Err(type_err(format!("index {i} out of range for length {len}")));
    }
    Ok(j as usize)
}

fn get_item(v: Value, key: &Value) -> Result<Value, Failure> {
    match v {
        Value::List(mut items) => {
            let i = index_of(items.len(), key)?;
            Ok(items.swap_remove(i))
        }
        Value::Map(entries) => entries
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| Failure::Name(format!("no key {key}"))),
        Value::Str(s) => {
            let chars: Vec<char> = s.chars().collect();
            let i = index_of(chars.len(), key)?;
            Ok(Value::Str(chars[i].to_string()))
        }
        Value::Bytes(b) => {
            let i = index_of(b.len(), key)?;
            Ok(Value::from(b[i]))
        }
        other => Err(type_err(format!(
            "a {} cannot be indexed",
            other.type_name()
        ))),
    }
}

fn set_item(target: &mut Value, key: Value, value: Value) -> Result<(), Failure> {
    match target {
        Value::List(items) => {
            let i = index_of(items.len(), &key)?;
            items[i] = value;
            Ok(())
        }
        Value::Map(entries) => {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
            Ok(())
        }
        other => Err(type_err(format!(
            "a {} does not take item assignment",
            other.type_name()
        ))),
    }
}
