//! RPyC's boxing: every argument and result travels as a `(label, value)` pair saying
//! whether it is a plain value, a tuple of boxed items, or a reference given by an id_pack.
//!
//! From the receiver's point of view:
//!
//! | label | [`Boxed`] | meaning |
//! |---|---|---|
//! | 1 `LABEL_VALUE` | [`Boxed::Value`] | a brine value, used as is |
//! | 2 `LABEL_TUPLE` | [`Boxed::Tuple`] | a tuple whose items are boxed in turn |
//! | 3 `LABEL_LOCAL_REF` | [`Boxed::Yours`] | one of the receiver's own objects, coming home |
//! | 4 `LABEL_REMOTE_REF` | [`Boxed::Theirs`] | one of the sender's objects, lent by reference |

use std::fmt;

use super::brine::Brine;
use crate::error::{Error, Result};

/// A plain value.
pub(crate) const LABEL_VALUE: i64 = 1;
/// A tuple of boxed items.
pub(crate) const LABEL_TUPLE: i64 = 2;
/// "This is your object" (the receiver owns it).
pub(crate) const LABEL_LOCAL_REF: i64 = 3;
/// "This is my object" (the sender owns it and lends it).
pub(crate) const LABEL_REMOTE_REF: i64 = 4;

/// RPyC's object reference: `(name_pack, class_id, instance_id)`.
///
/// `name_pack` is the dotted type name (`"builtins.function"`, `"__main__.Calc"`); Python
/// picks its prebuilt proxy classes by it. `class_id` identifies the type and `instance_id`
/// the object (0 when the object is a class).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct IdPack {
    /// The dotted type name.
    pub(crate) name: String,
    /// The type's id.
    pub(crate) class_id: i64,
    /// The object's id (0 for a class object).
    pub(crate) instance_id: i64,
}

impl IdPack {
    /// The brine 3-tuple.
    pub(crate) fn to_brine(&self) -> Brine {
        Brine::Tuple(vec![
            Brine::str(self.name.as_str()),
            Brine::Int(self.class_id),
            Brine::Int(self.instance_id),
        ])
    }

    /// Reads an id_pack from its brine 3-tuple.
    pub(crate) fn from_brine(v: &Brine) -> Result<IdPack> {
        match v.as_tuple() {
            Some([Brine::Str(name), Brine::Int(class_id), Brine::Int(instance_id)]) => Ok(IdPack {
                name: name.clone(),
                class_id: *class_id,
                instance_id: *instance_id,
            }),
            _ => Err(Error::Protocol(format!(
                "an id_pack must be (str, int, int), found {v}"
            ))),
        }
    }
}

impl fmt::Display for IdPack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} {:#x}>", self.name, self.instance_id)
    }
}

/// A boxed value, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Boxed {
    /// `LABEL_VALUE`: a brine value.
    Value(Brine),
    /// `LABEL_TUPLE`: a tuple of boxed items.
    Tuple(Vec<Boxed>),
    /// `LABEL_LOCAL_REF` as received: one of the receiver's objects.
    Yours(IdPack),
    /// `LABEL_REMOTE_REF` as received: one of the sender's objects.
    Theirs(IdPack),
}

impl Boxed {
    /// The boxed form as brine: `(label, value)`.
    #[cfg(test)]
    pub(crate) fn to_brine(&self) -> Brine {
        let (label, value) = match self {
            Boxed::Value(v) => (LABEL_VALUE, v.clone()),
            Boxed::Tuple(items) => (
                LABEL_TUPLE,
                Brine::Tuple(items.iter().map(Boxed::to_brine).collect()),
            ),
            Boxed::Yours(id) => (LABEL_LOCAL_REF, id.to_brine()),
            Boxed::Theirs(id) => (LABEL_REMOTE_REF, id.to_brine()),
        };
        Brine::Tuple(vec![Brine::Int(label), value])
    }

    /// The boxed form as brine, taking the value (no clone of plain data).
    pub(crate) fn into_brine(self) -> Brine {
        let (label, value) = match self {
            Boxed::Value(v) => (LABEL_VALUE, v),
            Boxed::Tuple(items) => (
                LABEL_TUPLE,
                Brine::Tuple(items.into_iter().map(Boxed::into_brine).collect()),
            ),
            Boxed::Yours(id) => (LABEL_LOCAL_REF, id.to_brine()),
            Boxed::Theirs(id) => (LABEL_REMOTE_REF, id.to_brine()),
        };
        Brine::Tuple(vec![Brine::Int(label), value])
    }

    /// Reads a boxed value. Brine's own depth limit bounds the recursion.
    pub(crate) fn from_brine(v: Brine) -> Result<Boxed> {
        let Some(mut pair) = v.into_tuple().filter(|t| t.len() == 2) else {
            return Err(Error::Protocol(
                "a boxed value must be a (label, value) pair".into(),
            ));
        };
        let value = pair.pop().unwrap_or(Brine::None);
        match pair[0].as_i64() {
            Some(LABEL_VALUE) => Ok(Boxed::Value(value)),
            Some(LABEL_TUPLE) => match value.into_tuple() {
                Some(items) => items
                    .into_iter()
                    .map(Boxed::from_brine)
                    .collect::<Result<_>>()
                    .map(Boxed::Tuple),
                None => Err(Error::Protocol(
                    "a LABEL_TUPLE value must be a tuple".into(),
                )),
            },
            Some(LABEL_LOCAL_REF) => IdPack::from_brine(&value).map(Boxed::Yours),
            Some(LABEL_REMOTE_REF) => IdPack::from_brine(&value).map(Boxed::Theirs),
            _ => Err(Error::Protocol(format!("unknown boxing label {}", pair[0]))),
        }
    }

    /// The items, when this is a boxed tuple (a plain tuple value counts too).
    pub(crate) fn into_items(self) -> Option<Vec<Boxed>> {
        match self {
            Boxed::Tuple(items) => Some(items),
            Boxed::Value(Brine::Tuple(items)) => {
                Some(items.into_iter().map(Boxed::Value).collect())
            }
            _ => None,
        }
    }
}

impl fmt::Display for Boxed {
    /// A readable form for traces: values as Python reprs, references as `<name 0x…>` with
    /// `yours`/`mine` marking whose object it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Boxed::Value(v) => write!(f, "{v}"),
            Boxed::Tuple(items) => {
                f.write_str("(")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                if items.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
            Boxed::Yours(id) => write!(f, "yours{id}"),
            Boxed::Theirs(id) => write!(f, "ref{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::rpyc::brine::{self, Limits};

    #[test]
    fn the_traced_getattr_args_decode() {
        // (TUPLE, ((LOCAL_REF, root_id_pack), (VALUE, "add")))
        let root = IdPack {
            name: "__main__.CalcService".into(),
            class_id: 94188668838560,
            instance_id: 140381016635856,
        };
        let args = Boxed::Tuple(vec![
            Boxed::Yours(root.clone()),
            Boxed::Value(Brine::str("add")),
        ]);
        let bytes = brine::to_bytes(&args.to_brine());
        assert_eq!(bytes[..6], [0x11, 0x52, 0x11, 0x11, 0x53, 0x12]);
        assert!(bytes.ends_with(&[0x11, 0x51, 0x08, 0x0c, b'a', b'd', b'd']));
        let back = Boxed::from_brine(brine::decode(&bytes, Limits::default()).unwrap()).unwrap();
        assert_eq!(back, args);
        assert_eq!(
            back.to_string(),
            "(yours<__main__.CalcService 0x7fad00a139d0>, \"add\")"
        );
    }

    #[test]
    fn bad_boxes_are_refused() {
        for v in [
            Brine::Int(1),
            Brine::Tuple(vec![Brine::Int(9), Brine::None]),
            Brine::Tuple(vec![Brine::Int(2), Brine::Int(1)]),
            Brine::Tuple(vec![Brine::Int(3), Brine::str("x")]),
            Brine::Tuple(vec![
                Brine::Int(4),
                Brine::Tuple(vec![Brine::str("x"), Brine::str("1"), Brine::Int(2)]),
            ]),
            Brine::Tuple(vec![Brine::Int(2), Brine::Tuple(vec![Brine::Int(1)])]),
        ] {
            assert!(Boxed::from_brine(v.clone()).is_err(), "{v}");
        }
    }
}
