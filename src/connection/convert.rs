//! Conversion between engine values and wire values: exporting what we send, importing what
//! we receive. Counting happens here, at the moment a value is sent or received.

use std::sync::Arc;

use super::send::SendCtx;
use super::{Link, Shared};
use crate::codec::native::FEATURE_DESCRIBE;
use crate::dispatch::Op;
use crate::error::{Error, ErrorKind, Result};
use crate::object::Args;
use crate::protocol::{Target, WBytes, WPath, WStr, WireOp, WireRef, WireValue};
use crate::proxy::{self, Proxy};
use crate::value::Value;

impl Shared {
    /// Converts an outgoing value, exporting local objects and forwarded proxies.
    pub(crate) fn export_value(
        &self,
        v: Value,
        ctx: &mut SendCtx,
        depth: usize,
    ) -> Result<WireValue> {
        if depth > self.peer_max_depth {
            return Err(Error::limit(
                ErrorKind::Value,
                format!(
                    "value nesting is over the peer's limit of {}",
                    self.peer_max_depth
                ),
            ));
        }
        Ok(match v {
            Value::Nil => WireValue::Nil,
            Value::Bool(b) => WireValue::Bool(b),
            Value::Int(i) => WireValue::Int(i),
            Value::UInt(u) => WireValue::UInt(u),
            Value::Float(f) => WireValue::Float(f),
            Value::Str(s) => WireValue::Str(WStr(s)),
            Value::Bytes(b) => WireValue::Bytes(WBytes(b)),
            Value::List(items) => WireValue::List(
                items
                    .into_iter()
                    .map(|v| self.export_value(v, ctx, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Value::Map(entries) => WireValue::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        Ok((
                            self.export_value(k, ctx, depth + 1)?,
                            self.export_value(v, ctx, depth + 1)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
            Value::Ref(p) => WireValue::Ref(self.export_ref(p, ctx)?),
        })
    }

    fn export_ref(&self, p: Proxy, ctx: &mut SendCtx) -> Result<WireRef> {
        let home = match &p.target {
            proxy::Target::Remote(i) if self.is(&i.link) => Some(Target::Object(i.id)),
            proxy::Target::Root(l) if self.is(l) => Some(Target::Root),
            proxy::Target::Answer(a) if self.is(&a.link) => {
                return Err(Error::remote(
                    ErrorKind::Value,
                    "a pipelined answer cannot be passed back to its owner; await it first",
                ))
            }
            _ => None,
        };
        if let Some(target) = home {
            let path = WPath(p.path.clone());
            ctx.hold.push(p);
            return Ok(WireRef::Receiver { target, path });
        }
        // A local object, or a third party's object forwarded through us.
        if self.features & crate::codec::native::FEATURE_STREAMS == 0 {
            if let proxy::Target::Local(obj) = &p.target {
                if p.path.is_empty() && crate::surface::is_stream_source(obj.type_info()) {
                    return Err(Error::Unsupported(
                        "a stream cannot be sent: the peer's hello does not announce streams"
                            .into(),
                    ));
                }
            }
        }
        let id = self.exports.export(&p)?;
        ctx.exported.push(id);
        Ok(WireRef::Sender(id))
    }

    /// Undoes the counting of a message that was never sent.
    pub(crate) fn unsend(&self, ctx: SendCtx) {
        self.exports
            .release(ctx.exported.into_iter().map(|id| (id, 1)));
    }

    pub(crate) fn export_op(&self, op: Op, ctx: &mut SendCtx) -> Result<WireOp> {
        Ok(match op {
            Op::Call(args) => {
                let (pos, named) = args.into_parts();
                WireOp::Call {
                    args: pos
                        .into_iter()
                        .map(|v| self.export_value(v, ctx, 1))
                        .collect::<Result<_>>()?,
                    named: named
                        .into_iter()
                        .map(|(k, v)| Ok((WStr(k), self.export_value(v, ctx, 1)?)))
                        .collect::<Result<_>>()?,
                }
            }
            Op::Get => WireOp::Get,
            Op::Set(v) => WireOp::Set(self.export_value(v, ctx, 1)?),
            Op::Dir => WireOp::Dir,
            Op::Help => WireOp::Help,
            Op::Describe | Op::Bind if self.features & FEATURE_DESCRIBE == 0 => {
                return Err(Error::Unsupported(
                    "describing or binding a member: the peer's hello does not announce it".into(),
                ))
            }
            Op::Describe => WireOp::Describe,
            Op::Bind => WireOp::Bind,
        })
    }

    /// Converts an incoming value, importing the sender's objects and resolving our own.
    /// Every reference is counted even when another part of the value is bad; the first
    /// problem is left in `err`.
    pub(crate) fn import_value(
        &self,
        link: &Arc<Link>,
        w: WireValue,
        err: &mut Option<Error>,
    ) -> Value {
        match w {
            WireValue::Nil => Value::Nil,
            WireValue::Bool(b) => Value::Bool(b),
            WireValue::Int(i) => Value::Int(i),
            WireValue::UInt(u) => Value::UInt(u),
            WireValue::Float(f) => Value::Float(f),
            WireValue::Str(s) => Value::Str(s.0),
            WireValue::Bytes(b) => Value::Bytes(b.0),
            WireValue::List(items) => Value::List(
                items
                    .into_iter()
                    .map(|v| self.import_value(link, v, err))
                    .collect(),
            ),
            WireValue::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            self.import_value(link, k, err),
                            self.import_value(link, v, err),
                        )
                    })
                    .collect(),
            ),
            WireValue::Ref(r) => match self.import_ref(link, r) {
                Ok(p) => Value::Ref(p),
                Err(e) => {
                    err.get_or_insert(e);
                    Value::Nil
                }
            },
        }
    }

    fn import_ref(&self, link: &Arc<Link>, r: WireRef) -> Result<Proxy> {
        match r {
            WireRef::Sender(id) => {
                let import = self.imports.receive(link, id);
                Ok(Proxy::with_target(proxy::Target::Remote(import)))
            }
            WireRef::Receiver { target, path } => {
                let base = self.resolve_target(target)?;
                Ok(base.join_path(path.0))
            }
        }
    }

    /// Our own object named by `target` (root or export id).
    pub(crate) fn resolve_target(&self, target: Target) -> Result<Proxy> {
        match target {
            Target::Root => self.root.get().map(Proxy::local).ok_or_else(|| {
                Error::remote(ErrorKind::NoSuchObject, "this side lends no root object")
            }),
            Target::Object(id) => self.exports.get(id).ok_or_else(|| no_such_object(id)),
            Target::Answer(_) => Err(Error::remote(
                ErrorKind::Protocol,
                "a pipelined answer cannot be used as an argument",
            )),
        }
    }

    pub(crate) fn import_op(&self, link: &Arc<Link>, op: WireOp, err: &mut Option<Error>) -> Op {
        match op {
            WireOp::Call { args, named } => {
                let pos = args
                    .into_iter()
                    .map(|v| self.import_value(link, v, err))
                    .collect();
                let named = named
                    .into_iter()
                    .map(|(k, v)| (k.0, self.import_value(link, v, err)))
                    .collect();
                Op::Call(Args::from_parts(pos, named))
            }
            WireOp::Get => Op::Get,
            WireOp::Set(v) => Op::Set(self.import_value(link, v, err)),
            WireOp::Dir => Op::Dir,
            WireOp::Help => Op::Help,
            WireOp::Describe => Op::Describe,
            WireOp::Bind => Op::Bind,
        }
    }
}

pub(crate) fn no_such_object(id: u64) -> Error {
    Error::remote(
        ErrorKind::NoSuchObject,
        format!("no object #{id:x}: never lent, already released, or stale"),
    )
}
