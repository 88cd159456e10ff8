//! First-page freshness of a ranked list: how long a page stays cacheable depends on the content
//! types of the items it shows (computed by the ranking, judged by [`crate::cache`]).

use serde::{Deserialize, Serialize};

/// How long a first page stays fresh by how many leading items it shows: the shortest cache TTL
/// of their content types (`cache.ttlSeconds`). Breakpoints `(items, seconds)`, ascending in
/// items and descending in seconds: a page of at most `items` leading items is fresh for
/// `seconds`. A live stream at rank 50 then shortens pages of 50 items or more, not the
/// 20-item page above it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageTtls(pub Vec<(usize, u32)>);

impl PageTtls {
    /// From the TTLs of the ranked items, best first, for pages of up to `max_items`;
    /// `default` when there are no items.
    pub fn of(ttls: impl IntoIterator<Item = u32>, max_items: usize, default: u32) -> Self {
        let mut points = Vec::new();
        let mut shortest: Option<u32> = None;
        for (i, ttl) in ttls.into_iter().take(max_items).enumerate() {
            match shortest {
                Some(m) if ttl < m => {
                    points.push((i, m));
                    shortest = Some(ttl);
                }
                None => shortest = Some(ttl),
                Some(_) => {}
            }
        }
        points.push((max_items, shortest.unwrap_or(default)));
        Self(points)
    }

    /// Seconds a page of `items` leading items stays fresh (`None`: not known, the store's
    /// expiry alone decides).
    pub fn for_items(&self, items: usize) -> Option<u32> {
        self.0
            .iter()
            .find(|(n, _)| *n >= items)
            .or(self.0.last())
            .map(|(_, secs)| *secs)
    }

    /// The longest any first page stays fresh (a one-item page).
    pub fn longest(&self) -> Option<u32> {
        self.0.first().map(|(_, secs)| *secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_ttls_follow_the_shortest_ttl_a_page_shows() {
        // Short, short, live (10 s), short, long: pages of 1–2 items 120 s, 3+ items 10 s.
        let t = PageTtls::of([120, 120, 10, 120, 3600], 100, 120);
        assert_eq!(t.0, [(2, 120), (100, 10)]);
        assert_eq!(t.for_items(1), Some(120));
        assert_eq!(t.for_items(2), Some(120));
        assert_eq!(t.for_items(3), Some(10));
        assert_eq!(t.for_items(100), Some(10));
        assert_eq!(t.longest(), Some(120));
        // Only the first `max_items` count.
        assert_eq!(PageTtls::of([120, 120, 10], 2, 60).0, [(2, 120)]);
        assert_eq!(PageTtls::of([], 100, 60).0, [(100, 60)]);
        assert_eq!(PageTtls::default().for_items(20), None);
    }
}
