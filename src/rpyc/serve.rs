//! Serving a Python peer: one `handle_*` function per RPyC request, each a plain call into
//! the exposure gate.
//!
//! Every handler that takes a name (`GETATTR`, `SETATTR`, `CALLATTR`, `CMP`) reaches the
//! object through [`dispatch::start`], where the gate maps the name to a member **index**
//! only when the member is exposed; `DIR` and `INSPECT` list exposed members only. RPyC's `exposed_`
//! prefix is accepted as an alias of the plain name. A hidden member and a missing one give
//! the same `AttributeError`.
//!
//! Python's implicit special methods map onto netref's adapter members: `__call__` calls the
//! object, `__len__` is `len`, `__getitem__` `get`, `__setitem__` `set`, `__delitem__`
//! `remove`, `__contains__` `contains`, `__iter__` `iter` (an iterator is its own), and
//! `__next__` pulls one item with `next_batch` (raising `StopIteration` at the end).
//!
//! A handler that finishes synchronously is answered by the reader at once; one that has to
//! wait (an `async fn`, a callback into Python) runs in its own task, at most
//! `Config::max_in_flight` at a time.

use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;

use super::boxing::{Boxed, IdPack};
use super::brine::Brine;
use super::message::Handler;
use super::session::Session;
use crate::dispatch::{self, Op};
use crate::error::{Error, ErrorKind, Result};
use crate::object::{Args, MemberKind, Reply};
use crate::proxy::{Proxy, Target};
use crate::value::Value;

/// RPyC's prefix for exposed names, accepted as an alias of the plain name.
const EXPOSED_PREFIX: &str = "exposed_";

/// Handles the peer's request `seq`: decodes its arguments, runs the handler, answers.
pub(crate) fn handle_request(session: &Arc<Session>, seq: i64, handler: i64, args: Brine) {
    let Some(h) = Handler::from_id(handler) else {
        let e = Error::remote(
            ErrorKind::Protocol,
            format!("unknown RPyC request handler {handler}"),
        );
        return session.answer(seq, Err(e));
    };
    let boxed = match Boxed::from_brine(args) {
        Ok(b) => b,
        Err(e) => return session.answer(seq, Err(e)),
    };
    match h {
        Handler::Close => return session.teardown("closed by the peer".into()),
        Handler::Del => return session.answer(seq, handle_del(session, boxed)),
        Handler::Inspect => return session.answer(seq, handle_inspect(session, boxed)),
        _ => {}
    }
    let args = match session.unbox(boxed) {
        Ok(Value::List(items)) => items,
        Ok(other) => vec![other],
        Err(e) => return session.answer(seq, Err(e)),
    };
    let reply = match std::panic::catch_unwind(AssertUnwindSafe(|| dispatch(session, h, args))) {
        Ok(r) => r,
        Err(payload) => Reply::Ready(Err(Error::panicked(payload))),
    };
    match reply {
        Reply::Ready(r) => session.answer(seq, r),
        Reply::Later(fut) => run_later(session, seq, fut),
    }
}

/// Polls an unfinished handler once on the reader; what is still pending gets its own task.
fn run_later(
    session: &Arc<Session>,
    seq: i64,
    fut: futures_util::future::BoxFuture<'static, Result<Value>>,
) {
    let mut fut = AssertUnwindSafe(fut).catch_unwind();
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    match fut.poll_unpin(&mut cx) {
        Poll::Ready(r) => {
            return session.answer(seq, r.unwrap_or_else(|p| Err(Error::panicked(p))))
        }
        Poll::Pending => {}
    }
    let limit = session.config.max_in_flight;
    if session.in_flight.fetch_add(1, Ordering::AcqRel) >= limit {
        session.in_flight.fetch_sub(1, Ordering::AcqRel);
        let e = Error::remote(
            ErrorKind::Overloaded,
            format!("over the limit of {limit} requests running at once"),
        );
        return session.answer(seq, Err(e));
    }
    let s = session.clone();
    let mut closed = session.closed_signal();
    session.spawn(async move {
        // A handler still running when the connection closes is dropped: nobody is left
        // to answer.
        let r = tokio::select! {
            r = fut => Some(r.unwrap_or_else(|p| Err(Error::panicked(p)))),
            _ = closed.wait_for(|c| *c) => None,
        };
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(r) = r {
            s.answer(seq, r);
        }
    });
}

fn dispatch(session: &Arc<Session>, h: Handler, args: Vec<Value>) -> Reply {
    let mut args = args.into_iter();
    let mut next = || args.next().unwrap_or_default();
    match h {
        Handler::Ping => Reply::Ready(Ok(next())),
        Handler::GetRoot => Reply::Ready(handle_getroot(session)),
        Handler::GetAttr => with_obj_name(next(), next(), handle_getattr),
        Handler::SetAttr => {
            let (obj, name, value) = (next(), next(), next());
            with_obj_name(obj, name, move |p, n| {
                start_on(&p, &[alias(&n).to_owned()], Op::Set(value))
            })
        }
        Handler::DelAttr => {
            Reply::Ready(Err(wrong("attributes of netref objects cannot be deleted")))
        }
        Handler::Call => {
            let (obj, a, kw) = (next(), next(), next());
            with_obj(obj, |p| match call_args(a, kw) {
                Ok(args) => start_on(&p, &[], Op::Call(args)),
                Err(e) => Reply::Ready(Err(e)),
            })
        }
        Handler::CallAttr => {
            let (obj, name, a, kw) = (next(), next(), next(), next());
            with_obj_name(obj, name, |p, n| match call_args(a, kw) {
                Ok(args) => handle_callattr(p, &n, args),
                Err(e) => Reply::Ready(Err(e)),
            })
        }
        Handler::Repr | Handler::Str => with_obj(next(), |p| Reply::Ready(Ok(describe(&p)))),
        Handler::Cmp => {
            let (obj, other, op) = (next(), next(), next());
            with_obj(obj, |p| Reply::Ready(handle_cmp(&p, other, op)))
        }
        Handler::Hash => with_obj(next(), |p| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            Reply::Ready(Ok(Value::Int((h.finish() >> 2) as i64)))
        }),
        Handler::Dir => with_obj(next(), |p| start_on(&p, &[], Op::Dir)),
        Handler::BuffIter => {
            let (obj, count) = (next(), next());
            let n = count.as_i64().unwrap_or(1).clamp(1, 4096);
            with_obj(obj, |p| {
                start_on(&p, &["next_batch".into()], Op::Call(Args::new().arg(n)))
            })
        }
        Handler::Pickle => Reply::Ready(Err(Error::remote(
            ErrorKind::Value,
            "pickling is refused on this connection",
        ))),
        Handler::OldSlicing => Reply::Ready(Err(wrong("Python 2 slicing is not supported"))),
        Handler::CtxExit => Reply::Ready(Err(Error::remote(
            ErrorKind::NoSuchMember,
            "netref objects are not context managers",
        ))),
        Handler::InstanceCheck => Reply::Ready(Ok(Value::Bool(false))),
        // Answered before unboxing (see `handle_request`).
        Handler::Close | Handler::Del | Handler::Inspect => Reply::Ready(Ok(Value::Nil)),
    }
}

/// `GETROOT`: the root this side lends, or an empty one (Python's `VoidService`) when it
/// lends none: Python's classic server asks for its client's root as it connects.
fn handle_getroot(session: &Session) -> Result<Value> {
    let root = session
        .root
        .lock()
        .get_or_insert_with(|| Arc::new(Void))
        .clone();
    Ok(Value::Ref(Proxy::local(root)))
}

/// The root of a side that lends nothing: no members.
struct Void;

static VOID_INFO: crate::object::TypeInfo = crate::object::TypeInfo {
    name: "VoidService",
    doc: "This side lends nothing.",
    members: &[],
    call: None,
};

impl crate::object::Object for Void {
    fn type_info(&self) -> &'static crate::object::TypeInfo {
        &VOID_INFO
    }

    fn invoke(self: Arc<Self>, member: usize, _inv: crate::object::Invocation) -> Reply {
        Reply::Ready(Err(crate::__private::bad_invocation("VoidService", member)))
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// `getattr(obj, name)`: a property's value, a bound method for a method (Python then
/// calls it), or `AttributeError`.
fn handle_getattr(p: Proxy, name: String) -> Reply {
    if name == "__doc__" {
        return Reply::Ready(Ok(doc_of(&p)));
    }
    let name = alias(&name).to_owned();
    let method = p.attr(name.clone());
    match start_on(&p, &[name], Op::Get) {
        Reply::Ready(Err(e)) if is_method(&e) => Reply::Ready(Ok(Value::Ref(method))),
        Reply::Ready(r) => Reply::Ready(r),
        Reply::Later(fut) => Reply::later(async move {
            match fut.await {
                Err(e) if is_method(&e) => Ok(Value::Ref(method)),
                r => r,
            }
        }),
    }
}

/// The gate refuses to read a method ("call it"): the member exists and is exposed.
fn is_method(e: &Error) -> bool {
    e.kind() == ErrorKind::WrongOperation && e.to_string().contains("is a method")
}

fn handle_callattr(p: Proxy, name: &str, args: Args) -> Reply {
    let member = match name {
        "__call__" => return start_on(&p, &[], Op::Call(args)),
        "__len__" => "len",
        "__getitem__" => "get",
        "__setitem__" => "set",
        "__delitem__" => "remove",
        "__contains__" => "contains",
        "__iter__" if has_member(&p, "next_batch") => return Reply::Ready(Ok(Value::Ref(p))),
        "__iter__" => "iter",
        "__next__" => {
            let one = Op::Call(Args::new().arg(1));
            return match start_on(&p, &["next_batch".into()], one) {
                Reply::Ready(r) => Reply::Ready(first_item(r)),
                Reply::Later(fut) => Reply::later(async move { first_item(fut.await) }),
            };
        }
        other => alias(other),
    };
    start_on(&p, &[member.to_owned()], Op::Call(args))
}

fn first_item(r: Result<Value>) -> Result<Value> {
    match r? {
        Value::List(items) => items.into_iter().next().ok_or_else(Error::stop_iteration),
        other => Err(Error::Value(format!(
            "an iterator's next_batch gave a {}",
            other.type_name()
        ))),
    }
}

fn handle_cmp(p: &Proxy, other: Value, op: Value) -> Result<Value> {
    let same = matches!(&other, Value::Ref(o) if o == p);
    match op.as_str() {
        Some("__eq__") => Ok(Value::Bool(same)),
        Some("__ne__") => Ok(Value::Bool(!same)),
        Some(op) => Err(wrong(format!(
            "netref objects support == and != only, not {op}"
        ))),
        None => Err(Error::bad_args("the comparison operator must be a str")),
    }
}

/// `DEL(obj, count)`: the peer dropped `count` references to one of this side's objects.
fn handle_del(session: &Session, boxed: Boxed) -> Result<Value> {
    let items = boxed.into_items().unwrap_or_default();
    let (pack, count) = match items.as_slice() {
        [Boxed::Yours(pack), Boxed::Value(Brine::Int(n))] => (pack, *n),
        [Boxed::Yours(pack)] => (pack, 1),
        _ => return Err(Error::bad_args("DEL takes (object, count)")),
    };
    let count = u64::try_from(count).map_err(|_| Error::bad_args("a negative DEL count"))?;
    let freed = {
        let mut exports = session.exports.lock();
        exports.get(pack)?;
        exports.release(pack.instance_id, count)
    };
    drop(freed);
    Ok(Value::Nil)
}

/// `INSPECT(id_pack)`: the methods Python's proxy class should have: exposed methods and
/// the special methods the object supports.
fn handle_inspect(session: &Session, boxed: Boxed) -> Result<Value> {
    let pack = match boxed {
        Boxed::Value(Brine::Tuple(items)) if items.len() == 1 => IdPack::from_brine(&items[0])?,
        _ => return Err(Error::bad_args("INSPECT takes (id_pack,)")),
    };
    let p = session.exported(&pack)?;
    let pair = |name: &str, doc: &str| {
        Value::List(vec![
            Value::from(name),
            if doc.is_empty() {
                Value::Nil
            } else {
                Value::from(doc)
            },
        ])
    };
    let mut out = Vec::new();
    match p.local_object() {
        Some(obj) => {
            let info = obj.type_info();
            for m in info.members {
                if m.kind == MemberKind::Method {
                    out.push(pair(m.name, m.doc));
                }
            }
            if info.call.is_some() {
                out.push(pair("__call__", ""));
            }
            for (member, special) in [
                ("len", "__len__"),
                ("get", "__getitem__"),
                ("set", "__setitem__"),
                ("remove", "__delitem__"),
                ("contains", "__contains__"),
                ("iter", "__iter__"),
                ("next_batch", "__iter__"),
                ("next_batch", "__next__"),
            ] {
                if info.find(member).is_some() && !out.iter().any(|v| named(v, special)) {
                    out.push(pair(special, ""));
                }
            }
        }
        None => out.push(pair("__call__", "")),
    }
    Ok(Value::List(out))
}

fn named(v: &Value, name: &str) -> bool {
    matches!(v, Value::List(p) if p.first().and_then(Value::as_str) == Some(name))
}

/// Runs `op` on `extra` under `p` through the gate (the only road to a handler): right here
/// for a local object, through its own connection for anything else.
fn start_on(p: &Proxy, extra: &[String], op: Op) -> Reply {
    match &p.target {
        Target::Local(obj) => {
            let path: Vec<String> = p.path.iter().chain(extra).cloned().collect();
            let obj = obj.clone();
            match std::panic::catch_unwind(AssertUnwindSafe(|| dispatch::start(obj, &path, op))) {
                Ok(r) => r,
                Err(payload) => Reply::Ready(Err(Error::panicked(payload))),
            }
        }
        _ => {
            let q = p.path_to(extra.iter().cloned());
            Reply::later(async move { q.run(op, None).await })
        }
    }
}

fn has_member(p: &Proxy, name: &str) -> bool {
    p.local_object()
        .is_some_and(|o| o.type_info().find(name).is_some())
}

fn doc_of(p: &Proxy) -> Value {
    let Target::Local(obj) = &p.target else {
        return Value::Nil;
    };
    let info = obj.type_info();
    let doc = match p.path.last() {
        None => info.doc,
        Some(m) => info.find(m).map_or("", |i| info.members[i].doc),
    };
    if doc.is_empty() {
        Value::Nil
    } else {
        Value::from(doc)
    }
}

/// `repr()` / `str()` of a lent object.
fn describe(p: &Proxy) -> Value {
    let text = match (&p.target, p.path.last()) {
        (Target::Local(obj), None) => format!("<netref {} object>", obj.type_info().name),
        (Target::Local(obj), Some(m)) => {
            format!("<netref method {}.{m}>", obj.type_info().name)
        }
        _ => format!("<netref {p}>"),
    };
    Value::Str(text)
}

fn alias(name: &str) -> &str {
    name.strip_prefix(EXPOSED_PREFIX)
        .filter(|n| !n.is_empty())
        .unwrap_or(name)
}

fn call_args(args: Value, kwargs: Value) -> Result<Args> {
    let pos = match args {
        Value::List(items) => items,
        Value::Nil => Vec::new(),
        other => vec![other],
    };
    let mut named = Vec::new();
    if let Value::List(pairs) = kwargs {
        for pair in pairs {
            match pair {
                Value::List(kv) if kv.len() == 2 => {
                    let mut kv = kv.into_iter();
                    let (k, v) = (kv.next().unwrap_or_default(), kv.next().unwrap_or_default());
                    match k {
                        Value::Str(k) => named.push((k, v)),
                        _ => return Err(Error::bad_args("keyword names must be str")),
                    }
                }
                _ => return Err(Error::bad_args("kwargs must be (name, value) pairs")),
            }
        }
    }
    Ok(Args::from_parts(pos, named))
}

fn with_obj(obj: Value, f: impl FnOnce(Proxy) -> Reply) -> Reply {
    match obj {
        Value::Ref(p) => f(p),
        other => Reply::Ready(Err(Error::bad_args(format!(
            "expected an object reference, found {}",
            other.type_name()
        )))),
    }
}

fn with_obj_name(obj: Value, name: Value, f: impl FnOnce(Proxy, String) -> Reply) -> Reply {
    match name {
        Value::Str(n) => with_obj(obj, |p| f(p, n)),
        _ => Reply::Ready(Err(Error::bad_args("attribute names must be str"))),
    }
}

fn wrong(message: impl Into<String>) -> Error {
    Error::remote(ErrorKind::WrongOperation, message)
}
