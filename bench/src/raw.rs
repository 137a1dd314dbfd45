//! What the raw client loops of the durable-backend baselines share (the rdkafka loop of (g),
//! the async-nats loop of (o)): the payload stamped with its send time, reading that time back,
//! waiting until the consumer reads, and the timed load of one send outstanding per sender
//! with its measurement. A backend's loop says how to send one record and where its consumer
//! counts ([`RawLoop`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::servers::{Counters, now_nanos};

/// The body of every record after the send time; the same bytes the HTTP load posts.
const BODY: &[u8] = br#"{"message":"Hello, Knit! This is a small benchmark event.","n":42}"#;

/// A raw produce → consume loop on one backend.
pub(crate) trait RawLoop: Send + Sync + 'static {
    /// Send one record with [`stamped`] as its payload and wait for its acknowledgement.
    fn send(&self) -> impl Future<Output = Result<()>> + Send;
    /// Its consumer.
    fn reading(&self) -> &Reading;
    /// What it writes to (for messages).
    fn target(&self) -> &str;
}

/// A consumer task counting what it reads (records, and their end-to-end latencies while
/// recording, through [`consumed`]); stopped on drop.
pub(crate) struct Reading {
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Reading {
    /// Spawn the task `read` makes from the counters it counts in.
    pub(crate) fn spawn<F>(read: impl FnOnce(Arc<Counters>) -> F) -> Reading
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(read(counters.clone()));
        Reading { counters, task }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A payload: the send time now (nanoseconds), a space, the body.
pub(crate) fn stamped() -> Vec<u8> {
    let mut payload = now_nanos().to_string().into_bytes();
    payload.push(b' ');
    payload.extend_from_slice(BODY);
    payload
}

/// Count a consumed `payload` in `c`, with its end-to-end latency while recording.
pub(crate) fn consumed(c: &Counters, payload: &[u8]) {
    c.requests.fetch_add(1, Ordering::Relaxed);
    if !c.recording.load(Ordering::Relaxed) {
        return;
    }
    let sent = payload
        .split(|b| *b == b' ')
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u64>().ok());
    if let Some(sent) = sent {
        let us = now_nanos().saturating_sub(sent) / 1000;
        c.latencies_us
            .lock()
            .push(u32::try_from(us).unwrap_or(u32::MAX));
    }
}

/// Send until the consumer has read something (its group joined, its position set).
pub(crate) async fn wait_positioned(raw: &impl RawLoop) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while raw.reading().counters.requests.load(Ordering::Relaxed) == 0 {
        if Instant::now() > deadline {
            bail!("the raw consumer of {} read nothing in 60 s", raw.target());
        }
        raw.send().await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// `concurrency` senders, each with one send outstanding, for `duration`; returns the
/// acknowledged and failed sends.
async fn load<R: RawLoop>(
    raw: &Arc<R>,
    concurrency: usize,
    duration: Duration,
) -> Result<(u64, u64)> {
    let start = Instant::now();
    let senders: Vec<_> = (0..concurrency)
        .map(|_| {
            let me = raw.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                while start.elapsed() < duration {
                    match me.send().await {
                        Ok(()) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for s in senders {
        let (o, f) = s.await?;
        ok += o;
        failed += f;
    }
    Ok((ok, failed))
}

/// What one measurement of a raw loop saw.
pub(crate) struct RawMeasured {
    /// Records consumed per second during the load.
    pub(crate) rate: f64,
    /// End-to-end latencies in microseconds (send → consume).
    pub(crate) latencies_us: Vec<u32>,
    /// Sends the backend did not acknowledge.
    pub(crate) failed: u64,
}

/// Warm up for `warmup`, then measure for `duration`: records consumed per second and
/// end-to-end latencies.
pub(crate) async fn measure<R: RawLoop>(
    raw: &Arc<R>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<RawMeasured> {
    load(raw, concurrency, warmup).await?;
    let c = &raw.reading().counters;
    c.latencies_us.lock().clear();
    let before = c.requests.load(Ordering::Relaxed);
    c.recording.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let (acked, failed) = load(raw, concurrency, duration).await?;
    let elapsed = start.elapsed();
    c.recording.store(false, Ordering::Relaxed);
    let after = c.requests.load(Ordering::Relaxed);
    if acked == 0 {
        bail!("nothing sent to {} was acknowledged", raw.target());
    }
    Ok(RawMeasured {
        rate: (after - before) as f64 / elapsed.as_secs_f64(),
        latencies_us: std::mem::take(&mut *c.latencies_us.lock()),
        failed,
    })
}
