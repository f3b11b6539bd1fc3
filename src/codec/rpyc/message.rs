//! RPyC 6 messages: a type byte (request, reply, exception) followed by the brine 2-tuple
//! `(seq, body)`, and the 20 request handlers a request body names.
//!
//! A request's body is `(handler_id, boxed_args)`, a reply's the boxed result, an
//! exception's the raw (unboxed) vinegar value. `seq` counts per direction: requests carry
//! the sender's counter, replies and exceptions echo it.

use std::fmt;

use super::brine::{self, Brine, Limits};
use crate::error::{Error, Result};

/// The kind of a message (its first payload byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `MSG_REQUEST` (1): the peer asks a handler to run.
    Request,
    /// `MSG_REPLY` (2): the result of one of our requests.
    Reply,
    /// `MSG_EXCEPTION` (3): one of our requests raised.
    Exception,
}

/// Brine's tag of a 2-tuple.
const TUPLE2: u8 = 0x11;

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Request => 1,
            Kind::Reply => 2,
            Kind::Exception => 3,
        }
    }
}

/// RPyC's request handlers, by their wire ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Handler {
    /// 1: echo the argument.
    Ping,
    /// 2: the peer is closing.
    Close,
    /// 3: the root object.
    GetRoot,
    /// 4: `getattr(obj, name)`.
    GetAttr,
    /// 5: `delattr(obj, name)`.
    DelAttr,
    /// 6: `setattr(obj, name, value)`.
    SetAttr,
    /// 7: `obj(*args, **kwargs)`.
    Call,
    /// 8: `getattr(obj, name)(*args, **kwargs)`.
    CallAttr,
    /// 9: `repr(obj)`.
    Repr,
    /// 10: `str(obj)`.
    Str,
    /// 11: a rich comparison `(obj, other, op)`.
    Cmp,
    /// 12: `hash(obj)`.
    Hash,
    /// 13: `dir(obj)`.
    Dir,
    /// 14: pickle the object (refused here).
    Pickle,
    /// 15: release `count` references.
    Del,
    /// 16: the methods of the type an id_pack names.
    Inspect,
    /// 17: up to `count` items from an iterator.
    BuffIter,
    /// 18: Python 2 slicing (refused here).
    OldSlicing,
    /// 19: `obj.__exit__(...)`.
    CtxExit,
    /// 20: `isinstance(obj, type named by id_pack)`.
    InstanceCheck,
}

impl Handler {
    /// Every handler, in id order.
    pub(crate) const ALL: [Handler; 20] = [
        Handler::Ping,
        Handler::Close,
        Handler::GetRoot,
        Handler::GetAttr,
        Handler::DelAttr,
        Handler::SetAttr,
        Handler::Call,
        Handler::CallAttr,
        Handler::Repr,
        Handler::Str,
        Handler::Cmp,
        Handler::Hash,
        Handler::Dir,
        Handler::Pickle,
        Handler::Del,
        Handler::Inspect,
        Handler::BuffIter,
        Handler::OldSlicing,
        Handler::CtxExit,
        Handler::InstanceCheck,
    ];

    /// The handler with wire id `id`.
    pub(crate) fn from_id(id: i64) -> Option<Handler> {
        usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| Handler::ALL.get(i).copied())
    }

    /// The wire id.
    pub(crate) fn id(self) -> i64 {
        Handler::ALL
            .iter()
            .position(|h| *h == self)
            .map_or(0, |i| i as i64 + 1)
    }

    /// RPyC's name (`"GETATTR"`), for traces.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Handler::Ping => "PING",
            Handler::Close => "CLOSE",
            Handler::GetRoot => "GETROOT",
            Handler::GetAttr => "GETATTR",
            Handler::DelAttr => "DELATTR",
            Handler::SetAttr => "SETATTR",
            Handler::Call => "CALL",
            Handler::CallAttr => "CALLATTR",
            Handler::Repr => "REPR",
            Handler::Str => "STR",
            Handler::Cmp => "CMP",
            Handler::Hash => "HASH",
            Handler::Dir => "DIR",
            Handler::Pickle => "PICKLE",
            Handler::Del => "DEL",
            Handler::Inspect => "INSPECT",
            Handler::BuffIter => "BUFFITER",
            Handler::OldSlicing => "OLDSLICING",
            Handler::CtxExit => "CTXEXIT",
            Handler::InstanceCheck => "INSTANCECHECK",
        }
    }
}

impl fmt::Display for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// A request: run `handler` on the (boxed) `args`.
    Request {
        /// The sender's sequence number.
        seq: i64,
        /// The handler's wire id (kept raw: an unknown id is answered, not fatal).
        handler: i64,
        /// The boxed argument tuple.
        args: Brine,
    },
    /// A reply to our request `seq`, carrying the boxed result.
    Reply {
        /// Our sequence number being answered.
        seq: i64,
        /// The boxed result.
        value: Brine,
    },
    /// Our request `seq` raised; `value` is the raw vinegar value.
    Exception {
        /// Our sequence number being answered.
        seq: i64,
        /// The vinegar value.
        value: Brine,
    },
}

impl Message {
    /// Appends this message's payload (type byte, then brine) to `out`. The 2-tuple headers
    /// are written by hand so the body is not cloned into a tuple.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let (kind, seq) = match self {
            Message::Request { seq, .. } => (Kind::Request, *seq),
            Message::Reply { seq, .. } => (Kind::Reply, *seq),
            Message::Exception { seq, .. } => (Kind::Exception, *seq),
        };
        out.push(kind.byte());
        out.push(TUPLE2);
        brine::encode(&Brine::Int(seq), out);
        match self {
            Message::Request { handler, args, .. } => {
                out.push(TUPLE2);
                brine::encode(&Brine::Int(*handler), out);
                brine::encode(args, out);
            }
            Message::Reply { value, .. } | Message::Exception { value, .. } => {
                brine::encode(value, out)
            }
        }
    }

    /// Decodes one message payload.
    pub(crate) fn decode(payload: &[u8], limits: Limits) -> Result<Message> {
        let (&kind, rest) = payload
            .split_first()
            .ok_or_else(|| Error::Protocol("an empty RPyC message".into()))?;
        if !(1..=3).contains(&kind) {
            return Err(Error::Protocol(format!(
                "invalid RPyC message type {kind} (an RPyC 5 or bind_threads peer?)"
            )));
        }
        let (seq, body) = match brine::decode(rest, limits)?.into_tuple() {
            Some(t) if t.len() == 2 => {
                let mut t = t.into_iter();
                let seq = t.next().and_then(|s| s.as_i64());
                (seq, t.next().unwrap_or(Brine::None))
            }
            _ => (None, Brine::None),
        };
        let seq = seq.ok_or_else(|| {
            Error::Protocol("an RPyC message that is not a (seq, body) pair".into())
        })?;
        Ok(match kind {
            1 => {
                let mut parts = body.into_tuple().filter(|t| t.len() == 2).ok_or_else(|| {
                    Error::Protocol("an RPyC request body that is not (handler, args)".into())
                })?;
                let args = parts.pop().unwrap_or(Brine::None);
                let handler = parts[0].as_i64().ok_or_else(|| {
                    Error::Protocol("an RPyC request whose handler id is not an int".into())
                })?;
                Message::Request { seq, handler, args }
            }
            2 => Message::Reply { seq, value: body },
            _ => Message::Exception { seq, value: body },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_ids_are_rpyc_s() {
        assert_eq!(Handler::Ping.id(), 1);
        assert_eq!(Handler::GetAttr.id(), 4);
        assert_eq!(Handler::Call.id(), 7);
        assert_eq!(Handler::Del.id(), 15);
        assert_eq!(Handler::Inspect.id(), 16);
        assert_eq!(Handler::InstanceCheck.id(), 20);
        for h in Handler::ALL {
            assert_eq!(Handler::from_id(h.id()), Some(h));
        }
        assert_eq!(Handler::from_id(0), None);
        assert_eq!(Handler::from_id(21), None);
        assert_eq!(Handler::from_id(-1), None);
    }

    #[test]
    fn traced_messages_round_trip() {
        // REQUEST seq 0 GETROOT (VALUE, ())
        let getroot = [0x01, 0x11, 0x50, 0x11, 0x53, 0x11, 0x51, 0x02];
        let m = Message::decode(&getroot, Limits::default()).unwrap();
        assert_eq!(
            m,
            Message::Request {
                seq: 0,
                handler: 3,
                args: Brine::Tuple(vec![Brine::Int(1), Brine::Tuple(vec![])])
            }
        );
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, getroot);
        // REPLY seq 3 (VALUE, 3)
        let reply = [0x02, 0x11, 0x53, 0x11, 0x51, 0x53];
        let m = Message::decode(&reply, Limits::default()).unwrap();
        assert_eq!(
            m,
            Message::Reply {
                seq: 3,
                value: Brine::Tuple(vec![Brine::Int(1), Brine::Int(3)])
            }
        );
        out.clear();
        m.encode(&mut out);
        assert_eq!(out, reply);
        // EXCEPTION seq 6, StopIteration = 1
        let stop = [0x03, 0x11, 0x56, 0x51];
        let m = Message::decode(&stop, Limits::default()).unwrap();
        assert_eq!(
            m,
            Message::Exception {
                seq: 6,
                value: Brine::Int(1)
            }
        );
        out.clear();
        m.encode(&mut out);
        assert_eq!(out, stop);
    }

    #[test]
    fn malformed_messages_are_refused() {
        let lim = Limits::default();
        assert!(Message::decode(&[], lim).is_err());
        // an RPyC 5 payload starts with 0x12
        let e = Message::decode(&[0x12, 0x51, 0x50, 0x00], lim).unwrap_err();
        assert!(e.to_string().contains("message type 18"), "{e}");
        assert!(Message::decode(&[0x01, 0x00], lim).is_err());
        assert!(Message::decode(&[0x01, 0x11, 0x50, 0x00], lim).is_err());
        assert!(Message::decode(&[0x01, 0x11, 0x50, 0x11, 0x08, 0x01, 0x02], lim).is_err());
        assert!(Message::decode(&[0x02, 0x11, 0x08, 0x01, 0x00], lim).is_err());
    }
}
