//! TLS (`rediss://`, the crate's `tls` feature) against a private `redis-server` that
//! listens only with TLS, on a certificate made here by a CA made here.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{app, serve, Client};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use session_layer_redis::{redis, RedisStore};

/// A CA, and a certificate for 127.0.0.1 it signed, as PEM files in `dir`: (CA, cert, key).
fn certificates(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (ca_file, cert_file, key_file) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (ca.pem(), cert_file, key_file)
}

/// A `redis-server` with only a TLS port, killed when dropped.
struct TlsServer {
    port: u16,
    child: std::process::Child,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Option<TlsServer> {
    if Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        return common::skip("redis-server is not installed");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(cert)
        .arg("--tls-key-file")
        .arg(key)
        .arg("--tls-ca-cert-file")
        .arg(dir.join("ca.pem"))
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let server = TlsServer { port, child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server with TLS did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

#[tokio::test]
async fn a_store_over_tls_round_trips_and_an_unknown_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let Some(server) = start(dir.path(), &cert, &key) else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}", server.port);

    // Your own client, trusting the test's CA.
    let client = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.into_bytes()),
        },
    )
    .expect("a TLS client");
    let store = RedisStore::from_client(client)
        .connect()
        .await
        .expect("connect over TLS");
    let client = Client::new(serve(app(store)).await);
    let reply = client.post("/set/colour/teal", None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = client
        .get(
            "/get/colour",
            Some(&reply.cookie.expect("a session cookie")),
        )
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "teal"),
        "{reply:?}"
    );

    // A plain `rediss://` URL trusts the system's CAs only: this server's certificate is
    // refused, with an error rather than a plaintext fallback.
    let error = RedisStore::connect(&url).await.expect_err("an unknown CA");
    assert_ne!(
        error.kind(),
        session_layer::StoreErrorKind::Timeout,
        "{error}"
    );
}
