//! The wait between a background loop's failed rounds against Redis (the event consumer, the
//! counter change feed, the stream follower): doubling from a first delay up to a cap, and back
//! to the first after a success, so that a Redis outage costs a few attempts per second, not a
//! busy loop, and a recovered Redis is used again at once.

use std::time::Duration;

/// Exponential back-off; see the module docs.
#[derive(Clone, Debug)]
pub(super) struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `first`, never waits longer than `max`.
    pub(super) fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    /// A round succeeded: the next failure waits `first` again.
    pub(super) fn reset(&mut self) {
        self.next = self.first;
    }

    /// A round failed: how long to wait before the next (twice the last, at most `max`).
    pub(super) fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_success() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(50), ms(300));
        let waits: Vec<Duration> = (0..5).map(|_| b.failed()).collect();
        assert_eq!(waits, [ms(50), ms(100), ms(200), ms(300), ms(300)]);
        b.reset();
        assert_eq!(b.failed(), ms(50));
    }
}
