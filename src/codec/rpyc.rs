//! Python RPyC 6's wire behind the seam: a [`Wire`] whose frames are RPyC's and whose
//! requests become engine messages, so an RPyC connection is an ordinary
//! [`Connection`](crate::Connection) (hooks, stats, tracer, tables, gate).
//!
//! The layers, bottom up: [`frame`] (length, compression flag, payload, newline), [`brine`]
//! (values, decoded under limits, pickle refused), [`message`] (kinds and the 20 handlers),
//! [`boxing`] (labels and id_packs), [`vinegar`] (exceptions), [`trace`] (readable lines);
//! then this module, the translation (`values.rs` holds the value conversions).
//!
//! # Framing
//!
//! RPyC's frame is a 4-byte big-endian payload length, a compression flag, the payload and
//! a newline. The seam's head is the length alone ([`Wire::HEAD`] = 4); the body it
//! declares is the flag, the payload and the newline (length + 2), checked here: a frame
//! that does not end in a newline closes the connection, a compressed one is inflated only
//! up to `Config::max_frame`.
//!
//! # Python's requests → engine messages
//!
//! Each request that needs the engine becomes one `Call` with an id this wire picks; the
//! `Return` with that id becomes the reply to the request's `seq`, shaped as the handler
//! wants it:
//!
//! | request | engine `Call` (target is the id_pack's export id) | reply |
//! |---|---|---|
//! | `GETROOT` | `Root`, `Get` | the root, lent |
//! | `GETATTR(o, n)` | `[n]`, `Bind` (a method comes back bound) | the value |
//! | `GETATTR(o, "__doc__")` | `Describe` | the doc text or `None` |
//! | `SETATTR(o, n, v)` | `[n]`, `Set(v)` | `None` |
//! | `CALL(o, a, kw)` | `Call` | the result |
//! | `CALLATTR(o, n, a, kw)` | `[n]` (`__len__` → `len`, `__getitem__` → `get`, `__setitem__` → `set`, `__delitem__` → `remove`, `__contains__` → `contains`, `__iter__` → `iter` or the iterator itself, `__next__` → `next_batch(1)`), `Call` | the result (`__next__`: its item, or `StopIteration`) |
//! | `DIR(o)` | `Dir` | the names |
//! | `INSPECT(pack)` | `Describe` | the methods and special methods Python's proxy class needs |
//! | `REPR(o)`, `STR(o)` | `Describe` | `<netref Type object>` |
//! | `BUFFITER(o, n)` | `[next_batch]`, `Call(n)` | the batch |
//!
//! `DEL(o, n)` becomes `Release(id, n)`; `CLOSE` a `Goodbye`. The wire answers on its own
//! (an [`Inbound::Frame`]) what the engine has no part in: `PING`, `HASH`, `CMP` (identity),
//! `INSTANCECHECK`, pickling and Python 2 slicing (refused), and every malformed request
//! (an exception reply; the connection goes on). RPyC's `exposed_` prefix is an alias of the
//! plain name. Every name still reaches the gate in a `Call`.
//!
//! # Engine messages → Python
//!
//! A `Call` to a Python object becomes one request with the next `seq`, and Python's reply
//! to that `seq` the `Return` of the call's id:
//!
//! | engine `Call` (path `…, m`) | request |
//! |---|---|
//! | `Root`, `Get` | `GETROOT` (Python's root is remembered for `Root` targets) |
//! | `Call` on an empty path | `CALL(o, args, kwargs)` |
//! | `Call` of `m` | `CALLATTR(o, m, args, kwargs)`; `__repr__()` `REPR(o)`, `__str__()` `STR(o)`, `__eq__(x)`/`__ne__(x)` `CMP(o, x, op)`, `next_batch(n)` `BUFFITER(o, n)` |
//! | `Get`/`Bind` of `m` | `GETATTR(o, m)` |
//! | `Set(v)` of `m` | `SETATTR(o, m, v)` |
//! | `Dir` | `DIR(o)` |
//! | `Help` | `GETATTR(o, "__doc__")`, as text |
//!
//! A longer path first reads each intermediate object with a `GETATTR` (a [`Chain`]), sent
//! when the previous one's reply comes, with a `DEL` of each intermediate object once the
//! next request names it. `Release(id, n)` becomes `DEL(pack, n)`, `Ping(n)` a `PING` whose echo is `Pong(n)`,
//! `Goodbye` `CLOSE`. RPyC has no cancellation, pipelining, one-way calls or streams: the
//! wire announces no feature bits, so the engine sends none of them.
//!
//! # Ids and counting
//!
//! This side's objects: the engine's export id ↔ an id_pack, whose instance ids count up
//! from 1 and are never reused, and whose name Python keys its class cache on
//! (`netref.<Type>`; `builtins.method` and `builtins.function` for bound methods and
//! callbacks, which Python never inspects). The wire learns what an export is from the
//! engine's table (a lookup installed when the connection starts) and counts sends and
//! `DEL`s as the engine does, forgetting a pack when its count reaches zero. Python's
//! objects: its id_pack ↔ an import id with the receipts counted, forgotten when the
//! engine's `Release` takes the last receipt (a receipt racing the release keeps it).

pub(crate) mod boxing;
pub(crate) mod brine;
pub(crate) mod frame;
pub(crate) mod message;
pub(crate) mod trace;
mod values;
pub(crate) mod vinegar;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use parking_lot::{Mutex, RwLock};

use super::{FrameLen, Inbound, Wire};
use crate::config::Config;
use crate::error::{Error, ErrorKind, RemoteError, Result};
use crate::protocol::{CallMsg, Message, Target, WPath, WireError, WireOp};
use crate::surface::TypeInfo;
use crate::trace::{Direction, TraceEvent, Tracer};
use boxing::{Boxed, IdPack};
use brine::{Brine, Limits};
use message::{Handler, Message as Py};
use vinegar::{PyException, Raised};

/// Bytes of the whole frame `rest` starts with (all of `rest` when it is shorter).
pub(crate) fn frame_span(rest: &[u8]) -> usize {
    match rest.get(..4) {
        Some(&[a, b, c, d]) => {
            let body = u32::from_be_bytes([a, b, c, d]) as usize;
            body.saturating_add(frame::HEADER + 1).min(rest.len())
        }
        _ => rest.len(),
    }
}

/// RPyC's prefix for exposed names, accepted as an alias of the plain name.
const EXPOSED_PREFIX: &str = "exposed_";

/// What an export is, as far as its id_pack goes.
#[derive(Clone, Copy)]
pub(crate) enum Lent {
    /// A method bound to its object.
    Method,
    /// A local object of this type.
    Object(&'static TypeInfo),
    /// A third party's object lent on.
    Forwarded,
}

/// How the wire asks the engine what an export id stands for.
pub(crate) type LentLookup = Box<dyn Fn(u64) -> Option<Lent> + Send + Sync>;

/// How the `Return` of a request's `Call` becomes its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The value as it is.
    Plain,
    /// A description's doc text, or `None`.
    Doc,
    /// A description as `<netref Type object>`.
    Repr,
    /// A description as `INSPECT`'s `((name, doc), …)` of methods.
    Inspect,
    /// A batch's first item, or `StopIteration`.
    FirstItem,
}

/// A request this side sent, by its `seq`.
enum Sent {
    /// An engine call: Python's reply is its `Return`, shaped.
    Call { id: u64, shape: Out },
    /// A step of a chain (see [`Chain`]).
    Step(u64),
    /// A keepalive `Ping(n)`: the echo is `Pong(n)`.
    Ping(u64),
}

/// How Python's reply becomes the `Return` of this side's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// The value as it is.
    Plain,
    /// `GETROOT`'s: the value, and Python's root remembered.
    Root,
    /// `__doc__`'s, as `help` text (`None` is empty).
    Help,
}

/// An engine call on a path of several segments: RPyC has no paths, so the wire reads each
/// intermediate object with a `GETATTR` (and `DEL`s it once the next request names it),
/// then sends the last request on the object reached.
struct Chain {
    /// The engine call it answers.
    id: u64,
    /// The segment the pending `GETATTR` reads.
    seg: String,
    /// The segments still to read after it.
    rest: Vec<String>,
    /// The last request, its object left out.
    handler: Handler,
    tail: Vec<Boxed>,
    shape: Out,
    /// Exports counted for `tail`: released again if the chain fails.
    lent: Vec<u64>,
}

/// One lent object.
struct LentEntry {
    pack: IdPack,
    count: u64,
    lent: Lent,
}

/// The wire's own tables (see the module docs).
#[derive(Default)]
struct State {
    next_seq: i64,
    next_call: u64,
    /// Python's requests the engine runs: call id → (seq, shape).
    asked: HashMap<u64, (i64, Shape)>,
    /// This side's requests waiting for Python's reply.
    sent: HashMap<i64, Sent>,
    /// Export id → id_pack and sends not yet `DEL`ed.
    lent: HashMap<u64, LentEntry>,
    /// Instance id → export id.
    by_instance: HashMap<i64, u64>,
    next_instance: i64,
    /// Python's id_pack → (import id, receipts).
    held: HashMap<IdPack, (u64, u64)>,
    /// Import id → Python's id_pack.
    held_ids: HashMap<u64, IdPack>,
    next_import: u64,
    /// Chains under way, by key.
    chains: HashMap<u64, Chain>,
    next_chain: u64,
    /// Python's root, once `GETROOT` answered.
    py_root: Option<IdPack>,
}

/// Python RPyC 6's wire (see the module docs).
pub(crate) struct RpycWire {
    max_frame: usize,
    limits: Limits,
    max_depth: usize,
    state: Mutex<State>,
    lookup: OnceLock<LentLookup>,
    tracing_on: AtomicBool,
    tracer: RwLock<Option<Tracer>>,
}

impl fmt::Debug for RpycWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("RpycWire")
            .field("lent", &st.lent.len())
            .field("held", &st.held.len())
            .finish()
    }
}

/// The outcome of one of Python's requests.
enum Step {
    /// An engine call.
    Call(Target, Vec<String>, WireOp, Shape),
    /// Answered by the wire with this value.
    Answer(Boxed),
    /// `DEL`: a release, then a `None` reply.
    Release(u64, u64),
    /// `CLOSE`.
    Goodbye,
}

impl RpycWire {
    /// A wire with `config`'s limits.
    pub(crate) fn new(config: &Config) -> RpycWire {
        RpycWire {
            max_frame: config.max_frame,
            limits: Limits {
                max_depth: config.max_depth,
                max_items: (config.max_frame / 2).max(1024),
            },
            max_depth: config.max_depth,
            state: Mutex::new(State {
                next_instance: 1,
                next_import: 1,
                next_call: 1,
                next_chain: 1,
                ..State::default()
            }),
            lookup: OnceLock::new(),
            tracing_on: AtomicBool::new(false),
            tracer: RwLock::new(None),
        }
    }

    /// Installs how the wire asks the engine what an export is (once, as the connection
    /// starts).
    pub(crate) fn set_lookup(&self, lookup: LentLookup) {
        let _ = self.lookup.set(lookup);
    }

    /// Installs (or removes) the function that sees every RPyC message in readable form.
    pub(crate) fn set_tracer(&self, tracer: Option<Tracer>) {
        self.tracing_on.store(tracer.is_some(), Ordering::Release);
        *self.tracer.write() = tracer;
    }

    /// `(export id, id_pack, count)` of every object lent, by instance id.
    pub(crate) fn lent_rows(&self) -> Vec<(u64, String, u64)> {
        let st = self.state.lock();
        let mut rows: Vec<_> = st
            .lent
            .iter()
            .map(|(id, e)| (*id, e.pack.to_string(), e.count, e.pack.instance_id))
            .collect();
        rows.sort_by_key(|r| r.3);
        rows.into_iter().map(|(a, b, c, _)| (a, b, c)).collect()
    }

    /// `(import id, id_pack)` of every Python object held.
    pub(crate) fn held_rows(&self) -> Vec<(u64, String)> {
        let st = self.state.lock();
        let mut rows: Vec<_> = st
            .held_ids
            .iter()
            .map(|(id, p)| (*id, p.to_string()))
            .collect();
        rows.sort();
        rows
    }

    /// `<python builtins.list 0x7f…>` for the Python object held as import `id`.
    pub(crate) fn held_name(&self, id: u64) -> Option<String> {
        let st = self.state.lock();
        let pack = st.held_ids.get(&id)?;
        Some(format!("<python {} {:#x}>", pack.name, pack.instance_id))
    }

    fn trace(&self, direction: Direction, msg: &Py) {
        if !self.tracing_on.load(Ordering::Acquire) {
            return;
        }
        let tracer = self.tracer.read().clone();
        if let Some(t) = tracer {
            t(&TraceEvent::new(direction, trace::describe(msg)));
        }
    }

    /// Appends `msg`'s frame to `out`.
    fn put(&self, msg: &Py, out: &mut Vec<u8>) -> Result<()> {
        let mut payload = Vec::new();
        msg.encode(&mut payload);
        frame::encode(&payload, false, out)?;
        self.trace(Direction::Sent, msg);
        Ok(())
    }

    /// The frame of the reply (or exception) to Python's request `seq`.
    fn answer_frame(&self, seq: i64, answer: std::result::Result<Boxed, RemoteError>) -> Vec<u8> {
        let msg = match answer {
            Ok(b) => Py::Reply {
                seq,
                value: b.into_brine(),
            },
            Err(e) if e.kind == ErrorKind::StopIteration => Py::Exception {
                seq,
                value: vinegar::stop_iteration(),
            },
            Err(e) => Py::Exception {
                seq,
                value: PyException::from_error(&Error::Remote(e)).to_brine(),
            },
        };
        let mut out = Vec::new();
        // A reply always fits: its payload was decoded from a frame or built here.
        let _ = self.put(&msg, &mut out);
        out
    }

    /// The next `seq` of a request of this side.
    fn request(
        &self,
        st: &mut State,
        handler: Handler,
        args: Boxed,
        sent: Option<Sent>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let seq = st.next_seq;
        st.next_seq += 1;
        self.put(
            &Py::Request {
                seq,
                handler: handler.id(),
                args: args.into_brine(),
            },
            out,
        )?;
        if let Some(s) = sent {
            st.sent.insert(seq, s);
        }
        Ok(())
    }

    /// Python's request `seq` for `handler` with `args`, as a step (or an error to raise
    /// in Python).
    fn step(&self, st: &mut State, handler: i64, args: Brine) -> Result<Step> {
        let h = Handler::from_id(handler).ok_or_else(|| {
            Error::remote(
                ErrorKind::Protocol,
                format!("unknown RPyC request handler {handler}"),
            )
        })?;
        let boxed = Boxed::from_brine(args).map_err(|e| Error::bad_args(e.to_string()))?;
        if h == Handler::Inspect {
            let pack = match boxed {
                Boxed::Value(Brine::Tuple(items)) if items.len() == 1 => {
                    IdPack::from_brine(&items[0])?
                }
                _ => return Err(Error::bad_args("INSPECT takes (id_pack,)")),
            };
            let id = st.export_of(&pack)?;
            return Ok(Step::Call(
                Target::Object(id),
                Vec::new(),
                WireOp::Describe,
                Shape::Inspect,
            ));
        }
        let mut args = boxed.into_items().unwrap_or_default().into_iter();
        let mut next = || args.next().unwrap_or(Boxed::Value(Brine::None));
        let on = |id: u64, path: Vec<String>, op: WireOp, shape: Shape| {
            Ok(Step::Call(Target::Object(id), path, op, shape))
        };
        match h {
            Handler::Ping => Ok(Step::Answer(match next() {
                b @ Boxed::Value(_) => b,
                _ => Boxed::Value(Brine::None),
            })),
            Handler::Close => Ok(Step::Goodbye),
            Handler::GetRoot => Ok(Step::Call(
                Target::Root,
                Vec::new(),
                WireOp::Get,
                Shape::Plain,
            )),
            Handler::GetAttr => {
                let (id, name) = (st.object(&next())?, name(next())?);
                if name == "__doc__" {
                    return on(id, Vec::new(), WireOp::Describe, Shape::Doc);
                }
                on(id, vec![alias(&name)], WireOp::Bind, Shape::Plain)
            }
            Handler::SetAttr => {
                let (id, name) = (st.object(&next())?, name(next())?);
                let v = self.value(st, next());
                on(id, vec![alias(&name)], WireOp::Set(v), Shape::Plain)
            }
            Handler::DelAttr => Err(wrong("attributes of netref objects cannot be deleted")),
            Handler::Call => {
                let id = st.object(&next())?;
                let op = self.call_op(st, next(), next())?;
                on(id, Vec::new(), op, Shape::Plain)
            }
            Handler::CallAttr => {
                let (id, name) = (st.object(&next())?, name(next())?);
                let (a, kw) = (next(), next());
                let (path, shape) = match name.as_str() {
                    "__call__" => (None, Shape::Plain),
                    "__len__" => (Some("len"), Shape::Plain),
                    "__getitem__" => (Some("get"), Shape::Plain),
                    "__setitem__" => (Some("set"), Shape::Plain),
                    "__delitem__" => (Some("remove"), Shape::Plain),
                    "__contains__" => (Some("contains"), Shape::Plain),
                    "__iter__" if st.has_member(id, "next_batch") => {
                        // An iterator is its own.
                        return on(id, Vec::new(), WireOp::Get, Shape::Plain);
                    }
                    "__iter__" => (Some("iter"), Shape::Plain),
                    "__next__" => {
                        let one = values::call_of(vec![crate::protocol::WireValue::Int(1)]);
                        return on(id, vec!["next_batch".into()], one, Shape::FirstItem);
                    }
                    _ => (None, Shape::Plain),
                };
                let path = match (path, name.as_str()) {
                    (Some(p), _) => vec![p.to_owned()],
                    (None, "__call__") => Vec::new(),
                    (None, n) => vec![alias(n)],
                };
                let op = self.call_op(st, a, kw)?;
                on(id, path, op, shape)
            }
            Handler::Repr | Handler::Str => {
                let id = st.object(&next())?;
                on(id, Vec::new(), WireOp::Describe, Shape::Repr)
            }
            Handler::Cmp => {
                let (a, other, op) = (next(), next(), next());
                let a = st.object(&a)?;
                let same = matches!(&other, Boxed::Yours(p) if st.export_of(p).ok() == Some(a));
                match &op {
                    Boxed::Value(Brine::Str(op)) if op == "__eq__" => {
                        Ok(Step::Answer(Boxed::Value(Brine::Bool(same))))
                    }
                    Boxed::Value(Brine::Str(op)) if op == "__ne__" => {
                        Ok(Step::Answer(Boxed::Value(Brine::Bool(!same))))
                    }
                    Boxed::Value(Brine::Str(op)) => Err(wrong(format!(
                        "netref objects support == and != only, not {op}"
                    ))),
                    _ => Err(Error::bad_args("the comparison operator must be a str")),
                }
            }
            Handler::Hash => {
                let id = st.object(&next())?;
                let instance = st.lent.get(&id).map_or(0, |e| e.pack.instance_id);
                Ok(Step::Answer(Boxed::Value(Brine::Int(instance))))
            }
            Handler::Dir => on(st.object(&next())?, Vec::new(), WireOp::Dir, Shape::Plain),
            Handler::BuffIter => {
                let id = st.object(&next())?;
                let n = match next() {
                    Boxed::Value(Brine::Int(n)) => n.clamp(1, 4096),
                    _ => 1,
                };
                let op = values::call_of(vec![crate::protocol::WireValue::Int(n)]);
                on(id, vec!["next_batch".into()], op, Shape::Plain)
            }
            Handler::Pickle => Err(Error::remote(
                ErrorKind::Value,
                "pickling is refused on this connection",
            )),
            Handler::OldSlicing => Err(wrong("Python 2 slicing is not supported")),
            Handler::CtxExit => Err(Error::remote(
                ErrorKind::NoSuchMember,
                "netref objects are not context managers",
            )),
            Handler::InstanceCheck => Ok(Step::Answer(Boxed::Value(Brine::Bool(false)))),
            Handler::Del => {
                let (obj, count) = (next(), next());
                let id = st.object(&obj)?;
                let count = match count {
                    Boxed::Value(Brine::Int(n)) => {
                        u64::try_from(n).map_err(|_| Error::bad_args("a negative DEL count"))?
                    }
                    _ => 1,
                };
                st.unlend(id, count);
                Ok(Step::Release(id, count))
            }
            Handler::Inspect => Err(Error::bad_args("INSPECT takes (id_pack,)")),
        }
    }

    /// Python's reply to this side's request `seq`, as what it gives the engine: the
    /// `Return` (or `Pong`) it settles, or a chain's next requests.
    fn reply(
        &self,
        st: &mut State,
        seq: i64,
        value: std::result::Result<Brine, Brine>,
    ) -> Vec<Inbound> {
        let (id, shape) = match st.sent.remove(&seq) {
            None => return Vec::new(),
            Some(Sent::Ping(n)) => return vec![Inbound::Message(Message::Pong(n))],
            Some(Sent::Step(key)) => return self.chain_step(st, key, value),
            Some(Sent::Call { id, shape }) => (id, shape),
        };
        let result = match value {
            Ok(v) => match Boxed::from_brine(v) {
                Ok(b) => {
                    if let (Out::Root, Boxed::Theirs(pack)) = (shape, &b) {
                        st.py_root = Some(pack.clone());
                    }
                    match (shape, b) {
                        (Out::Help, Boxed::Value(Brine::Str(doc))) => {
                            Ok(crate::protocol::WireValue::Str(crate::protocol::WStr(doc)))
                        }
                        (Out::Help, Boxed::Value(Brine::None)) => Ok(
                            crate::protocol::WireValue::Str(crate::protocol::WStr::default()),
                        ),
                        (_, b) => Ok(self.value(st, b)),
                    }
                }
                Err(e) => Err(WireError::from(e.into_remote())),
            },
            Err(v) => Err(WireError::from(
                Raised::from_brine(v).into_error().into_remote(),
            )),
        };
        vec![Inbound::Message(Message::Return { id, result })]
    }
}

impl State {
    /// The export id `pack` names: one of ours, live, with the same name and class.
    fn export_of(&self, pack: &IdPack) -> Result<u64> {
        self.by_instance
            .get(&pack.instance_id)
            .copied()
            .filter(|id| self.lent.get(id).is_some_and(|e| e.pack == *pack))
            .ok_or_else(|| {
                Error::remote(
                    ErrorKind::NoSuchObject,
                    format!("no object {pack}: never lent, already released, or stale"),
                )
            })
    }

    /// The export id of a request's object argument.
    fn object(&self, b: &Boxed) -> Result<u64> {
        match b {
            Boxed::Yours(pack) => self.export_of(pack),
            other => Err(Error::bad_args(format!(
                "expected an object reference, found {other}"
            ))),
        }
    }

    /// True when export `id` is a local object with member `name`.
    fn has_member(&self, id: u64, name: &str) -> bool {
        matches!(self.lent.get(&id), Some(LentEntry { lent: Lent::Object(info), .. }) if info.find(name).is_some())
    }

    /// Takes `count` sends of export `id` off (Python's `DEL`), forgetting its pack at zero.
    fn unlend(&mut self, id: u64, count: u64) {
        let Some(e) = self.lent.get_mut(&id) else {
            return;
        };
        e.count = e.count.saturating_sub(count);
        if e.count == 0 {
            if let Some(e) = self.lent.remove(&id) {
                self.by_instance.remove(&e.pack.instance_id);
            }
        }
    }
}

/// The name argument of a request.
fn name(b: Boxed) -> Result<String> {
    match b {
        Boxed::Value(Brine::Str(s)) => Ok(s),
        _ => Err(Error::bad_args("attribute names must be str")),
    }
}

/// `exposed_add` → `add`.
fn alias(name: &str) -> String {
    name.strip_prefix(EXPOSED_PREFIX)
        .filter(|n| !n.is_empty())
        .unwrap_or(name)
        .to_owned()
}

fn wrong(message: impl Into<String>) -> Error {
    Error::remote(ErrorKind::WrongOperation, message)
}

impl Wire for RpycWire {
    const HEAD: usize = 4;

    fn frame_len(&self, head: &[u8], max: usize) -> Result<FrameLen> {
        let declared = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if declared > max {
            return Err(Error::Protocol(format!(
                "frame of {declared} bytes declared (limit {max})"
            )));
        }
        // The flag, the payload and the newline.
        Ok(FrameLen {
            body: declared + 2,
            trailer: 0,
        })
    }

    fn encode(&self, msg: &Message, out: &mut Vec<u8>) -> Result<()> {
        let mut st = self.state.lock();
        match msg {
            Message::Return { id, result } => {
                let Some(&(seq, shape)) = st.asked.get(id) else {
                    return Ok(());
                };
                let answer = match result {
                    Ok(v) => match self.reply_value(&mut st, shape, v) {
                        // A value Python cannot be given: not encoded, so the engine undoes
                        // what it counted for it and sends this error as the reply instead
                        // (the request stays asked until then).
                        Err(e) if e.kind != ErrorKind::StopIteration => {
                            return Err(Error::Remote(e))
                        }
                        answer => answer,
                    },
                    Err(e) => Err(RemoteError::from(e.clone())),
                };
                st.asked.remove(id);
                out.extend_from_slice(&self.answer_frame(seq, answer));
                Ok(())
            }
            Message::Call(c) => self.call(&mut st, c, out),
            Message::Release(items) => {
                for &(id, count) in items.iter() {
                    let Some(pack) = st.forget_receipts(id, count) else {
                        continue;
                    };
                    let args = Boxed::Tuple(vec![
                        Boxed::Yours(pack),
                        Boxed::Value(Brine::Int(i64::try_from(count).unwrap_or(i64::MAX))),
                    ]);
                    self.request(&mut st, Handler::Del, args, None, out)?;
                }
                Ok(())
            }
            Message::Ping(n) => {
                let args = Boxed::Tuple(vec![Boxed::Value(Brine::Int(*n as i64))]);
                self.request(&mut st, Handler::Ping, args, Some(Sent::Ping(*n)), out)
            }
            Message::Goodbye(_) => {
                self.request(&mut st, Handler::Close, Boxed::Tuple(Vec::new()), None, out)
            }
            // No RPyC form: the wire announces none of these features, and a `Pong` answers
            // a `Ping` this wire never delivers.
            _ => Ok(()),
        }
    }

    fn decode_into(&self, body: &[u8], mut deliver: impl FnMut(Inbound) -> bool) -> Result<bool> {
        let (flag, rest) = body
            .split_first()
            .ok_or_else(|| Error::Protocol("a frame without its flag".into()))?;
        let Some((&end, payload)) = rest.split_last() else {
            return Err(Error::Protocol("a frame without its newline".into()));
        };
        if end != b'\n' {
            return Err(Error::Protocol(format!(
                "frame ends in 0x{end:02x}, not a newline"
            )));
        }
        let payload: Cow<'_, [u8]> = if *flag != 0 {
            Cow::Owned(frame::inflate(payload, self.max_frame)?)
        } else {
            Cow::Borrowed(payload)
        };
        let msg = Py::decode(&payload, self.limits)?;
        self.trace(Direction::Received, &msg);
        let mut st = self.state.lock();
        let (seq, handler, args) = match msg {
            Py::Request { seq, handler, args } => (seq, handler, args),
            Py::Reply { seq, value } => {
                let inbound = self.reply(&mut st, seq, Ok(value));
                drop(st);
                return Ok(inbound.into_iter().all(&mut deliver));
            }
            Py::Exception { seq, value } => {
                let inbound = self.reply(&mut st, seq, Err(value));
                drop(st);
                return Ok(inbound.into_iter().all(&mut deliver));
            }
        };
        let step = self.step(&mut st, handler, args);
        let inbound = match step {
            Ok(Step::Call(target, path, op, shape)) => {
                let id = st.next_call;
                st.next_call += 1;
                st.asked.insert(id, (seq, shape));
                vec![Inbound::Message(Message::Call(CallMsg {
                    id,
                    target,
                    path: WPath(path.into()),
                    op,
                    timeout_ms: 0,
                    flags: 0,
                    trace: 0,
                }))]
            }
            Ok(Step::Answer(b)) => vec![Inbound::Frame(self.answer_frame(seq, Ok(b)))],
            Ok(Step::Release(id, count)) => vec![
                Inbound::Message(Message::Release(vec![(id, count)].into())),
                Inbound::Frame(self.answer_frame(seq, Ok(Boxed::Value(Brine::None)))),
            ],
            Ok(Step::Goodbye) => vec![Inbound::Message(Message::Goodbye(crate::protocol::WStr(
                "closed by the peer".into(),
            )))],
            Err(e) => vec![Inbound::Frame(self.answer_frame(seq, Err(e.into_remote())))],
        };
        drop(st);
        Ok(inbound.into_iter().all(&mut deliver))
    }

    fn peer_max_depth(&self) -> usize {
        self.max_depth
    }

    fn features(&self) -> u32 {
        0
    }

    fn version(&self) -> u16 {
        0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::{WireRef, WireValue};

    fn wire() -> RpycWire {
        let w = RpycWire::new(&Config::default());
        w.set_lookup(Box::new(|_| Some(Lent::Forwarded)));
        w
    }

    /// The body the seam hands `decode_into`: flag, payload, newline.
    fn body(msg: &Py) -> Vec<u8> {
        let mut b = vec![0];
        msg.encode(&mut b);
        b.push(b'\n');
        b
    }

    fn decode(w: &RpycWire, msg: &Py) -> Vec<Inbound> {
        let mut got = Vec::new();
        w.decode_into(&body(msg), |i| {
            got.push(i);
            true
        })
        .unwrap();
        got
    }

    fn request(seq: i64, h: Handler, args: Vec<Boxed>) -> Py {
        Py::Request {
            seq,
            handler: h.id(),
            args: Boxed::Tuple(args).into_brine(),
        }
    }

    /// Sends of one export are counted as RPyC counts them: one id_pack while lent, `DEL`s
    /// become releases, and at zero the id_pack names nothing any more.
    #[test]
    fn lent_objects_are_counted_and_forgotten() {
        let w = wire();
        let mut out = Vec::new();
        for call in [1, 2] {
            // Python's GETROOT twice, each answered with export 7.
            let got = decode(&w, &request(call, Handler::GetRoot, vec![]));
            let [Inbound::Message(Message::Call(c))] = &got[..] else {
                panic!("{got:?}")
            };
            assert_eq!(c.target, Target::Root);
            let ret = Message::Return {
                id: c.id,
                result: Ok(WireValue::Ref(WireRef::Sender(7))),
            };
            w.encode(&ret, &mut out).unwrap();
        }
        let rows = w.lent_rows();
        assert_eq!(rows.len(), 1, "one id_pack while lent");
        assert_eq!(rows[0].2, 2);
        let pack = w.state.lock().lent[&7].pack.clone();
        let del = |n| {
            request(
                9,
                Handler::Del,
                vec![Boxed::Yours(pack.clone()), Boxed::Value(Brine::Int(n))],
            )
        };
        let got = decode(&w, &del(1));
        assert!(
            matches!(&got[..], [Inbound::Message(Message::Release(r)), Inbound::Frame(_)] if r.0 == [(7, 1)]),
            "{got:?}"
        );
        decode(&w, &del(1));
        assert!(w.lent_rows().is_empty());
        // Stale now: an exception reply, no release.
        let got = decode(&w, &del(1));
        assert!(
            matches!(&got[..], [Inbound::Frame(f)] if f[5] == 3),
            "{got:?}"
        );
    }

    /// Python's objects: one import id per id_pack, receipts counted, and a release that
    /// leaves receipts keeps the mapping.
    #[test]
    fn held_objects_keep_their_id_until_the_last_receipt_goes() {
        let w = wire();
        let pack = IdPack {
            name: "builtins.function".into(),
            class_id: 5,
            instance_id: 99,
        };
        let mut out = Vec::new();
        let mut ids = Vec::new();
        for seq in [0, 1] {
            // This side calls (engine call 40 + seq); Python replies with its function.
            let sent = Sent::Call {
                id: 40 + seq as u64,
                shape: Out::Plain,
            };
            w.state.lock().sent.insert(seq, sent);
            let reply = Py::Reply {
                seq,
                value: Boxed::Theirs(pack.clone()).into_brine(),
            };
            let got = decode(&w, &reply);
            let [Inbound::Message(Message::Return {
                result: Ok(WireValue::Ref(WireRef::Sender(id))),
                ..
            })] = &got[..]
            else {
                panic!("{got:?}")
            };
            ids.push(*id);
        }
        assert_eq!(ids[0], ids[1]);
        w.encode(&Message::Release(vec![(ids[0], 1)].into()), &mut out)
            .unwrap();
        assert_eq!(w.held_rows().len(), 1, "one receipt left");
        w.encode(&Message::Release(vec![(ids[0], 1)].into()), &mut out)
            .unwrap();
        assert!(w.held_rows().is_empty());
        // Two DEL requests went out.
        assert!(out.iter().filter(|&&b| b == b'\n').count() >= 2);
    }

    /// The requests in `out`, as `(seq, handler, args)`.
    fn requests(out: &[u8]) -> Vec<(i64, Handler, String)> {
        let mut got = Vec::new();
        let mut rest = out;
        while rest.len() > 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let msg = Py::decode(&rest[5..5 + len], Limits::default()).unwrap();
            if let Py::Request { seq, handler, args } = &msg {
                let text = Boxed::from_brine(args.clone()).unwrap().to_string();
                got.push((*seq, Handler::from_id(*handler).unwrap(), text));
            }
            rest = &rest[6 + len..];
        }
        got
    }

    /// A path of two segments: `GETATTR` of the first, then the last request on what it
    /// gave with a `DEL` of that intermediate object; a plain value on the way fails the
    /// call and hands back what its arguments lent.
    #[test]
    fn paths_become_chains_of_requests() {
        let w = wire();
        let py = |i| IdPack {
            name: "builtins.object".into(),
            class_id: 1,
            instance_id: i,
        };
        let base = w.state.lock().receive(py(10));
        let call = |id, path: Vec<&str>, args| {
            Message::Call(CallMsg {
                id,
                target: Target::Object(base),
                path: WPath::from(path),
                op: values::call_of(args),
                timeout_ms: 0,
                flags: 0,
                trace: 0,
            })
        };
        let mut out = Vec::new();
        w.encode(&call(5, vec!["a", "m"], vec![WireValue::Int(1)]), &mut out)
            .unwrap();
        let sent = requests(&out);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1, Handler::GetAttr);
        assert_eq!(sent[0].2, "(yours<builtins.object 0xa>, \"a\")");
        let reply = |seq, value: Boxed| Py::Reply {
            seq,
            value: value.into_brine(),
        };
        let got = decode(&w, &reply(sent[0].0, Boxed::Theirs(py(11))));
        let [Inbound::Frame(next)] = &got[..] else {
            panic!("{got:?}")
        };
        let next = requests(next);
        assert_eq!(next[0].1, Handler::CallAttr);
        assert_eq!(next[0].2, "(yours<builtins.object 0xb>, \"m\", (1,), ())");
        assert_eq!(next[1].1, Handler::Del);
        assert_eq!(next[1].2, "(yours<builtins.object 0xb>, 1)");
        let got = decode(&w, &reply(next[0].0, Boxed::Value(Brine::Int(7))));
        assert!(
            matches!(
                &got[..],
                [Inbound::Message(Message::Return {
                    id: 5,
                    result: Ok(WireValue::Int(7))
                })]
            ),
            "{got:?}"
        );

        // Through a plain value: the call fails, and the export its arguments counted is
        // released back to the engine.
        let mut out = Vec::new();
        let arg = WireValue::Ref(WireRef::Sender(77));
        w.encode(&call(6, vec!["label", "upper"], vec![arg]), &mut out)
            .unwrap();
        assert_eq!(w.lent_rows().len(), 1);
        let seq = requests(&out)[0].0;
        let got = decode(&w, &reply(seq, Boxed::Value(Brine::str("text"))));
        match &got[..] {
            [Inbound::Message(Message::Release(r)), Inbound::Message(Message::Return {
                id: 6,
                result: Err(e),
            })] => {
                assert_eq!(r.0, [(77, 1)]);
                assert!(e.message.0.contains("plain value"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(w.lent_rows().is_empty());
    }

    /// A reply Python cannot be given is not encoded: the wire gives back what it lent for
    /// it, and the error is the engine's to send (it undoes its own counting first); the
    /// request stays asked until then, so that error becomes Python's exception.
    #[test]
    fn a_reply_python_cannot_be_given_is_an_encode_error() {
        let w = wire();
        let got = decode(&w, &request(3, Handler::GetRoot, vec![]));
        let [Inbound::Message(Message::Call(c))] = &got[..] else {
            panic!("{got:?}")
        };
        // Export 7, and an attribute path of a Python object, which cannot go back.
        let path = WireValue::Ref(WireRef::Receiver {
            target: Target::Object(1),
            path: WPath::from(vec!["x"]),
        });
        let value = WireValue::List(crate::protocol::WVec(vec![
            WireValue::Ref(WireRef::Sender(7)),
            path,
        ]));
        let mut out = Vec::new();
        let e = w
            .encode(
                &Message::Return {
                    id: c.id,
                    result: Ok(value),
                },
                &mut out,
            )
            .unwrap_err();
        assert!(e.to_string().contains("cannot go back to Python"), "{e}");
        assert!(out.is_empty(), "nothing written");
        assert!(w.lent_rows().is_empty(), "export 7 is not lent");
        let error = Message::Return {
            id: c.id,
            result: Err(e.into_remote().into()),
        };
        w.encode(&error, &mut out).unwrap();
        let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        match Py::decode(&out[5..5 + len], Limits::default()).unwrap() {
            Py::Exception { seq: 3, value } => {
                let text = format!("{value:?}");
                assert!(text.contains("cannot go back to Python"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        // Answered: a second Return of the call encodes to nothing.
        let mut more = Vec::new();
        w.encode(&error, &mut more).unwrap();
        assert!(more.is_empty());
    }

    /// One write per frame: the span of a buffer of frames is its first frame.
    #[test]
    fn a_write_span_is_one_frame() {
        let mut out = Vec::new();
        frame::encode(b"abc", false, &mut out).unwrap();
        frame::encode(b"de", false, &mut out).unwrap();
        assert_eq!(frame_span(&out), 9);
        assert_eq!(frame_span(&out[9..]), 8);
        assert_eq!(frame_span(&out[..3]), 3);
        assert_eq!(frame_span(&out[..7]), 7);
    }

    proptest! {
        /// Any body, framed or not: an error or inbounds, never a panic.
        #[test]
        fn hostile_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let w = wire();
            let _ = w.decode_into(&bytes, |_| true);
            let mut framed = vec![0];
            framed.extend_from_slice(&bytes);
            framed.push(b'\n');
            let _ = w.decode_into(&framed, |_| true);
        }
    }
}
