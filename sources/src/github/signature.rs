//! GitHub's delivery signatures: `X-Hub-Signature-256` (`sha256=` + hex HMAC-SHA256 of the raw
//! body keyed with the webhook secret) and, only when that header is absent, the legacy
//! `X-Hub-Signature` (`sha1=` + hex HMAC-SHA1). Comparisons are constant-time
//! ([`Mac::verify_slice`]).

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha1::Sha1;
use sha2::Sha256;

/// The SHA-256 signature header.
pub const SHA256_HEADER: &str = "x-hub-signature-256";
/// The legacy SHA-1 signature header.
pub const SHA1_HEADER: &str = "x-hub-signature";

/// Which header a verified request was signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `X-Hub-Signature-256`.
    Sha256,
    /// `X-Hub-Signature` (legacy, only without a SHA-256 header).
    Sha1,
}

/// Why a request's signature was refused; the message is the 401's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Neither header is present.
    #[error("missing signature: X-Hub-Signature-256 (or the legacy X-Hub-Signature) is required")]
    Missing,
    /// The header is not `<algorithm>=<hex>`.
    #[error("malformed {header} header: expected {prefix}<hex digest>")]
    Malformed {
        /// The header's name.
        header: &'static str,
        /// The expected prefix.
        prefix: &'static str,
    },
    /// The digest does not match the body and the secret.
    #[error("signature mismatch in {0}: the body was not signed with this source's secretToken")]
    Mismatch(&'static str),
}

/// Verify `body` against the signature headers with `secret`.
pub fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Algorithm, SignatureError> {
    if let Some(v) = headers.get(SHA256_HEADER) {
        let digest = digest_of(v, "X-Hub-Signature-256", "sha256=")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| SignatureError::Mismatch("X-Hub-Signature-256"))?;
        mac.update(body);
        return mac
            .verify_slice(&digest)
            .map(|()| Algorithm::Sha256)
            .map_err(|_| SignatureError::Mismatch("X-Hub-Signature-256"));
    }
    if let Some(v) = headers.get(SHA1_HEADER) {
        let digest = digest_of(v, "X-Hub-Signature", "sha1=")?;
        let mut mac = Hmac::<Sha1>::new_from_slice(secret)
            .map_err(|_| SignatureError::Mismatch("X-Hub-Signature"))?;
        mac.update(body);
        return mac
            .verify_slice(&digest)
            .map(|()| Algorithm::Sha1)
            .map_err(|_| SignatureError::Mismatch("X-Hub-Signature"));
    }
    Err(SignatureError::Missing)
}

fn digest_of(
    value: &http::HeaderValue,
    header: &'static str,
    prefix: &'static str,
) -> Result<Vec<u8>, SignatureError> {
    let malformed = SignatureError::Malformed { header, prefix };
    let text = value.to_str().map_err(|_| malformed.clone())?.trim();
    let hex_part = text.strip_prefix(prefix).ok_or_else(|| malformed.clone())?;
    hex::decode(hex_part).map_err(|_| malformed)
}

/// `sha256=<hex>` of `body` with `secret`: what GitHub sends (for tests and examples).
pub fn sign_sha256(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length: this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `sha1=<hex>` of `body` with `secret` (the legacy header).
pub fn sign_sha1(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const VECTOR: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn github_published_vector() {
        assert_eq!(sign_sha256(SECRET, BODY), VECTOR);
        let h = headers(&[(SHA256_HEADER, VECTOR)]);
        assert_eq!(verify(SECRET, &h, BODY), Ok(Algorithm::Sha256));
    }

    #[test]
    fn wrong_secret_body_or_digest_is_refused() {
        let h = headers(&[(SHA256_HEADER, VECTOR)]);
        assert!(matches!(
            verify(b"other", &h, BODY),
            Err(SignatureError::Mismatch(_))
        ));
        assert!(matches!(
            verify(SECRET, &h, b"Hello, World?"),
            Err(SignatureError::Mismatch(_))
        ));
        let short = headers(&[(SHA256_HEADER, "sha256=757107ea")]);
        assert!(matches!(
            verify(SECRET, &short, BODY),
            Err(SignatureError::Mismatch(_))
        ));
    }

    #[test]
    fn malformed_and_missing() {
        for bad in [
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=zz",
            "sha1=00",
        ] {
            let h = headers(&[(SHA256_HEADER, bad)]);
            assert!(
                matches!(
                    verify(SECRET, &h, BODY),
                    Err(SignatureError::Malformed { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            verify(SECRET, &HeaderMap::new(), BODY),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn legacy_sha1_only_without_sha256() {
        let sha1 = sign_sha1(SECRET, BODY);
        let h = headers(&[(SHA1_HEADER, &sha1)]);
        assert_eq!(verify(SECRET, &h, BODY), Ok(Algorithm::Sha1));
        // A valid SHA-1 does not rescue a bad SHA-256.
        let both = headers(&[(SHA1_HEADER, &sha1), (SHA256_HEADER, "sha256=00")]);
        assert!(matches!(
            verify(SECRET, &both, BODY),
            Err(SignatureError::Mismatch(_))
        ));
        // Both valid: SHA-256 is the one checked.
        let both = headers(&[(SHA1_HEADER, &sha1), (SHA256_HEADER, VECTOR)]);
        assert_eq!(verify(SECRET, &both, BODY), Ok(Algorithm::Sha256));
        let bad1 = headers(&[(SHA1_HEADER, "sha1=0000000000000000000000000000000000000000")]);
        assert!(matches!(
            verify(SECRET, &bad1, BODY),
            Err(SignatureError::Mismatch(_))
        ));
    }
}
