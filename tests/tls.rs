//! Transport encryption end to end, with real clients only: Python's `ssl` + `http.client`
//! (standard library, `tests/clients/python/tls_client.py`) and `curl --cacert` against
//! `knit run --tls-cert`'s listeners; Python `http.server` + `ssl` as HTTPS subscribers. The
//! certificates are made by the `openssl` command line in each test (`common::certs`).
//!
//! Covered: the HTTPS ingress (202, delivered), gateway (a Knative Service answers) and admin
//! API; the transport-encryption modes (strict by default with a certificate: plain ingress
//! 404; permissive: both; disabled: HTTPS 404); a certificate rotated while events flow (no
//! failed request, new connections see the new one); expired and wrong-host certificates
//! refused by the clients; Knit's own deliveries to HTTPS subscribers that are untrusted,
//! expired or for another host failing with the reason in the journey, then dead-lettered,
//! while a trusted one (by `--ca-file` or by the Destination's `CACerts`) gets its event.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::certs::{Ca, LOCAL_NAMES, Pair};
use common::sink::Sink;
use common::{Knit, broker, condition, eventually, repo, trigger};
use serde_json::Value;

fn python() -> String {
    std::env::var("KNIT_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Run `tls_client.py ARGS`: (exit code, stdout).
fn py_client(args: &[&str]) -> (i32, String) {
    let out = Command::new(python())
        .arg(repo("tests/clients/python/tls_client.py"))
        .args(args)
        .output()
        .expect("python runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Run curl with `args`: (exit code, stdout).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// POST a binary event with curl trusting `ca`: the status.
fn curl_post(url: &str, ca: &Path, id: &str) -> String {
    let ca = ca.to_string_lossy();
    let (code, out) = curl(&[
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "-H",
        "ce-specversion: 1.0",
        "-H",
        &format!("ce-id: {id}"),
        "-H",
        "ce-type: com.example.tls",
        "-H",
        "ce-source: /curl",
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"via":"curl"}"#,
        url,
    ]);
    assert_eq!(code, 0, "curl {url}: {out}");
    out
}

/// `knit run` with TLS from `pair` (copied to files of its own, which the test may replace),
/// trusting `ca`; every listener on a free port.
fn start(files: &[(&str, &str)], ca: &Ca, pair: &Pair, extra: &[&str]) -> (Knit, Files) {
    let tls = Files {
        cert: ca.path("serving.crt"),
        key: ca.path("serving.key"),
    };
    pair.install(&tls.cert, &tls.key);
    let (cert, key, ca_file) = (
        tls.cert.to_string_lossy().into_owned(),
        tls.key.to_string_lossy().into_owned(),
        ca.cert().to_string_lossy().into_owned(),
    );
    let mut flags = vec![
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--ca-file",
        &ca_file,
        "--ingress-tls",
        "127.0.0.1:0",
        "--gateway-tls",
        "127.0.0.1:0",
    ];
    flags.extend(extra);
    let knit = Knit::start_with(files, &flags).trusting(&ca.cert());
    (knit, tls)
}

/// The files knit serves its certificate from.
struct Files {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn features(mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-features\n  namespace: knative-eventing\ndata:\n  transport-encryption: {mode}\n"
    )
}

fn hello_service() -> String {
    format!(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: hello\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n        - image: example.com/hello\n          command: [\"python3\", \"{}\"]\n          env:\n            - name: TARGET\n              value: \"TLS\"\n",
        repo("tests/apps/hello.py").display()
    )
}

#[tokio::test]
async fn ingress_gateway_and_admin_answer_over_https_to_python_and_curl() {
    let ca = Ca::new("knit-test-ca");
    let pair = ca.server("knit-one", 1001);
    let sink = Sink::start().await;
    let (knit, _files) = start(
        &[
            ("b.yaml", &broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
            ("hello.yaml", &hello_service()),
        ],
        &ca,
        &pair,
        &[],
    );
    assert!(knit.admin.starts_with("https://"), "{}", knit.admin);
    let cafile = ca.cert().to_string_lossy().into_owned();

    // Strict (the default with a certificate): the Broker's address is https, with the CA.
    let b = knit.ready("brokers", "b").await;
    let address = b["status"]["address"].clone();
    let url = address["url"].as_str().expect("url").to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{address}");
    assert_eq!(address["name"], "https");
    assert_eq!(address["CACerts"].as_str(), Some(ca.pem().as_str()));
    assert_eq!(b["status"]["addresses"], serde_json::json!([address]));
    knit.ready("triggers", "t").await;

    let (code, out) = py_client(&["post", &url, &cafile, "py-1"]);
    assert_eq!((code, out.trim()), (0, "202"), "{out}");
    assert_eq!(curl_post(&url, &ca.cert(), "curl-1"), "202");
    let got = sink.wait_for(2).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, ["curl-1", "py-1"]);

    // The plain ingress answers 404 in strict mode.
    let plain = format!("{}/default/b", knit.ingress);
    let r = common::send(&plain, "com.example.tls", "plain-1").await;
    assert_eq!(r.status(), 404);
    assert!(
        r.text().await.unwrap_or_default().contains("strict"),
        "says why"
    );

    // The admin API speaks HTTPS: curl, Python, and knit's own CLI with --ca-file.
    let (code, out) = curl(&[
        "--cacert",
        &cafile,
        &format!("{}/api/v1/brokers", knit.admin),
    ]);
    assert_eq!(code, 0, "{out}");
    let list: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list["items"][0]["metadata"]["name"], "b");
    let (code, out) = py_client(&["get", &format!("{}/api/v1/brokers", knit.admin), &cafile]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("200"), "{out}");
    let (code, out, err) = knit.cli(&["get", "brokers"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&url), "{out}");
    let (code, out, err) = knit.cli(&[
        "send",
        "--to",
        "broker:default/b",
        "--type",
        "com.example.tls",
        "--source",
        "/cli",
        "--id",
        "cli-1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    sink.wait_for(3).await;
    let (code, _, err) = common::cli_env(&["get", "brokers"], &[("KNIT_SERVER", &knit.admin)]);
    assert_ne!(code, 0, "without the CA the CLI refuses the server");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );

    // The gateway: a Knative Service's URL is https on the HTTPS gateway and answers.
    let svc = knit.ready("services", "hello").await;
    let svc_url = svc["status"]["url"].as_str().expect("url").to_string();
    assert!(
        svc_url.starts_with("https://hello.default.localhost:"),
        "{svc_url}"
    );
    let port = svc_url.rsplit(':').next().expect("port");
    let (code, out) = curl(&[
        "--cacert",
        &cafile,
        "--resolve",
        &format!("hello.default.localhost:{port}:127.0.0.1"),
        &format!("{svc_url}/"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Hello TLS!"), "{out}");
    let (code, out) = py_client(&["get", &format!("{svc_url}/"), &cafile]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("200") && out.contains("Hello TLS!"),
        "{out}"
    );
    // Its cluster-local address stays http (served by the gateway's plain listener).
    assert_eq!(
        svc["status"]["address"]["url"],
        "http://hello.default.svc.cluster.local"
    );
}

#[tokio::test]
async fn permissive_serves_both_listeners_and_disabled_closes_https() {
    let ca = Ca::new("knit-test-ca");
    let pair = ca.server("knit-one", 1001);
    let sink = Sink::start().await;
    let (knit, _files) = start(
        &[
            ("features.yaml", &features("permissive")),
            ("b.yaml", &broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
        ],
        &ca,
        &pair,
        &[],
    );
    let cafile = ca.cert().to_string_lossy().into_owned();
    let b = knit.ready("brokers", "b").await;
    let http = b["status"]["address"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(http.starts_with("http://"), "{b}");
    let addresses = b["status"]["addresses"].as_array().expect("addresses");
    assert_eq!(addresses.len(), 2, "{b}");
    assert_eq!(addresses[0]["name"], "https");
    assert_eq!(addresses[1]["url"].as_str(), Some(http.as_str()));
    let https = addresses[0]["url"].as_str().expect("https").to_string();
    knit.ready("triggers", "t").await;

    assert_eq!(
        common::send(&http, "com.example.tls", "plain-1")
            .await
            .status(),
        202
    );
    assert_eq!(curl_post(&https, &ca.cert(), "tls-1"), "202");
    sink.wait_for(2).await;

    // disabled: only http is advertised, and the HTTPS listener answers 404.
    knit.write("features.yaml", &features("disabled"));
    eventually("the https address to go away", || async {
        let b = knit.object("brokers", "b").await?;
        (b["status"]["addresses"].as_array()?.len() == 1).then_some(())
    })
    .await;
    eventually("HTTPS to answer 404", || async {
        (curl_post(&https, &ca.cert(), "tls-2") == "404").then_some(())
    })
    .await;
    let (code, out) = py_client(&["post", &https, &cafile, "py-2"]);
    assert_eq!((code, out.trim()), (0, "404"), "{out}");
    assert_eq!(
        common::send(&http, "com.example.tls", "plain-2")
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_connections_while_events_flow_with_no_failure() {
    let ca = Ca::new("knit-test-ca");
    let one = ca.server("knit-one", 1001);
    let two = ca.server("knit-two", 2002);
    let sink = Sink::start().await;
    let (knit, files) = start(
        &[
            ("b.yaml", &broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
        ],
        &ca,
        &one,
        &[],
    );
    let cafile = ca.cert().to_string_lossy().into_owned();
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    let (code, out) = py_client(&["peer", &url, &cafile]);
    assert_eq!((code, out.trim()), (0, "1001 knit-one"), "{out}");

    // Events flow from Python (a new connection every 5 events) while the files are replaced
    // (the certificate first: for a moment the pair does not match and is refused).
    let stream = Command::new(python())
        .arg(repo("tests/clients/python/tls_client.py"))
        .args(["stream", &url, &cafile, "2002", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    eventually("events to flow", || async {
        (sink.received().len() >= 10).then_some(())
    })
    .await;
    two.install(&files.cert, &files.key);
    let out = tokio::task::spawn_blocking(move || stream.wait_with_output())
        .await
        .expect("join")
        .expect("python output");
    let summary: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(summary["failed"], serde_json::json!([]), "{summary}");
    let serials: Vec<u64> = summary["serials"]
        .as_array()
        .expect("serials")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(serials.first(), Some(&1001), "{summary}");
    let first_new = serials
        .iter()
        .position(|s| *s == 2002)
        .unwrap_or_else(|| panic!("the new certificate was never served: {summary}"));
    assert!(
        serials[first_new..].iter().all(|s| *s == 2002),
        "once rotated, every new connection gets the new certificate: {serials:?}"
    );
    // Every accepted event was delivered.
    let sent = summary["sent"].as_array().expect("sent").len();
    assert!(sent >= 25, "{summary}");
    sink.wait_for(sent).await;
    // curl sees the new certificate too (its subject).
    let (code, out) = curl(&[
        "-v",
        "--cacert",
        &cafile,
        "-o",
        "/dev/null",
        &format!("{}/api/v1/brokers", knit.admin),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("CN=knit-two"), "{out}");
    // A broken pair is refused, logged, and the last good one keeps serving.
    std::fs::write(&files.cert, "not a certificate").expect("write");
    eventually("the refusal to be logged", || async {
        let logs = knit.logs();
        (logs.contains("new TLS certificate not loaded")
            && logs.contains("no PEM certificate in it"))
        .then_some(())
    })
    .await;
    let (code, out) = py_client(&["peer", &url, &cafile]);
    assert_eq!((code, out.trim()), (0, "2002 knit-two"), "{out}");
}

#[tokio::test]
async fn expired_and_wrong_host_certificates_are_refused_by_the_clients() {
    let ca = Ca::new("knit-test-ca");
    let expired = ca.issue("knit-expired", 3003, LOCAL_NAMES, -1);
    let elsewhere = ca.issue("knit-elsewhere", 4004, "DNS:elsewhere.example", 30);
    let (knit, files) = start(&[("b.yaml", &broker("b", ""))], &ca, &expired, &[]);
    let cafile = ca.cert().to_string_lossy().into_owned();
    let admin = format!("{}/api/v1/brokers", knit.admin);
    let (code, out) = py_client(&["peer", &admin, &cafile]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused: certificate has expired"), "{out}");
    let (code, out) = curl(&["--cacert", &cafile, &admin]);
    assert_eq!(
        code, 60,
        "curl: peer certificate cannot be authenticated: {out}"
    );
    assert!(out.contains("expired"), "{out}");

    elsewhere.install(&files.cert, &files.key);
    eventually("the wrong-host certificate to be served", || async {
        let (_, out) = py_client(&["peer", &admin, &cafile]);
        // "IP address mismatch, certificate is not valid for '127.0.0.1'."
        out.contains("refused: IP address mismatch").then_some(())
    })
    .await;
    let (code, out) = curl(&["--cacert", &cafile, &admin]);
    assert_eq!(code, 60, "{out}");
    assert!(
        out.contains("elsewhere.example") || out.contains("match"),
        "{out}"
    );
}

/// An HTTPS subscriber: Python's `http.server` wrapped by `ssl` with `pair`.
struct HttpsSink {
    child: Child,
    url: String,
    events: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl HttpsSink {
    fn start(pair: &Pair) -> HttpsSink {
        let mut child = Command::new(python())
            .arg(repo("tests/clients/python/https_sink.py"))
            .arg(&pair.cert)
            .arg(&pair.key)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let port = first.strip_prefix("port ").expect("port line").to_string();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = events.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let (Some(id), Ok(mut e)) = (line.strip_prefix("event "), seen.lock()) {
                    e.push(id.to_string());
                }
            }
        });
        HttpsSink {
            child,
            url: format!("https://localhost:{port}/"),
            events,
        }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Drop for HttpsSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Trigger taking `type` to `uri` (with `ca_certs` as the subscriber's `CACerts`), one retry,
/// dead letters to `dls`.
fn https_trigger(name: &str, ty: &str, uri: &str, ca_certs: Option<&str>, dls: &str) -> String {
    let ca = ca_certs
        .map(|c| format!("    CACerts: |\n{}\n", common::indent(c, 6)))
        .unwrap_or_default();
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  broker: b\n  filter:\n    attributes:\n      type: {ty}\n  subscriber:\n    uri: {uri}\n{ca}  delivery:\n    retry: 1\n    deadLetterSink:\n      uri: {dls}\n"
    )
}

#[tokio::test]
async fn deliveries_to_refused_https_subscribers_fail_with_the_reason_then_dead_letter() {
    let ca = Ca::new("knit-test-ca");
    let other = Ca::new("other-ca");
    let good = HttpsSink::start(&ca.server("sink-good", 11));
    let by_ca_certs = HttpsSink::start(&other.server("sink-other-trusted", 12));
    let untrusted = HttpsSink::start(&other.server("sink-untrusted", 13));
    let expired = HttpsSink::start(&ca.issue("sink-expired", 14, LOCAL_NAMES, -1));
    let wrong = HttpsSink::start(&ca.issue("sink-wrong", 15, "DNS:elsewhere.example", 30));
    let dls = Sink::start().await;
    let cafile = ca.cert().to_string_lossy().into_owned();
    // No certificate of its own: Knit's deliveries trust the system's roots and --ca-file.
    let knit = Knit::start_with(
        &[
            ("b.yaml", &broker("b", "")),
            (
                "good.yaml",
                &https_trigger("good", "good", &good.url, None, &dls.url),
            ),
            (
                "cacerts.yaml",
                &https_trigger(
                    "cacerts",
                    "cacerts",
                    &by_ca_certs.url,
                    Some(&other.pem()),
                    &dls.url,
                ),
            ),
            (
                "untrusted.yaml",
                &https_trigger("untrusted", "untrusted", &untrusted.url, None, &dls.url),
            ),
            (
                "expired.yaml",
                &https_trigger("expired", "expired", &expired.url, None, &dls.url),
            ),
            (
                "wrong.yaml",
                &https_trigger("wrong", "wrong", &wrong.url, None, &dls.url),
            ),
        ],
        &["--ca-file", &cafile],
    );
    let url = knit.address("brokers", "b").await;
    for t in ["good", "cacerts", "untrusted", "expired", "wrong"] {
        let o = knit.ready("triggers", t).await;
        assert!(condition(&o, "Ready").is_some());
        let r = common::send(&url, t, &format!("ev-{t}")).await;
        assert_eq!(r.status(), 202);
    }
    eventually("the trusted subscribers to get their events", || async {
        (good.events() == ["ev-good"] && by_ca_certs.events() == ["ev-cacerts"]).then_some(())
    })
    .await;
    let dead = dls.wait_for(3).await;
    let mut ids: Vec<String> = dead.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, ["ev-expired", "ev-untrusted", "ev-wrong"]);
    assert!(untrusted.events().is_empty() && expired.events().is_empty());
    // The journey says why each attempt failed.
    let (code, out, err) = knit.cli(&[
        "get",
        "events",
        "--broker",
        "default/b",
        "--failed",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    for reason in [
        "TLS: certificate not trusted (UnknownIssuer)",
        "TLS: certificate expired",
        "TLS: certificate not valid for this host",
    ] {
        assert!(out.contains(reason), "{reason} in {out}");
    }
    let journeys: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(journeys["items"].as_array().map(Vec::len), Some(3), "{out}");
}
