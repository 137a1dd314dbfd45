//! What TLS costs the broker: one knit with `--tls-cert` and `transport-encryption:
//! permissive` (both ingress listeners answer), two brokers with one trigger each, measured in
//! alternating rounds with the same load generator over 32 keep-alive connections:
//! - (t0) plain HTTP client → ingress → broker → trigger → plain HTTP sink (the baseline: the
//!   same process, the same path, no TLS anywhere);
//! - (t1) HTTPS client → HTTPS ingress → broker → trigger → plain HTTP sink;
//! - (t2) HTTPS client → HTTPS ingress → broker → trigger → HTTPS sink (Knit's dispatcher
//!   verifying the sink against `--ca-file`);
//! - (t3) what OIDC costs, in a second knit with `authentication-oidc: enabled`: plain HTTP
//!   with a bearer token the ingress verifies (ES256) and authorizes, and a token on each
//!   delivery to the sink (minted once per audience and cached), in the same rounds.
//!
//! Printed: events/s at the sink, end-to-end p50/p99, knit's CPU per event and what TLS adds
//! to it against (t0). Connections are kept alive, so the figure is mostly encryption; a
//! handshake per connection is paid once per measurement. Certificates (a CA, a server
//! certificate for 127.0.0.1) are made by the `openssl` command line in a temp folder.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio_rustls::TlsConnector;

use crate::knit::Knit;
use crate::servers::{self, Counters, Mode};
use crate::{Measured, Options, median};

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("the TLS scenario needs the openssl command (apt-get install openssl)")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A CA (`ca.crt`) and a server certificate for 127.0.0.1 it signed (`tls.crt`, `tls.key`).
fn certificates(dir: &Path) -> Result<()> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=knit-bench CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    )?;
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "tls.key",
                "-out",
                "tls.csr",
                "-subj",
                "/CN=knit-bench",
            ],
        ]
        .concat(),
    )?;
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "1",
            "-days",
            "2",
            "-out",
            "tls.crt",
            "-extfile",
            "ext",
        ],
    )
}

/// A client trusting only `ca.crt` (TLS 1.3, as Knit's default).
fn connector(dir: &Path) -> Result<TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(dir.join("ca.crt"))?)?;
    let config = rustls::ClientConfig::builder_with_provider(knit_tls::provider())
        .with_protocol_versions(knit_tls::TlsVersion::V1_3.versions())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The HTTPS sink: the bench's sink behind a TLS listener with the same certificate.
async fn https_sink(dir: &Path) -> Result<(SocketAddr, Arc<Counters>)> {
    let store = knit_tls::CertStore::load(&dir.join("tls.crt"), &dir.join("tls.key"))?;
    let config = knit_tls::server_config(store, knit_tls::TlsVersion::V1_3)?;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let listener = knit_tls::TlsListener::new(tcp, config)?;
    let addr = listener.local_addr();
    Ok((addr, servers::serve(listener, Mode::Accept)))
}

fn manifests(plain_sink: SocketAddr, tls_sink: SocketAddr) -> String {
    let trigger = |broker: &str, sink: &str| {
        format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {{name: {broker}, namespace: default}}\n---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: {broker}, namespace: default}}\nspec:\n  broker: {broker}\n  filter: {{attributes: {{type: bench.event}}}}\n  subscriber: {{uri: '{sink}/'}}\n---\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: config-features, namespace: knative-eventing}}\ndata: {{transport-encryption: permissive}}\n---\n{}{}",
        trigger("plain", &format!("http://{plain_sink}")),
        trigger("secure", &format!("https://{tls_sink}")),
    )
}

/// Run (t0), (t1), (t2) in `rounds` alternating rounds and print them.
pub(crate) async fn scenarios(o: &Options, rounds: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    certificates(dir.path())?;
    let tls = connector(dir.path())?;
    let (plain_addr, plain_sink) = servers::start(Mode::Accept).await?;
    let (tls_addr, tls_sink) = https_sink(dir.path()).await?;
    let path = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let (cert, key, ca) = (path("tls.crt"), path("tls.key"), path("ca.crt"));
    let knit = Knit::start_tls(
        &manifests(plain_addr, tls_addr),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--ca-file",
            &ca,
            "--ingress-tls",
            "127.0.0.1:0",
            "--gateway-tls",
            "127.0.0.1:0",
        ],
        tls.clone(),
    )?;
    knit.wait_ready("triggers", &["plain", "secure"]).await?;
    let https = knit
        .ingress_tls
        .context("knit did not report ingress-tls")?;
    let (oidc, token, _oidc_state) = oidc_knit(plain_addr).await?;
    // One leg: the load through `addr` (over TLS with `tls`) to `path`, counted at `sink`.
    let leg = |addr, tls, path, sink| {
        let via = crate::Via {
            addr,
            tls,
            authorization: None,
        };
        crate::through(&knit, via, path, o, None, sink)
    };
    let bearer = format!("Bearer {token}");
    let (mut t0, mut t1, mut t2, mut t3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        t0.push(leg(knit.ingress, None, "/default/plain", &plain_sink).await?);
        t1.push(leg(https, Some(&tls), "/default/plain", &plain_sink).await?);
        t2.push(leg(https, Some(&tls), "/default/secure", &tls_sink).await?);
        let via = crate::Via {
            addr: oidc.ingress,
            tls: None,
            authorization: Some(&bearer),
        };
        t3.push(crate::through(&oidc, via, "/default/plain", o, None, &plain_sink).await?);
    }
    let (t0, t1, t2, t3) = (median(t0), median(t1), median(t2), median(t3));
    let line = |label: &str, m: &Measured| {
        let what = if std::ptr::eq(m, &t3) { "OIDC" } else { "TLS" };
        let added = if std::ptr::eq(m, &t0) {
            String::new()
        } else {
            format!(
                "   {what} adds {:+.1} µs/event ({:.2}× the events/s of (t0))",
                m.cpu_us - t0.cpu_us,
                m.rate / t0.rate
            )
        };
        println!(
            "{label} {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms end to end   knit CPU {:.1} µs/event{added}",
            m.rate, m.p50, m.p99, m.cpu_us
        );
    };
    line("(t0) HTTP → broker → trigger → HTTP sink:   ", &t0);
    line("(t1) HTTPS → broker → trigger → HTTP sink:  ", &t1);
    line("(t2) HTTPS → broker → trigger → HTTPS sink: ", &t2);
    line("(t3) HTTP, OIDC on (token checked, token sent):", &t3);
    anyhow::ensure!(
        t0.accepted > 0 && t1.accepted > 0 && t2.accepted > 0 && t3.accepted > 0,
        "the TLS or OIDC scenarios accepted nothing"
    );
    Ok(())
}

/// A second knit for (t3): `authentication-oidc` on, Broker `plain` (the ingress checks each
/// request's token) and its Trigger to `sink` with an audience (each delivery carries a
/// token); and a token the Broker accepts (a ServiceAccount of its namespace, the default
/// authorization mode's rule).
async fn oidc_knit(sink: SocketAddr) -> Result<(Knit, String, tempfile::TempDir)> {
    let manifests = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: config-features, namespace: knative-eventing}}\ndata: {{authentication-oidc: enabled}}\n---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {{name: plain, namespace: default}}\n---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: plain, namespace: default}}\nspec:\n  broker: plain\n  filter: {{attributes: {{type: bench.event}}}}\n  subscriber: {{uri: 'http://{sink}/', audience: bench-sink}}\n"
    );
    let state = tempfile::tempdir()?;
    let state_dir = state.path().to_string_lossy().into_owned();
    let knit = Knit::start(&manifests, &["--state-dir", &state_dir])?;
    knit.wait_ready("triggers", &["plain"]).await?;
    let broker = knit.object("brokers", "plain").await?;
    let audience = broker["status"]["address"]["audience"]
        .as_str()
        .context("the Broker shows no audience with OIDC on")?
        .to_string();
    let token = knit
        .oidc_token("system:serviceaccount:default:bench", &audience)
        .await?;
    Ok((knit, token, state))
}
