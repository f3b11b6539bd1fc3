//! The native codec: a fixed 16-byte hello (followed, when a shared secret is configured, by
//! the authentication exchange), then frames of a 4-byte big-endian length followed by a
//! bincode (standard configuration: little-endian, varint integers) message.
//! `docs/protocol.md` is the normative description.

use bincode::config::{self, Configuration};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{FrameLen, Inbound, Wire};
use crate::auth::{self, AuthFailure, Challenge, CHALLENGE_LEN, PROOF_LEN};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::protocol::{DecodeCx, Message};

/// The four bytes every native session starts with.
pub(crate) const MAGIC: [u8; 4] = *b"NREF";
/// The lowest native protocol version this build speaks.
pub(crate) const MIN_VERSION: u16 = 1;
/// The highest native protocol version this build speaks.
pub(crate) const MAX_VERSION: u16 = 1;
/// Feature bit: the peer understands pipelined calls (`Target::Answer`, `Finish`).
pub(crate) const FEATURE_PIPELINING: u32 = 1;
/// Feature bit: the peer understands `Cancel`.
pub(crate) const FEATURE_CANCEL: u32 = 2;
/// Feature bit: the sender holds a shared secret; a challenge follows its hello and the
/// authentication exchange runs before the first frame.
pub(crate) const FEATURE_AUTH: u32 = 4;
/// Feature bit: the peer serves and pulls streams (`netref::Stream`'s source objects).
pub(crate) const FEATURE_STREAMS: u32 = 8;
/// Feature bit: the peer runs one-way calls (`FLAG_ONE_WAY`) without answering them.
pub(crate) const FEATURE_ONE_WAY: u32 = 16;
/// Feature bit: the peer reads a trace id after a call's flags (`FLAG_TRACE`).
pub(crate) const FEATURE_TRACE: u32 = 32;
/// Feature bit: the peer reads the `Describe` and `Bind` operations (`WireOp` tags 5, 6).
pub(crate) const FEATURE_DESCRIBE: u32 = 64;
/// Feature bit: the peer's lent streams answer `pull_block`, a window as one block of
/// bytes (`stream/block.rs`), so this side asks them for blocks rather than values.
pub(crate) const FEATURE_STREAM_BLOCKS: u32 = 128;
/// The features this build speaks (authentication is added when a secret is configured).
pub(crate) const FEATURES: u32 = FEATURE_PIPELINING
    | FEATURE_CANCEL
    | FEATURE_STREAMS
    | FEATURE_ONE_WAY
    | FEATURE_TRACE
    | FEATURE_DESCRIBE
    | FEATURE_STREAM_BLOCKS;
/// The hello's feature field holds 24 bits.
const FEATURE_MASK: u32 = 0x00ff_ffff;
/// Size of the hello in bytes.
pub(crate) const HELLO_LEN: usize = 16;
/// Size of a side's opening when it authenticates: its hello, then its challenge.
const OPENING_LEN: usize = HELLO_LEN + CHALLENGE_LEN;

fn bincode_config() -> Configuration {
    config::standard()
}

/// What each side announces before the first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The lowest protocol version the sender speaks.
    pub(crate) min_version: u16,
    /// The highest protocol version the sender speaks (at least `min_version`, and at most
    /// 255 above it).
    pub(crate) max_version: u16,
    /// The sender's feature bits (24 of them).
    pub(crate) features: u32,
    pub(crate) max_frame: u32,
    pub(crate) max_depth: u16,
}

impl Hello {
    pub(crate) fn from_config(config: &Config) -> Hello {
        let auth = if config.secret.is_some() {
            FEATURE_AUTH
        } else {
            0
        };
        Hello {
            min_version: MIN_VERSION,
            max_version: MAX_VERSION,
            features: FEATURES | auth,
            max_frame: u32::try_from(config.max_frame).unwrap_or(u32::MAX),
            max_depth: u16::try_from(config.max_depth).unwrap_or(u16::MAX),
        }
    }

    /// True when the sender authenticates: a challenge follows this hello.
    pub(crate) fn wants_auth(&self) -> bool {
        self.features & FEATURE_AUTH != 0
    }

    pub(crate) fn to_bytes(self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.min_version.to_be_bytes());
        let extra = self.max_version.saturating_sub(self.min_version).min(255) as u32;
        let word = (extra << 24) | (self.features & FEATURE_MASK);
        b[6..10].copy_from_slice(&word.to_be_bytes());
        b[10..14].copy_from_slice(&self.max_frame.to_be_bytes());
        b[14..16].copy_from_slice(&self.max_depth.to_be_bytes());
        b
    }

    /// Reads a hello; refuses bytes that do not start with the magic. Whether the versions
    /// fit is [`Hello::agree`]'s question.
    pub(crate) fn parse(b: &[u8; HELLO_LEN]) -> Result<Hello> {
        if b[0..4] != MAGIC {
            return Err(Error::Protocol(format!(
                "bad magic {:02x?}: the peer does not speak netref",
                &b[0..4]
            )));
        }
        let min_version = u16::from_be_bytes([b[4], b[5]]);
        let word = u32::from_be_bytes([b[6], b[7], b[8], b[9]]);
        Ok(Hello {
            min_version,
            max_version: min_version.saturating_add((word >> 24) as u16),
            features: word & FEATURE_MASK,
            max_frame: u32::from_be_bytes([b[10], b[11], b[12], b[13]]),
            max_depth: u16::from_be_bytes([b[14], b[15]]),
        })
    }

    /// The version two sides with hellos `self` and `peer` speak: the highest both do, or a
    /// clear error when their ranges do not meet.
    pub(crate) fn agree(&self, peer: &Hello) -> Result<u16> {
        let low = self.min_version.max(peer.min_version);
        let high = self.max_version.min(peer.max_version);
        if low > high {
            return Err(Error::Protocol(format!(
                "no protocol version in common: the peer speaks {}, this side {}",
                versions(peer.min_version, peer.max_version),
                versions(self.min_version, self.max_version)
            )));
        }
        Ok(high)
    }
}

/// `version 1` or `versions 1 to 3`.
fn versions(min: u16, max: u16) -> String {
    if min == max {
        format!("version {min}")
    } else {
        format!("versions {min} to {max}")
    }
}

/// What the hello exchange settled: the peer's hello and the version both sides speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// The peer's hello (its limits and feature bits).
    pub(crate) peer: Hello,
    /// The protocol version of this connection.
    pub(crate) version: u16,
}

/// Sends our hello and reads the peer's, then, when either side authenticates, runs the
/// challenge–response exchange; all within the configured handshake time. Returns the peer's
/// hello and the version both speak once the peer may be talked to; a peer with no version
/// in common is refused with an error that names both ranges.
pub(crate) async fn handshake<R, W>(
    reader: &mut R,
    writer: &mut W,
    config: &Config,
) -> Result<Agreed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Our opening: the hello, and our challenge when we hold a secret.
    let mut ours = Vec::with_capacity(OPENING_LEN);
    let our_hello = Hello::from_config(config);
    ours.extend_from_slice(&our_hello.to_bytes());
    let mine = match &config.secret {
        Some(secret) if secret.is_empty() => return Err(AuthFailure::EmptySecret.into()),
        Some(secret) => {
            let c = Challenge::fresh(config.role)?;
            ours.extend_from_slice(&c.to_bytes());
            Some((secret, c))
        }
        None => None,
    };
    let exchange = async {
        writer.write_all(&ours).await?;
        writer.flush().await?;
        let mut theirs = [0u8; OPENING_LEN];
        reader.read_exact(&mut theirs[..HELLO_LEN]).await?;
        let mut hello_bytes = [0u8; HELLO_LEN];
        hello_bytes.copy_from_slice(&theirs[..HELLO_LEN]);
        let hello = Hello::parse(&hello_bytes)?;
        let agreed = Agreed {
            peer: hello,
            version: our_hello.agree(&hello)?,
        };
        // Read the peer's challenge even when we refuse it, so nothing it sent is left
        // unread (closing on unread bytes could reset the stream before the peer has read
        // our hello and learnt why it is refused).
        let their_challenge = if hello.wants_auth() {
            reader.read_exact(&mut theirs[HELLO_LEN..]).await?;
            let mut c = [0u8; CHALLENGE_LEN];
            c.copy_from_slice(&theirs[HELLO_LEN..]);
            Some(c)
        } else {
            None
        };
        let ((secret, ours_c), theirs_c) = match (mine, their_challenge) {
            (None, None) => return Ok(agreed),
            (Some(_), None) => return Err(AuthFailure::PeerHasNoSecret.into()),
            (None, Some(_)) => return Err(AuthFailure::NoSecretHere.into()),
            (Some(m), Some(t)) => (m, Challenge::parse(&t)?),
        };
        let (our_label, their_label) = auth::labels(&ours_c, &theirs_c)?;
        let our_proof = auth::proof(secret, our_label, &ours, &theirs);
        let mut their_proof = [0u8; PROOF_LEN];
        let proofs = async {
            writer.write_all(&our_proof).await?;
            writer.flush().await?;
            reader.read_exact(&mut their_proof).await
        };
        if let Err(e) = proofs.await {
            // A peer that refused us closes here; say so rather than "early eof".
            return Err(match e.kind() {
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe => AuthFailure::PeerClosed.into(),
                _ => e.into(),
            });
        }
        let expected = auth::proof(secret, their_label, &theirs, &ours);
        auth::verify(&expected, &their_proof)?;
        Ok(agreed)
    };
    match tokio::time::timeout(config.handshake_timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(Error::Protocol(format!(
            "the peer did not complete the hello within {:?}",
            config.handshake_timeout
        ))),
    }
}

/// The native wire after the hello: frames of a 4-byte big-endian length and a bincode
/// message: the hand-written [`fast`](super::fast) path for the hot shapes, and for the
/// rest the protocol types' `Encode`/`BorrowDecode` (derived, but for the few written by
/// hand in [`protocol`](crate::protocol)); same bytes.
#[derive(Debug, Clone)]
pub(crate) struct NativeCodec {
    /// Largest frame body the peer accepts.
    pub(crate) max_frame_out: usize,
    /// Deepest value nesting this side accepts.
    pub(crate) max_depth: usize,
    /// Deepest value nesting the peer accepts.
    pub(crate) peer_max_depth: usize,
    /// The features both sides speak (`FEATURE_*`).
    pub(crate) features: u32,
    /// The protocol version both sides speak.
    pub(crate) version: u16,
}

impl NativeCodec {
    /// The codec for a connection whose hello exchange settled `agreed`.
    pub(crate) fn new(config: &Config, agreed: &Agreed) -> NativeCodec {
        let peer = &agreed.peer;
        NativeCodec {
            max_frame_out: peer.max_frame as usize,
            max_depth: config.max_depth,
            peer_max_depth: peer.max_depth as usize,
            features: peer.features & FEATURES,
            version: agreed.version,
        }
    }

    /// Decodes one frame body (without its length prefix) into its message.
    pub(crate) fn decode(&self, body: &[u8]) -> Result<Message> {
        if let Some(msg) = super::fast::decode(body, self.max_depth) {
            return Ok(msg);
        }
        let (msg, used): (Message, usize) = bincode::borrow_decode_from_slice_with_context(
            body,
            bincode_config(),
            DecodeCx::new(self.max_depth),
        )
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

/// Bincode's writer appending to a frame under construction.
struct Append<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for Append<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// The error of a frame whose declared length is over the limit (out of the hot path).
#[cold]
#[inline(never)]
fn over_limit(len: usize, max: usize) -> Error {
    Error::Protocol(format!(
        "frame of {len} bytes is over the limit of {max} bytes"
    ))
}

impl Wire for NativeCodec {
    const HEAD: usize = 4;

    #[inline]
    fn frame_len(&self, head: &[u8], max: usize) -> Result<FrameLen> {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > max {
            return Err(over_limit(len, max));
        }
        Ok(FrameLen {
            body: len,
            trailer: 0,
        })
    }

    fn encode(&self, msg: &Message, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        if !super::fast::encode(msg, out) {
            bincode::encode_into_writer(msg, Append(out), bincode_config())
                .map_err(|e| Error::Protocol(format!("cannot encode {}: {e}", msg.name())))?;
        }
        let len = out.len() - start - 4;
        if len > self.max_frame_out {
            out.truncate(start);
            return Err(Error::limit(
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

    #[inline]
    fn decode_into(&self, body: &[u8], mut deliver: impl FnMut(Inbound) -> bool) -> Result<bool> {
        Ok(deliver(Inbound::Message(self.decode(body)?)))
    }

    fn peer_max_depth(&self) -> usize {
        self.peer_max_depth
    }

    fn features(&self) -> u32 {
        self.features
    }

    fn version(&self) -> u16 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CallMsg, Target, WBytes, WPath, WVec, WireOp, WireRef, WireValue};

    fn codec() -> NativeCodec {
        NativeCodec {
            max_frame_out: 1 << 24,
            max_depth: 64,
            peer_max_depth: 64,
            features: FEATURES,
            version: MAX_VERSION,
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
        // The stream section's window: items 0, 1 and 300, then the end.
        let mut block = crate::stream::block::Sink::new(16);
        for item in [0u64, 1, 300] {
            block.put(&item).unwrap();
        }
        vec![
            (
                "stream-pull",
                frame(&Message::Call(CallMsg {
                    id: 3,
                    target: Target::Object(cb_id),
                    path: WPath::from(vec!["pull_block"]),
                    op: WireOp::Call {
                        args: vec![WireValue::Int(65_536), WireValue::Int(65_536)].into(),
                        named: WVec::default(),
                    },
                    timeout_ms: 30_000,
                    flags: 0,
                    trace: 0,
                })),
            ),
            (
                "stream-block",
                frame(&Message::Return {
                    id: 3,
                    result: Ok(WireValue::Bytes(WBytes(block.finish(3, true)))),
                }),
            ),
            (
                "hello",
                Hello::from_config(&Config::default()).to_bytes().to_vec(),
            ),
            (
                "call-add",
                frame(&Message::Call(CallMsg {
                    id: 1,
                    target: Target::Root,
                    path: WPath::from(vec!["add"]),
                    op: WireOp::Call {
                        args: vec![WireValue::Int(1), WireValue::Int(2)].into(),
                        named: WVec::default(),
                    },
                    timeout_ms: 30_000,
                    flags: 0,
                    trace: 0,
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
                    path: WPath::from(vec!["every"]),
                    op: WireOp::Call {
                        args: vec![WireValue::Int(1), WireValue::Ref(WireRef::Sender(cb_id))]
                            .into(),
                        named: WVec::default(),
                    },
                    timeout_ms: 30_000,
                    flags: 0,
                    trace: 0,
                })),
            ),
            (
                "callback",
                frame(&Message::Call(CallMsg {
                    id: 1,
                    target: Target::Object(cb_id),
                    path: WPath::default(),
                    op: WireOp::Call {
                        args: vec![WireValue::Int(0)].into(),
                        named: WVec::default(),
                    },
                    timeout_ms: 30_000,
                    flags: 0,
                    trace: 0,
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
            ("release", frame(&Message::Release(vec![(cb_id, 1)].into()))),
        ]
        .into_iter()
        .chain(auth_trace())
        .collect()
    }

    /// The worked authentication of `docs/protocol.md`: fixed nonces, so fixed proofs.
    fn auth_trace() -> Vec<(&'static str, Vec<u8>)> {
        let secret = crate::auth::Secret::new("correct horse battery staple");
        let config = Config::default().with_secret(secret.clone());
        let opening = |role, fill| {
            let mut b = Hello::from_config(&config).to_bytes().to_vec();
            b.extend_from_slice(
                &Challenge {
                    role,
                    nonce: [fill; crate::auth::NONCE_LEN],
                }
                .to_bytes(),
            );
            b
        };
        let client = opening(crate::auth::Role::Initiator, 0x11);
        let server = opening(crate::auth::Role::Acceptor, 0x22);
        let client_proof = auth::proof(&secret, auth::LABEL_INITIATOR, &client, &server);
        let server_proof = auth::proof(&secret, auth::LABEL_ACCEPTOR, &server, &client);
        vec![
            ("auth-client-opening", client.clone()),
            ("auth-server-opening", server.clone()),
            ("auth-client-proof", client_proof.to_vec()),
            ("auth-server-proof", server_proof.to_vec()),
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

    fn call_with_path(path: Vec<&str>) -> Message {
        Message::Call(CallMsg {
            id: 7,
            target: Target::Root,
            path: WPath::from(path),
            op: WireOp::Get,
            timeout_ms: 0,
            flags: 0,
            trace: 0,
        })
    }

    fn decoded_path(msg: &Message) -> std::sync::Arc<[String]> {
        let bytes = frame(msg);
        match codec().decode(&bytes[4..]).unwrap() {
            Message::Call(c) => c.path.0,
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn repeated_paths_decode_into_one_shared_arc() {
        let a = decoded_path(&call_with_path(vec!["counter", "inc"]));
        let b = decoded_path(&call_with_path(vec!["counter", "inc"]));
        assert!(
            std::sync::Arc::ptr_eq(&a, &b),
            "the second decode reuses the first"
        );
        let c = decoded_path(&call_with_path(vec!["counter", "reset"]));
        assert!(!std::sync::Arc::ptr_eq(&a, &c));
        assert_eq!(&*c, ["counter".to_owned(), "reset".to_owned()]);
        // Long paths (in segments or bytes) decode whole, and are not kept.
        let nine: Vec<String> = (0..9).map(|i| format!("s{i}")).collect();
        let long = decoded_path(&call_with_path(nine.iter().map(String::as_str).collect()));
        assert_eq!(&*long, &nine[..]);
        let big = "x".repeat(300);
        let p = decoded_path(&call_with_path(vec![&big]));
        let q = decoded_path(&call_with_path(vec![&big]));
        assert_eq!(&*p, std::slice::from_ref(&big));
        assert!(
            !std::sync::Arc::ptr_eq(&p, &q),
            "a 300-byte path is not cached"
        );
        assert!(decoded_path(&call_with_path(vec![])).is_empty());
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
            if *name != "hello" && !name.starts_with("auth-") {
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
            let wire = super::super::Protocol::Native(codec());
            let e = wire
                .read_frame(&mut input, 1024, &mut buf)
                .await
                .unwrap_err();
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
            v = WireValue::List(vec![v].into());
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

    /// Runs our handshake (with `config`) against a scripted peer that sends `peer_bytes`.
    fn handshake_against(config: Config, peer_bytes: Vec<u8>) -> Result<Agreed> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (ours, mut theirs) = tokio::io::duplex(4096);
            let (mut r, mut w) = tokio::io::split(ours);
            // The peer sends its bytes, reads our opening, and hangs up.
            let peer = tokio::spawn(async move {
                let _ = theirs.write_all(&peer_bytes).await;
                let mut buf = [0u8; OPENING_LEN];
                let _ = theirs.read(&mut buf).await;
            });
            let result = handshake(&mut r, &mut w, &config).await;
            drop((r, w));
            peer.await.unwrap();
            result
        })
    }

    fn opening(role: u8) -> Vec<u8> {
        let secret = crate::auth::Secret::new("k");
        let mut b = Hello::from_config(&Config::default().with_secret(secret))
            .to_bytes()
            .to_vec();
        b.push(role);
        b.extend_from_slice(&[0x42; crate::auth::NONCE_LEN]);
        b
    }

    #[test]
    fn handshake_refuses_bad_challenges() {
        let with_secret = || Config::default().with_secret(crate::auth::Secret::new("k"));
        let e = handshake_against(with_secret(), opening(9)).unwrap_err();
        assert!(e.to_string().contains("unknown role 0x09"), "{e}");

        let initiator = with_secret().with_role(crate::auth::Role::Initiator);
        let e = handshake_against(initiator, opening(1)).unwrap_err();
        assert!(e.to_string().contains("both peers say they opened"), "{e}");

        // The peer stops after its opening: it refused us.
        let e = handshake_against(with_secret(), opening(0)).unwrap_err();
        assert!(e.to_string().contains("peer closed the connection"), "{e}");

        let e = handshake_against(
            Config::default().with_secret(crate::auth::Secret::new("")),
            opening(0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("secret is empty"), "{e}");

        // Without a secret, a peer requiring one is refused whatever its challenge holds.
        let e = handshake_against(Config::default(), opening(9)).unwrap_err();
        assert!(
            e.to_string().contains("none is configured on this side"),
            "{e}"
        );
    }

    #[test]
    fn hello_checks_magic_and_version() {
        let ours = Hello::from_config(&Config::default());
        let mut h = ours.to_bytes();
        assert_eq!(Hello::parse(&h).unwrap(), ours);
        assert_eq!(ours.agree(&ours).unwrap(), MAX_VERSION);
        // A peer speaking versions 9 to 11: nothing in common.
        h[5] = 9;
        h[6] = 2;
        let peer = Hello::parse(&h).unwrap();
        assert_eq!((peer.min_version, peer.max_version), (9, 11));
        assert_eq!(
            peer.features, ours.features,
            "the range byte is not a feature"
        );
        let e = ours.agree(&peer).unwrap_err().to_string();
        assert!(
            e.contains("no protocol version in common")
                && e.contains("versions 9 to 11")
                && e.contains(&format!("this side version {MAX_VERSION}")),
            "{e}"
        );
        // A peer speaking versions 0 to 5 meets this side at its highest.
        h[5] = 0;
        h[6] = 5;
        assert_eq!(ours.agree(&Hello::parse(&h).unwrap()).unwrap(), MAX_VERSION);
        h[0] = b'X';
        assert!(Hello::parse(&h).unwrap_err().to_string().contains("magic"));
    }
}
