//! The serving data plane end to end: `tests/app.py` as the revision's process, requests through
//! the gateway by Host.

mod common;

use std::time::Duration;

use common::{Harness, get, revision, route, spec};
use knit_crds::contract::serving::Tag;
use knit_serving::runtime::Config;

const START: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_by_host_with_forwarding_headers() -> anyhow::Result<()> {
    let h = Harness::one_revision("hello", "hello-00001", START).await?;
    let (status, body) = h.get("Hello.default.localhost:8081", "/").await?;
    assert_eq!((status, body.as_str()), (200, "hello-00001"));
    let (status, body) = h.get("hello.default.localhost", "/headers").await?;
    assert_eq!(status, 200);
    assert!(body.contains("host=hello.default.localhost"), "{body}");
    assert!(
        body.contains("forwarded=for=127.0.0.1;proto=http;host=\"hello.default.localhost\""),
        "{body}"
    );
    assert!(body.contains("x-forwarded-for=127.0.0.1"), "{body}");
    assert!(body.contains("x-forwarded-proto=http"), "{body}");
    // The client's hop-by-hop headers stay with the gateway.
    assert!(!body.contains("connection="), "{body}");
    let (status, body) = h.get("nope.default.localhost", "/").await?;
    assert_eq!(status, 404);
    assert!(body.contains("no route for host"), "{body}");
    let report = h.sink.get("uid-hello-00001").unwrap_or_default();
    assert_eq!(
        report.annotations.get("actualReplicas").map(String::as_str),
        Some("1")
    );
    // The app's output, with $(PORT) expanded in its argv, is in the logs.
    let lines = h.serving.logs("default", "hello", 0);
    let listening = lines.iter().find(|l| l.text.starts_with("listening on"));
    let Some(listening) = listening else {
        anyhow::bail!("no output in {lines:?}");
    };
    assert!(
        listening.text.contains("as hello/hello-00001"),
        "{}",
        listening.text
    );
    assert!(
        listening.text.contains("--port=") && !listening.text.contains("$(PORT)"),
        "{}",
        listening.text
    );
    let after = lines.last().map(|l| l.seq).unwrap_or(0);
    assert!(h.serving.logs("default", "hello", after).is_empty());
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_tags() -> anyhow::Result<()> {
    let h = Harness::start(Config::default()).await?;
    let mut r = route("split", &[("split-00001", 70), ("split-00002", 30)]);
    r.tags.push(Tag {
        tag: "candidate".into(),
        hosts: vec!["candidate-split.default.localhost".into()],
        revision: "split-00002".into(),
    });
    let mut s = spec(
        vec![
            revision("split", "split-00001", &[]),
            revision("split", "split-00002", &[]),
        ],
        vec![r],
    );
    s.tag_header_routing = true;
    h.serving.apply(&s);
    h.wait_report("uid-split-00001", START, |r| r.ready).await?;
    h.wait_report("uid-split-00002", START, |r| r.ready).await?;
    let mut first = 0;
    for _ in 0..2000 {
        let (status, body) = h.get("split.default.localhost", "/").await?;
        assert_eq!(status, 200, "{body}");
        if body == "split-00001" {
            first += 1;
        }
    }
    assert!(
        (1300..=1500).contains(&first),
        "70% of 2000 went to {first}"
    );
    let (status, body) = h.get("candidate-split.default.localhost", "/").await?;
    assert_eq!((status, body.as_str()), (200, "split-00002"));
    for _ in 0..10 {
        let (status, body) = get(
            h.gateway,
            "split.default.localhost",
            "/",
            &[("Knative-Serving-Tag", "candidate")],
        )
        .await?;
        assert_eq!((status, body.as_str()), (200, "split-00002"));
    }
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_concurrency_one_is_enforced() -> anyhow::Result<()> {
    let h = Harness::start(Config::default()).await?;
    let mut rev = revision("cc", "cc-00001", &[]);
    rev.container_concurrency = 1;
    rev.autoscaling
        .insert("autoscaling.knative.dev/max-scale".into(), "1".into());
    h.serving
        .apply(&spec(vec![rev], vec![route("cc", &[("cc-00001", 100)])]));
    h.wait_report("uid-cc-00001", START, |r| r.ready).await?;
    let mut calls = Vec::new();
    for _ in 0..15 {
        let gw = h.gateway;
        calls.push(tokio::spawn(async move {
            get(gw, "cc.default.localhost", "/slow?ms=400", &[]).await
        }));
    }
    let mut ok = 0;
    let mut full = 0;
    for c in calls {
        let (status, body) = c.await??;
        match status {
            200 => ok += 1,
            503 => {
                assert!(body.contains("queue full"), "{body}");
                full += 1;
            }
            other => anyhow::bail!("unexpected {other}: {body}"),
        }
    }
    // One at the app, ten queued (10 × CC), the rest refused.
    assert_eq!((ok, full), (11, 4));
    let (status, most) = h.get("cc.default.localhost", "/stats").await?;
    assert_eq!((status, most.as_str()), (200, "1"));
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_to_zero_and_back() -> anyhow::Result<()> {
    let h = Harness::start(Config::default()).await?;
    let mut rev = revision("zero", "zero-00001", &[]);
    // The shortest stable window Knative admits.
    rev.autoscaling
        .insert("autoscaling.knative.dev/window".into(), "6s".into());
    let mut s = spec(vec![rev], vec![route("zero", &[("zero-00001", 100)])]);
    s.autoscaler_config
        .insert("scale-to-zero-grace-period".into(), "1s".into());
    h.serving.apply(&s);
    h.wait_report("uid-zero-00001", START, |r| r.ready).await?;
    let (status, _) = h.get("zero.default.localhost", "/").await?;
    assert_eq!(status, 200);
    let at_zero = h
        .wait_report("uid-zero-00001", START, |r| {
            r.annotations.get("actualReplicas").map(String::as_str) == Some("0")
                && r.annotations.get("desiredReplicas").map(String::as_str) == Some("0")
        })
        .await?;
    assert!(at_zero.ready, "healthy at zero: {at_zero:?}");
    assert!(!at_zero.annotations.contains_key("lastColdStartMs"));
    // The request at zero starts a replica and is answered.
    let (status, body) = h.get("zero.default.localhost", "/").await?;
    assert_eq!((status, body.as_str()), (200, "zero-00001"));
    let r = h
        .wait_report("uid-zero-00001", START, |r| {
            r.annotations.contains_key("lastColdStartMs")
        })
        .await?;
    let ms: u64 = r.annotations["lastColdStartMs"].parse()?;
    assert!(ms > 0 && ms < 20_000, "{ms}");
    assert_eq!(
        r.annotations.get("actualReplicas").map(String::as_str),
        Some("1")
    );
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_are_reported_and_replaced() -> anyhow::Result<()> {
    let h = Harness::start(Config::default()).await?;
    h.serving.apply(&spec(
        vec![
            revision(
                "bad",
                "bad-00001",
                &[("CRASH", "boom: missing DATABASE_URL")],
            ),
            revision("crash", "crash-00001", &[]),
        ],
        vec![route("crash", &[("crash-00001", 100)])],
    ));
    let bad = h
        .wait_report("uid-bad-00001", START, |r| {
            !r.reason.is_empty() && r.reason != "Deploying"
        })
        .await?;
    assert!(!bad.ready);
    assert_eq!(bad.reason, "ExitCode");
    assert!(bad.message.contains("exit status: 3"), "{}", bad.message);
    assert!(
        bad.message.contains("boom: missing DATABASE_URL"),
        "{}",
        bad.message
    );

    h.wait_report("uid-crash-00001", START, |r| r.ready).await?;
    let (status, _) = h.get("crash.default.localhost", "/crash").await?;
    assert_eq!(status, 502);
    // A replacement starts and answers.
    let deadline = std::time::Instant::now() + START;
    loop {
        let (status, _) = h.get("crash.default.localhost", "/").await?;
        if status == 200 {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "never replaced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = h.serving.logs("default", "crash-00001", 0);
    assert!(
        lines.iter().any(|l| l.stream == "knit"
            && l.text.contains("ExitCode")
            && l.text.contains("exit status: 4")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l.text.starts_with("started"))
            .count()
            >= 2
    );
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_program_reports_exit_code() -> anyhow::Result<()> {
    let h = Harness::start(Config::default()).await?;
    let mut rev = revision("missing", "missing-00001", &[]);
    rev.container = common::container(&["/nonexistent/knit-app"], &[]);
    h.serving.apply(&spec(
        vec![rev],
        vec![route("missing", &[("missing-00001", 100)])],
    ));
    let r = h
        .wait_report("uid-missing-00001", START, |r| r.reason == "ExitCode")
        .await?;
    assert!(!r.ready);
    assert!(r.message.contains("cannot start"), "{}", r.message);
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_answer_504() -> anyhow::Result<()> {
    let h = Harness::start(Config::default()).await?;
    let mut total = revision("slow", "slow-00001", &[]);
    total.timeout_seconds = 1;
    let mut start = revision("slow", "slow-00002", &[]);
    start.response_start_timeout_seconds = Some(1);
    let mut r = route("slow", &[("slow-00001", 100)]);
    r.tags.push(Tag {
        tag: "start".into(),
        hosts: vec!["start-slow.default.localhost".into()],
        revision: "slow-00002".into(),
    });
    h.serving.apply(&spec(vec![total, start], vec![r]));
    h.wait_report("uid-slow-00001", START, |r| r.ready).await?;
    h.wait_report("uid-slow-00002", START, |r| r.ready).await?;
    let (status, _) = h.get("slow.default.localhost", "/slow?ms=50").await?;
    assert_eq!(status, 200);
    let (status, body) = h.get("slow.default.localhost", "/slow?ms=3000").await?;
    assert_eq!(status, 504, "{body}");
    let (status, body) = h
        .get("start-slow.default.localhost", "/slow?ms=3000")
        .await?;
    assert_eq!(status, 504, "{body}");
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_pass_through() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start(Config::default()).await?;
    h.serving.apply(&spec(
        vec![revision("ws", "ws-00001", &[])],
        vec![route("ws", &[("ws-00001", 100)])],
    ));
    h.wait_report("uid-ws-00001", START, |r| r.ready).await?;
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut s = tokio::net::TcpStream::connect(h.gateway).await?;
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: ws.default.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            anyhow::ensure!(s.read(&mut byte).await? == 1, "closed in the head: {head:?}");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        anyhow::ensure!(head.starts_with("HTTP/1.1 101"), "{head}");
        for msg in [&b"ping"[..], b"pong pong"] {
            s.write_all(msg).await?;
            let mut got = vec![0u8; msg.len()];
            s.read_exact(&mut got).await?;
            assert_eq!(got, msg);
        }
        Ok(())
    })
    .await??;
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ready_times_out_and_exceeds_the_progress_deadline() -> anyhow::Result<()> {
    let h = Harness::start(Config {
        progress_deadline: Duration::from_secs(1),
        ..Config::default()
    })
    .await?;
    let mut rev = revision("mute", "mute-00001", &[]);
    // Never listens; exits when its stdin closes.
    rev.container = common::container(&["python3", "-c", "import sys; sys.stdin.read()"], &[]);
    rev.timeout_seconds = 1;
    h.serving.apply(&spec(
        vec![rev],
        vec![route("mute", &[("mute-00001", 100)])],
    ));
    // The wait for a replica counts against the revision timeout.
    let (status, body) = h.get("mute.default.localhost", "/").await?;
    assert_eq!(status, 504, "{body}");
    let r = h
        .wait_report("uid-mute-00001", START, |r| {
            r.reason == "ProgressDeadlineExceeded"
        })
        .await?;
    assert!(!r.ready);
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_drains_in_flight_requests() -> anyhow::Result<()> {
    let h = Harness::start(Config::default()).await?;
    let mut rev = revision("drain", "drain-00001", &[]);
    rev.autoscaling
        .insert("autoscaling.knative.dev/min-scale".into(), "2".into());
    h.serving.apply(&spec(
        vec![rev],
        vec![route("drain", &[("drain-00001", 100)])],
    ));
    h.wait_report("uid-drain-00001", START, |r| {
        r.annotations.get("actualReplicas").map(String::as_str) == Some("2")
    })
    .await?;
    let gw = h.gateway;
    let slow =
        tokio::spawn(async move { get(gw, "drain.default.localhost", "/slow?ms=1500", &[]).await });
    // Wait until the request reached the app (it says so on stdout).
    let deadline = std::time::Instant::now() + START;
    while !h
        .serving
        .logs("default", "drain", 0)
        .iter()
        .any(|l| l.text == "slow 1500 ms")
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the request never reached the app"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.serving.apply(&spec(vec![], vec![]));
    let (status, body) = slow.await??;
    assert_eq!((status, body.as_str()), (200, "slept"));
    let deadline = std::time::Instant::now() + START;
    while h.sink.get("uid-drain-00001").is_some() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "never forgotten");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = h.get("drain.default.localhost", "/").await?;
    assert_eq!(status, 404);
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
