//! Sender identity (OIDC) and EventPolicy end to end, with real clients: a Python subscriber
//! that verifies Knit's tokens with PyJWT against Knit's own discovery document and JWKS
//! (`tests/clients/python/oidc_sink.py`), `knit send --oidc-token`/`--oidc-token-file`, and
//! tokens minted by Knit's admin API (`POST /api/v1/oidc/token`).
//!
//! Covered: Trigger deliveries and dead letters carry an ES256 token whose audience is the
//! Destination's and whose subject is the Trigger's (`system:serviceaccount:<ns>:<name>-oidc-
//! eventing.knative.dev-trigger`); a Broker with `authentication-oidc` answers 401 without a
//! valid token (none, garbage, another audience), 403 to a sender the default
//! `allow-same-namespace` mode refuses, 202 (and delivers) to one it allows; EventPolicy cases
//! from Knative's docs: a `sub` pattern allowed and everyone else denied, filters, the policy
//! removed (back to the default mode), `deny-all`, `allow-all`, a `from.ref` resolved to the
//! sender's subject or, when it names nothing, the policy not Ready and the Broker with it;
//! admission of a `sub` with a `*` that is not last.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sink::{Reply, Sink};
use common::{Knit, broker, condition, eventually_for, http, repo, trigger};
use serde_json::{Value, json};

/// Multi-process waits on a busy machine.
const PATIENCE: Duration = Duration::from_secs(90);

const BROKER_AUDIENCE: &str = "eventing.knative.dev/broker/default/b";

fn features(mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-features\n  namespace: knative-eventing\ndata:\n  authentication-oidc: enabled\n  default-authorization-mode: {mode}\n"
    )
}

/// `knit run` with its own OIDC key (in a temp folder it keeps) and `files`.
fn start(files: &[(&str, &str)]) -> (Knit, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("temp dir");
    let key = state.path().join("oidc-key.pem");
    let knit = Knit::start_with(files, &["--oidc-key", key.to_str().expect("utf-8 path")]);
    (knit, state)
}

/// POST a binary event of type `ty` to `url` with `token` (if any); the status.
async fn post(url: &str, ty: &str, id: &str, token: Option<&str>) -> u16 {
    let mut req = http()
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/oidc-test")
        .header("ce-type", ty)
        .header("content-type", "application/json")
        .body(r#"{"n":1}"#);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("POST").status().as_u16()
}

/// Post until the answer is `want` (the Contract reaches the ingress a little after status).
async fn answers(url: &str, ty: &str, token: Option<&str>, want: u16) {
    let mut n = 0;
    eventually_for(&format!("{ty} answered {want}"), PATIENCE, || {
        n += 1;
        let id = format!("{ty}-{n}");
        async move { (post(url, ty, &id, token).await == want).then_some(()) }
    })
    .await;
}

/// The Python subscriber verifying tokens with PyJWT against `issuer`'s JWKS.
struct JwtSink {
    child: Child,
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl JwtSink {
    fn start(issuer: &str, audience: &str) -> JwtSink {
        let python = std::env::var("KNIT_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(repo("tests/clients/python/oidc_sink.py"))
            .args([issuer, audience])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python");
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = out.next().and_then(Result::ok).unwrap_or_default();
        let port = first
            .strip_prefix("port ")
            .unwrap_or_else(|| {
                panic!("oidc_sink.py did not start (PyJWT[crypto] installed?): {first:?}")
            })
            .to_string();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            for line in out.map_while(Result::ok) {
                if let Ok(mut l) = seen.lock() {
                    l.push(line);
                }
            }
        });
        JwtSink {
            child,
            url: format!("http://127.0.0.1:{port}/"),
            lines,
        }
    }

    /// The line it printed for event `id`, once it has.
    async fn verdict(&self, id: &str) -> String {
        eventually_for(&format!("the subscriber to see {id}"), PATIENCE, || async {
            let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
            lines.into_iter().find(|l| l.split(' ').nth(1) == Some(id))
        })
        .await
    }
}

impl Drop for JwtSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn deliveries_and_dead_letters_carry_tokens_pyjwt_verifies_against_knits_jwks() {
    let failing = Sink::start().await;
    failing.default_reply(Reply::status(500));
    let (knit, _state) = start(&[
        ("features.yaml", &features("allow-same-namespace")),
        ("b.yaml", &broker("b", "")),
    ]);
    let b = knit.ready("brokers", "b").await;
    assert_eq!(b["status"]["address"]["audience"], BROKER_AUDIENCE);
    let url = b["status"]["address"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let sub = JwtSink::start(&knit.admin, "my-sink");
    let to_sub = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\n  namespace: default\nspec:\n  broker: b\n  filter:\n    attributes:\n      type: to.sub\n  subscriber:\n    uri: {}\n    audience: my-sink\n",
        sub.url
    );
    knit.write("t.yaml", &to_sub);
    let dead = trigger(
        "d",
        "b",
        &failing.url,
        &format!(
            "filter:\n  attributes:\n    type: dead.letter\ndelivery:\n  deadLetterSink:\n    uri: {}\n    audience: my-sink\n",
            sub.url
        ),
    );
    knit.write("d.yaml", &dead);
    knit.ready("triggers", "t").await;
    knit.ready("triggers", "d").await;
    let token = knit
        .oidc_token("system:serviceaccount:default:tester", BROKER_AUDIENCE)
        .await;

    answers(&url, "to.sub", Some(&token), 202).await;
    let line = sub.verdict("to.sub-1").await;
    assert_eq!(
        line,
        "ok to.sub-1 system:serviceaccount:default:t-oidc-eventing.knative.dev-trigger"
    );
    assert_eq!(post(&url, "dead.letter", "dl-1", Some(&token)).await, 202);
    let line = sub.verdict("dl-1").await;
    assert_eq!(
        line,
        "ok dl-1 system:serviceaccount:default:d-oidc-eventing.knative.dev-trigger"
    );
    let failed = failing.received();
    assert!(
        failed.iter().all(|r| r.header("authorization").is_none()),
        "a subscriber without an audience gets no token"
    );
}

#[tokio::test]
async fn a_broker_with_oidc_answers_401_403_and_202() {
    let sink = Sink::start().await;
    let (knit, state) = start(&[
        ("features.yaml", &features("allow-same-namespace")),
        ("b.yaml", &broker("b", "")),
        ("t.yaml", &trigger("t", "b", &sink.url, "")),
    ]);
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    answers(&url, "no.token", None, 401).await;
    assert_eq!(post(&url, "garbage", "g-1", Some("not.a.jwt")).await, 401);
    let elsewhere = knit
        .oidc_token(
            "system:serviceaccount:default:x",
            "eventing.knative.dev/broker/default/other",
        )
        .await;
    assert_eq!(
        post(&url, "wrong.audience", "w-1", Some(&elsewhere)).await,
        401
    );
    let stranger = knit
        .oidc_token("system:serviceaccount:other:x", BROKER_AUDIENCE)
        .await;
    assert_eq!(post(&url, "stranger", "s-1", Some(&stranger)).await, 403);
    assert!(sink.received().is_empty(), "nothing refused was delivered");
    let (code, out, err) = knit.cli(&[
        "get",
        "events",
        "--broker",
        "default/b",
        "--failed",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let journeys: Value = serde_json::from_str(&out).expect("json");
    let refused = |id: &str| {
        journeys["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j.to_string().contains(&format!("\"{id}\"")))
            .and_then(|j| j.pointer("/accepted/refused").cloned())
    };
    assert_eq!(refused("s-1"), Some(json!(403)), "{out}");
    assert_eq!(refused("w-1"), Some(json!(401)), "{out}");

    let neighbour = knit
        .oidc_token("system:serviceaccount:default:x", BROKER_AUDIENCE)
        .await;
    let (code, out, err) = knit.cli(&[
        "send",
        "--to",
        "broker:default/b",
        "--type",
        "by.cli",
        "--source",
        "/cli",
        "--id",
        "cli-1",
        "--oidc-token",
        &neighbour,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let file = state.path().join("token");
    std::fs::write(&file, format!("{neighbour}\n")).expect("token file");
    let (code, out, err) = knit.cli(&[
        "send",
        "--to",
        "broker:default/b",
        "--type",
        "by.cli",
        "--source",
        "/cli",
        "--id",
        "cli-2",
        "--oidc-token-file",
        file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, _) = knit.cli(&[
        "send",
        "--to",
        "broker:default/b",
        "--type",
        "by.cli",
        "--source",
        "/cli",
        "--id",
        "cli-3",
    ]);
    assert_ne!(code, 0, "without a token the CLI's event is refused");
    eventually_for("both events delivered", PATIENCE, || async {
        let ids: Vec<String> = sink.received().iter().map(|r| r.id()).collect();
        (ids.contains(&"cli-1".to_string()) && ids.contains(&"cli-2".to_string())).then_some(())
    })
    .await;
    let ids: Vec<String> = sink.received().iter().map(|r| r.id()).collect();
    assert!(!ids.contains(&"cli-3".to_string()));
}

fn policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1alpha1\nkind: EventPolicy\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{}\n",
        common::indent(spec, 2)
    )
}

async fn policies_of(knit: &Knit) -> Value {
    let b = knit.object("brokers", "b").await.unwrap_or_default();
    b["status"]["policies"].clone()
}

#[tokio::test]
async fn event_policies_as_knatives_docs_show_them() {
    let sink = Sink::start().await;
    let (knit, _state) = start(&[
        ("features.yaml", &features("allow-same-namespace")),
        ("b.yaml", &broker("b", "")),
        ("t.yaml", &trigger("t", "b", &sink.url, "")),
    ]);
    let url = knit.address("brokers", "b").await;
    let same = knit
        .oidc_token("system:serviceaccount:default:x", BROKER_AUDIENCE)
        .await;
    let other = knit
        .oidc_token("system:serviceaccount:other:x", BROKER_AUDIENCE)
        .await;
    let b = knit.ready("brokers", "b").await;
    assert_eq!(
        condition(&b, "EventPoliciesReady").map(|c| c["reason"].clone()),
        Some(json!("DefaultAuthorizationMode"))
    );

    // A policy on the Broker allowing another namespace's senders: only they may send now.
    let to_b =
        "to:\n- ref:\n    apiVersion: eventing.knative.dev/v1\n    kind: Broker\n    name: b\n";
    knit.write(
        "p.yaml",
        &policy(
            "p",
            &format!("{to_b}from:\n- sub: system:serviceaccount:other:*\n"),
        ),
    );
    let p = knit.ready("eventpolicies", "p").await;
    assert_eq!(
        p["status"]["from"],
        json!(["system:serviceaccount:other:*"])
    );
    eventually_for("the broker to list p", PATIENCE, || async {
        (policies_of(&knit).await
            == json!([{"apiVersion": "eventing.knative.dev/v1alpha1", "name": "p"}]))
        .then_some(())
    })
    .await;
    answers(&url, "policy.other", Some(&other), 202).await;
    answers(&url, "policy.same", Some(&same), 403).await;

    // Filters: the sender must match and the event pass them.
    knit.write(
        "p.yaml",
        &policy(
            "p",
            &format!("{to_b}from:\n- sub: system:serviceaccount:other:*\nfilters:\n- prefix:\n    type: allowed.\n"),
        ),
    );
    answers(&url, "not.allowed", Some(&other), 403).await;
    answers(&url, "allowed.type", Some(&other), 202).await;

    // A `from.ref` resolves to the sender's subject; one naming nothing leaves the policy,
    // and the Broker it applies to, not Ready.
    let by_ref =
        "from:\n- ref:\n    apiVersion: eventing.knative.dev/v1\n    kind: Trigger\n    name: t\n";
    knit.write("r.yaml", &policy("r", &format!("{to_b}{by_ref}")));
    let r = knit.ready("eventpolicies", "r").await;
    assert_eq!(
        r["status"]["from"],
        json!(["system:serviceaccount:default:t-oidc-eventing.knative.dev-trigger"])
    );
    knit.write(
        "r.yaml",
        &policy(
            "r",
            &format!("{to_b}{}", by_ref.replace("name: t", "name: gone")),
        ),
    );
    eventually_for("r not Ready, and the Broker with it", PATIENCE, || async {
        let r = knit.object("eventpolicies", "r").await?;
        let b = knit.object("brokers", "b").await?;
        let resolved = condition(&r, "SubjectsResolved")?["status"] == "False";
        let broker = condition(&b, "EventPoliciesReady")?["status"] == "False"
            && condition(&b, "Ready")?["status"] == "False";
        (resolved && broker).then_some(())
    })
    .await;
    knit.remove("r.yaml");

    // Without policies the default mode decides again: same namespace only.
    knit.remove("p.yaml");
    answers(&url, "default.same", Some(&same), 202).await;
    answers(&url, "default.other", Some(&other), 403).await;
    knit.write("features.yaml", &features("deny-all"));
    answers(&url, "deny.same", Some(&same), 403).await;
    knit.write("features.yaml", &features("allow-all"));
    answers(&url, "allow.other", Some(&other), 202).await;
}

#[test]
fn admission_refuses_a_sub_with_a_star_inside() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        policy(
            "p",
            "from:\n- sub: system:*:x\n- ref:\n    kind: Trigger\n    name: t\n",
        ),
    )
    .expect("write");
    let (code, _, stderr) = common::cli(&["validate", "-f", path.to_str().expect("utf-8 path")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("spec.from[0].sub"), "{stderr}");
    assert!(stderr.contains("'*' is only allowed as suffix"), "{stderr}");
    assert!(stderr.contains("spec.from[1].ref.apiVersion"), "{stderr}");
}

/// Knative's automatic policies for Sequence and Parallel: under `deny-all`, a policy naming
/// the flow is copied onto its ingress channel, and each inner channel admits the Subscription
/// feeding it, so events go all the way through while nothing else may send.
#[tokio::test]
async fn sequences_and_parallels_admit_their_own_hops_under_deny_all() {
    let step = Sink::start().await;
    step.respond_with(|r| Reply::event("step.done", &format!("{}-step", r.id())));
    let last = Sink::start().await;
    let branch = Sink::start().await;
    let imc = "channelTemplate:\n  apiVersion: messaging.knative.dev/v1\n  kind: InMemoryChannel\n";
    let sequence = format!(
        "apiVersion: flows.knative.dev/v1\nkind: Sequence\nmetadata:\n  name: seq\n  namespace: default\nspec:\n{}",
        common::indent(
            &format!("{imc}steps:\n- uri: {}\n- uri: {}\n", step.url, last.url),
            2
        )
    );
    let parallel = format!(
        "apiVersion: flows.knative.dev/v1\nkind: Parallel\nmetadata:\n  name: par\n  namespace: default\nspec:\n{}",
        common::indent(
            &format!("{imc}branches:\n- subscriber:\n    uri: {}\n", branch.url),
            2
        )
    );
    let to_flows = "to:\n- ref:\n    apiVersion: flows.knative.dev/v1\n    kind: Sequence\n    name: seq\n- ref:\n    apiVersion: flows.knative.dev/v1\n    kind: Parallel\n    name: par\n";
    let (knit, _state) = start(&[
        ("features.yaml", &features("deny-all")),
        ("seq.yaml", &sequence),
        ("par.yaml", &parallel),
    ]);
    let seq = knit.ready("sequences", "seq").await;
    let par = knit.ready("parallels", "par").await;
    let seq_audience = "messaging.knative.dev/inmemorychannel/default/seq-kn-sequence-0";
    let par_audience = "messaging.knative.dev/inmemorychannel/default/par-kn-parallel";
    assert_eq!(seq["status"]["address"]["audience"], json!(seq_audience));
    assert_eq!(par["status"]["address"]["audience"], json!(par_audience));
    let seq_url = knit.address("sequences", "seq").await;
    let par_url = knit.address("parallels", "par").await;
    let sender = "system:serviceaccount:default:sender";
    let to_seq = knit.oidc_token(sender, seq_audience).await;
    let to_par = knit.oidc_token(sender, par_audience).await;

    // The inner channels admit exactly their feeding Subscriptions.
    for (policy, subscription) in [
        ("seq-ep-seq-kn-sequence-1", "seq-kn-sequence-0"),
        ("par-ep-par-kn-parallel-0", "par-kn-parallel-filter-0"),
    ] {
        let p = knit.ready("eventpolicies", policy).await;
        assert_eq!(
            p["status"]["from"],
            json!([format!(
                "system:serviceaccount:default:{subscription}-oidc-messaging.knative.dev-subscription"
            )]),
            "{policy}"
        );
    }
    // deny-all: nobody may send to the flows yet.
    answers(&seq_url, "seq.denied", Some(&to_seq), 403).await;
    answers(&par_url, "par.denied", Some(&to_par), 403).await;

    knit.write(
        "p.yaml",
        &policy("senders", &format!("{to_flows}from:\n- sub: {sender}\n")),
    );
    let copy = knit
        .ready("eventpolicies", "seq-ep-seq-kn-sequence-0")
        .await;
    assert_eq!(copy["status"]["from"], json!([sender]));
    eventually_for("the flows to list the policy", PATIENCE, || async {
        let listed = json!([{"apiVersion": "eventing.knative.dev/v1alpha1", "name": "senders"}]);
        let seq = knit.object("sequences", "seq").await?;
        let par = knit.object("parallels", "par").await?;
        let ready =
            |o: &Value| condition(o, "EventPoliciesReady").is_some_and(|c| c["status"] == "True");
        (seq["status"]["policies"] == listed
            && par["status"]["policies"] == listed
            && ready(&seq)
            && ready(&par))
        .then_some(())
    })
    .await;
    answers(&seq_url, "seq.allowed", Some(&to_seq), 202).await;
    answers(&par_url, "par.allowed", Some(&to_par), 202).await;
    eventually_for("the event through both steps", PATIENCE, || async {
        last.received()
            .iter()
            .any(|r| r.id().starts_with("seq.allowed-"))
            .then_some(())
    })
    .await;
    eventually_for("the event through the branch", PATIENCE, || async {
        branch
            .received()
            .iter()
            .any(|r| r.id().starts_with("par.allowed-"))
            .then_some(())
    })
    .await;
}

#[test]
fn an_event_policy_without_oidc_is_refused_at_admission() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("p.yaml"),
        policy("p", "from:\n- sub: system:serviceaccount:default:x\n"),
    )
    .expect("write");
    let arg = dir.path().to_str().expect("utf-8 path").to_string();
    let (code, _, stderr) = common::cli(&["validate", "-f", &arg]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("p.yaml:0: EventPolicy/p: spec: ")
            && stderr.contains("authentication-oidc: enabled"),
        "{stderr}"
    );
    std::fs::write(dir.path().join("features.yaml"), features("allow-all")).expect("write");
    let (code, _, stderr) = common::cli(&["validate", "-f", &arg]);
    assert_eq!(code, 0, "{stderr}");
}
