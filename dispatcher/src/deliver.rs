//! Delivering one event to one egress: attempts with backoff, replies, dead-lettering.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use knit_channels::event::{Event, ExtValue};
use knit_crds::api::duck::DeliveryFormat;
use knit_crds::contract::Egress;

use crate::binding::{self, Decoded};
use crate::observe::Fate;
use crate::policy;
use crate::sender::{Attempt, Sender};

/// Per-attempt timeout when the delivery spec sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Most bytes of a failed response kept in `knativeerrordata`.
pub const ERROR_DATA_MAX: usize = 1024;

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

fn headers_for(event: &Event) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in &event.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(n, v);
        }
    }
    h
}

fn encode(event: &Event, format: Option<DeliveryFormat>) -> (HeaderMap, Bytes) {
    let mut headers = headers_for(event);
    let body = match format {
        Some(DeliveryFormat::Json) => binding::encode_structured(event, &mut headers),
        _ => binding::encode_binary(event, &mut headers),
    };
    (headers, body)
}

fn timeout(egress: &Egress) -> Duration {
    egress
        .delivery
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    policy::parse_retry_after(v, jiff::Timestamp::now())
}

/// Deliver `event` to `egress`. `event` is as stored in the log.
pub async fn deliver(sender: &Sender, egress: &Egress, event: &Event) -> Fate {
    // Attributes carried to replies (a Broker's hop counter) are not for the subscriber.
    let mut outgoing = event.clone();
    let carried: Vec<(String, ExtValue)> = egress
        .reply
        .iter()
        .flat_map(|r| r.carry.iter())
        .filter_map(|name| outgoing.remove_extension(name).map(|v| (name.clone(), v)))
        .collect();
    let (mut headers, body) = encode(&outgoing, egress.delivery.format);
    headers.insert(
        http::header::HeaderName::from_static("prefer"),
        HeaderValue::from_static("reply"),
    );
    if let Ok(ns) = HeaderValue::from_str(&egress.namespace) {
        headers.insert(HeaderName::from_static("kn-namespace"), ns);
    }

    let attempts_allowed = egress.delivery.retry.saturating_add(1);
    let mut last: Option<Failure> = None;
    let mut attempts = 0;
    for k in 0..attempts_allowed {
        if k > 0 {
            let (status, ra) = last
                .as_ref()
                .map(|f| (f.status, f.retry_after))
                .unwrap_or((None, None));
            tokio::time::sleep(policy::wait_before(&egress.delivery, k, status, ra)).await;
        }
        attempts += 1;
        match attempt(sender, egress, &outgoing, &carried, &headers, &body).await {
            Ok(replied) => return Fate::Delivered { attempts, replied },
            Err(f) => {
                let retryable = f.retryable;
                tracing::debug!(egress = %egress.reference, id = %event.id, attempt = attempts, status = ?f.status, error = %f.error, "attempt failed");
                last = Some(f);
                if !retryable {
                    break;
                }
            }
        }
    }
    let failure = last.unwrap_or(Failure {
        dest: String::new(),
        status: None,
        body: Bytes::new(),
        retry_after: None,
        retryable: false,
        error: "no attempt made".into(),
    });
    dead_letter(sender, egress, outgoing, failure, attempts).await
}

/// One attempt: the subscriber, then the reply if there is one. `Ok(replied)` on success.
async fn attempt(
    sender: &Sender,
    egress: &Egress,
    outgoing: &Event,
    carried: &[(String, ExtValue)],
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<bool, Failure> {
    let reply = match &egress.subscriber {
        // A subscription without a subscriber forwards the event itself to its reply.
        None => Some(outgoing.clone()),
        Some(url) => match sender
            .post(url, headers.clone(), body.clone(), timeout(egress))
            .await
        {
            Attempt::Failed { error } => {
                return Err(Failure {
                    dest: url.clone(),
                    status: None,
                    body: Bytes::new(),
                    retry_after: None,
                    retryable: true,
                    error,
                });
            }
            Attempt::Response {
                status,
                headers: resp_headers,
                body: resp_body,
            } => {
                if !(200..300).contains(&status) {
                    return Err(Failure {
                        dest: url.clone(),
                        status: Some(status),
                        retry_after: retry_after(&resp_headers),
                        body: resp_body,
                        retryable: policy::retryable_status(status),
                        error: format!("status {status}"),
                    });
                }
                reply_of(url, status, &resp_headers, resp_body)?
            }
        },
    };
    let (Some(mut reply), Some(target)) = (reply, &egress.reply) else {
        return Ok(false);
    };
    for (name, value) in carried {
        reply.set_extension(name, value.clone());
    }
    let (headers, body) = encode(&reply, None);
    match sender
        .post(&target.url, headers, body, timeout(egress))
        .await
    {
        Attempt::Response { status, .. } if (200..300).contains(&status) => Ok(true),
        Attempt::Response {
            status,
            headers,
            body,
        } => Err(Failure {
            dest: target.url.clone(),
            status: Some(status),
            retry_after: retry_after(&headers),
            body,
            // Storing the reply failed: the whole delivery is retried (E24, E25).
            retryable: true,
            error: format!("reply rejected with status {status}"),
        }),
        Attempt::Failed { error } => Err(Failure {
            dest: target.url.clone(),
            status: None,
            body: Bytes::new(),
            retry_after: None,
            retryable: true,
            error: format!("reply failed: {error}"),
        }),
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
    if status == 202 {
        return Ok(None);
    }
    if body.is_empty() && !headers.contains_key("ce-specversion") {
        return Ok(None);
    }
    let propagated = binding::propagated_headers(headers);
    match binding::decode(headers, body.clone()) {
        Ok(Decoded::One(mut ev)) => {
            ev.headers = propagated;
            Ok(Some(*ev))
        }
        Ok(Decoded::Batch(_)) => Err(Failure {
            dest: url.to_string(),
            status: Some(status),
            body,
            retry_after: None,
            retryable: true,
            error: "a batch is not a valid reply".into(),
        }),
        Err(e) => Err(Failure {
            dest: url.to_string(),
            status: Some(status),
            body,
            retry_after: None,
            retryable: true,
            error: format!("the response is not a CloudEvent: {e}"),
        }),
    }
}

async fn dead_letter(
    sender: &Sender,
    egress: &Egress,
    mut event: Event,
    failure: Failure,
    attempts: u32,
) -> Fate {
    let Some(dls) = &egress.dead_letter_sink else {
        return Fate::Dropped {
            attempts,
            reason: format!("{} ({})", failure.error, failure.dest),
        };
    };
    event.set_extension("knativeerrordest", ExtValue::String(failure.dest.clone()));
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
    let (headers, body) = encode(&event, egress.delivery.format);
    let allowed = egress.delivery.retry.saturating_add(1);
    let mut last = String::new();
    let mut last_status = None;
    for k in 0..allowed {
        if k > 0 {
            tokio::time::sleep(policy::wait_before(&egress.delivery, k, last_status, None)).await;
        }
        match sender
            .post(dls, headers.clone(), body.clone(), timeout(egress))
            .await
        {
            Attempt::Response { status, .. } if (200..300).contains(&status) => {
                return Fate::DeadLettered {
                    attempts,
                    status: failure.status,
                };
            }
            Attempt::Response { status, .. } => {
                last = format!("dead-letter sink answered {status}");
                last_status = Some(status);
                if !policy::retryable_status(status) {
                    break;
                }
            }
            Attempt::Failed { error } => last = format!("dead-letter sink failed: {error}"),
        }
    }
    Fate::Dropped {
        attempts,
        reason: format!("{}; then {last}", failure.error),
    }
}
