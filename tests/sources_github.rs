//! GitHubSource end to end through the `knit` binary: every example payload of the npm package
//! `@octokit/webhooks-examples` (api.github.com) is signed as GitHub signs it, POSTed to the
//! source's `status.address.url`, and must arrive at a recording sink behind a Broker and a
//! Trigger with the expected type, source, subject and the very bytes that were posted. The
//! webhook's registration is checked against a fake GitHub REST API served by the test.
//!
//! Admission accepts the GitHub event names in [`GITHUB_EVENT_TYPES`] (Knative's 39 and the
//! newer ones, `workflow_run`, `discussion`, …); the source lists all of them, so every payload
//! of the package but the pings must arrive.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use cloudevents::AttributesReader;
use common::sink::{Received, Sink};
use common::{Knit, broker, eventually, http, indent, trigger};
use knit_crds::admission::GITHUB_EVENT_TYPES;
use knit_sources::github::{mapping, signature};
use serde_json::{Value, json};

const SECRET: &str = "It's a Secret to Everybody";
const TOKEN: &str = "ghp_test-token";
const HOOK_ID: u64 = 4242;

/// The fake GitHub REST API: records every call, lists no hooks, creates hook 4242.
#[derive(Default)]
struct FakeGitHub {
    calls: Mutex<Vec<Call>>,
}

#[derive(Clone, Debug)]
struct Call {
    method: Method,
    path: String,
    authorization: Option<String>,
    body: Value,
}

impl FakeGitHub {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }
}

async fn fake_api(
    State(api): State<Arc<FakeGitHub>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    api.calls.lock().expect("lock").push(Call {
        method: method.clone(),
        path: uri.path().to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    match method {
        Method::GET => (StatusCode::OK, "[]".into()),
        Method::POST => (StatusCode::CREATED, json!({ "id": HOOK_ID }).to_string()),
        Method::DELETE => (StatusCode::NO_CONTENT, String::new()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
    }
}

async fn start_fake_api() -> (Arc<FakeGitHub>, String) {
    let api = Arc::new(FakeGitHub::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().fallback(fake_api).with_state(api.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (api, url)
}

fn examples_file() -> PathBuf {
    let clients = std::env::var("KNIT_JS_CLIENTS").unwrap_or_else(|_| {
        panic!("needs the npm test clients: run scripts/test, which installs them")
    });
    PathBuf::from(clients).join("node_modules/@octokit/webhooks-examples/api.github.com/index.json")
}

/// Every (event name, payload) of the package.
fn examples() -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(examples_file()).expect("@octokit/webhooks-examples");
    let defs: Vec<Value> = serde_json::from_str(&text).expect("index.json");
    defs.iter()
        .flat_map(|d| {
            let name = d["name"].as_str().expect("name").to_string();
            d["examples"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |e| (name.clone(), e))
        })
        .collect()
}

fn manifests(api_url: &str, sink: &str) -> Vec<(&'static str, String)> {
    let types = serde_json::to_string(GITHUB_EVENT_TYPES).expect("event types");
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gh-secret\n  namespace: default\nstringData:\n  accessToken: {TOKEN}\n  secretToken: \"{SECRET}\"\n"
    );
    let source = format!(
        "apiVersion: sources.knative.dev/v1alpha1\nkind: GitHubSource\nmetadata:\n  name: gh\n  namespace: default\nspec:\n{}\n",
        indent(
            &format!(
                "ownerAndRepository: octo/hello\ngithubAPIURL: {api_url}\neventTypes: {types}\naccessToken:\n  secretKeyRef:\n    name: gh-secret\n    key: accessToken\nsecretToken:\n  secretKeyRef:\n    name: gh-secret\n    key: secretToken\nsink:\n  ref:\n    apiVersion: eventing.knative.dev/v1\n    kind: Broker\n    name: b\n"
            ),
            2
        )
    );
    vec![
        ("secret.yaml", secret),
        ("b.yaml", broker("b", "")),
        ("t.yaml", trigger("t", "b", sink, "")),
        ("gh.yaml", source),
    ]
}

async fn deliver(url: &str, event: &str, delivery: &str, body: &[u8], sig: &str) -> (u16, String) {
    let r = http()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/test")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sig)
        .body(body.to_vec())
        .send()
        .await
        .expect("POST to the receiver");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn last_segment(url: Option<String>) -> Option<String> {
    url.and_then(|u| u.rsplit_once('/').map(|(_, s)| s.to_string()))
}

/// The subject Knative gives the common kinds, written out independently of the adapter.
fn expected_subject(event: &str, p: &Value) -> Option<Option<String>> {
    let s = match event {
        "issues" => text(p, "/issue/number"),
        "pull_request" => text(p, "/pull_request/number"),
        "push" => last_segment(text(p, "/compare")),
        "release" => text(p, "/release/tag_name"),
        "create" | "delete" => text(p, "/ref_type"),
        "issue_comment" | "commit_comment" => last_segment(text(p, "/comment/html_url")),
        "watch" | "public" | "repository" => text(p, "/repository/id"),
        "status" => text(p, "/sha"),
        "check_run" => text(p, "/check_run/id"),
        "check_suite" => text(p, "/check_suite/id"),
        "label" => text(p, "/label/name"),
        "milestone" => text(p, "/milestone/number"),
        "workflow_run" | "workflow_job" | "discussion" | "star" => None,
        _ => return None,
    };
    Some(s)
}

#[tokio::test]
#[ignore = "needs the npm test clients (scripts/test installs them)"]
async fn every_octokit_example_arrives_signed_and_byte_identical() {
    let all = examples();
    assert!(all.len() >= 300, "only {} examples", all.len());
    let (api, api_url) = start_fake_api().await;
    let sink = Sink::start().await;
    let files = manifests(&api_url, &sink.url);
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let knit = Knit::start(&refs);
    knit.ready("triggers", "t").await;
    let gh = knit.ready("githubsources", "gh").await;
    let url = gh["status"]["address"]["url"]
        .as_str()
        .expect("status.address.url")
        .to_string();
    assert_eq!(gh["status"]["webhookIDKey"], HOOK_ID.to_string());

    // The hook was created with our URL, secret and events, with the token.
    let created = api
        .calls()
        .into_iter()
        .find(|c| c.method == Method::POST)
        .expect("the hook was created");
    assert_eq!(created.path, "/repos/octo/hello/hooks");
    assert_eq!(
        created.authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(created.body["name"], "web");
    assert_eq!(created.body["active"], true);
    assert_eq!(created.body["events"], json!(GITHUB_EVENT_TYPES));
    assert_eq!(created.body["config"]["url"], url.as_str());
    assert_eq!(created.body["config"]["secret"], SECRET);
    assert_eq!(created.body["config"]["content_type"], "json");

    // Every example, signed and posted; half compact, half pretty-printed, so the bytes are
    // not what a re-serialisation would produce.
    let mut sent: HashMap<String, (String, Value, Vec<u8>)> = HashMap::new();
    let mut pings = 0;
    let mut not_listed = Vec::new();
    for (i, (event, payload)) in all.iter().enumerate() {
        let body = if i % 2 == 0 {
            serde_json::to_vec(payload)
        } else {
            serde_json::to_vec_pretty(payload)
        }
        .expect("serialise");
        let delivery = uuid::Uuid::new_v4().to_string();
        let sig = signature::sign_sha256(SECRET.as_bytes(), &body);
        let (status, answer) = deliver(&url, event, &delivery, &body, &sig).await;
        if event == "ping" {
            assert!(status == 200 || status == 202, "ping: {status} {answer}");
            pings += 1;
            continue;
        }
        if !GITHUB_EVENT_TYPES.contains(&event.as_str()) {
            assert_eq!(status, 200, "{event} #{i}: {answer}");
            assert!(answer.starts_with("not forwarded"), "{event}: {answer}");
            not_listed.push(delivery);
            continue;
        }
        assert_eq!(status, 202, "{event} #{i}: {answer}");
        assert_eq!(answer, "accepted");
        sent.insert(delivery, (event.clone(), payload.clone(), body));
    }
    assert!(pings > 0, "the package has ping examples");
    assert!(
        not_listed.is_empty(),
        "every example's event type is admitted"
    );
    assert_eq!(
        sent.len() + pings,
        all.len(),
        "every payload but the pings forwarded"
    );

    let got = sink.wait_for(sent.len()).await;
    let mut by_id: BTreeMap<String, Received> = BTreeMap::new();
    for r in got {
        let ce = |n: &str| r.header(&format!("ce-{n}"));
        let id = ce("id").expect("ce-id");
        assert!(sent.contains_key(&id), "unexpected event {id} (a ping?)");
        by_id.insert(id, r);
    }
    assert_eq!(by_id.len(), sent.len(), "duplicates or losses");
    let mut checked_independently = 0;
    for (id, (event, payload, body)) in &sent {
        let r = &by_id[id];
        let ce = |n: &str| r.header(&format!("ce-{n}"));
        assert_eq!(
            ce("type"),
            Some(format!("dev.knative.source.github.{event}")),
            "{event}"
        );
        assert_eq!(
            ce("source").as_deref(),
            Some("https://github.com/octo/hello")
        );
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            r.body.as_ref(),
            body.as_slice(),
            "{event} {id}: the bytes changed"
        );
        let (subject, exts) = mapping::subject_and_extensions(event, payload);
        if let Some(expected) = expected_subject(event, payload) {
            assert_eq!(subject, expected, "{event}: the adapter's mapping");
            checked_independently += 1;
        }
        // Subject and extensions as the CloudEvents SDK decodes them (headers are
        // percent-encoded where needed).
        let ev = r.event.as_ref().expect("a CloudEvent the SDK can read");
        assert_eq!(
            ev.subject().map(str::to_string),
            subject,
            "{event} {id}: subject"
        );
        for (name, value) in exts {
            assert_eq!(
                r.ext(name).as_deref(),
                Some(value.as_str()),
                "{event}: extension {name}"
            );
        }
    }
    assert!(checked_independently > 100, "{checked_independently}");

    // A bad signature: 401, and nothing arrives (a good delivery sent after it is the only one).
    let (issues, payload) = all
        .iter()
        .find(|(e, _)| e == "issues")
        .expect("an issues example");
    let body = serde_json::to_vec(payload).expect("body");
    let bad = signature::sign_sha256(b"not the secret", &body);
    let (status, answer) = deliver(&url, issues, "bad-1", &body, &bad).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("signature"), "{answer}");
    let good = signature::sign_sha256(SECRET.as_bytes(), &body);
    let (status, _) = deliver(&url, issues, "good-after-bad", &body, &good).await;
    assert_eq!(status, 202);
    let got = sink.wait_for(sent.len() + 1).await;
    assert!(got.iter().all(|r| {
        let id = r.header("ce-id").unwrap_or_default();
        id != "bad-1" && !not_listed.contains(&id)
    }));
    assert_eq!(got.len(), sent.len() + 1);

    // The legacy SHA-1 header alone is accepted; beside a bad SHA-256 one it is not.
    let sha1 = signature::sign_sha1(SECRET.as_bytes(), &body);
    let legacy = http()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-event", issues.as_str())
        .header("x-github-delivery", "legacy-sha1")
        .header("x-hub-signature", &sha1)
        .body(body.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(legacy.status().as_u16(), 202);
    let mixed = http()
        .post(&url)
        .header("x-github-event", issues.as_str())
        .header("x-github-delivery", "mixed")
        .header("x-hub-signature", &sha1)
        .header("x-hub-signature-256", &bad)
        .body(body.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(mixed.status().as_u16(), 401);
    let got = sink.wait_for(sent.len() + 2).await;
    assert!(
        got.iter()
            .any(|r| r.header("ce-id").as_deref() == Some("legacy-sha1"))
    );
    assert!(
        got.iter()
            .all(|r| r.header("ce-id").as_deref() != Some("mixed"))
    );

    // Deleting the source deletes the hook at GitHub.
    knit.remove("gh.yaml");
    eventually("the hook to be deleted", || async {
        api.calls()
            .iter()
            .any(|c| {
                c.method == Method::DELETE && c.path == format!("/repos/octo/hello/hooks/{HOOK_ID}")
            })
            .then_some(())
    })
    .await;
    let (status, _) = deliver(&url, issues, "after-delete", &body, &good).await;
    assert_eq!(status, 404, "the receiver is gone with the source");
}

/// With `authentication-oidc` on, the receiver is a policy target like a Broker: besides
/// GitHub's signature it wants a bearer token for the source's audience (401 without one, or
/// for another audience) from a sender the default mode (here `allow-same-namespace`) or an
/// EventPolicy allows (403 otherwise); the source lists its policies.
#[tokio::test]
async fn with_oidc_the_receiver_wants_a_token_and_a_sender_its_policies_allow() {
    let (_api, api_url) = start_fake_api().await;
    let sink = Sink::start().await;
    let state = tempfile::tempdir().expect("temp dir");
    let key = state.path().join("oidc-key.pem");
    let features = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-features\n  namespace: knative-eventing\ndata:\n  authentication-oidc: enabled\n  default-authorization-mode: allow-same-namespace\n";
    let mut files = manifests(&api_url, &sink.url);
    files.push(("features.yaml", features.to_string()));
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let knit = Knit::start_with(&refs, &["--oidc-key", key.to_str().expect("utf-8 path")]);
    let gh = knit.ready("githubsources", "gh").await;
    let audience = "sources.knative.dev/githubsource/default/gh";
    assert_eq!(gh["status"]["address"]["audience"], json!(audience));
    let url = gh["status"]["address"]["url"]
        .as_str()
        .expect("address")
        .to_string();

    let body =
        br#"{"ref":"refs/heads/main","compare":"https://github.com/octo/hello/compare/a...b"}"#;
    let sig = signature::sign_sha256(SECRET.as_bytes(), body);
    let same = knit
        .oidc_token("system:serviceaccount:default:relay", audience)
        .await;
    let other = knit
        .oidc_token("system:serviceaccount:other:relay", audience)
        .await;
    let elsewhere = knit
        .oidc_token(
            "system:serviceaccount:default:relay",
            "eventing.knative.dev/broker/default/b",
        )
        .await;
    let post = |delivery: &'static str, token: Option<String>| {
        let (url, sig) = (url.clone(), sig.clone());
        async move {
            let mut req = http()
                .post(&url)
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-github-delivery", delivery)
                .header("x-hub-signature-256", sig)
                .body(body.to_vec());
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.expect("POST to the receiver");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    // The receiver's rules reach the ingress with the Contract, a little after status.
    eventually("the receiver to want a token", || async {
        let (status, text) = post("no-token", None).await;
        (status == 401 && text.contains("bearer token")).then_some(())
    })
    .await;
    let (status, text) = post("wrong-audience", Some(elsewhere)).await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = post("other-namespace", Some(other.clone())).await;
    assert_eq!(status, 403, "{text}");
    let (status, text) = post("same-namespace", Some(same)).await;
    assert_eq!(status, 202, "{text}");
    // Each refusal is counted in the metrics by status, as a Broker's.
    let metrics = knit.metrics().await;
    for status in ["401", "403"] {
        assert!(
            metrics.lines().any(|l| l.contains(r#"kind="GitHubSource""#)
                && l.contains(&format!(r#"http_response_status_code="{status}""#))),
            "no GitHubSource {status} in\n{metrics}"
        );
    }
    eventually("the allowed delivery at the sink", || async {
        sink.received()
            .iter()
            .any(|r| r.id() == "same-namespace")
            .then_some(())
    })
    .await;

    // An EventPolicy naming the source lets the other namespace's relay in, and is listed.
    knit.write(
        "p.yaml",
        "apiVersion: eventing.knative.dev/v1alpha1\nkind: EventPolicy\nmetadata:\n  name: relays\n  namespace: default\nspec:\n  to:\n  - ref:\n      apiVersion: sources.knative.dev/v1alpha1\n      kind: GitHubSource\n      name: gh\n  from:\n  - sub: system:serviceaccount:other:*\n",
    );
    eventually("the source to list its policy", || async {
        let gh = knit.object("githubsources", "gh").await?;
        (gh["status"]["policies"]
            == json!([{"apiVersion": "eventing.knative.dev/v1alpha1", "name": "relays"}]))
        .then_some(())
    })
    .await;
    eventually("the other namespace's relay let in", || async {
        let (status, _) = post("by-policy", Some(other.clone())).await;
        (status == 202).then_some(())
    })
    .await;
    assert!(
        sink.received()
            .iter()
            .all(|r| !["no-token", "wrong-audience", "other-namespace"].contains(&r.id().as_str())),
        "a refused delivery was forwarded"
    );
}
