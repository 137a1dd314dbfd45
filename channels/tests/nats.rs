//! The NATS JetStream backend against a real `nats-server -js` (started privately per test on
//! a free port with its own storage directory, so a test can kill and restart it).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use knit_channels::{
    AppendError, Backends, Consumer, Event, GroupSpec, Log, MemoryConfig, Order, Overflow, Polled,
    Record, RetryState, Role, Settle, Settled, StartAt, nats::binding,
};
use knit_crds::contract::{Backend, ContentMode, NatsLog, NatsStorage};

/// The server binary (Debian's `nats-server` 2.9, with JetStream).
const NATS_SERVER: &str = "nats-server";

/// A private nats-server, killed on drop.
struct Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut s = Server {
            child: None,
            port,
            dir: tempfile::tempdir()?,
        };
        s.run()?;
        Ok(s)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) -> Result<()> {
        let child = Command::new(NATS_SERVER)
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
            .context("starting nats-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("nats-server did not listen on {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port and storage directory.
    fn restart(&mut self) -> Result<()> {
        self.kill();
        self.run()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_config(server: &Server, stream: &str) -> Backend {
    Backend::Nats(NatsLog {
        url: server.url(),
        stream: stream.to_string(),
        subject: format!("default.{}._knative_broker.events", stream.to_lowercase()),
        storage: NatsStorage::File,
        replicas: None,
        max_age_ms: None,
        max_msgs: None,
        max_bytes: None,
        duplicate_window_ms: None,
        content_mode: ContentMode::Binary,
        creds_file: None,
        ca_file: None,
    })
}

async fn open(backends: &Backends, backend: &Backend) -> Result<Arc<dyn Log>> {
    let spec = knit_channels::LogSpec {
        backend,
        owner: "uid",
        role: Role::Owner,
    };
    Ok(backends.open(&spec).await?)
}

fn backends() -> Backends {
    Backends::new("knit-test", MemoryConfig::default(), Arc::default())
}

fn group(name: &str, ack_deadline: Duration) -> GroupSpec {
    GroupSpec {
        name: name.to_string(),
        start: StartAt::Earliest,
        overflow: Overflow::Shed,
        durable_retries: true,
        max_in_flight: 16,
        order: Order::Unordered,
        ack_deadline,
    }
}

fn event(i: usize) -> Arc<Event> {
    let mut e = Event::new(format!("e-{i}"), "/test", "t");
    e.set_data_from_body(bytes::Bytes::from(format!("{{\"n\":{i}}}")));
    Arc::new(e)
}

/// Append, retrying while the server is away (as a client retries a 503).
async fn append_retrying(log: &dyn Log, events: &[Arc<Event>]) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    loop {
        match log.append(events).await {
            Ok(()) => return Ok(refused),
            Err(AppendError::Unavailable(_)) if Instant::now() < deadline => refused += 1,
            Err(e) => bail!("append failed: {e}"),
        }
    }
}

/// Poll records until `until` says enough or the deadline passes.
async fn poll_for(
    consumer: &dyn Consumer,
    within: Duration,
    mut until: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while !until(&got) {
        match tokio::time::timeout_at(deadline, consumer.poll(64)).await {
            Ok(Some(Polled::Records(rs))) => got.extend(rs),
            Ok(Some(Polled::Revoked(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    got
}

fn ids(records: &[Record]) -> BTreeSet<String> {
    records.iter().map(|r| r.event.id.clone()).collect()
}

async fn raw_consumer_state(server: &Server, stream: &str, durable: &str) -> Result<(u64, usize)> {
    let client = async_nats::connect(server.url()).await?;
    let js = async_nats::jetstream::new(client);
    let s = js.get_stream(stream).await?;
    let info = s.consumer_info(durable).await?;
    Ok((info.num_pending, info.num_ack_pending))
}

/// Poll the consumer's server-side state until nothing is pending or unacknowledged.
async fn settled_on_server(server: &Server, stream: &str, durable: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = raw_consumer_state(server, stream, durable).await?;
        if state == (0, 0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("consumer {durable} still has {state:?} (pending, ack pending)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_consume_ack_and_duplicates_are_dropped() -> Result<()> {
    let server = Server::start()?;
    let b = backends();
    let backend = log_config(&server, "KN_BROKER_DEFAULT__ONE");
    let log = open(&b, &backend).await?;
    let consumer = log
        .open(group("KN_TRIGGER_one", Duration::from_secs(5)))
        .await?;
    let events: Vec<_> = (0..50).map(event).collect();
    log.append(&events).await?;
    // The same events again: the stream's duplicate window drops them (Nats-Msg-Id).
    log.append(&events).await?;
    // Unsettled records are capped at twice the in-flight limit (max_ack_pending 32): settle
    // as they come.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 50 && Instant::now() < deadline {
        let batch = poll_for(consumer.as_ref(), Duration::from_secs(5), |g| !g.is_empty()).await;
        for r in &batch {
            assert!(r.retry.is_none());
            assert_eq!(
                consumer.settle(r, Settle::Ack).outcome().await?,
                Settled::Done
            );
        }
        got.extend(batch);
    }
    let want: BTreeSet<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids(&got), want);
    assert_eq!(got.len(), 50, "each once");
    settled_on_server(&server, "KN_BROKER_DEFAULT__ONE", "KN_TRIGGER_one").await?;
    let client = async_nats::connect(server.url()).await?;
    let mut s = async_nats::jetstream::new(client)
        .get_stream("KN_BROKER_DEFAULT__ONE")
        .await?;
    assert_eq!(
        s.info().await?.state.messages,
        50,
        "duplicates were dropped"
    );
    consumer.close().await;
    Ok(())
}

/// What a dispatcher with `retry` retries does with a record that always fails: the next
/// attempt, and a settle of Retry or DeadLettered.
fn fail_once(r: &Record, retry: u32) -> (u32, Settle) {
    let attempts = r.retry.as_ref().map_or(0, |s| s.attempts) + 1;
    if attempts > retry {
        (attempts, Settle::DeadLettered)
    } else {
        (
            attempts,
            Settle::Retry(RetryState {
                attempts,
                not_before_ms: jiff::Timestamp::now().as_millisecond() + 200,
                last_dest: "http://sink".into(),
                last_status: Some(500),
            }),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_counted_to_the_dead_letter_across_a_restart() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let server = Server::start()?;
    let stream = "KN_BROKER_DEFAULT__POISON";
    let backend = log_config(&server, stream);
    let retry = 3;
    let mut attempts_seen = Vec::new();
    {
        let b = backends();
        let log = open(&b, &backend).await?;
        let consumer = log
            .open(group("KN_TRIGGER_poison", Duration::from_secs(5)))
            .await?;
        log.append(&[event(1)]).await?;
        for _ in 0..2 {
            let got = poll_for(consumer.as_ref(), Duration::from_secs(20), |g| {
                !g.is_empty()
            })
            .await;
            let r = got.first().context("the event was delivered")?;
            let (n, how) = fail_once(r, retry);
            attempts_seen.push(n);
            assert_eq!(consumer.settle(r, how).outcome().await?, Settled::Done);
        }
        // A kill during the backoff: no close, the process's clients just go away.
    }
    let b = backends();
    let log = open(&b, &backend).await?;
    let consumer = log
        .open(group("KN_TRIGGER_poison", Duration::from_secs(5)))
        .await?;
    loop {
        let got = poll_for(consumer.as_ref(), Duration::from_secs(20), |g| {
            !g.is_empty()
        })
        .await;
        let r = got.first().context("the event came back")?;
        let (n, how) = fail_once(r, retry);
        attempts_seen.push(n);
        if let Some(s) = &r.retry {
            assert_eq!(s.last_dest, "http://sink");
            assert_eq!(s.last_status, Some(500));
        }
        let dead = how == Settle::DeadLettered;
        consumer.settle(r, how).outcome().await?;
        if dead {
            break;
        }
    }
    assert_eq!(
        attempts_seen,
        vec![1, 2, 3, 4],
        "exactly retry + 1 attempts"
    );
    settled_on_server(&server, stream, "KN_TRIGGER_poison").await?;
    consumer.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_survives_a_server_restart_and_nothing_is_lost() -> Result<()> {
    let mut server = Server::start()?;
    let stream = "KN_BROKER_DEFAULT__RESTART";
    let b = backends();
    let log = open(&b, &log_config(&server, stream)).await?;
    let consumer = log
        .open(group("KN_TRIGGER_restart", Duration::from_secs(3)))
        .await?;
    let first: Vec<_> = (0..100).map(event).collect();
    log.append(&first).await?;
    let got = poll_for(consumer.as_ref(), Duration::from_secs(20), |g| {
        g.len() >= 50
    })
    .await;
    let mut seen = ids(&got);
    for r in &got {
        consumer.settle(r, Settle::Ack);
    }
    server.kill();
    // While the server is down, appends fail (a 503), never succeed.
    let down = log.append(&[event(9999)]).await;
    assert!(matches!(down, Err(AppendError::Unavailable(_))), "{down:?}");
    server.restart()?;
    let second: Vec<_> = (100..200).map(event).collect();
    append_retrying(log.as_ref(), &second).await?;
    let want: BTreeSet<String> = (0..200).map(|i| format!("e-{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.is_subset(&seen) && Instant::now() < deadline {
        let got = poll_for(consumer.as_ref(), Duration::from_secs(5), |g| !g.is_empty()).await;
        for r in &got {
            seen.insert(r.event.id.clone());
            consumer.settle(r, Settle::Ack);
        }
    }
    let missing: Vec<_> = want.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "lost after a server restart: {missing:?}"
    );
    consumer.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_records_of_a_dropped_consumer_are_delivered_again() -> Result<()> {
    let server = Server::start()?;
    let stream = "KN_BROKER_DEFAULT__AGAIN";
    let backend = log_config(&server, stream);
    let events: Vec<_> = (0..10).map(event).collect();
    let unacked = {
        let b = backends();
        let log = open(&b, &backend).await?;
        let consumer = log
            .open(group("KN_TRIGGER_again", Duration::from_secs(1)))
            .await?;
        log.append(&events).await?;
        let got = poll_for(consumer.as_ref(), Duration::from_secs(20), |g| {
            g.len() >= 10
        })
        .await;
        assert_eq!(got.len(), 10);
        for r in &got[..5] {
            consumer.settle(r, Settle::Ack);
        }
        // Let the acknowledgements reach the server, then drop without closing (a kill).
        settled_count(&server, stream, "KN_TRIGGER_again", 5).await?;
        ids(&got[5..])
    };
    let b = backends();
    let log = open(&b, &backend).await?;
    let consumer = log
        .open(group("KN_TRIGGER_again", Duration::from_secs(1)))
        .await?;
    let got = poll_for(consumer.as_ref(), Duration::from_secs(30), |g| {
        unacked.is_subset(&ids(g))
    })
    .await;
    assert!(
        unacked.is_subset(&ids(&got)),
        "{unacked:?} not in {:?}",
        ids(&got)
    );
    assert!(
        got.iter().all(|r| r.retry.is_none()),
        "never attempted: no count"
    );
    consumer.close().await;
    Ok(())
}

/// Poll until the server counts `n` unacknowledged messages for the consumer.
async fn settled_count(server: &Server, stream: &str, durable: &str, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while raw_consumer_state(server, stream, durable).await?.1 != n {
        if Instant::now() > deadline {
            bail!("acknowledgements did not arrive");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_records_are_kept_alive_past_the_ack_wait() -> Result<()> {
    let server = Server::start()?;
    let stream = "KN_BROKER_DEFAULT__HELD";
    let b = backends();
    let log = open(&b, &log_config(&server, stream)).await?;
    let spec = group("KN_TRIGGER_held", Duration::from_secs(1));
    let consumer = log.open(spec.clone()).await?;
    let other = log.open(spec).await?;
    log.append(&[event(1)]).await?;
    let got = poll_for(consumer.as_ref(), Duration::from_secs(20), |g| {
        !g.is_empty()
    })
    .await;
    let r = got.first().context("delivered")?;
    // Held for three times ack_wait (2 s): the other member of the group must not get it.
    let again = poll_for(other.as_ref(), Duration::from_secs(6), |g| !g.is_empty()).await;
    assert!(again.is_empty(), "redelivered while held: {again:?}");
    consumer.settle(r, Settle::Ack);
    settled_on_server(&server, stream, "KN_TRIGGER_held").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binding_is_read_and_written_as_the_spec_says() -> Result<()> {
    let server = Server::start()?;
    let stream = "KN_DEFAULT__BINDING";
    let backend = log_config(&server, stream);
    let Backend::Nats(cfg) = &backend else {
        bail!("not a NATS log")
    };
    let subject = cfg.subject.clone();
    let b = backends();
    let log = open(&b, &backend).await?;
    let consumer = log
        .open(group("KN_SUB_binding", Duration::from_secs(5)))
        .await?;
    let mut e = Event::new("id 1", "/src", "t");
    e.subject = Some("100% ü".into());
    log.append(&[Arc::new(e)]).await?;
    // What knit wrote, read raw: percent-encoded ce- headers.
    let client = async_nats::connect(server.url()).await?;
    let js = async_nats::jetstream::new(client);
    let raw = js.get_stream(stream).await?.get_raw_message(1).await?;
    let h = &raw.headers;
    assert_eq!(h.get("ce-id").map(|v| v.as_str()), Some("id%201"));
    assert_eq!(
        h.get("ce-subject").map(|v| v.as_str()),
        Some("100%25%20%C3%BC")
    );
    assert!(h.get("Nats-Msg-Id").is_some());
    // A structured event published by someone else (eventing-natss's way) is read too.
    let structured =
        br#"{"specversion":"1.0","id":"s-1","source":"/natss","type":"t","data":{"x":1}}"#;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/cloudevents+json");
    js.publish_with_headers(subject, headers, structured.as_slice().into())
        .await?
        .await?;
    let got = poll_for(consumer.as_ref(), Duration::from_secs(20), |g| g.len() >= 2).await;
    let by_id: Vec<_> = got.iter().map(|r| r.event.id.as_str()).collect();
    assert_eq!(by_id, vec!["id 1", "s-1"]);
    assert_eq!(got[0].event.subject.as_deref(), Some("100% ü"));
    assert_eq!(
        got[1].event.data.as_ref().map(|d| d.bytes.clone()),
        Some(bytes::Bytes::from_static(br#"{"x":1}"#))
    );
    assert_eq!(binding::message_id(&got[0].event).len(), 32);
    for r in &got {
        consumer.settle(r, Settle::Ack);
    }
    consumer.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_is_read_again_by_sequence_time_and_from_the_start() -> Result<()> {
    use knit_channels::Bound;
    let server = Server::start()?;
    let b = backends();
    let log = open(&b, &log_config(&server, "KN_BROKER_DEFAULT__REPLAY")).await?;
    log.append(&(0..10).map(event).collect::<Vec<_>>()).await?;
    // The server stamps messages on arrival, on this machine's clock: the first ten before
    // `middle`, the rest after it.
    let middle = jiff::Timestamp::now();
    log.append(&(10..20).map(event).collect::<Vec<_>>()).await?;
    let read = |from: Bound, to: Option<Bound>| {
        let log = log.clone();
        async move {
            let mut r = log.replay(&from, to.as_ref(), "test").await?;
            let mut out = Vec::new();
            while let Some(batch) = r.next(7).await? {
                out.extend(batch.into_iter().map(|x| (x.offset, x.event.id)));
            }
            anyhow::Ok(out)
        }
    };
    let all = read(Bound::Earliest, None).await?;
    assert_eq!(all.len(), 20);
    assert_eq!(all.first(), Some(&(1, "e-0".to_string())));
    let some = read(Bound::Offset(5), Some(Bound::Offset(8))).await?;
    assert_eq!(
        some,
        vec![(5, "e-4".into()), (6, "e-5".into()), (7, "e-6".into())]
    );
    let later = read(Bound::Time(middle), None).await?;
    assert_eq!(later.first().map(|x| x.1.as_str()), Some("e-10"));
    assert_eq!(later.len(), 10);
    let earlier = read(Bound::Earliest, Some(Bound::Time(middle))).await?;
    assert_eq!(earlier.len(), 10);
    assert!(read(Bound::Latest, None).await?.is_empty());
    let wrong = log
        .replay(&Bound::parse("1:0")?, None, "test")
        .await
        .err()
        .map(|e| e.to_string());
    assert!(wrong.is_some_and(|e| e.contains("no partition 1")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_drains_its_consumers_and_a_group_without_durable_retries_keeps_them()
-> Result<()> {
    let server = Server::start()?;
    let b = backends();
    let log = open(&b, &log_config(&server, "KN_BROKER_DEFAULT__DRAIN")).await?;
    let mut spec = group("KN_TRIGGER_drain", Duration::from_secs(5));
    spec.durable_retries = false;
    let consumer = log.open(spec).await?;
    log.append(&(0..5).map(event).collect::<Vec<_>>()).await?;
    log.close();
    assert!(matches!(
        log.append(&[event(9)]).await,
        Err(AppendError::Closed)
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    loop {
        match tokio::time::timeout_at(deadline, consumer.poll(10)).await? {
            Some(Polled::Records(rs)) => {
                for r in &rs {
                    let retry = Settle::Retry(RetryState {
                        attempts: 1,
                        not_before_ms: 0,
                        last_dest: String::new(),
                        last_status: None,
                    });
                    assert_eq!(consumer.settle(r, retry).outcome().await?, Settled::Kept);
                    consumer.settle(r, Settle::Ack);
                }
                seen += rs.len();
            }
            Some(Polled::Revoked(_)) => {}
            None => break,
        }
    }
    assert_eq!(seen, 5, "the consumer ended once everything was delivered");
    log.destroy().await?;
    let client = async_nats::connect(server.url()).await?;
    let gone = async_nats::jetstream::new(client)
        .get_stream("KN_BROKER_DEFAULT__DRAIN")
        .await;
    assert!(gone.is_err(), "the owned stream was deleted");
    Ok(())
}
