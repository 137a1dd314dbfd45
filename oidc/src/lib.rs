//! Knit's OIDC sender identity (Knative's `authentication-oidc`, security.md §2).
//!
//! Standalone, Knit is its own issuer: a P-256 key ([`Signer`]) kept in the state folder signs
//! ES256 JWTs, the JWKS and discovery document ([`Signer::jwks`], [`discovery`]) let any
//! receiver verify them, [`Tokens`] caches one token per (subject, audience) until shortly
//! before it expires, and [`Verifier`] checks a bearer token as Knative's receivers do
//! (signature, issuer, expiry, audience). JWTs are written on top of ring, base64 and
//! serde_json: Knit signs ES256 only.
//!
//! Tokens of other issuers (`knit run --oidc-issuer`, e.g. a Kubernetes cluster's
//! service-account issuer) are accepted too: an [`Issuer`] keeps that issuer's JWKS
//! ([`KeySet`]: RS256/384/512, PS256/384/512, ES256, ES384; never `none` or HS*), fetched
//! again when a token names an unknown `kid`, and [`Trust`] sends each token to the issuer
//! its `iss` names. This crate has no HTTP client: the caller fetches discovery documents
//! and JWKS through a [`Fetch`] of its own (the `knit` binary's uses reqwest).

mod external;
mod jwks;
mod jwt;
mod key;
mod tokens;
mod trust;

pub use external::{DEMAND_INTERVAL, Fetch, Fetched, Issuer};
pub use jwks::{ALGORITHMS, KeySet};
pub use jwt::{Claims, Header, LEEWAY_SECS};
pub use key::{Signer, discovery};
pub use tokens::{TOKEN_LIFETIME_SECS, Tokens};
pub use trust::Trust;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key file cannot be read or written.
    #[error("OIDC key {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key file holds no P-256 PKCS#8 private key.
    #[error("OIDC key {path}: not a PEM PKCS#8 P-256 private key ({why})")]
    BadKey {
        /// The file.
        path: String,
        /// What ring said.
        why: String,
    },
    /// Generating or using the key failed in ring.
    #[error("OIDC signing: {0}")]
    Crypto(String),
    /// The token is not three base64url parts of JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token is signed with an algorithm that is not accepted (Knit's own tokens: ES256;
    /// others' see [`ALGORITHMS`]).
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    /// The issuer's JWKS has no key fit for the token's algorithm (and `kid`).
    #[error("the issuer has no key for algorithm {0:?}")]
    NoKeyFor(String),
    /// A JWKS that is not one, or has no usable key.
    #[error("JWKS: {0}")]
    Jwks(String),
    /// Fetching an external issuer's discovery document or JWKS failed.
    #[error("{url}: {why}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        why: String,
    },
    /// The external issuer's keys are not loaded (yet).
    #[error("the keys of issuer {issuer:?} are not loaded: {why}")]
    NoKeys {
        /// The issuer's URL.
        issuer: String,
        /// Why the last attempt failed.
        why: String,
    },
    /// The token's issuer is neither Knit's own nor a configured one.
    #[error("issuer {0:?} is not trusted (not Knit's own issuer nor an --oidc-issuer)")]
    Untrusted(String),
    /// No key with the token's `kid`.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// The token names another issuer.
    #[error("issuer {got:?} is not {want:?}")]
    Issuer {
        /// The token's `iss`.
        got: String,
        /// The expected issuer.
        want: String,
    },
    /// The token has expired (or is not valid yet).
    #[error("token expired or not yet valid")]
    Expired,
    /// The token is not meant for this receiver.
    #[error("audience {got:?} does not contain {want:?}")]
    Audience {
        /// The token's `aud`.
        got: Vec<String>,
        /// The receiver's audience.
        want: String,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Whether `subject` matches `pattern` as an EventPolicy's `from.sub` does (security.md §3.4):
/// equal case-insensitively, or, for a pattern ending in `*`, starting with the part before it
/// (case-sensitive, as Knative's prefix test).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => subject.starts_with(prefix),
        None => pattern.eq_ignore_ascii_case(subject),
    }
}

/// The subject Knit gives a sending object: `system:serviceaccount:<ns>:<name>-oidc-<group>-<kind>`,
/// lowercased, as Knative names the ServiceAccount of an OIDC sender (security.md §2.3; Knit
/// does not hash long names).
pub fn sender_subject(namespace: &str, name: &str, group: &str, kind: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}-oidc-{group}-{kind}").to_ascii_lowercase()
}

/// The audience of an addressable: `<group>/<kind>/<namespace>/<name>`, lowercased
/// (Knative's `GetAudience`).
pub fn audience(group: &str, kind: &str, namespace: &str, name: &str) -> String {
    format!("{group}/{kind}/{namespace}/{name}").to_ascii_lowercase()
}

/// The unix time now, in seconds.
pub fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_external;
