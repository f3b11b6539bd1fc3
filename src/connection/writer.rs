//! The writer task: writes queued frames and one-way control messages onto the transport.
//!
//! Senders write a frame directly when nothing is queued ahead of it and the transport takes
//! it at once, or leave it in `Sink::partial` to go out with others (see `Shared::write_now`);
//! everything else comes through here. The writer
//! holds the sink's lock from before it takes queued frames until they are written, so a
//! direct write can never overtake a queued frame.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use super::send::{Control, Frame};
use super::Shared;
use crate::protocol::{Message, WStr};
use crate::stats::Counters;
use crate::trace::Direction;

/// Write at most this much at a time, so one busy sender cannot starve the socket.
const BATCH_BYTES: usize = 256 * 1024;
/// After the connection closed, a write may make no progress for this long before it is
/// abandoned.
const CLOSING_STALL: std::time::Duration = std::time::Duration::from_secs(1);
/// At most this many `(id, count)` pairs per `Release` (at most 20 bytes each encoded).
const RELEASES_PER_MESSAGE: usize = 4096;

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Frame>,
    mut closed: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut held: Vec<Frame> = Vec::new();
    loop {
        let mut is_closed = *closed.borrow();
        if !is_closed {
            // Senders notify after queueing a frame, `Drop` impls after queueing a control
            // message, direct writers after leaving a partial frame.
            tokio::select! {
                biased;
                _ = shared.control_notify.notified() => {}
                _ = closed.changed() => is_closed = true,
            }
        }
        let mut sink = shared.sink.lock().await;
        // A direct sender's unfinished frame goes first (taken whole when `buf` is empty).
        if buf.is_empty() {
            std::mem::swap(&mut buf, &mut sink.partial);
        } else {
            buf.append(&mut sink.partial);
        }
        // Take the control queue *before* draining frames: a `Cancel` or `Finish` is only
        // queued after its call's frame was, so that frame is then already in `buf` (or on
        // the wire) and the control message cannot overtake it.
        let control = shared.control.take();
        let mut failed = false;
        loop {
            let mut took = false;
            while buf.len() < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(f) => {
                        take(&shared, f, &mut buf, &mut held);
                        took = true;
                    }
                    Err(_) => break,
                }
            }
            if took {
                // Senders waiting for room in bytes may go on.
                shared.room.notify_waiters();
            }
            if buf.len() < BATCH_BYTES {
                break;
            }
            // A full batch: write it and keep draining before the control messages.
            if let Err(e) = write(&shared, &mut sink.io, &buf, &mut closed).await {
                shared.teardown(e);
                failed = true;
                break;
            }
            Counters::add(&shared.counters.bytes_sent, buf.len() as u64);
            buf.clear();
            held.clear();
        }
        if failed {
            break;
        }
        let goodbye = encode_control(&shared, control, &mut buf, is_closed);
        // Write (or, with nothing to write, just flush what a direct writer left buffered).
        if let Err(e) = write(&shared, &mut sink.io, &buf, &mut closed).await {
            shared.teardown(e);
            break;
        }
        Counters::add(&shared.counters.bytes_sent, buf.len() as u64);
        buf.clear();
        // The frames are on the wire: proxies they named may now be released.
        held.clear();
        if is_closed || goodbye {
            let _ = sink.io.shutdown().await;
            break;
        }
    }
    // Whatever is still queued will never be sent; dropping it undoes nothing the peer saw.
    rx.close();
}

fn take(shared: &Shared, f: Frame, buf: &mut Vec<u8>, held: &mut Vec<Frame>) {
    buf.extend_from_slice(&f.bytes);
    shared
        .queued_bytes
        .fetch_sub(f.bytes.len(), std::sync::atomic::Ordering::AcqRel);
    Counters::add(&shared.counters.messages_sent, 1);
    if !f.hold.is_empty() {
        held.push(Frame {
            bytes: Vec::new(),
            hold: f.hold,
        });
    }
}

/// Writes and flushes `buf`; fails with the reason to close when the transport fails or
/// makes no progress for `write_stall_timeout` (the peer stopped reading). Once the
/// connection is closed, only [`CLOSING_STALL`] without progress is allowed: what is left to
/// write then (the goodbye, say) is not worth waiting for on a peer that does not read.
async fn write(
    shared: &Shared,
    sink: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    buf: &[u8],
    closed: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let mut closing = *closed.borrow();
    let mut rest = buf;
    let mut span = 0;
    let mut flushed = false;
    while !flushed {
        let stall = if closing {
            shared.config.write_stall_timeout.min(CLOSING_STALL)
        } else {
            shared.config.write_stall_timeout
        };
        if span == 0 {
            span = shared.wire.write_span(rest);
        }
        let step = async {
            if rest.is_empty() {
                sink.flush().await.map(|()| None)
            } else {
                sink.write(&rest[..span]).await.map(Some)
            }
        };
        tokio::select! {
            r = tokio::time::timeout(stall, step) => match r {
                Ok(Ok(Some(0))) => {
                    return Err("write failed: the transport accepts no more bytes".into())
                }
                Ok(Ok(Some(n))) => {
                    rest = &rest[n..];
                    span -= n.min(span);
                }
                Ok(Ok(None)) => flushed = true,
                Ok(Err(e)) if rest.is_empty() => return Err(format!("flush failed: {e}")),
                Ok(Err(e)) => return Err(format!("write failed: {e}")),
                Err(_) => return Err(stalled(stall)),
            },
            // Closed meanwhile: go on under the short limit.
            _ = closed.wait_for(|c| *c), if !closing => closing = true,
        }
    }
    Ok(())
}

fn stalled(stall: std::time::Duration) -> String {
    format!("the peer stopped reading: no write progress for {stall:?}")
}

/// Encodes queued one-way messages. Returns true when a goodbye was written.
fn encode_control(shared: &Shared, c: Control, buf: &mut Vec<u8>, closing: bool) -> bool {
    let mut msgs = Vec::new();
    if !closing {
        // Chunked so one batch always fits the peer's frame limit.
        for chunk in c.releases.chunks(RELEASES_PER_MESSAGE) {
            Counters::add(&shared.counters.releases_sent, 1);
            msgs.push(Message::Release(chunk.to_vec().into()));
        }
    }
    if !closing {
        msgs.extend(c.finishes.into_iter().map(Message::Finish));
        msgs.extend(c.cancels.into_iter().map(Message::Cancel));
        msgs.extend(c.pongs.into_iter().map(Message::Pong));
        msgs.extend(c.pings.into_iter().map(Message::Ping));
    }
    let goodbye = c.goodbye.is_some();
    if let Some(reason) = c.goodbye {
        msgs.push(Message::Goodbye(WStr(reason)));
    }
    for m in &msgs {
        // These messages are small and fixed in shape; encoding cannot exceed a limit.
        let before = buf.len();
        if shared.wire.encode(m, buf).is_ok() {
            Counters::add(&shared.counters.messages_sent, 1);
            shared.trace(Direction::Sent, m, buf.len() - before);
        }
    }
    goodbye
}
