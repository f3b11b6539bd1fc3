//! The registry: servers register under a service name, clients discover and connect.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{check_service, nats_error, new_instance_id, wire, Nats};
use crate::config::Config;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::object::Object;
use crate::server::{ListenAddr, ServerHandle};
use crate::value::{from_value, to_value};

/// A live instance of a service, as the registry lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The service name it registered under.
    pub service: String,
    /// Its id: unique per registration, also the `instance` of its [`FanoutReply`](super::FanoutReply)s.
    pub id: String,
    /// Where its netref server listens: `HOST:PORT` or `unix:PATH`.
    pub address: String,
    /// The version it announced ([`RegisterOptions::version`]).
    pub version: String,
    /// Free-form metadata it announced.
    pub metadata: BTreeMap<String, String>,
    /// When it registered (its own clock).
    pub started: SystemTime,
    /// Its load at the last heartbeat: open netref connections.
    pub load: u64,
    /// When the registry last heard from it (the NATS server's clock).
    pub last_seen: SystemTime,
}

impl Instance {
    /// How long ago it registered (zero if its clock is ahead of ours).
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.started)
            .unwrap_or_default()
    }
}

/// What a registry entry holds (the key holds the service and the id).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    address: String,
    version: String,
    metadata: BTreeMap<String, String>,
    started_ms: u64,
    load: u64,
}

impl Record {
    fn encode(&self) -> Result<Vec<u8>> {
        wire::encode_value(&to_value(self)?)
    }
}

/// What a server announces besides its address. Built with its methods:
/// `RegisterOptions::default().version("1.4.2").meta("zone", "eu")`.
#[derive(Debug, Clone, Default)]
pub struct RegisterOptions {
    version: String,
    metadata: BTreeMap<String, String>,
    address: Option<String>,
}

impl RegisterOptions {
    /// The version to announce (default: empty).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Adds a metadata entry.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The address clients should connect to, when it is not the one the server listens on
    /// (a server bound to `0.0.0.0` must say which of its addresses to announce).
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }
}

/// A server's entry in the registry, kept alive by heartbeats.
///
/// Dropping it (or [`Registration::deregister`]) deletes the entry; so does stopping or
/// dropping the server. A process that dies leaves the registry within its bound.
#[derive(Debug)]
pub struct Registration {
    nats: Nats,
    instance: Instance,
    stop: watch::Sender<bool>,
    task: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

/// Registers `server` under `service` with its listening address and default options.
pub async fn register(nats: &Nats, service: &str, server: &ServerHandle) -> Result<Registration> {
    register_with(nats, service, server, RegisterOptions::default()).await
}

/// Registers `server` under `service` with `options`. Returns once the entry is written.
pub async fn register_with(
    nats: &Nats,
    service: &str,
    server: &ServerHandle,
    options: RegisterOptions,
) -> Result<Registration> {
    check_service(service)?;
    let address = match (options.address, server.listen_addr()) {
        (Some(a), _) => a,
        (None, ListenAddr::Tcp(a)) if a.ip().is_unspecified() => {
            return Err(Error::Value(format!(
                "the server listens on {a}, which is no address a client can connect to: \
                 say which one to announce (RegisterOptions::advertise)"
            )))
        }
        (None, addr) => addr.to_string(),
    };
    let started = SystemTime::now();
    let record = Record {
        address,
        version: options.version,
        metadata: options.metadata,
        started_ms: started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64,
        load: server.connection_count() as u64,
    };
    let id = new_instance_id();
    let key = format!("{service}.{id}");
    let store = open(nats, true).await?.expect("created when missing");
    store
        .put(&key, record.encode()?.into())
        .await
        .map_err(|e| nats_error("cannot write the registry entry", e))?;
    let period = heartbeat_period(&store);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(heartbeat(
        nats.clone(),
        key,
        record.clone(),
        server.load_gauge(),
        server.stop_signal(),
        stopped,
        period,
    ));
    let instance = Instance {
        service: service.to_owned(),
        id,
        address: record.address,
        version: record.version,
        metadata: record.metadata,
        started,
        load: record.load,
        last_seen: started,
    };
    Ok(Registration {
        nats: nats.clone(),
        instance,
        stop,
        task: parking_lot::Mutex::new(Some(task)),
    })
}

impl Registration {
    /// The instance as registered.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.instance.id
    }

    /// Serves value calls ([`request`](super::request), [`cast`](super::cast),
    /// [`fanout`](super::fanout)) to this service on `root`, answering under this
    /// registration's id.
    pub async fn serve(&self, root: impl Into<Arc<dyn Object>>) -> Result<super::Worker> {
        super::pool::serve_as(
            &self.nats,
            &self.instance.service,
            self.instance.id.clone(),
            root.into(),
        )
        .await
    }

    /// Deletes the entry now and stops the heartbeats.
    pub async fn deregister(self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The heartbeat task sees this, deletes the entry and ends.
        let _ = self.stop.send(true);
    }
}

/// Every third of the bucket's bound, so two heartbeats may be lost before the entry expires.
fn heartbeat_period(store: &kv::Store) -> Duration {
    let ttl = store.stream.cached_info().config.max_age;
    if ttl.is_zero() {
        Duration::from_secs(3)
    } else {
        ttl / 3
    }
}

async fn heartbeat(
    nats: Nats,
    key: String,
    mut record: Record,
    load: impl Fn() -> usize + Send + 'static,
    mut server_stopped: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    mut period: Duration,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            // Also when the server handle is dropped.
            _ = server_stopped.wait_for(|s| *s) => break,
            _ = stop.wait_for(|s| *s) => break,
        }
        record.load = load() as u64;
        let written = match (open(&nats, true).await, record.encode()) {
            (Ok(Some(store)), Ok(bytes)) => {
                period = heartbeat_period(&store);
                store
                    .put(&key, bytes.into())
                    .await
                    .map_err(|e| nats_error("heartbeat", e))
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(None), _) => Err(Error::Disconnected("no registry".into())),
        };
        if let Err(e) = written {
            // NATS restarted, the bucket was removed …: open it afresh at the next beat.
            tracing::warn!(%key, error = %e, "registry heartbeat failed");
            *nats.registry_cell().lock() = None;
        }
    }
    if let Ok(Some(store)) = open(&nats, false).await {
        if let Err(e) = store.delete(&key).await {
            tracing::debug!(%key, error = %e, "could not delete the registry entry");
        }
    }
}

/// Opens the registry bucket, creating it (with [`NatsOptions::ttl`](super::NatsOptions))
/// when `create` is set. `Ok(None)`: it does not exist and `create` is unset.
async fn open(nats: &Nats, create: bool) -> Result<Option<kv::Store>> {
    if let Some(store) = nats.registry_cell().lock().clone() {
        return Ok(Some(store));
    }
    let options = nats.options();
    let js = nats.jetstream();
    let found = match js.get_stream(format!("KV_{}", options.bucket)).await {
        Ok(_) => true,
        Err(e) => match e.kind() {
            async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                false
            }
            _ => {
                return Err(nats_error(
                    "cannot reach the registry (is JetStream on?)",
                    e,
                ))
            }
        },
    };
    let store = if found {
        js.get_key_value(options.bucket.clone())
            .await
            .map_err(|e| nats_error("cannot open the registry", e))?
    } else if create {
        let config = kv::Config {
            bucket: options.bucket.clone(),
            description: "netref services: SERVICE.ID -> address, version, load".into(),
            history: 1,
            max_age: options.ttl,
            ..Default::default()
        };
        match js.create_key_value(config).await {
            Ok(store) => store,
            // Another process created it first.
            Err(first) => js
                .get_key_value(options.bucket.clone())
                .await
                .map_err(|_| nats_error("cannot create the registry", first))?,
        }
    } else {
        return Ok(None);
    };
    *nats.registry_cell().lock() = Some(store.clone());
    Ok(Some(store))
}

/// The registry's bound: how long an instance stays listed after its last heartbeat. Opens
/// the registry, creating it with [`NatsOptions::ttl`](super::NatsOptions) when it does not
/// exist yet (so a process that calls this first sets the bound for everyone).
pub async fn registry_bound(nats: &Nats) -> Result<Duration> {
    let store = open(nats, true).await?.expect("created when missing");
    Ok(store.stream.cached_info().config.max_age)
}

/// The live instances of `service`, in no particular order.
pub async fn discover(nats: &Nats, service: &str) -> Result<Vec<Instance>> {
    check_service(service)?;
    list(nats, Some(service)).await
}

/// Every live instance of every service (what `netref ls` prints), sorted by service and age.
pub async fn discover_all(nats: &Nats) -> Result<Vec<Instance>> {
    let mut all = list(nats, None).await?;
    all.sort_by(|a, b| (&a.service, a.started).cmp(&(&b.service, b.started)));
    Ok(all)
}

async fn list(nats: &Nats, service: Option<&str>) -> Result<Vec<Instance>> {
    let Some(store) = open(nats, false).await? else {
        return Ok(Vec::new());
    };
    // The subjects the bucket's stream holds (a stream info request), not `Store::keys`:
    // that creates a consumer on the server for every call, which lingers for 30 s, so
    // frequent discovery (polling, re-dials) would run into the server's consumer limit.
    let filter = match service {
        Some(service) => format!("{}{service}.*", store.prefix),
        None => format!("{}>", store.prefix),
    };
    let mut subjects = store
        .stream
        .info_with_subjects(&filter)
        .await
        .map_err(|e| nats_error("cannot list the registry", e))?;
    let mut wanted = Vec::new();
    while let Some(subject) = subjects.next().await {
        let (subject, _) = subject.map_err(|e| nats_error("cannot list the registry", e))?;
        let Some(key) = subject.strip_prefix(store.prefix.as_str()) else {
            continue;
        };
        let key = key.to_owned();
        let Some((svc, id)) = key.rsplit_once('.') else {
            continue;
        };
        if service.is_none_or(|s| s == svc) {
            wanted.push((svc.to_owned(), id.to_owned(), key));
        }
    }
    let entries =
        futures_util::future::join_all(wanted.iter().map(|(_, _, key)| store.entry(key.clone())))
            .await;
    let mut out = Vec::new();
    for ((service, id, _), entry) in wanted.into_iter().zip(entries) {
        let entry = match entry {
            Ok(Some(e)) if e.operation == kv::Operation::Put => e,
            // Deleted or expired since it was listed.
            Ok(_) => continue,
            Err(e) => return Err(nats_error("cannot read the registry", e)),
        };
        let record: Record = match wire::decode_value(&entry.value).and_then(from_value) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%service, %id, error = %e, "skipping a malformed registry entry");
                continue;
            }
        };
        out.push(Instance {
            service,
            id,
            address: record.address,
            version: record.version,
            metadata: record.metadata,
            started: UNIX_EPOCH + Duration::from_millis(record.started_ms),
            load: record.load,
            last_seen: entry.created.into(),
        });
    }
    Ok(out)
}

/// How [`connect_service`] orders the instances it tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pick {
    /// Each call starts one instance further along (per service, per [`Nats`] handle).
    #[default]
    RoundRobin,
    /// The instance with the fewest open connections first (as of its last heartbeat).
    LeastLoaded,
}

/// Discovers `service` and connects directly to one instance (round robin), trying the next
/// when one refuses. See [`connect_service_with`].
pub async fn connect_service(nats: &Nats, service: &str) -> Result<Connection> {
    connect_service_with(nats, service, Pick::RoundRobin, Config::default()).await
}

/// Discovers `service` and connects directly to one instance picked by `pick`, with
/// `config`. When a connection is refused (or its hello fails) the next instance is tried;
/// the error says what every attempt got.
pub async fn connect_service_with(
    nats: &Nats,
    service: &str,
    pick: Pick,
    config: Config,
) -> Result<Connection> {
    let mut instances = discover(nats, service).await?;
    if instances.is_empty() {
        return Err(Error::Disconnected(format!(
            "no live instance of service `{service}` in the registry"
        )));
    }
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    let turn = nats.next_turn(service) % instances.len();
    instances.rotate_left(turn);
    if pick == Pick::LeastLoaded {
        // Stable: among equals, the round-robin order stays.
        instances.sort_by_key(|i| i.load);
    }
    let mut failures = Vec::new();
    for instance in &instances {
        match dial(&instance.address, config.clone()).await {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                tracing::debug!(%service, address = %instance.address, error = %e, "instance refused");
                failures.push(format!("{}: {e}", instance.address));
            }
        }
    }
    Err(Error::Disconnected(format!(
        "no instance of service `{service}` accepted a connection ({})",
        failures.join("; ")
    )))
}

/// Connects to a registry address: `unix:PATH` or `HOST:PORT`.
pub(crate) async fn dial(address: &str, config: Config) -> Result<Connection> {
    #[cfg(unix)]
    if let Some(path) = address.strip_prefix("unix:") {
        return crate::transport::connect_unix_with(path, config, None).await;
    }
    crate::transport::connect_with(address, config, None).await
}

/// A service as a target of [`connect_resilient`](crate::connect_resilient): every re-dial
/// discovers afresh and connects with [`connect_service`]'s rules.
#[derive(Debug, Clone)]
pub struct ServiceTarget {
    nats: Nats,
    service: String,
    pick: Pick,
    config: Config,
}

/// `service` on `nats` as a target for [`connect_resilient`](crate::connect_resilient).
pub fn service(nats: &Nats, service: &str) -> ServiceTarget {
    ServiceTarget {
        nats: nats.clone(),
        service: service.to_owned(),
        pick: Pick::RoundRobin,
        config: Config::default(),
    }
}

impl ServiceTarget {
    /// Picks instances by `pick` (default round robin).
    pub fn pick(mut self, pick: Pick) -> Self {
        self.pick = pick;
        self
    }

    /// Connects with `config`.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
}

impl crate::resilient::Dial for ServiceTarget {
    fn dial(&self) -> futures_util::future::BoxFuture<'_, Result<Connection>> {
        Box::pin(connect_service_with(
            &self.nats,
            &self.service,
            self.pick,
            self.config.clone(),
        ))
    }

    fn describe(&self) -> String {
        format!("service `{}`", self.service)
    }
}
