//! `knit install --print` (issue #22 §5): the Kubernetes manifests it prints are valid for
//! Kubernetes 1.34, checked by `kubernetes-validate` (PyPI, in the venv scripts/test makes,
//! found through `KNIT_PYTHON` as tests/oidc.rs finds PyJWT), and say what the issue asks: a
//! Deployment of `knit run` on the engine, its replica id from the pod's name, the ConfigMap of
//! manifests mounted as the watched folder, `/healthz` and `/readyz` as probes, a grace period
//! for the drain; a Service for the ingress; a PodDisruptionBudget. The probes answer without the
//! admin token (a kubelet has none).

mod common;

use std::process::Command;

use common::{Knit, broker, cli, http, trigger};
use serde_json::Value;

/// The Kubernetes version the manifests are checked against.
const KUBERNETES: &str = "1.34.0";

/// `kubernetes-validate --strict` on `yaml` against [`KUBERNETES`]: its exit status and output.
fn kubernetes_validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("knit.yaml");
    std::fs::write(&file, yaml).expect("write");
    let python = std::env::var("KNIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args(["-m", "kubernetes_validate", "--strict", "-k", KUBERNETES])
        .arg(&file)
        .output()
        .expect("python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named kubernetes_validate"),
        "kubernetes-validate is not installed for {:?} (scripts/test installs it)",
        std::env::var("KNIT_PYTHON")
    );
    (out.status.success(), text)
}

/// The documents of multi-document YAML.
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(yaml).expect("YAML documents")
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {docs:?}"))
}

fn env_var<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no env {name}: {container}"))
}

/// A folder of Knit manifests: a Broker and a Trigger.
fn manifests() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("broker.yaml"), broker("b", "")).expect("write");
    std::fs::write(
        dir.path().join("trigger.yaml"),
        trigger("t", "b", "http://sink.example/", ""),
    )
    .expect("write");
    dir
}

/// The Deployment's pod template and its one container.
fn pod_and_container(docs: &[Value]) -> (Value, Value) {
    let pod = of_kind(docs, "Deployment")["spec"]["template"]["spec"].clone();
    let container = pod["containers"][0].clone();
    (pod, container)
}

#[test]
fn the_printed_manifests_are_valid_kubernetes_1_34_and_run_knit_as_replicas() {
    let dir = manifests();
    let dir_arg = dir.path().to_string_lossy().to_string();
    let (code, yaml, err) = cli(&[
        "install",
        "--print",
        "--kafka",
        "kafka-0.kafka:9092",
        "--replicas",
        "3",
        "-f",
        &dir_arg,
    ]);
    assert_eq!(code, 0, "{err}");
    let (valid, report) = kubernetes_validate(&yaml);
    assert!(valid, "kubernetes-validate {KUBERNETES}:\n{report}\n{yaml}");

    let docs = documents(&yaml);
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    );
    let cm = of_kind(&docs, "ConfigMap");
    for file in ["broker.yaml", "trigger.yaml"] {
        let text = std::fs::read_to_string(dir.path().join(file)).expect("read");
        assert_eq!(
            cm["data"][file],
            text.as_str(),
            "{file} is a key of the ConfigMap"
        );
    }
    let deployment = of_kind(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let (pod, container) = pod_and_container(&docs);
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let watched = args
        .windows(2)
        .find(|w| w[0] == "-f")
        .map(|w| w[1])
        .expect("-f");
    assert!(
        args.windows(2)
            .any(|w| w == ["--kafka", "kafka-0.kafka:9092"]),
        "{args:?}"
    );
    let mount = container["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["mountPath"] == watched))
        .expect("the watched folder is mounted");
    let volume = pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
        .expect("its volume");
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"]);
    assert_eq!(
        env_var(&container, "KNIT_REPLICA_ID")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64() > Some(24),
        "{pod}"
    );

    let service = of_kind(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "ingress");
    let pdb = of_kind(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    for selector in [
        &service["spec"]["selector"],
        &pdb["spec"]["selector"]["matchLabels"],
    ] {
        assert_eq!(
            *selector,
            deployment["spec"]["template"]["metadata"]["labels"]
        );
    }
}

#[test]
fn on_nats_with_an_image_and_no_manifests_it_is_valid_too() {
    let (code, yaml, err) = cli(&[
        "install",
        "--print",
        "--nats",
        "nats://nats:4222",
        "--image",
        "registry.example/knit:1",
        "-n",
        "events",
    ]);
    assert_eq!(code, 0, "{err}");
    let (valid, report) = kubernetes_validate(&yaml);
    assert!(valid, "kubernetes-validate {KUBERNETES}:\n{report}\n{yaml}");
    let docs = documents(&yaml);
    assert!(docs.iter().all(|d| d["metadata"]["namespace"] == "events"));
    let (_, container) = pod_and_container(&docs);
    assert_eq!(container["image"], "registry.example/knit:1");
    let args = container["args"].to_string();
    assert!(args.contains("\"--nats\",\"nats://nats:4222\""), "{args}");
    assert_eq!(of_kind(&docs, "Deployment")["spec"]["replicas"], 3);
}

#[test]
fn invalid_manifests_or_no_engine_print_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\nspec: {}\n",
    )
    .expect("write");
    let dir_arg = dir.path().to_string_lossy().to_string();
    let (code, out, err) = cli(&["install", "--print", "--kafka", "k:9092", "-f", &dir_arg]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("bad.yaml"), "{err}");

    let (code, out, err) = cli(&["install", "--print"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("--kafka") && err.contains("--nats"), "{err}");
}

#[tokio::test]
async fn the_probes_answer_without_the_admin_token_and_readyz_once_the_broker_runs() {
    let knit = Knit::start_with(
        &[("b.yaml", &broker("b", ""))],
        &["--admin-token", "secret"],
    );
    let healthz = http()
        .get(format!("{}/healthz", knit.admin))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200);
    common::eventually("/readyz to answer 200 without a token", || async {
        let r = http()
            .get(format!("{}/readyz", knit.admin))
            .send()
            .await
            .ok()?;
        let status = r.status();
        let body: Value = r.json().await.ok()?;
        (status == 200 && body["ready"] == true).then_some(())
    })
    .await;
    let api = http()
        .get(format!("{}/api/v1/stats", knit.admin))
        .send()
        .await
        .expect("stats");
    assert_eq!(api.status(), 401, "the API itself still needs the token");
}
