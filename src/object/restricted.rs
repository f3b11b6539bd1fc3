//! A narrower view of an object: the same object with only some of its exposed members.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use super::{Invocation, MemberInfo, Object, Reply, TypeInfo};
use crate::error::{Error, ErrorKind, Result};

/// An object lent with only some of its exposed members visible: a narrower capability.
///
/// Made by [`Obj::restrict`](super::Obj::restrict) (or [`Restricted::new`] for an erased
/// object). It is an [`Object`] of its own, so it travels by reference like any other, and
/// every operation on it goes through the same policy gate: its [`TypeInfo`] lists only the
/// members kept, in the order of the original, so a member left out is refused with
/// [`ErrorKind::NoSuchMember`] exactly like one that was never exposed, and `dir`/`help`
/// do not show it. A kept member runs the original object's handler.
///
/// # What it guarantees
///
/// - Only the members named are reachable through the view, by any operation (call, get,
///   set, `dir`, `help`, or a path through it).
/// - The view is a different object from the original: lent side by side they get different
///   ids, a proxy of the view sent home arrives as the view (not as the original, so
///   `Obj::<T>::downcast` of it fails), and dropping the view never frees the original.
/// - The restriction covers this object's own members. What a kept member returns is lent
///   as usual: restrict that object too if it must be narrower.
///
/// The narrowed [`TypeInfo`] is built once per process for each original type and set of
/// members, and kept for the life of the process (the engine needs a `'static` description);
/// restricting many objects of one type to the same members shares it.
///
/// # Example
///
/// ```
/// use netref::{expose, Obj, Proxy};
///
/// struct Doc;
/// #[expose]
/// impl Doc {
///     /// The text.
///     #[exposed]
///     fn read(&self) -> String { "hello".into() }
///     /// Replaces the text.
///     #[exposed]
///     fn write(&self, _text: String) {}
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let read_only = Obj::new(Doc).restrict(&["read"]).unwrap();
/// let p = Proxy::local(read_only);
/// assert_eq!(p.call_method("read", ()).await.unwrap().as_str(), Some("hello"));
/// assert!(p.call_method("write", ("x",)).await.unwrap_err().is_no_such_member());
/// assert_eq!(p.dir().await.unwrap(), ["read"]);
/// # });
/// ```
pub struct Restricted {
    inner: Arc<dyn Object>,
    info: &'static TypeInfo,
    /// For each member of `info`, its index in the original's `TypeInfo`.
    map: &'static [usize],
}

impl Restricted {
    /// A view of `inner` with only the exposed members named in `members`.
    ///
    /// Fails with [`ErrorKind::NoSuchMember`] when a name is not an exposed member of
    /// `inner`, so a typo cannot silently narrow the view further than meant.
    pub fn new(inner: Arc<dyn Object>, members: &[&str]) -> Result<Restricted> {
        let full = inner.type_info();
        let mut keep = Vec::with_capacity(members.len());
        for name in members {
            match full.find(name) {
                Some(i) => keep.push(i),
                None => {
                    return Err(Error::remote(
                        ErrorKind::NoSuchMember,
                        format!("`{}` has no exposed member `{name}` to keep", full.name),
                    ))
                }
            }
        }
        keep.sort_unstable();
        keep.dedup();
        let (info, map) = narrowed(full, keep);
        Ok(Restricted { inner, info, map })
    }

    /// The object this view narrows.
    pub fn inner(&self) -> &Arc<dyn Object> {
        &self.inner
    }
}

impl fmt::Debug for Restricted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.info.members.iter().map(|m| m.name).collect();
        f.debug_struct("Restricted")
            .field("type", &self.info.name)
            .field("members", &names)
            .finish()
    }
}

impl Object for Restricted {
    fn type_info(&self) -> &'static TypeInfo {
        self.info
    }

    fn invoke(self: Arc<Self>, member: usize, inv: Invocation) -> Reply {
        match self.map.get(member) {
            Some(&original) => self.inner.clone().invoke(original, inv),
            // The gate only passes indices of `info`; a hand-made call gets an error.
            None => Reply::Ready(Err(Error::remote(
                ErrorKind::NoSuchMember,
                format!("`{}` has no member number {member}", self.info.name),
            ))),
        }
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Narrowed descriptions already built, by original description and members kept.
type Narrowed = HashMap<(usize, Vec<usize>), (&'static TypeInfo, &'static [usize])>;

static NARROWED: LazyLock<Mutex<Narrowed>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The description of `full` with only the members at `keep` (sorted, distinct), and the map
/// from its indices to `full`'s. Built once per `(full, keep)` and kept.
fn narrowed(full: &'static TypeInfo, keep: Vec<usize>) -> (&'static TypeInfo, &'static [usize]) {
    let key = (full as *const TypeInfo as usize, keep);
    let mut cache = NARROWED.lock();
    if let Some(found) = cache.get(&key) {
        return *found;
    }
    let keep = &key.1;
    let members: Vec<MemberInfo> = keep
        .iter()
        .map(|&i| {
            let m = &full.members[i];
            MemberInfo {
                name: m.name,
                kind: m.kind,
                signature: m.signature,
                doc: m.doc,
            }
        })
        .collect();
    let call = full.call.and_then(|c| keep.iter().position(|&i| i == c));
    let info: &'static TypeInfo = Box::leak(Box::new(TypeInfo {
        name: full.name,
        doc: full.doc,
        members: Box::leak(members.into_boxed_slice()),
        call,
    }));
    let map: &'static [usize] = Box::leak(keep.clone().into_boxed_slice());
    cache.insert(key, (info, map));
    (info, map)
}
