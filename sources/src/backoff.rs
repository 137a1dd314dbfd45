//! The restart schedule the sources share, built with `backon`: what a ContainerSource process
//! that exited and a CloudPubSubSource whose Pub/Sub calls fail (or whose sink drops messages)
//! wait before trying again.
//!
//! The schedule is 0.5 s, 1 s, 2 s, 4 s, 8 s, 16 s, then 30 s for every later attempt, with no
//! jitter and no limit on attempts; a caller resets it (after a success, or a run that lasted)
//! by taking a new one. It is quicker than Kubernetes' CrashLoopBackOff (10 s doubling to
//! 5 min): a local process or emulator that recovers is picked up within seconds.
//!
//! Schedules used by one source only stay with it: ApiServerSource discovery (0.2 s doubling
//! to 30 s, with jitter), GitHub hook registration (1 s doubling to 5 min), Pub/Sub acks
//! (three attempts, 0.1 s then 0.4 s apart).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// First wait of the restart schedule.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Longest wait of the restart schedule.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// The restart schedule, from its first wait: an endless iterator of delays.
pub fn restart_delays() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(FIRST_DELAY)
        .with_factor(2.0)
        .with_max_delay(MAX_DELAY)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_double_from_half_a_second_to_a_cap_and_start_over_when_taken_anew() {
        let delays: Vec<Duration> = restart_delays().take(30).collect();
        let secs: Vec<f64> = delays.iter().take(8).map(Duration::as_secs_f64).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
        assert_eq!(delays.last(), Some(&MAX_DELAY));
        assert_eq!(restart_delays().next(), Some(FIRST_DELAY));
    }
}
