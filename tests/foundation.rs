//! The foundation: admission over real Knative samples, the CLI contract, `knit run` with
//! file watching, statuses, and the admin API. Black-box against the `knit` binary.

mod common;

use common::{Knit, cli, condition, eventually, repo, shared_dir};
use serde_json::Value;

#[test]
fn knative_samples_get_the_expected_verdict() {
    let table =
        std::fs::read_to_string(repo("tests/data/knative-samples.tsv")).expect("verdict table");
    let dir = shared_dir().join("knative-samples");
    let mut checked = 0;
    let mut problems = Vec::new();
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, verdict, fragment) = (cols[0], cols[1], cols.get(2).copied().unwrap_or(""));
        let path = dir.join(file);
        let (code, _, stderr) = cli(&["validate", "-f", path.to_str().expect("utf-8 path")]);
        checked += 1;
        match verdict {
            "accept" if code != 0 => problems.push(format!(
                "{file}: expected valid, got exit {code}:\n{stderr}"
            )),
            "reject" if code != 2 => problems.push(format!("{file}: expected exit 2, got {code}")),
            "reject" => {
                // Errors read FILE:DOC: [KIND/NAME: ]field.path: message.
                let prefix = format!("{}:", path.display());
                let line = stderr
                    .lines()
                    .find(|l| l.starts_with(&prefix) && l.contains(fragment));
                if line.is_none() {
                    problems.push(format!(
                        "{file}: expected an error containing {fragment:?}, got:\n{stderr}"
                    ));
                }
            }
            _ => {}
        }
    }
    let on_disk = std::fs::read_dir(&dir)
        .expect("samples")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .count();
    assert_eq!(checked, on_disk, "every sample has a verdict");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn validate_reports_every_error_with_file_doc_and_path() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec:
  broker: b
  filters:
  - exact: {type: ''}
  - {prefix: {type: a}, suffix: {type: b}}
  - cesql: \"type = 'a' AND (\"
  delivery: {retry: -1, backoffDelay: soon}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s}
spec:
  subscriber: {uri: 'not a url'}
",
    )
    .expect("write");
    let (code, _, stderr) = cli(&["validate", "-f", path.to_str().expect("path")]);
    assert_eq!(code, 2);
    let f = path.display().to_string();
    for expected in [
        format!("{f}:0: Trigger/t: spec.filters[0].exact.type: the value must not be empty"),
        format!("{f}:0: Trigger/t: spec.filters[1]: multiple dialects found"),
        format!(
            "{f}:0: Trigger/t: spec.filters[2].cesql: parse error: unexpected end of expression at position 17"
        ),
        format!("{f}:0: Trigger/t: spec.subscriber: Required value"),
        format!("{f}:0: Trigger/t: spec.delivery.retry: invalid value -1"),
        format!("{f}:0: Trigger/t: spec.delivery.backoffDelay: invalid value"),
        format!("{f}:1: Subscription/s: spec.channel: Required value"),
        format!("{f}:1: Subscription/s: spec.subscriber.uri:"),
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(&expected)),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn ignored_kinds_warn_and_old_versions_convert() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("mixed.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: messaging.knative.dev/v1alpha1\nkind: InMemoryChannel\nmetadata: {name: c}\n---\napiVersion: eventing.knative.dev/v1alpha1\nkind: Broker\nmetadata: {name: b}\n",
    )
    .expect("write");
    let (code, _, stderr) = cli(&["validate", "-f", path.to_str().expect("path")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("warning:")
            && stderr.contains("Namespace/x: ignored: Knit does not run Namespace"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "InMemoryChannel/c: apiVersion: converted from messaging.knative.dev/v1alpha1"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            ":2: Broker/b: apiVersion: Broker eventing.knative.dev/v1alpha1 is not supported"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("use apiVersion: eventing.knative.dev/v1"),
        "{stderr}"
    );
}

#[test]
fn crds_print_every_kind_and_match_the_manifests() {
    let (code, out, _) = cli(&["crds"]);
    assert_eq!(code, 0);
    for name in [
        "brokers.eventing.knative.dev",
        "triggers.eventing.knative.dev",
        "services.serving.knative.dev",
        "githubsources.sources.knative.dev",
    ] {
        assert!(out.contains(&format!("name: {name}")), "{name} missing");
        let file = repo(&format!("crds/manifests/{name}.yaml"));
        let on_disk = std::fs::read_to_string(&file).expect("manifest");
        assert!(
            out.contains(on_disk.trim_end()),
            "{} differs from `knit crds`",
            file.display()
        );
    }
}

#[test]
fn startup_with_invalid_manifests_exits_2_listing_every_error() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("a.yaml"),
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\nspec: {}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("b.yaml"),
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: B}\n",
    )
    .expect("write");
    let (code, _, stderr) = cli(&[
        "run",
        "-f",
        dir.path().to_str().expect("path"),
        "--admin",
        "127.0.0.1:0",
        "--ingress",
        "127.0.0.1:0",
        "--gateway",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("a.yaml:0: Trigger/t: spec.broker: Required value"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a.yaml:0: Trigger/t: spec.subscriber: Required value"),
        "{stderr}"
    );
    assert!(
        stderr.contains("b.yaml:0: Broker/B: metadata.name: invalid value"),
        "{stderr}"
    );
}

#[test]
fn admin_beyond_loopback_needs_a_token() {
    let (code, _, stderr) = cli(&[
        "run",
        "--admin",
        "0.0.0.0:0",
        "--ingress",
        "127.0.0.1:0",
        "--gateway",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--admin-token"), "{stderr}");
}

#[tokio::test]
async fn token_protects_the_admin_api() {
    let knit = Knit::start_with(&[], &["--admin-token", "s3cret"]);
    let r = common::http()
        .get(format!("{}/api/v1/brokers", knit.admin))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let (code, _, _) = common::cli_env(
        &["get", "brokers"],
        &[("KNIT_SERVER", &knit.admin), ("KNIT_TOKEN", "s3cret")],
    );
    assert_eq!(code, 0);
}

#[tokio::test]
async fn quickstart_broker_and_trigger_are_ready() {
    let quickstart = repo("examples/quickstart");
    let files: Vec<(String, String)> = std::fs::read_dir(&quickstart)
        .expect("quickstart")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).expect("read"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let knit = Knit::start(&refs);
    knit.ready("brokers", "default").await;

    let (code, out, _) = knit.cli(&["get", "brokers", "-o", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    let b = &v["items"][0];
    assert_eq!(condition(b, "Ready").expect("Ready")["status"], "True");
    assert_eq!(
        b["status"]["address"]["url"],
        format!("{}/default/default", knit.ingress)
    );

    let (code, out, _) = knit.cli(&["get", "broker", "default", "-o", "json"]);
    assert_eq!(code, 0);
    let one: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(one["kind"], "Broker");

    knit.ready("triggers", "hello-display").await;
    let (code, out, _) = knit.cli(&["get", "triggers"]);
    assert_eq!(code, 0);
    let header = out.lines().next().expect("header");
    for col in ["NAME", "BROKER", "SUBSCRIBER_URI", "READY", "REASON"] {
        assert!(header.contains(col), "{header}");
    }
    let row = out.lines().nth(1).expect("row");
    assert!(
        row.contains("hello-display")
            && row.contains("True")
            && row.contains("http://127.0.0.1:9080/"),
        "{out}"
    );

    let (code, out, _) = knit.cli(&["describe", "trigger", "hello-display"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("SubscriberResolved") && out.contains("BrokerReady"),
        "{out}"
    );
}

#[tokio::test]
async fn editing_a_manifest_reconciles_and_invalid_edits_keep_the_last_good_version() {
    let knit = Knit::start(&[
        ("b.yaml", &common::broker("default", "")),
        (
            "t.yaml",
            &common::trigger("t", "default", "http://127.0.0.1:1/a", ""),
        ),
    ]);
    knit.ready("triggers", "t").await;
    knit.write(
        "t.yaml",
        &common::trigger("t", "default", "http://127.0.0.1:1/b", ""),
    );
    eventually("the edit to show", || async {
        let t = knit.object("triggers", "t").await?;
        (t["status"]["subscriberUri"] == "http://127.0.0.1:1/b").then_some(())
    })
    .await;
    let generation =
        knit.object("triggers", "t").await.expect("trigger")["metadata"]["generation"].clone();
    assert_eq!(generation, 2);

    // An invalid edit is rejected and logged; the last good version stays.
    knit.write("t.yaml", "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\nspec: {broker: default}\n");
    eventually("the rejection to be logged", || async {
        knit.logs()
            .contains("spec.subscriber: Required value")
            .then_some(())
    })
    .await;
    let t = knit.object("triggers", "t").await.expect("trigger");
    assert_eq!(t["status"]["subscriberUri"], "http://127.0.0.1:1/b");

    // An immutable field cannot change in place.
    knit.write(
        "t.yaml",
        &common::trigger("t", "other", "http://127.0.0.1:1/b", ""),
    );
    eventually("the immutability error", || async {
        knit.logs()
            .contains("spec.broker: field is immutable")
            .then_some(())
    })
    .await;

    // Adding and removing files.
    knit.write(
        "t2.yaml",
        &common::trigger("t2", "default", "http://127.0.0.1:1/c", ""),
    );
    knit.ready("triggers", "t2").await;
    knit.remove("t2.yaml");
    eventually("t2 to disappear", || async {
        knit.object("triggers", "t2").await.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn apply_get_delete_and_kind_aliases() {
    let knit = Knit::start(&[]);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("m.yaml");
    std::fs::write(
        &file,
        format!(
            "{}---\n{}---\napiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {{name: hello}}\nspec:\n  template:\n    spec:\n      containers: [{{image: example/hello}}]\n",
            common::broker("b", ""),
            common::trigger("t", "b", "http://127.0.0.1:1/", "")
        ),
    )
    .expect("write");
    let (code, out, err) = knit.cli(&["apply", "-f", file.to_str().expect("path")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("broker/b created") && out.contains("trigger/t created"),
        "{out}"
    );
    let (_, out, _) = knit.cli(&["apply", "-f", file.to_str().expect("path")]);
    assert!(out.contains("broker/b unchanged"), "{out}");
    for alias in ["ksvc", "kservice", "services", "service"] {
        let (code, out, _) = knit.cli(&["get", alias]);
        assert_eq!(code, 0);
        assert!(out.contains("hello"), "{alias}: {out}");
    }
    knit.ready("triggers", "t").await;
    let (code, _, _) = knit.cli(&["delete", "trigger", "t"]);
    assert_eq!(code, 0);
    let (code, _, err) = knit.cli(&["get", "trigger", "t"]);
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = knit.cli(&["get", "nosuchkinds"]);
    assert_ne!(code, 0);
    assert!(err.contains("resource type"), "{err}");

    // Invalid manifests are refused by apply with every error.
    std::fs::write(
        &file,
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: x}\nspec: {}\n",
    )
    .expect("write");
    let (code, _, err) = knit.cli(&["apply", "-f", file.to_str().expect("path")]);
    assert_eq!(code, 2);
    assert!(err.contains("spec.broker: Required value"), "{err}");
}

#[tokio::test]
async fn statuses_of_sources_and_serving_say_what_runs() {
    let knit = Knit::start(&[(
        "s.yaml",
        "apiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata: {name: p}\nspec:\n  schedule: '*/1 * * * *'\n  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}\n---\n",
    )]);
    let p = eventually("the PingSource status", || async {
        knit.object("pingsources", "p")
            .await
            .filter(|p| p.get("status").is_some())
    })
    .await;
    assert_eq!(
        condition(&p, "SinkProvided").expect("SinkProvided")["status"],
        "False"
    );
    assert_eq!(p["status"]["observedGeneration"], 1);
    assert_eq!(condition(&p, "Ready").expect("Ready")["status"], "False");
}

#[tokio::test]
async fn quickstart_delivers_a_sent_event_to_the_event_display() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    /// Kills the display however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    // The event display, as the quickstart runs it, but on a free port.
    let mut display = Killed(
        Command::new(common::knit_bin())
            .args(["event-display", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("event-display"),
    );
    let mut lines = BufReader::new(display.0.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let display_url = first.rsplit(' ').next().expect("listening URL").to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // The quickstart's broker and trigger, with the trigger pointed at that display.
    let dir = repo("examples/quickstart");
    let broker = std::fs::read_to_string(dir.join("broker.yaml")).expect("broker.yaml");
    let trigger = std::fs::read_to_string(dir.join("trigger.yaml"))
        .expect("trigger.yaml")
        .replace("http://127.0.0.1:9080/", &format!("{display_url}/"));
    let knit = Knit::start(&[("broker.yaml", &broker), ("trigger.yaml", &trigger)]);
    knit.ready("triggers", "hello-display").await;

    // The README's send command.
    let (code, out, err) = knit.cli(&[
        "send",
        "--to",
        "broker:default/default",
        "--type",
        "dev.knative.samples.helloworld",
        "--source",
        "/me",
        "--id",
        "quickstart-1",
        "--data",
        r#"{"msg": "Hello, Knit!"}"#,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("202"), "{out}");

    let mut shown = String::new();
    eventually("the event display to print the event", || {
        while let Ok(line) = rx.try_recv() {
            shown.push_str(&line);
            shown.push('\n');
        }
        let done =
            shown.contains("id: quickstart-1") && shown.contains("\"msg\": \"Hello, Knit!\"");
        std::future::ready(done.then_some(()))
    })
    .await;
    assert!(
        shown.contains("type: dev.knative.samples.helloworld"),
        "{shown}"
    );
}
