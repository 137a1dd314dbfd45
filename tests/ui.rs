//! The live flow map (`/ui`) in a real headless browser: Debian's `/usr/bin/chromium` driven by
//! npm `playwright-core` (`tests/clients/js/flowmap.mjs`) against a running `knit run` with a
//! PingSource → Broker → two Triggers → sinks, one of them failing into a dead-letter sink.
//! The page must draw the nodes and edges of the manifest (by their `data-*` attributes), colour
//! them Ready, raise a rate label when events flow and an error rate when deliveries fail, and
//! open a side panel when a Trigger is clicked. It saves a screenshot: to
//! `KNIT_FLOWMAP_SCREENSHOT` when set (the README's `docs/flow-map.png` is taken so), else
//! into a temp folder.
//!
//! Under `CI=true` a missing chromium fails the test; elsewhere it is skipped, loudly.
//! Also: the stream and the page's files over plain HTTP (no browser needed).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::sink::{Reply, Sink};
use common::{Knit, broker, http, indent, trigger};
use serde_json::{Value, json};

fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(
        std::env::var("KNIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing: .ci/run installs Debian's chromium (apt-get install chromium)",
        path.display()
    );
    eprintln!(
        "!!! SKIPPED: no chromium at {} (apt-get install -y --no-install-recommends chromium)",
        path.display()
    );
    None
}

fn js_clients() -> PathBuf {
    let dir = std::env::var("KNIT_JS_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| common::repo("tests/clients/js"));
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .exists(),
        "needs npm playwright-core in {}: run scripts/test, which installs the npm test clients",
        dir.display()
    );
    dir
}

/// The manifest: a PingSource every second into Broker `default`; Trigger `archive` takes
/// everything to a working sink, Trigger `billing` takes orders to a sink that answers 500,
/// retries once and dead-letters.
fn manifests(archive: &str, billing: &str, dead: &str) -> Vec<(&'static str, String)> {
    let ping = format!(
        "apiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata:\n  name: heartbeat\n  namespace: default\nspec:\n{}\n",
        indent(
            "schedule: \"* * * * * *\"\ncontentType: application/json\ndata: '{\"beat\": true}'\nsink:\n  ref:\n    apiVersion: eventing.knative.dev/v1\n    kind: Broker\n    name: default\n",
            2
        )
    );
    let delivery = format!(
        "filter:\n  attributes:\n    type: com.example.order\ndelivery:\n  retry: 1\n  backoffPolicy: linear\n  backoffDelay: PT0.05S\n  deadLetterSink:\n    uri: {dead}\n"
    );
    vec![
        ("broker.yaml", broker("default", "")),
        ("ping.yaml", ping),
        ("archive.yaml", trigger("archive", "default", archive, "")),
        (
            "billing.yaml",
            trigger("billing", "default", billing, &delivery),
        ),
    ]
}

#[tokio::test]
#[ignore = "needs chromium and the npm test clients (scripts/test installs them)"]
async fn the_flow_map_draws_the_manifest_and_moves_with_events() {
    let Some(chromium) = chromium() else { return };
    let clients = js_clients();
    let (archive, billing, dead) = (
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    );
    billing.default_reply(Reply::status(500));
    let files = manifests(&archive.url, &billing.url, &dead.url);
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let knit = Knit::start(&files);
    let broker_url = knit.address("brokers", "default").await;
    for t in ["archive", "billing"] {
        knit.ready("triggers", t).await;
    }
    knit.ready("pingsources", "heartbeat").await;

    let shot = match std::env::var_os("KNIT_FLOWMAP_SCREENSHOT") {
        // Relative to the checkout (node runs in the clients' folder).
        Some(p) => common::repo("").join(p),
        None => knit.dir.path().join("flow-map.png"),
    };
    let uri = |url: &str| format!("URI//{}", url.trim_end_matches('/'));
    let spec = json!({
        "admin": knit.admin,
        "screenshot": shot,
        "chromium": chromium,
        "nodes": ["PingSource/default/heartbeat", "Broker/default/default",
                  "Trigger/default/archive", "Trigger/default/billing",
                  uri(&archive.url), uri(&billing.url), uri(&dead.url)],
        "ready": ["PingSource/default/heartbeat", "Broker/default/default",
                  "Trigger/default/archive", "Trigger/default/billing"],
        "edges": [
            ["PingSource/default/heartbeat", "Broker/default/default"],
            ["Broker/default/default", "Trigger/default/archive"],
            ["Broker/default/default", "Trigger/default/billing"],
            ["Trigger/default/archive", uri(&archive.url)],
            ["Trigger/default/billing", uri(&billing.url)],
            ["Trigger/default/billing", uri(&dead.url)],
        ],
        "send": {"url": broker_url, "type": "com.example.order"},
        "flowing": "Trigger/default/archive",
        "failing": "Trigger/default/billing",
        "click": "Trigger/default/billing",
    });
    let script = clients.join("flowmap.mjs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(spec.to_string())
            .current_dir(clients)
            .output()
    })
    .await
    .expect("join")
    .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "flowmap.mjs failed ({}):\n{stdout}\n{stderr}\nknit:\n{}",
        out.status,
        knit.logs()
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("flowmap.mjs printed no JSON ({e}): {stdout}"));
    eprintln!("flow map: {seen}");
    assert_eq!(seen["ok"], true, "{seen}");
    assert!(
        seen["seen"]["flowing"]["value"].as_f64() > Some(0.0),
        "{seen}"
    );
    assert!(
        seen["seen"]["failing"]["value"].as_f64() > Some(0.0),
        "{seen}"
    );
    // The failing Trigger's panel lists its failures from the event journal, and the first
    // one's journey renders.
    assert_eq!(seen["seen"]["failures"], "loaded", "{seen}");
    assert_eq!(seen["seen"]["journey"], "loaded", "{seen}");
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG: {}", shot.display());
    assert!(
        !billing.received().is_empty() && !dead.received().is_empty(),
        "the failing trigger was tried and dead-lettered"
    );
}

/// An open `/api/v1/stream`.
struct Stream {
    response: reqwest::Response,
    text: String,
}

impl Stream {
    async fn open(knit: &Knit) -> Stream {
        let response = http()
            .get(format!("{}/api/v1/stream", knit.admin))
            .send()
            .await
            .expect("stream");
        assert_eq!(response.status(), 200);
        let ct = response.headers()["content-type"]
            .to_str()
            .unwrap_or_default();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Stream {
            response,
            text: String::new(),
        }
    }

    /// Read snapshots (one a second) until `check` accepts one.
    async fn until(&mut self, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + common::PATIENCE;
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let event: String = self.text.drain(..end + 2).collect();
                let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                assert!(event.starts_with("event: snapshot"), "{event}");
                let v: Value = serde_json::from_str(data).expect("snapshot JSON");
                if check(&v) {
                    return v;
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("a snapshot in time")
                .expect("stream body")
                .expect("the stream never ends");
            self.text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn the_stream_sends_the_counters_and_the_page_is_served() {
    let sink = Sink::start().await;
    let (knit, url) = common::broker_with_trigger(&sink, "").await;
    let mut stream = Stream::open(&knit).await;
    let first = stream.until(|_| true).await;
    assert!(first["at"].as_i64() > Some(0), "{first}");
    let generation = first["generation"].as_u64().expect("generation");
    common::send(&url, "t.flowmap", "e-1").await;
    sink.wait_for(1).await;
    let later = stream
        .until(|v| v["egresses"]["Trigger/default/t"]["delivered"].as_u64() >= Some(1))
        .await;
    assert!(later["totals"]["delivered"].as_u64() >= Some(1), "{later}");

    // A change of the objects moves the generation (the page reads the objects again).
    knit.write("t2.yaml", &trigger("t2", "b", &sink.url, ""));
    stream
        .until(|v| v["generation"].as_u64() > Some(generation))
        .await;

    let page = http()
        .get(format!("{}/ui", knit.admin))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let ct = page.headers()["content-type"].to_str().unwrap_or_default();
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = page.text().await.expect("html");
    assert!(html.contains("/ui/app.js"), "{html}");
    for file in ["app.js", "graph.js", "panel.js", "style.css"] {
        let r = http()
            .get(format!("{}/ui/{file}", knit.admin))
            .send()
            .await
            .expect("file");
        assert_eq!(r.status(), 200, "{file}");
    }
    let missing = http()
        .get(format!("{}/ui/nope.js", knit.admin))
        .send()
        .await
        .expect("file");
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_stream_is_behind_the_token_and_the_page_is_not() {
    let knit = Knit::start_with(&[], &["--admin-token", "s3cret"]);
    let stream = http()
        .get(format!("{}/api/v1/stream", knit.admin))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 401);
    let page = http()
        .get(format!("{}/ui", knit.admin))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
}
