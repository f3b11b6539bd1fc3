//! A Python object as a netref [`Object`], so tools built on netref's own connections (the
//! REPL, `netref call`) can reach it: [`Connection::bridge`](super::Connection::bridge).
//!
//! netref's gate knows an object's members from a static [`TypeInfo`]; a Python object's
//! members are whatever its `dir()` says. The bridge asks `dir()` once and describes every
//! public name as a settable property: reading it is `GETATTR`, setting it `SETATTR`, and
//! calling it reads the attribute (a bound method) and calls that. What comes back is an
//! ordinary proxy of the Python object, which goes on over RPyC's wire.
//!
//! The description must live as long as the program (`TypeInfo` is `'static`), so each
//! bridge leaks one: make one per connection, not one per call.

use std::sync::Arc;

use crate::error::Result;
use crate::object::{Invocation, MemberInfo, MemberKind, Object, Reply, TypeInfo};
use crate::proxy::Proxy;
use crate::value::Value;

/// A Python object seen through netref's gate.
pub(crate) struct Bridge {
    target: Proxy,
    info: &'static TypeInfo,
}

impl Bridge {
    /// A bridge to `target` (a proxy of a Python object), with the members `dir()` lists.
    pub(crate) async fn new(target: Proxy) -> Result<Bridge> {
        let names = target.dir().await?;
        let kind = super::repr(&target)
            .await
            .unwrap_or_else(|_| "python object".into());
        let members: Vec<MemberInfo> = names
            .into_iter()
            .filter(|n| !n.starts_with('_'))
            .map(|n| {
                let name: &'static str = Box::leak(n.into_boxed_str());
                MemberInfo {
                    name,
                    kind: MemberKind::Property { settable: true },
                    signature: name,
                    doc: "",
                }
            })
            .collect();
        let info = Box::leak(Box::new(TypeInfo {
            name: Box::leak(kind.into_boxed_str()),
            doc: "A Python object on RPyC's wire: its public attributes, as dir() lists them.",
            members: Box::leak(members.into_boxed_slice()),
            call: None,
        }));
        Ok(Bridge { target, info })
    }
}

impl Object for Bridge {
    fn type_info(&self) -> &'static TypeInfo {
        self.info
    }

    fn invoke(self: Arc<Self>, member: usize, inv: Invocation) -> Reply {
        let Some(m) = self.info.members.get(member) else {
            return Reply::Ready(Err(crate::__private::bad_invocation(
                self.info.name,
                member,
            )));
        };
        let attr = self.target.attr(m.name);
        match inv {
            Invocation::Get => Reply::later(async move { attr.get().await }),
            Invocation::Set(v) => {
                Reply::later(async move { attr.set(v).await.map(|()| Value::Nil) })
            }
            Invocation::Call(args) => Reply::later(async move { attr.call(args).await }),
        }
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}
