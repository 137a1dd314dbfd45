//! Traffic: splits, tags, pinned and user-named revisions.

use knit_crds::Kind;
use knit_crds::contract::Report;

use super::{cond, get, has, hello, load, report, run_with};

#[test]
fn traffic_split_and_tags_resolve_to_concrete_revisions() {
    let v1 = load(&hello("v1", ""), 1);
    let first = run_with(&v1, &[], &Report::default());
    let split = "  traffic:
  - {latestRevision: true, percent: 50}
  - {revisionName: hello-00001, percent: 50, tag: old}
  - {latestRevision: true, percent: 0, tag: latest}
";
    let v2 = load(&hello("v2", split), 2);
    let second = run_with(&v2, &first.history, &Report::default());
    // Before hello-00002 is ready the latestRevision target resolves to hello-00001.
    let rep = report(
        &second,
        &[("hello-00001", true, "", 1), ("hello-00002", true, "", 1)],
    );
    let out = run_with(&v2, &second.history, &rep);
    let s = get(&out, Kind::Service, "hello");
    assert_eq!(cond(&s, "Ready").0, "True", "{s}");
    let t = &s["status"]["traffic"];
    assert_eq!(t[0]["revisionName"], "hello-00002");
    assert_eq!(t[0]["percent"], 50);
    assert!(t[0].get("url").is_none());
    assert_eq!(t[1]["revisionName"], "hello-00001");
    assert_eq!(t[1]["latestRevision"], false);
    assert_eq!(t[1]["url"], "http://old-hello.default.localhost:8081");
    assert_eq!(t[2]["revisionName"], "hello-00002");
    assert_eq!(t[2]["percent"], 0);
    let route = &out.contract.serving.routes[0];
    let split: Vec<(&str, u32)> = route
        .traffic
        .iter()
        .map(|t| (t.revision.as_str(), t.percent))
        .collect();
    assert_eq!(split, [("hello-00001", 50), ("hello-00002", 50)]);
    assert_eq!(route.tags.len(), 2);
    assert_eq!(route.tags[0].tag, "old");
    assert_eq!(route.tags[0].revision, "hello-00001");
    assert_eq!(route.tags[0].hosts[0], "old-hello.default.localhost");

    // A pinned revision that does not exist.
    let missing = "  traffic:
  - {revisionName: hello-00009, percent: 100}
";
    let out = run_with(&load(&hello("v1", missing), 1), &[], &Report::default());
    let rt = get(&out, Kind::Route, "hello");
    assert_eq!(
        cond(&rt, "AllTrafficAssigned"),
        ("False".into(), "RevisionMissing".into())
    );
    assert!(out.contract.serving.routes.is_empty());
}

#[test]
fn a_standalone_configuration_and_route() {
    let yaml = "
apiVersion: serving.knative.dev/v1
kind: Configuration
metadata: {name: cfg}
spec:
  template:
    spec:
      containers: [{image: x, command: [./serve]}]
---
apiVersion: serving.knative.dev/v1
kind: Route
metadata: {name: rt}
spec:
  traffic: [{configurationName: cfg, percent: 100}]
---
apiVersion: serving.knative.dev/v1
kind: Route
metadata: {name: nocfg}
spec:
  traffic: [{configurationName: nope, percent: 100}]
";
    let objects = load(yaml, 1);
    let first = run_with(&objects, &[], &Report::default());
    let rep = report(&first, &[("cfg-00001", true, "", 1)]);
    let out = run_with(&objects, &first.history, &rep);
    let rt = get(&out, Kind::Route, "rt");
    assert_eq!(cond(&rt, "Ready").0, "True");
    assert_eq!(rt["status"]["traffic"][0]["revisionName"], "cfg-00001");
    assert_eq!(rt["status"]["url"], "http://rt.default.localhost:8081");
    let rev = get(&out, Kind::Revision, "cfg-00001");
    assert!(
        rev["metadata"]["labels"]
            .get("serving.knative.dev/service")
            .is_none()
    );
    let nocfg = get(&out, Kind::Route, "nocfg");
    assert_eq!(
        cond(&nocfg, "AllTrafficAssigned"),
        ("False".into(), "ConfigurationMissing".into())
    );
    assert!(out.contract.serving.revisions[0].service.is_none());
}

#[test]
fn user_named_revisions_follow_the_template_name() {
    let shared = std::env::var("KNIT_SHARED")
        .unwrap_or_else(|_| format!("{}/../shared", env!("CARGO_MANIFEST_DIR")));
    let path = format!(
        "{shared}/knative-samples/docs__code-samples__serving__tag-header-based-routing__sample.yaml"
    );
    let Ok(sample) = std::fs::read_to_string(path) else {
        return; // the shared samples are not here
    };
    // The local stand-in for the image.
    let sample = sample.replace(
        "- image: docker.io/{username}/helloworld-go\n",
        "- image: docker.io/{username}/helloworld-go\n        command: [./hello]\n",
    );
    let docs: Vec<&str> = sample.split("\n---\n").collect();
    let v1 = load(docs[0], 1);
    let first = run_with(&v1, &[], &Report::default());
    assert!(has(&first, Kind::Revision, "tag-header-revision-1"));
    let v2 = load(docs[1], 2);
    let second = run_with(&v2, &first.history, &Report::default());
    let rep = report(
        &second,
        &[
            ("tag-header-revision-1", true, "", 0),
            ("tag-header-revision-2", true, "", 1),
        ],
    );
    let out = run_with(&v2, &second.history, &rep);
    let s = get(&out, Kind::Service, "tag-header");
    assert_eq!(cond(&s, "Ready").0, "True", "{s}");
    assert_eq!(
        s["status"]["traffic"][0]["url"],
        "http://rev1-tag-header.default.localhost:8081"
    );
    let route = &out.contract.serving.routes[0];
    assert_eq!(route.traffic[0].revision, "tag-header-revision-2");
    assert_eq!(route.tags[0].revision, "tag-header-revision-1");
    // Changing the template but not its name is a conflict.
    let v3 = load(&docs[1].replace("Second Revision", "Third"), 3);
    let out = run_with(&v3, &second.history, &rep);
    let cfg = get(&out, Kind::Configuration, "tag-header");
    assert_eq!(
        cond(&cfg, "Ready"),
        ("False".into(), "RevisionFailed".into())
    );
}
