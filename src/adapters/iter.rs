//! A remote iterator.

use parking_lot::Mutex;
use serde::Serialize;

use crate::error::Result;
use crate::value::{to_value, Value};

type BoxIter = Box<dyn Iterator<Item = Result<Value>> + Send>;

/// An iterator lent by reference: the peer pulls items in batches.
pub struct Iter {
    inner: Mutex<Option<BoxIter>>,
}

impl Iter {
    /// Lends the items of `iter` (converted with [`to_value`]).
    pub fn new<I>(iter: I) -> Iter
    where
        I: IntoIterator + Send + 'static,
        I::IntoIter: Send + 'static,
        I::Item: Serialize,
    {
        Iter::from_results(iter.into_iter().map(|item| to_value(&item)))
    }

    /// Lends an iterator whose items may fail; an error ends nothing, it is returned to the
    /// caller of the batch that reaches it.
    pub fn from_results<I>(iter: I) -> Iter
    where
        I: Iterator<Item = Result<Value>> + Send + 'static,
    {
        Iter {
            inner: Mutex::new(Some(Box::new(iter))),
        }
    }
}

/// A remote iterator: call `next_batch(max)` until it returns an empty list.
#[crate::expose]
impl Iter {
    /// Returns up to `max` next items (at least one unless the iterator is exhausted); an
    /// empty list means the end.
    #[exposed]
    fn next_batch(&self, max: u32) -> Result<Vec<Value>> {
        let mut guard = self.inner.lock();
        let mut out = Vec::new();
        let Some(it) = guard.as_mut() else {
            return Ok(out);
        };
        for _ in 0..max.clamp(1, 4096) {
            match it.next() {
                Some(item) => out.push(item?),
                None => {
                    *guard = None;
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Returns the next item, or nil at the end.
    #[exposed]
    fn next(&self) -> Result<Value> {
        Ok(self.next_batch(1)?.pop().unwrap_or_default())
    }
}
