//! Python objects held by this side: [`PyRef`], the handle behind every [`Proxy`] of a
//! Python object, and how proxy operations become RPyC requests.
//!
//! | proxy operation | requests |
//! |---|---|
//! | `p.call(args)` | `CALL(p, args, kwargs)` |
//! | `p.call_method("m", args)` | `CALLATTR(p, "m", args, kwargs)`: one round trip |
//! | `p.attr("x").get()` | `GETATTR(p, "x")` |
//! | `p.attr("x").set(v)` | `SETATTR(p, "x", v)` |
//! | `p.dir()` | `DIR(p)` |
//! | `p.help()` | `REPR(p)` and `GETATTR(p, "__doc__")` |
//!
//! A longer path (`p.attr("a").attr("b").call_method("c", ..)`) first reads each
//! intermediate attribute with a `GETATTR`: RPyC has no paths.
//!
//! # Object lifetimes
//!
//! Each receipt of an object counts one; when the last proxy of it goes, one `DEL(obj,
//! count)` tells Python to drop that many references, as Python's own proxies do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::boxing::{Boxed, IdPack};
use super::brine::Brine;
use super::message::Handler;
use super::session::{Link, Session};
use crate::dispatch::Op;
use crate::error::{Error, ErrorKind, Result};
use crate::proxy::{Foreign, Proxy, Target};
use crate::value::Value;

/// One Python object this side holds, with the receipts not yet released.
pub(crate) struct PyRef {
    pub(crate) link: Arc<Link>,
    pub(crate) pack: IdPack,
    count: AtomicU64,
}

impl PyRef {
    /// A handle holding one receipt.
    pub(crate) fn new(link: Arc<Link>, pack: IdPack) -> PyRef {
        PyRef {
            link,
            pack,
            count: AtomicU64::new(1),
        }
    }

    /// Counts one more receipt.
    pub(crate) fn receive(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// A proxy of this object.
    pub(crate) fn proxy(this: Arc<PyRef>) -> Proxy {
        Proxy::with_target(Target::Foreign(this))
    }
}

impl Drop for PyRef {
    fn drop(&mut self) {
        let session = &self.link.session;
        {
            let mut imports = session.imports.lock();
            // Only if the entry is still this handle's (a receipt racing with this drop made
            // a fresh handle, which inherits nothing).
            if imports
                .get(&self.pack)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), self))
            {
                imports.remove(&self.pack);
            }
        }
        let count = *self.count.get_mut();
        session.request_nowait(
            Handler::Del,
            Boxed::Tuple(vec![
                Boxed::Yours(self.pack.clone()),
                Boxed::Value(Brine::Int(count as i64)),
            ]),
        );
    }
}

impl Foreign for PyRef {
    fn run(self: Arc<Self>, path: Arc<[String]>, op: Op) -> BoxFuture<'static, Result<Value>> {
        Box::pin(run(self, path, op))
    }

    fn describe(&self) -> String {
        format!("<python {} {:#x}>", self.pack.name, self.pack.instance_id)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Applies `op` to `path` of `obj` with as few requests as RPyC allows.
async fn run(obj: Arc<PyRef>, path: Arc<[String]>, op: Op) -> Result<Value> {
    let session = obj.link.session.clone();
    let mut cur = PyRef::proxy(obj);
    let (last, init) = match path.split_last() {
        Some((last, init)) => (Some(last.as_str()), init),
        None => (None, &[][..]),
    };
    for seg in init {
        cur = session
            .request(Handler::GetAttr, vec![Value::Ref(cur), seg.as_str().into()])
            .await?
            .into_proxy()
            .map_err(|_| not_an_object(seg))?;
    }
    let me = Value::Ref(cur.clone());
    match (op, last) {
        (Op::Call(args), last) => {
            let (pos, named) = args.into_parts();
            let kwargs = Value::List(
                named
                    .into_iter()
                    .map(|(k, v)| Value::List(vec![Value::Str(k), v]))
                    .collect(),
            );
            match last {
                Some(name) => {
                    session
                        .request(
                            Handler::CallAttr,
                            vec![me, name.into(), Value::List(pos), kwargs],
                        )
                        .await
                }
                None => {
                    session
                        .request(Handler::Call, vec![me, Value::List(pos), kwargs])
                        .await
                }
            }
        }
        (Op::Get | Op::Bind, Some(name)) => {
            session
                .request(Handler::GetAttr, vec![me, name.into()])
                .await
        }
        (Op::Get | Op::Bind, None) => Ok(me),
        (Op::Describe, _) => Err(Error::Unsupported(
            "describing a Python object: use netref::rpyc::repr or dir".into(),
        )),
        (Op::Set(v), Some(name)) => session
            .request(Handler::SetAttr, vec![me, name.into(), v])
            .await
            .map(|_| Value::Nil),
        (Op::Set(_), None) => Err(Error::remote(
            ErrorKind::WrongOperation,
            "cannot set an object itself; name an attribute",
        )),
        (op @ (Op::Dir | Op::Help), last) => {
            let target = match last {
                Some(name) => {
                    session
                        .request(Handler::GetAttr, vec![me, name.into()])
                        .await?
                }
                None => me,
            };
            if matches!(op, Op::Dir) {
                return session.request(Handler::Dir, vec![target]).await;
            }
            let repr = session.request(Handler::Repr, vec![target.clone()]).await?;
            let doc = session
                .request(Handler::GetAttr, vec![target, "__doc__".into()])
                .await
                .unwrap_or(Value::Nil);
            let mut text = repr.as_str().unwrap_or_default().to_owned();
            if let Some(doc) = doc.as_str() {
                text.push('\n');
                text.push_str(doc);
            }
            Ok(Value::Str(text))
        }
    }
}

fn not_an_object(seg: &str) -> Error {
    Error::remote(
        ErrorKind::WrongOperation,
        format!("attribute `{seg}` is a plain value, not an object"),
    )
}

/// The connection of a proxy of a Python object, and a plain proxy of the object it names
/// (its path read with `GETATTR`s first).
pub(crate) async fn resolve(p: &Proxy) -> Result<(Arc<Session>, Proxy)> {
    let session = match &p.target {
        Target::Foreign(f) => match f.as_any().downcast_ref::<PyRef>() {
            Some(py) => py.link.session.clone(),
            None => return Err(not_python()),
        },
        _ => return Err(not_python()),
    };
    let mut cur = Proxy::with_target(p.target.clone());
    for seg in p.path.iter() {
        cur = session
            .request(Handler::GetAttr, vec![Value::Ref(cur), seg.as_str().into()])
            .await?
            .into_proxy()
            .map_err(|_| not_an_object(seg))?;
    }
    Ok((session, cur))
}

fn not_python() -> Error {
    Error::Value("not a proxy of a Python object (see netref::rpyc)".into())
}
