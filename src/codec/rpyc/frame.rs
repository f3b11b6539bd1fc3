//! RPyC's channel framing: a 4-byte big-endian payload length, a compression flag, the
//! payload, and a trailing newline that the length does not count.
//!
//! # Usage
//!
//! [`encode`] appends one frame and [`inflate`] inflates a compressed payload under a bound;
//! a connection reads frames through the seam (`RpycWire::frame_len` checks the length,
//! `decode_into` the flag and the newline). `split` and `payload`, which take one whole
//! frame off the front of a buffer, are for the tests that hold this framing against
//! Python's byte for byte.
//!
//! # Limits
//!
//! Python accepts any length and inflates without bound. Here the declared length is checked
//! against [`Config::max_frame`](crate::Config::max_frame) before a byte of the payload is
//! buffered, and a compressed payload is inflated only up to the same bound: a zlib bomb
//! stops at `max_frame + 1` bytes of output and is refused. The trailing byte must be `\n`.

use std::io::Read;

use crate::error::{Error, Result};

/// Bytes before the payload: the length and the compression flag.
pub(crate) const HEADER: usize = 5;

/// Python compresses payloads longer than this (with zlib level 1).
pub(crate) const COMPRESS_OVER: usize = 3000;

/// One frame taken off a buffer: its compression flag and where its payload lies.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    /// True when the payload is zlib data.
    pub(crate) compressed: bool,
    /// The payload's byte range within the buffer.
    pub(crate) payload: std::ops::Range<usize>,
    /// The frame's whole length (header, payload and newline).
    pub(crate) len: usize,
}

/// Appends one frame carrying `payload` to `out`. With `compress`, a payload longer than
/// [`COMPRESS_OVER`] bytes goes as zlib (as Python sends it); otherwise it goes raw, which
/// Python accepts at any size.
pub(crate) fn encode(payload: &[u8], compress: bool, out: &mut Vec<u8>) -> Result<()> {
    if compress && payload.len() > COMPRESS_OVER {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(1));
        std::io::Write::write_all(&mut z, payload)?;
        let packed = z.finish()?;
        return encode_raw(&packed, true, out);
    }
    encode_raw(payload, false, out)
}

fn encode_raw(payload: &[u8], compressed: bool, out: &mut Vec<u8>) -> Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| Error::Protocol(format!("a {} byte frame is too long", payload.len())))?;
    out.reserve(HEADER + payload.len() + 1);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(u8::from(compressed));
    out.extend_from_slice(payload);
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
/// Finds the first whole frame in `buf`: `Ok(None)` when more bytes are needed, an error when
/// the declared length is over `max_frame` (checked before waiting for the payload) or the
/// trailing byte is not a newline.
pub(crate) fn split(buf: &[u8], max_frame: usize) -> Result<Option<Split>> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let declared = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if declared > max_frame {
        return Err(Error::Protocol(format!(
            "frame of {declared} bytes declared (limit {max_frame})"
        )));
    }
    let len = HEADER + declared + 1;
    if buf.len() < len {
        return Ok(None);
    }
    if buf[len - 1] != b'\n' {
        return Err(Error::Protocol(format!(
            "frame ends in 0x{:02x}, not a newline",
            buf[len - 1]
        )));
    }
    Ok(Some(Split {
        compressed: buf[4] != 0,
        payload: HEADER..HEADER + declared,
        len,
    }))
}

#[cfg(test)]
/// Bytes the frame at the front of `buf` still needs beyond what `buf` holds (0 when it is
/// whole, or when even its header is not there yet).
pub(crate) fn missing(buf: &[u8]) -> usize {
    if buf.len() < HEADER {
        return 0;
    }
    let declared = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    (HEADER + declared + 1).saturating_sub(buf.len())
}

#[cfg(test)]
/// The payload of frame `f` in `buf`: borrowed when raw, inflated (to at most `max_frame`
/// bytes) when compressed.
pub(crate) fn payload<'a>(
    buf: &'a [u8],
    f: &Split,
    max_frame: usize,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let raw = &buf[f.payload.clone()];
    if !f.compressed {
        return Ok(std::borrow::Cow::Borrowed(raw));
    }
    inflate(raw, max_frame).map(std::borrow::Cow::Owned)
}

/// Inflates zlib data to at most `max` bytes; more is refused as a bomb.
pub(crate) fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max).min(1 << 20));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::ZlibDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| Error::Protocol(format!("bad zlib data in a frame: {e}")))?;
    if out.len() > max {
        return Err(Error::Protocol(format!(
            "a compressed frame inflates past {max} bytes"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getroot_frame_matches_the_trace() {
        let mut out = Vec::new();
        let payload = [0x01, 0x11, 0x50, 0x11, 0x53, 0x11, 0x51, 0x02];
        encode(&payload, true, &mut out).unwrap();
        assert_eq!(
            out,
            [0, 0, 0, 8, 0, 0x01, 0x11, 0x50, 0x11, 0x53, 0x11, 0x51, 0x02, 0x0a]
        );
        let f = split(&out, 1024).unwrap().unwrap();
        assert_eq!(f.len, out.len());
        assert_eq!(&*payload_of(&out, &f), &payload);
    }

    fn payload_of<'a>(buf: &'a [u8], f: &Split) -> std::borrow::Cow<'a, [u8]> {
        payload(buf, f, 1 << 20).unwrap()
    }

    #[test]
    fn large_payloads_compress_and_inflate() {
        let big = vec![b'x'; 10_000];
        let mut out = Vec::new();
        encode(&big, true, &mut out).unwrap();
        assert_eq!(out[4], 1);
        assert!(out.len() < 1000);
        let f = split(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(&*payload_of(&out, &f), &big[..]);
        // Without compression the same payload goes raw.
        let mut raw = Vec::new();
        encode(&big, false, &mut raw).unwrap();
        assert_eq!(raw[4], 0);
        assert_eq!(raw.len(), big.len() + 6);
    }

    #[test]
    fn partial_frames_wait_and_bad_frames_are_refused() {
        let mut out = Vec::new();
        encode(b"hello", false, &mut out).unwrap();
        for cut in 0..out.len() {
            assert_eq!(split(&out[..cut], 1024).unwrap(), None, "cut {cut}");
        }
        assert_eq!(missing(&out[..7]), out.len() - 7);
        // absurd length: refused at the header, before any payload is read
        let e = split(&[0xff, 0xff, 0xff, 0xff, 0], 1 << 20).unwrap_err();
        assert!(e.to_string().contains("declared"), "{e}");
        // bad trailer
        let mut bad = out.clone();
        *bad.last_mut().unwrap() = b'x';
        assert!(split(&bad, 1024).is_err());
    }

    #[test]
    fn a_zlib_bomb_stops_at_the_limit() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &vec![0u8; 64 << 20]).unwrap();
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 100_000);
        let e = inflate(&bomb, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("inflates past"), "{e}");
        assert!(inflate(b"not zlib", 1 << 20).is_err());
    }
}
