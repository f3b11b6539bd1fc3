//! The objects this side lends to a Python peer, by id_pack, with RPyC's counting: each
//! time an object is boxed as a reference its count grows by one, and the peer's
//! `DEL(obj, n)` takes `n` off; the entry goes at zero.
//!
//! An object lent twice keeps one id_pack while it is lent (so Python's proxy cache gives
//! back the same proxy), and instance ids are never reused, so a stale id_pack can never
//! reach a newer object.

use std::collections::HashMap;
use std::sync::Arc;

use super::boxing::IdPack;
use crate::error::{Error, ErrorKind, Result};
use crate::proxy::Proxy;

/// `class_id` of the id_packs named `builtins.function` and `builtins.method`.
const FUNCTION_CLASS: i64 = 0x6e65_7466;
const METHOD_CLASS: i64 = 0x6e65_746d;
/// `class_id` of lent objects whose type this side does not know (a third party's).
const FORWARDED_CLASS: i64 = 0x6e65_7472;

/// One lent object.
pub(crate) struct Entry {
    /// The object (a local one, a member of one, or a forwarded proxy).
    pub(crate) proxy: Proxy,
    /// Its id_pack as the peer sees it.
    pub(crate) pack: IdPack,
    /// Boxings not yet released by the peer.
    pub(crate) count: u64,
}

/// The export table.
pub(crate) struct Exports {
    by_id: HashMap<i64, Entry>,
    by_identity: HashMap<(usize, Arc<[String]>), i64>,
    next: i64,
    max: usize,
}

impl Exports {
    /// An empty table holding at most `max` objects.
    pub(crate) fn new(max: usize) -> Exports {
        Exports {
            by_id: HashMap::new(),
            by_identity: HashMap::new(),
            next: 1,
            max,
        }
    }

    /// Counts one more boxing of `proxy`, lending it first if it is not lent yet; returns its
    /// id_pack.
    pub(crate) fn export(&mut self, proxy: &Proxy) -> Result<IdPack> {
        let key = (proxy.identity(), proxy.path.clone());
        if let Some(id) = self.by_identity.get(&key) {
            if let Some(e) = self.by_id.get_mut(id) {
                e.count += 1;
                return Ok(e.pack.clone());
            }
        }
        if self.by_id.len() >= self.max {
            return Err(Error::remote(
                ErrorKind::Overloaded,
                format!("this side already lends {} objects to the peer", self.max),
            ));
        }
        let id = self.next;
        self.next += 1;
        let pack = pack_for(proxy, id);
        self.by_id.insert(
            id,
            Entry {
                proxy: proxy.clone(),
                pack: pack.clone(),
                count: 1,
            },
        );
        self.by_identity.insert(key, id);
        Ok(pack)
    }

    /// Undoes one boxing (a message that was never sent).
    pub(crate) fn unsend(&mut self, pack: &IdPack) -> Option<Proxy> {
        self.release(pack.instance_id, 1)
    }

    /// The lent object `pack` names: it must be one of ours, live, with the same type.
    pub(crate) fn get(&self, pack: &IdPack) -> Result<&Entry> {
        match self.by_id.get(&pack.instance_id) {
            Some(e) if e.pack == *pack => Ok(e),
            _ => Err(no_such_object(pack)),
        }
    }

    /// Takes `count` off the entry of `id`; returns the object when its entry goes (to be
    /// dropped outside the lock).
    pub(crate) fn release(&mut self, id: i64, count: u64) -> Option<Proxy> {
        let e = self.by_id.get_mut(&id)?;
        if e.count > count {
            e.count -= count;
            return None;
        }
        let e = self.by_id.remove(&id)?;
        self.by_identity
            .remove(&(e.proxy.identity(), e.proxy.path.clone()));
        Some(e.proxy)
    }

    /// Number of lent objects.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// `(id_pack, count)` of every lent object, by id.
    pub(crate) fn rows(&self) -> Vec<(IdPack, u64)> {
        let mut rows: Vec<_> = self
            .by_id
            .values()
            .map(|e| (e.pack.clone(), e.count))
            .collect();
        rows.sort_by_key(|(p, _)| p.instance_id);
        rows
    }

    /// Empties the table, returning the objects (to be dropped outside the lock).
    pub(crate) fn clear(&mut self) -> Vec<Proxy> {
        self.by_identity.clear();
        self.by_id.drain().map(|(_, e)| e.proxy).collect()
    }
}

/// The error for an id_pack that names nothing lent.
pub(crate) fn no_such_object(pack: &IdPack) -> Error {
    Error::remote(
        ErrorKind::NoSuchObject,
        format!("no object {pack}: never lent, already released, or stale"),
    )
}

/// The id_pack of a newly lent `proxy` with instance id `id`. Callables and members get the
/// names of Python's prebuilt proxy classes (`builtins.function`, `builtins.method`), so
/// Python asks no `INSPECT` for them; other objects are `netref.<Type>`.
fn pack_for(proxy: &Proxy, id: i64) -> IdPack {
    let (name, class_id) = if !proxy.path.is_empty() {
        ("builtins.method".to_owned(), METHOD_CLASS)
    } else if let Some(obj) = proxy.local_object() {
        let info = obj.type_info();
        if info.call.is_some() && info.members.len() == 1 {
            ("builtins.function".to_owned(), FUNCTION_CLASS)
        } else {
            (format!("netref.{}", info.name), class_id(info.name))
        }
    } else {
        ("netref.RemoteObject".to_owned(), FORWARDED_CLASS)
    };
    IdPack {
        name,
        class_id,
        instance_id: id,
    }
}

/// A type's `class_id`: a hash of its name (FNV-1a, 40 bits), the same in every run, so
/// traces read the same.
fn class_id(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h & 0xff_ffff_ffff) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{callback, Obj};

    #[test]
    fn counts_boxings_and_releases() {
        let list = Proxy::local(Obj::new(crate::adapters::List::new()));
        let mut t = Exports::new(10);
        let a = t.export(&list).unwrap();
        let b = t.export(&list).unwrap();
        assert_eq!(a, b, "one id_pack while lent");
        assert_eq!(a.name, "netref.List");
        assert_eq!(t.rows(), vec![(a.clone(), 2)]);
        assert!(t.release(a.instance_id, 1).is_none());
        assert!(t.release(a.instance_id, 1).is_some());
        assert_eq!(t.len(), 0);
        let c = t.export(&list).unwrap();
        assert_ne!(c.instance_id, a.instance_id, "ids are never reused");
        assert!(t.get(&a).is_err(), "a stale id_pack reaches nothing");
        assert!(t.get(&c).is_ok());
        let forged = IdPack {
            name: "builtins.int".into(),
            ..c.clone()
        };
        assert!(t.get(&forged).is_err());
    }

    #[test]
    fn names_and_limits() {
        let mut t = Exports::new(2);
        let cb = callback(|x: i64| x);
        assert_eq!(t.export(&cb).unwrap().name, "builtins.function");
        let m = Proxy::local(Obj::new(crate::adapters::List::new())).attr("append");
        assert_eq!(t.export(&m).unwrap().name, "builtins.method");
        let e = t
            .export(&Proxy::local(Obj::new(crate::adapters::List::new())))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        assert_eq!(t.clear().len(), 2);
    }
}
