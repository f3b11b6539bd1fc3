//! A Python object as a netref [`Object`], so tools built on netref's own connections (the
//! REPL, `netref call`) can reach it: [`Connection::bridge`](super::Connection::bridge).
//!
//! netref's gate knows an object's members from a static [`TypeInfo`]; a Python object's
//! members are whatever its `dir()` says. The bridge asks `dir()` once and describes every
//! public name as a settable property: reading it is `GETATTR`, setting it `SETATTR`, and
//! calling it reads the attribute (a bound method) and calls that. What comes back is an
//! ordinary proxy of the Python object, which goes on over RPyC's wire.
//!
//! The description must live as long as the program (`TypeInfo` is `'static`). Descriptions
//! are interned by type name (the `repr` without its address) and member list: a bridge to a
//! kind of Python object already described reuses that description, so reconnecting, or a
//! REPL session after another, allocates nothing that stays. What stays is one description
//! per distinct kind of object bridged in the process.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

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
        let repr = super::repr(&target)
            .await
            .unwrap_or_else(|_| "python object".into());
        let mut names: Vec<String> = names.into_iter().filter(|n| !n.starts_with('_')).collect();
        names.sort();
        names.dedup();
        let info = describe(kind_of(&repr), names);
        Ok(Bridge { target, info })
    }
}

/// `repr`'s text without the instance's address: `<__main__.Lab object at 0x7f…>` is the
/// kind `<__main__.Lab object>`.
fn kind_of(repr: &str) -> String {
    match repr.find(" at 0x") {
        Some(at) => format!("{}>", &repr[..at]),
        None => repr.to_owned(),
    }
}

/// The one description of objects of kind `name` with members `names`, made the first time
/// it is asked for.
fn describe(name: String, names: Vec<String>) -> &'static TypeInfo {
    type Key = (String, Vec<String>);
    static KNOWN: OnceLock<Mutex<HashMap<Key, &'static TypeInfo>>> = OnceLock::new();
    let mut known = KNOWN.get_or_init(Default::default).lock();
    let key = (name, names);
    if let Some(info) = known.get(&key) {
        return info;
    }
    let members: Vec<MemberInfo> = key
        .1
        .iter()
        .map(|n| {
            let name: &'static str = Box::leak(n.clone().into_boxed_str());
            MemberInfo {
                name,
                kind: MemberKind::Property { settable: true },
                signature: name,
                doc: "",
            }
        })
        .collect();
    let info: &'static TypeInfo = Box::leak(Box::new(TypeInfo {
        name: Box::leak(key.0.clone().into_boxed_str()),
        doc: "A Python object on RPyC's wire: its public attributes, as dir() lists them.",
        members: Box::leak(members.into_boxed_slice()),
        call: None,
    }));
    known.insert(key, info);
    info
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{expose, Config, Obj};

    struct Calc;

    #[expose]
    impl Calc {
        #[exposed]
        fn add(&self, a: i64, b: i64) -> i64 {
            a + b
        }
    }

    #[test]
    fn a_kind_is_its_repr_without_the_address() {
        assert_eq!(
            kind_of("<__main__.Lab object at 0x7f3a2c1d9e10>"),
            "<__main__.Lab object>"
        );
        assert_eq!(kind_of("<netref Calc object>"), "<netref Calc object>");
    }

    #[tokio::test]
    async fn bridges_to_one_kind_share_one_description() {
        let mut infos = Vec::new();
        for _ in 0..3 {
            let (a, b) = tokio::io::duplex(64 * 1024);
            let (ar, aw) = tokio::io::split(a);
            let (br, bw) = tokio::io::split(b);
            let _server =
                super::super::from_io(ar, aw, Config::default(), Some(Obj::new(Calc).erase()));
            let client = super::super::from_io(br, bw, Config::default(), None);
            let bridge = client.bridge().await.unwrap();
            let info: &'static TypeInfo = bridge.type_info();
            assert_eq!(info.members.len(), 1);
            assert_eq!(info.members[0].name, "add");
            infos.push(info);
            client.close().await;
        }
        assert!(std::ptr::eq(infos[0], infos[1]) && std::ptr::eq(infos[1], infos[2]));
    }
}
