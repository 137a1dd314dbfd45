//! Sources end to end through the binary: PingSource ticks, ContainerSource processes (with a
//! SinkBinding), and what every source shares — status, `ceOverrides`, an unresolvable sink,
//! a failing sink retried, editing one source restarting only its adapter, and a knit killed with
//! SIGKILL taking the processes it started (ContainerSource and replicas) with it.
//! GitHubSource, ApiServerSource and CloudPubSubSource have their own files.

mod common;

use common::sink::{Reply, Sink};
use common::{Knit, broker, condition, eventually, eventually_for, trigger};
use serde_json::Value;
use std::time::Duration;

fn ping(name: &str, schedule: &str, sink: &str, extra: &str) -> String {
    format!(
        "apiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  schedule: \"{schedule}\"\n  contentType: application/json\n  data: '{{\"message\": \"Hello {name}\"}}'\n  sink:\n{}\n{}\n",
        common::indent(sink, 4),
        common::indent(extra, 2)
    )
}

fn to_broker(name: &str) -> String {
    format!("ref:\n  apiVersion: eventing.knative.dev/v1\n  kind: Broker\n  name: {name}")
}

fn fates(stats: &Value, reference: &str, what: &str) -> u64 {
    stats["egresses"][reference][what].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn ping_source_ticks_flow_through_a_broker_with_overrides() {
    let sink = Sink::start().await;
    let knit = Knit::start(&[
        ("broker.yaml", &broker("default", "")),
        (
            "trigger.yaml",
            &trigger(
                "pings",
                "default",
                &sink.url,
                "filter:\n  attributes:\n    type: dev.knative.sources.ping",
            ),
        ),
        (
            "ping.yaml",
            &ping(
                "every-second",
                "* * * * * *",
                &to_broker("default"),
                "ceOverrides:\n  extensions:\n    team: blue",
            ),
        ),
    ]);
    let src = knit.ready("pingsources", "every-second").await;
    assert!(
        src["status"]["sinkUri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/default/default")),
        "{src}"
    );
    assert_eq!(
        src["status"]["ceAttributes"][0]["type"],
        "dev.knative.sources.ping"
    );
    assert_eq!(
        condition(&src, "Deployed").expect("Deployed")["status"],
        "True"
    );
    let got = sink.wait_for(3).await;
    let mut times = Vec::new();
    for r in &got[..3] {
        assert_eq!(
            r.header("ce-type").as_deref(),
            Some("dev.knative.sources.ping")
        );
        assert_eq!(
            r.header("ce-source").as_deref(),
            Some("/apis/v1/namespaces/default/pingsources/every-second")
        );
        assert_eq!(r.header("ce-team").as_deref(), Some("blue"));
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(&r.body[..], br#"{"message": "Hello every-second"}"#);
        let t: jiff::Timestamp = r
            .header("ce-time")
            .expect("time")
            .parse()
            .expect("RFC 3339");
        // Ticks are the schedule's, on whole seconds, not when the send happened.
        assert_eq!(t.subsec_nanosecond(), 0, "{t}");
        times.push(t.as_second());
    }
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    let stats = knit.api("/api/v1/stats").await;
    assert!(
        fates(&stats, "PingSource/default/every-second", "delivered") >= 3,
        "{stats}"
    );
}

#[tokio::test]
async fn an_unresolvable_sink_is_not_ready_and_nothing_is_sent() {
    let knit = Knit::start(&[(
        "ping.yaml",
        &ping("lost", "* * * * * *", &to_broker("missing"), ""),
    )]);
    let src = eventually("the PingSource to report its sink", || async {
        let o = knit.object("pingsources", "lost").await?;
        (condition(&o, "SinkProvided")?["status"] == "False").then_some(o)
    })
    .await;
    let ready = condition(&src, "Ready").expect("Ready");
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or_default()
            .contains("missing"),
        "{ready}"
    );
    let contract = knit.api("/api/v1/contract").await;
    assert!(
        contract["sources"].as_array().is_none_or(Vec::is_empty),
        "{contract}"
    );
}

#[tokio::test]
async fn a_failing_sink_is_retried_and_what_still_fails_is_counted() {
    let flaky = Sink::start().await;
    flaky.script([Reply::status(500), Reply::status(503)]);
    let dead = Sink::start().await;
    dead.default_reply(Reply::status(500));
    flaky.default_reply(Reply::status(202));
    let knit = Knit::start(&[
        (
            "flaky.yaml",
            &ping("flaky", "* * * * * *", &format!("uri: {}", flaky.url), ""),
        ),
        (
            "dead.yaml",
            &ping("dead", "* * * * * *", &format!("uri: {}", dead.url), ""),
        ),
    ]);
    knit.ready("pingsources", "flaky").await;
    // The first two attempts fail; the events they carried are sent again and delivered.
    let got = flaky.wait_for(4).await;
    let first = got[0].id();
    eventually("the first event to be retried", || async {
        (flaky.received().iter().filter(|r| r.id() == first).count() >= 2).then_some(())
    })
    .await;
    // The dead sink gets the first attempt plus three retries, then the event is dropped and
    // counted (sources have no dead-letter sink).
    dead.wait_for(4).await;
    let stats = eventually("the dead sink's drop to be counted", || async {
        let s = knit.api("/api/v1/stats").await;
        (fates(&s, "PingSource/default/dead", "dropped") >= 1).then_some(s)
    })
    .await;
    assert!(
        fates(&stats, "PingSource/default/flaky", "retries") >= 2,
        "{stats}"
    );
    assert_eq!(
        fates(&stats, "PingSource/default/flaky", "dropped"),
        0,
        "{stats}"
    );
    // The log line may follow the count by a moment (another thread writes it).
    eventually("the drop to be logged", || async {
        knit.logs().contains("dropped").then_some(())
    })
    .await;
}

#[tokio::test]
async fn editing_one_source_restarts_only_its_adapter() {
    let a = Sink::start().await;
    // Runs until knit is gone (tests kill knit with SIGKILL, which it cannot pass on).
    let long_running = "echo up\nwhile kill -0 $PPID 2>/dev/null; do sleep 1; done";
    let knit = Knit::start(&[
        (
            "a.yaml",
            &ping("a", "* * * * * *", &format!("uri: {}", a.url), ""),
        ),
        (
            "b.yaml",
            &container_source("b", long_running, "uri: http://127.0.0.1:9/", ""),
        ),
    ]);
    a.wait_for(1).await;
    knit.ready("containersources", "b").await;
    let starts = || {
        let (_, out, _) = knit.cli(&["logs", "containersource/b"]);
        out.lines().filter(|l| l.contains("knit: started")).count()
    };
    assert_eq!(starts(), 1);
    knit.write(
        "a.yaml",
        &ping(
            "a",
            "* * * * * *",
            &format!("uri: {}", a.url),
            "ceOverrides:\n  extensions:\n    edited: \"yes\"",
        ),
    );
    eventually("the edited source's events", || async {
        a.received()
            .iter()
            .any(|r| r.header("ce-edited").as_deref() == Some("yes"))
            .then_some(())
    })
    .await;
    assert_eq!(
        starts(),
        1,
        "the ContainerSource's process was not restarted"
    );
    // Editing b restarts b's process.
    knit.write(
        "b.yaml",
        &container_source(
            "b",
            "echo up again\nwhile kill -0 $PPID 2>/dev/null; do sleep 1; done",
            "uri: http://127.0.0.1:9/",
            "",
        ),
    );
    eventually("b's process to restart", || async {
        let (_, out, _) = knit.cli(&["logs", "containersource/b"]);
        out.contains("up again").then_some(())
    })
    .await;
}

fn container_source(name: &str, script: &str, sink: &str, extra: &str) -> String {
    format!(
        "apiVersion: sources.knative.dev/v1\nkind: ContainerSource\nmetadata:\n  name: {name}\n  namespace: default\n  labels:\n    app: {name}\nspec:\n  template:\n    spec:\n      containers:\n        - name: main\n          image: example.com/heartbeats\n          command: [\"sh\", \"-c\"]\n          args:\n            - |\n{}\n          env:\n            - name: GREETING\n              value: hello\n  sink:\n{}\n{}\n",
        common::indent(script, 14),
        common::indent(sink, 4),
        common::indent(extra, 2),
    )
}

/// A process that posts one event to `$K_SINK` (carrying `$K_CE_OVERRIDES` and its env as
/// data) and exits, so the supervisor restarts it.
const POST_ONCE: &str = r#"echo "posting to $K_SINK"
curl -sS -o /dev/null -w 'status %{http_code}\n' -X POST "$K_SINK" \
  -H 'ce-specversion: 1.0' -H "ce-id: $(date +%s%N)" -H 'ce-type: heartbeat' \
  -H 'ce-source: local/heartbeats' -H 'content-type: application/json' \
  -d "{\"greeting\": \"$GREETING\", \"overrides\": $K_CE_OVERRIDES}"
exit 3"#;

#[tokio::test]
async fn a_container_source_runs_its_command_with_k_sink_and_is_restarted() {
    let sink = Sink::start().await;
    let knit = Knit::start(&[
        ("broker.yaml", &broker("default", "")),
        ("trigger.yaml", &trigger("beats", "default", &sink.url, "")),
        (
            "source.yaml",
            &container_source(
                "heartbeats",
                POST_ONCE,
                &to_broker("default"),
                "ceOverrides:\n  extensions:\n    team: red",
            ),
        ),
    ]);
    // Each run posts one event and exits 3; the restarts (0.5 s, 1 s, ...) post again.
    let got = sink.wait_for(2).await;
    let data: Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(data["greeting"], "hello");
    assert_eq!(data["overrides"]["extensions"]["team"], "red");
    assert_eq!(got[0].header("ce-type").as_deref(), Some("heartbeat"));
    let (code, out, err) = knit.cli(&["logs", "containersource/heartbeats"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[main] posting to http://"), "{out}");
    assert!(out.contains("[main] status 202"), "{out}");
    assert!(
        out.contains("exited with exit status: 3; restarting in"),
        "{out}"
    );
    // While it waits to restart, status says why.
    let src = eventually("the restart to show in status", || async {
        let o = knit.object("containersources", "heartbeats").await?;
        let c = condition(&o, "ReceiveAdapterReady")?;
        (c["reason"] == "ProcessExited").then_some(o)
    })
    .await;
    let msg = condition(&src, "ReceiveAdapterReady").expect("condition")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("exit status: 3"), "{msg}");
}

#[tokio::test]
async fn an_image_without_a_command_says_to_set_one() {
    let knit = Knit::start(&[(
        "source.yaml",
        "apiVersion: sources.knative.dev/v1\nkind: ContainerSource\nmetadata:\n  name: image-only\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n        - name: heartbeats\n          image: gcr.io/knative-nightly/knative.dev/eventing/cmd/heartbeats:latest\n  sink:\n    uri: http://127.0.0.1:9/\n",
    )]);
    let src = eventually("the source to say why it cannot run", || async {
        let o = knit.object("containersources", "image-only").await?;
        (condition(&o, "ReceiveAdapterReady")?["status"] == "False").then_some(o)
    })
    .await;
    let c = condition(&src, "ReceiveAdapterReady").expect("condition");
    assert_eq!(c["reason"], "ImageNotRunnableLocally");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("set command"),
        "{c}"
    );
    assert_eq!(condition(&src, "Ready").expect("Ready")["status"], "False");
}

#[tokio::test]
async fn a_sink_binding_points_a_container_source_elsewhere() {
    let own = Sink::start().await;
    let bound = Sink::start().await;
    let binding = format!(
        "apiVersion: sources.knative.dev/v1\nkind: SinkBinding\nmetadata:\n  name: bind\n  namespace: default\nspec:\n  subject:\n    apiVersion: sources.knative.dev/v1\n    kind: ContainerSource\n    selector:\n      matchLabels:\n        app: bound\n  sink:\n    uri: {}\n  ceOverrides:\n    extensions:\n      bound: \"yes\"\n",
        bound.url
    );
    let knit = Knit::start(&[
        (
            "source.yaml",
            &container_source("bound", POST_ONCE, &format!("uri: {}", own.url), ""),
        ),
        ("binding.yaml", &binding),
    ]);
    let b = knit.ready("sinkbindings", "bind").await;
    assert_eq!(b["status"]["sinkUri"].as_str(), Some(bound.url.as_str()));
    let got = bound.wait_for(1).await;
    let data: Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(data["overrides"]["extensions"]["bound"], "yes");
    assert!(own.received().is_empty(), "K_SINK is the binding's");
    // Deleting the binding restores the source's own sink.
    knit.remove("binding.yaml");
    own.wait_for(1).await;
}

#[tokio::test]
async fn a_sink_binding_without_a_subject_it_can_bind_says_so() {
    let knit = Knit::start(&[(
        "binding.yaml",
        "apiVersion: sources.knative.dev/v1\nkind: SinkBinding\nmetadata:\n  name: deploy\n  namespace: default\nspec:\n  subject:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n  sink:\n    uri: http://127.0.0.1:9/\n",
    )]);
    let b = eventually("the binding's status", || async {
        let o = knit.object("sinkbindings", "deploy").await?;
        condition(&o, "BindingAvailable").is_some().then_some(o)
    })
    .await;
    let c = condition(&b, "BindingAvailable").expect("condition");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "SubjectNotSupported");
}

/// Whether `pid` has ended (gone, or a zombie nobody has reaped yet).
fn ended(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z"),
        Err(_) => true,
    }
}

#[tokio::test]
async fn a_killed_knit_takes_the_processes_it_started_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let at = |name: &str| dir.path().join(name).display().to_string();
    // Each writes its PID and that of a child it starts, then runs until stopped: no
    // `kill -0 $PPID` loop here, knit has to stop them. (Kubernetes' expansion in command and
    // args reads `$$` as one `$`.)
    let script = |name: &str| {
        format!(
            "echo $$ > {0}.sh.pid\nsleep 300 &\necho $! > {0}.child.pid\nwait",
            at(name)
        )
        .replace('$', "$$")
    };
    let service = format!(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: held\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n        - image: example.com/held\n          command: [\"sh\", \"-c\", {:?}]\n",
        script("replica")
    );
    let knit = Knit::start(&[
        (
            "source.yaml",
            &container_source("held", &script("source"), "uri: http://127.0.0.1:9/", ""),
        ),
        ("service.yaml", &service),
    ]);
    let files = ["source.sh", "source.child", "replica.sh", "replica.child"];
    let pids: Vec<String> = eventually("every process to write its PID", || async {
        files
            .iter()
            .map(|f| {
                let pid = std::fs::read_to_string(at(&format!("{f}.pid"))).ok()?;
                let pid = pid.trim().to_string();
                (!pid.is_empty()).then_some(pid)
            })
            .collect::<Option<Vec<_>>>()
    })
    .await;
    for (file, pid) in files.iter().zip(&pids) {
        assert!(
            !ended(pid),
            "{file} (pid {pid}) runs while knit does; knit logs: {}",
            knit.logs()
        );
    }
    drop(knit); // SIGKILL: knit runs no shutdown of its own.
    // The reaper's TERM, 2 s of grace and KILL take seconds on a machine the whole suite
    // keeps busy: a minute of patience.
    for (file, pid) in files.iter().zip(&pids) {
        let what = format!("{file} (pid {pid}) to be stopped");
        eventually_for(&what, Duration::from_secs(60), || async {
            ended(pid).then_some(())
        })
        .await;
    }
}

/// With `authentication-oidc` on, a ContainerSource's process finds a token for its sink in
/// `$K_OIDC_TOKEN_FILE` (Knative mounts it at `/oidc/token`): its subject is the source's, so
/// the Broker lets it in under `allow-same-namespace`, and without the token it gets 401.
#[tokio::test]
async fn with_oidc_a_container_source_posts_with_the_token_from_its_file() {
    let sink = Sink::start().await;
    let state = tempfile::tempdir().expect("temp dir");
    let key = state.path().join("oidc-key.pem");
    let features = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-features\n  namespace: knative-eventing\ndata:\n  authentication-oidc: enabled\n  default-authorization-mode: allow-same-namespace\n";
    // It posts with the token until the Broker takes it (the Broker may not be routed yet),
    // then once without.
    let script = r#"post() {
  id="$1"; shift
  curl -sS -o /dev/null -w '%{http_code}' -X POST "$K_SINK" "$@" \
    -H 'ce-specversion: 1.0' -H "ce-id: $id-$(date +%s%N)" -H 'ce-type: heartbeat' \
    -H 'ce-source: local/heartbeats' -H 'content-type: application/json' -d '{}'
}
for i in $(seq 1 300); do
  s=$(post with -H "Authorization: Bearer $(cat "$K_OIDC_TOKEN_FILE")")
  [ "$s" = 202 ] && break
  sleep 0.2
done
echo "with $s"
echo "without $(post without)"
sleep 600"#;
    let knit = Knit::start_with(
        &[
            ("features.yaml", features),
            ("broker.yaml", &broker("default", "")),
            ("trigger.yaml", &trigger("beats", "default", &sink.url, "")),
            (
                "source.yaml",
                &container_source("tokened", script, &to_broker("default"), ""),
            ),
        ],
        &["--oidc-key", key.to_str().expect("utf-8 path")],
    );
    let got = sink.wait_for(1).await;
    assert!(got[0].id().starts_with("with-"), "{}", got[0].id());
    let log = eventually("both posts in the log", || async {
        let (_, out, _) = knit.cli(&["logs", "containersource/tokened"]);
        (out.contains("[main] without ") && out.contains("[main] with ")).then_some(out)
    })
    .await;
    assert!(log.contains("[main] without 401"), "{log}");
    assert!(log.contains("[main] with 202"), "{log}");
    assert_eq!(sink.received().len(), 1, "only the post with the token");
}
