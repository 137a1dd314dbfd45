use std::sync::Arc;

use super::*;

fn signer() -> Signer {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("oidc.key");
    let s = Signer::load_or_create(&path, "http://127.0.0.1:9/").expect("created");
    let again = Signer::load_or_create(&path, "http://127.0.0.1:9").expect("read back");
    assert_eq!(s.kid(), again.kid());
    s
}

#[test]
fn a_minted_token_verifies_for_its_audience_only() {
    let s = signer();
    let now = now_secs();
    let t = s
        .mint("system:serviceaccount:ns:a", "aud-1", now, 600)
        .expect("minted");
    let c = s.verify(&t, "aud-1", now).expect("valid");
    assert_eq!(c.sub, "system:serviceaccount:ns:a");
    assert_eq!(c.iss, "http://127.0.0.1:9");
    assert!(matches!(
        s.verify(&t, "aud-2", now),
        Err(Error::Audience { .. })
    ));
    assert!(matches!(
        s.verify(&t, "aud-1", now + 10_000),
        Err(Error::Expired)
    ));
}

#[test]
fn a_tampered_or_foreign_token_is_refused() {
    let s = signer();
    let other = signer();
    let now = now_secs();
    let t = other.mint("x", "a", now, 600).expect("minted");
    assert!(matches!(s.verify(&t, "a", now), Err(Error::UnknownKey(_))));
    let mut parts: Vec<String> = s
        .mint("x", "a", now, 600)
        .expect("minted")
        .split('.')
        .map(str::to_string)
        .collect();
    parts[1] = jwt::b64(
        br#"{"iss":"http://127.0.0.1:9","sub":"admin","aud":"a","exp":9999999999,"iat":0}"#,
    );
    assert!(matches!(
        s.verify(&parts.join("."), "a", now),
        Err(Error::Signature)
    ));
    assert!(matches!(
        s.verify("abc", "a", now),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn tokens_are_cached_per_subject_and_audience() {
    let tokens = Tokens::new(Arc::new(signer()));
    let a = tokens.token("s", "a").expect("token");
    assert!(Arc::ptr_eq(&a, &tokens.token("s", "a").expect("token")));
    assert!(!Arc::ptr_eq(&a, &tokens.token("s", "b").expect("token")));
}

#[test]
fn the_jwks_names_the_key() {
    let s = signer();
    let jwks = s.jwks();
    assert_eq!(jwks["keys"][0]["kid"], s.kid());
    assert_eq!(jwks["keys"][0]["x"].as_str().map(str::len), Some(43));
    assert_eq!(
        discovery("http://h:1/")["jwks_uri"],
        "http://h:1/openid/v1/jwks"
    );
}

#[test]
fn subjects_match_as_knative_does() {
    assert!(subject_matches(
        "system:serviceaccount:NS:a",
        "system:serviceaccount:ns:a"
    ));
    assert!(subject_matches(
        "system:serviceaccount:ns:*",
        "system:serviceaccount:ns:b"
    ));
    assert!(!subject_matches(
        "system:serviceaccount:ns:*",
        "system:serviceaccount:other:b"
    ));
    assert!(subject_matches("*", "anyone"));
    assert_eq!(
        sender_subject("ns", "T", "eventing.knative.dev", "Trigger"),
        "system:serviceaccount:ns:t-oidc-eventing.knative.dev-trigger"
    );
}
