//! A remote iterator.

use parking_lot::Mutex;
use serde::Serialize;

use crate::error::Result;
use crate::value::{to_value, Value};

type BoxIter = Box<dyn Iterator<Item = Result<Value>> + Send>;

/// An iterator lent by reference: the peer pulls items in batches.
///
/// The end of the sequence is told apart from every item: `next_batch` answers an empty
/// list only at the end (an item that is nil is a list holding nil), and `next` fails with
/// [`ErrorKind::StopIteration`](crate::ErrorKind::StopIteration) there.
///
/// ```
/// use netref::{adapters::Iter, Obj, Proxy, Value};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let it = Proxy::local(Obj::new(Iter::new([Value::Nil, Value::Int(7)])).erase());
/// assert_eq!(it.call_method("next", ()).await.unwrap(), Value::Nil);
/// assert_eq!(it.call_method("next", ()).await.unwrap(), Value::Int(7));
/// assert!(it.call_method("next", ()).await.unwrap_err().is_stop_iteration());
/// # });
/// ```
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

/// A remote iterator: call `next_batch(max)` until it returns an empty list, or `next()`
/// until it fails with `stop iteration`. [`Proxy::iter`](crate::Proxy::iter) does the
/// batching for you.
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

    /// Returns the next item; after the last one, fails with a `stop iteration` error
    /// (`ErrorKind::StopIteration`), so that the end is never mistaken for an item such as
    /// nil.
    #[exposed]
    fn next(&self) -> Result<Value> {
        self.next_batch(1)?
            .pop()
            .ok_or_else(crate::Error::stop_iteration)
    }
}
