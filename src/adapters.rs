//! Built-in objects that travel by reference: a local file, a shared list, a shared map and
//! an iterator.
//!
//! # Usage
//!
//! Lend them like any exposed object: wrap in [`Obj`](crate::Obj) and pass them as an argument
//! or return value. The peer gets a proxy with RPyC-like methods (`read`, `readline`,
//! `append`, `get`, `set`, `len`, `iter` …) while this side keeps direct access
//! ([`List::snapshot`], [`Map::snapshot`]).
//!
//! Iteration: an iterable object has an exposed `iter()` returning an [`Iter`], whose
//! `next_batch(max)` returns up to `max` items (empty at the end);
//! [`Proxy::iter`](crate::Proxy::iter) drives it.
//!
//! # Example
//!
//! ```
//! use netref::{adapters::List, Obj, Proxy};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let list = Obj::new(List::new());
//! let p = Proxy::local(list.erase());
//! p.call_method("append", (1,)).await.unwrap();
//! p.call_method("append", ("two",)).await.unwrap();
//! assert_eq!(list.snapshot(), vec![netref::Value::Int(1), netref::Value::from("two")]);
//! # });
//! ```

mod file;
mod iter;
mod list;
mod map;

pub use file::{File, FileProxy};
pub use iter::{Iter, IterProxy};
pub use list::{List, ListProxy};
pub use map::{Map, MapProxy};
