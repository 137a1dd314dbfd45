//! Another issuer's public keys (a JWKS, RFC 7517) and checking a token's signature with them:
//! RS256/384/512 and PS256/384/512 (RSA `n`, `e`), ES256 and ES384 (EC `x`, `y` on P-256 and
//! P-384). `none`, HS* and anything else are refused.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;

use crate::jwt::{self, Parts};
use crate::{Error, Result};

/// The signature algorithms accepted from another issuer.
pub const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

/// A key's public half.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Public {
    /// RSA: the modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// EC: the uncompressed point `04 || x || y` on P-256 (`bits` 256) or P-384 (384).
    Ec { bits: u16, point: Vec<u8> },
}

/// One usable key of a JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    kid: Option<String>,
    /// The `alg` the JWKS pins the key to, if any.
    alg: Option<String>,
    public: Public,
}

/// The signing keys of a JWKS that Knit can use; others (encryption keys, symmetric keys,
/// other curves) are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Key>,
}

/// A JWK as written on the wire (only the members used here).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// The usable keys of the JWKS `json` (`{"keys": [...]}`); [`Error::Jwks`] when it is not a
    /// JWKS at all. Keys Knit cannot use are skipped (logged at debug).
    pub fn parse(json: &[u8]) -> Result<Self> {
        let doc: Document = serde_json::from_slice(json)
            .map_err(|e| Error::Jwks(format!("not a JWKS ({{\"keys\": [...]}}): {e}")))?;
        let keys = doc
            .keys
            .into_iter()
            .filter_map(|v| match key(v) {
                Ok(k) => Some(k),
                Err(why) => {
                    tracing::debug!(%why, "JWKS key skipped");
                    None
                }
            })
            .collect();
        Ok(Self { keys })
    }

    /// How many usable keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key has the id `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// `token`'s claims once its signature is one of these keys': the key its `kid` names (or,
    /// without a `kid`, any key fit for its `alg`). [`Error::UnknownKey`] when no key has that
    /// `kid` (the JWKS may have rotated).
    pub fn verify(&self, token: &str) -> Result<jwt::Claims> {
        self.verify_parts(jwt::split(token)?)
    }

    pub(crate) fn verify_parts(&self, parts: Parts) -> Result<jwt::Claims> {
        let alg = parts.header.alg.as_str();
        let Some(verifier) = algorithm(alg) else {
            return Err(Error::Algorithm(alg.to_string()));
        };
        if let Some(kid) = &parts.header.kid
            && !self.has_kid(kid)
        {
            return Err(Error::UnknownKey(kid.clone()));
        }
        let named = |k: &&Key| {
            let kid = parts.header.kid.as_ref();
            kid.is_none_or(|kid| k.kid.as_ref() == Some(kid))
        };
        let mut tried = false;
        for key in self.keys.iter().filter(named) {
            if key.alg.as_deref().is_some_and(|a| a != alg) || !key.fits(alg) {
                continue;
            }
            tried = true;
            if key.check(verifier, &parts) {
                return Ok(parts.claims);
            }
        }
        Err(if tried {
            Error::Signature
        } else {
            Error::NoKeyFor(alg.to_string())
        })
    }
}

impl Key {
    /// Whether this key's type can verify `alg`.
    fn fits(&self, alg: &str) -> bool {
        match &self.public {
            Public::Rsa { .. } => alg.starts_with("RS") || alg.starts_with("PS"),
            Public::Ec { bits: 256, .. } => alg == "ES256",
            Public::Ec { bits: 384, .. } => alg == "ES384",
            Public::Ec { .. } => false,
        }
    }

    fn check(&self, verifier: Verifier, parts: &Parts) -> bool {
        let (msg, sig) = (parts.signed.as_bytes(), parts.signature.as_slice());
        match (&self.public, verifier) {
            (Public::Rsa { n, e }, Verifier::Rsa(params)) => RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok(),
            (Public::Ec { point, .. }, Verifier::Ec(alg)) => {
                UnparsedPublicKey::new(alg, point).verify(msg, sig).is_ok()
            }
            _ => false,
        }
    }
}

/// ring's verifier for a JWS `alg`.
#[derive(Clone, Copy)]
enum Verifier {
    Rsa(&'static signature::RsaParameters),
    Ec(&'static dyn VerificationAlgorithm),
}

fn algorithm(alg: &str) -> Option<Verifier> {
    Some(match alg {
        "RS256" => Verifier::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Verifier::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Verifier::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => Verifier::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
        "PS384" => Verifier::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
        "PS512" => Verifier::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
        "ES256" => Verifier::Ec(&signature::ECDSA_P256_SHA256_FIXED),
        "ES384" => Verifier::Ec(&signature::ECDSA_P384_SHA384_FIXED),
        _ => return None,
    })
}

/// The usable key `v` is, or why not.
fn key(v: serde_json::Value) -> std::result::Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(v).map_err(|e| format!("not a JWK: {e}"))?;
    if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!("use {:?} is not sig", jwk.usage));
    }
    if let Some(alg) = &jwk.alg
        && !ALGORITHMS.contains(&alg.as_str())
    {
        return Err(format!("alg {alg:?} is not accepted"));
    }
    let bytes = |name: &str, v: &Option<String>| {
        let text = v
            .as_deref()
            .ok_or(format!("{} key without {name}", jwk.kty))?;
        jwt::unb64(text).map_err(|_| format!("{name} is not base64url"))
    };
    let public = match jwk.kty.as_str() {
        "RSA" => Public::Rsa {
            n: strip_zeros(bytes("n", &jwk.n)?),
            e: strip_zeros(bytes("e", &jwk.e)?),
        },
        "EC" => {
            let (bits, len) = match jwk.crv.as_deref() {
                Some("P-256") => (256, 32),
                Some("P-384") => (384, 48),
                other => return Err(format!("curve {other:?} is not P-256 or P-384")),
            };
            let (x, y) = (bytes("x", &jwk.x)?, bytes("y", &jwk.y)?);
            if x.len() != len || y.len() != len {
                return Err(format!("x and y are not {len} bytes"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Public::Ec { bits, point }
        }
        other => return Err(format!("key type {other:?} is not RSA or EC")),
    };
    Ok(Key {
        kid: jwk.kid,
        alg: jwk.alg,
        public,
    })
}

/// `v` without leading zero bytes (ring wants minimal big-endian integers).
fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}
