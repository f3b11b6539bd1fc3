//! Codecs turn [`Message`]s into bytes and back. The engine only sees messages, so a second
//! codec (Python RPyC 6's own wire) can be added without touching object tables or policy.

mod fast;
pub(crate) mod native;

use crate::error::Result;
use crate::protocol::Message;

/// A message codec: framing plus encoding.
pub(crate) trait Codec: Send + Sync + 'static {
    /// Appends one whole frame (length prefix included) carrying `msg` to `out`.
    fn encode(&self, msg: &Message, out: &mut Vec<u8>) -> Result<()>;

    /// Decodes one frame body (without its length prefix).
    fn decode(&self, body: &[u8]) -> Result<Message>;
}
