//! The policy gate: the one place where a requested path and operation meet an object's
//! exposed surface.
//!
//! Every operation, local or remote, reaches an object through [`perform`]. It walks the
//! path segment by segment; each segment must name a member in the object's static
//! [`TypeInfo`]; the operation must fit that member's kind. Only then is
//! [`Object::invoke`] called, with the member's **index**: no code path reaches a handler by a
//! free-form name, and unmarked methods are not in any table.

use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::object::{Invocation, MemberInfo, MemberKind, Object, Reply, TypeInfo};
use crate::protocol::Op;
use crate::proxy::Proxy;
use crate::value::Value;

/// Applies `op` to the member `path` names, starting at `obj`.
pub(crate) async fn perform(obj: Arc<dyn Object>, path: &[String], op: Op) -> Result<Value> {
    start(obj, path, op).await
}

/// [`perform`], run synchronously as far as the handlers allow: the path is walked and the
/// handler invoked right here, and the result is [`Reply::Ready`] when every step was. From
/// the first step that is not ready (an async getter or handler, a remote object on the path)
/// the rest of the work is the future of a [`Reply::Later`].
///
/// A handler runs inside this call, so a caller that must survive panics catches them here.
pub(crate) fn start(obj: Arc<dyn Object>, path: &[String], op: Op) -> Reply {
    let mut cur = obj;
    let Some((last, init)) = path.split_last() else {
        return on_self(cur, op);
    };
    for (i, seg) in init.iter().enumerate() {
        let info = cur.type_info();
        let idx = match find(info, seg) {
            Ok(idx) => idx,
            Err(e) => return Reply::Ready(Err(e)),
        };
        if info.members[idx].kind == MemberKind::Method {
            return Reply::Ready(Err(wrong(format!(
                "`{seg}` is a method of `{}`; it has no attributes",
                info.name
            ))));
        }
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
    let idx = match find(info, last) {
        Ok(idx) => idx,
        Err(e) => return Reply::Ready(Err(e)),
    };
    let member = &info.members[idx];
    match (op, member.kind) {
        (Op::Call(args), MemberKind::Method) => cur.invoke(idx, Invocation::Call(args)),
        (Op::Get, MemberKind::Property { .. }) => cur.invoke(idx, Invocation::Get),
        (Op::Set(v), MemberKind::Property { settable: true }) => {
            cur.invoke(idx, Invocation::Set(v))
        }
        (Op::Set(_), MemberKind::Property { settable: false }) => Reply::Ready(Err(wrong(
            format!("property `{last}` of `{}` is read-only", info.name),
        ))),
        (Op::Get | Op::Set(_), MemberKind::Method) => Reply::Ready(Err(wrong(format!(
            "`{last}` is a method of `{}`: call it",
            info.name
        )))),
        (Op::Dir, MemberKind::Method) => Reply::Ready(Err(wrong(format!(
            "`{last}` is a method of `{}`, not an object",
            info.name
        )))),
        (Op::Help, _) => Reply::Ready(Ok(Value::Str(help_member(member)))),
        (op @ (Op::Call(_) | Op::Dir), MemberKind::Property { .. }) => {
            // `root.handler(x)` where `handler` is a property holding a callable object.
            let value = cur.invoke(idx, Invocation::Get);
            Reply::later(async move {
                let proxy = as_object(info, idx, value.await?)?;
                proxy.run(op, None).await
            })
        }
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
        Op::Call(args) => match info.call {
            Some(idx) if idx < info.members.len() => {
                return obj.invoke(idx, Invocation::Call(args))
            }
            _ => Err(wrong(format!("`{}` is not callable", info.name))),
        },
        Op::Get => Ok(Value::Ref(Proxy::local(obj))),
        Op::Set(_) => Err(wrong(
            "cannot set an object itself; name a property".to_string(),
        )),
        Op::Dir => Ok(Value::List(
            info.members
                .iter()
                .map(|m| Value::Str(m.name.to_owned()))
                .collect(),
        )),
        Op::Help => Ok(Value::Str(help_type(info))),
    };
    Reply::Ready(result)
}

/// The object reference read from property `idx`, which must hold one.
fn as_object(info: &TypeInfo, idx: usize, value: Value) -> Result<Proxy> {
    match value {
        Value::Ref(p) => Ok(p),
        other => Err(wrong(format!(
            "property `{}` of `{}` is a {}, not an object",
            info.members[idx].name,
            info.name,
            other.type_name()
        ))),
    }
}

fn find(info: &TypeInfo, name: &str) -> Result<usize> {
    info.find(name).ok_or_else(|| {
        Error::remote(
            ErrorKind::NoSuchMember,
            format!("`{}` has no exposed member `{name}`", info.name),
        )
    })
}

fn wrong(message: String) -> Error {
    Error::remote(ErrorKind::WrongOperation, message)
}

/// One member's help: its signature, kind and doc text.
pub(crate) fn help_member(m: &MemberInfo) -> String {
    let mut s = match m.kind {
        MemberKind::Method => m.signature.to_owned(),
        MemberKind::Property { settable: true } => format!("{}  (property)", m.signature),
        MemberKind::Property { settable: false } => {
            format!("{}  (read-only property)", m.signature)
        }
    };
    for line in m.doc.lines() {
        s.push_str("\n    ");
        s.push_str(line);
    }
    s
}

/// A type's help: its name and doc, then every exposed member.
pub(crate) fn help_type(info: &TypeInfo) -> String {
    let mut s = info.name.to_owned();
    if !info.doc.is_empty() {
        s.push_str(" - ");
        s.push_str(info.doc);
    }
    for m in info.members {
        s.push_str("\n  ");
        s.push_str(&help_member(m).replace('\n', "\n  "));
    }
    s
}
