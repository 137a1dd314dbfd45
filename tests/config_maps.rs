//! The ConfigMaps Knit reads, admitted as Knative's configmap webhooks admit them: no value
//! of any key Knit reads crashes `knit run`. A hostile value is refused at startup with a
//! `FILE:DOC: ConfigMap/NAME: data.KEY: message` line and exit code 2, or, where Knative
//! accepts it, `knit run` runs with it; it never panics. A bad edit of a running knit's
//! ConfigMap is refused and the last good one stays live.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Knit, eventually, http, knit_bin};

/// A ConfigMap manifest; keys and values are written as JSON strings (valid YAML scalars,
/// whatever they hold).
fn config_map(ns: &str, name: &str, data: &[(&str, &str)]) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string");
    let mut text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata:\n"
    );
    if data.is_empty() {
        text.push_str("  {}\n");
    }
    for (k, v) in data {
        text.push_str(&format!("  {}: {}\n", quote(k), quote(v)));
    }
    text
}

/// How one `knit run` went.
enum Run {
    /// It refused the manifests: the exit code and stderr.
    Refused(i32, String),
    /// It ran (and was stopped): stderr.
    Ran(String),
}

/// `knit run -f dir`: refused at startup, or running (then its contract is read once, so a
/// reconcile pass over the ConfigMaps happened, and it is killed).
async fn run(dir: &Path) -> Run {
    let mut child = Command::new(knit_bin())
        .args(["run", "-f"])
        .arg(dir)
        .args(["--admin", "127.0.0.1:0", "--ingress", "127.0.0.1:0"])
        .args(["--gateway", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start knit");
    let mut err = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let stdout = child.stdout.take().expect("stdout");
    let first = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        first
    })
    .join()
    .unwrap_or_default();
    let admin = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .map(str::to_string);
    match admin {
        Some(admin) => {
            let contract = http()
                .get(format!("{admin}/api/v1/contract"))
                .send()
                .await
                .map(|r| r.status().as_u16());
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            assert_eq!(contract.ok(), Some(200), "{stderr}");
            Run::Ran(stderr)
        }
        None => {
            let status = child.wait().expect("wait for knit");
            Run::Refused(
                status.code().unwrap_or(-1),
                stderr.join().unwrap_or_default(),
            )
        }
    }
}

/// Every key of every ConfigMap Knit reads, by (namespace, name).
fn config_maps() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        (
            "knative-serving",
            "config-autoscaler",
            knit_crds::configmap::autoscaler::CONFIG_KEYS.to_vec(),
        ),
        ("knative-serving", "config-domain", vec!["example.com"]),
        (
            "knative-serving",
            "config-features",
            vec!["tag-header-based-routing"],
        ),
        (
            "knative-eventing",
            "config-features",
            vec![
                "transport-encryption",
                "authentication-oidc",
                "cross-namespace-event-links",
                "default-authorization-mode",
            ],
        ),
        (
            "knative-eventing",
            "kafka-broker-config",
            vec![
                "bootstrap.servers",
                "default.topic.partitions",
                "default.topic.replication.factor",
            ],
        ),
        (
            "knative-eventing",
            "kafka-channel-config",
            vec!["bootstrap.servers"],
        ),
        (
            "knative-eventing",
            "default-ch-webhook",
            vec!["default-ch-config"],
        ),
    ]
}

fn hostile_values() -> Vec<String> {
    ["inf", "NaN", "-1", "1e400", "9223372036854775808s", ""]
        .iter()
        .map(|s| s.to_string())
        .chain(["x".repeat(64 * 1024)])
        .collect()
}

/// Objects whose reconciling reads the ConfigMaps: a Kafka-class Broker
/// (`kafka-broker-config`), a KafkaChannel (`kafka-channel-config`), and a Channel without a
/// template (`default-ch-webhook`); `config-features` and `config-domain` are read by every
/// pass.
const READERS: &str = "apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: kb
  namespace: default
  annotations: {eventing.knative.dev/broker.class: Kafka}
spec:
  config: {apiVersion: v1, kind: ConfigMap, name: kafka-broker-config, namespace: knative-eventing}
---
apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata: {name: kc, namespace: default}
---
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata: {name: c, namespace: default}
";

/// Each ConfigMap with each of its keys set to each hostile value, beside objects that read
/// it: a clear refusal naming the ConfigMap's keys, or a knit that runs. Never a panic.
#[tokio::test]
async fn hostile_values_are_refused_clearly_or_run_and_never_panic() {
    let (mut refused, mut ran) = (0, 0);
    for value in hostile_values() {
        let short = value.chars().take(24).collect::<String>();
        for (ns, name, keys) in config_maps() {
            let dir = tempfile::tempdir().expect("dir");
            let data: Vec<(&str, &str)> = keys.iter().map(|k| (*k, value.as_str())).collect();
            std::fs::write(dir.path().join("cm.yaml"), config_map(ns, name, &data)).expect("write");
            std::fs::write(dir.path().join("readers.yaml"), READERS).expect("write");
            match run(dir.path()).await {
                Run::Refused(code, stderr) => {
                    refused += 1;
                    common::assert_no_panic(&stderr);
                    assert_eq!(code, 2, "{ns}/{name} {short:?}: {stderr}");
                    let prefix = format!("cm.yaml:0: ConfigMap/{name}: data.");
                    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(&prefix)).collect();
                    assert!(!lines.is_empty(), "{ns}/{name} {short:?}: {stderr}");
                    for l in lines {
                        assert!(l.len() < 1024, "{ns}/{name}: a long line: {}", l.len());
                        assert!(keys.iter().any(|k| l.contains(&format!("data.{k}"))), "{l}");
                    }
                }
                Run::Ran(stderr) => {
                    ran += 1;
                    common::assert_no_panic(&stderr);
                }
            }
        }
    }
    // Both ways were taken: `bootstrap.servers: inf` names a host, `default-ch-config: ""`
    // sets nothing, and every other value is refused somewhere.
    assert!(refused > 0 && ran > 0, "refused {refused}, ran {ran}");
}

/// The example of issue 23: a clear error for each key, exit code 2, no crash.
#[tokio::test]
async fn the_issue_example_gives_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-autoscaler, namespace: knative-serving}\ndata: {stable-window: \"inf\", scale-to-zero-grace-period: \"1e400\"}\n",
    )
    .expect("write");
    let Run::Refused(code, stderr) = run(dir.path()).await else {
        panic!("knit ran with stable-window: inf");
    };
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for key in ["stable-window", "scale-to-zero-grace-period"] {
        assert!(
            stderr.contains(&format!(
                "config.yaml:0: ConfigMap/config-autoscaler: data.{key}: failed to parse data:"
            )),
            "{key}: {stderr}"
        );
    }
}

/// While `knit run` runs, a bad edit of a ConfigMap is refused and logged, and the last good
/// one stays live; a good edit then takes effect.
#[tokio::test]
async fn a_bad_edit_keeps_the_last_good_config_map() {
    let good = |window: &str| {
        config_map(
            "knative-serving",
            "config-autoscaler",
            &[("stable-window", window)],
        )
    };
    let knit = Knit::start(&[("autoscaler.yaml", &good("6s"))]);
    let window = |o: serde_json::Value| o["data"]["stable-window"].as_str().map(str::to_string);
    let path = format!(
        "{}/api/v1/configmaps/knative-serving/config-autoscaler",
        knit.admin
    );
    let get = || async {
        let r = http().get(&path).send().await.ok()?;
        window(r.json().await.ok()?)
    };
    assert_eq!(get().await.as_deref(), Some("6s"));

    knit.write(
        "autoscaler.yaml",
        &config_map(
            "knative-serving",
            "config-autoscaler",
            &[("stable-window", "inf"), ("max-scale-up-rate", "NaN")],
        ),
    );
    eventually("the bad edit to be refused", || async {
        let logs = knit.logs();
        (logs.contains("data.stable-window") && logs.contains("data.max-scale-up-rate"))
            .then_some(())
    })
    .await;
    let logs = knit.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("keeping the last good version")
                && l.contains("ConfigMap/config-autoscaler: data.stable-window:")),
        "{logs}"
    );
    assert_eq!(get().await.as_deref(), Some("6s"));
    let contract = knit.api("/api/v1/contract").await;
    assert_eq!(
        contract["serving"]["autoscalerConfig"]["stable-window"], "6s",
        "{contract}"
    );

    knit.write("autoscaler.yaml", &good("7s"));
    eventually("the good edit to take effect", || async {
        (get().await.as_deref() == Some("7s")).then_some(())
    })
    .await;
    assert!(!knit.logs().contains("panicked"));
}
