//! A shared map with string keys.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::adapters::Iter;
use crate::error::{Error, ErrorKind, Result};
use crate::object::Obj;
use crate::value::Value;

/// A map lent by reference, with string keys kept in order.
#[derive(Default)]
pub struct Map {
    entries: Mutex<BTreeMap<String, Value>>,
}

impl Map {
    /// An empty map.
    pub fn new() -> Map {
        Map::default()
    }

    /// A copy of the current entries.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        self.entries.lock().clone()
    }

    /// Inserts locally, returning the previous value.
    pub fn insert(&self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.entries.lock().insert(key.into(), value)
    }
}

/// A map shared by reference.
#[crate::expose]
impl Map {
    /// The value at `key`, or `default` (nil when not given) when absent.
    #[exposed]
    pub fn get(&self, key: String, default: Option<Value>) -> Value {
        self.entries
            .lock()
            .get(&key)
            .cloned()
            .or(default)
            .unwrap_or_default()
    }

    /// Sets `key` to `value`.
    #[exposed]
    fn set(&self, key: String, value: Value) {
        self.entries.lock().insert(key, value);
    }

    /// Removes `key` and returns its value; an error when absent.
    #[exposed]
    fn remove(&self, key: String) -> Result<Value> {
        self.entries
            .lock()
            .remove(&key)
            .ok_or_else(|| Error::remote(ErrorKind::BadArguments, format!("no key {key:?}")))
    }

    /// True when `key` is present.
    #[exposed]
    fn contains(&self, key: String) -> bool {
        self.entries.lock().contains_key(&key)
    }

    /// The number of entries.
    #[exposed]
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// True when the map has no entries.
    #[exposed]
    pub fn is_empty(&self) -> bool {
        self.entries.lock().is_empty()
    }

    /// The keys, in order.
    #[exposed]
    fn keys(&self) -> Vec<String> {
        self.entries.lock().keys().cloned().collect()
    }

    /// The values, in key order.
    #[exposed]
    fn values(&self) -> Vec<Value> {
        self.entries.lock().values().cloned().collect()
    }

    /// `[key, value]` pairs, in key order.
    #[exposed]
    fn items(&self) -> Vec<(String, Value)> {
        self.entries
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Removes every entry.
    #[exposed]
    fn clear(&self) {
        self.entries.lock().clear();
    }

    /// An iterator over a snapshot of the keys.
    #[exposed]
    fn iter(&self) -> Obj<Iter> {
        Obj::new(Iter::new(self.keys()))
    }
}
