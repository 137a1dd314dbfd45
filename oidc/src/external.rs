//! Another OIDC issuer whose tokens Knit's ingresses accept (`knit run --oidc-issuer`, e.g. a
//! Kubernetes cluster's service-account issuer): its discovery document and JWKS, fetched
//! through a [`Fetch`] the caller provides (this crate has no HTTP client), cached, fetched
//! again when a token names a `kid` the cached JWKS lacks (at most once per
//! [`DEMAND_INTERVAL`], concurrent demands sharing one fetch) and whenever the caller calls
//! [`Issuer::refresh`] (periodically).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::Deserialize;

use crate::jwks::KeySet;
use crate::jwt::{self, Claims, Parts};
use crate::{Error, Result};

/// A token naming an unknown `kid` (or arriving before the keys loaded) fetches the JWKS
/// again at most this often per issuer.
pub const DEMAND_INTERVAL: Duration = Duration::from_secs(10);

/// Most verified tokens kept per issuer; emptied when full.
const VERIFIED_MAX: usize = 4096;

/// What [`Fetch::get`] returns: the body, or why not.
pub type Fetched<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<Vec<u8>, String>> + Send + 'a>>;

/// GETs a URL for an [`Issuer`]; the implementation bounds the time and the body's size.
pub trait Fetch: Send + Sync {
    /// The body of a 200 answer to GET `url`, or why there is none.
    fn get<'a>(&'a self, url: &'a str) -> Fetched<'a>;
}

/// What was loaded last.
#[derive(Default)]
struct Loaded {
    /// The `issuer` of the discovery document (when it is not the configured URL).
    discovered: Option<String>,
    keys: Option<Arc<KeySet>>,
    /// Why the last load failed, while no keys are loaded.
    failure: Option<String>,
}

/// An external issuer and what Knit knows of it.
pub struct Issuer {
    /// The configured URL (no trailing `/`).
    url: String,
    /// A JWKS URL given instead of discovery.
    jwks_uri: Option<String>,
    fetch: Arc<dyn Fetch>,
    loaded: RwLock<Loaded>,
    /// Successful loads so far (a waiter whose number moved on need not fetch again).
    loads: AtomicU64,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    /// When a token last made Knit fetch (rate limit).
    demanded: Mutex<Option<Instant>>,
    verified: Mutex<HashMap<String, Claims>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.url)
            .field("jwks_uri", &self.jwks_uri)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Issuer {
    /// The issuer at `url`, its keys at `jwks_uri` or else at the `jwks_uri` of its discovery
    /// document (`<url>/.well-known/openid-configuration`). Nothing is fetched yet.
    pub fn new(url: &str, jwks_uri: Option<&str>, fetch: Arc<dyn Fetch>) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            jwks_uri: jwks_uri.map(str::to_string),
            fetch,
            loaded: RwLock::new(Loaded::default()),
            loads: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
            demanded: Mutex::new(None),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The configured URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether a token's `iss` names this issuer: the configured URL, or the `issuer` its
    /// discovery document gave (Knative accepts that one when it differs).
    pub fn names(&self, iss: &str) -> bool {
        let iss = iss.trim_end_matches('/');
        iss == self.url || self.loaded.read().discovered.as_deref() == Some(iss)
    }

    /// Whether the keys have been loaded (at least once).
    pub fn is_loaded(&self) -> bool {
        self.loaded.read().keys.is_some()
    }

    /// Fetch the discovery document (unless a JWKS URL was given) and the JWKS now, replacing
    /// the cached keys; while other callers fetch, wait for theirs instead.
    pub async fn refresh(&self) -> Result<()> {
        let seen = self.loads.load(Ordering::Acquire);
        let _one = self.fetching.lock().await;
        if self.loads.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        self.load().await
    }

    /// Fetch again because a token needs it, unless keys were loaded since `seen` or a token
    /// made Knit fetch less than [`DEMAND_INTERVAL`] ago.
    async fn on_demand(&self, seen: u64) {
        let _one = self.fetching.lock().await;
        if self.loads.load(Ordering::Acquire) != seen {
            return;
        }
        {
            let mut last = self.demanded.lock();
            if last.is_some_and(|t| t.elapsed() < DEMAND_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Err(e) = self.load().await {
            tracing::warn!(issuer = %self.url, error = %e, "OIDC issuer: cannot load its keys");
        }
    }

    /// Load for an `iss` no configured issuer claims, if this issuer's name is not known yet
    /// (its discovery document may name another issuer).
    pub(crate) async fn discover_if_unknown(&self) {
        if !self.is_loaded() {
            self.on_demand(self.loads.load(Ordering::Acquire)).await;
        }
    }

    async fn load(&self) -> Result<()> {
        let result = self.fetch_keys().await;
        let mut loaded = self.loaded.write();
        match result {
            Ok((discovered, keys)) => {
                let changed = loaded.keys.as_deref() != Some(&keys);
                if changed {
                    tracing::info!(issuer = %self.url, keys = keys.len(), discovered = ?discovered, "OIDC issuer: keys loaded");
                    self.verified.lock().clear();
                }
                *loaded = Loaded {
                    discovered,
                    keys: Some(Arc::new(keys)),
                    failure: None,
                };
                self.loads.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                loaded.failure = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The discovered issuer (if it is not the URL) and the keys.
    async fn fetch_keys(&self) -> Result<(Option<String>, KeySet)> {
        let fetch = |url: String| async move {
            self.fetch
                .get(&url)
                .await
                .map_err(|why| Error::Fetch { url, why })
        };
        let (discovered, jwks_uri) = match &self.jwks_uri {
            Some(uri) => (None, uri.clone()),
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.url);
                let body = fetch(url.clone()).await?;
                let d: Discovery = serde_json::from_slice(&body).map_err(|e| Error::Fetch {
                    url,
                    why: format!("not a discovery document with issuer and jwks_uri: {e}"),
                })?;
                let issuer = d.issuer.trim_end_matches('/').to_string();
                ((issuer != self.url).then_some(issuer), d.jwks_uri)
            }
        };
        let keys = KeySet::parse(&fetch(jwks_uri.clone()).await?)?;
        if keys.is_empty() {
            return Err(Error::Jwks(format!("{jwks_uri} has no usable signing key")));
        }
        Ok((discovered, keys))
    }

    /// The claims of `token` if its signature was verified before.
    pub(crate) fn cached(&self, token: &str) -> Option<Claims> {
        self.verified.lock().get(token).cloned()
    }

    /// Check `c` for `audience` at `now`.
    pub(crate) fn check(&self, c: &Claims, audience: &str, now: i64) -> Result<()> {
        let discovered = self.loaded.read().discovered.clone();
        let names: Vec<&str> = std::iter::once(self.url.as_str())
            .chain(discovered.as_deref())
            .collect();
        jwt::check(c, &names, audience, now)
    }

    /// Verify `token` (split into `parts`) for `audience` at `now`: its signature by a key of
    /// the JWKS (fetched again, within the rate limit, when its `kid` is unknown), then its
    /// claims.
    pub(crate) async fn verify(
        &self,
        token: &str,
        parts: Parts,
        audience: &str,
        now: i64,
    ) -> Result<Claims> {
        let (seen, keys) = self.keys();
        let needs_fetch = match (&keys, &parts.header.kid) {
            (None, _) => true,
            (Some(k), Some(kid)) => !k.has_kid(kid),
            (Some(_), None) => false,
        };
        let keys = if needs_fetch {
            self.on_demand(seen).await;
            self.keys().1
        } else {
            keys
        };
        let Some(keys) = keys else {
            let why = self.loaded.read().failure.clone();
            return Err(Error::NoKeys {
                issuer: self.url.clone(),
                why: why.unwrap_or_else(|| "not fetched yet".into()),
            });
        };
        let c = keys.verify_parts(parts)?;
        {
            let mut verified = self.verified.lock();
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
            verified.insert(token.to_string(), c.clone());
        }
        self.check(&c, audience, now)?;
        Ok(c)
    }

    fn keys(&self) -> (u64, Option<Arc<KeySet>>) {
        let loaded = self.loaded.read();
        (self.loads.load(Ordering::Acquire), loaded.keys.clone())
    }
}
