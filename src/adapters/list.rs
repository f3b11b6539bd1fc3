//! A shared list.

use parking_lot::Mutex;

use crate::adapters::Iter;
use crate::error::{Error, ErrorKind, Result};
use crate::object::Obj;
use crate::value::Value;

/// A list lent by reference: the peer's `append`s land here and this side sees them at once.
#[derive(Default)]
pub struct List {
    items: Mutex<Vec<Value>>,
}

impl List {
    /// An empty list.
    pub fn new() -> List {
        List::default()
    }

    /// A list holding `items`.
    pub fn from_vec(items: Vec<Value>) -> List {
        List {
            items: Mutex::new(items),
        }
    }

    /// A copy of the current items.
    pub fn snapshot(&self) -> Vec<Value> {
        self.items.lock().clone()
    }

    /// Appends locally.
    pub fn push(&self, item: Value) {
        self.items.lock().push(item);
    }
}

fn index(len: usize, i: i64) -> Result<usize> {
    let j = if i < 0 { len as i64 + i } else { i };
    if j < 0 || j as u64 >= len as u64 {
        return Err(Error::remote(
            ErrorKind::BadArguments,
            format!("index {i} out of range for a list of {len}"),
        ));
    }
    Ok(j as usize)
}

/// A list shared by reference.
#[crate::expose]
impl List {
    /// Adds `item` at the end.
    #[exposed]
    fn append(&self, item: Value) {
        self.items.lock().push(item);
    }

    /// Adds every item of `items` at the end.
    #[exposed]
    fn extend(&self, items: Vec<Value>) {
        self.items.lock().extend(items);
    }

    /// Inserts `item` before position `index`.
    #[exposed]
    fn insert(&self, index: i64, item: Value) -> Result<()> {
        let mut items = self.items.lock();
        let at = if index as u64 == items.len() as u64 {
            items.len()
        } else {
            self::index(items.len(), index)?
        };
        items.insert(at, item);
        Ok(())
    }

    /// The item at `index` (negative counts from the end).
    #[exposed]
    fn get(&self, index: i64) -> Result<Value> {
        let items = self.items.lock();
        Ok(items[self::index(items.len(), index)?].clone())
    }

    /// Replaces the item at `index`.
    #[exposed]
    fn set(&self, index: i64, item: Value) -> Result<()> {
        let mut items = self.items.lock();
        let i = self::index(items.len(), index)?;
        items[i] = item;
        Ok(())
    }

    /// Removes and returns the item at `index` (the last one by default).
    #[exposed]
    fn pop(&self, index: Option<i64>) -> Result<Value> {
        let mut items = self.items.lock();
        let i = self::index(items.len(), index.unwrap_or(-1))?;
        Ok(items.remove(i))
    }

    /// The number of items.
    #[exposed]
    pub fn len(&self) -> usize {
        self.items.lock().len()
    }

    /// True when the list has no items.
    #[exposed]
    pub fn is_empty(&self) -> bool {
        self.items.lock().is_empty()
    }

    /// True when an item equals `item`.
    #[exposed]
    fn contains(&self, item: Value) -> bool {
        self.items.lock().contains(&item)
    }

    /// Removes every item.
    #[exposed]
    pub fn clear(&self) {
        self.items.lock().clear();
    }

    /// A copy of all items, by value.
    #[exposed]
    fn items(&self) -> Vec<Value> {
        self.snapshot()
    }

    /// An iterator over a snapshot of the items.
    #[exposed]
    fn iter(&self) -> Obj<Iter> {
        Obj::new(Iter::new(self.snapshot()))
    }
}
