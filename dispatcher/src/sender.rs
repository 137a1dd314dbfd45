//! One HTTP POST with a timeout and a bounded response body: the only place egress traffic
//! leaves Knit.
//!
//! Plain `http://` destinations (the hot path: sinks, replies into the ingress) go through the
//! worker's own connections ([`crate::http1`]); the benchmark showed reqwest re-parsing every
//! URL (with IDNA) and cloning its service stack per request, and hyper-util's pool handing
//! every request to a connection task and back. `https://` destinations go through reqwest
//! with rustls, verified against the system's roots, the [`Trust`] `knit run` gives
//! (`--ca-file`) and the destination's own `CACerts`: one client per distinct `CACerts`,
//! cached. A refused certificate fails the attempt with the reason in words
//! ([`knit_tls::refusal`]), retried and dead-lettered as any transport error. Their names are
//! resolved as the plain path dials them ([`LocalHosts`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use parking_lot::RwLock;

use crate::binding::Lines;
use crate::egress::Target;
use crate::hosts::{Dial, LocalHosts};

/// Largest response body read from a subscriber (a reply event); longer bodies fail the attempt.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Why a POST got no answer.
#[derive(Debug, thiserror::Error)]
enum PostError {
    /// On a worker's own connection (`http://`).
    #[error(transparent)]
    Plain(#[from] crate::http1::Error),
    /// Through reqwest (`https://`); the text is the TLS refusal when there is one, else the
    /// whole chain of causes.
    #[error("{}", tls_error(.0))]
    Tls(#[source] reqwest::Error),
    /// No client for the destination's `CACerts` (not PEM certificates).
    #[error("TLS: {0}")]
    Trust(#[source] TrustError),
    /// The response body is longer than [`MAX_RESPONSE_BYTES`].
    #[error("response body too large")]
    TooLarge,
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// The destination answered.
    Response {
        /// HTTP status.
        status: u16,
        /// Response headers.
        headers: HeaderMap,
        /// Response body (at most [`MAX_RESPONSE_BYTES`]).
        body: Bytes,
    },
    /// No answer: connection error, timeout, or an oversized body.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// A reusable timer for attempt timeouts, one per worker. Tokio extends a registered timer's
/// deadline without touching its timer wheel, so resetting this to `now + timeout` before each
/// attempt is far cheaper than a fresh `tokio::time::timeout` per request (measured: about
/// 10% of the data plane's CPU).
pub struct Deadline {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    /// A timer, not yet armed.
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
        }
    }

    /// Run `fut`, giving up after `timeout`.
    pub async fn run<F: std::future::Future>(
        &mut self,
        timeout: Duration,
        fut: F,
    ) -> Option<F::Output> {
        self.sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + timeout);
        tokio::select! {
            biased;
            out = fut => Some(out),
            () = &mut self.sleep => None,
        }
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Self::new()
    }
}

/// What one worker keeps between deliveries: its attempt timer and its own keep-alive
/// connections to plain `http://` destinations.
#[derive(Default)]
pub struct Session {
    deadline: Deadline,
    conns: crate::http1::Connections,
}

impl Session {
    /// A fresh session.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The dispatcher's HTTP clients: plain `http://` goes through each worker's own connections
/// ([`Session`]), `https://` through shared reqwest clients with rustls. A new plain
/// connection goes where the [`LocalHosts`] say (the hosts this process serves; by default
/// none). Clones share them.
#[derive(Clone)]
pub struct Sender {
    tls: Arc<TlsClients>,
    hosts: Arc<RwLock<LocalHosts>>,
    tokens: Arc<RwLock<Option<Arc<knit_oidc::Tokens>>>>,
}

/// What every `https://` destination is verified against besides the system's roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// PEM CA certificates trusted for every destination (`knit run --ca-file`).
    pub ca_certs: Option<String>,
    /// The lowest TLS version spoken (1.3 unless asked, as Knative 1.22).
    pub min_version: knit_tls::TlsVersion,
}

/// A client, or why it could not be built.
type Built = Result<reqwest::Client, TrustError>;

/// Why no `https://` client could be built for a destination. The reqwest error is kept (shared,
/// as a failed build is cached like a client) and its whole chain is in the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrustError {
    /// `--ca-file` holds something that is not PEM certificates.
    #[error("the --ca-file certificates: {}", error_chain(&**.0))]
    CaFile(Arc<reqwest::Error>),
    /// The destination's `CACerts` are not PEM certificates.
    #[error("the destination's CACerts: {}", error_chain(&**.0))]
    CaCerts(Arc<reqwest::Error>),
    /// The destination's `CACerts` hold no certificate at all.
    #[error("the destination's CACerts hold no PEM certificate")]
    NoCertificate,
    /// reqwest refused the client (its TLS backend could not be set up).
    #[error("{}", error_chain(&**.0))]
    Client(Arc<reqwest::Error>),
}

/// Most distinct `CACerts` with a client of their own; past that the cache starts over.
const MAX_TLS_CLIENTS: usize = 64;

/// The reqwest clients for `https://`, one per destination `CACerts` (`None`: none of its own),
/// built when first needed.
struct TlsClients {
    trust: RwLock<Trust>,
    clients: RwLock<HashMap<Option<Arc<str>>, Built>>,
    hosts: Arc<RwLock<LocalHosts>>,
}

/// Names of `https://` destinations resolved as the plain path dials them: hosts this process
/// serves and names under `localhost` on loopback, cluster-local names it does not serve
/// refused ([`crate::hosts::NotServed`]), anything else by the system. The URL's port is kept.
struct HostsResolver(Arc<RwLock<LocalHosts>>);

impl reqwest::dns::Resolve for HostsResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let local = self.0.read().dial(name.as_str(), 0).map(|d| match d {
            Dial::Addr(a) => Some(a.ip()),
            Dial::Name(..) => None,
        });
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = match local {
                Err(not_served) => return Err(Box::new(not_served) as _),
                Ok(Some(ip)) => vec![std::net::SocketAddr::new(ip, 0)],
                Ok(None) => tokio::net::lookup_host((name.as_str(), 0)).await?.collect(),
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl TlsClients {
    /// The client for destinations with `ca_certs`, or why there is none.
    fn client(&self, ca_certs: Option<&Arc<str>>) -> Result<reqwest::Client, PostError> {
        let key = ca_certs.cloned();
        if let Some(c) = self.clients.read().get(&key) {
            return c.clone().map_err(PostError::Trust);
        }
        let built = build_tls_client(&self.trust.read(), ca_certs.map(|c| &**c), &self.hosts);
        let mut clients = self.clients.write();
        if clients.len() >= MAX_TLS_CLIENTS {
            clients.clear();
        }
        clients.insert(key, built.clone());
        built.map_err(PostError::Trust)
    }
}

/// A reqwest client trusting the system's roots, `trust` and `ca_certs`, resolving names by
/// `hosts`; redirects are not followed (3xx is a failure).
fn build_tls_client(
    trust: &Trust,
    ca_certs: Option<&str>,
    hosts: &Arc<RwLock<LocalHosts>>,
) -> Built {
    let mut roots = Vec::new();
    if let Some(pem) = &trust.ca_certs {
        roots.extend(
            reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| TrustError::CaFile(Arc::new(e)))?,
        );
    }
    if let Some(pem) = ca_certs {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| TrustError::CaCerts(Arc::new(e)))?;
        if certs.is_empty() {
            return Err(TrustError::NoCertificate);
        }
        roots.extend(certs);
    }
    let min = match trust.min_version {
        knit_tls::TlsVersion::V1_2 => reqwest::tls::Version::TLS_1_2,
        knit_tls::TlsVersion::V1_3 => reqwest::tls::Version::TLS_1_3,
    };
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .tls_version_min(min)
        .tls_certs_merge(roots)
        .dns_resolver(Arc::new(HostsResolver(hosts.clone())))
        .build()
        .map_err(|e| TrustError::Client(Arc::new(e)))
}

/// Install the ring crypto provider for rustls if none is installed (reqwest needs one).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Sender {
    /// The clients, trusting the system's roots for `https://`; redirects are not followed
    /// (3xx is a failure).
    pub fn new() -> crate::Result<Self> {
        install_crypto_provider();
        let hosts: Arc<RwLock<LocalHosts>> = Arc::default();
        let tls = TlsClients {
            trust: RwLock::new(Trust::default()),
            clients: RwLock::new(HashMap::new()),
            hosts: hosts.clone(),
        };
        // Built now, so that a client that cannot be built fails here, not in a delivery.
        if let Err(PostError::Trust(e)) = tls.client(None) {
            return Err(crate::Error::Trust(e));
        }
        Ok(Self {
            tls: Arc::new(tls),
            hosts,
            tokens: Arc::default(),
        })
    }

    /// Verify `https://` destinations against `trust` from now on (connections already open
    /// stay). An error when its CA certificates are not PEM.
    pub fn trust(&self, trust: Trust) -> crate::Result<()> {
        let client =
            build_tls_client(&trust, None, &self.tls.hosts).map_err(crate::Error::Trust)?;
        *self.tls.trust.write() = trust;
        let mut clients = self.tls.clients.write();
        clients.clear();
        clients.insert(None, Ok(client));
        Ok(())
    }

    /// Serve `hosts` from now on: connections opened from now on go where they say (the
    /// Contract's hosts, at this process's listeners). Connections already open stay.
    pub fn serve_hosts(&self, hosts: LocalHosts) {
        *self.hosts.write() = hosts;
    }

    /// Sign the tokens of destinations with a [`crate::egress::TargetAuth`] with `tokens`
    /// from now on (OIDC).
    pub fn sign_with(&self, tokens: Arc<knit_oidc::Tokens>) {
        *self.tokens.write() = Some(tokens);
    }

    /// A token for `subject` to send to `audience` (OIDC), for senders outside the dispatcher
    /// (a ContainerSource's processes); `Err` when no token can be had.
    pub fn token(&self, subject: &str, audience: &str) -> Result<Arc<str>, String> {
        let Some(tokens) = self.tokens.read().clone() else {
            return Err("OIDC: no issuer to sign a token with".into());
        };
        tokens
            .token(subject, audience)
            .map_err(|e| format!("OIDC: {e}"))
    }

    /// `headers` with `Authorization: Bearer <token>` when `target` wants a token (OIDC);
    /// `Err` when no token can be had.
    fn authorized<'h>(
        &self,
        target: &Target,
        headers: &'h Lines,
    ) -> Result<std::borrow::Cow<'h, Lines>, String> {
        let Some(auth) = &target.auth else {
            return Ok(std::borrow::Cow::Borrowed(headers));
        };
        let token = self.token(&auth.subject, &auth.audience)?;
        let mut with = headers.clone();
        crate::binding::HeaderSink::put(&mut with, "", "authorization", &format!("Bearer {token}"));
        Ok(std::borrow::Cow::Owned(with))
    }

    /// POST `body` to `target` with `headers`, giving up after `timeout`, on `session`'s
    /// connections.
    pub async fn post(
        &self,
        target: &Target,
        headers: &Lines,
        body: &Bytes,
        timeout: Duration,
        session: &mut Session,
    ) -> Attempt {
        let headers = match self.authorized(target, headers) {
            Ok(h) => h,
            Err(error) => return Attempt::Failed { error },
        };
        let headers = &*headers;
        let Session { deadline, conns } = session;
        let result = match &target.uri {
            Some(uri) => {
                let post = conns.post(uri, headers, body, MAX_RESPONSE_BYTES, &self.hosts);
                let result = deadline.run(timeout, post).await;
                result.map(|r| r.map_err(PostError::Plain))
            }
            None => {
                let post = self.post_tls(target, headers.to_header_map(), body.clone());
                deadline.run(timeout, post).await
            }
        };
        match result {
            Some(Ok((status, headers, body))) => Attempt::Response {
                status,
                headers,
                body,
            },
            Some(Err(error)) => Attempt::Failed {
                error: error.to_string(),
            },
            None => Attempt::Failed {
                error: format!("timed out after {timeout:?}"),
            },
        }
    }

    async fn post_tls(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(u16, HeaderMap, Bytes), PostError> {
        let mut resp = self
            .tls
            .client(target.ca_certs.as_ref())?
            .post(&target.url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(PostError::Tls)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(PostError::Tls)? {
            if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(PostError::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok((status, headers, out.freeze()))
    }
}

/// A reqwest error in words: the TLS refusal when there is one, e.g. `TLS: certificate not
/// trusted (UnknownIssuer)`, else the chain of causes.
fn tls_error(e: &reqwest::Error) -> String {
    knit_tls::refusal(e).unwrap_or_else(|| error_chain(e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
