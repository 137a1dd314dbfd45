//! knit-tls: transport encryption for Knit's listeners and the words for what went wrong on
//! the client side. It owns the server certificate ([`CertStore`]: a PEM pair read from files
//! and read again when they change, as cert-manager rotates them), the rustls server settings
//! ([`server_config`]: the ring provider, TLS 1.3 by default as Knative 1.22, TLS 1.2 on
//! request), a listener that runs TLS handshakes beside the accept loop ([`TlsListener`]), the
//! [`Accept`] seam the ingress, the gateway and the admin API serve on (plain TCP or TLS alike),
//! CA bundles ([`read_ca_file`]) and the reason a peer was refused ([`refusal`]).
//!
//! It must not know about events, Knative kinds or HTTP: it hands out byte streams.

mod cert;
mod listener;
mod refusal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cert::{CertStore, Reload};
pub use listener::{Accept, HANDSHAKE_TIMEOUT, TlsListener};
pub use refusal::refusal;

/// Errors of TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate, key or CA file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM certificate (or a broken one).
    #[error("{}: no PEM certificate in it{}", .path.display(), .detail)]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said, if anything (with a leading `: `).
        detail: String,
    },
    /// A key file holds no PEM private key.
    #[error("{}: no PEM private key in it: {source}", .path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The key is of a type rustls cannot sign with, or does not belong to the certificate.
    #[error("{} and {} do not make a certificate and its key: {source}", .cert.display(), .key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the settings.
    #[error("cannot configure TLS: {0}")]
    Config(#[source] rustls::Error),
}

/// Result with the TLS [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The lowest TLS version Knit speaks, on its listeners and to https destinations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    V1_2,
    /// TLS 1.3 only (Knative 1.22's default).
    #[default]
    V1_3,
}

impl TlsVersion {
    /// The protocol versions rustls may negotiate.
    pub fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersion::V1_2 => &BOTH,
            TlsVersion::V1_3 => &TLS13,
        }
    }
}

/// The ring crypto provider (the workspace's one provider).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server settings answering with `store`'s current certificate: no client certificates (as
/// Knative: sender identity is OIDC's job), HTTP/1.1 offered by ALPN.
pub fn server_config(store: Arc<CertStore>, min: TlsVersion) -> Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(min.versions())
        .map_err(Error::Config)?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    config.session_storage = store.sessions();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The PEM text of a CA bundle file, checked to hold at least one certificate.
pub fn read_ca_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    let certs = cert::certificates(path, &bytes)?;
    tracing::debug!(path = %path.display(), certificates = certs.len(), "CA bundle read");
    String::from_utf8(bytes).map_err(|_| Error::NoCertificate {
        path: path.into(),
        detail: ": not UTF-8 text".into(),
    })
}
