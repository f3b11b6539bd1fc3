//! TLS transport (cargo feature `tls`, on by default): netref over TCP + TLS, using rustls
//! with its `ring` crypto provider.
//!
//! # Usage
//!
//! The client verifies the server's certificate chain against the root certificates it is
//! given and the name it asked for; there are no built-in roots, so a private CA (the usual
//! case for netref) needs nothing else. The server presents a chain and its key and may
//! require client certificates signed by roots of its own.
//!
//! | side | function | configuration |
//! |---|---|---|
//! | client | [`connect`] | [`TlsClientConfig::new`], [`TlsClientConfig::with_client_cert`] |
//! | server | [`accept`] on each accepted `TcpStream` | [`TlsAcceptor::new`], [`TlsAcceptor::with_client_auth`] |
//!
//! Certificates and keys are DER ([`CertificateDer`], [`PrivateKeyDer`]); [`certs_from_pem`]
//! and [`key_from_pem`] read the PEM files most tools write.
//!
//! Once TLS is up, the netref hello runs inside it as usual, so a
//! [`Config::secret`](crate::Config::secret) can be required on top of certificates.
//!
//! # Errors
//!
//! A bad certificate or key fails the constructor with [`Error::Io`] of kind `InvalidInput`.
//! A failed TLS handshake (untrusted or misnamed server certificate, missing or untrusted
//! client certificate, a peer that does not speak TLS) fails [`connect`] or [`accept`] with
//! [`Error::Protocol`] starting `tls handshake`; when the server refuses a client
//! certificate after the client's side of the handshake has finished (TLS 1.3), [`connect`]
//! fails with [`Error::Protocol`] starting `tls:` and naming the server's alert (for
//! example `CertificateRequired`). Either way no call is ever made.
//!
//! # Limits
//!
//! The TLS handshake and the netref hello together must finish within
//! [`Config::handshake_timeout`](crate::Config::handshake_timeout).
//!
//! # Example
//!
//! ```no_run
//! use netref::tls::{self, TlsAcceptor, TlsClientConfig};
//! use netref::Config;
//!
//! # async fn demo(root: std::sync::Arc<dyn netref::Object>) -> netref::Result<()> {
//! // Server: a certificate chain and its key, from PEM files.
//! let chain = tls::certs_from_pem(&std::fs::read("server.pem")?)?;
//! let key = tls::key_from_pem(&std::fs::read("server.key")?)?;
//! let acceptor = TlsAcceptor::new(chain, key)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:18862").await?;
//! let (stream, _) = listener.accept().await?;
//! let server_side = tls::accept(stream, &acceptor, Config::default(), Some(root)).await?;
//!
//! // Client: trust the CA that signed the server's certificate.
//! let ca = tls::certs_from_pem(&std::fs::read("ca.pem")?)?;
//! let client = TlsClientConfig::new(ca)?;
//! let conn = tls::connect("127.0.0.1:18862", "localhost", &client, Config::default(), None).await?;
//! let three = conn.root().call_method("add", (1, 2)).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpStream, ToSocketAddrs};

pub use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::Role;
use crate::config::Config;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::object::Object;

/// The crypto provider every netref TLS configuration uses: rustls's `ring` provider, chosen
/// explicitly so no process-wide default is needed (or disturbed).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(what: &str, e: impl fmt::Display) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("tls: {what}: {e}"),
    ))
}

/// Every certificate in a PEM document (`-----BEGIN CERTIFICATE-----` blocks), in order.
///
/// Fails when the document holds none or one is malformed.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid("cannot read the certificates", e))?;
    if certs.is_empty() {
        return Err(invalid("no certificate in the PEM document", "empty"));
    }
    Ok(certs)
}

/// The first private key in a PEM document (PKCS#8, PKCS#1 or SEC1).
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| invalid("cannot read the private key", e))
}

fn root_store(roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in roots {
        store
            .add(cert)
            .map_err(|e| invalid("bad root certificate", e))?;
    }
    if store.is_empty() {
        return Err(invalid("no root certificate given", "empty"));
    }
    Ok(store)
}

/// How a client verifies servers, and the certificate it presents when asked. Cheap to clone.
#[derive(Clone)]
pub struct TlsClientConfig {
    roots: Arc<RootCertStore>,
    inner: Arc<ClientConfig>,
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("roots", &self.roots.len())
            .field(
                "client_cert",
                &self.inner.client_auth_cert_resolver.has_certs(),
            )
            .finish()
    }
}

impl TlsClientConfig {
    /// Trusts servers whose certificate chains up to one of `roots` (and names the server
    /// asked for); presents no client certificate.
    pub fn new(roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Result<Self> {
        let roots = Arc::new(root_store(roots)?);
        let inner = Self::builder(&roots)?.with_no_client_auth();
        Ok(TlsClientConfig {
            roots,
            inner: Arc::new(inner),
        })
    }

    /// Presents `chain` (leaf first) and proves it holds `key` when the server asks for a
    /// client certificate.
    pub fn with_client_cert(
        self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self> {
        let inner = Self::builder(&self.roots)?
            .with_client_auth_cert(chain, key)
            .map_err(|e| invalid("bad client certificate or key", e))?;
        Ok(TlsClientConfig {
            roots: self.roots,
            inner: Arc::new(inner),
        })
    }

    fn builder(
        roots: &Arc<RootCertStore>,
    ) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>> {
        let provider = provider();
        let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| invalid("cannot verify servers", e))?;
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("protocol versions", e))?
            .with_webpki_verifier(verifier))
    }
}

/// The server side of TLS: its certificate, and whether clients must present one. Cheap to
/// clone; one acceptor serves any number of connections.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    client_auth: bool,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Presents `chain` (leaf first) with its `key`; clients need no certificate.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self> {
        let config = Self::builder()?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| invalid("bad server certificate or key", e))?;
        Ok(TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            client_auth: false,
        })
    }

    /// Like [`TlsAcceptor::new`], and requires every client to present a certificate that
    /// chains up to one of `client_roots`; a client without one is refused.
    pub fn with_client_auth(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self> {
        let roots = Arc::new(root_store(client_roots)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| invalid("cannot verify clients", e))?;
        let config = Self::builder()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| invalid("bad server certificate or key", e))?;
        Ok(TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            client_auth: true,
        })
    }

    fn builder() -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>> {
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("protocol versions", e))
    }
}

/// Time left of `budget` since `start`; at least a millisecond so the hello still fails with
/// its own clear timeout message rather than instantly.
fn remaining(start: Instant, budget: std::time::Duration) -> std::time::Duration {
    budget
        .checked_sub(start.elapsed())
        .unwrap_or_default()
        .max(std::time::Duration::from_millis(1))
}

/// Connects over TCP to `addr`, runs TLS verifying the server as `server_name` (a DNS name
/// or an IP address) against `tls`'s roots, then the netref hello with `config`, lending
/// `root` to the server.
pub async fn connect(
    addr: impl ToSocketAddrs,
    server_name: &str,
    tls: &TlsClientConfig,
    config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<Connection> {
    let start = Instant::now();
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| invalid(&format!("bad server name {server_name:?}"), e))?;
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().ok();
    let connector = tokio_rustls::TlsConnector::from(tls.inner.clone());
    let stream =
        match tokio::time::timeout(config.handshake_timeout, connector.connect(name, stream)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(handshake_failed(peer, e)),
            Err(_) => return Err(handshake_timed_out(config.handshake_timeout)),
        };
    hello(stream, peer, start, config.with_role(Role::Initiator), root)
        .await
        .map_err(|e| refused_after_handshake(peer, e))
}

/// Connects over TCP to `addr` and runs TLS verifying the server as `server_name`, within
/// `timeout`; no netref hello (for wires that have none, such as RPyC's).
pub(crate) async fn connect_stream(
    addr: impl ToSocketAddrs,
    server_name: &str,
    tls: &TlsClientConfig,
    timeout: std::time::Duration,
) -> Result<(
    tokio_rustls::client::TlsStream<TcpStream>,
    Option<std::net::SocketAddr>,
)> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| invalid(&format!("bad server name {server_name:?}"), e))?;
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().ok();
    let connector = tokio_rustls::TlsConnector::from(tls.inner.clone());
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(s)) => Ok((s, peer)),
        Ok(Err(e)) => Err(handshake_failed(peer, e)),
        Err(_) => Err(handshake_timed_out(timeout)),
    }
}

/// Runs the server side of TLS on an accepted stream within `timeout`; no netref hello.
pub(crate) async fn accept_stream(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    timeout: std::time::Duration,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().ok();
    match tokio::time::timeout(timeout, acceptor.inner.accept(stream)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(handshake_failed(peer, e)),
        Err(_) => Err(handshake_timed_out(timeout)),
    }
}

/// The netref hello over an established TLS `stream`, within what is left of the handshake
/// timeout since `start`; labels the connection `tls:PEER` unless `config` names it.
async fn hello<S>(
    stream: S,
    peer: Option<std::net::SocketAddr>,
    start: Instant,
    mut config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<Connection>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if config.label.is_none() {
        config.label = peer.map(|p| format!("tls:{p}"));
    }
    config.handshake_timeout = remaining(start, config.handshake_timeout);
    let (r, w) = tokio::io::split(stream);
    Connection::from_io(r, w, config, root).await
}

/// With TLS 1.3 the client's side of the handshake ends before the server has checked the
/// client's certificate; a refusal then arrives as an alert while the hello is read. Say so.
fn refused_after_handshake(peer: Option<std::net::SocketAddr>, e: Error) -> Error {
    let Error::Io(io) = &e else { return e };
    match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => {
            let who = peer.map_or_else(|| "the server".to_owned(), |p| format!("the server {p}"));
            Error::Protocol(format!("tls: {who} refused the connection: {tls}"))
        }
        None => e,
    }
}

/// Runs the server side of TLS on an accepted TCP stream, then the netref hello with
/// `config`, lending `root` to the client.
///
/// A server accepts in a loop and calls this for each stream in its own task, so a slow
/// client cannot hold up the others.
pub async fn accept(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    config: Config,
    root: Option<Arc<dyn Object>>,
) -> Result<Connection> {
    let start = Instant::now();
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().ok();
    let stream =
        match tokio::time::timeout(config.handshake_timeout, acceptor.inner.accept(stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(handshake_failed(peer, e)),
            Err(_) => return Err(handshake_timed_out(config.handshake_timeout)),
        };
    hello(stream, peer, start, config.with_role(Role::Acceptor), root).await
}

fn handshake_failed(peer: Option<std::net::SocketAddr>, e: std::io::Error) -> Error {
    match peer {
        Some(p) => Error::Protocol(format!("tls handshake with {p} failed: {e}")),
        None => Error::Protocol(format!("tls handshake failed: {e}")),
    }
}

fn handshake_timed_out(limit: std::time::Duration) -> Error {
    Error::Protocol(format!("tls handshake did not complete within {limit:?}"))
}
