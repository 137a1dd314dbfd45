//! The server certificate: a PEM certificate chain and its private key, read from two files and
//! read again when they change. cert-manager (or anyone) replaces the files; handshakes from
//! then on get the new pair, connections already open keep theirs. A new pair that does not
//! load (half written, a key of another certificate, not PEM) is refused and logged once; the
//! last good pair keeps serving. Sessions resumed from before a reload would skip the new
//! certificate, so a reload forgets them: every connection after it sees the new pair.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;

use crate::{Error, Result};

/// What [`CertStore::reload`] did.
#[derive(Debug)]
pub enum Reload {
    /// The files hold what was last looked at.
    Unchanged,
    /// A new pair serves from now on.
    Loaded,
    /// The files changed but do not load; the previous pair keeps serving.
    Kept(Error),
}

/// The bytes of the files as last looked at, and the last refusal logged.
#[derive(Default)]
struct Seen {
    cert: Vec<u8>,
    key: Vec<u8>,
    refusal: Option<String>,
}

/// The serving certificate, swapped in place when its files change.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<Seen>,
    sessions: Arc<Sessions>,
}

/// Sessions kept for resumption (rustls' memory cache), forgotten when the pair changes.
#[derive(Debug)]
pub(crate) struct Sessions(RwLock<Arc<ServerSessionMemoryCache>>);

/// Sessions kept per listener set.
const SESSIONS: usize = 1024;

impl Sessions {
    fn new() -> Self {
        Self(RwLock::new(ServerSessionMemoryCache::new(SESSIONS)))
    }

    fn forget(&self) {
        *self.0.write() = ServerSessionMemoryCache::new(SESSIONS);
    }
}

impl StoresServerSessions for Sessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.read().put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.read().get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.read().take(key)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// Every certificate of a PEM text (at least one).
pub(crate) fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(Error::NoCertificate {
            path: path.into(),
            detail: String::new(),
        }),
        Err(e) => Err(Error::NoCertificate {
            path: path.into(),
            detail: format!(": {e}"),
        }),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })
}

impl CertStore {
    /// Load the pair from `cert` (PEM chain, leaf first) and `key` (PEM private key: PKCS#8,
    /// PKCS#1 or SEC1); an error when they do not make a pair.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>> {
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let pair = Self::parse(cert, key, &cert_pem, &key_pem)?;
        Ok(Arc::new(Self {
            cert_path: cert.into(),
            key_path: key.into(),
            current: RwLock::new(Arc::new(pair)),
            seen: Mutex::new(Seen {
                cert: cert_pem,
                key: key_pem,
                refusal: None,
            }),
            sessions: Arc::new(Sessions::new()),
        }))
    }

    fn parse(cert: &Path, key: &Path, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey> {
        let chain = certificates(cert, cert_pem)?;
        let der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| Error::NoKey {
            path: key.into(),
            source,
        })?;
        CertifiedKey::from_der(chain, der, &crate::provider()).map_err(|source| Error::Pair {
            cert: cert.into(),
            key: key.into(),
            source,
        })
    }

    /// The session cache resumption uses (forgotten on reload).
    pub(crate) fn sessions(&self) -> Arc<Sessions> {
        self.sessions.clone()
    }

    /// The pair handshakes get now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().clone()
    }

    /// Read the files again; swap in their pair if they changed and load. A refusal is logged
    /// once per distinct content (a rotation written in two steps is refused, then loads).
    pub fn reload(&self) -> Reload {
        let files = read(&self.cert_path).and_then(|c| Ok((c, read(&self.key_path)?)));
        let mut seen = self.seen.lock();
        let (cert_pem, key_pem) = match files {
            Ok(f) => f,
            Err(e) => return self.refused(&mut seen, e),
        };
        if seen.cert == cert_pem && seen.key == key_pem {
            return Reload::Unchanged;
        }
        let parsed = Self::parse(&self.cert_path, &self.key_path, &cert_pem, &key_pem);
        seen.cert = cert_pem;
        seen.key = key_pem;
        match parsed {
            Ok(pair) => {
                *self.current.write() = Arc::new(pair);
                self.sessions.forget();
                seen.refusal = None;
                tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                Reload::Loaded
            }
            Err(e) => self.refused(&mut seen, e),
        }
    }

    fn refused(&self, seen: &mut Seen, e: Error) -> Reload {
        let text = e.to_string();
        if seen.refusal.as_deref() != Some(text.as_str()) {
            tracing::warn!(cert = %self.cert_path.display(), error = %text, "new TLS certificate not loaded; the previous one keeps serving");
            seen.refusal = Some(text);
        }
        Reload::Kept(e)
    }

    /// Look at the files every `every` for as long as the store is in use (a task on the
    /// current Tokio runtime; the reads are two small files).
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || store.reload()).await;
            }
        })
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests;
