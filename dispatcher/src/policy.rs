//! Retry decisions: which outcomes are retried, how long to wait, `Retry-After`.
//!
//! Backoff (eventing-spec §2.1, our documented choice): the wait before retry k (k = 1..retry)
//! is `delay × k` for linear and `delay × 2^(k−1)` for exponential, so the first wait is
//! `delay` either way; each wait is capped by `backoffMax`. Without a policy or a delay,
//! retries are immediate (as Knative core does).

use std::time::Duration;

use knit_crds::contract::{Backoff, DeliveryPolicy};

/// Whether a response status is worth retrying: 5xx, 404, 408, 409, 429. Everything else
/// that is not 2xx (1xx, 3xx, other 4xx) goes straight to the dead-letter sink.
pub fn retryable_status(status: u16) -> bool {
    status >= 500 || matches!(status, 404 | 408 | 409 | 429)
}

/// The wait before retry `k` (1-based).
pub fn backoff(policy: &DeliveryPolicy, k: u32) -> Duration {
    let delay = Duration::from_millis(policy.backoff_delay_ms);
    let wait = match policy.backoff {
        None => Duration::ZERO,
        Some(Backoff::Linear) => delay.saturating_mul(k),
        Some(Backoff::Exponential) => {
            let factor = 2u32.checked_pow(k.saturating_sub(1)).unwrap_or(u32::MAX);
            delay.saturating_mul(factor)
        }
    };
    match policy.backoff_max_ms {
        Some(max) => wait.min(Duration::from_millis(max)),
        None => wait,
    }
}

/// Parse `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let dt = jiff::fmt::strtime::parse("%a, %d %b %Y %H:%M:%S GMT", v)
        .ok()?
        .to_datetime()
        .ok()?;
    let when = jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()?;
    let d = when.duration_since(now);
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

/// The wait before retry `k` given the last response's status and `Retry-After`: the backoff,
/// or `min(Retry-After, retryAfterMax)` when that is longer (429 and 503 only, and only when
/// `retryAfterMax` is set).
pub fn wait_before(
    policy: &DeliveryPolicy,
    k: u32,
    status: Option<u16>,
    retry_after: Option<Duration>,
) -> Duration {
    let base = backoff(policy, k);
    match (policy.retry_after_max_ms, status, retry_after) {
        (Some(max), Some(429 | 503), Some(ra)) => base.max(ra.min(Duration::from_millis(max))),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: Option<Backoff>, delay: u64, max: Option<u64>) -> DeliveryPolicy {
        DeliveryPolicy {
            retry: 5,
            backoff: b,
            backoff_delay_ms: delay,
            backoff_max_ms: max,
            ..Default::default()
        }
    }

    #[test]
    fn exponential_starts_at_delay_and_doubles() {
        let pol = p(Some(Backoff::Exponential), 200, None);
        let waits: Vec<u128> = (1..=4).map(|k| backoff(&pol, k).as_millis()).collect();
        assert_eq!(waits, vec![200, 400, 800, 1600]);
    }

    #[test]
    fn linear_grows_by_delay() {
        let pol = p(Some(Backoff::Linear), 100, None);
        let waits: Vec<u128> = (1..=3).map(|k| backoff(&pol, k).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 300]);
    }

    #[test]
    fn capped_and_no_overflow() {
        let pol = p(Some(Backoff::Exponential), 1000, Some(5000));
        assert_eq!(backoff(&pol, 60).as_millis(), 5000);
        let pol = p(Some(Backoff::Exponential), u64::MAX, None);
        let _ = backoff(&pol, 1000);
        assert_eq!(backoff(&p(None, 1000, None), 3), Duration::ZERO);
    }

    #[test]
    fn retryable() {
        for s in [500, 502, 503, 404, 408, 409, 429] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [100, 301, 400, 401, 403, 405, 413, 415, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after() {
        let now: jiff::Timestamp = "2015-10-21T07:28:00Z".parse().expect("time");
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        let mut pol = p(Some(Backoff::Linear), 100, None);
        assert_eq!(
            wait_before(&pol, 1, Some(429), Some(Duration::from_secs(3))),
            Duration::from_millis(100)
        );
        pol.retry_after_max_ms = Some(2000);
        assert_eq!(
            wait_before(&pol, 1, Some(429), Some(Duration::from_secs(3))),
            Duration::from_secs(2)
        );
        assert_eq!(
            wait_before(&pol, 1, Some(500), Some(Duration::from_secs(3))),
            Duration::from_millis(100)
        );
    }
}
