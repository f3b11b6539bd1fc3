//! RPyC's wire over TLS, with certificates made at run time: `Server::rpyc().tls(..)` serves
//! Python's `rpyc.ssl_connect` (which verifies it against the CA) and netref's own
//! `rpyc::connect_tls`, which refuses a server signed by another CA.
#![cfg(feature = "tls")]

mod common;

use netref::tls::{self, TlsAcceptor, TlsClientConfig};
use netref::{rpyc, Config, Server, ServerHandle, Value};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA and a server certificate for `localhost` signed by it, as PEM.
struct Certs {
    ca_pem: String,
    chain_pem: String,
    key_pem: String,
}

fn certs(ca_name: &str) -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&key, &ca, &ca_key).unwrap();
    Certs {
        ca_pem: ca.pem(),
        chain_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    }
}

async fn server(c: &Certs) -> ServerHandle {
    common::init_tracing();
    let acceptor = TlsAcceptor::new(
        tls::certs_from_pem(c.chain_pem.as_bytes()).unwrap(),
        tls::key_from_pem(c.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let lab = netref::lab::Lab::new(netref::lab::LabOptions::default()).unwrap();
    Server::with_root(lab.into_root())
        .rpyc()
        .tls(acceptor)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netref_client_verifies_the_rpyc_server() {
    let c = certs("netref rpyc CA");
    let server = server(&c).await;
    let trusted = TlsClientConfig::new(tls::certs_from_pem(c.ca_pem.as_bytes()).unwrap()).unwrap();
    let conn = rpyc::connect_tls(
        server.local_addr(),
        "localhost",
        &trusted,
        Config::default(),
    )
    .await
    .unwrap();
    let root = conn.root().await.unwrap();
    assert_eq!(
        root.call_method("add", (20, 22)).await.unwrap(),
        Value::Int(42)
    );
    assert!(conn.label().starts_with("rpycs:"), "{}", conn.label());
    conn.close().await;

    let other = certs("another CA");
    let untrusted =
        TlsClientConfig::new(tls::certs_from_pem(other.ca_pem.as_bytes()).unwrap()).unwrap();
    let e = rpyc::connect_tls(
        server.local_addr(),
        "localhost",
        &untrusted,
        Config::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("UnknownIssuer"), "{e}");
}

/// Runs `script` in Python with the server's port and a file holding the CA's certificate as
/// its two arguments; it must succeed and print exactly `tls ok`. `tag` names its
/// temporary directory.
async fn python_over_tls(c: &Certs, server: &ServerHandle, tag: &str, script: &str) {
    let dir = std::env::temp_dir().join(format!("netref-rpyc-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &c.ca_pem).unwrap();
    let out = tokio::process::Command::new(common::python::python())
        .args(["-c", script])
        .arg(server.local_addr().port().to_string())
        .arg(&ca_file)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tls ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ssl_connect_reaches_the_rpyc_server() {
    let c = certs("netref rpyc CA");
    let server = server(&c).await;
    let script = r#"
import ssl, sys, rpyc
port, ca = int(sys.argv[1]), sys.argv[2]
conn = rpyc.ssl_connect("localhost", port, ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
assert conn.root.add(1, 2) == 3
ticks = []
conn.root.every(2, ticks.append)
assert ticks == [0, 1], ticks
conn.close()
print("tls ok")
"#;
    python_over_tls(&c, &server, "tls", script).await;
}

/// Many calls over TLS: Python's client sends each `DEL` of a bound method without waiting,
/// so it often arrives together with the next request and their replies leave together;
/// every reply must reach Python before its 5 s request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_with_their_dels_over_tls() {
    let c = certs("netref rpyc CA");
    let server = server(&c).await;
    let script = r#"
import ssl, sys, rpyc
port, ca = int(sys.argv[1]), sys.argv[2]
conn = rpyc.ssl_connect("localhost", port, ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED,
                        config={"sync_request_timeout": 5})
for i in range(300):
    assert conn.root.add(i, 1) == i + 1
conn.close()
print("tls ok")
"#;
    python_over_tls(&c, &server, "tls2", script).await;
}
