//! tarpc: the same service over tarpc's bincode serde transport on TCP (with `TCP_NODELAY`,
//! like every system here), its server in a child process.

use std::time::{Duration, Instant};

use futures_util::stream::StreamExt;
use serde_bytes::ByteBuf;
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::LengthDelimitedCodec;
use tarpc::{client, context, serde_transport, server::Channel};
use tokio::net::{TcpListener, TcpStream};

use crate::procs::Res;
use crate::stats::Sample;
use crate::{Spec, Workload};

/// The bench service: the same members as the netref and RPyC peers (no callbacks or
/// references: tarpc has neither).
#[tarpc::service]
pub(crate) trait Bench {
    /// Returns its argument.
    async fn echo(x: i64) -> i64;
    /// Reads a value (the attribute workload).
    async fn value() -> i64;
    /// Returns its argument (bytes, not a list of integers).
    async fn echo_bytes(data: ByteBuf) -> ByteBuf;
}

#[derive(Clone)]
struct BenchServer;

impl Bench for BenchServer {
    async fn echo(self, _: context::Context, x: i64) -> i64 {
        x
    }

    async fn value(self, _: context::Context) -> i64 {
        1
    }

    async fn echo_bytes(self, _: context::Context, data: ByteBuf) -> ByteBuf {
        data
    }
}

/// Large enough for the 1 MiB workload and its framing.
const MAX_FRAME: usize = 8 * 1024 * 1024;

type Framed = tarpc::tokio_util::codec::Framed<TcpStream, LengthDelimitedCodec>;

fn framed(stream: TcpStream) -> Framed {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_framed(stream)
}

/// The server process: one task per connection, one task per request (tarpc's documented
/// way to serve requests concurrently).
pub(crate) async fn serve() -> Res<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accept =
        async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let transport = serde_transport::new(framed(stream), Bincode::default());
                let channel = tarpc::server::BaseChannel::with_defaults(transport);
                tokio::spawn(channel.execute(BenchServer.serve()).for_each(
                    |response| async move {
                        tokio::spawn(response);
                    },
                ));
            }
        };
    tokio::select! {
        _ = accept => {}
        _ = crate::announce_and_wait(port) => {}
    }
    Ok(())
}

pub(crate) struct Client {
    client: BenchClient,
}

impl Client {
    pub(crate) async fn connect(port: u16) -> Res<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let transport = serde_transport::new(framed(stream), Bincode::default());
        let client = BenchClient::new(client::Config::default(), transport).spawn();
        Ok(Client { client })
    }

    pub(crate) async fn run(&mut self, w: Workload, spec: &Spec) -> Res<Option<Sample>> {
        let _ = self.once(w, spec, spec.warmup).await?;
        self.once(w, spec, spec.time).await
    }

    async fn once(&mut self, w: Workload, spec: &Spec, time: Duration) -> Res<Option<Sample>> {
        let c = &self.client;
        Ok(Some(match w {
            // No paths and no handles to cache: both are the plain call, which is also
            // tarpc's typed call.
            Workload::EchoFresh | Workload::EchoCached | Workload::Typed => timed!(time, {
                c.echo(context::current(), 1).await?;
            }),
            Workload::Attr => timed!(time, {
                c.value(context::current()).await?;
            }),
            Workload::InFlight => {
                let issue =
                    |t0: Instant| async move { c.echo(context::current(), 1).await.map(|_| t0) };
                crate::stats::in_flight(spec.depth, time, issue).await?
            }
            Workload::Bytes => {
                let original = crate::random_bytes(spec.bytes);
                // The reply becomes the next call's argument, as for netref.
                let mut payload = ByteBuf::from(original.clone());
                let s = timed!(time, {
                    payload = c.echo_bytes(context::current(), payload).await?;
                });
                if payload.into_vec() != original {
                    return Err("the echoed bytes differ".into());
                }
                s
            }
            Workload::Callback | Workload::Stream | Workload::Memory => return Ok(None),
        }))
    }
}
