//! NATS JetStream objects end to end, with a private `nats-server -js` per test: a
//! `NatsJetStreamBroker` delivering to a Trigger (a poison event reaching the dead-letter sink
//! after exactly `retry + 1` attempts), and a `NatsJetStreamChannel` delivering to a
//! Subscription; both name their stream in status.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::sink::{Reply, Sink};
use common::{Knit, cli_env, send, trigger};

/// A private nats-server on a free port with its own storage, killed on drop.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    url: String,
    dir: tempfile::TempDir,
}

impl NatsServer {
    fn start() -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut s = NatsServer {
            child: None,
            port,
            url: format!("nats://127.0.0.1:{port}"),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        s.run();
        s
    }

    /// Start (again) on the same port and storage directory.
    fn run(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (with JetStream) on the PATH");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn a_jetstream_broker_delivers_and_dead_letters_after_exactly_retry_plus_one() {
    let nats = NatsServer::start();
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.respond_with(|r| {
        if r.id() == "poison" {
            Reply::status(500)
        } else {
            Reply::status(202)
        }
    });
    let broker = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: nb\n  namespace: default\n  annotations:\n    eventing.knative.dev/broker.class: NatsJetStreamBroker\n";
    let delivery = format!(
        "delivery:\n  retry: 2\n  backoffPolicy: linear\n  backoffDelay: PT0.2S\n  deadLetterSink:\n    uri: {}\n",
        dls.url
    );
    let knit = Knit::start_with(
        &[
            ("b.yaml", broker),
            ("t.yaml", &trigger("t", "nb", &sink.url, &delivery)),
        ],
        &["--nats", &nats.url],
    );
    let b = knit.ready("brokers", "nb").await;
    assert_eq!(
        b["status"]["annotations"]["stream"],
        "KN_BROKER_DEFAULT__NB"
    );
    knit.ready("triggers", "t").await;
    let url = format!("{}/default/nb", knit.ingress);
    for i in 0..20 {
        assert_eq!(send(&url, "t", &format!("e-{i}")).await.status(), 202);
    }
    assert_eq!(send(&url, "t", "poison").await.status(), 202);
    let dead = dls.wait_for(1).await;
    assert_eq!(dead[0].id(), "poison");
    let got = sink.wait_for(23).await;
    let poison_attempts = got.iter().filter(|r| r.id() == "poison").count();
    assert_eq!(poison_attempts, 3, "retry + 1 attempts");
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.id())
        .filter(|i| i != "poison")
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

#[tokio::test]
async fn a_jetstream_channel_delivers_to_its_subscription() {
    let nats = NatsServer::start();
    let sink = Sink::start().await;
    let channel = "apiVersion: messaging.knative.dev/v1alpha1\nkind: NatsJetStreamChannel\nmetadata:\n  name: ch\n  namespace: default\nspec:\n  stream:\n    config:\n      maxAge: 1h\n";
    let sub = format!(
        "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata:\n  name: s\n  namespace: default\nspec:\n  channel:\n    apiVersion: messaging.knative.dev/v1alpha1\n    kind: NatsJetStreamChannel\n    name: ch\n  subscriber:\n    uri: {}\n",
        sink.url
    );
    let knit = Knit::start_with(
        &[("c.yaml", channel), ("s.yaml", &sub)],
        &["--nats", &nats.url],
    );
    let c = knit.ready("natsjetstreamchannels", "ch").await;
    assert_eq!(c["status"]["annotations"]["stream"], "KN_DEFAULT__CH");
    knit.ready("subscriptions", "s").await;
    let url = knit.address("natsjetstreamchannels", "ch").await;
    for i in 0..5 {
        assert_eq!(send(&url, "t", &format!("c-{i}")).await.status(), 202);
    }
    let got = sink.wait_for(5).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, vec!["c-0", "c-1", "c-2", "c-3", "c-4"]);
}

/// `knit replay trigger` on a JetStream Broker: the range by stream sequence goes to that
/// Trigger again, marked `knitreplay`.
#[tokio::test]
async fn a_jetstream_broker_replays_a_range_to_one_trigger() {
    let nats = NatsServer::start();
    let sink = Sink::start().await;
    let broker = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: nb\n  namespace: default\n  annotations:\n    eventing.knative.dev/broker.class: NatsJetStreamBroker\n";
    let knit = Knit::start_with(
        &[
            ("b.yaml", broker),
            ("t.yaml", &trigger("t", "nb", &sink.url, "")),
        ],
        &["--nats", &nats.url],
    );
    knit.ready("triggers", "t").await;
    let url = format!("{}/default/nb", knit.ingress);
    for i in 0..5 {
        assert_eq!(send(&url, "t", &format!("r-{i}")).await.status(), 202);
    }
    sink.wait_for(5).await;
    let admin = knit.admin.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli_env(
            &["replay", "trigger", "t", "--from", "2", "--to", "4"],
            &[("KNIT_SERVER", admin.as_str())],
        )
    })
    .await
    .expect("the CLI ran");
    assert_eq!(code, 0, "{out}{err}");
    let got = sink.wait_for(7).await;
    let mut replayed: Vec<String> = got
        .iter()
        .filter(|r| r.ext("knitreplay").is_some())
        .map(|r| r.id())
        .collect();
    replayed.sort();
    assert_eq!(replayed, vec!["r-1", "r-2"], "sequences 2 and 3");
}

/// The NATS server killed (-9) and restarted on its storage mid-stream: every event accepted
/// (202) before and after is delivered, and an event sent while it is down gets 503.
#[tokio::test]
async fn a_jetstream_restart_loses_nothing_that_was_accepted() {
    let mut nats = NatsServer::start();
    let sink = Sink::start().await;
    let broker = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: nb\n  namespace: default\n  annotations:\n    eventing.knative.dev/broker.class: NatsJetStreamBroker\n";
    let knit = Knit::start_with(
        &[
            ("b.yaml", broker),
            ("t.yaml", &trigger("t", "nb", &sink.url, "")),
        ],
        &["--nats", &nats.url],
    );
    knit.ready("triggers", "t").await;
    let url = format!("{}/default/nb", knit.ingress);
    let mut accepted = Vec::new();
    for i in 0..20 {
        let id = format!("a-{i}");
        assert_eq!(send(&url, "t", &id).await.status(), 202);
        accepted.push(id);
    }
    nats.kill();
    let down = send(&url, "t", "while-down").await;
    assert_eq!(down.status(), 503, "not accepted while NATS is down");
    nats.run();
    for i in 0..20 {
        let id = format!("b-{i}");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = send(&url, "t", &id).await.status();
            if status == 202 {
                break;
            }
            assert_eq!(status, 503, "{id}");
            assert!(std::time::Instant::now() < deadline, "{id} never accepted");
        }
        accepted.push(id);
    }
    let got = common::eventually("every accepted event delivered", || async {
        let ids: std::collections::BTreeSet<String> =
            sink.received().iter().map(|r| r.id()).collect();
        accepted.iter().all(|a| ids.contains(a)).then_some(ids)
    })
    .await;
    assert!(accepted.iter().all(|a| got.contains(a)));
}
