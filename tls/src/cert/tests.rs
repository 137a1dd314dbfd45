//! The store against certificates made by the `openssl` command line: loads, reloads on change,
//! keeps the last good pair, and serves it in real handshakes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::{Accept, TlsListener, TlsVersion, server_config};

/// A throwaway CA in a temp dir, issuing server certificates for 127.0.0.1 and localhost.
struct Ca {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl) runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Ca {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "3650",
                "-subj",
                "/CN=Knit test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        std::fs::write(
            dir.path().join("ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issue `NAME.crt` / `NAME.key` with `serial`.
    fn issue(&self, name: &str, serial: u32) -> (PathBuf, PathBuf) {
        let (crt, key, csr) = (
            format!("{name}.crt"),
            format!("{name}.key"),
            format!("{name}.csr"),
        );
        openssl(
            self.dir.path(),
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=localhost",
            ],
        );
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial.to_string(),
                "-days",
                "30",
                "-out",
                &crt,
                "-extfile",
                "ext",
            ],
        );
        (self.path(&crt), self.path(&key))
    }
}

fn leaf(store: &CertStore) -> Vec<u8> {
    store.current().cert[0].to_vec()
}

fn der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .expect("a certificate")
        .to_vec()
}

#[test]
fn reloads_a_changed_pair_and_keeps_the_last_good_one() {
    let ca = Ca::new();
    let (c1, k1) = ca.issue("one", 1);
    let (c2, k2) = ca.issue("two", 2);
    let (cert, key) = (ca.path("tls.crt"), ca.path("tls.key"));
    std::fs::copy(&c1, &cert).expect("copy");
    std::fs::copy(&k1, &key).expect("copy");
    let store = CertStore::load(&cert, &key).expect("loads");
    assert_eq!(leaf(&store), der(&c1));
    assert!(matches!(store.reload(), Reload::Unchanged));

    // A rotation written in two steps: the new certificate with the old key is refused...
    std::fs::copy(&c2, &cert).expect("copy");
    assert!(matches!(store.reload(), Reload::Kept(Error::Pair { .. })));
    assert_eq!(leaf(&store), der(&c1), "the old pair keeps serving");
    // ... and loads once its key follows.
    std::fs::copy(&k2, &key).expect("copy");
    assert!(matches!(store.reload(), Reload::Loaded));
    assert_eq!(leaf(&store), der(&c2));

    // Garbage and a missing file keep the pair.
    std::fs::write(&cert, "not a certificate").expect("write");
    assert!(matches!(
        store.reload(),
        Reload::Kept(Error::NoCertificate { .. })
    ));
    std::fs::remove_file(&key).expect("rm");
    assert!(matches!(store.reload(), Reload::Kept(Error::Read { .. })));
    assert_eq!(leaf(&store), der(&c2));
}

#[test]
fn refuses_a_bad_pair_at_start() {
    let ca = Ca::new();
    let (c1, _) = ca.issue("one", 1);
    let (_, k2) = ca.issue("two", 2);
    let err = CertStore::load(&c1, &k2).expect_err("mismatched");
    assert!(
        err.to_string()
            .contains("do not make a certificate and its key"),
        "{err}"
    );
    let err = CertStore::load(&c1, &c1).expect_err("no key");
    assert!(err.to_string().contains("no PEM private key"), "{err}");
    assert!(crate::read_ca_file(&k2).is_err());
    assert!(crate::read_ca_file(&ca.path("ca.crt")).is_ok());
}

/// A client trusting the CA, offering only `versions`.
fn connector(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca.path("ca.crt")).expect("ca"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Serve "hello" over TLS on a fresh listener.
async fn serve(store: Arc<CertStore>, min: TlsVersion) -> std::net::SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut listener =
        TlsListener::new(tcp, server_config(store, min).expect("config")).expect("listener");
    let addr = listener.local_addr();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"hello").await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

async fn hello(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
) -> std::io::Result<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await?;
    let served = tls.get_ref().1.peer_certificates().expect("certs")[0].to_vec();
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await?;
    assert_eq!(buf, b"hello");
    Ok(served)
}

#[tokio::test]
async fn handshakes_get_the_pair_loaded_last_and_tls_1_2_only_when_allowed() {
    let ca = Ca::new();
    let (c1, k1) = ca.issue("one", 1);
    let (c2, k2) = ca.issue("two", 2);
    let (cert, key) = (ca.path("tls.crt"), ca.path("tls.key"));
    std::fs::copy(&c1, &cert).expect("copy");
    std::fs::copy(&k1, &key).expect("copy");
    let store = CertStore::load(&cert, &key).expect("loads");
    let addr = serve(store.clone(), TlsVersion::V1_3).await;
    let tls13 = connector(&ca, &[&rustls::version::TLS13]);
    assert_eq!(hello(&tls13, addr).await.expect("TLS 1.3"), der(&c1));
    std::fs::copy(&c2, &cert).expect("copy");
    std::fs::copy(&k2, &key).expect("copy");
    assert!(matches!(store.reload(), Reload::Loaded));
    assert_eq!(hello(&tls13, addr).await.expect("TLS 1.3"), der(&c2));

    let tls12 = connector(&ca, &[&rustls::version::TLS12]);
    let refused = hello(&tls12, addr)
        .await
        .expect_err("TLS 1.2 refused by default");
    assert!(
        refused.to_string().to_lowercase().contains("protocol"),
        "{refused}"
    );
    let addr12 = serve(store, TlsVersion::V1_2).await;
    assert_eq!(
        hello(&tls12, addr12).await.expect("TLS 1.2 allowed"),
        der(&c2)
    );
}
