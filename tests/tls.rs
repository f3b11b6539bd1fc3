//! TLS over TCP loopback, with certificates made at run time: a trusted server serves calls;
//! an untrusted or misnamed server is refused by default; client certificates are enforced
//! when the server asks for them; a shared secret works on top of TLS.
#![cfg(feature = "tls")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use netref::tls::{self, CertificateDer, PrivateKeyDer, TlsAcceptor, TlsClientConfig};
use netref::{Config, Connection, Obj, Object, Result, Secret, Value};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn root(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A leaf certificate for `names`, for a server or a client, as PEM (chain, key).
    fn issue_pem(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A leaf certificate as DER (chain, key).
    fn issue(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let (chain, key) = self.issue_pem(names, usage);
        (
            tls::certs_from_pem(chain.as_bytes()).unwrap(),
            tls::key_from_pem(key.as_bytes()).unwrap(),
        )
    }
}

fn server_acceptor(ca: &Ca) -> TlsAcceptor {
    let (chain, key) = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    TlsAcceptor::new(chain, key).unwrap()
}

fn lab_root() -> Arc<dyn Object> {
    Obj::new(Lab::default()).erase()
}

/// A TLS listener on 127.0.0.1:0 that reports the outcome of every accepted connection.
async fn serve_tls(
    acceptor: TlsAcceptor,
    config: Config,
) -> (SocketAddr, mpsc::UnboundedReceiver<Result<Connection>>) {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let outcome = tls::accept(stream, &acceptor, config.clone(), Some(lab_root())).await;
            if tx.send(outcome).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

async fn add(conn: &Connection) -> Value {
    conn.root().call_method("add", (20, 22)).await.unwrap()
}

#[tokio::test]
async fn a_trusted_server_serves_calls() {
    let ca = Ca::new("netref test CA");
    let (addr, mut outcomes) = serve_tls(server_acceptor(&ca), Config::default()).await;
    let client =
        TlsClientConfig::new(tls::certs_from_pem(ca.cert.pem().as_bytes()).unwrap()).unwrap();

    let conn = tls::connect(addr, "localhost", &client, Config::default(), None)
        .await
        .unwrap();
    let server_side = outcomes.recv().await.unwrap().unwrap();
    assert_eq!(add(&conn).await, Value::Int(42));
    assert!(
        conn.label().starts_with("tls:127.0.0.1:"),
        "{}",
        conn.label()
    );
    conn.close().await;
    server_side.closed().await;
}

#[tokio::test]
async fn an_untrusted_server_is_refused_by_default() {
    let (addr, mut outcomes) =
        serve_tls(server_acceptor(&Ca::new("rogue CA")), Config::default()).await;
    let client = TlsClientConfig::new([Ca::new("the CA we trust").root()]).unwrap();

    let e = tls::connect(addr, "localhost", &client, Config::default(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("tls handshake"), "{e}");
    assert!(e.contains("UnknownIssuer"), "{e}");
    assert!(outcomes.recv().await.unwrap().is_err());
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let ca = Ca::new("netref test CA");
    let (addr, mut outcomes) = serve_tls(server_acceptor(&ca), Config::default()).await;
    let client = TlsClientConfig::new([ca.root()]).unwrap();

    let e = tls::connect(addr, "example.com", &client, Config::default(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("tls handshake"), "{e}");
    assert!(e.contains("not valid for name"), "{e}");
    assert!(outcomes.recv().await.unwrap().is_err());
}

#[tokio::test]
async fn client_certificates_are_enforced_when_configured() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let (chain, key) = server_ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let acceptor = TlsAcceptor::with_client_auth(chain, key, [client_ca.root()]).unwrap();
    let (addr, mut outcomes) = serve_tls(acceptor, Config::default()).await;
    let trusting = TlsClientConfig::new([server_ca.root()]).unwrap();

    // No client certificate: the server refuses; the client fails before any call (with
    // TLS 1.3 its side of the TLS handshake completes, and the server's alert arrives when
    // it reads the netref hello).
    let e = tls::connect(addr, "localhost", &trusting, Config::default(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused the connection"), "{e}");
    assert!(e.contains("CertificateRequired"), "{e}");
    let server_side = outcomes.recv().await.unwrap().unwrap_err().to_string();
    assert!(server_side.contains("tls handshake"), "{server_side}");

    // A certificate from a CA the server does not trust: refused as well.
    let (chain, key) =
        Ca::new("stranger CA").issue(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = trusting.clone().with_client_cert(chain, key).unwrap();
    let e = tls::connect(addr, "localhost", &stranger, Config::default(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("UnknownCA"), "{e}");
    assert!(outcomes.recv().await.unwrap().is_err());

    // A valid client certificate: served.
    let (chain, key) = client_ca.issue(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
    let known = trusting.with_client_cert(chain, key).unwrap();
    let conn = tls::connect(addr, "localhost", &known, Config::default(), None)
        .await
        .unwrap();
    let _server_side = outcomes.recv().await.unwrap().unwrap();
    assert_eq!(add(&conn).await, Value::Int(42));
}

#[tokio::test]
async fn a_shared_secret_is_checked_inside_tls() {
    let ca = Ca::new("netref test CA");
    let with_secret = |s: &str| Config::default().with_secret(Secret::new(s));
    let (addr, mut outcomes) = serve_tls(server_acceptor(&ca), with_secret("s3cret")).await;
    let client = TlsClientConfig::new([ca.root()]).unwrap();

    let e = tls::connect(addr, "localhost", &client, with_secret("guess"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("wrong shared secret"), "{e}");
    assert!(outcomes.recv().await.unwrap().is_err());

    let conn = tls::connect(addr, "localhost", &client, with_secret("s3cret"), None)
        .await
        .unwrap();
    let _server_side = outcomes.recv().await.unwrap().unwrap();
    assert_eq!(add(&conn).await, Value::Int(42));
}

#[tokio::test]
async fn a_plain_client_is_refused_by_a_tls_server() {
    let ca = Ca::new("netref test CA");
    let (addr, mut outcomes) = serve_tls(server_acceptor(&ca), Config::default()).await;
    assert!(netref::connect(addr).await.is_err());
    let e = outcomes.recv().await.unwrap().unwrap_err().to_string();
    assert!(e.contains("tls handshake"), "{e}");
}

#[test]
fn bad_certificates_and_keys_are_reported() {
    let e = tls::certs_from_pem(b"not pem").unwrap_err().to_string();
    assert!(e.contains("no certificate"), "{e}");
    let e = tls::key_from_pem(b"not pem").unwrap_err().to_string();
    assert!(e.contains("private key"), "{e}");
    let e = TlsClientConfig::new([]).unwrap_err().to_string();
    assert!(e.contains("no root certificate"), "{e}");
    let e = TlsClientConfig::new([CertificateDer::from(vec![1, 2, 3])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad root certificate"), "{e}");
    // A key that does not belong to the certificate.
    let ca = Ca::new("netref test CA");
    let (chain, _) = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (_, other_key) = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let e = TlsAcceptor::new(chain, other_key).unwrap_err().to_string();
    assert!(e.contains("bad server certificate or key"), "{e}");
}
