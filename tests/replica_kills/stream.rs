//! The numbered events the scenarios post, and how.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::crash::{RECOVERY, event_request};
use crate::common::http;

/// Numbered events (`n00000`, ...) posted by a few senders until each is accepted: event `n`
/// goes to the ingress `n mod k` of the `k` in service, and after a refusal or a post without
/// answer to the next one.
pub(crate) struct Stream {
    pub(crate) in_service: Arc<parking_lot::Mutex<Vec<String>>>,
    pub(crate) accepted: Arc<parking_lot::Mutex<BTreeSet<String>>>,
    /// Events posted again after a post that got no answer: each may have been accepted twice.
    pub(crate) unanswered: Arc<parking_lot::Mutex<BTreeSet<String>>>,
    /// Which ingress accepted each event, and when.
    pub(crate) via: Arc<parking_lot::Mutex<HashMap<String, (String, Instant)>>>,
    pub(crate) events: usize,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Stream {
    /// `senders` senders posting `events` events to `urls`, each pausing `pause` after each
    /// accepted event: a steady stream, not a flood.
    pub(crate) fn start(urls: &[String], events: usize, senders: usize, pause: Duration) -> Stream {
        let in_service = Arc::new(parking_lot::Mutex::new(urls.to_vec()));
        let accepted = Arc::new(parking_lot::Mutex::new(BTreeSet::new()));
        let unanswered = Arc::new(parking_lot::Mutex::new(BTreeSet::new()));
        let via = Arc::new(parking_lot::Mutex::new(HashMap::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let tasks = (0..senders)
            .map(|_| {
                let (in_service, next) = (in_service.clone(), next.clone());
                let (accepted, unanswered) = (accepted.clone(), unanswered.clone());
                let via = via.clone();
                tokio::spawn(async move {
                    let client = http();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= events {
                            return;
                        }
                        let id = format!("n{n:05}");
                        let (by, unanswered_once) = post(&client, &in_service, n, &id).await;
                        if unanswered_once {
                            unanswered.lock().insert(id.clone());
                        }
                        via.lock().insert(id.clone(), (by, Instant::now()));
                        accepted.lock().insert(id);
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Stream {
            in_service,
            accepted,
            unanswered,
            via,
            events,
            tasks,
        }
    }

    pub(crate) fn accepted(&self) -> BTreeSet<String> {
        self.accepted.lock().clone()
    }

    pub(crate) fn accepted_count(&self) -> usize {
        self.accepted.lock().len()
    }

    /// Whether every event was accepted.
    pub(crate) fn all_accepted(&self) -> bool {
        self.accepted_count() == self.events
    }

    /// Take an ingress out of service.
    pub(crate) fn remove(&self, url: &str) {
        self.in_service.lock().retain(|u| u != url);
    }

    /// Wait for the senders to finish: the events accepted, and those posted again after a
    /// post without answer.
    pub(crate) async fn finish(&mut self) -> (BTreeSet<String>, BTreeSet<String>) {
        for t in std::mem::take(&mut self.tasks) {
            t.await.expect("sender");
        }
        let accepted = self.accepted.lock().clone();
        let unanswered = self.unanswered.lock().clone();
        (accepted, unanswered)
    }
}

/// POST event `id` (number `n`) until an ingress in service answers 202: the `n mod k`-th of
/// the `k` first, the next one after a refusal (404, 429, 503: knit starting or stopping), a
/// refused connection or a post without answer. The ingress that accepted it, and whether a
/// post got no answer (the event may have been accepted by it too).
pub(crate) async fn post(
    client: &reqwest::Client,
    in_service: &parking_lot::Mutex<Vec<String>>,
    n: usize,
    id: &str,
) -> (String, bool) {
    let deadline = Instant::now() + RECOVERY;
    let mut unanswered = false;
    let mut attempt = 0;
    loop {
        let urls = in_service.lock().clone();
        let url = &urls[(n + attempt) % urls.len()];
        match event_request(client, url, id)
            .timeout(Duration::from_secs(30))
            .send()
            .await
        {
            Ok(r) if r.status() == 202 => return (url.clone(), unanswered),
            Ok(r) => assert!(
                matches!(r.status().as_u16(), 404 | 429 | 503),
                "unexpected {} for {id} from {url}",
                r.status()
            ),
            // Nothing was sent.
            Err(e) if e.is_connect() => {}
            Err(_) => unanswered = true,
        }
        assert!(Instant::now() < deadline, "{id} never accepted");
        attempt += 1;
        if attempt % urls.len() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
