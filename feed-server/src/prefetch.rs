//! Bringing scattered reference counts into the CPU cache before a pass that clones them.
//!
//! Cloning an `Arc` is a locked add on its count, and a locked instruction waits for its cache
//! line before the instructions after it go on: a pass cloning the `Arc`s of 600 catalog
//! entries scattered over a 100,000-video catalog pays 600 cache misses one after the other.
//! Plain reads of the same counts do not wait for each other, so the CPU has many misses in
//! flight at once. [`arc_counts`] reads every count first; the clones that follow find their
//! lines arriving or arrived: −4% of feed-server's CPU per uncached ranking (BENCHMARKS.md,
//! *Uncached rankings: reference counts read before they are taken, …*).

use std::sync::Arc;

/// Reads the strong count of each of `arcs` (and nothing else): call it just before a pass
/// that clones or drops the same `Arc`s, when they are many and scattered in memory.
pub(crate) fn arc_counts<'a, T: ?Sized + 'a>(arcs: impl IntoIterator<Item = &'a Arc<T>>) {
    let total: usize = arcs.into_iter().map(Arc::strong_count).sum();
    // The reads have no effect the compiler can see: keep them.
    std::hint::black_box(total);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_the_counts_leaves_them_as_they_were() {
        let shared: Arc<str> = Arc::from("v1");
        let held = [Arc::clone(&shared), Arc::clone(&shared)];
        arc_counts(held.iter());
        assert_eq!(Arc::strong_count(&shared), 3);
    }
}
