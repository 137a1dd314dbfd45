//! ApiServerSource end to end through the `knit` binary: a fake API server served in-process
//! (list + watch with resourceVersions, bookmarks, a watch ended by 410 Gone), the source
//! sending to a Broker, a Trigger delivering to a recording sink.

mod common;
#[path = "common/fake_kube.rs"]
mod fake_kube;

use std::collections::BTreeSet;

use common::sink::{Received, Sink};
use common::{Knit, broker, condition, eventually, trigger};
use fake_kube::{FakeKube, default_kinds};
use serde_json::{Value, json};

fn source(mode: &str) -> String {
    format!(
        "apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata:
  name: watcher
  namespace: default
spec:
  mode: {mode}
  resources:
    - apiVersion: v1
      kind: Pod
      selector:
        matchLabels:
          app: web
  ceOverrides:
    extensions:
      origin: fake-kube
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: b
"
    )
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "labels": labels}})
}

/// (type suffix, object name) of each event received.
fn seen(received: &[Received]) -> BTreeSet<(String, String)> {
    received
        .iter()
        .map(|r| {
            let ty = r.header("ce-type").unwrap_or_default();
            let subject = r.header("ce-subject").unwrap_or_default();
            (
                ty.trim_start_matches("dev.knative.apiserver.ref.")
                    .to_string(),
                subject.rsplit('/').next().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn until_seen(sink: &Sink, ty: &str, name: &str) -> Vec<Received> {
    eventually(&format!("{ty} of {name} at the sink"), || async {
        let r = sink.received();
        seen(&r)
            .contains(&(ty.to_string(), name.to_string()))
            .then_some(r)
    })
    .await
}

#[tokio::test]
async fn apiserversource_to_broker_to_trigger_with_a_410_relist() {
    let kube = FakeKube::start(default_kinds()).await;
    kube.put("Pod", pod("existing", json!({"app": "web"})));
    let sink = Sink::start().await;
    let kubeconfig = kube.kubeconfig().to_string_lossy().into_owned();
    let knit = Knit::start_with(
        &[
            ("b.yaml", &broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
            ("s.yaml", &source("Reference")),
        ],
        &["--kubeconfig", &kubeconfig],
    );
    knit.ready("triggers", "t").await;
    let src = knit.ready("apiserversources", "watcher").await;
    let attrs = src["status"]["ceAttributes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(attrs.len(), 3, "{src}");
    assert!(
        attrs
            .iter()
            .all(|a| a["source"].as_str() == Some(kube.url.as_str())),
        "ceAttributes name the API server: {src}"
    );

    kube.put("Pod", pod("new", json!({"app": "web"})));
    kube.put("Pod", pod("unlabelled", json!({})));
    kube.put("Pod", pod("new", json!({"app": "web", "v": "2"})));
    until_seen(&sink, "update", "new").await;

    // The watch stalls, things change, and it ends with 410 Gone: the re-list reports the
    // changes and nothing that was already known.
    kube.bookmark();
    kube.hold();
    kube.delete("Pod", "default", "new");
    kube.put("Pod", pod("later", json!({"app": "web"})));
    kube.gone();
    until_seen(&sink, "delete", "new").await;
    kube.put("Pod", pod("sentinel", json!({"app": "web"})));
    let received = until_seen(&sink, "add", "sentinel").await;

    assert_eq!(
        seen(&received),
        set(&[
            ("add", "new"),
            ("update", "new"),
            ("delete", "new"),
            ("add", "later"),
            ("add", "sentinel"),
        ])
    );
    assert_eq!(received.len(), 5, "no duplicates: {:?}", seen(&received));
    let add = received
        .iter()
        .find(|r| r.header("ce-subject").as_deref() == Some("/apis/v1/namespaces/default/pods/new"))
        .expect("an event about pod new");
    assert_eq!(add.header("ce-source").as_deref(), Some(kube.url.as_str()));
    assert_eq!(add.header("ce-kind").as_deref(), Some("Pod"));
    assert_eq!(add.header("ce-apiversion").as_deref(), Some("v1"));
    assert_eq!(add.header("ce-name").as_deref(), Some("new"));
    assert_eq!(add.header("ce-namespace").as_deref(), Some("default"));
    assert_eq!(add.header("ce-origin").as_deref(), Some("fake-kube"));
    let body: Value = serde_json::from_slice(&add.body).expect("json data");
    assert_eq!(
        body,
        json!({"kind": "Pod", "namespace": "default", "name": "new", "apiVersion": "v1"})
    );
}

#[tokio::test]
async fn without_a_kubeconfig_the_source_is_not_ready_and_says_why() {
    let sink = Sink::start().await;
    let knit = Knit::start(&[
        ("b.yaml", &broker("b", "")),
        ("s.yaml", &source("Resource")),
        ("t.yaml", &trigger("t", "b", &sink.url, "")),
    ]);
    knit.ready("triggers", "t").await;
    eventually("ApiServerSource to say NoKubernetesAPI", || async {
        let o = knit.object("apiserversources", "watcher").await?;
        let ready = condition(&o, "Ready")?;
        let mentions = o["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["reason"] == "NoKubernetesAPI");
        (ready["status"] == "False" && mentions).then_some(())
    })
    .await;
}
