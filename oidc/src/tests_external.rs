//! Other issuers' keys: JWK parsing, RS256/PS256/ES256/ES384 verification, discovery, refresh
//! on an unknown `kid` (rate-limited), and [`Trust`] routing by `iss`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use parking_lot::Mutex;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use super::*;

const ISSUER: &str = "https://issuer.test";
const RSA_PEM: &str = include_str!("../testdata/rsa-2048.pem");

fn rsa() -> RsaKeyPair {
    let body: String = RSA_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    RsaKeyPair::from_pkcs8(&der).expect("RSA key")
}

fn rsa_jwk(pair: &RsaKeyPair, kid: &str) -> Value {
    let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    json!({
        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": jwt::b64(&public.n),
        "e": jwt::b64(&public.e),
    })
}

fn claims(aud: &str, exp: i64) -> Value {
    json!({"iss": ISSUER, "sub": "system:serviceaccount:ns:sa", "aud": [aud], "exp": exp, "iat": now_secs()})
}

fn unsigned(alg: &str, kid: &str, claims: &Value) -> String {
    let h = json!({"alg": alg, "typ": "JWT", "kid": kid});
    format!(
        "{}.{}",
        jwt::b64(h.to_string().as_bytes()),
        jwt::b64(claims.to_string().as_bytes())
    )
}

fn rsa_token(
    pair: &RsaKeyPair,
    alg: &str,
    kid: &str,
    claims: &Value,
    pad: &'static dyn signature::RsaEncoding,
) -> String {
    let input = unsigned(alg, kid, claims);
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(pad, &SystemRandom::new(), input.as_bytes(), &mut sig)
        .expect("signed");
    format!("{input}.{}", jwt::b64(&sig))
}

fn ec_token(pair: &EcdsaKeyPair, alg: &str, kid: &str, claims: &Value) -> String {
    let input = unsigned(alg, kid, claims);
    let sig = pair
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("signed");
    format!("{input}.{}", jwt::b64(sig.as_ref()))
}

fn ec_pair(alg: &'static signature::EcdsaSigningAlgorithm) -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generated");
    EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).expect("key")
}

fn ec_jwk(pair: &EcdsaKeyPair, crv: &str, kid: &str) -> Value {
    let point = pair.public_key().as_ref();
    let half = (point.len() - 1) / 2;
    json!({"kty": "EC", "crv": crv, "kid": kid,
        "x": jwt::b64(&point[1..1 + half]), "y": jwt::b64(&point[1 + half..])})
}

fn keyset(keys: &[Value]) -> KeySet {
    KeySet::parse(json!({"keys": keys}).to_string().as_bytes()).expect("JWKS")
}

#[test]
fn rs256_and_ps256_tokens_verify_against_the_jwk() {
    let pair = rsa();
    let keys = keyset(&[rsa_jwk(&pair, "r1")]);
    assert_eq!(keys.len(), 1);
    let c = claims("a", now_secs() + 600);
    let t = rsa_token(&pair, "RS256", "r1", &c, &signature::RSA_PKCS1_SHA256);
    assert_eq!(
        keys.verify(&t).expect("valid").sub,
        "system:serviceaccount:ns:sa"
    );
    let t512 = rsa_token(&pair, "RS512", "r1", &c, &signature::RSA_PKCS1_SHA512);
    // The JWK pins RS256.
    assert!(matches!(keys.verify(&t512), Err(Error::NoKeyFor(_))));
    let mut free = rsa_jwk(&pair, "r1");
    free.as_object_mut().expect("object").remove("alg");
    let keys = keyset(&[free]);
    assert!(keys.verify(&t512).is_ok());
    let ps = rsa_token(&pair, "PS256", "r1", &c, &signature::RSA_PSS_SHA256);
    assert!(keys.verify(&ps).is_ok());
    // Another kid, a tampered payload, `none` and HS256.
    let other = rsa_token(&pair, "RS256", "r2", &c, &signature::RSA_PKCS1_SHA256);
    assert!(matches!(keys.verify(&other), Err(Error::UnknownKey(k)) if k == "r2"));
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = jwt::b64(claims("b", now_secs() + 600).to_string().as_bytes());
    parts[1] = &forged;
    assert!(matches!(
        keys.verify(&parts.join(".")),
        Err(Error::Signature)
    ));
    let none = format!("{}.", unsigned("none", "r1", &c));
    assert!(matches!(keys.verify(&none), Err(Error::Algorithm(a)) if a == "none"));
    let hs = format!("{}.{}", unsigned("HS256", "r1", &c), jwt::b64(b"mac"));
    assert!(matches!(keys.verify(&hs), Err(Error::Algorithm(_))));
}

#[test]
fn es256_and_es384_tokens_verify_and_knits_own_jwks_parses() {
    let p256 = ec_pair(&signature::ECDSA_P256_SHA256_FIXED_SIGNING);
    let p384 = ec_pair(&signature::ECDSA_P384_SHA384_FIXED_SIGNING);
    let keys = keyset(&[ec_jwk(&p256, "P-256", "e1"), ec_jwk(&p384, "P-384", "e2")]);
    let c = claims("a", now_secs() + 600);
    assert!(keys.verify(&ec_token(&p256, "ES256", "e1", &c)).is_ok());
    assert!(keys.verify(&ec_token(&p384, "ES384", "e2", &c)).is_ok());
    // The P-384 key cannot check an ES256 signature.
    assert!(matches!(
        keys.verify(&ec_token(&p256, "ES256", "e2", &c)),
        Err(Error::NoKeyFor(_))
    ));
    // Knit's own JWKS is a JWKS like any other.
    let dir = tempfile::tempdir().expect("tempdir");
    let own = Signer::load_or_create(&dir.path().join("k.pem"), ISSUER).expect("signer");
    let keys = KeySet::parse(own.jwks().to_string().as_bytes()).expect("JWKS");
    let t = own.mint("s", "a", now_secs(), 60).expect("minted");
    assert_eq!(keys.verify(&t).expect("valid").iss, ISSUER);
}

#[test]
fn unusable_keys_are_skipped_and_garbage_refused() {
    let keys = keyset(&[
        json!({"kty": "oct", "k": "c2VjcmV0"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
    ]);
    assert!(keys.is_empty());
    assert!(matches!(KeySet::parse(b"[]"), Err(Error::Jwks(_))));
}

/// Serves documents from a map and counts the GETs.
#[derive(Default)]
struct Served {
    docs: Mutex<HashMap<String, Value>>,
    gets: AtomicUsize,
}

impl Fetch for Served {
    fn get<'a>(&'a self, url: &'a str) -> Fetched<'a> {
        Box::pin(async move {
            self.gets.fetch_add(1, Ordering::SeqCst);
            match self.docs.lock().get(url) {
                Some(v) => Ok(v.to_string().into_bytes()),
                None => Err("404 Not Found".to_string()),
            }
        })
    }
}

fn served(keys: &[Value]) -> Arc<Served> {
    let s = Arc::new(Served::default());
    s.docs.lock().insert(
        format!("{ISSUER}/.well-known/openid-configuration"),
        json!({"issuer": "https://real.test", "jwks_uri": "https://keys.test/jwks"}),
    );
    s.docs
        .lock()
        .insert("https://keys.test/jwks".into(), json!({"keys": keys}));
    s
}

fn own() -> (Arc<Signer>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Signer::load_or_create(&dir.path().join("k.pem"), "http://knit:8080").expect("key");
    (Arc::new(s), dir)
}

#[tokio::test]
async fn trust_routes_by_iss_discovers_and_refetches_on_an_unknown_kid() {
    let pair = rsa();
    let fetch = served(&[rsa_jwk(&pair, "old")]);
    let issuer = Arc::new(Issuer::new(&format!("{ISSUER}/"), None, fetch.clone()));
    let (own, _dir) = own();
    let trust = Trust::new(own.clone(), vec![issuer.clone()]);
    let now = now_secs();
    let sign =
        |kid: &str, c: &Value| rsa_token(&pair, "RS256", kid, c, &signature::RSA_PKCS1_SHA256);

    assert!(!issuer.is_loaded());
    issuer.refresh().await.expect("loaded");
    assert!(issuer.is_loaded());
    assert_eq!(fetch.gets.load(Ordering::SeqCst), 2);
    let t = sign("old", &claims("a", now + 600));
    assert_eq!(trust.verify(&t, "a", now).await.expect("valid").iss, ISSUER);
    // Cached, claims checked on every use.
    assert!(matches!(
        trust.verify(&t, "b", now).await,
        Err(Error::Audience { .. })
    ));
    assert!(matches!(
        trust.verify(&t, "a", now + 3600).await,
        Err(Error::Expired)
    ));
    // The discovered issuer is accepted too; Knit's own tokens still are; others are not.
    let mut real = claims("a", now + 600);
    real["iss"] = json!("https://real.test");
    assert!(trust.verify(&sign("old", &real), "a", now).await.is_ok());
    let mine = own.mint("s", "a", now, 60).expect("minted");
    assert!(trust.verify(&mine, "a", now).await.is_ok());
    let mut stranger = claims("a", now + 600);
    stranger["iss"] = json!("https://evil.test");
    assert!(matches!(
        trust.verify(&sign("old", &stranger), "a", now).await,
        Err(Error::Untrusted(i)) if i == "https://evil.test"
    ));

    // The issuer rotates its key: the new kid makes Knit fetch again, once.
    fetch.docs.lock().insert(
        "https://keys.test/jwks".into(),
        json!({"keys": [rsa_jwk(&pair, "new")]}),
    );
    let before = fetch.gets.load(Ordering::SeqCst);
    let t2 = sign("new", &claims("a", now + 600));
    assert!(trust.verify(&t2, "a", now).await.is_ok());
    assert_eq!(fetch.gets.load(Ordering::SeqCst), before + 2);
    // Within the rate limit another unknown kid fetches nothing.
    let t3 = sign("newer", &claims("a", now + 600));
    assert!(matches!(
        trust.verify(&t3, "a", now).await,
        Err(Error::UnknownKey(_))
    ));
    assert_eq!(fetch.gets.load(Ordering::SeqCst), before + 2);
}

#[tokio::test]
async fn a_jwks_uri_skips_discovery_and_failures_are_reported() {
    let p256 = ec_pair(&signature::ECDSA_P256_SHA256_FIXED_SIGNING);
    let fetch = served(&[ec_jwk(&p256, "P-256", "e")]);
    let down = Issuer::new(ISSUER, Some("https://keys.test/missing"), fetch.clone());
    assert!(matches!(down.refresh().await, Err(Error::Fetch { .. })));
    let issuer = Arc::new(Issuer::new(
        ISSUER,
        Some("https://keys.test/jwks"),
        fetch.clone(),
    ));
    let (own, _dir) = own();
    let trust = Trust::new(own, vec![issuer.clone()]);
    let now = now_secs();
    // Not loaded yet: the first token loads the keys (the JWKS only).
    let t = ec_token(&p256, "ES256", "e", &claims("a", now + 600));
    assert!(trust.verify(&t, "a", now).await.is_ok());
    assert!(issuer.is_loaded());
    assert_eq!(fetch.gets.load(Ordering::SeqCst), 2);
    // Without discovery, only the configured URL names the issuer.
    let mut real = claims("a", now + 600);
    real["iss"] = json!("https://real.test");
    let t = ec_token(&p256, "ES256", "e", &real);
    assert!(matches!(
        trust.verify(&t, "a", now).await,
        Err(Error::Untrusted(_))
    ));
}
