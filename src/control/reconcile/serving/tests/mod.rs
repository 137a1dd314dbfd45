//! Serving reconciled without I/O: naming, history, statuses from a report, traffic, URLs,
//! sinks and the Contract.

use knit_crds::contract::{ObjectReport, Report};
use knit_crds::{Kind, Object, ObjectKey};
use serde_json::Value;

use super::super::{Env, Output, PreviousConditions, reconcile};

pub(super) use crate::control::testing::stored as load;

pub(super) fn env() -> Env {
    Env {
        ingress_url: "http://127.0.0.1:8080".into(),
        gateway_url: "http://127.0.0.1:8081".into(),
        kafka: None,
        nats: None,
        tls: None,
    }
}

/// Reconcile `objects` plus the `history` of a previous run.
pub(super) fn run_with(objects: &[Object], history: &[Object], report: &Report) -> Output {
    let input: Vec<Object> = history.iter().chain(objects).cloned().collect();
    reconcile(
        &input,
        &PreviousConditions::default(),
        &env(),
        report,
        "2026-01-01T00:00:00Z",
    )
}

pub(super) fn run(yaml: &str) -> Output {
    run_with(&load(yaml, 1), &[], &Report::default())
}

pub(super) fn get(out: &Output, kind: Kind, name: &str) -> Value {
    out.objects
        .iter()
        .find(|o| o.key() == ObjectKey::new(kind, "default", name))
        .map(Object::to_json)
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

pub(super) fn has(out: &Output, kind: Kind, name: &str) -> bool {
    out.objects
        .iter()
        .any(|o| o.key() == ObjectKey::new(kind, "default", name))
}

pub(super) fn cond(v: &Value, type_: &str) -> (String, String) {
    let c = v["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("{type_} in {v}"));
    (
        c["status"].as_str().unwrap_or("").into(),
        c["reason"].as_str().unwrap_or("").into(),
    )
}

pub(super) fn uid(out: &Output, kind: Kind, name: &str) -> String {
    get(out, kind, name)["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string()
}

/// A report: each revision ready (or not, with a reason) and its replicas.
pub(super) fn report(out: &Output, revs: &[(&str, bool, &str, i32)]) -> Report {
    let mut r = Report::default();
    for (name, ready, reason, replicas) in revs {
        let mut o = ObjectReport {
            ready: *ready,
            reason: reason.to_string(),
            message: if *ready {
                String::new()
            } else {
                "exit status 1".into()
            },
            ..Default::default()
        };
        o.annotations
            .insert("actualReplicas".into(), replicas.to_string());
        o.annotations
            .insert("desiredReplicas".into(), replicas.to_string());
        o.annotations.insert("lastColdStartMs".into(), "42".into());
        r.objects.insert(uid(out, Kind::Revision, name), o);
    }
    r
}

pub(super) fn hello(target: &str, extra: &str) -> String {
    format!(
        "
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: hello}}
spec:
  template:
    metadata:
      annotations: {{autoscaling.knative.dev/min-scale: '1'}}
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: [python3, -m, http.server]
          args: ['$(PORT)']
          workingDir: /tmp
          env: [{{name: TARGET, value: {target}}}]
          readinessProbe: {{httpGet: {{path: /healthz}}, periodSeconds: 1}}
          ports: [{{containerPort: 8080}}]
{extra}"
    )
}

#[test]
fn a_service_derives_configuration_route_and_first_revision() {
    let out = run(&hello("v1", ""));
    assert!(has(&out, Kind::Configuration, "hello"));
    assert!(has(&out, Kind::Route, "hello"));
    let rev = get(&out, Kind::Revision, "hello-00001");
    assert_eq!(
        rev["metadata"]["labels"]["serving.knative.dev/configurationGeneration"],
        "1"
    );
    assert_eq!(
        rev["metadata"]["labels"]["serving.knative.dev/service"],
        "hello"
    );
    assert_eq!(rev["spec"]["timeoutSeconds"], 300);
    assert_eq!(rev["spec"]["containers"][0]["name"], "user-container");
    assert_eq!(cond(&rev, "Ready").0, "Unknown");
    let s = get(&out, Kind::Service, "hello");
    assert_eq!(s["status"]["latestCreatedRevisionName"], "hello-00001");
    assert!(s["status"].get("latestReadyRevisionName").is_none());
    assert_eq!(s["status"]["url"], "http://hello.default.localhost:8081");
    assert_eq!(
        s["status"]["address"]["url"],
        "http://hello.default.svc.cluster.local"
    );
    assert_eq!(cond(&s, "Ready").0, "Unknown");
    assert_eq!(
        cond(&s, "RoutesReady"),
        ("Unknown".into(), "RevisionMissing".into())
    );
    // The revision runs (so it can become ready); the route waits for it.
    let c = &out.contract.serving;
    assert_eq!(c.revisions.len(), 1);
    let r = &c.revisions[0];
    assert_eq!(
        r.container.argv,
        ["python3", "-m", "http.server", "$(PORT)"]
    );
    assert_eq!(r.container.env, [("TARGET".to_string(), "v1".to_string())]);
    assert_eq!(r.container.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(r.container.port, Some(8080));
    let probe = r.container.readiness.as_ref().expect("readiness");
    assert_eq!(probe.http_path.as_deref(), Some("/healthz"));
    assert_eq!(probe.period_seconds, 1);
    assert_eq!(r.timeout_seconds, 300);
    assert_eq!(r.configuration, "hello");
    assert_eq!(r.service.as_deref(), Some("hello"));
    assert_eq!(
        r.autoscaling
            .get("autoscaling.knative.dev/min-scale")
            .map(String::as_str),
        Some("1")
    );
    assert!(r.routed, "a latestRevision target names it once ready");
    assert!(c.routes.is_empty());
}

#[test]
fn a_ready_report_makes_everything_ready() {
    let objects = load(&hello("v1", ""), 1);
    let first = run_with(&objects, &[], &Report::default());
    let rep = report(&first, &[("hello-00001", true, "", 2)]);
    let out = run_with(&objects, &first.history, &rep);
    let rev = get(&out, Kind::Revision, "hello-00001");
    assert_eq!(cond(&rev, "Ready").0, "True");
    assert_eq!(cond(&rev, "Active").0, "True");
    assert_eq!(rev["status"]["actualReplicas"], 2);
    assert_eq!(rev["status"]["desiredReplicas"], 2);
    assert_eq!(
        rev["status"]["annotations"]["serving.knit.dev/last-cold-start-ms"],
        "42"
    );
    assert_eq!(
        rev["metadata"]["labels"]["serving.knative.dev/routingState"],
        "active"
    );
    let s = get(&out, Kind::Service, "hello");
    assert_eq!(cond(&s, "Ready").0, "True");
    assert_eq!(cond(&s, "ConfigurationsReady").0, "True");
    assert_eq!(s["status"]["latestReadyRevisionName"], "hello-00001");
    assert_eq!(s["status"]["traffic"][0]["revisionName"], "hello-00001");
    assert_eq!(s["status"]["traffic"][0]["percent"], 100);
    assert_eq!(s["status"]["traffic"][0]["latestRevision"], true);
    assert!(s["status"]["traffic"][0].get("configurationName").is_none());
    let rt = get(&out, Kind::Route, "hello");
    for c in [
        "AllTrafficAssigned",
        "IngressReady",
        "CertificateProvisioned",
        "Ready",
    ] {
        assert_eq!(cond(&rt, c).0, "True", "{c}");
    }
    let routes = &out.contract.serving.routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0].hosts,
        [
            "hello.default.localhost",
            "hello.default.svc.cluster.local",
            "hello.default.svc"
        ]
    );
    assert_eq!(routes[0].traffic.len(), 1);
    assert_eq!(routes[0].traffic[0].revision, "hello-00001");
    assert_eq!(routes[0].traffic[0].percent, 100);

    // At zero, still ready; Active says NoTraffic.
    let rep = report(&first, &[("hello-00001", true, "", 0)]);
    let out = run_with(&objects, &first.history, &rep);
    let rev = get(&out, Kind::Revision, "hello-00001");
    assert_eq!(cond(&rev, "Ready").0, "True");
    assert_eq!(cond(&rev, "Active"), ("False".into(), "NoTraffic".into()));
}

#[test]
fn a_second_generation_keeps_the_first_and_latest_ready_stays_on_the_good_one() {
    let v1 = load(&hello("v1", ""), 1);
    let first = run_with(&v1, &[], &Report::default());
    // The same spec again stamps nothing new; a traffic-only change neither.
    let again = run_with(&v1, &first.history, &Report::default());
    assert_eq!(again.history.len(), 1);
    let v2 = load(&hello("v2", ""), 2);
    let second = run_with(&v2, &again.history, &Report::default());
    assert!(has(&second, Kind::Revision, "hello-00001"));
    let r2 = get(&second, Kind::Revision, "hello-00002");
    assert_eq!(r2["spec"]["containers"][0]["env"][0]["value"], "v2");
    assert_eq!(
        get(&second, Kind::Revision, "hello-00001")["spec"]["containers"][0]["env"][0]["value"],
        "v1",
        "revisions are immutable"
    );
    // Stamped at the time of the reconcile that made it; the first keeps its own.
    assert_eq!(r2["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
    let cfg = get(&second, Kind::Configuration, "hello");
    assert_eq!(cfg["status"]["latestCreatedRevisionName"], "hello-00002");
    assert_eq!(cfg["metadata"]["generation"], 2);

    // The new one fails: latestReady stays on hello-00001 and traffic with it.
    let rep = report(
        &second,
        &[
            ("hello-00001", true, "", 1),
            ("hello-00002", false, "ExitCode", 0),
        ],
    );
    let out = run_with(&v2, &second.history, &rep);
    let r2 = get(&out, Kind::Revision, "hello-00002");
    assert_eq!(cond(&r2, "Ready"), ("False".into(), "ExitCode".into()));
    assert_eq!(
        cond(&r2, "ContainerHealthy"),
        ("False".into(), "ExitCode".into())
    );
    let s = get(&out, Kind::Service, "hello");
    assert_eq!(s["status"]["latestReadyRevisionName"], "hello-00001");
    assert_eq!(s["status"]["latestCreatedRevisionName"], "hello-00002");
    assert_eq!(
        cond(&s, "ConfigurationsReady"),
        ("False".into(), "RevisionFailed".into())
    );
    assert_eq!(s["status"]["traffic"][0]["revisionName"], "hello-00001");
    assert_eq!(
        out.contract.serving.routes[0].traffic[0].revision,
        "hello-00001"
    );
    // The failed one still runs (the data plane keeps trying) but takes no traffic.
    let in_contract = |n: &str| {
        out.contract
            .serving
            .revisions
            .iter()
            .find(|r| r.name == n)
            .cloned()
    };
    assert!(in_contract("hello-00001").is_some_and(|r| r.routed));
    assert!(in_contract("hello-00002").is_some_and(|r| !r.routed));

    // The Service deleted: its revisions go.
    let gone = run_with(&[], &out.history, &Report::default());
    assert!(!has(&gone, Kind::Revision, "hello-00001"));
    assert!(gone.history.is_empty());
}

#[test]
fn an_image_without_command_cannot_run_locally() {
    let out = run("
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    spec:
      containers: [{image: ghcr.io/knative/helloworld-go:latest}]
");
    let rev = get(&out, Kind::Revision, "hello-00001");
    assert_eq!(
        cond(&rev, "Ready"),
        ("False".into(), "ImageNotRunnableLocally".into())
    );
    let msg = rev["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("command"), "{msg}");
    let s = get(&out, Kind::Service, "hello");
    assert_eq!(cond(&s, "Ready").0, "False");
    assert_eq!(
        cond(&s, "ConfigurationsReady"),
        ("False".into(), "RevisionFailed".into())
    );
    assert!(out.contract.serving.revisions.is_empty());
}

#[test]
fn domain_config_map_cluster_local_and_feature_flags() {
    let yaml = format!(
        "{}---
apiVersion: v1
kind: ConfigMap
metadata: {{name: config-domain, namespace: knative-serving}}
data: {{example.com: ''}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: config-autoscaler, namespace: knative-serving}}
data: {{stable-window: 10s}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: config-features, namespace: knative-serving}}
data: {{tag-header-based-routing: enabled}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: private
  labels: {{networking.knative.dev/visibility: cluster-local}}
spec:
  template:
    spec:
      containers: [{{image: x, command: [./serve]}}]
",
        hello("v1", "")
    );
    let objects = load(&yaml, 1);
    let first = run_with(&objects, &[], &Report::default());
    let rep = report(
        &first,
        &[("hello-00001", true, "", 1), ("private-00001", true, "", 1)],
    );
    let out = run_with(&objects, &first.history, &rep);
    let s = get(&out, Kind::Service, "hello");
    assert_eq!(s["status"]["url"], "http://hello.default.example.com:8081");
    let p = get(&out, Kind::Service, "private");
    assert_eq!(
        p["status"]["url"],
        "http://private.default.svc.cluster.local"
    );
    let c = &out.contract.serving;
    assert_eq!(
        c.autoscaler_config.get("stable-window").map(String::as_str),
        Some("10s")
    );
    assert!(c.tag_header_routing);
    let private = c
        .routes
        .iter()
        .find(|r| r.name == "private")
        .expect("route");
    assert_eq!(
        private.hosts,
        ["private.default.svc.cluster.local", "private.default.svc"]
    );
}

/// Knative resolves a reference to an Addressable to its `status.address.url`: a Service's or
/// Route's cluster-local address (the dispatcher connects it to the gateway).
#[test]
fn a_ksvc_or_route_sink_resolves_to_its_address() {
    let yaml = format!(
        "{}---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: private
  labels: {{networking.knative.dev/visibility: cluster-local}}
spec:
  template:
    spec:
      containers: [{{image: x, command: [./serve]}}]
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: t}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: hello}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: t2}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: nope}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: to-route}}
spec:
  broker: default
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Route, name: hello}}
    uri: /events?x=1
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: to-private}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: private}}}}
",
        hello("v1", "")
    );
    let out = run(&yaml);
    let svc = get(&out, Kind::Service, "hello");
    assert_eq!(
        svc["status"]["address"]["url"],
        "http://hello.default.svc.cluster.local"
    );
    let t = get(&out, Kind::Trigger, "t");
    assert_eq!(
        t["status"]["subscriberUri"],
        svc["status"]["address"]["url"]
    );
    assert_eq!(cond(&t, "SubscriberResolved").0, "True");
    let t2 = get(&out, Kind::Trigger, "t2");
    assert_eq!(cond(&t2, "SubscriberResolved").0, "False");
    let route = get(&out, Kind::Route, "hello");
    assert_eq!(
        route["status"]["address"]["url"],
        "http://hello.default.svc.cluster.local"
    );
    assert_eq!(
        get(&out, Kind::Trigger, "to-route")["status"]["subscriberUri"],
        "http://hello.default.svc.cluster.local/events?x=1"
    );
    let private = get(&out, Kind::Service, "private");
    assert_eq!(
        get(&out, Kind::Trigger, "to-private")["status"]["subscriberUri"],
        private["status"]["address"]["url"]
    );
    assert_eq!(
        private["status"]["address"]["url"],
        "http://private.default.svc.cluster.local"
    );
}

/// A ContainerSource's processes have no cluster DNS: their `K_SINK` is the Service's public
/// URL (a name under `localhost`), while `status.sinkUri` is its address, as Knative's.
#[test]
fn a_local_process_gets_a_ksvc_sink_it_can_reach() {
    let yaml = format!(
        "{}---
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {{name: beats}}
spec:
  template:
    spec:
      containers: [{{name: beat, image: x, command: [./beat]}}]
  sink:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: hello}}
    uri: /beats
---
apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata: {{name: bind}}
spec:
  subject: {{apiVersion: sources.knative.dev/v1, kind: ContainerSource, name: beats}}
  sink:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Route, name: hello}}
",
        hello("v1", "")
    );
    let out = run(&yaml);
    let cs = get(&out, Kind::ContainerSource, "beats");
    assert_eq!(
        cs["status"]["sinkUri"],
        "http://hello.default.svc.cluster.local/beats"
    );
    let binding = get(&out, Kind::SinkBinding, "bind");
    assert_eq!(
        binding["status"]["sinkUri"],
        "http://hello.default.svc.cluster.local"
    );
    let adapter = out
        .contract
        .sources
        .iter()
        .find_map(|s| match &s.adapter {
            knit_crds::contract::Adapter::Container(c) => Some(c),
            _ => None,
        })
        .expect("the ContainerSource runs");
    let k_sink: Vec<&str> = adapter.processes[0]
        .env
        .iter()
        .filter(|(k, _)| k == "K_SINK")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        k_sink,
        [
            "http://hello.default.localhost:8081/beats",
            "http://hello.default.localhost:8081"
        ]
    );
}

#[test]
fn environment_references_resolve_or_say_why_not() {
    let out = run("
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hi, colour: blue}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    spec:
      containers:
        - image: x
          command: [./serve]
          envFrom: [{configMapRef: {name: settings}, prefix: S_}]
          env:
            - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
            - {name: MAYBE, valueFrom: {secretKeyRef: {name: nope, key: k, optional: true}}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: broken}
spec:
  template:
    spec:
      containers:
        - image: x
          command: [./serve]
          env: [{name: K, valueFrom: {secretKeyRef: {name: nope, key: k}}}]
");
    let r = &out.contract.serving.revisions;
    assert_eq!(r.len(), 1);
    let env: Vec<(&str, &str)> = r[0]
        .container
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("S_colour", "blue"),
            ("S_greeting", "hi"),
            ("GREETING", "hi")
        ]
    );
    let broken = get(&out, Kind::Revision, "broken-00001");
    assert_eq!(
        cond(&broken, "Ready"),
        ("False".into(), "CreateContainerConfigError".into())
    );
}

mod samples;
mod traffic;

#[test]
fn a_domain_mapping_adds_its_host_to_the_services_route() {
    let yaml = format!(
        "{}---
apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata: {{name: hello.example.com}}
spec:
  ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: hello}}
---
apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata: {{name: nothing.example.com}}
spec:
  ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: nope}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: t}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: serving.knative.dev/v1beta1, kind: DomainMapping, name: hello.example.com}}}}
",
        hello("v1", "")
    );
    let objects = load(&yaml, 1);
    let first = run_with(&objects, &[], &Report::default());
    let rep = report(&first, &[("hello-00001", true, "", 1)]);
    let out = run_with(&objects, &first.history, &rep);
    let dm = get(&out, Kind::DomainMapping, "hello.example.com");
    assert_eq!(cond(&dm, "Ready").0, "True", "{dm}");
    assert_eq!(dm["status"]["url"], "http://hello.example.com:8081");
    let route = &out.contract.serving.routes[0];
    assert!(
        route.hosts.iter().any(|h| h == "hello.example.com"),
        "{:?}",
        route.hosts
    );
    let none = get(&out, Kind::DomainMapping, "nothing.example.com");
    assert_eq!(
        cond(&none, "ReferenceResolved"),
        ("False".into(), "ResolutionFailed".into())
    );
    // Knative resolves a DomainMapping to its address: the mapped host, which the dispatcher
    // connects to the gateway.
    let t = get(&out, Kind::Trigger, "t");
    assert_eq!(t["status"]["subscriberUri"], dm["status"]["address"]["url"]);
    assert_eq!(
        t["status"]["subscriberUri"],
        "http://hello.example.com:8081"
    );
}
