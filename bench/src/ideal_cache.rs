//! The ideal TTL cache the Zipf phase's hit ratio is judged against: no capacity limit, no
//! invalidation, an entry made on a miss and kept for the TTL. A hit does not extend it: the
//! feed-server's tiers have a time to live, not a time to idle, so an ideal that renewed entries
//! on every request would promise hits no TTL cache can give.
//!
//! The load generator keeps one beside the server for the whole run, fed with every feed
//! request it sends: the Zipf phase's ideal starts from what the earlier phases left in it, as
//! the server's cache does.

use std::sync::atomic::{AtomicU32, Ordering};

/// Per user, when the ideal cache made its entry (milliseconds since the run's origin, + 1;
/// 0 = never requested). Shared by the load's connections: requests update it concurrently.
#[derive(Debug)]
pub struct IdealTtlCache {
    made_at: Vec<AtomicU32>,
    ttl_ms: u32,
}

impl IdealTtlCache {
    /// An empty cache over users `0..users` whose entries live `ttl_ms`.
    pub fn new(users: usize, ttl_ms: u32) -> Self {
        Self {
            made_at: (0..users).map(|_| AtomicU32::new(0)).collect(),
            ttl_ms,
        }
    }

    /// Records a request for `user`'s first page at `t_ms`; whether the ideal cache hit. A miss
    /// makes the entry. Users outside the cache are ignored (a miss). Two connections
    /// requesting one user at once may both miss: the server's cache can do no better.
    pub fn request(&self, user: usize, t_ms: u32) -> bool {
        self.visit(user, t_ms, true)
    }

    /// A request at `t_ms`: whether it hit; a miss makes the entry only when the server
    /// answered it (`served`: a shed or failed request caches nothing).
    fn visit(&self, user: usize, t_ms: u32, served: bool) -> bool {
        let Some(slot) = self.made_at.get(user) else {
            return false;
        };
        let hit = match slot.load(Ordering::Relaxed) {
            0 => false,
            made => t_ms < (made - 1).saturating_add(self.ttl_ms),
        };
        if !hit && served {
            slot.store(t_ms.saturating_add(1), Ordering::Relaxed);
        }
        hit
    }

    /// Whether nobody requested `user` yet (the uncached phases draw only such users).
    pub fn never_requested(&self, user: usize) -> bool {
        self.made_at
            .get(user)
            .is_some_and(|s| s.load(Ordering::Relaxed) == 0)
    }

    /// Replays a trace of `(t_ms, user, served)` requests in time order, the order the server
    /// saw them in (connections record theirs concurrently); the hit ratio of those at or after
    /// `measure_from_ms` (0 when there are none). Every request counts; only a served one
    /// makes an entry.
    pub fn replay(&self, mut trace: Vec<(u32, u32, bool)>, measure_from_ms: u32) -> f64 {
        trace.sort_unstable();
        let (mut hits, mut total) = (0u64, 0u64);
        for (t, user, served) in trace {
            let hit = self.visit(user as usize, t, served);
            if t >= measure_from_ms {
                total += 1;
                hits += u64::from(hit);
            }
        }
        if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_does_not_extend_the_entry() {
        let cache = IdealTtlCache::new(2, 100);
        assert!(cache.never_requested(0));
        assert!(!cache.request(0, 10), "first request: a miss");
        assert!(!cache.never_requested(0));
        assert!(cache.request(0, 60));
        assert!(
            cache.request(0, 109),
            "still within 100 ms of the miss at 10"
        );
        // A renewing cache would hit here (109 + 100 > 150): a TTL cache made the entry at 10.
        assert!(!cache.request(0, 110), "expired 100 ms after it was made");
        assert!(cache.request(0, 150), "the miss at 110 made a new entry");
        assert!(cache.never_requested(1));
        assert!(!cache.request(7, 0), "a user outside the cache is a miss");
    }

    #[test]
    fn an_entry_made_at_time_zero_counts() {
        let cache = IdealTtlCache::new(1, 50);
        assert!(!cache.request(0, 0));
        assert!(!cache.never_requested(0));
        assert!(cache.request(0, 49));
        assert!(!cache.request(0, 50));
    }

    #[test]
    fn replay_orders_the_trace_and_measures_from_the_window() {
        let cache = IdealTtlCache::new(3, 100);
        // An earlier phase made user 2's entry at 0.
        assert!(!cache.request(2, 0));
        // Recorded out of order: at 20 user 0 misses, at 30 and 40 it hits. User 2 hits at 50
        // (made at 0) and misses at 120 (expired at 100).
        let trace = vec![
            (40, 0, true),
            (120, 2, true),
            (20, 0, true),
            (50, 2, true),
            (30, 0, true),
        ];
        // Measured from 30: hits at 30, 40, 50; miss at 120.
        assert_eq!(cache.replay(trace, 30), 0.75);
        assert_eq!(IdealTtlCache::new(1, 10).replay(vec![(5, 0, true)], 6), 0.0);
        // A shed request is a miss that makes no entry: the next one misses too.
        let shed = vec![(0, 0, false), (5, 0, true), (6, 0, true)];
        assert_eq!(IdealTtlCache::new(1, 100).replay(shed, 0), 1.0 / 3.0);
    }
}
