//! The native codec: a fixed 16-byte hello, then frames of a 4-byte big-endian length
//! followed by a bincode (standard configuration: little-endian, varint integers) message.
//! `docs/protocol.md` is the normative description.

use bincode::config::{self, Configuration};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::protocol::{with_depth_limit, Message};

/// The four bytes every native session starts with.
pub(crate) const MAGIC: [u8; 4] = *b"NREF";
/// The native protocol version.
pub(crate) const VERSION: u16 = 1;
/// Feature bit: the peer understands pipelined calls (`Target::Answer`, `Finish`).
pub(crate) const FEATURE_PIPELINING: u32 = 1;
/// Feature bit: the peer understands `Cancel`.
pub(crate) const FEATURE_CANCEL: u32 = 2;
/// The features this build speaks.
pub(crate) const FEATURES: u32 = FEATURE_PIPELINING | FEATURE_CANCEL;
/// Size of the hello in bytes.
pub(crate) const HELLO_LEN: usize = 16;

fn bincode_config() -> Configuration {
    config::standard()
}

/// What each side announces before the first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) version: u16,
    pub(crate) features: u32,
    pub(crate) max_frame: u32,
    pub(crate) max_depth: u16,
    /// Reserved for authentication; 0 in version 1.
    pub(crate) auth: u16,
}

impl Hello {
    pub(crate) fn from_config(config: &Config) -> Hello {
        Hello {
            version: VERSION,
            features: FEATURES,
            max_frame: u32::try_from(config.max_frame).unwrap_or(u32::MAX),
            max_depth: u16::try_from(config.max_depth).unwrap_or(u16::MAX),
            auth: 0,
        }
    }

    pub(crate) fn to_bytes(self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_be_bytes());
        b[6..10].copy_from_slice(&self.features.to_be_bytes());
        b[10..14].copy_from_slice(&self.max_frame.to_be_bytes());
        b[14..16].copy_from_slice(&self.max_depth.to_be_bytes());
        b
    }

    pub(crate) fn parse(b: &[u8; HELLO_LEN]) -> Result<Hello> {
        if b[0..4] != MAGIC {
            return Err(Error::Protocol(format!(
                "bad magic {:02x?}: the peer does not speak netref",
                &b[0..4]
            )));
        }
        let version = u16::from_be_bytes([b[4], b[5]]);
        if version != VERSION {
            return Err(Error::Protocol(format!(
                "protocol version {version} is not supported (this side speaks {VERSION})"
            )));
        }
        Ok(Hello {
            version,
            features: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
            max_frame: u32::from_be_bytes([b[10], b[11], b[12], b[13]]),
            max_depth: u16::from_be_bytes([b[14], b[15]]),
            auth: 0,
        })
    }
}

/// Sends our hello and reads the peer's, within the configured handshake time.
pub(crate) async fn handshake<R, W>(
    reader: &mut R,
    writer: &mut W,
    config: &Config,
) -> Result<Hello>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ours = Hello::from_config(config).to_bytes();
    let exchange = async {
        writer.write_all(&ours).await?;
        writer.flush().await?;
        let mut theirs = [0u8; HELLO_LEN];
        reader.read_exact(&mut theirs).await?;
        Hello::parse(&theirs)
    };
    match tokio::time::timeout(config.handshake_timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(Error::Protocol(format!(
            "no hello from the peer within {:?}",
            config.handshake_timeout
        ))),
    }
}

/// The native bincode codec.
#[derive(Debug, Clone)]
pub(crate) struct NativeCodec {
    /// Largest frame body the peer accepts.
    pub(crate) max_frame_out: usize,
    pub(crate) max_depth: usize,
}

impl Codec for NativeCodec {
    fn encode(&self, msg: &Message, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        bincode::serde::encode_into_std_write(msg, out, bincode_config())
            .map_err(|e| Error::Protocol(format!("cannot encode {}: {e}", msg.name())))?;
        let len = out.len() - start - 4;
        if len > self.max_frame_out {
            out.truncate(start);
            return Err(Error::remote(
                crate::ErrorKind::Value,
                format!(
                    "message of {len} bytes is over the peer's frame limit of {} bytes",
                    self.max_frame_out
                ),
            ));
        }
        let len = u32::try_from(len).map_err(|_| Error::Protocol("frame too large".into()))?;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn decode(&self, body: &[u8]) -> Result<Message> {
        let (msg, used): (Message, usize) = with_depth_limit(self.max_depth, || {
            bincode::serde::borrow_decode_from_slice(body, bincode_config())
        })
        .map_err(|e| Error::Protocol(format!("malformed message: {e}")))?;
        if used != body.len() {
            return Err(Error::Protocol(format!(
                "{} trailing bytes after a {} message",
                body.len() - used,
                msg.name()
            )));
        }
        Ok(msg)
    }
}

/// Reads one frame body into `buf`. `Ok(false)` on a clean end of stream between frames.
/// The declared length is checked against `max` before anything is allocated.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut len[1..]).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(Error::Protocol(format!(
            "frame of {len} bytes is over the limit of {max} bytes"
        )));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CallMsg, Target, WStr, WireOp, WireRef, WireValue};

    fn codec() -> NativeCodec {
        NativeCodec {
            max_frame_out: 1 << 24,
            max_depth: 64,
        }
    }

    fn frame(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        codec().encode(msg, &mut out).unwrap();
        out
    }

    /// The worked trace of `docs/protocol.md`: one call and one callback, by name.
    fn trace() -> Vec<(&'static str, Vec<u8>)> {
        // The first object a fresh export table lends gets this id (slot 1, version 1).
        let cb_id = (1u64 << 32) | 1;
        vec![
            (
                "hello",
                Hello::from_config(&Config::default()).to_bytes().to_vec(),
            ),
            (
                "call-add",
                frame(&Message::Call(CallMsg {
                    id: 1,
                    target: Target::Root,
                    path: vec![WStr::from("add")],
                    op: WireOp::Call {
                        args: vec![WireValue::Int(1), WireValue::Int(2)],
                        named: vec![],
                    },
                    timeout_ms: 30_000,
                    flags: 0,
                })),
            ),
            (
                "return-add",
                frame(&Message::Return {
                    id: 1,
                    result: Ok(WireValue::Int(3)),
                }),
            ),
            (
                "call-every",
                frame(&Message::Call(CallMsg {
                    id: 2,
                    target: Target::Root,
                    path: vec![WStr::from("every")],
                    op: WireOp::Call {
                        args: vec![WireValue::Int(1), WireValue::Ref(WireRef::Sender(cb_id))],
                        named: vec![],
                    },
                    timeout_ms: 30_000,
                    flags: 0,
                })),
            ),
            (
                "callback",
                frame(&Message::Call(CallMsg {
                    id: 1,
                    target: Target::Object(cb_id),
                    path: vec![],
                    op: WireOp::Call {
                        args: vec![WireValue::Int(0)],
                        named: vec![],
                    },
                    timeout_ms: 30_000,
                    flags: 0,
                })),
            ),
            (
                "callback-return",
                frame(&Message::Return {
                    id: 1,
                    result: Ok(WireValue::Nil),
                }),
            ),
            (
                "return-every",
                frame(&Message::Return {
                    id: 2,
                    result: Ok(WireValue::Int(1)),
                }),
            ),
            ("release", frame(&Message::Release(vec![(cb_id, 1)]))),
        ]
    }

    /// Hex bytes of each `<!-- frame: NAME -->` block: the part of each line before `|`.
    fn doc_frames(doc: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut lines = doc.lines();
        while let Some(line) = lines.next() {
            let Some(name) = line
                .trim()
                .strip_prefix("<!-- frame: ")
                .and_then(|r| r.strip_suffix(" -->"))
            else {
                continue;
            };
            let mut bytes = Vec::new();
            let _fence = lines.next();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                let hex = l.split('|').next().unwrap_or("");
                for tok in hex.split_whitespace() {
                    bytes.push(u8::from_str_radix(tok, 16).expect("hex byte in the trace"));
                }
            }
            out.push((name.to_owned(), bytes));
        }
        out
    }

    #[test]
    fn protocol_doc_trace_is_exact() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md"))
            .expect("docs/protocol.md");
        let documented = doc_frames(&doc);
        let actual = trace();
        let render = |b: &[u8]| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            documented
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            actual.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            "the trace's frames, in order"
        );
        for ((name, doc_bytes), (_, bytes)) in documented.iter().zip(&actual) {
            assert_eq!(
                render(doc_bytes),
                render(bytes),
                "frame `{name}` in docs/protocol.md differs from the encoder"
            );
            if *name != "hello" {
                // And the documented bytes decode back to the message.
                let body = &doc_bytes[4..];
                assert_eq!(
                    codec().decode(body).unwrap(),
                    codec().decode(&bytes[4..]).unwrap()
                );
            }
        }
    }

    #[test]
    fn declared_lengths_over_the_limit_are_refused_before_allocating() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
            let mut buf = Vec::new();
            let e = read_frame(&mut input, 1024, &mut buf).await.unwrap_err();
            assert!(e.to_string().contains("over the limit"), "{e}");
            assert!(buf.capacity() < 1024);
        });
    }

    #[test]
    fn strings_declaring_more_bytes_than_the_frame_holds_are_malformed() {
        // Goodbye (variant 7) with a string claiming 2^32 bytes.
        let body = [7u8, 0xfd, 0, 0, 0, 0, 1, 0, 0, 0, b'x'];
        let e = codec().decode(&body).unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e}");
    }

    #[test]
    fn nesting_over_the_depth_limit_is_refused() {
        let mut v = WireValue::Nil;
        for _ in 0..100 {
            v = WireValue::List(vec![v]);
        }
        let msg = Message::Return {
            id: 1,
            result: Ok(v),
        };
        let mut out = Vec::new();
        codec().encode(&msg, &mut out).unwrap();
        let e = codec().decode(&out[4..]).unwrap_err();
        assert!(e.to_string().contains("depth"), "{e}");
    }

    #[test]
    fn hello_checks_magic_and_version() {
        let mut h = Hello::from_config(&Config::default()).to_bytes();
        assert!(Hello::parse(&h).is_ok());
        h[5] = 9;
        assert!(Hello::parse(&h)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
        h[0] = b'X';
        assert!(Hello::parse(&h).unwrap_err().to_string().contains("magic"));
    }
}
