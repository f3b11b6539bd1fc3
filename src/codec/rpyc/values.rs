//! Values between RPyC's boxes and the engine's wire values, where the wire counts: what
//! Python lends becomes an import id (one receipt more), what this side lends an id_pack
//! (one send more).
//!
//! | engine `WireValue` | RPyC / Python |
//! |---|---|
//! | `Nil`, `Bool`, `Int`, `Float`, `Str`, `Bytes` | `None`, `bool`, `int`, `float`, `str`, `bytes` by value |
//! | `UInt` above `i64` | `int` |
//! | `List` | `tuple` (by value when it holds no reference, else boxed item by item) |
//! | `Map` | `tuple` of `(key, value)` pairs (`dict(x)` in Python rebuilds it) |
//! | `Ref(Sender)`: this side's object | a reference Python holds (`LABEL_REMOTE_REF`) |
//! | `Ref(Receiver)`: a Python object | Python's own object (`LABEL_LOCAL_REF`) |
//!
//! And from Python: `tuple` and `frozenset` become `List`, ints beyond `u64` their decimal
//! `Str`, `complex` the list `[real, imag]`, `slice` the map `{start, stop, step}`,
//! `NotImplemented` and `Ellipsis` their names as `Str`.

use super::boxing::{Boxed, IdPack};
use super::brine::Brine;
use super::vinegar::Raised;
use super::{Chain, Handler, Inbound, Lent, LentEntry, Out, RpycWire, Sent, Shape, State};
use crate::error::{Error, ErrorKind, RemoteError, Result};
use crate::protocol::{CallMsg, Target, WBytes, WStr, WVec, WireError, WireOp, WireRef, WireValue};

/// `class_id` of the id_packs named `builtins.function` and `builtins.method`.
const FUNCTION_CLASS: i64 = 0x6e65_7466;
const METHOD_CLASS: i64 = 0x6e65_746d;
/// `class_id` of lent objects whose type this side does not know (a third party's).
const FORWARDED_CLASS: i64 = 0x6e65_7472;

/// A call with positional arguments only.
pub(super) fn call_of(args: Vec<WireValue>) -> WireOp {
    WireOp::Call {
        args: WVec(args),
        named: WVec::default(),
    }
}

impl RpycWire {
    /// A `CALL`'s positional and keyword arguments as an engine call. Their shape is checked
    /// before anything is converted (converting counts the references they carry).
    pub(super) fn call_op(&self, st: &mut State, args: Boxed, kwargs: Boxed) -> Result<WireOp> {
        let pos = match args {
            Boxed::Value(Brine::None) => Vec::new(),
            b => b
                .into_items()
                .ok_or_else(|| Error::bad_args("positional arguments must be a tuple"))?,
        };
        let mut named = Vec::new();
        for pair in kwargs.into_items().unwrap_or_default() {
            let kv = pair.into_items().unwrap_or_default();
            let Ok([k, v]) = <[Boxed; 2]>::try_from(kv) else {
                return Err(Error::bad_args("kwargs must be (name, value) pairs"));
            };
            let Boxed::Value(Brine::Str(k)) = k else {
                return Err(Error::bad_args("keyword names must be str"));
            };
            named.push((k, v));
        }
        Ok(WireOp::Call {
            args: pos.into_iter().map(|b| self.value(st, b)).collect(),
            named: named
                .into_iter()
                .map(|(k, v)| (WStr(k), self.value(st, v)))
                .collect(),
        })
    }

    /// A value from Python, counting one receipt per object Python lends.
    pub(super) fn value(&self, st: &mut State, b: Boxed) -> WireValue {
        match b {
            Boxed::Value(v) => from_brine(v),
            Boxed::Tuple(items) => {
                WireValue::List(items.into_iter().map(|b| self.value(st, b)).collect())
            }
            // An unknown one names nothing: the engine refuses id 0 as no such object.
            Boxed::Yours(pack) => WireValue::Ref(WireRef::Receiver {
                target: Target::Object(st.export_of(&pack).unwrap_or(0)),
                path: Default::default(),
            }),
            Boxed::Theirs(pack) => WireValue::Ref(WireRef::Sender(st.receive(pack))),
        }
    }

    /// The reply to a request of `shape` whose engine call answered `v`.
    pub(super) fn reply_value(
        &self,
        st: &mut State,
        shape: Shape,
        v: &WireValue,
    ) -> std::result::Result<Boxed, RemoteError> {
        let text = |s: &str| Boxed::Value(Brine::str(s));
        match shape {
            Shape::Plain => self.boxed(st, v),
            Shape::Doc => Ok(match field(v, "doc") {
                Some(WireValue::Str(d)) if !d.0.is_empty() => text(&d.0),
                _ => Boxed::Value(Brine::None),
            }),
            Shape::Repr => Ok(match field(v, "type_name") {
                Some(WireValue::Str(t)) if t.0 == "method" => text("<netref method>"),
                Some(WireValue::Str(t)) => text(&format!("<netref {} object>", t.0)),
                _ => text("<netref object>"),
            }),
            Shape::Inspect => Ok(Boxed::Value(Brine::Tuple(inspect(v)))),
            Shape::FirstItem => match v {
                WireValue::List(items) => match &items[..] {
                    [item] => self.boxed(st, item),
                    [] => Err(Error::stop_iteration().into_remote()),
                    // Not dropped in silence: what the others lent is given back.
                    more => Err(Error::Value(format!(
                        "an iterator's next_batch(1) gave {} items",
                        more.len()
                    ))
                    .into_remote()),
                },
                other => Err(Error::Value(format!(
                    "an iterator's next_batch gave a {}",
                    wire_type(other)
                ))
                .into_remote()),
            },
        }
    }

    /// `v` boxed for Python, counting one send per object of this side; on failure the
    /// sends it counted are undone.
    pub(super) fn boxed(
        &self,
        st: &mut State,
        v: &WireValue,
    ) -> std::result::Result<Boxed, RemoteError> {
        let mut lent = Vec::new();
        match self.box_into(st, v, &mut lent) {
            Ok(b) => Ok(b),
            Err(e) => {
                for id in lent {
                    st.unlend(id, 1);
                }
                Err(e.into_remote())
            }
        }
    }

    fn box_into(&self, st: &mut State, v: &WireValue, lent: &mut Vec<u64>) -> Result<Boxed> {
        Ok(match v {
            WireValue::Ref(WireRef::Sender(id)) => {
                let pack = self.lend(st, *id)?;
                lent.push(*id);
                Boxed::Theirs(pack)
            }
            WireValue::Ref(WireRef::Receiver { target, path }) => {
                match (target, path.0.len()) {
                    (Target::Object(id), 0) => match st.held_ids.get(id) {
                        Some(pack) => Boxed::Yours(pack.clone()),
                        None => return Err(no_such_held(*id)),
                    },
                    _ => return Err(Error::Unsupported(
                        "a Python object's attribute path cannot go back to Python: read it first"
                            .into(),
                    )),
                }
            }
            WireValue::List(items) if items.iter().all(is_plain) => {
                Boxed::Value(Brine::Tuple(items.iter().map(plain).collect()))
            }
            WireValue::List(items) => Boxed::Tuple(
                items
                    .iter()
                    .map(|v| self.box_into(st, v, lent))
                    .collect::<Result<_>>()?,
            ),
            WireValue::Map(entries) => Boxed::Tuple(
                entries
                    .iter()
                    .map(|(k, v)| {
                        Ok(Boxed::Tuple(vec![
                            self.box_into(st, k, lent)?,
                            self.box_into(st, v, lent)?,
                        ]))
                    })
                    .collect::<Result<_>>()?,
            ),
            other => Boxed::Value(plain(other)),
        })
    }

    /// Counts one send of export `id`, giving it an id_pack the first time.
    fn lend(&self, st: &mut State, id: u64) -> Result<IdPack> {
        if let Some(e) = st.lent.get_mut(&id) {
            e.count += 1;
            return Ok(e.pack.clone());
        }
        let lent = self.lookup.get().and_then(|f| f(id)).ok_or_else(|| {
            Error::remote(ErrorKind::NoSuchObject, "the object is no longer lent")
        })?;
        let instance_id = st.next_instance;
        st.next_instance += 1;
        let (name, class_id) = match lent {
            Lent::Method => ("builtins.method".to_owned(), METHOD_CLASS),
            Lent::Object(info) if info.call.is_some() && info.members.len() == 1 => {
                ("builtins.function".to_owned(), FUNCTION_CLASS)
            }
            Lent::Object(info) => (format!("netref.{}", info.name), class_id(info.name)),
            Lent::Forwarded => ("netref.RemoteObject".to_owned(), FORWARDED_CLASS),
        };
        let pack = IdPack {
            name,
            class_id,
            instance_id,
        };
        st.by_instance.insert(instance_id, id);
        st.lent.insert(
            id,
            LentEntry {
                pack: pack.clone(),
                count: 1,
                lent,
            },
        );
        Ok(pack)
    }

    /// An engine call to a Python object as its request (or the first step of a chain),
    /// appended to `out`.
    pub(super) fn call(&self, st: &mut State, c: &CallMsg, out: &mut Vec<u8>) -> Result<()> {
        let path = &c.path.0[..];
        let base = match c.target {
            Target::Root if path.is_empty() && matches!(c.op, WireOp::Get | WireOp::Bind) => {
                let sent = Sent::Call {
                    id: c.id,
                    shape: Out::Root,
                };
                return self.request(
                    st,
                    Handler::GetRoot,
                    Boxed::Tuple(Vec::new()),
                    Some(sent),
                    out,
                );
            }
            Target::Root => st.py_root.clone().ok_or_else(|| {
                Error::Unsupported("Python's root is read first (rpyc::Connection::root)".into())
            })?,
            Target::Object(id) => st
                .held_ids
                .get(&id)
                .cloned()
                .ok_or_else(|| no_such_held(id))?,
            Target::Answer(_) => {
                return Err(Error::Unsupported("RPyC's wire has no pipelining".into()))
            }
        };
        let mut lent = Vec::new();
        let last = match self.last_request(st, &c.op, path, &mut lent) {
            Ok(last) => last,
            Err(e) => {
                undo(st, &lent);
                return Err(e);
            }
        };
        let (prefix, handler, tail, shape) = last;
        let sent = if prefix == 0 {
            let mut args = vec![Boxed::Yours(base)];
            args.extend(tail);
            let sent = Sent::Call { id: c.id, shape };
            self.request(st, handler, Boxed::Tuple(args), Some(sent), out)
        } else {
            let key = st.next_chain;
            st.next_chain += 1;
            let seg = path[0].clone();
            let args = Boxed::Tuple(vec![Boxed::Yours(base), Boxed::Value(Brine::str(&*seg))]);
            st.chains.insert(
                key,
                Chain {
                    id: c.id,
                    seg,
                    rest: path[1..prefix].to_vec(),
                    handler,
                    tail,
                    shape,
                    lent: lent.clone(),
                },
            );
            self.request(st, Handler::GetAttr, args, Some(Sent::Step(key)), out)
        };
        if sent.is_err() {
            undo(st, &lent);
        }
        sent
    }

    /// The last request of an engine call: how many path segments to read first, the
    /// handler, its arguments after the object, and how its reply is shaped.
    fn last_request(
        &self,
        st: &mut State,
        op: &WireOp,
        path: &[String],
        lent: &mut Vec<u64>,
    ) -> Result<(usize, Handler, Vec<Boxed>, Out)> {
        let name = |n: &str| Boxed::Value(Brine::str(n));
        let split = path.split_last();
        let n = split.map_or(0, |(_, init)| init.len());
        Ok(match (op, split) {
            (WireOp::Call { args, named }, split) => {
                let special = match (split, args.len(), named.is_empty()) {
                    (Some((m, _)), 0, true) if m == "__repr__" => Some((Handler::Repr, vec![])),
                    (Some((m, _)), 0, true) if m == "__str__" => Some((Handler::Str, vec![])),
                    (Some((m, _)), 1, true) if m == "__eq__" || m == "__ne__" => {
                        let other = self.box_into(st, &args[0], lent)?;
                        Some((Handler::Cmp, vec![other, name(m)]))
                    }
                    (Some((m, _)), 1, true) if m == "next_batch" => {
                        let count = self.box_into(st, &args[0], lent)?;
                        Some((Handler::BuffIter, vec![count]))
                    }
                    _ => None,
                };
                if let Some((h, tail)) = special {
                    return Ok((n, h, tail, Out::Plain));
                }
                let pos = Boxed::Tuple(
                    args.iter()
                        .map(|v| self.box_into(st, v, lent))
                        .collect::<Result<_>>()?,
                );
                let kw = Boxed::Tuple(
                    named
                        .iter()
                        .map(|(k, v)| {
                            Ok(Boxed::Tuple(vec![name(&k.0), self.box_into(st, v, lent)?]))
                        })
                        .collect::<Result<_>>()?,
                );
                match split {
                    Some((m, _)) => (n, Handler::CallAttr, vec![name(m), pos, kw], Out::Plain),
                    None => (0, Handler::Call, vec![pos, kw], Out::Plain),
                }
            }
            (WireOp::Get | WireOp::Bind, Some((m, _))) => {
                (n, Handler::GetAttr, vec![name(m)], Out::Plain)
            }
            (WireOp::Set(v), Some((m, _))) => {
                let v = self.box_into(st, v, lent)?;
                (n, Handler::SetAttr, vec![name(m), v], Out::Plain)
            }
            (WireOp::Dir, _) => (path.len(), Handler::Dir, vec![], Out::Plain),
            (WireOp::Help, _) => (
                path.len(),
                Handler::GetAttr,
                vec![name("__doc__")],
                Out::Help,
            ),
            (op, _) => {
                return Err(Error::Unsupported(format!(
                    "RPyC's wire has no request for {} on a path of {} segments",
                    op_name(op),
                    path.len()
                )))
            }
        })
    }

    /// Python's reply to a chain's `GETATTR`: the next `GETATTR` or the last request, then
    /// the `DEL` of the object read; or, when it failed, the call's `Return` with the error.
    pub(super) fn chain_step(
        &self,
        st: &mut State,
        key: u64,
        value: std::result::Result<Brine, Brine>,
    ) -> Vec<Inbound> {
        let Some(mut ch) = st.chains.remove(&key) else {
            return Vec::new();
        };
        let boxed = match value {
            Err(v) => Err(Raised::from_brine(v).into_error().into_remote()),
            Ok(v) => Boxed::from_brine(v).map_err(Error::into_remote),
        };
        let mut out = Vec::new();
        let pack = match boxed {
            Ok(Boxed::Theirs(pack)) => pack,
            Ok(other) => {
                // A plain value: nothing to walk through (what it lent goes back at once).
                self.del_received(st, &other, &mut out);
                let e = Error::remote(
                    ErrorKind::WrongOperation,
                    format!("attribute `{}` is a plain value, not an object", ch.seg),
                );
                let mut inbound = self.fail_chain(st, ch, e.into_remote());
                if !out.is_empty() {
                    inbound.insert(0, Inbound::Frame(out));
                }
                return inbound;
            }
            Err(e) => return self.fail_chain(st, ch, e),
        };
        let sent = if ch.rest.is_empty() {
            let mut args = vec![Boxed::Yours(pack.clone())];
            args.append(&mut ch.tail);
            let sent = Sent::Call {
                id: ch.id,
                shape: ch.shape,
            };
            self.request(st, ch.handler, Boxed::Tuple(args), Some(sent), &mut out)
        } else {
            let next = st.next_chain;
            st.next_chain += 1;
            ch.seg = ch.rest.remove(0);
            let args = Boxed::Tuple(vec![
                Boxed::Yours(pack.clone()),
                Boxed::Value(Brine::str(&*ch.seg)),
            ]);
            st.chains.insert(next, ch);
            self.request(st, Handler::GetAttr, args, Some(Sent::Step(next)), &mut out)
        };
        let del = Boxed::Tuple(vec![Boxed::Yours(pack), Boxed::Value(Brine::Int(1))]);
        let deleted = self.request(st, Handler::Del, del, None, &mut out);
        debug_assert!(
            sent.is_ok() && deleted.is_ok(),
            "requests built here always fit"
        );
        vec![Inbound::Frame(out)]
    }

    /// A chain that cannot go on: the exports its last request counted go back to the
    /// engine as released, and the call fails with `e`.
    fn fail_chain(&self, st: &mut State, ch: Chain, e: RemoteError) -> Vec<Inbound> {
        undo(st, &ch.lent);
        let mut inbound = Vec::new();
        if !ch.lent.is_empty() {
            let items: Vec<(u64, u64)> = ch.lent.iter().map(|&id| (id, 1)).collect();
            inbound.push(Inbound::Message(crate::protocol::Message::Release(
                items.into(),
            )));
        }
        inbound.push(Inbound::Message(crate::protocol::Message::Return {
            id: ch.id,
            result: Err(WireError::from(e)),
        }));
        inbound
    }

    /// `DEL`s, appended to `out`, of every object Python lent in `b` (a value this side will
    /// not keep).
    fn del_received(&self, st: &mut State, b: &Boxed, out: &mut Vec<u8>) {
        match b {
            Boxed::Theirs(pack) => {
                let del = Boxed::Tuple(vec![
                    Boxed::Yours(pack.clone()),
                    Boxed::Value(Brine::Int(1)),
                ]);
                let _ = self.request(st, Handler::Del, del, None, out);
            }
            Boxed::Tuple(items) => {
                for item in items {
                    self.del_received(st, item, out);
                }
            }
            Boxed::Value(_) | Boxed::Yours(_) => {}
        }
    }
}

/// Takes back one send of each export in `lent` (a request that never went).
fn undo(st: &mut State, lent: &[u64]) {
    for &id in lent {
        st.unlend(id, 1);
    }
}

impl State {
    /// Counts one receipt of Python's `pack`, returning its import id.
    pub(super) fn receive(&mut self, pack: IdPack) -> u64 {
        if let Some((id, n)) = self.held.get_mut(&pack) {
            *n += 1;
            return *id;
        }
        let id = self.next_import;
        self.next_import += 1;
        self.held_ids.insert(id, pack.clone());
        self.held.insert(pack, (id, 1));
        id
    }

    /// Takes `count` receipts of import `id` off (the engine released them): the pack to
    /// `DEL`, forgotten when no receipt is left.
    pub(super) fn forget_receipts(&mut self, id: u64, count: u64) -> Option<IdPack> {
        let pack = self.held_ids.get(&id)?.clone();
        if let Some((_, n)) = self.held.get_mut(&pack) {
            *n = n.saturating_sub(count);
            if *n == 0 {
                self.held.remove(&pack);
                self.held_ids.remove(&id);
            }
        }
        Some(pack)
    }
}

/// `INSPECT`'s answer from a description: `((name, doc or None), …)` of the exposed methods,
/// then the special methods the object supports.
fn inspect(d: &WireValue) -> Vec<Brine> {
    let pair = |name: &str, doc: Option<&str>| {
        Brine::Tuple(vec![
            Brine::str(name),
            doc.filter(|d| !d.is_empty())
                .map_or(Brine::None, Brine::str),
        ])
    };
    let mut out = Vec::new();
    let mut names = Vec::new();
    if let Some(WireValue::List(members)) = field(d, "members") {
        for m in members.iter() {
            let s = |k| match field(m, k) {
                Some(WireValue::Str(s)) => Some(s.0.as_str()),
                _ => None,
            };
            let Some(n) = s("name") else { continue };
            names.push(n.to_owned());
            if s("kind") == Some("method") {
                out.push(pair(n, s("doc")));
            }
        }
    }
    let mut specials: Vec<&str> = Vec::new();
    if matches!(field(d, "callable"), Some(WireValue::Bool(true))) {
        specials.push("__call__");
    }
    for (member, special) in [
        ("len", "__len__"),
        ("get", "__getitem__"),
        ("set", "__setitem__"),
        ("remove", "__delitem__"),
        ("contains", "__contains__"),
        ("iter", "__iter__"),
        ("next_batch", "__iter__"),
        ("next_batch", "__next__"),
    ] {
        if names.iter().any(|n| n == member) && !specials.contains(&special) {
            specials.push(special);
        }
    }
    for s in specials {
        if !names.iter().any(|n| n == s) {
            out.push(pair(s, None));
        }
    }
    out
}

/// The value under `key` in a map of string keys.
fn field<'a>(v: &'a WireValue, key: &str) -> Option<&'a WireValue> {
    match v {
        WireValue::Map(entries) => entries.iter().find_map(|(k, v)| match k {
            WireValue::Str(s) if s.0 == key => Some(v),
            _ => None,
        }),
        _ => None,
    }
}

/// True when `v` goes by value (no reference anywhere in it).
fn is_plain(v: &WireValue) -> bool {
    match v {
        WireValue::Ref(_) | WireValue::Map(_) => false,
        WireValue::List(items) => items.iter().all(is_plain),
        _ => true,
    }
}

/// The brine of a value without references.
fn plain(v: &WireValue) -> Brine {
    match v {
        WireValue::Nil => Brine::None,
        WireValue::Bool(b) => Brine::Bool(*b),
        WireValue::Int(i) => Brine::Int(*i),
        WireValue::UInt(u) => match i64::try_from(*u) {
            Ok(i) => Brine::Int(i),
            Err(_) => Brine::BigInt(u.to_string()),
        },
        WireValue::Float(x) => Brine::Float(*x),
        WireValue::Str(s) => Brine::Str(s.0.clone()),
        WireValue::Bytes(b) => Brine::Bytes(b.0.clone()),
        WireValue::List(items) => Brine::Tuple(items.iter().map(plain).collect()),
        // Callers check `is_plain` first; these never reach here.
        WireValue::Map(_) | WireValue::Ref(_) => Brine::None,
    }
}

/// The wire value of a brine value (see the module docs for the lossy cases).
fn from_brine(b: Brine) -> WireValue {
    let s = |s: &str| WireValue::Str(WStr(s.to_owned()));
    match b {
        Brine::None => WireValue::Nil,
        Brine::Bool(b) => WireValue::Bool(b),
        Brine::Int(i) => WireValue::Int(i),
        Brine::BigInt(t) => match t.parse::<u64>() {
            Ok(u) => WireValue::UInt(u),
            Err(_) => WireValue::Str(WStr(t)),
        },
        Brine::Float(x) => WireValue::Float(x),
        Brine::Complex(re, im) => {
            WireValue::List(WVec(vec![WireValue::Float(re), WireValue::Float(im)]))
        }
        Brine::Str(t) => WireValue::Str(WStr(t)),
        Brine::Bytes(b) => WireValue::Bytes(WBytes(b)),
        Brine::Tuple(items) | Brine::FrozenSet(items) => {
            WireValue::List(items.into_iter().map(from_brine).collect())
        }
        Brine::Slice(parts) => {
            let [a, b, c] = *parts;
            WireValue::Map(WVec(vec![
                (s("start"), from_brine(a)),
                (s("stop"), from_brine(b)),
                (s("step"), from_brine(c)),
            ]))
        }
        Brine::NotImplemented => s("NotImplemented"),
        Brine::Ellipsis => s("Ellipsis"),
    }
}

fn wire_type(v: &WireValue) -> &'static str {
    match v {
        WireValue::Nil => "nil",
        WireValue::Bool(_) => "bool",
        WireValue::Int(_) | WireValue::UInt(_) => "int",
        WireValue::Float(_) => "float",
        WireValue::Str(_) => "str",
        WireValue::Bytes(_) => "bytes",
        WireValue::List(_) => "list",
        WireValue::Map(_) => "map",
        WireValue::Ref(_) => "object",
    }
}

fn op_name(op: &WireOp) -> &'static str {
    match op {
        WireOp::Call { .. } => "a call",
        WireOp::Get => "a read",
        WireOp::Set(_) => "a write",
        WireOp::Dir => "dir",
        WireOp::Help => "help",
        WireOp::Describe => "describe",
        WireOp::Bind => "a read",
    }
}

fn no_such_held(id: u64) -> Error {
    Error::remote(
        ErrorKind::NoSuchObject,
        format!("no Python object #{id} is held on this connection"),
    )
}

/// A type's `class_id`: a hash of its name (FNV-1a, 40 bits), the same in every run, so
/// traces read the same.
fn class_id(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h & 0xff_ffff_ffff) as i64
}
