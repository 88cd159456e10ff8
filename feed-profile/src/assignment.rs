//! Stable assignment of users to experiment buckets.

use xxhash_rust::xxh3::xxh3_64;

/// Number of buckets a traffic share is resolved to (a share of 0.25 covers 2,500 buckets).
pub const BUCKETS: u64 = 10_000;

/// The bucket (`0..BUCKETS`) of `user_id` under `salt`: XXH3-64 of `"{salt}:{user_id}"`, modulo
/// [`BUCKETS`]. XXH3 is a specified hash, so assignments are stable across releases and machines.
pub fn bucket(salt: &str, user_id: &str) -> u64 {
    let mut key = Vec::with_capacity(salt.len() + user_id.len() + 1);
    key.extend_from_slice(salt.as_bytes());
    key.push(b':');
    key.extend_from_slice(user_id.as_bytes());
    xxh3_64(&key) % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_stable_and_salt_dependent() {
        // Pinned: a change of hash would move users between variants across a release.
        assert_eq!(bucket("s", "u1"), 6046);
        let moved = (0..1000)
            .filter(|i| bucket("a", &i.to_string()) != bucket("b", &i.to_string()))
            .count();
        assert!(
            moved > 900,
            "a new salt must reshuffle users, only {moved} of 1000 moved"
        );
    }

    #[test]
    fn buckets_are_uniform() {
        let mut counts = [0u32; 10];
        for i in 0..100_000 {
            counts[(bucket("salt", &format!("user-{i}")) * 10 / BUCKETS) as usize] += 1;
        }
        for c in counts {
            assert!(
                (9_500..10_500).contains(&c),
                "decile holds {c} of 100000 users"
            );
        }
    }
}
