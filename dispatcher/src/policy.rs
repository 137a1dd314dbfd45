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

/// Parse `Retry-After`: delta seconds or an HTTP date (RFC 9110 §10.2.3). Seconds are digits
/// only (no sign); a number beyond u64 saturates (callers cap it with `retryAfterMax`). A date
/// in the past is no wait.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only an overflow makes `parse` fail.
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
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
        assert_eq!(backoff(&pol, u32::MAX).as_millis(), 5000);
        let pol = p(Some(Backoff::Exponential), u64::MAX, None);
        assert_eq!(backoff(&pol, 1000), Duration::MAX, "saturates");
        assert_eq!(backoff(&pol, u32::MAX), Duration::MAX);
        let pol = p(Some(Backoff::Linear), u64::MAX, Some(u64::MAX));
        assert_eq!(backoff(&pol, u32::MAX), Duration::from_millis(u64::MAX));
        let pol = p(Some(Backoff::Exponential), 1, None);
        assert_eq!(backoff(&pol, 32), Duration::from_millis(1 << 31));
        assert_eq!(
            backoff(&pol, 33),
            Duration::from_millis(u64::from(u32::MAX))
        );
        assert_eq!(
            backoff(&pol, u32::MAX),
            Duration::from_millis(u64::from(u32::MAX))
        );
        assert_eq!(backoff(&p(None, 1000, None), 3), Duration::ZERO);
        // Retry-After far beyond any cap is held to retryAfterMax.
        let mut pol = p(Some(Backoff::Linear), 100, None);
        pol.retry_after_max_ms = Some(u64::MAX);
        assert_eq!(
            wait_before(&pol, u32::MAX, Some(503), Some(Duration::MAX)),
            Duration::from_millis(u64::MAX)
        );
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
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(
            parse_retry_after("+3", now),
            None,
            "delta-seconds has no sign"
        );
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("3.5", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX)),
            "saturates"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        // Far dates: as far as timestamps go (jiff's end at 9999-12-30T22:00Z), then ignored.
        assert_eq!(
            parse_retry_after("Thu, 30 Dec 9999 00:00:00 GMT", now),
            Some(Duration::from_secs(253_402_128_000 - 1_445_412_480))
        );
        assert!(
            parse_retry_after("Thu, 30 Dec 9999 00:00:00 GMT", jiff::Timestamp::MIN)
                .is_some_and(|d| d > Duration::from_secs(600_000_000_000))
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            None
        );
        assert_eq!(
            parse_retry_after("Sat, 01 Jan 10000 00:00:00 GMT", now),
            None
        );
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

/// Property tests of the backoff arithmetic: never negative, capped, monotone, and equal to
/// the documented formula (saturating) wherever that fits.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    fn policies() -> impl Strategy<Value = DeliveryPolicy> {
        let backoffs = prop_oneof![
            Just(None),
            Just(Some(Backoff::Linear)),
            Just(Some(Backoff::Exponential)),
        ];
        let millis = || prop_oneof![0u64..10_000, any::<u64>(), Just(u64::MAX)];
        (
            backoffs,
            millis(),
            prop::option::of(millis()),
            prop::option::of(millis()),
        )
            .prop_map(|(backoff, delay, max, ra_max)| DeliveryPolicy {
                retry: u32::MAX,
                backoff,
                backoff_delay_ms: delay,
                backoff_max_ms: max,
                retry_after_max_ms: ra_max,
                ..Default::default()
            })
    }

    fn attempts() -> impl Strategy<Value = u32> {
        prop_oneof![0u32..70, any::<u32>(), Just(u32::MAX)]
    }

    /// The documented wait in milliseconds, computed wide: `delay × k` or `delay × 2^(k−1)`
    /// (the factor saturating at u32::MAX), the product saturating at Duration::MAX, then
    /// capped by backoffMax.
    fn model(p: &DeliveryPolicy, k: u32) -> u128 {
        let delay = u128::from(p.backoff_delay_ms);
        let raw = match p.backoff {
            None => 0,
            Some(Backoff::Linear) => delay * u128::from(k),
            Some(Backoff::Exponential) => {
                let exp = k.saturating_sub(1);
                let factor = if exp < 32 {
                    1u128 << exp
                } else {
                    u128::from(u32::MAX)
                };
                delay * factor
            }
        };
        let raw = raw.min(Duration::MAX.as_millis());
        p.backoff_max_ms.map_or(raw, |m| raw.min(u128::from(m)))
    }

    proptest! {
        #[test]
        fn backoff_is_bounded_and_monotone(p in policies(), k in attempts(), step in 0u32..1_000) {
            let w = backoff(&p, k);
            prop_assert!(w >= Duration::ZERO);
            prop_assert_eq!(w.as_millis(), model(&p, k));
            if let Some(max) = p.backoff_max_ms {
                prop_assert!(w <= Duration::from_millis(max), "{:?} above backoffMax {}", w, max);
            }
            if p.backoff.is_none() {
                prop_assert_eq!(w, Duration::ZERO);
            }
            let later = backoff(&p, k.saturating_add(step));
            prop_assert!(w <= later, "retry {} waits {:?}, a later one {:?}", k, w, later);
        }

        #[test]
        fn retry_after_is_honoured_within_its_bounds(
            p in policies(),
            k in attempts(),
            status in prop::sample::select(vec![None, Some(429u16), Some(503), Some(500), Some(404)]),
            ra in prop::option::of(prop_oneof![0u64..100_000, any::<u64>()].prop_map(Duration::from_millis)),
        ) {
            let base = backoff(&p, k);
            let w = wait_before(&p, k, status, ra);
            prop_assert!(w >= base, "never shorter than the backoff");
            let ceiling = base.max(Duration::from_millis(p.retry_after_max_ms.unwrap_or(0)));
            prop_assert!(w <= ceiling, "{:?} above both the backoff and retryAfterMax", w);
            if !matches!(status, Some(429 | 503)) || p.retry_after_max_ms.is_none() {
                prop_assert_eq!(w, base);
            }
        }

        #[test]
        fn retry_after_seconds_any_size(n in any::<u64>(), extra in 0u32..30) {
            let now = jiff::Timestamp::UNIX_EPOCH;
            prop_assert_eq!(parse_retry_after(&n.to_string(), now), Some(Duration::from_secs(n)));
            // Beyond u64: as long as representable (saturated).
            let huge = format!("{n}{}", "9".repeat(extra as usize + 20));
            prop_assert_eq!(parse_retry_after(&huge, now), Some(Duration::from_secs(u64::MAX)));
        }
    }
}
