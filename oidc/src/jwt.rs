//! Compact JWS (RFC 7515) with ES256: header and claims as base64url JSON, the signature the
//! 64-byte `r || s` that ring's fixed-length ECDSA writes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A JWT's header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Always `ES256` here.
    pub alg: String,
    /// `JWT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The signing key's id in the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// The claims Knit writes and checks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Issuer: Knit's admin URL.
    pub iss: String,
    /// The sender, e.g. `system:serviceaccount:default:t-oidc-eventing.knative.dev-trigger`.
    pub sub: String,
    /// The receivers the token is for (a string or a list on the wire).
    #[serde(with = "audiences")]
    pub aud: Vec<String>,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Issued at (unix seconds; 0 when another issuer leaves it out).
    #[serde(default)]
    pub iat: i64,
    /// Not before (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

mod audiences {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub(super) fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => s.serialize_str(one),
            many => s.collect_seq(many),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        })
    }
}

/// `header.claims`, the text that is signed.
pub(crate) fn signing_input(header: &Header, claims: &Claims) -> Result<String> {
    let h = serde_json::to_vec(header).map_err(|_| Error::Malformed("header"))?;
    let c = serde_json::to_vec(claims).map_err(|_| Error::Malformed("claims"))?;
    Ok(format!("{}.{}", B64.encode(h), B64.encode(c)))
}

/// A token split into its parts: the header, the claims, the signed text and the signature.
pub(crate) struct Parts {
    pub(crate) header: Header,
    pub(crate) claims: Claims,
    pub(crate) signed: String,
    pub(crate) signature: Vec<u8>,
}

/// Split and decode `token` (nothing is verified).
pub(crate) fn split(token: &str) -> Result<Parts> {
    let mut it = token.trim().split('.');
    let (Some(h), Some(c), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(Error::Malformed("not three dot-separated parts"));
    };
    let header_bytes = B64
        .decode(h)
        .map_err(|_| Error::Malformed("header is not base64url"))?;
    let claim_bytes = B64
        .decode(c)
        .map_err(|_| Error::Malformed("claims are not base64url"))?;
    let signature = B64
        .decode(s)
        .map_err(|_| Error::Malformed("signature is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| Error::Malformed("header is not JSON"))?;
    let claims: Claims = serde_json::from_slice(&claim_bytes)
        .map_err(|_| Error::Malformed("claims lack iss, sub, aud, exp or iat"))?;
    Ok(Parts {
        header,
        claims,
        signed: format!("{h}.{c}"),
        signature,
    })
}

/// base64url without padding, as JOSE writes binary values.
pub(crate) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The bytes of base64url `text` (padding tolerated, as some JWKS writers add it).
pub(crate) fn unb64(text: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    B64.decode(text.trim_end_matches('='))
}

/// How far `exp` and `nbf` may be off (clock skew between issuer and receiver).
pub const LEEWAY_SECS: i64 = 60;

/// Check `c` as a receiver with `audience` does at `now`: `iss` is `issuer` (or, for another
/// issuer, one of the names it goes by), not expired nor not yet valid (with
/// [`LEEWAY_SECS`]), `aud` containing `audience`.
pub(crate) fn check(c: &Claims, issuers: &[&str], audience: &str, now: i64) -> Result<()> {
    let iss = c.iss.trim_end_matches('/');
    if !issuers.contains(&iss) {
        return Err(Error::Issuer {
            got: c.iss.clone(),
            want: issuers.first().copied().unwrap_or_default().to_string(),
        });
    }
    if c.exp.saturating_add(LEEWAY_SECS) < now
        || c.nbf.is_some_and(|n| n > now.saturating_add(LEEWAY_SECS))
    {
        return Err(Error::Expired);
    }
    if !c.aud.iter().any(|a| a == audience) {
        return Err(Error::Audience {
            got: c.aud.clone(),
            want: audience.to_string(),
        });
    }
    Ok(())
}
