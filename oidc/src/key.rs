//! The issuer's P-256 key: created once in the state folder (or read from `--oidc-key`), its
//! JWKS entry, signing and verifying.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

use crate::jwt::{self, Claims, Header};
use crate::{Error, Result};

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// An ES256 signing key and the issuer it signs for.
pub struct Signer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
    issuer: String,
    /// Tokens whose signature this key has verified, with their claims: checking an ES256
    /// signature costs tens of microseconds, and a sender sends the same token until it
    /// expires. The claims are checked again on every use; emptied when full.
    verified: parking_lot::Mutex<HashMap<String, Claims>>,
}

/// Most tokens kept in [`Signer::verify`]'s cache.
const VERIFIED_MAX: usize = 4096;

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The key in `path` (PEM PKCS#8, as `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256` writes), created there (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path, issuer: &str) -> Result<Self> {
        let shown = path.display().to_string();
        let io = |source| Error::KeyFile {
            path: shown.clone(),
            source,
        };
        if !path.exists() {
            let rng = SystemRandom::new();
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|e| Error::Crypto(e.to_string()))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            write_private(path, &pem(doc.as_ref())).map_err(io)?;
            tracing::info!(path = %shown, "created the OIDC signing key");
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_pem(&text, issuer, &shown)
    }

    /// A signer from the PEM PKCS#8 text of the file at `path`; [`Error::BadKey`] says why not.
    pub fn from_pem(text: &str, issuer: &str, path: &str) -> Result<Self> {
        let bad = |why: String| Error::BadKey {
            path: path.to_string(),
            why,
        };
        let body: String = text
            .lines()
            .skip_while(|l| l.trim() != PEM_BEGIN)
            .skip(1)
            .take_while(|l| l.trim() != PEM_END)
            .map(str::trim)
            .collect();
        if body.is_empty() {
            return Err(bad(format!("no {PEM_BEGIN} block")));
        }
        let der = STANDARD.decode(body).map_err(|e| bad(e.to_string()))?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| bad(e.to_string()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, pair.public_key().as_ref());
        let kid = jwt::b64(&digest.as_ref()[..16]);
        Ok(Self {
            pair,
            rng,
            kid,
            issuer: issuer.trim_end_matches('/').to_string(),
            verified: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// The issuer (`iss`) this key signs for.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key's id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A signed token with `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let header = Header {
            alg: "ES256".into(),
            typ: Some("JWT".into()),
            kid: Some(self.kid.clone()),
        };
        let input = jwt::signing_input(&header, claims)?;
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map_err(|e| Error::Crypto(e.to_string()))?;
        Ok(format!("{input}.{}", jwt::b64(sig.as_ref())))
    }

    /// A token for `subject` and `audience`, valid `lifetime_secs` from `now`.
    pub fn mint(
        &self,
        subject: &str,
        audience: &str,
        now: i64,
        lifetime_secs: i64,
    ) -> Result<String> {
        self.sign(&Claims {
            iss: self.issuer.clone(),
            sub: subject.to_string(),
            aud: vec![audience.to_string()],
            exp: now.saturating_add(lifetime_secs),
            iat: now,
            nbf: Some(now),
        })
    }

    /// Verify `token` as a receiver with `audience` does at `now` (unix seconds): ES256 by
    /// this key, this issuer, not expired (a minute's leeway), `aud` containing `audience`.
    /// Verified tokens are cached (their claims are checked on every use).
    pub fn verify(&self, token: &str, audience: &str, now: i64) -> Result<Claims> {
        let c = match self.cached(token) {
            Some(c) => c,
            None => {
                let c = self.verify_signature(token)?;
                let mut verified = self.verified.lock();
                if verified.len() >= VERIFIED_MAX {
                    verified.clear();
                }
                verified.insert(token.to_string(), c.clone());
                c
            }
        };
        jwt::check(&c, &[&self.issuer], audience, now)?;
        Ok(c)
    }

    /// The claims of `token` if this key verified its signature before.
    pub(crate) fn cached(&self, token: &str) -> Option<Claims> {
        self.verified.lock().get(token).cloned()
    }

    /// `token`'s claims, once its header names ES256 (and this key, if any) and its signature
    /// is this key's.
    fn verify_signature(&self, token: &str) -> Result<Claims> {
        let parts = jwt::split(token)?;
        if parts.header.alg != "ES256" {
            return Err(Error::Algorithm(parts.header.alg));
        }
        if let Some(kid) = &parts.header.kid
            && *kid != self.kid
        {
            return Err(Error::UnknownKey(kid.clone()));
        }
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(parts.signed.as_bytes(), &parts.signature)
            .map_err(|_| Error::Signature)?;
        Ok(parts.claims)
    }

    /// The JWKS (RFC 7517) with this key's public half.
    pub fn jwks(&self) -> Value {
        // An uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = self.pair.public_key().as_ref();
        let (x, y) = point
            .get(1..)
            .unwrap_or_default()
            .split_at(32.min(point.len().saturating_sub(1)));
        json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": jwt::b64(x),
            "y": jwt::b64(y),
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        }]})
    }
}

/// The OpenID discovery document of `issuer` (served at
/// `<issuer>/.well-known/openid-configuration`), its JWKS at `<issuer>/openid/v1/jwks` as
/// Kubernetes serves it.
pub fn discovery(issuer: &str) -> Value {
    let issuer = issuer.trim_end_matches('/');
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/openid/v1/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

fn pem(der: &[u8]) -> String {
    let b = STANDARD.encode(der);
    let mut out = format!("{PEM_BEGIN}\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(PEM_END);
    out.push('\n');
    out
}

/// Write `text` to `path` whole or not at all (a temporary file linked into place), readable
/// by the owner only; a file another process put there first is kept.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}
