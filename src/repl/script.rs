//! The REPL's language: the Rhai engine, with proxies, closures-as-callbacks and the
//! built-ins on top.
//!
//! Rhai evaluates synchronously; every remote operation blocks the evaluating thread (a
//! blocking-pool thread of the session's runtime) on the async API, racing the session's
//! cancel signal, so Ctrl-C (or a dropped [`Session::eval`](super::Session::eval) future)
//! cancels the call in flight.
//!
//! # Laziness
//!
//! Rhai reads `root.counter.value` one property at a time. Each compiled input is walked
//! once to learn, per `.`, whether the property there is in the middle of a chain (then it
//! stays a lazy path: no message) or at its end (then it is read), and which `[` are
//! indexing. So `root.counter.inc()` is one `Call` of the path `counter.inc`, and
//! `root.counter.step = 5` one `Set`. Rhai writes a property back after setting a member of
//! it; a lazy path written back onto its own parent is ignored.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, NativeCallContext,
    Position, Token, INT,
};

use super::chains::Link;
use super::collector::Collector;
use super::render::{a_type, type_name, Failure};
use super::values::{to_args, to_dynamic, to_value, Builtin, Named, Opaque, Remote};
use super::Inner;
use crate::object::{Args, Obj};
use crate::proxy::Proxy;
use crate::value::Value;

/// Rhai's `print` is a keyword; the REPL's `print` is also a value (`root.every(3, print)`),
/// so the tokenizer renames it to this identifier, which no script can spell.
pub(crate) const PRINT: &str = "print$";

/// The method a call of a variable becomes (see [`variable_calls`](super::chains::variable_calls)).
pub(crate) const CALL: &str = "netref_call";

/// The built-in functions, with their help.
pub(crate) const BUILTINS: &[(&str, &str)] = &[
    ("print", "print(values...): prints on the REPL side; as a value, a callback that prints"),
    ("list", "list(x): the items of a remote iterator or iterable (drained in batches), or of a local list, map or string"),
    ("dir", "dir(x): the exposed members of an object, or a map's keys; dir(): the variables"),
    ("help", "help(x): signatures and docs of an object's exposed members; help(): the REPL's help"),
    ("len", "len(x): the length of a list, map, string or blob, or a remote object's len()"),
    ("type", "type(x): the type of a value or object"),
    ("collector", "collector(): a callback that keeps what it is called with: list(c) shows it"),
    ("partial", "partial(f, args...): a callback that calls f(args..., its own args...); partial(root.add, 10) called with 1 calls root.add(10, 1)"),
    ("named", "named(#{k: v}): as the last argument of a remote call, named arguments"),
    ("sleep", "sleep(seconds): waits here (Ctrl-C cancels it)"),
    ("quit", "quit() or exit(): leave the REPL (or end a script)"),
];

fn session(weak: &Weak<Inner>) -> Result<Arc<Inner>, Box<EvalAltResult>> {
    weak.upgrade()
        .ok_or_else(|| Failure::Type("the REPL session is gone".into()).into())
}

thread_local! {
    /// Whether the token before the one being mapped was a `.`.
    static AFTER_DOT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The REPL's changes to Rhai's tokens: after a `.`, a reserved word is a member name
/// (`root.eval("6*7")` on a Python peer); elsewhere `print` is the REPL's own (see
/// [`PRINT`]).
pub(crate) fn map_token(t: Token, _: Position, _: &rhai::TokenizeState) -> Token {
    let after_dot = AFTER_DOT.with(|a| a.replace(matches!(t, Token::Period)));
    match t {
        // Rhai treats some reserved words specially even as method names: a `$` (which no
        // script can spell) keeps them apart; `member_name` takes it off again.
        Token::Reserved(s) if after_dot => Token::Identifier(Box::new(format!("{s}$").into())),
        Token::Reserved(s) if s.as_str() == "print" => Token::Identifier(Box::new(PRINT.into())),
        t => t,
    }
}

/// A member name as the peer knows it (see [`map_token`]).
fn member_name(name: &str) -> &str {
    name.strip_suffix('$').unwrap_or(name)
}

/// Builds the engine of a session.
#[allow(deprecated)] // Rhai marks its hooks "volatile", not deprecated.
pub(crate) fn engine(weak: Weak<Inner>) -> Engine {
    let mut e = Engine::new();
    e.set_max_expr_depths(128, 64);
    e.register_type_with_name::<Remote>("object");
    e.register_type_with_name::<Builtin>("built-in");
    e.register_type_with_name::<Opaque>("value");
    e.register_type_with_name::<Named>("named arguments");
    e.on_parse_token(map_token);

    let w = weak.clone();
    e.on_var(move |name, _, ctx| match name {
        // `root` is no variable of the scope (closures would capture it, and the scope's
        // lock would be held across calls): it comes back whenever nothing shadows it.
        "root" if ctx.scope().get("root").is_none_or(Dynamic::is_unit) => {
            let s = session(&w)?;
            Ok(Some(Dynamic::from(s.root_value())))
        }
        PRINT => Ok(Some(Dynamic::from(Builtin("print")))),
        "quit" | "exit" if !ctx.scope().contains(name) => Err(Failure::Quit.into()),
        _ => Ok(None),
    });
    let w = weak.clone();
    e.on_print(move |text| {
        if let Some(s) = w.upgrade() {
            s.print(text);
        }
    });
    let w = weak.clone();
    e.on_debug(move |text, _, _| {
        if let Some(s) = w.upgrade() {
            s.print(text);
        }
    });
    let w = weak.clone();
    e.on_progress(move |_| {
        let s = w.upgrade()?;
        s.cancelled
            .load(Ordering::Acquire)
            .then(|| Dynamic::from("cancelled"))
    });

    // Steps through every node, only to know where a failure of a remote call happened:
    // Rhai gives no position to errors raised from its missing-function hook.
    e.register_debugger(
        |_, debugger| debugger,
        |_, _, _, _, pos| {
            if !pos.is_none() {
                AT.with(|at| at.set(pos));
            }
            Ok(rhai::debugger::DebuggerCommand::StepInto)
        },
    );

    let w = weak.clone();
    e.register_indexer_get(
        move |ctx: NativeCallContext<'_>, r: &mut Remote, k: ImmutableString| {
            session(&w)?.member(r, &k, ctx.call_position())
        },
    );
    let w = weak.clone();
    e.register_indexer_get(move |r: &mut Remote, k: INT| session(&w)?.item(r, Value::Int(k)));
    // Pure: setting a member does not change the proxy, so `root` (a constant) takes it.
    let w = weak.clone();
    rhai::FuncRegistration::new_index_setter()
        .with_purity(true)
        .register_into_engine(
            &mut e,
            move |ctx: NativeCallContext<'_>, r: &mut Remote, k: ImmutableString, v: Dynamic| {
                session(&w)?.set_member(r, &k, v, ctx.call_position())
            },
        );
    let w = weak.clone();
    rhai::FuncRegistration::new_index_setter()
        .with_purity(true)
        .register_into_engine(&mut e, move |r: &mut Remote, k: INT, v: Dynamic| {
            let s = session(&w)?;
            let v = to_value(&s, &v).map_err(Failure::Type)?;
            let args = Args::from_parts(vec![Value::Int(k), v], vec![]);
            s.call_proxy(&r.proxy.attr("set"), args).map(|_| ())
        });
    let w = weak.clone();
    e.register_fn("to_string", move |r: &mut Remote| match w.upgrade() {
        Some(s) => s.render_dynamic(&Dynamic::from(r.clone()), false),
        None => r.proxy.to_string(),
    });
    let w = weak.clone();
    e.register_fn("to_debug", move |r: &mut Remote| match w.upgrade() {
        Some(s) => s.render_dynamic(&Dynamic::from(r.clone()), true),
        None => r.proxy.to_string(),
    });
    // A caught error (`try { … } catch (e) { print(e) }`) reads as its error block.
    e.register_type_with_name::<Failure>("error");
    e.register_fn("to_string", |f: &mut Failure| f.message());
    e.register_fn("to_debug", |f: &mut Failure| f.message());
    e.register_fn("to_string", |b: &mut Builtin| format!("<built-in {}>", b.0));
    e.register_fn("to_debug", |b: &mut Builtin| format!("<built-in {}>", b.0));
    e.register_fn("to_string", |o: &mut Opaque| o.0.to_string());
    e.register_fn("to_debug", |o: &mut Opaque| o.0.to_string());
    e.register_fn("==", |a: Remote, b: Remote| a.proxy == b.proxy);
    e.register_fn("!=", |a: Remote, b: Remote| a.proxy != b.proxy);
    e.register_fn("==", |a: Opaque, b: Opaque| a.0 == b.0);
    e.register_iterator_result::<Remote, Dynamic>();

    let w = weak;
    e.on_missing_function(move |name, args, is_method, ctx| {
        let s = session(&w)?;
        if is_method {
            if let Some(r) = args
                .first()
                .and_then(|a| (**a).clone().try_cast::<Remote>())
            {
                let rest: Vec<Dynamic> = args[1..].iter().map(|a| (**a).clone()).collect();
                return s.method(&r, name, &rest).map(Some);
            }
            if name == CALL {
                if let Some(f) = args.first().and_then(|a| (**a).clone().try_cast::<FnPtr>()) {
                    let rest: Vec<Dynamic> = args[1..].iter().map(|a| (**a).clone()).collect();
                    return s.call_closure(&f, rest).map(Some);
                }
            }
            if let Some(b) = args
                .first()
                .and_then(|a| (**a).clone().try_cast::<Builtin>())
            {
                if name == "call" || name == CALL {
                    let rest: Vec<Dynamic> = args[1..].iter().map(|a| (**a).clone()).collect();
                    return s.builtin(b.0, &rest).map(Some);
                }
            }
            return Ok(None);
        }
        let all: Vec<Dynamic> = args.iter().map(|a| (**a).clone()).collect();
        if name == "dir" && all.is_empty() && !ctx.scope().contains("dir") {
            let mut names: Vec<String> =
                ctx.scope().iter_raw().map(|(n, ..)| n.to_owned()).collect();
            names.sort();
            names.dedup();
            return Ok(Some(
                names
                    .into_iter()
                    .map(Dynamic::from)
                    .collect::<Array>()
                    .into(),
            ));
        }
        if let Some(b) = builtin_name(name) {
            return s.builtin(b, &all).map(Some);
        }
        // A variable holding something callable: `let f = root.add; f(1, 2)`.
        match ctx.scope().get(name).cloned() {
            Some(v) if v.is::<Remote>() => {
                let r = v.cast::<Remote>();
                let args = to_args(&s, &all).map_err(Failure::Type)?;
                s.call_remote(&r, args).map(Some)
            }
            Some(v) if v.is::<Builtin>() => s.builtin(v.cast::<Builtin>().0, &all).map(Some),
            Some(v) if v.is_fnptr() => s.call_closure(&v.cast::<FnPtr>(), all).map(Some),
            _ => Ok(None),
        }
    });
    e
}

pub(crate) fn builtin_name(name: &str) -> Option<&'static str> {
    match name {
        PRINT => Some("print"),
        "exit" => Some("quit"),
        _ => BUILTINS.iter().find(|b| b.0 == name).map(|b| b.0),
    }
}

thread_local! {
    /// The position of the node being evaluated on this thread.
    static AT: std::cell::Cell<Position> = const { std::cell::Cell::new(Position::NONE) };
}

/// Gives a failure the position of the node being evaluated.
fn located(mut e: Box<EvalAltResult>) -> Box<EvalAltResult> {
    if e.position().is_none() {
        e.set_position(AT.with(std::cell::Cell::get));
    }
    e
}

fn net(e: crate::Error) -> Box<EvalAltResult> {
    located(Failure::Net(Arc::new(e)).into())
}

fn type_err(message: impl Into<String>) -> Box<EvalAltResult> {
    located(Failure::Type(message.into()).into())
}

impl Inner {
    /// Runs `fut` to completion on this (blocking) thread, unless the input is cancelled.
    pub(crate) fn block<T>(&self, fut: impl Future<Output = crate::Result<T>>) -> crate::Result<T> {
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(h) => h,
            Err(_) => {
                return Err(crate::Error::remote(
                    crate::ErrorKind::Failed,
                    "the REPL evaluates on a tokio runtime's blocking thread",
                ))
            }
        };
        handle.block_on(async {
            let cancelled = self.cancel.notified();
            tokio::pin!(cancelled);
            cancelled.as_mut().enable();
            if self.cancelled.load(Ordering::Acquire) {
                return Err(cancelled_error());
            }
            tokio::select! {
                r = fut => r,
                () = cancelled => Err(cancelled_error()),
            }
        })
    }

    /// Fails when `r` belongs to a connection that was lost since.
    pub(crate) fn check_epoch(&self, r: &Remote) -> Result<(), String> {
        if r.proxy.is_local() || r.epoch == self.epoch() {
            return Ok(());
        }
        Err(format!(
            "{} belongs to a connection that was lost; `root` is the new connection's root",
            r.proxy
        ))
    }

    fn checked(&self, r: &Remote) -> Result<(), Box<EvalAltResult>> {
        self.check_epoch(r)
            .map_err(|m| net(crate::Error::Disconnected(m)))
    }

    fn wrap(&self, r: &Remote, v: Value) -> Dynamic {
        to_dynamic(v, r.epoch)
    }

    /// `r.name` (or `r["name"]`): a lazy path in the middle of a chain, else read.
    fn member(&self, r: &Remote, key: &str, pos: Position) -> Result<Dynamic, Box<EvalAltResult>> {
        self.checked(r)?;
        let link = self.chains.lock().get(pos, key);
        let name = member_name(key);
        match link {
            Some(Link::Inner) => {
                return Ok(Dynamic::from(Remote {
                    proxy: r.proxy.attr(name),
                    epoch: r.epoch,
                }))
            }
            Some(Link::Index) => return self.item(r, Value::Str(name.to_owned())),
            _ => {}
        }
        let lazy = || {
            Dynamic::from(Remote {
                proxy: r.proxy.attr(name),
                epoch: r.epoch,
            })
        };
        // A method of an object whose type is known: a callable value, without asking.
        if r.proxy.path().is_empty() && self.is_method(&r.proxy, name) {
            return Ok(lazy());
        }
        match self.block(super::render::get_path(r.proxy.attr(name))) {
            Ok(v) => Ok(self.wrap(r, v)),
            Err(e)
                if e.kind() == crate::ErrorKind::WrongOperation
                    && e.to_string().contains("is a method") =>
            {
                Ok(lazy())
            }
            Err(e) => Err(net(e)),
        }
    }

    /// `r[key]`: the remote object's `get(key)`.
    fn item(&self, r: &Remote, key: Value) -> Result<Dynamic, Box<EvalAltResult>> {
        self.checked(r)?;
        let v = self.call_proxy(&r.proxy.attr("get"), Args::from_parts(vec![key], vec![]))?;
        Ok(self.wrap(r, v))
    }

    fn set_member(
        &self,
        r: &mut Remote,
        name: &str,
        v: Dynamic,
        pos: Position,
    ) -> Result<(), Box<EvalAltResult>> {
        let key = name;
        let name = member_name(name);
        if let Some(back) = v.clone().try_cast::<Remote>() {
            if back.proxy == r.proxy.attr(name) {
                // Rhai writing a lazy path back onto its parent: nothing changed.
                return Ok(());
            }
        }
        self.checked(r)?;
        let value = to_value(self, &v).map_err(Failure::Type)?;
        if self.chains.lock().get(pos, key) == Some(Link::Index) {
            let args = Args::from_parts(vec![Value::Str(name.to_owned()), value], vec![]);
            return self.call_proxy(&r.proxy.attr("set"), args).map(|_| ());
        }
        self.block(r.proxy.attr(name).set(value)).map_err(net)
    }

    /// `r.name(args)`.
    fn method(
        &self,
        r: &Remote,
        name: &str,
        args: &[Dynamic],
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        self.checked(r)?;
        let name = member_name(name);
        match name {
            // `root.files.open.pipeline("a", "w")`: send the call and go on with its answer.
            "pipeline" => {
                let args = to_args(self, args).map_err(Failure::Type)?;
                let answer = self.block(r.proxy.call(args).pipeline()).map_err(net)?;
                Ok(Dynamic::from(Remote {
                    proxy: answer,
                    epoch: r.epoch,
                }))
            }
            "call" | CALL => {
                let args = to_args(self, args).map_err(Failure::Type)?;
                self.call_remote(r, args)
            }
            _ => {
                let args = to_args(self, args).map_err(Failure::Type)?;
                let v = self.call_proxy(&r.proxy.attr(name), args)?;
                Ok(self.wrap(r, v))
            }
        }
    }

    pub(crate) fn call_remote(
        &self,
        r: &Remote,
        args: Args,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        self.checked(r)?;
        let v = self.call_proxy(&r.proxy, args)?;
        Ok(self.wrap(r, v))
    }

    /// Calls `p` with the session's timeout.
    fn call_proxy(&self, p: &Proxy, args: Args) -> Result<Value, Box<EvalAltResult>> {
        let mut call = p.call(args);
        if let Some(t) = *self.timeout.lock() {
            call = call.timeout(t);
        }
        self.block(call).map_err(net)
    }

    /// Calls a closure of the language with `args`.
    pub(crate) fn call_closure(
        &self,
        f: &FnPtr,
        args: Vec<Dynamic>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let lib = self.lib.lock().clone();
        f.call::<Dynamic>(&self.engine, &lib, args)
    }

    /// Runs a closure for a call from the peer: converts the arguments and the result, and
    /// turns a failure into the call's error.
    pub(crate) fn run_closure(&self, f: &FnPtr, args: Args) -> crate::Result<Value> {
        let epoch = self.epoch();
        let (pos, named) = args.into_parts();
        let mut all: Vec<Dynamic> = pos.into_iter().map(|v| to_dynamic(v, epoch)).collect();
        if !named.is_empty() {
            all.push(to_dynamic(
                Value::Map(named.into_iter().map(|(k, v)| (Value::Str(k), v)).collect()),
                epoch,
            ));
        }
        match self.call_closure(f, all) {
            Ok(v) => {
                to_value(self, &v).map_err(|m| crate::Error::remote(crate::ErrorKind::Failed, m))
            }
            Err(e) => Err(super::render::as_remote_error(&e)),
        }
    }

    fn builtin(&self, name: &str, args: &[Dynamic]) -> Result<Dynamic, Box<EvalAltResult>> {
        let one = |what: &str| -> Result<&Dynamic, Box<EvalAltResult>> {
            match args {
                [x] => Ok(x),
                _ => Err(type_err(format!("{what} takes one argument"))),
            }
        };
        match name {
            "print" => {
                let parts: Vec<String> =
                    args.iter().map(|a| self.render_dynamic(a, false)).collect();
                self.print(&parts.join(" "));
                Ok(Dynamic::UNIT)
            }
            "quit" => Err(Failure::Quit.into()),
            "sleep" => {
                let x = one("sleep(seconds)")?;
                let secs = x
                    .as_float()
                    .ok()
                    .or_else(|| x.as_int().ok().map(|i| i as f64))
                    .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| type_err("sleep(seconds): 0 to 86400 seconds"))?;
                let d = std::time::Duration::from_secs_f64(secs);
                self.block(async move {
                    tokio::time::sleep(d).await;
                    Ok(())
                })
                .map_err(net)?;
                Ok(Dynamic::UNIT)
            }
            "collector" => {
                if !args.is_empty() {
                    return Err(type_err("collector() takes no arguments"));
                }
                Ok(Dynamic::from(Remote {
                    proxy: Proxy::local(Obj::new(Collector::default())),
                    epoch: self.epoch(),
                }))
            }
            "named" => match one("named(#{k: v})")?.clone().try_cast::<Map>() {
                Some(map) => {
                    let mut named = Vec::with_capacity(map.len());
                    for (k, v) in &map {
                        named.push((k.to_string(), to_value(self, v).map_err(Failure::Type)?));
                    }
                    Ok(Dynamic::from(Named(named)))
                }
                None => Err(type_err("named() takes a map: named(#{mode: \"w\"})")),
            },
            "partial" => {
                let Some((f, rest)) = args.split_first() else {
                    return Err(type_err("partial(f, args...) takes a function first"));
                };
                if let Some(mut fp) = f.clone().try_cast::<FnPtr>() {
                    for a in rest {
                        fp.add_curry(a.clone());
                    }
                    return Ok(fp.into());
                }
                let Some(r) = f.clone().try_cast::<Remote>() else {
                    return Err(type_err(format!(
                        "partial() takes an object's method or a closure, not {}",
                        a_type(&type_name(f))
                    )));
                };
                self.checked(&r)?;
                let (pos, named) = to_args(self, rest).map_err(Failure::Type)?.into_parts();
                Ok(Dynamic::from(Remote {
                    proxy: partial(r.proxy, pos, named),
                    epoch: r.epoch,
                }))
            }
            "type" => {
                let x = one("type(x)")?;
                let t = match x.clone().try_cast::<Remote>() {
                    Some(r) if r.proxy.path().is_empty() => self
                        .block(async { Ok(self.type_of(&r.proxy).await) })
                        .ok()
                        .flatten()
                        .unwrap_or_else(|| "object".into()),
                    Some(_) => "object".into(),
                    None => type_name(x),
                };
                Ok(t.into())
            }
            "dir" => match args {
                [x] => {
                    if let Some(r) = x.clone().try_cast::<Remote>() {
                        self.checked(&r)?;
                        let names = self.block(r.proxy.dir()).map_err(net)?;
                        return Ok(names
                            .into_iter()
                            .map(Dynamic::from)
                            .collect::<Array>()
                            .into());
                    }
                    if let Some(m) = x.clone().try_cast::<Map>() {
                        return Ok(m
                            .keys()
                            .map(|k| Dynamic::from(k.clone()))
                            .collect::<Array>()
                            .into());
                    }
                    Err(type_err(format!(
                        "dir() lists an object's members; {} has none",
                        a_type(&type_name(x))
                    )))
                }
                _ => Err(type_err("dir takes one argument (none: the variables)")),
            },
            "help" => {
                let text = match args {
                    [] => super::HELP.to_owned(),
                    [x] => {
                        if let Some(r) = x.clone().try_cast::<Remote>() {
                            self.checked(&r)?;
                            self.block(help_of(r.proxy)).map_err(net)?
                        } else if let Some(b) = x.clone().try_cast::<Builtin>() {
                            BUILTINS
                                .iter()
                                .find(|x| x.0 == b.0)
                                .map_or("", |x| x.1)
                                .to_owned()
                        } else {
                            format!("{} value, passed by value", a_type(&type_name(x)))
                        }
                    }
                    _ => return Err(type_err("help takes zero or one argument")),
                };
                self.print(&text);
                Ok(Dynamic::UNIT)
            }
            "list" => {
                let x = one("list(x)")?;
                if let Some(r) = x.clone().try_cast::<Remote>() {
                    self.checked(&r)?;
                    let items = self
                        .block(async { r.proxy.iter(64).await?.collect().await })
                        .map_err(net)?;
                    return Ok(items
                        .into_iter()
                        .map(|v| self.wrap(&r, v))
                        .collect::<Array>()
                        .into());
                }
                if x.is_array() {
                    return Ok(x.clone());
                }
                if let Some(m) = x.clone().try_cast::<Map>() {
                    return Ok(m
                        .keys()
                        .map(|k| Dynamic::from(k.clone()))
                        .collect::<Array>()
                        .into());
                }
                if x.is_string() {
                    let s = x.clone().into_string().unwrap_or_default();
                    return Ok(s.chars().map(Dynamic::from).collect::<Array>().into());
                }
                if x.is_blob() {
                    let b = x.clone().cast::<rhai::Blob>();
                    return Ok(b
                        .into_iter()
                        .map(|b| Dynamic::from(b as INT))
                        .collect::<Array>()
                        .into());
                }
                Err(type_err(format!(
                    "{} is not iterable",
                    a_type(&type_name(x))
                )))
            }
            "len" => {
                let x = one("len(x)")?;
                match x.clone().try_cast::<Remote>() {
                    Some(r) => self.method(&r, "len", &[]),
                    None => Err(type_err(format!("{} has no length", a_type(&type_name(x))))),
                }
            }
            other => Err(type_err(format!("no built-in `{other}`"))),
        }
    }

    /// True when `name` is a method of the object `p` (from its type's help, cached).
    fn is_method(&self, p: &Proxy, name: &str) -> bool {
        if let Some(obj) = p.local_object() {
            return obj
                .type_info()
                .members
                .iter()
                .any(|m| m.name == name && matches!(m.kind, crate::object::MemberKind::Method));
        }
        let Ok(Some(t)) = self.block(async { Ok(self.type_of(p).await) }) else {
            return false;
        };
        self.methods
            .lock()
            .get(&t)
            .is_some_and(|m: &Arc<HashSet<String>>| m.contains(name))
    }
}

fn cancelled_error() -> crate::Error {
    crate::Error::remote(crate::ErrorKind::Cancelled, "cancelled (Ctrl-C)")
}

/// `help` of a path; for a property holding an object, the object's help too.
async fn help_of(p: Proxy) -> crate::Result<String> {
    let mut text = p.help().await?;
    if !p.path().is_empty() && text.contains("property)") {
        if let Ok(Value::Ref(obj)) = p.get().await {
            if let Ok(more) = obj.help().await {
                text.push_str("\n\n");
                text.push_str(&more);
            }
        }
    }
    Ok(text)
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

/// `for x in proxy { … }`: the items of a remote iterator, pulled in batches.
pub(crate) struct RemoteItems {
    session: Option<Arc<Inner>>,
    remote: Remote,
    iter: Option<crate::proxy::RemoteIter>,
    failed: bool,
}

impl IntoIterator for Remote {
    type Item = Result<Dynamic, Box<EvalAltResult>>;
    type IntoIter = RemoteItems;

    fn into_iter(self) -> RemoteItems {
        RemoteItems {
            session: super::current_session(),
            remote: self,
            iter: None,
            failed: false,
        }
    }
}

impl Iterator for RemoteItems {
    type Item = Result<Dynamic, Box<EvalAltResult>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let Some(s) = self.session.clone() else {
            self.failed = true;
            return Some(Err(type_err("iterating an object needs the REPL session")));
        };
        let step = s.block(async {
            if self.iter.is_none() {
                self.iter = Some(self.remote.proxy.iter(64).await?);
            }
            match self.iter.as_mut() {
                Some(it) => it.next().await,
                None => Ok(None),
            }
        });
        match step {
            Ok(Some(v)) => Some(Ok(to_dynamic(v, self.remote.epoch))),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(net(e)))
            }
        }
    }
}
