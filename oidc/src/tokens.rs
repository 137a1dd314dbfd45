//! Tokens Knit sends, cached per (subject, audience) until five minutes before they expire
//! (Knative's cache, security.md §2.4).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Result, Signer, now_secs};

/// How long a token Knit mints is valid (Knative's TokenRequest asks for an hour).
pub const TOKEN_LIFETIME_SECS: i64 = 3600;
/// A cached token is replaced once it has less than this left.
const RENEW_BEFORE_SECS: i64 = 300;
/// Most cached tokens; past that the cache starts over.
const MAX_CACHED: usize = 10_000;

/// Cached tokens by (subject, audience), with their expiry (unix seconds).
type Cache = HashMap<(String, String), (Arc<str>, i64)>;

/// Mints and caches the tokens of senders.
#[derive(Debug)]
pub struct Tokens {
    signer: Arc<Signer>,
    cache: Mutex<Cache>,
}

impl Tokens {
    /// Tokens signed by `signer`.
    pub fn new(signer: Arc<Signer>) -> Self {
        Self {
            signer,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The signer.
    pub fn signer(&self) -> &Arc<Signer> {
        &self.signer
    }

    /// A token for `subject` to send to `audience`: the cached one while it has more than five
    /// minutes left, else a new one.
    pub fn token(&self, subject: &str, audience: &str) -> Result<Arc<str>> {
        let now = now_secs();
        let key = (subject.to_string(), audience.to_string());
        if let Some((t, exp)) = self.cache.lock().get(&key)
            && *exp - RENEW_BEFORE_SECS > now
        {
            return Ok(t.clone());
        }
        let token: Arc<str> =
            Arc::from(
                self.signer
                    .mint(subject, audience, now, TOKEN_LIFETIME_SECS)?,
            );
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, (token.clone(), now + TOKEN_LIFETIME_SECS));
        Ok(token)
    }
}
