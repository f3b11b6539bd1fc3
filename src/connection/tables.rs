//! The connection's tables: what this side lends (exports), what it holds (imports), the
//! answers it keeps for pipelined calls, the incoming calls still running, and its root.
//! Each table owns its lock; the rest of the engine calls methods, and what a table lets go
//! of is dropped outside its lock (an object's `Drop` may reach back into the connection).
//!
//! Counting follows DESIGN §1: the owner adds one to an export's count each time it sends the
//! id; the holder adds one to an import's count each time it receives it; when the holder's
//! last proxy goes, it sends `Release(id, count)` and the owner subtracts. Both sides count the
//! same events, so the algebra stays exact while messages cross in flight.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use slotmap::{DefaultKey, Key, KeyData, SlotMap};
use tokio::sync::{oneshot, watch};

use super::Link;
use crate::error::{Error, ErrorKind, RemoteError, Result};
use crate::object::Object;
use crate::protocol::fmt_id;
use crate::proxy::{Proxy, Target};
use crate::value::Value;

/// The export table: what this side lends the peer.
pub(crate) struct ExportTable(Mutex<Exports>);

impl ExportTable {
    /// An empty table that lends at most `max` objects at once.
    pub(crate) fn new(max: usize) -> ExportTable {
        ExportTable(Mutex::new(Exports::new(max)))
    }

    /// Counts one send of `proxy` and returns its id (the same id while it stays lent).
    #[inline]
    pub(crate) fn export(&self, proxy: &Proxy) -> Result<u64> {
        self.0.lock().export(proxy)
    }

    /// The object behind `id`, if it is live (a stale generation finds nothing).
    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<Proxy> {
        self.0.lock().get(id)
    }

    /// Subtracts each `(id, count)` of sends the peer released, freeing what reaches zero.
    pub(crate) fn release(&self, items: impl IntoIterator<Item = (u64, u64)>) {
        let mut freed = Vec::new();
        {
            let mut exports = self.0.lock();
            for (id, count) in items {
                freed.extend(exports.release(id, count));
            }
        }
        // Objects are dropped here, outside the lock.
        drop(freed);
    }

    /// Number of live exports.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// One row per lent object (unsorted).
    pub(crate) fn rows(&self) -> Vec<TableEntry> {
        self.0.lock().rows()
    }

    /// Frees every export (teardown).
    pub(crate) fn clear(&self) {
        let all = self.0.lock().take_all();
        drop(all);
    }
}

/// The import table: the peer's objects this side holds.
#[derive(Default)]
pub(crate) struct ImportTable(Mutex<Imports>);

impl ImportTable {
    /// Counts one receipt of `id` and returns its handle (the existing one when alive).
    #[inline]
    pub(crate) fn receive(&self, link: &Arc<Link>, id: u64) -> Arc<Import> {
        self.0.lock().receive(link, id)
    }

    /// The live handle of `id`, or a new one counting no receipt (see
    /// `Connection::remote_object`).
    pub(crate) fn lookup_raw(&self, link: &Arc<Link>, id: u64) -> Arc<Import> {
        self.0.lock().lookup_raw(link, id)
    }

    /// Called by a dying handle: removes the entry if it is still that handle's, returning
    /// the count to release.
    pub(crate) fn forget(&self, id: u64, handle: *const Import) -> Option<u64> {
        self.0.lock().forget(id, handle)
    }

    /// Number of held remote objects.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().map.len()
    }

    /// One row per held remote object (unsorted).
    pub(crate) fn rows(&self) -> Vec<TableEntry> {
        self.0.lock().rows()
    }

    /// Forgets every import (teardown): nothing is released any more.
    pub(crate) fn clear(&self) {
        let all = std::mem::take(&mut self.0.lock().map);
        drop(all);
    }
}

/// A kept answer of a pipelined call, as the callee stores it.
pub(crate) type AnswerSlot = watch::Receiver<Option<std::result::Result<Value, RemoteError>>>;

/// Where a kept answer goes when its call ends.
pub(crate) type AnswerTx = watch::Sender<Option<std::result::Result<Value, RemoteError>>>;

/// The answers this side keeps for the peer's pipelined calls, by the peer's call id.
#[derive(Default)]
pub(crate) struct Answers(Mutex<HashMap<u64, AnswerSlot>>);

impl Answers {
    /// Keeps the answer of the peer's call `id`; the returned sender delivers it.
    pub(crate) fn keep(&self, id: u64) -> AnswerTx {
        let (tx, rx) = watch::channel(None);
        self.0.lock().insert(id, rx);
        tx
    }

    /// The kept answer of the peer's call `id`.
    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<AnswerSlot> {
        self.0.lock().get(&id).cloned()
    }

    /// Drops the kept answer of call `id` (`Finish`).
    pub(crate) fn finish(&self, id: u64) {
        let answer = self.0.lock().remove(&id);
        drop(answer);
    }

    /// Drops every kept answer (teardown).
    pub(crate) fn clear(&self) {
        let all: Vec<_> = self.0.lock().drain().collect();
        drop(all);
    }
}

/// The peer's calls still running on this side, by the peer's call id: dropping an entry's
/// sender cancels its handler.
#[derive(Default)]
pub(crate) struct Running(Mutex<HashMap<u64, oneshot::Sender<()>>>);

impl Running {
    /// Registers call `id`; the receiver fires (with an error) when it is cancelled.
    pub(crate) fn start(&self, id: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.0.lock().insert(id, tx);
        rx
    }

    /// Call `id` is over (or cancelled by `Cancel`: its handler's future is dropped).
    pub(crate) fn end(&self, id: u64) {
        let cancel = self.0.lock().remove(&id);
        drop(cancel);
    }

    /// Calls running now.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// True when no call is running.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().is_empty()
    }

    /// Cancels every running call (teardown).
    pub(crate) fn clear(&self) {
        let all: Vec<_> = self.0.lock().drain().collect();
        drop(all);
    }
}

/// The object this side lends as its root.
pub(crate) struct Root(Mutex<Option<Arc<dyn Object>>>);

impl Root {
    pub(crate) fn new(root: Option<Arc<dyn Object>>) -> Root {
        Root(Mutex::new(root))
    }

    /// The root object, if this side lends one.
    #[inline]
    pub(crate) fn get(&self) -> Option<Arc<dyn Object>> {
        self.0.lock().clone()
    }

    /// Lends `root` instead (`None`: no root); the old one is dropped outside the lock.
    pub(crate) fn replace(&self, root: Option<Arc<dyn Object>>) {
        let old = std::mem::replace(&mut *self.0.lock(), root);
        drop(old);
    }
}

/// One lent object.
struct ExportEntry {
    /// What the id stands for: a local object, or a proxy forwarded for a third party.
    proxy: Proxy,
    /// Sends not yet released by the peer.
    count: u64,
    /// Identity key while lent, so one object has one id.
    identity: Option<usize>,
}

/// The owner's table: generational ids (slotmap keys) to lent objects.
struct Exports {
    slots: SlotMap<DefaultKey, ExportEntry>,
    by_identity: HashMap<usize, DefaultKey>,
    max: usize,
}

/// The key an id names, if the id is one this table could have issued: `from_ffi` adjusts
/// some bit patterns (an even generation becomes odd), and such an alias must not reach the
/// object whose id it is not.
fn key_of(id: u64) -> Option<DefaultKey> {
    let data = KeyData::from_ffi(id);
    (data.as_ffi() == id).then(|| DefaultKey::from(data))
}

impl Exports {
    /// An empty table that lends at most `max` objects at once.
    fn new(max: usize) -> Exports {
        Exports {
            slots: SlotMap::new(),
            by_identity: HashMap::new(),
            max,
        }
    }

    /// Counts one send of `proxy` and returns its id (the same id while it stays lent).
    fn export(&mut self, proxy: &Proxy) -> Result<u64> {
        // A proxy with a path is a different thing from its object: no shared identity.
        let identity = proxy.path.is_empty().then(|| proxy.identity());
        if let Some(key) = identity.and_then(|i| self.by_identity.get(&i).copied()) {
            if let Some(entry) = self.slots.get_mut(key) {
                entry.count += 1;
                return Ok(key.data().as_ffi());
            }
        }
        if self.slots.len() >= self.max {
            return Err(Error::limit(
                ErrorKind::Overloaded,
                format!(
                    "cannot lend another object: {} are lent on this connection (the limit)",
                    self.max
                ),
            ));
        }
        let key = self.slots.insert(ExportEntry {
            proxy: proxy.clone(),
            count: 1,
            identity,
        });
        if let Some(i) = identity {
            self.by_identity.insert(i, key);
        }
        Ok(key.data().as_ffi())
    }

    /// The object behind `id`, if it is live (a stale generation finds nothing).
    fn get(&self, id: u64) -> Option<Proxy> {
        self.slots.get(key_of(id)?).map(|e| e.proxy.clone())
    }

    /// Subtracts `count` sends; returns the object when it is freed, so the caller can drop
    /// it outside the lock.
    fn release(&mut self, id: u64, count: u64) -> Option<Proxy> {
        let key = key_of(id)?;
        let entry = self.slots.get_mut(key)?;
        entry.count = entry.count.saturating_sub(count);
        if entry.count > 0 {
            return None;
        }
        let entry = self.slots.remove(key)?;
        if let Some(i) = entry.identity {
            self.by_identity.remove(&i);
        }
        Some(entry.proxy)
    }

    /// Number of live exports.
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// One row per lent object (unsorted).
    fn rows(&self) -> Vec<TableEntry> {
        self.slots
            .iter()
            .map(|(key, e)| TableEntry {
                id: key.data().as_ffi(),
                type_name: Some(describe(&e.proxy)),
                count: e.count,
            })
            .collect()
    }

    /// Empties the table, returning the objects to drop outside the lock.
    fn take_all(&mut self) -> Vec<Proxy> {
        self.by_identity.clear();
        self.slots.drain().map(|(_, e)| e.proxy).collect()
    }
}

/// What an export stands for: the type name of a local object, else the forwarded proxy.
fn describe(p: &Proxy) -> String {
    match &p.target {
        Target::Local(obj) if p.path.is_empty() => obj.type_info().name.to_owned(),
        _ => format!("forwarded {p}"),
    }
}

/// A snapshot of one connection's object tables (see
/// [`Connection::tables`](crate::Connection::tables)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tables {
    /// What this side lends the peer, sorted by id.
    pub exports: Vec<TableEntry>,
    /// The peer's objects this side holds proxies of, sorted by id.
    pub imports: Vec<TableEntry>,
}

/// One row of an object table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableEntry {
    /// The raw id, as [`Proxy::remote_id`] gives it; traces print it as `#slot v generation`
    /// ([`TableEntry::display_id`]).
    pub id: u64,
    /// For an export, the lent object's type name (`forwarded …` for a third party's object
    /// lent on); `None` for an import, whose type only the owner knows.
    pub type_name: Option<String>,
    /// For an export, the sends of the id the peer has not released yet; for an import, the
    /// receipts not released yet. At rest both sides' counts of one id are equal.
    pub count: u64,
}

impl TableEntry {
    /// The id as traces print it, for example `#1v1`.
    pub fn display_id(&self) -> String {
        fmt_id(self.id)
    }

    /// The order traces suggest: by slot, then by generation.
    pub(crate) fn sort_key(&self) -> (u64, u64) {
        (self.id & 0xffff_ffff, self.id >> 32)
    }
}

/// A holder's entry for one remote object.
struct ImportEntry {
    /// The live handle, if any proxy of it exists.
    handle: Weak<Import>,
    /// Receipts not yet released.
    count: u64,
}

/// The holder's table: remote id to the one live handle of it.
#[derive(Default)]
struct Imports {
    map: HashMap<u64, ImportEntry>,
}

impl Imports {
    /// Counts one receipt of `id` and returns its handle (the existing one when alive).
    fn receive(&mut self, link: &Arc<Link>, id: u64) -> Arc<Import> {
        let entry = self.map.entry(id).or_insert_with(|| ImportEntry {
            handle: Weak::new(),
            count: 0,
        });
        entry.count += 1;
        if let Some(h) = entry.handle.upgrade() {
            return h;
        }
        // New, or the old handle is being dropped right now: its count carries over to
        // this one and the dying handle will find it is no longer the entry's.
        let h = Arc::new(Import {
            link: link.clone(),
            id,
        });
        entry.handle = Arc::downgrade(&h);
        h
    }

    /// The live handle of `id`, or a new one counting no receipt (see
    /// `Connection::remote_object`).
    fn lookup_raw(&mut self, link: &Arc<Link>, id: u64) -> Arc<Import> {
        let entry = self.map.entry(id).or_insert_with(|| ImportEntry {
            handle: Weak::new(),
            count: 0,
        });
        if let Some(h) = entry.handle.upgrade() {
            return h;
        }
        let h = Arc::new(Import {
            link: link.clone(),
            id,
        });
        entry.handle = Arc::downgrade(&h);
        h
    }

    /// One row per held remote object (unsorted).
    fn rows(&self) -> Vec<TableEntry> {
        self.map
            .iter()
            .map(|(&id, e)| TableEntry {
                id,
                type_name: None,
                count: e.count,
            })
            .collect()
    }

    /// Called by a dying handle: removes the entry if it is still that handle's, returning
    /// the count to release.
    fn forget(&mut self, id: u64, handle: *const Import) -> Option<u64> {
        let entry = self.map.get(&id)?;
        if !std::ptr::eq(entry.handle.as_ptr(), handle) {
            return None;
        }
        self.map.remove(&id).map(|e| e.count).filter(|&c| c > 0)
    }
}

/// The one live handle to a remote object; every proxy of it shares this `Arc`.
pub(crate) struct Import {
    pub(crate) link: Arc<Link>,
    pub(crate) id: u64,
}

impl Drop for Import {
    fn drop(&mut self) {
        self.link.shared.drop_import(self.id, self as *const Import);
    }
}

/// The handle to the kept answer of a pipelined call.
pub(crate) struct AnswerHandle {
    pub(crate) link: Arc<Link>,
    pub(crate) id: u64,
}

impl Drop for AnswerHandle {
    fn drop(&mut self) {
        self.link.shared.queue_finish(self.id);
    }
}
