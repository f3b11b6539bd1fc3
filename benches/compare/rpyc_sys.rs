//! Python RPyC 6.0.2: `scripts/rpyc_server.py` and `scripts/rpyc_client.py`, each in its own
//! process; the client times the calls and reports them as JSON.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tokio::process::Command;

use crate::procs::{self, repo_root, LineClient, Res, ServerProc};
use crate::stats::Sample;
use crate::{MemoryResult, Spec, Workload};

fn script(name: &str) -> PathBuf {
    repo_root().join("scripts").join(name)
}

pub(crate) async fn spawn_server(python: &Path) -> Res<ServerProc> {
    let mut cmd = Command::new(python);
    cmd.arg(script("rpyc_server.py"));
    ServerProc::spawn(cmd).await
}

pub(crate) struct Client {
    client: LineClient,
}

impl Client {
    pub(crate) fn connect(python: &Path, port: u16) -> Res<Client> {
        let mut cmd = Command::new(python);
        cmd.arg(script("rpyc_client.py")).arg(port.to_string());
        Ok(Client {
            client: LineClient::spawn(cmd)?,
        })
    }

    pub(crate) async fn run(&mut self, w: Workload, spec: &Spec) -> Res<Option<Sample>> {
        let op = match w {
            Workload::EchoFresh => "echo_fresh",
            Workload::EchoCached => "echo_cached",
            Workload::Attr => "attr",
            Workload::Callback => "callback",
            Workload::InFlight => "inflight",
            Workload::Bytes => "bytes",
            Workload::Typed | Workload::Stream | Workload::Memory => return Ok(None),
        };
        let pid = self.client.pid();
        let cpu = || pid.and_then(procs::process_cpu);
        let cpu_before = cpu();
        let reply = self
            .client
            .request(&json!({
                "op": op,
                "warmup_ns": spec.warmup.as_nanos() as u64,
                "time_ns": spec.time.as_nanos() as u64,
                "size": spec.bytes,
                "depth": spec.depth,
            }))
            .await?;
        let client_cpu = cpu().zip(cpu_before).map(|(b, a)| b.saturating_sub(a));
        let num = |k: &str| {
            reply
                .get(k)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("no `{k}` in the RPyC client's reply"))
        };
        let lat_ns = reply
            .get("lat_ns")
            .and_then(serde_json::Value::as_array)
            .ok_or("no `lat_ns` in the RPyC client's reply")?
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        Ok(Some(Sample {
            calls: num("calls")?,
            elapsed: Duration::from_nanos(num("elapsed_ns")?),
            lat_ns,
            client_cpu,
            ..Sample::default()
        }))
    }
}

/// The memory workload with a fresh server and a fresh client.
pub(crate) async fn memory(python: &Path, n: u64, batch: u64) -> Res<MemoryResult> {
    let server = spawn_server(python).await?;
    let mut client = Client::connect(python, server.port)?;
    let reply = client
        .client
        .request(&json!({"op": "memory", "n": n, "batch": batch}))
        .await?;
    MemoryResult::from_json(&reply)
}
