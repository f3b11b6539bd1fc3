//! Values ⇄ RPyC boxes, where references are counted.
//!
//! | netref [`Value`] | RPyC / Python |
//! |---|---|
//! | `Nil`, `Bool`, `Int`, `Float`, `Str`, `Bytes` | `None`, `bool`, `int`, `float`, `str`, `bytes` by value |
//! | `UInt` above `i64` | `int` |
//! | `List` | `tuple` (by value when it holds no reference, else boxed item by item) |
//! | `Map` | `tuple` of `(key, value)` pairs (`dict(x)` in Python rebuilds it) |
//! | `Ref` to this side's object | a reference Python holds (`LABEL_REMOTE_REF`) |
//! | `Ref` to a Python object of this connection | Python's own object (`LABEL_LOCAL_REF`) |
//!
//! And from Python: `tuple` and `frozenset` become `List`, ints beyond `u64` their decimal
//! `Str`, `complex` the list `[real, imag]`, `slice` the map `{start, stop, step}`,
//! `NotImplemented` and `Ellipsis` their names as `Str`; references become proxies.

use std::sync::Arc;

use super::boxing::{Boxed, IdPack};
use super::brine::Brine;
use super::exports::no_such_object;
use super::pyobj::PyRef;
use super::session::Session;
use crate::error::{Error, ErrorKind, Result};
use crate::proxy::{self, Proxy};
use crate::value::Value;

impl Session {
    /// Boxes a request's argument tuple.
    pub(crate) fn box_args(&self, args: Vec<Value>, lent: &mut Vec<IdPack>) -> Result<Boxed> {
        self.box_value(Value::List(args), lent, 0)
    }

    /// Boxes an outgoing value, lending this side's objects (their id_packs go to `lent`, so
    /// a message that is never sent can be undone).
    pub(crate) fn box_value(
        &self,
        v: Value,
        lent: &mut Vec<IdPack>,
        depth: usize,
    ) -> Result<Boxed> {
        if depth > self.limits.max_depth {
            return Err(Error::remote(
                ErrorKind::Value,
                format!(
                    "value nesting is over the limit of {}",
                    self.limits.max_depth
                ),
            ));
        }
        Ok(match v {
            Value::Ref(p) => self.box_ref(p, lent)?,
            Value::List(items) => {
                if items.iter().all(is_plain) {
                    Boxed::Value(Brine::Tuple(items.into_iter().map(plain).collect()))
                } else {
                    Boxed::Tuple(
                        items
                            .into_iter()
                            .map(|v| self.box_value(v, lent, depth + 1))
                            .collect::<Result<_>>()?,
                    )
                }
            }
            Value::Map(entries) => {
                let pairs = entries
                    .into_iter()
                    .map(|(k, v)| Value::List(vec![k, v]))
                    .collect();
                self.box_value(Value::List(pairs), lent, depth)?
            }
            other => Boxed::Value(plain(other)),
        })
    }

    fn box_ref(&self, p: Proxy, lent: &mut Vec<IdPack>) -> Result<Boxed> {
        if p.path.is_empty() {
            if let proxy::Target::Foreign(f) = &p.target {
                if let Some(py) = f.as_any().downcast_ref::<PyRef>() {
                    if std::ptr::eq(Arc::as_ptr(&py.link.session), self) {
                        return Ok(Boxed::Yours(py.pack.clone()));
                    }
                }
            }
        }
        // This side's object, a member of one, or someone else's object forwarded.
        let pack = self.exports.lock().export(&p)?;
        lent.push(pack.clone());
        Ok(Boxed::Theirs(pack))
    }

    /// Unboxes an incoming value: the peer's objects become proxies (counted), this side's
    /// objects come home as themselves.
    pub(crate) fn unbox(self: &Arc<Self>, b: Boxed) -> Result<Value> {
        let mut err = None;
        let v = self.unbox_into(b, &mut err);
        match err {
            Some(e) => Err(e),
            None => Ok(v),
        }
    }

    /// Unboxes everything (so every reference is counted, and released when dropped) and
    /// leaves the first problem in `err`.
    fn unbox_into(self: &Arc<Self>, b: Boxed, err: &mut Option<Error>) -> Value {
        match b {
            Boxed::Value(v) => from_brine(v),
            Boxed::Tuple(items) => {
                Value::List(items.into_iter().map(|b| self.unbox_into(b, err)).collect())
            }
            Boxed::Yours(pack) => match self.exports.lock().get(&pack) {
                Ok(e) => Value::Ref(e.proxy.clone()),
                Err(e) => {
                    err.get_or_insert(e);
                    Value::Nil
                }
            },
            Boxed::Theirs(pack) => match self.import(pack) {
                Some(p) => Value::Ref(p),
                None => {
                    err.get_or_insert_with(|| self.disconnected());
                    Value::Nil
                }
            },
        }
    }

    /// The proxy of the peer's object `pack`, counting one receipt (one live handle per
    /// object, as Python's proxy cache does).
    pub(crate) fn import(self: &Arc<Self>, pack: IdPack) -> Option<Proxy> {
        let link = self.link()?;
        let mut imports = self.imports.lock();
        if let Some(py) = imports.get(&pack).and_then(std::sync::Weak::upgrade) {
            py.receive();
            return Some(PyRef::proxy(py));
        }
        let py = Arc::new(PyRef::new(link, pack.clone()));
        imports.insert(pack, Arc::downgrade(&py));
        Some(PyRef::proxy(py))
    }

    /// The lent object `pack` names, as a proxy.
    pub(crate) fn exported(&self, pack: &IdPack) -> Result<Proxy> {
        self.exports
            .lock()
            .get(pack)
            .map(|e| e.proxy.clone())
            .map_err(|_| no_such_object(pack))
    }
}

/// True when `v` goes by value (no reference anywhere in it).
fn is_plain(v: &Value) -> bool {
    match v {
        Value::Ref(_) | Value::Map(_) => false,
        Value::List(items) => items.iter().all(is_plain),
        _ => true,
    }
}

/// The brine of a value without references.
fn plain(v: Value) -> Brine {
    match v {
        Value::Nil => Brine::None,
        Value::Bool(b) => Brine::Bool(b),
        Value::Int(i) => Brine::Int(i),
        Value::UInt(u) => Brine::BigInt(u.to_string()),
        Value::Float(x) => Brine::Float(x),
        Value::Str(s) => Brine::Str(s),
        Value::Bytes(b) => Brine::Bytes(b),
        Value::List(items) => Brine::Tuple(items.into_iter().map(plain).collect()),
        // Callers check `is_plain` first; these never reach here.
        Value::Map(_) | Value::Ref(_) => Brine::None,
    }
}

/// The value of a brine value (see the module docs for the lossy cases).
pub(crate) fn from_brine(b: Brine) -> Value {
    match b {
        Brine::None => Value::Nil,
        Brine::Bool(b) => Value::Bool(b),
        Brine::Int(i) => Value::Int(i),
        Brine::BigInt(s) => match s.parse::<u64>() {
            Ok(u) => Value::UInt(u),
            Err(_) => Value::Str(s),
        },
        Brine::Float(x) => Value::Float(x),
        Brine::Complex(re, im) => Value::List(vec![Value::Float(re), Value::Float(im)]),
        Brine::Str(s) => Value::Str(s),
        Brine::Bytes(b) => Value::Bytes(b),
        Brine::Tuple(items) | Brine::FrozenSet(items) => {
            Value::List(items.into_iter().map(from_brine).collect())
        }
        Brine::Slice(s) => {
            let [a, b, c] = *s;
            Value::Map(vec![
                (Value::from("start"), from_brine(a)),
                (Value::from("stop"), from_brine(b)),
                (Value::from("step"), from_brine(c)),
            ])
        }
        Brine::NotImplemented => Value::from("NotImplemented"),
        Brine::Ellipsis => Value::from("Ellipsis"),
    }
}
