//! Serving end to end through the binary, with a real HTTP app as the revision
//! (`tests/apps/hello.py`, a stand-in for the helloworld images: the samples' `image` stays,
//! a `command` is added). Requests go to the gateway with the Service's Host.

mod common;

use std::collections::BTreeMap;

use common::{Knit, broker, condition, eventually, http, shared_dir};
use serde_json::Value;

fn app() -> String {
    common::repo("tests/apps/hello.py")
        .to_string_lossy()
        .into_owned()
}

/// A sample from `../shared/knative-samples/` with `command` added to every container.
fn sample(file: &str) -> String {
    let text =
        std::fs::read_to_string(shared_dir().join("knative-samples").join(file)).expect("sample");
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).expect("sample YAML");
    docs.into_iter()
        .map(|mut d| {
            add_command(&mut d);
            format!("---\n{}", serde_saphyr::to_string(&d).expect("yaml"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn add_command(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(cs)) = map.get_mut("containers") {
                for c in cs {
                    if let Value::Object(c) = c {
                        c.entry("command")
                            .or_insert_with(|| serde_json::json!(["python3", app()]));
                    }
                }
            }
            map.values_mut().for_each(add_command);
        }
        Value::Array(items) => items.iter_mut().for_each(add_command),
        _ => {}
    }
}

fn service(name: &str, annotations: &[(&str, &str)], extra_spec: &str, env: &str) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("        {k}: \"{v}\"\n"))
        .collect();
    let ann = if ann.is_empty() {
        String::new()
    } else {
        format!("    metadata:\n      annotations:\n{ann}")
    };
    format!(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  template:\n{ann}    spec:\n{extra_spec}      containers:\n        - image: example.com/hello\n          command: [\"python3\", \"{}\"]\n          env:\n            - name: TARGET\n              value: \"{env}\"\n",
        app()
    )
}

/// GET `path` from the gateway with `Host: host`: (status, revision that answered, body).
async fn get(
    knit: &Knit,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    get_with(&http(), knit, host, path, headers).await
}

/// [`get`] on a given client (keep-alive across many requests).
async fn get_with(
    client: &reqwest::Client,
    knit: &Knit,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = client
        .get(format!("{}{path}", knit.gateway))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("gateway");
    let status = resp.status().as_u16();
    let rev = resp
        .headers()
        .get("x-revision")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, rev, resp.text().await.unwrap_or_default())
}

fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o["status"]["annotations"][key]
        .as_str()
        .or_else(|| o["metadata"]["annotations"][key].as_str())
}

#[tokio::test]
async fn the_helloworld_sample_configuration_and_route_serve() {
    let knit = Knit::start(&[(
        "hello.yaml",
        &sample("serving__test__test_images__helloworld__helloworld.yaml"),
    )]);
    let route = knit.ready("routes", "route-example").await;
    let url = route["status"]["url"].as_str().expect("url").to_string();
    let gateway_port = knit.gateway.rsplit(':').next().unwrap_or_default();
    assert_eq!(
        url,
        format!("http://route-example.default.localhost:{gateway_port}")
    );
    assert_eq!(
        route["status"]["traffic"][0]["revisionName"],
        "configuration-example-00001"
    );
    let config = knit.ready("configurations", "configuration-example").await;
    assert_eq!(
        config["status"]["latestReadyRevisionName"],
        "configuration-example-00001"
    );
    let (status, rev, body) = get(
        &knit,
        &format!("route-example.default.localhost:{gateway_port}"),
        "/",
        &[],
    )
    .await;
    assert_eq!(
        (status, rev.as_str(), body.as_str()),
        (200, "configuration-example-00001", "Hello World!\n")
    );
    let (code, out, err) = knit.cli(&["logs", "ksvc/configuration-example"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[configuration-example-00001/1] listening on"),
        "{out}"
    );
}

#[tokio::test]
async fn the_traffic_split_sample_splits_within_five_percent() {
    // First generation (TARGET=World), then the sample: a second generation with 50/50.
    let first = service("hello", &[], "", "World");
    let knit = Knit::start(&[("hello.yaml", &first)]);
    knit.ready("ksvc", "hello").await;
    knit.write(
        "hello.yaml",
        &sample("docs__docs__versioned__getting-started__first-traffic-split.md.block01.yaml"),
    );
    let svc = eventually("the second revision to be ready", || async {
        let o = knit.object("ksvc", "hello").await?;
        (o["status"]["latestReadyRevisionName"] == "hello-00002"
            && condition(&o, "Ready")?["status"] == "True")
            .then_some(o)
    })
    .await;
    assert_eq!(svc["status"]["traffic"].as_array().map(Vec::len), Some(2));
    let mut by_rev: BTreeMap<String, u32> = BTreeMap::new();
    let client = http();
    for _ in 0..2000 {
        let (status, rev, _) = get_with(&client, &knit, "hello.default.localhost", "/", &[]).await;
        assert_eq!(status, 200);
        *by_rev.entry(rev).or_default() += 1;
    }
    for rev in ["hello-00001", "hello-00002"] {
        let n = by_rev.get(rev).copied().unwrap_or(0);
        assert!((900..=1100).contains(&n), "{rev}: {n} of 2000 ({by_rev:?})");
    }
}

#[tokio::test]
async fn tags_have_their_own_host_and_the_tag_header() {
    let dir = "docs__code-samples__serving__tag-header-based-routing__sample.yaml";
    let docs: Vec<String> = sample(dir)
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(docs.len(), 2);
    let features = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-features\n  namespace: knative-serving\ndata:\n  tag-header-based-routing: enabled\n";
    let knit = Knit::start(&[("svc.yaml", &docs[0]), ("features.yaml", features)]);
    knit.ready("ksvc", "tag-header").await;
    knit.write("svc.yaml", &docs[1]);
    eventually("the second revision to take the traffic", || async {
        let o = knit.object("ksvc", "tag-header").await?;
        (o["status"]["latestReadyRevisionName"] == "tag-header-revision-2"
            && condition(&o, "Ready")?["status"] == "True")
            .then_some(())
    })
    .await;
    let (_, rev, body) = get(&knit, "tag-header.default.localhost", "/", &[]).await;
    assert_eq!(
        (rev.as_str(), body.as_str()),
        ("tag-header-revision-2", "Hello Second Revision!\n")
    );
    let (_, rev, _) = get(&knit, "rev1-tag-header.default.localhost", "/", &[]).await;
    assert_eq!(rev, "tag-header-revision-1");
    let (_, rev, _) = get(
        &knit,
        "tag-header.default.localhost",
        "/",
        &[("Knative-Serving-Tag", "rev1")],
    )
    .await;
    assert_eq!(rev, "tag-header-revision-1");
    let svc = knit.ready("ksvc", "tag-header").await;
    let tagged = svc["status"]["traffic"]
        .as_array()
        .and_then(|t| t.iter().find(|x| x["tag"] == "rev1"))
        .cloned()
        .unwrap_or_default();
    assert!(
        tagged["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://rev1-tag-header.default.localhost:")),
        "{tagged}"
    );
}

/// Short windows: a 6 s stable window (Knative's minimum) and a 1 s scale-to-zero grace.
fn fast_zero() -> String {
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-autoscaler\n  namespace: knative-serving\ndata:\n  scale-to-zero-grace-period: \"1s\"\n  stable-window: \"6s\"\n".into()
}

async fn wait_for_zero(knit: &Knit, name: &str) -> Value {
    let rev = format!("{name}-00001");
    common::eventually_for(
        &format!("{rev} to scale to zero"),
        std::time::Duration::from_secs(60),
        || async {
            let o = knit.object("revisions", &rev).await?;
            (o["status"]["actualReplicas"] == 0 && condition(&o, "Ready")?["status"] == "True")
                .then_some(o)
        },
    )
    .await
}

#[tokio::test]
async fn a_revision_scales_to_zero_and_the_next_request_is_answered() {
    let knit = Knit::start(&[
        ("autoscaler.yaml", &fast_zero()),
        (
            "svc.yaml",
            &service(
                "sleepy",
                &[("autoscaling.knative.dev/window", "6s")],
                "",
                "Zero",
            ),
        ),
    ]);
    knit.ready("ksvc", "sleepy").await;
    let (status, _, _) = get(&knit, "sleepy.default.localhost", "/", &[]).await;
    assert_eq!(status, 200);
    let rev = wait_for_zero(&knit, "sleepy").await;
    assert_eq!(
        condition(&rev, "Active").map(|c| c["status"].clone()),
        Some(Value::from("False"))
    );
    // At zero: the request waits for a new replica and is answered, not failed.
    let (status, _, body) = get(&knit, "sleepy.default.localhost", "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "Hello Zero!\n"));
    let rev = eventually("the cold start to be shown", || async {
        let o = knit.object("revisions", "sleepy-00001").await?;
        annotation(&o, "serving.knit.dev/last-cold-start-ms")
            .map(|_| o.clone())
            .or_else(|| o["status"]["lastColdStartMs"].as_u64().map(|_| o.clone()))
    })
    .await;
    assert_eq!(rev["status"]["actualReplicas"], 1, "{rev}");
    let (code, out, err) = knit.cli(&["describe", "revision", "sleepy-00001"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("serving.knit.dev/last-cold-start-ms"), "{out}");
}

#[tokio::test]
async fn events_sent_to_a_service_at_zero_are_delivered() {
    let trigger = "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: to-svc\n  namespace: default\nspec:\n  broker: default\n  subscriber:\n    ref:\n      apiVersion: serving.knative.dev/v1\n      kind: Service\n      name: events\n";
    let knit = Knit::start(&[
        ("autoscaler.yaml", &fast_zero()),
        ("broker.yaml", &broker("default", "")),
        (
            "svc.yaml",
            &service(
                "events",
                &[("autoscaling.knative.dev/window", "6s")],
                "",
                "Events",
            ),
        ),
        ("trigger.yaml", trigger),
    ]);
    let url = knit.address("brokers", "default").await;
    let t = knit.ready("triggers", "to-svc").await;
    let svc = knit.ready("ksvc", "events").await;
    assert_eq!(
        t["status"]["subscriberUri"], svc["status"]["address"]["url"],
        "{t}"
    );
    wait_for_zero(&knit, "events").await;
    for i in 0..5 {
        let r = common::send(&url, "zero.test", &format!("z-{i}")).await;
        assert_eq!(r.status().as_u16(), 202);
    }
    eventually("the five events at the app", || async {
        let (_, out, _) = knit.cli(&["logs", "ksvc/events"]);
        (0..5)
            .all(|i| out.contains(&format!("event z-{i} zero.test")))
            .then_some(())
    })
    .await;
    let stats = knit.api("/api/v1/stats").await;
    assert_eq!(
        stats["egresses"]["Trigger/default/to-svc"]["delivered"], 5,
        "{stats}"
    );
}

#[tokio::test]
async fn an_image_without_a_command_says_to_set_one() {
    let svc = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: image-only\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n        - image: ghcr.io/knative/helloworld-go:latest\n";
    let knit = Knit::start(&[("svc.yaml", svc)]);
    let rev = eventually("the revision to say why it cannot run", || async {
        let o = knit.object("revisions", "image-only-00001").await?;
        (condition(&o, "Ready")?["status"] == "False").then_some(o)
    })
    .await;
    let ready = condition(&rev, "Ready").expect("Ready");
    assert_eq!(ready["reason"], "ImageNotRunnableLocally");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or_default()
            .contains("command"),
        "{ready}"
    );
}

#[tokio::test]
async fn the_autoscale_sample_runs_and_the_hpa_class_says_it_is_not_run() {
    let hpa = service(
        "hpa",
        &[
            (
                "autoscaling.knative.dev/class",
                "hpa.autoscaling.knative.dev",
            ),
            ("autoscaling.knative.dev/metric", "cpu"),
        ],
        "",
        "HPA",
    );
    let knit = Knit::start(&[
        (
            "autoscale.yaml",
            &sample("docs__docs__versioned__serving__autoscaling__autoscale-go__service.yaml"),
        ),
        ("hpa.yaml", &hpa),
    ]);
    knit.ready("ksvc", "autoscale-go").await;
    let (status, rev, _) = get(&knit, "autoscale-go.default.localhost", "/", &[]).await;
    assert_eq!((status, rev.as_str()), (200, "autoscale-go-00001"));
    let r = eventually("the HPA revision's verdict", || async {
        let o = knit.object("revisions", "hpa-00001").await?;
        (condition(&o, "Ready")?["status"] == "False").then_some(o)
    })
    .await;
    let ready = condition(&r, "Ready").expect("Ready");
    assert_eq!(ready["reason"], "UnsupportedAutoscalerClass", "{ready}");
}

/// A Service whose app answers every event with a reply of type `from.svc`, and a tag `cur`
/// on its latest revision.
fn replier() -> String {
    format!(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: replier\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n        - image: example.com/hello\n          command: [\"python3\", \"{}\"]\n          env:\n            - name: REPLY_TYPE\n              value: from.svc\n  traffic:\n    - latestRevision: true\n      percent: 100\n    - latestRevision: true\n      percent: 0\n      tag: cur\n",
        app()
    )
}

/// Knative resolves a reference to a Service to its `status.address.url`, the cluster-local
/// `http://NAME.NS.svc.cluster.local`: Triggers and Subscriptions say so, and Knit's deliveries
/// reach that host (and a tag's, and a channel's) on its own listeners; a Kubernetes Service's
/// host names nothing here, and the journey says so.
#[tokio::test]
async fn eventing_reaches_a_ksvc_at_its_cluster_local_address() {
    let sink = common::sink::Sink::start().await;
    let ksvc = |name: &str, ty: &str, extra: &str| {
        format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  broker: default\n  filter: {{attributes: {{type: {ty}}}}}\n{extra}"
        )
    };
    let triggers = [
        ksvc(
            "to-svc",
            "to.svc",
            "  subscriber:\n    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: replier}\n",
        ),
        ksvc(
            "to-tag",
            "to.tag",
            "  subscriber:\n    uri: http://cur-replier.default.svc.cluster.local/tagged\n",
        ),
        ksvc(
            "to-channel",
            "to.channel",
            "  subscriber:\n    uri: http://ch-kn-channel.default.svc.cluster.local\n",
        ),
        ksvc(
            "to-k8s",
            "to.k8s",
            "  subscriber:\n    ref: {apiVersion: v1, kind: Service, name: backend}\n  delivery: {retry: 0}\n",
        ),
        ksvc(
            "replies",
            "from.svc",
            &format!("  subscriber:\n    uri: {}\n", sink.url),
        ),
    ]
    .join("---\n");
    let channel = "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata:\n  name: ch\n  namespace: default\n---\napiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata:\n  name: sub\n  namespace: default\nspec:\n  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: ch}\n  subscriber:\n    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: replier}\n  reply:\n    ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}\n";
    let knit = Knit::start(&[
        ("broker.yaml", &broker("default", "")),
        ("svc.yaml", &replier()),
        ("triggers.yaml", &triggers),
        ("channel.yaml", channel),
    ]);
    let url = knit.address("brokers", "default").await;
    let svc = knit.ready("ksvc", "replier").await;
    let address = svc["status"]["address"]["url"].as_str().expect("address");
    assert_eq!(address, "http://replier.default.svc.cluster.local");
    let t = knit.ready("triggers", "to-svc").await;
    assert_eq!(t["status"]["subscriberUri"], address, "{t}");
    let sub = knit.ready("subscriptions", "sub").await;
    assert_eq!(
        sub["status"]["physicalSubscription"]["subscriberUri"], address,
        "{sub}"
    );
    for name in ["to-tag", "to-channel", "replies"] {
        knit.ready("triggers", name).await;
    }
    let k8s = knit.ready("triggers", "to-k8s").await;
    assert_eq!(
        k8s["status"]["subscriberUri"],
        "http://backend.default.svc.cluster.local"
    );

    // Trigger → ksvc → reply; a tag's host → its revision → reply; a channel's host → the
    // channel → Subscription → ksvc → reply into the broker.
    for (ty, id) in [("to.svc", "e1"), ("to.tag", "g1"), ("to.channel", "c1")] {
        assert_eq!(common::send(&url, ty, id).await.status(), 202);
    }
    let replies = sink.wait_for(3).await;
    let mut ids: Vec<String> = replies.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, ["reply-c1", "reply-e1", "reply-g1"]);
    let (_, out, _) = knit.cli(&["logs", "ksvc/replier"]);
    for want in [
        "event e1 to.svc /",
        "event g1 to.tag /tagged",
        "event c1 to.channel /",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }

    // A Kubernetes Service's host: the attempt fails at once, saying why.
    assert_eq!(common::send(&url, "to.k8s", "k1").await.status(), 202);
    let journey = eventually("the journey of k1 to settle", || async {
        let j = knit.api("/api/v1/events/default/default/k1").await;
        let egresses = j["egresses"].as_array()?;
        let e = egresses.iter().find(|e| e["name"] == "to-k8s")?;
        (e["outcome"] != "inFlight").then_some(j.clone())
    })
    .await;
    assert!(
        journey.to_string().contains(
            "no such service in this process: nothing here serves backend.default.svc.cluster.local"
        ),
        "{journey}"
    );
}
