//! The issuers an ingress trusts: Knit's own ([`Signer`]) and the external ones
//! ([`Issuer`]), a token going to the one its `iss` names.

use std::sync::Arc;

use crate::external::Issuer;
use crate::jwt::{self, Claims};
use crate::{Error, Result, Signer};

/// Knit's own issuer and the external issuers whose tokens are accepted too.
#[derive(Debug)]
pub struct Trust {
    own: Arc<Signer>,
    external: Vec<Arc<Issuer>>,
}

impl Trust {
    /// Tokens of `own` and of `external`.
    pub fn new(own: Arc<Signer>, external: Vec<Arc<Issuer>>) -> Self {
        Self { own, external }
    }

    /// Knit's own issuer.
    pub fn own(&self) -> &Arc<Signer> {
        &self.own
    }

    /// The external issuers.
    pub fn external(&self) -> &[Arc<Issuer>] {
        &self.external
    }

    /// Verify `token` as a receiver with `audience` does at `now` (unix seconds): a token of
    /// Knit's own issuer as [`Signer::verify`] does, one whose `iss` names an external issuer
    /// by that issuer's keys (ES256, ES384, RS256/384/512, PS256/384/512) with the same claim
    /// checks, any other [`Error::Untrusted`].
    pub async fn verify(&self, token: &str, audience: &str, now: i64) -> Result<Claims> {
        if self.external.is_empty() {
            return self.own.verify(token, audience, now);
        }
        if let Some(c) = self.own.cached(token) {
            jwt::check(&c, &[self.own.issuer()], audience, now)?;
            return Ok(c);
        }
        for issuer in &self.external {
            if let Some(c) = issuer.cached(token) {
                issuer.check(&c, audience, now)?;
                return Ok(c);
            }
        }
        let parts = jwt::split(token)?;
        let iss = parts.claims.iss.trim_end_matches('/').to_string();
        if iss == self.own.issuer() {
            return self.own.verify(token, audience, now);
        }
        if let Some(issuer) = self.issuer_named(&iss) {
            return issuer.verify(token, parts, audience, now).await;
        }
        // An issuer not loaded yet may go by the name its discovery document gives.
        for issuer in &self.external {
            issuer.discover_if_unknown().await;
        }
        match self.issuer_named(&iss) {
            Some(issuer) => issuer.verify(token, parts, audience, now).await,
            None => Err(Error::Untrusted(parts.claims.iss)),
        }
    }

    fn issuer_named(&self, iss: &str) -> Option<Arc<Issuer>> {
        self.external.iter().find(|i| i.names(iss)).cloned()
    }
}
