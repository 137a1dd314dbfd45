//! External OIDC issuers (`knit run --oidc-issuer URL`), with real clients: a Python issuer
//! (`tests/clients/python/oidc_issuer.py`) serves its discovery document and JWKS over HTTP
//! and mints RS256 tokens with PyJWT, as a Kubernetes cluster's service-account issuer does.
//!
//! Covered: `/readyz` waits for the issuer's keys; a Broker with `authentication-oidc` accepts
//! (202, delivered) a token from that issuer for its audience and still accepts Knit's own;
//! answers 401 to a token for another audience, an expired one, one from an issuer Knit does
//! not trust (saying so) and one with a bad signature, 403 to a sender the default
//! `allow-same-namespace` mode refuses; the issuer rotates its key and a token with the new
//! `kid` is accepted without restarting Knit (the JWKS fetched again on the unknown `kid`).

mod common;

use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::sink::Sink;
use common::{Knit, broker, eventually_for, http, repo, trigger};

/// Multi-process waits on a busy machine.
const PATIENCE: Duration = Duration::from_secs(90);

const BROKER_AUDIENCE: &str = "eventing.knative.dev/broker/default/b";
const SENDER: &str = "system:serviceaccount:default:builder";

const FEATURES: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-features\n  namespace: knative-eventing\ndata:\n  authentication-oidc: enabled\n  default-authorization-mode: allow-same-namespace\n";

/// The Python issuer, driven over its stdin.
struct TestIssuer {
    child: Child,
    url: String,
    io: Mutex<(ChildStdin, Lines<BufReader<ChildStdout>>)>,
}

impl TestIssuer {
    fn start() -> TestIssuer {
        let python = std::env::var("KNIT_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(repo("tests/clients/python/oidc_issuer.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python");
        let stdin = child.stdin.take().expect("stdin");
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = out.next().and_then(Result::ok).unwrap_or_default();
        let port = first
            .strip_prefix("port ")
            .unwrap_or_else(|| {
                panic!("oidc_issuer.py did not start (PyJWT[crypto] installed?): {first:?}")
            })
            .to_string();
        TestIssuer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            io: Mutex::new((stdin, out)),
        }
    }

    /// Send `command`; its one-line answer.
    fn ask(&self, command: &str) -> String {
        let mut io = self.io.lock().expect("issuer pipes");
        writeln!(io.0, "{command}").expect("write to the issuer");
        io.0.flush().expect("flush");
        io.1.next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("the issuer did not answer {command:?}"))
    }

    /// A token for `aud` and `sub` valid `secs` seconds from now (negative: expired).
    fn mint(&self, aud: &str, sub: &str, secs: i64) -> String {
        self.ask(&format!("mint {aud} {sub} {secs}"))
    }

    fn fetches(&self) -> u64 {
        let line = self.ask("fetches");
        line.strip_prefix("fetches ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("fetches: {line:?}"))
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POST a binary event with `token`; the status and the body.
async fn post(url: &str, id: &str, token: &str) -> (u16, String) {
    let r = http()
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/oidc-issuer-test")
        .header("ce-type", "external.token")
        .header("content-type", "application/json")
        .bearer_auth(token)
        .body(r#"{"n":1}"#)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// Post (fresh ids `prefix-N`) until the answer is `want`; the id that got it and the body.
async fn answers(url: &str, prefix: &str, token: &str, want: u16) -> (String, String) {
    let mut n = 0;
    eventually_for(&format!("{prefix} answered {want}"), PATIENCE, || {
        n += 1;
        let id = format!("{prefix}-{n}");
        async move {
            let (status, body) = post(url, &id, token).await;
            (status == want).then_some((id, body))
        }
    })
    .await
}

/// `/readyz` answers 200.
async fn ready(knit: &Knit) {
    eventually_for("knit to be ready", PATIENCE, || async {
        let r = http()
            .get(format!("{}/readyz", knit.admin))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn tokens_of_an_oidc_issuer_are_accepted_and_its_key_rotation_followed() {
    let issuer = TestIssuer::start();
    let sink = Sink::start().await;
    let state = tempfile::tempdir().expect("temp dir");
    let key = state.path().join("oidc-key.pem");
    let knit = Knit::start_with(
        &[
            ("features.yaml", FEATURES),
            ("b.yaml", &broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
        ],
        &[
            "--oidc-key",
            key.to_str().expect("utf-8 path"),
            "--oidc-issuer",
            &format!("{}/", issuer.url),
        ],
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    ready(&knit).await;
    assert!(issuer.fetches() >= 1, "ready before the JWKS was fetched");

    let token = issuer.mint(BROKER_AUDIENCE, SENDER, 600);
    let (accepted, _) = answers(&url, "ok", &token, 202).await;
    eventually_for("the event to be delivered", PATIENCE, || async {
        sink.received()
            .iter()
            .any(|r| r.id() == accepted)
            .then_some(())
    })
    .await;
    let own = knit.oidc_token(SENDER, BROKER_AUDIENCE).await;
    assert_eq!(post(&url, "own-1", &own).await.0, 202, "Knit's own tokens");

    let elsewhere = issuer.mint("eventing.knative.dev/broker/default/other", SENDER, 600);
    let (status, body) = post(&url, "aud-1", &elsewhere).await;
    assert_eq!((status, body.contains("audience")), (401, true), "{body}");
    let expired = issuer.mint(BROKER_AUDIENCE, SENDER, -3600);
    let (status, body) = post(&url, "exp-1", &expired).await;
    assert_eq!((status, body.contains("expired")), (401, true), "{body}");
    let stranger = issuer.ask(&format!(
        "mint {BROKER_AUDIENCE} {SENDER} 600 http://127.0.0.1:9"
    ));
    let (status, body) = post(&url, "iss-1", &stranger).await;
    assert_eq!(
        (status, body.contains("not trusted")),
        (401, true),
        "{body}"
    );
    let forged = issuer.ask(&format!("forge {BROKER_AUDIENCE} {SENDER}"));
    let (status, body) = post(&url, "sig-1", &forged).await;
    assert_eq!(
        (status, body.contains("bad signature")),
        (401, true),
        "{body}"
    );
    let neighbour = issuer.mint(BROKER_AUDIENCE, "system:serviceaccount:other:builder", 600);
    assert_eq!(post(&url, "ns-1", &neighbour).await.0, 403);

    // The issuer rotates its key; Knit fetches the JWKS again for the new kid.
    let fetched = issuer.fetches();
    let kid = issuer.ask("rotate");
    assert_eq!(kid, "kid key-2");
    let rotated = issuer.mint(BROKER_AUDIENCE, SENDER, 600);
    let (accepted, _) = answers(&url, "rotated", &rotated, 202).await;
    assert!(issuer.fetches() > fetched, "the JWKS was fetched again");
    eventually_for("the event to be delivered", PATIENCE, || async {
        sink.received()
            .iter()
            .any(|r| r.id() == accepted)
            .then_some(())
    })
    .await;
    let refused: Vec<String> = ["aud-1", "exp-1", "iss-1", "sig-1", "ns-1"]
        .iter()
        .filter(|id| sink.received().iter().any(|r| r.id() == **id))
        .map(|id| id.to_string())
        .collect();
    assert!(
        refused.is_empty(),
        "refused events were delivered: {refused:?}"
    );
}
