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
use crate::object::{Invocation, MemberInfo, MemberKind, Object, TypeInfo};
use crate::protocol::Op;
use crate::proxy::Proxy;
use crate::value::Value;

/// Applies `op` to the member `path` names, starting at `obj`.
pub(crate) async fn perform(obj: Arc<dyn Object>, path: &[String], op: Op) -> Result<Value> {
    let mut cur = obj;
    let Some((last, init)) = path.split_last() else {
        return on_self(cur, op).await;
    };
    for (i, seg) in init.iter().enumerate() {
        let info = cur.type_info();
        let idx = find(info, seg)?;
        if info.members[idx].kind == MemberKind::Method {
            return Err(wrong(format!(
                "`{seg}` is a method of `{}`; it has no attributes",
                info.name
            )));
        }
        let proxy = property_object(&cur, info, idx).await?;
        match proxy.local_object() {
            Some(obj) => cur = obj.clone(),
            // A remote object (or a lazy path): hand it the rest of the path.
            None => {
                let rest = proxy.path_to(path[i + 1..].iter().cloned());
                return Box::pin(rest.run(op, None)).await;
            }
        }
    }
    let info = cur.type_info();
    let idx = find(info, last)?;
    let member = &info.members[idx];
    match (op, member.kind) {
        (Op::Call(args), MemberKind::Method) => cur.invoke(idx, Invocation::Call(args)).await,
        (Op::Get, MemberKind::Property { .. }) => cur.invoke(idx, Invocation::Get).await,
        (Op::Set(v), MemberKind::Property { settable: true }) => {
            cur.invoke(idx, Invocation::Set(v)).await
        }
        (Op::Set(_), MemberKind::Property { settable: false }) => Err(wrong(format!(
            "property `{last}` of `{}` is read-only",
            info.name
        ))),
        (Op::Get | Op::Set(_), MemberKind::Method) => Err(wrong(format!(
            "`{last}` is a method of `{}`: call it",
            info.name
        ))),
        (Op::Dir, MemberKind::Method) => Err(wrong(format!(
            "`{last}` is a method of `{}`, not an object",
            info.name
        ))),
        (Op::Help, _) => Ok(Value::Str(help_member(member))),
        (op @ (Op::Call(_) | Op::Dir), MemberKind::Property { .. }) => {
            // `root.handler(x)` where `handler` is a property holding a callable object.
            let proxy = property_object(&cur, info, idx).await?;
            Box::pin(proxy.run(op, None)).await
        }
    }
}

/// Operations on the object itself (an empty path).
async fn on_self(obj: Arc<dyn Object>, op: Op) -> Result<Value> {
    let info = obj.type_info();
    match op {
        Op::Call(args) => match info.call {
            Some(idx) if idx < info.members.len() => obj.invoke(idx, Invocation::Call(args)).await,
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
    }
}

/// Reads property `idx` and requires an object reference.
async fn property_object(obj: &Arc<dyn Object>, info: &TypeInfo, idx: usize) -> Result<Proxy> {
    let value = obj.clone().invoke(idx, Invocation::Get).await?;
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
