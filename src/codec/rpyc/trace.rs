//! RPyC messages in readable form, for `:trace` and [`crate::trace`] tracers.
//!
//! ```text
//! -> REQUEST 2 GETATTR(<netref.Lab 0x1>, "add")
//! <- REPLY 2 = ref<builtins.method 0x2>
//! -> REQUEST 3 CALL(<builtins.method 0x2>, (1, 2), ())
//! <- REPLY 3 = 3
//! ```
//!
//! In a request's arguments, `ref<…>` is an object the sender lends and `yours<…>` one of
//! the receiver's own objects coming home.

use super::boxing::Boxed;
use super::message::{Handler, Message};
use super::vinegar::Raised;

/// One message as a line.
pub(crate) fn describe(msg: &Message) -> String {
    match msg {
        Message::Request { seq, handler, args } => {
            let name = Handler::from_id(*handler)
                .map_or_else(|| format!("HANDLER{handler}"), |h| h.name().to_owned());
            let args = match Boxed::from_brine(args.clone()) {
                Ok(b) => {
                    let text = b.to_string();
                    let inner = text
                        .strip_prefix('(')
                        .and_then(|t| t.strip_suffix(')'))
                        .map(|t| t.trim_end_matches(','))
                        .unwrap_or(&text);
                    inner.to_owned()
                }
                Err(_) => format!("<malformed {args}>"),
            };
            format!("REQUEST {seq} {name}({})", shorten(&args))
        }
        Message::Reply { seq, value } => match Boxed::from_brine(value.clone()) {
            Ok(b) => format!("REPLY {seq} = {}", shorten(&b.to_string())),
            Err(_) => format!("REPLY {seq} = <malformed {value}>"),
        },
        Message::Exception { seq, value } => match Raised::from_brine(value.clone()) {
            Raised::StopIteration => format!("EXCEPTION {seq} StopIteration"),
            Raised::Exception(e) => {
                format!(
                    "EXCEPTION {seq} {}: {}",
                    e.type_name(),
                    shorten(&e.message())
                )
            }
        },
    }
}

/// Long renderings are cut, so a trace line stays a line.
fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::rpyc::boxing::IdPack;
    use crate::codec::rpyc::brine::Brine;

    #[test]
    fn lines_read_like_the_docs() {
        let root = IdPack {
            name: "netref.Lab".into(),
            class_id: 1,
            instance_id: 1,
        };
        let req = Message::Request {
            seq: 2,
            handler: 4,
            args: Boxed::Tuple(vec![Boxed::Yours(root), Boxed::Value(Brine::str("add"))])
                .to_brine(),
        };
        assert_eq!(
            describe(&req),
            r#"REQUEST 2 GETATTR(yours<netref.Lab 0x1>, "add")"#
        );
        let rep = Message::Reply {
            seq: 3,
            value: Boxed::Value(Brine::Int(3)).to_brine(),
        };
        assert_eq!(describe(&rep), "REPLY 3 = 3");
        let stop = Message::Exception {
            seq: 4,
            value: Brine::Int(1),
        };
        assert_eq!(describe(&stop), "EXCEPTION 4 StopIteration");
    }
}
