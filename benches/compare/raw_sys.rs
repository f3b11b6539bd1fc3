//! The raw baseline: length-prefixed frames echoed over TCP between two processes, on the
//! runtime flavour netref uses (multi-thread). No serialization, no tables, no dispatch: the
//! floor every RPC system here pays (two syscalls and a loopback hop each way).
//!
//! For the stream workload a connection opens with the frame header [`STREAM`] instead, and
//! the server then writes the frames `0, 1, 2, …` (each an 8-byte counter) as fast as TCP
//! takes them until the client hangs up: pipelined frames with no request at all, the most
//! a stream of small items could reach over one connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::procs::Res;
use crate::stats::Sample;
use crate::{Spec, Workload};

/// The ping-pong payload of every call-shaped workload.
const PING: usize = 32;
const BUF: usize = 64 * 1024;
/// The first frame header of a stream connection (no ping is that long).
const STREAM: u32 = u32::MAX;

/// The server process: echoes every frame back, flushing when no more input is buffered.
pub(crate) async fn serve() -> Res<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accept = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = echo_connection(stream).await;
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = crate::announce_and_wait(port) => {}
    }
    Ok(())
}

async fn echo_connection(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let mut r = BufReader::with_capacity(BUF, r);
    let mut w = BufWriter::with_capacity(BUF, w);
    let mut body = Vec::new();
    let mut first = true;
    loop {
        let len = match r.read_u32().await {
            Ok(STREAM) if first => return produce(w).await,
            Ok(n) => n as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        body.resize(len, 0);
        r.read_exact(&mut body).await?;
        w.write_u32(len as u32).await?;
        w.write_all(&body).await?;
        if r.buffer().is_empty() {
            w.flush().await?;
        }
        first = false;
    }
}

/// Writes the frames `0, 1, 2, …` until the peer hangs up (a write fails).
async fn produce(mut w: BufWriter<OwnedWriteHalf>) -> std::io::Result<()> {
    let mut i: u64 = 0;
    loop {
        w.write_u32(8).await?;
        w.write_u64(i).await?;
        i += 1;
    }
}

pub(crate) struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    body: Vec<u8>,
    port: u16,
}

impl Client {
    pub(crate) async fn connect(port: u16) -> Res<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Client {
            r: BufReader::with_capacity(BUF, r),
            w,
            body: Vec::new(),
            port,
        })
    }

    async fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.w.write_all(frame).await
    }

    async fn recv(&mut self) -> std::io::Result<usize> {
        let len = self.r.read_u32().await? as usize;
        self.body.resize(len, 0);
        self.r.read_exact(&mut self.body).await?;
        Ok(len)
    }

    pub(crate) async fn run(&mut self, w: Workload, spec: &Spec) -> Res<Option<Sample>> {
        let _ = self.once(w, spec, spec.warmup).await?;
        self.once(w, spec, spec.time).await
    }

    async fn once(&mut self, w: Workload, spec: &Spec, time: Duration) -> Res<Option<Sample>> {
        Ok(Some(match w {
            // Every call-shaped workload is compared with the same 32-byte ping-pong.
            Workload::EchoFresh
            | Workload::EchoCached
            | Workload::Attr
            | Workload::Callback
            | Workload::Typed => {
                let frame = frame(&[7u8; PING]);
                timed!(time, {
                    self.send(&frame).await?;
                    self.recv().await?;
                })
            }
            Workload::InFlight => {
                // Every reply already buffered is taken before the replacements go out, in
                // one write: the batching any pipelined client does.
                let one = frame(&[7u8; PING]);
                let batch: Vec<u8> = one.repeat(spec.depth);
                let start = Instant::now();
                let end = start + time;
                let mut sent = VecDeque::with_capacity(spec.depth);
                let now = Instant::now();
                sent.extend(std::iter::repeat_n(now, spec.depth));
                self.send(&batch).await?;
                let mut lat_ns = Vec::new();
                while let Some(t0) = sent.pop_front() {
                    self.recv().await?;
                    let mut done = vec![t0];
                    while self.r.buffer().len() >= one.len() {
                        let Some(t) = sent.pop_front() else { break };
                        self.recv().await?;
                        done.push(t);
                    }
                    let now = Instant::now();
                    lat_ns.extend(done.iter().map(|t| (now - *t).as_nanos() as u64));
                    if now < end {
                        sent.extend(std::iter::repeat_n(now, done.len()));
                        self.send(&batch[..done.len() * one.len()]).await?;
                    }
                }
                Sample {
                    calls: lat_ns.len() as u64,
                    elapsed: start.elapsed(),
                    lat_ns,
                    ..Sample::default()
                }
            }
            Workload::Bytes => {
                let payload = crate::random_bytes(spec.bytes);
                let frame = frame(&payload);
                let s = timed!(time, {
                    self.send(&frame).await?;
                    self.recv().await?;
                });
                if self.body != payload {
                    return Err("the echoed bytes differ".into());
                }
                s
            }
            Workload::Stream => self.stream(time).await?,
            Workload::Memory => return Ok(None),
        }))
    }

    /// Reads the frames of a fresh stream connection for `time`, checking each, as
    /// `stats::drain` does for netref's stream.
    async fn stream(&self, time: Duration) -> Res<Sample> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream.set_nodelay(true)?;
        let (r, mut w) = stream.into_split();
        w.write_all(&STREAM.to_be_bytes()).await?;
        let mut r = BufReader::with_capacity(BUF, r);
        let start = Instant::now();
        let mut n: u64 = 0;
        loop {
            let len = r.read_u32().await?;
            let item = r.read_u64().await?;
            if len != 8 || item != n {
                return Err(format!("frame {n} arrived as {item} (length {len})").into());
            }
            n += 1;
            if n % 64 == 0 && start.elapsed() >= time {
                break;
            }
        }
        Ok(Sample {
            calls: n,
            elapsed: start.elapsed(),
            ..Sample::default()
        })
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 4);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}
