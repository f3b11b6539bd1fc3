//! Dispatch: an operation applied to the member a path names, on a local object.
//!
//! [`start`] walks the path segment by segment. At every segment it asks the
//! [gate](crate::gate) which member the name stands for and whether the operation fits it,
//! and invokes only by the index the gate returned: this is the only road to
//! [`Object::invoke`]. Local proxies and the reader of every connection (whatever its wire)
//! come through here, so local and remote calls behave alike.
//!
//! The walk is synchronous while each step's `invoke` is [`Reply::Ready`]; from the first
//! [`Reply::Later`] step (an async getter or handler) the rest of the walk is the future of
//! the `Reply::Later` it returns. A property on the path that holds a remote object (or a
//! proxy with a path) hands it the rest of the path, through its own connection.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use crate::error::{Error, Result};
use crate::gate::{self, Access, Verdict};
use crate::object::{Args, Invocation, Object, Reply};
use crate::proxy::Proxy;
use crate::surface::{MemberKind, TypeInfo};
use crate::value::Value;

/// One operation, in the engine's (decoded) form: what a wire's request turns into.
#[derive(Debug)]
pub(crate) enum Op {
    /// Call the member the path ends in (or the object itself).
    Call(Args),
    /// Read the property the path ends in.
    Get,
    /// Write the settable property the path ends in.
    Set(Value),
    /// List the exposed members of the object the path names.
    Dir,
    /// Describe the object or member the path names.
    Help,
    /// Describe the object or method the path names as data (a [`Description`]'s value):
    /// its type name, doc, and members with their kinds.
    ///
    /// [`Description`]: crate::surface::Description
    Describe,
    /// Read the property the path ends in, or, when it is a method, give the method bound
    /// to its object: a reference that calls it when called ("get or bind").
    Bind,
}

impl Op {
    /// What the operation asks of a member, for the gate.
    fn access(&self) -> Access {
        match self {
            Op::Call(_) => Access::Call,
            Op::Get => Access::Get,
            Op::Set(_) => Access::Set,
            Op::Dir => Access::Dir,
            Op::Help => Access::Help,
            Op::Describe => Access::Describe,
            Op::Bind => Access::Bind,
        }
    }
}

impl From<Args> for Op {
    fn from(a: Args) -> Self {
        Op::Call(a)
    }
}

/// Applies `op` to the member `path` names, starting at `obj`.
pub(crate) async fn perform(obj: Arc<dyn Object>, path: &[String], op: Op) -> Result<Value> {
    start(obj, path, op).await
}

/// [`perform`], run synchronously as far as the handlers allow: the path is walked and the
/// handler invoked right here, and the result is [`Reply::Ready`] when every step was. From
/// the first step that is not ready (an async getter or handler, a remote object on the path)
/// the rest of the work is the future of a [`Reply::Later`].
///
/// A handler runs inside this call, so a caller that must survive panics catches them here
/// (or uses [`start_guarded`]).
pub(crate) fn start(obj: Arc<dyn Object>, path: &[String], op: Op) -> Reply {
    let mut cur = obj;
    let Some((last, init)) = path.split_last() else {
        return on_self(cur, op);
    };
    for (i, seg) in init.iter().enumerate() {
        let info = cur.type_info();
        let idx = match gate::step(info, seg) {
            Ok(idx) => idx,
            Err(e) => return Reply::Ready(Err(e)),
        };
        let proxy = match cur.clone().invoke(idx, Invocation::Get) {
            Reply::Ready(value) => match value.and_then(|v| as_object(info, idx, v)) {
                Ok(proxy) => proxy,
                Err(e) => return Reply::Ready(Err(e)),
            },
            Reply::Later(value) => {
                // An async getter: the rest of the walk waits for it.
                let rest = path[i + 1..].to_vec();
                return Reply::later(async move {
                    let proxy = as_object(info, idx, value.await?)?;
                    go_on(proxy, &rest, op).await
                });
            }
        };
        match proxy.local_object() {
            Some(obj) => cur = obj.clone(),
            // A remote object (or a lazy path): hand it the rest of the path.
            None => {
                let rest = proxy.path_to(path[i + 1..].iter().cloned());
                return Reply::later(async move { rest.run(op, None).await });
            }
        }
    }
    let info = cur.type_info();
    let verdict = match gate::admit(info, last, op.access()) {
        Ok(v) => v,
        Err(e) => return Reply::Ready(Err(e)),
    };
    match (verdict, op) {
        (Verdict::Invoke(idx), Op::Call(args)) => cur.invoke(idx, Invocation::Call(args)),
        (Verdict::Invoke(idx), Op::Set(v)) => cur.invoke(idx, Invocation::Set(v)),
        (Verdict::Bound(idx), _) => {
            // Called later through its name, where the gate decides again.
            let name = info.members[idx].name;
            Reply::Ready(Ok(Value::Ref(Proxy::local(cur).attr(name))))
        }
        (Verdict::DescribeMethod(idx), _) => Reply::Ready(Ok(describe_method(info, idx))),
        (Verdict::Invoke(idx), _) => cur.invoke(idx, Invocation::Get),
        (Verdict::Help(member), _) => Reply::Ready(Ok(Value::Str(gate::help_member(member)))),
        (Verdict::Through(idx), op) => {
            // `root.handler(x)` where `handler` is a property holding a callable object.
            let value = cur.invoke(idx, Invocation::Get);
            Reply::later(async move {
                let proxy = as_object(info, idx, value.await?)?;
                proxy.run(op, None).await
            })
        }
    }
}

/// [`start`] with a panicking handler turned into a `Panicked` error, as it would be
/// remotely: how a local proxy runs an operation.
pub(crate) fn start_guarded(obj: Arc<dyn Object>, path: &[String], op: Op) -> Reply {
    match std::panic::catch_unwind(AssertUnwindSafe(|| start(obj, path, op))) {
        Ok(Reply::Ready(r)) => Reply::Ready(r),
        Ok(Reply::Later(fut)) => Reply::later(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r,
                Err(payload) => Err(Error::panicked(payload)),
            }
        }),
        Err(payload) => Reply::Ready(Err(Error::panicked(payload))),
    }
}

/// The rest of a walk after an async step produced `proxy`: `rest` (never empty) applied to it.
async fn go_on(proxy: Proxy, rest: &[String], op: Op) -> Result<Value> {
    match proxy.local_object() {
        Some(obj) => perform(obj.clone(), rest, op).await,
        None => proxy.path_to(rest.iter().cloned()).run(op, None).await,
    }
}

/// Operations on the object itself (an empty path).
fn on_self(obj: Arc<dyn Object>, op: Op) -> Reply {
    let info = obj.type_info();
    let result = match op {
        Op::Call(args) => match gate::callable(info) {
            Ok(idx) => return obj.invoke(idx, Invocation::Call(args)),
            Err(e) => Err(e),
        },
        Op::Get | Op::Bind => Ok(Value::Ref(Proxy::local(obj))),
        Op::Describe => Ok(describe_type(info)),
        Op::Set(_) => Err(gate::set_self()),
        Op::Dir => Ok(Value::List(
            gate::dir(info).map(|m| Value::Str(m.to_owned())).collect(),
        )),
        Op::Help => Ok(Value::Str(gate::help_type(info))),
    };
    Reply::Ready(result)
}

/// The object reference read from property `idx`, which must hold one.
fn as_object(info: &'static TypeInfo, idx: usize, value: Value) -> Result<Proxy> {
    match value {
        Value::Ref(p) => Ok(p),
        other => Err(gate::not_an_object(info, idx, other.type_name())),
    }
}

/// The value of a type's [`Description`](crate::surface::Description).
fn describe_type(info: &'static TypeInfo) -> Value {
    let members = info
        .members
        .iter()
        .map(|m| {
            let kind = match m.kind {
                MemberKind::Method => "method",
                MemberKind::Property { settable: false } => "property",
                MemberKind::Property { settable: true } => "settable",
            };
            Value::Map(vec![
                (Value::from("name"), Value::from(m.name)),
                (Value::from("kind"), Value::from(kind)),
                (Value::from("doc"), Value::from(m.doc)),
            ])
        })
        .collect();
    description(info.name, info.doc, info.call.is_some(), members)
}

/// The value of a method's [`Description`](crate::surface::Description): type `method`, the
/// method's doc, callable, no members.
fn describe_method(info: &'static TypeInfo, idx: usize) -> Value {
    let m = &info.members[idx];
    description("method", m.doc, true, Vec::new())
}

fn description(type_name: &str, doc: &str, callable: bool, members: Vec<Value>) -> Value {
    Value::Map(vec![
        (Value::from("type_name"), Value::from(type_name)),
        (Value::from("doc"), Value::from(doc)),
        (Value::from("callable"), Value::Bool(callable)),
        (Value::from("members"), Value::List(members)),
    ])
}
