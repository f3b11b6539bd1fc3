//! `collector()`: a REPL-side callback that keeps what it is called with.

use std::any::Any;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::adapters::Iter;
use crate::object::{Invocation, MemberInfo, MemberKind, Obj, Object, Reply, TypeInfo};
use crate::value::Value;

/// Keeps the values it is called with.
#[derive(Default)]
pub(crate) struct Collector {
    items: Mutex<Vec<Value>>,
}

static INFO: TypeInfo = TypeInfo {
    name: "Collector",
    doc: "A callback that keeps what it is called with: pass it to a remote method, then \
          `list(c)`.",
    members: &[
        MemberInfo {
            name: "call",
            kind: MemberKind::Method,
            signature: "call(values...)",
            doc: "Keeps its argument (a list of them when there are several).",
        },
        MemberInfo {
            name: "items",
            kind: MemberKind::Property { settable: false },
            signature: "items: list",
            doc: "Everything kept so far.",
        },
        MemberInfo {
            name: "len",
            kind: MemberKind::Method,
            signature: "len() -> int",
            doc: "How many values were kept.",
        },
        MemberInfo {
            name: "clear",
            kind: MemberKind::Method,
            signature: "clear()",
            doc: "Forgets everything kept.",
        },
        MemberInfo {
            name: "iter",
            kind: MemberKind::Method,
            signature: "iter() -> Iter",
            doc: "An iterator over a snapshot of the values.",
        },
    ],
    call: Some(0),
};

impl Object for Collector {
    fn type_info(&self) -> &'static TypeInfo {
        &INFO
    }

    fn invoke(self: Arc<Self>, member: usize, inv: Invocation) -> Reply {
        let result = match (member, inv) {
            (0, Invocation::Call(args)) => {
                let (mut pos, named) = args.into_parts();
                let mut item = match pos.len() {
                    0 => Value::Nil,
                    1 => pos.remove(0),
                    _ => Value::List(pos),
                };
                if !named.is_empty() {
                    let mut entries: Vec<(Value, Value)> =
                        named.into_iter().map(|(k, v)| (Value::Str(k), v)).collect();
                    if !item.is_nil() {
                        entries.insert(0, (Value::from("args"), item));
                    }
                    item = Value::Map(entries);
                }
                self.items.lock().push(item);
                Ok(Value::Nil)
            }
            (1, Invocation::Get) => Ok(Value::List(self.items.lock().clone())),
            (2, Invocation::Call(_)) => Ok(Value::from(self.items.lock().len() as u64)),
            (3, Invocation::Call(_)) => {
                self.items.lock().clear();
                Ok(Value::Nil)
            }
            (4, Invocation::Call(_)) => {
                let items = self.items.lock().clone();
                crate::to_value(&Obj::new(Iter::new(items)))
            }
            _ => Err(crate::__private::bad_invocation("Collector", member)),
        };
        Reply::Ready(result)
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
