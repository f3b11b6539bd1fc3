//! The policy gate: the one place where a requested name and operation meet an object's
//! exposed surface.
//!
//! The gate decides; it runs nothing. [`crate::dispatch`] walks a path and asks the gate at
//! every segment: a segment must name a member in the object's static [`TypeInfo`] (which
//! the macro builds from `#[exposed]` markers only), and the operation must fit that
//! member's kind (method: call; property: get; set only with an exposed setter). The gate
//! answers with the member's **index**, and `dispatch` invokes by that index only: no code
//! path reaches a handler by a free-form name, and unmarked methods are not in any table.
//!
//! The gate sees type descriptions and names, nothing else: it imports no engine module, so
//! every wire and every kind of proxy reaches objects through the same rules.

use crate::error::{Error, ErrorKind, Result};
use crate::surface::{MemberInfo, MemberKind, TypeInfo};

/// What an operation asks of the member it names, without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Call it.
    Call,
    /// Read it.
    Get,
    /// Write it.
    Set,
    /// List its members.
    Dir,
    /// Describe it.
    Help,
    /// Describe it as data: its type, doc and members with their kinds.
    Describe,
    /// Read it when it is a property; bind it when it is a method.
    Bind,
}

/// The gate's answer for the member a path ends in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verdict {
    /// Invoke member `idx` with the operation (call the method, read or write the property).
    Invoke(usize),
    /// Read property `idx`, which must hold an object, and apply the operation to that
    /// object: `root.handler(x)` where `handler` holds a callable.
    Through(usize),
    /// Answer with this member's help text.
    Help(&'static MemberInfo),
    /// Method `idx`, bound to its object: a reference that calls it when called.
    Bound(usize),
    /// Method `idx`, described as data.
    DescribeMethod(usize),
}

/// The member a path walks through at segment `name`: a property (a method has no
/// attributes).
#[inline]
pub(crate) fn step(info: &'static TypeInfo, name: &str) -> Result<usize> {
    let idx = find(info, name)?;
    if info.members[idx].kind == MemberKind::Method {
        return Err(wrong(format!(
            "`{name}` is a method of `{}`; it has no attributes",
            info.name
        )));
    }
    Ok(idx)
}

/// What `access` on member `name` (the last segment of a path) may do.
#[inline]
pub(crate) fn admit(info: &'static TypeInfo, name: &str, access: Access) -> Result<Verdict> {
    let idx = find(info, name)?;
    let member = &info.members[idx];
    match (access, member.kind) {
        (Access::Call, MemberKind::Method) => Ok(Verdict::Invoke(idx)),
        (Access::Get | Access::Bind, MemberKind::Property { .. }) => Ok(Verdict::Invoke(idx)),
        (Access::Bind, MemberKind::Method) => Ok(Verdict::Bound(idx)),
        (Access::Describe, MemberKind::Method) => Ok(Verdict::DescribeMethod(idx)),
        (Access::Set, MemberKind::Property { settable: true }) => Ok(Verdict::Invoke(idx)),
        (Access::Set, MemberKind::Property { settable: false }) => Err(wrong(format!(
            "property `{name}` of `{}` is read-only",
            info.name
        ))),
        (Access::Get | Access::Set, MemberKind::Method) => Err(wrong(format!(
            "`{name}` is a method of `{}`: call it",
            info.name
        ))),
        (Access::Dir, MemberKind::Method) => Err(wrong(format!(
            "`{name}` is a method of `{}`, not an object",
            info.name
        ))),
        (Access::Help, _) => Ok(Verdict::Help(member)),
        (Access::Call | Access::Dir | Access::Describe, MemberKind::Property { .. }) => {
            Ok(Verdict::Through(idx))
        }
    }
}

/// The member run when the object itself is called.
#[inline]
pub(crate) fn callable(info: &'static TypeInfo) -> Result<usize> {
    match info.call {
        Some(idx) if idx < info.members.len() => Ok(idx),
        _ => Err(wrong(format!("`{}` is not callable", info.name))),
    }
}

/// Why an object itself cannot be set.
pub(crate) fn set_self() -> Error {
    wrong("cannot set an object itself; name a property".to_string())
}

/// The names `dir` lists: exposed members only.
pub(crate) fn dir(info: &'static TypeInfo) -> impl Iterator<Item = &'static str> {
    info.members.iter().map(|m| m.name)
}

/// Why property `idx` cannot be walked through: it holds a `found`, not an object.
pub(crate) fn not_an_object(info: &TypeInfo, idx: usize, found: &str) -> Error {
    wrong(format!(
        "property `{}` of `{}` is a {found}, not an object",
        info.members[idx].name, info.name,
    ))
}

#[inline]
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
