//! Delivering one event to one egress: attempts with backoff (in memory, or handed back to
//! the log's own retry path with `Settle::Retry`), replies, dead-lettering. On durable logs a dead-letter sink
//! that fails is retried until it takes the event: the record stays unfinished, so its
//! position is never committed past it (unlike Knative's Kafka broker, which commits it).

use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use knit_channels::event::{Event, ExtValue};
use knit_channels::{Consumer, Record, RetryState, Settle, Settled};
use knit_crds::api::duck::DeliveryFormat;
use knit_crds::contract::DeliveryPolicy;

use crate::binding::{self, Decoded, HeaderSink, Lines};
use crate::egress::{EgressRuntime, Target};
use crate::observe::{AttemptSeen, Counters, Fate, Hop, Leg, Stats};
use crate::policy;
use crate::sender::{Attempt, Sender, Session};

/// Per-attempt timeout when the delivery spec sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Most bytes of a failed response kept in `knativeerrordata`.
pub const ERROR_DATA_MAX: usize = 1024;
/// Shortest wait between attempts at a held dead-letter sink.
const HOLD_MIN_WAIT: Duration = Duration::from_millis(100);
/// Longest wait between attempts at a held dead-letter sink.
const HOLD_MAX_WAIT: Duration = Duration::from_secs(10);

/// Why an attempt failed.
#[derive(Debug, Clone)]
struct Failure {
    /// The URL that failed (subscriber or reply).
    dest: String,
    status: Option<u16>,
    body: Bytes,
    retry_after: Option<Duration>,
    retryable: bool,
    error: String,
}

impl Failure {
    fn transport(dest: &Target, error: String) -> Self {
        Failure {
            dest: dest.url.clone(),
            status: None,
            body: Bytes::new(),
            retry_after: None,
            retryable: true,
            error,
        }
    }
}

fn encode(event: &Event, format: Option<DeliveryFormat>, skip: &[String]) -> (Lines, Bytes) {
    let mut headers = Lines::new();
    for (k, v) in &event.headers {
        headers.put("", k, v);
    }
    let body = match format {
        Some(DeliveryFormat::Json) => binding::encode_structured(event, &mut headers, skip),
        _ => binding::encode_binary(event, &mut headers, skip),
    };
    (headers, body)
}

/// The event without the attributes carried to replies (for forwarding and dead-lettering).
fn without(event: &Event, skip: &[String]) -> Event {
    let mut e = event.clone();
    for s in skip {
        e.remove_extension(s);
    }
    e
}

fn timeout(egress: &EgressRuntime) -> Duration {
    request_timeout(&egress.config.delivery)
}

/// How long one request of a delivery may take.
fn request_timeout(delivery: &DeliveryPolicy) -> Duration {
    delivery
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// How long one attempt under `delivery` may take: the subscriber's request and the reply's,
/// each within the timeout (a log's ack deadline: `knit_channels::GroupSpec::ack_deadline`).
pub fn attempt_deadline(delivery: &DeliveryPolicy) -> Duration {
    request_timeout(delivery).saturating_mul(2)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    policy::parse_retry_after(v, jiff::Timestamp::now())
}

/// Where a delivery reports its steps: the fate record and the egress's counters.
#[derive(Clone, Copy)]
pub struct Obs<'a> {
    /// The fate record (and its observers).
    pub stats: &'a Stats,
    /// The egress's counters.
    pub counters: &'a Counters,
}

/// A delivery's reporting: where to, and which event at which egress.
#[derive(Clone, Copy)]
struct Seen<'a> {
    obs: Option<Obs<'a>>,
    hop: Hop<'a>,
}

impl Seen<'_> {
    /// POST through `sender` and report the attempt.
    #[allow(clippy::too_many_arguments)]
    async fn post(
        &self,
        sender: &Sender,
        leg: Leg,
        target: &Target,
        headers: &Lines,
        body: &Bytes,
        timeout: Duration,
        session: &mut Session,
    ) -> Attempt {
        let at_ms = now_ms();
        let start = Instant::now();
        let answer = sender.post(target, headers, body, timeout, session).await;
        let Some(obs) = self.obs else {
            return answer;
        };
        let latency = start.elapsed();
        let (status, error) = match &answer {
            Attempt::Response { status, .. } => (Some(*status), None),
            Attempt::Failed { error } => (None, Some(error.as_str())),
        };
        obs.stats.attempt(
            obs.counters,
            &self.hop,
            &AttemptSeen {
                leg,
                url: &target.url,
                shared_url: &target.shared_url,
                status,
                error,
                latency,
                at_ms,
            },
        );
        answer
    }
}

/// Deliver `record` to `egress`. A record read back from a retry path resumes its attempt
/// count. After a failed attempt with retries left, the record is settled with
/// `Settle::Retry` on `consumer`: a backend that takes it back settles it (the fate is then
/// [`Fate::Deferred`], and the caller must not settle it again); one that declines leaves it
/// here, retried in memory. Every other fate leaves the record for the caller to settle.
/// Nothing is reported (see [`deliver_observed`]).
pub async fn deliver(
    sender: &Sender,
    egress: &EgressRuntime,
    record: &Record,
    consumer: &dyn Consumer,
    session: &mut Session,
) -> Fate {
    deliver_observed(sender, egress, record, consumer, session, None).await
}

/// [`deliver`], reporting every attempt, retry and reply to `obs` (the fate is the caller's
/// to record, with [`Stats::fate`]).
pub async fn deliver_observed(
    sender: &Sender,
    egress: &EgressRuntime,
    record: &Record,
    consumer: &dyn Consumer,
    session: &mut Session,
    obs: Option<Obs<'_>>,
) -> Fate {
    let seen = Seen {
        obs,
        hop: Hop {
            origin: egress.origin.as_ref(),
            egress: &egress.reference,
            event: &record.event,
        },
    };
    let (attempts, last) = match attempts(sender, egress, record, consumer, session, &seen).await {
        Tried::Done(fate) => return fate,
        Tried::GaveUp { attempts, last } => (attempts, last),
    };
    let failure = last.unwrap_or(Failure {
        dest: String::new(),
        status: None,
        body: Bytes::new(),
        retry_after: None,
        retryable: false,
        error: "no attempt made".into(),
    });
    // Attributes carried to replies (a Broker's hop counter) are not for the dead-letter sink.
    let event = without(&record.event, egress.carried());
    dead_letter(sender, egress, event, failure, attempts, session, &seen).await
}

/// How far the attempts got.
enum Tried {
    /// Delivered, or taken back by the log's retry path.
    Done(Fate),
    /// No attempt left (or the last failure is not worth retrying).
    GaveUp {
        /// Attempts made, including those before a restart.
        attempts: u32,
        /// The last failure.
        last: Option<Failure>,
    },
}

/// Attempt the delivery, with backoff between attempts, until one succeeds, the log takes the
/// record back for a later attempt, or the delivery spec allows no more. A record read back
/// from a retry path resumes its count.
#[inline]
async fn attempts(
    sender: &Sender,
    egress: &EgressRuntime,
    record: &Record,
    consumer: &dyn Consumer,
    session: &mut Session,
    seen: &Seen<'_>,
) -> Tried {
    let event: &Event = &record.event;
    let spec = &egress.config.delivery;
    let allowed = spec.retry.saturating_add(1);
    let (mut attempts, mut last) = resumed(record.retry.as_ref());
    if attempts >= allowed {
        return Tried::GaveUp { attempts, last };
    }
    let (headers, body) = request(egress, event);
    loop {
        attempts += 1;
        let f = match attempt(sender, egress, event, &headers, &body, session, seen).await {
            Ok(replied) => return Tried::Done(Fate::Delivered { attempts, replied }),
            Err(f) => f,
        };
        tracing::debug!(egress = %egress.config.reference, id = %event.id, attempt = attempts, status = ?f.status, error = %f.error, "attempt failed");
        let retryable = f.retryable;
        let wait = policy::wait_before(spec, attempts, f.status, f.retry_after);
        let state = RetryState {
            attempts,
            not_before_ms: now_ms().saturating_add(millis(wait)),
            last_dest: f.dest.clone(),
            last_status: f.status,
        };
        last = Some(f);
        if !retryable || attempts >= allowed {
            return Tried::GaveUp { attempts, last };
        }
        if let Some(obs) = seen.obs {
            obs.stats.retry(&seen.hop, attempts, wait);
        }
        match consumer
            .settle(record, Settle::Retry(state))
            .outcome()
            .await
        {
            Ok(Settled::Done) => return Tried::Done(Fate::Deferred { attempts }),
            Ok(Settled::Kept) => {}
            Err(e) => {
                tracing::warn!(egress = %egress.config.reference, id = %event.id, error = %e, "cannot store the event for a later retry; retrying in memory");
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// Where a record read back from a retry path left off: attempts made and how the last
/// one failed.
fn resumed(retry: Option<&RetryState>) -> (u32, Option<Failure>) {
    match retry {
        Some(r) => (
            r.attempts,
            Some(Failure {
                dest: r.last_dest.clone(),
                status: r.last_status,
                body: Bytes::new(),
                retry_after: None,
                retryable: true,
                error: match r.last_status {
                    Some(s) => format!("status {s}"),
                    None => "no answer".into(),
                },
            }),
        ),
        None => (0, None),
    }
}

/// The request every attempt sends: the event in the egress's format, without the attributes
/// carried to replies, asking for a reply, with the namespace.
fn request(egress: &EgressRuntime, event: &Event) -> (Lines, Bytes) {
    let (mut headers, body) = encode(event, egress.config.delivery.format, egress.carried());
    headers.put("", "prefer", "reply");
    if !egress.config.namespace.is_empty() {
        headers.put("", "kn-namespace", &egress.config.namespace);
    }
    (headers, body)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The wall clock in unix milliseconds (retry times travel between processes).
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// One attempt: the subscriber, then the reply if there is one. `Ok(replied)` on success.
#[inline]
async fn attempt(
    sender: &Sender,
    egress: &EgressRuntime,
    event: &Event,
    headers: &Lines,
    body: &Bytes,
    session: &mut Session,
    seen: &Seen<'_>,
) -> Result<bool, Failure> {
    let reply = match &egress.subscriber {
        // A subscription without a subscriber forwards the event itself to its reply.
        None => Some(without(event, egress.carried())),
        Some(target) => to_subscriber(sender, egress, target, headers, body, session, seen).await?,
    };
    let (Some(mut reply), Some(target)) = (reply, &egress.reply) else {
        return Ok(false);
    };
    for name in egress.carried() {
        if let Some(v) = event.extension(name) {
            reply.set_extension(name, v.clone());
        }
    }
    to_reply(sender, egress, target, &reply, session, seen).await?;
    Ok(true)
}

/// The subscriber's leg: its reply event, if it answered with one.
#[inline]
async fn to_subscriber(
    sender: &Sender,
    egress: &EgressRuntime,
    target: &Target,
    headers: &Lines,
    body: &Bytes,
    session: &mut Session,
    seen: &Seen<'_>,
) -> Result<Option<Event>, Failure> {
    let answer = seen
        .post(
            sender,
            Leg::Subscriber,
            target,
            headers,
            body,
            timeout(egress),
            session,
        )
        .await;
    match answer {
        Attempt::Failed { error } => Err(Failure::transport(target, error)),
        Attempt::Response {
            status,
            headers,
            body,
        } if !(200..300).contains(&status) => Err(Failure {
            dest: target.url.clone(),
            status: Some(status),
            retry_after: retry_after(&headers),
            body,
            retryable: policy::retryable_status(status),
            error: format!("status {status}"),
        }),
        Attempt::Response {
            status,
            headers,
            body,
        } => reply_of(&target.url, status, &headers, body),
    }
}

/// The reply's leg: storing the subscriber's reply (or a forwarded event) at `target`.
async fn to_reply(
    sender: &Sender,
    egress: &EgressRuntime,
    target: &Target,
    reply: &Event,
    session: &mut Session,
    seen: &Seen<'_>,
) -> Result<(), Failure> {
    let (headers, body) = encode(reply, None, &[]);
    let answer = seen
        .post(
            sender,
            Leg::Reply,
            target,
            &headers,
            &body,
            timeout(egress),
            session,
        )
        .await;
    match answer {
        Attempt::Response { status, .. } if (200..300).contains(&status) => {
            if let Some(obs) = seen.obs
                && egress.subscriber.is_some()
            {
                obs.stats.replied(&seen.hop, &reply.id);
            }
            Ok(())
        }
        Attempt::Response {
            status,
            headers,
            body,
        } => Err(Failure {
            dest: target.url.clone(),
            status: Some(status),
            retry_after: retry_after(&headers),
            body,
            // Storing the reply failed: the whole delivery is retried (E24, E25), unless the
            // reply target refused it for good (a Broker's hop limit answers 400).
            retryable: policy::retryable_status(status),
            error: format!("reply rejected with status {status}"),
        }),
        Attempt::Failed { error } => {
            Err(Failure::transport(target, format!("reply failed: {error}")))
        }
    }
}

/// The reply in a 2xx response: a CloudEvent in a non-202 response. An empty body is no
/// reply; a non-empty body that is not a CloudEvent fails the delivery (E22, E23).
fn reply_of(
    url: &str,
    status: u16,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Option<Event>, Failure> {
    if status == 202 || (body.is_empty() && !headers.contains_key("ce-specversion")) {
        return Ok(None);
    }
    let failure = |body: Bytes, error: String| Failure {
        dest: url.to_string(),
        status: Some(status),
        body,
        retry_after: None,
        retryable: true,
        error,
    };
    match binding::decode(headers, body.clone()) {
        Ok(Decoded::One(mut ev)) => {
            ev.headers = binding::propagated_headers(headers);
            Ok(Some(*ev))
        }
        Ok(Decoded::Batch(_)) => Err(failure(body, "a batch is not a valid reply".into())),
        Err(e) => Err(failure(
            body,
            format!("the response is not a CloudEvent: {e}"),
        )),
    }
}

/// Send the event that was not delivered to the dead-letter sink, with Knative's error
/// extensions; without a sink, or when it does not take the event, the event is dropped.
async fn dead_letter(
    sender: &Sender,
    egress: &EgressRuntime,
    mut event: Event,
    failure: Failure,
    attempts: u32,
    session: &mut Session,
    seen: &Seen<'_>,
) -> Fate {
    let Some(dls) = &egress.dead_letter_sink else {
        return Fate::Dropped {
            attempts,
            reason: format!("{} ({})", failure.error, failure.dest),
        };
    };
    with_error_extensions(&mut event, &failure);
    match to_dead_letter_sink(sender, egress, dls, &event, session, seen).await {
        Ok(()) => Fate::DeadLettered {
            attempts,
            status: failure.status,
        },
        Err(last) => Fate::Dropped {
            attempts,
            reason: format!("{}; then {last}", failure.error),
        },
    }
}

/// Knative's error extensions: the destination that failed, its status and (the start of) its
/// answer.
fn with_error_extensions(event: &mut Event, failure: &Failure) {
    if !failure.dest.is_empty() {
        event.set_extension("knativeerrordest", ExtValue::String(failure.dest.clone()));
    }
    if let Some(code) = failure.status {
        event.set_extension("knativeerrorcode", ExtValue::String(code.to_string()));
    }
    if !failure.body.is_empty() {
        let cut = &failure.body[..failure.body.len().min(ERROR_DATA_MAX)];
        event.set_extension(
            "knativeerrordata",
            ExtValue::String(base64::engine::general_purpose::STANDARD.encode(cut)),
        );
    }
}

/// Why the dead-letter sink did not take an event.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// It answered with a status other than 2xx.
    #[error("dead-letter sink answered {0}")]
    Status(u16),
    /// It did not answer.
    #[error("dead-letter sink failed: {0}")]
    NoAnswer(String),
}

/// Post `event` to the dead-letter sink `dls`, retried as the delivery spec says, or until
/// it takes the event when dead letters are held (durable logs). `Err`: the last refusal.
async fn to_dead_letter_sink(
    sender: &Sender,
    egress: &EgressRuntime,
    dls: &Target,
    event: &Event,
    session: &mut Session,
    seen: &Seen<'_>,
) -> Result<(), Refused> {
    let spec = &egress.config.delivery;
    let (headers, body) = encode(event, spec.format, &[]);
    let allowed = spec.retry.saturating_add(1);
    let mut last_status = None;
    let mut k: u32 = 0;
    loop {
        if k > 0 {
            let wait = if egress.hold_dead_letters {
                // Held: keep trying, never faster than every 100 ms nor slower than every 10 s.
                policy::backoff(spec, k.min(64)).clamp(HOLD_MIN_WAIT, HOLD_MAX_WAIT)
            } else {
                policy::wait_before(spec, k, last_status, None)
            };
            tokio::time::sleep(wait).await;
        }
        k = k.saturating_add(1);
        let answer = seen
            .post(
                sender,
                Leg::DeadLetter,
                dls,
                &headers,
                &body,
                timeout(egress),
                session,
            )
            .await;
        let refused = match answer {
            Attempt::Response { status, .. } if (200..300).contains(&status) => return Ok(()),
            Attempt::Response { status, .. } => {
                last_status = Some(status);
                if !policy::retryable_status(status) {
                    return Err(Refused::Status(status));
                }
                Refused::Status(status)
            }
            Attempt::Failed { error } => Refused::NoAnswer(error),
        };
        if egress.hold_dead_letters {
            if k == 1 || k.is_power_of_two() {
                tracing::warn!(egress = %egress.config.reference, id = %event.id, attempts = k, reason = %refused,
                    "the dead-letter sink does not take the event; holding it (its position is not committed) and retrying");
            }
        } else if k >= allowed {
            return Err(refused);
        }
    }
}
