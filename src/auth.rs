//! Shared-secret authentication in the hello.
//!
//! # Usage
//!
//! Give both peers the same [`Secret`] with [`Config::with_secret`](crate::Config::with_secret).
//! The hello then carries a challenge from each side, and each side proves that it knows the
//! secret before the first message is sent. The secret itself never crosses the wire.
//!
//! ```
//! use netref::{Config, Connection, Secret};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (x, y) = tokio::io::duplex(4096);
//! let (xr, xw) = tokio::io::split(x);
//! let (yr, yw) = tokio::io::split(y);
//! let ours = Config::default().with_secret(Secret::new("correct horse battery staple"));
//! let theirs = Config::default().with_secret(Secret::new("a guess"));
//! let (a, b) = tokio::join!(
//!     Connection::from_io(xr, xw, ours, None),
//!     Connection::from_io(yr, yw, theirs, None),
//! );
//! // Each side detects the wrong secret on its own and refuses before any call.
//! let e = a.unwrap_err().to_string();
//! assert!(e.contains("authentication failed"), "{e}");
//! assert!(b.is_err());
//! # });
//! ```
//!
//! # How it works
//!
//! `docs/protocol.md` (section *Authentication*) is the normative description. In short: a
//! side with a secret sets the `auth` feature bit in its hello and appends a challenge (its
//! role and a fresh 32-byte random nonce); once both challenges are in, each side sends
//! `HMAC-SHA256(secret, label, both hellos and challenges)`, where the label says which side
//! is proving, and checks the peer's proof in constant time. Because every handshake mixes in
//! a nonce the verifier has just chosen, a recorded handshake cannot be replayed, and because
//! the label differs per direction, a peer's own proof cannot be reflected back to it.
//!
//! # Errors
//!
//! A refused handshake fails [`Connection::from_io`](crate::Connection::from_io) (and every
//! function built on it) with [`Error::Protocol`] whose message starts with
//! `authentication failed:` and names the cause: a wrong secret (or a replayed handshake), a
//! secret on one side only, or a malformed challenge. The connection is closed before any
//! message is exchanged.
//!
//! # Limits
//!
//! Authentication proves who opened the session; it neither hides nor protects what follows.
//! On an untrusted network use TLS as well (see `docs/security.md`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Bytes of a nonce.
pub(crate) const NONCE_LEN: usize = 32;
/// Bytes of a challenge: the role, then the nonce.
pub(crate) const CHALLENGE_LEN: usize = 1 + NONCE_LEN;
/// Bytes of a proof (an HMAC-SHA256 tag).
pub(crate) const PROOF_LEN: usize = 32;
/// The domain-separation prefix of every proof.
const CONTEXT: &[u8] = b"netref-auth";
/// Proof label: the proof of the side that opened the connection.
pub(crate) const LABEL_INITIATOR: u8 = 1;
/// Proof label: the proof of the side that accepted the connection.
pub(crate) const LABEL_ACCEPTOR: u8 = 2;

/// A shared secret for authenticating peers (see [the module docs](crate::auth)).
///
/// Its `Debug` form never shows the bytes. Use at least 16 random bytes; anyone who knows the
/// secret can open sessions with every peer that uses it.
///
/// ```
/// let s = netref::Secret::new("s3cret");
/// assert_eq!(format!("{s:?}"), "<redacted>");
/// ```
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// A secret made of `bytes`. An empty secret is refused when a connection starts.
    pub fn new(bytes: impl AsRef<[u8]>) -> Secret {
        Secret(Arc::from(bytes.as_ref()))
    }

    /// Reads a secret from a file, dropping one trailing newline (`\n` or `\r\n`) so a file
    /// written by `echo` or an editor holds the same secret as the string itself.
    ///
    /// Fails with [`Error::Io`] when the file cannot be read or holds nothing but that newline.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("netref-doc-secret-{}", std::process::id()));
    /// std::fs::write(&path, "s3cret\n").unwrap();
    /// let from_file = netref::Secret::from_file(&path).unwrap();
    /// std::fs::remove_file(&path).unwrap();
    /// assert!(from_file.same_as(&netref::Secret::new("s3cret")));
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Secret> {
        let path = path.as_ref();
        let mut bytes = std::fs::read(path).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot read the secret file {}: {e}", path.display()),
            ))
        })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the secret file {} is empty", path.display()),
            )));
        }
        Ok(Secret::new(bytes))
    }

    /// True when both secrets hold the same bytes, compared in constant time.
    pub fn same_as(&self, other: &Secret) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which side of the transport this end is, as far as it knows. It picks the label of this
/// side's proof; a side that does not know takes the opposite of its peer's, or the nonce
/// order when neither knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Role {
    /// Not known (an in-memory pair, a pipe, [`Connection::from_io`](crate::Connection::from_io)).
    #[default]
    Unknown,
    /// This side opened the connection (TCP or TLS connect).
    Initiator,
    /// This side accepted the connection (a server).
    Acceptor,
}

impl Role {
    fn to_byte(self) -> u8 {
        match self {
            Role::Unknown => 0,
            Role::Initiator => 1,
            Role::Acceptor => 2,
        }
    }

    fn from_byte(b: u8) -> std::result::Result<Role, AuthFailure> {
        match b {
            0 => Ok(Role::Unknown),
            1 => Ok(Role::Initiator),
            2 => Ok(Role::Acceptor),
            other => Err(AuthFailure::BadRole(other)),
        }
    }
}

/// Why a handshake was refused. Becomes an [`Error::Auth`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthFailure {
    /// This side has a secret; the peer's hello offers no authentication.
    #[error("this side requires a shared secret, but the peer has none configured")]
    PeerHasNoSecret,
    /// The peer's hello asks for authentication; this side has no secret.
    #[error("the peer requires a shared secret, but none is configured on this side")]
    NoSecretHere,
    /// The peer's proof is not the one the secret gives for this handshake.
    #[error("the peer's proof does not match (wrong shared secret, or a replayed handshake)")]
    WrongProof,
    /// Both sides claim the same role.
    #[error("both peers say they {0} the connection")]
    SameRole(&'static str),
    /// The peer's nonce equals ours: our own challenge sent back to us.
    #[error("the peer sent back this side's own challenge (a reflected handshake)")]
    Reflected,
    /// The peer closed the stream during the exchange: it refused this side.
    #[error("the peer closed the connection during authentication (it refused this side; its log names the cause)")]
    PeerClosed,
    /// A role byte outside 0..=2.
    #[error("unknown role {0:#04x} in the peer's challenge")]
    BadRole(u8),
    /// The configured secret has no bytes.
    #[error("the configured shared secret is empty")]
    EmptySecret,
    /// The operating system gave no random bytes.
    #[error("no random nonce from the operating system: {0}")]
    Random(String),
}

impl From<AuthFailure> for Error {
    fn from(e: AuthFailure) -> Self {
        Error::Auth(e.to_string())
    }
}

/// One side's challenge: its role and a fresh nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) role: Role,
    pub(crate) nonce: [u8; NONCE_LEN],
}

impl Challenge {
    /// A challenge with a fresh nonce from the operating system.
    pub(crate) fn fresh(role: Role) -> std::result::Result<Challenge, AuthFailure> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| AuthFailure::Random(e.to_string()))?;
        Ok(Challenge { role, nonce })
    }

    pub(crate) fn to_bytes(self) -> [u8; CHALLENGE_LEN] {
        let mut b = [0u8; CHALLENGE_LEN];
        b[0] = self.role.to_byte();
        b[1..].copy_from_slice(&self.nonce);
        b
    }

    pub(crate) fn parse(b: &[u8; CHALLENGE_LEN]) -> std::result::Result<Challenge, AuthFailure> {
        let role = Role::from_byte(b[0])?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&b[1..]);
        Ok(Challenge { role, nonce })
    }
}

/// The labels of `(our proof, the peer's proof)`.
pub(crate) fn labels(
    ours: &Challenge,
    theirs: &Challenge,
) -> std::result::Result<(u8, u8), AuthFailure> {
    use Role::*;
    if ours.nonce == theirs.nonce {
        return Err(AuthFailure::Reflected);
    }
    let initiator = (LABEL_INITIATOR, LABEL_ACCEPTOR);
    let acceptor = (LABEL_ACCEPTOR, LABEL_INITIATOR);
    match (ours.role, theirs.role) {
        (Initiator, Initiator) => Err(AuthFailure::SameRole("opened")),
        (Acceptor, Acceptor) => Err(AuthFailure::SameRole("accepted")),
        (Initiator, _) | (Unknown, Acceptor) => Ok(initiator),
        (Acceptor, _) | (Unknown, Initiator) => Ok(acceptor),
        // Neither knows: the side whose nonce sorts first proves as the initiator.
        (Unknown, Unknown) if ours.nonce < theirs.nonce => Ok(initiator),
        (Unknown, Unknown) => Ok(acceptor),
    }
}

/// `HMAC-SHA256(secret, "netref-auth" || label || prover's opening || verifier's opening)`,
/// where an opening is a side's hello followed by its challenge.
pub(crate) fn proof(secret: &Secret, label: u8, prover: &[u8], verifier: &[u8]) -> [u8; PROOF_LEN] {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(CONTEXT);
    mac.update(&[label]);
    mac.update(prover);
    mac.update(verifier);
    mac.finalize().into_bytes().into()
}

/// Checks the peer's proof in constant time.
pub(crate) fn verify(
    expected: &[u8; PROOF_LEN],
    received: &[u8; PROOF_LEN],
) -> std::result::Result<(), AuthFailure> {
    if bool::from(expected.ct_eq(received)) {
        Ok(())
    } else {
        Err(AuthFailure::WrongProof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(role: Role, fill: u8) -> Challenge {
        Challenge {
            role,
            nonce: [fill; NONCE_LEN],
        }
    }

    #[test]
    fn roles_pick_complementary_labels() {
        use Role::*;
        let cases = [
            (Initiator, Acceptor, (1, 2)),
            (Acceptor, Initiator, (2, 1)),
            (Initiator, Unknown, (1, 2)),
            (Unknown, Acceptor, (1, 2)),
            (Acceptor, Unknown, (2, 1)),
            (Unknown, Initiator, (2, 1)),
        ];
        for (ours, theirs, want) in cases {
            let got = labels(&challenge(ours, 1), &challenge(theirs, 2)).unwrap();
            assert_eq!(got, want, "{ours:?} vs {theirs:?}");
            // The peer, running the same code, agrees.
            let peer = labels(&challenge(theirs, 2), &challenge(ours, 1)).unwrap();
            assert_eq!(peer, (want.1, want.0));
        }
        // Neither knows: the nonce order decides, and both sides agree.
        assert_eq!(
            labels(&challenge(Unknown, 1), &challenge(Unknown, 2)).unwrap(),
            (1, 2)
        );
        assert_eq!(
            labels(&challenge(Unknown, 2), &challenge(Unknown, 1)).unwrap(),
            (2, 1)
        );
    }

    #[test]
    fn same_roles_and_echoed_nonces_are_refused() {
        let e = labels(
            &challenge(Role::Initiator, 1),
            &challenge(Role::Initiator, 2),
        )
        .unwrap_err();
        assert!(e.to_string().contains("opened"), "{e}");
        let e = labels(&challenge(Role::Acceptor, 1), &challenge(Role::Acceptor, 2)).unwrap_err();
        assert!(e.to_string().contains("accepted"), "{e}");
        let e = labels(&challenge(Role::Unknown, 7), &challenge(Role::Unknown, 7)).unwrap_err();
        assert!(matches!(e, AuthFailure::Reflected));
    }

    #[test]
    fn proofs_depend_on_secret_label_and_both_openings() {
        let s = Secret::new("k");
        let base = proof(&s, 1, b"a", b"b");
        assert_ne!(base, proof(&Secret::new("K"), 1, b"a", b"b"));
        assert_ne!(base, proof(&s, 2, b"a", b"b"));
        assert_ne!(base, proof(&s, 1, b"b", b"a"));
        assert_ne!(base, proof(&s, 1, b"a", b"c"));
        assert!(verify(&base, &proof(&s, 1, b"a", b"b")).is_ok());
        assert!(verify(&base, &[0; PROOF_LEN]).is_err());
    }

    #[test]
    fn challenges_round_trip_and_bad_roles_are_refused() {
        let c = Challenge::fresh(Role::Acceptor).unwrap();
        assert_eq!(Challenge::parse(&c.to_bytes()).unwrap(), c);
        assert_ne!(Challenge::fresh(Role::Acceptor).unwrap().nonce, c.nonce);
        let mut b = c.to_bytes();
        b[0] = 9;
        assert!(matches!(Challenge::parse(&b), Err(AuthFailure::BadRole(9))));
    }

    #[test]
    fn secret_files_lose_one_trailing_newline() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("netref-secret-test-{}", std::process::id()));
        for (content, want) in [
            (&b"abc\n"[..], &b"abc"[..]),
            (b"abc\r\n", b"abc"),
            (b"abc", b"abc"),
            (b"abc\n\n", b"abc\n"),
        ] {
            std::fs::write(&path, content).unwrap();
            let s = Secret::from_file(&path).unwrap();
            assert_eq!(&*s.0, want);
        }
        std::fs::write(&path, "\n").unwrap();
        let e = Secret::from_file(&path).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = Secret::from_file(&path).unwrap_err();
        assert!(e.to_string().contains("secret file"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s)), "Some(<redacted>)");
    }
}
