//! Durations from headers and manifests: `Retry-After`, ISO-8601 (delivery), Go (annotations);
//! what parses goes through the retry policy arithmetic.
#![no_main]

use std::time::Duration;

use knit_crds::contract::{Backoff, DeliveryPolicy};
use knit_crds::duration::{parse_go, parse_iso8601};
use knit_dispatcher::policy::{backoff, parse_retry_after, wait_before};
use libfuzzer_sys::fuzz_target;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn policy_arithmetic(delay: Duration, retry_after: Option<Duration>) {
    for b in [None, Some(Backoff::Linear), Some(Backoff::Exponential)] {
        for max in [None, Some(millis(delay) / 2), Some(u64::MAX)] {
            let pol = DeliveryPolicy {
                retry: u32::MAX,
                backoff: b,
                backoff_delay_ms: millis(delay),
                backoff_max_ms: max,
                retry_after_max_ms: Some(millis(delay)),
                ..Default::default()
            };
            for k in [0, 1, 2, 31, 32, 33, 64, u32::MAX] {
                let w = backoff(&pol, k);
                if let Some(m) = max {
                    assert!(w <= Duration::from_millis(m), "backoff above backoffMax");
                }
                let _ = wait_before(&pol, k, Some(429), retry_after);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let nows = [
        jiff::Timestamp::UNIX_EPOCH,
        jiff::Timestamp::MIN,
        jiff::Timestamp::MAX,
        jiff::Timestamp::from_second(1_445_412_480).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    ];
    let mut retry_after = None;
    for now in nows {
        retry_after = parse_retry_after(text, now).or(retry_after);
    }
    let iso = parse_iso8601(text);
    let go = parse_go(text);
    for d in [iso.ok(), go.ok(), retry_after].into_iter().flatten() {
        policy_arithmetic(d, retry_after);
    }
});
