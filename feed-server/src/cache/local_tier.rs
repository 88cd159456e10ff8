//! The feed cache's in-process tier: snapshots by user (heads) and by id (cursor paging),
//! bounded in ranked items, each entry kept at most its own time to live.
//!
//! Every cached first page reads this tier, so a read must cost next to nothing: it is one
//! sharded read lock, a hash of the borrowed id and two `Arc` clones (`quick_cache`, CLOCK-Pro
//! eviction), with no bookkeeping queued per read, no key allocated and no clock read of its own:
//! expiry is checked on read against the request's time (the service's [`crate::time::Clock`],
//! so tests move it). An entry past its time is a miss and is removed then; until read again it
//! holds its weight in the bound, until eviction reaches it. A wall clock stepped back by more
//! than [`CLOCK_STEP_TOLERANCE`] makes the entries made before the step misses (ranked anew or
//! read from the store tier), so a step back never stretches an entry's life beyond that.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Equivalent, OptionsBuilder, Weighter};

use super::Snapshot;
use crate::time::Timestamp;

/// What an entry is found by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// A user's current first-page snapshot, by user id.
    Head,
    /// A snapshot by its own id (cursor paging).
    Snapshot,
}

/// A key as stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key(Kind, Box<str>);

/// A key as looked up: the same hash as [`Key`] (derived field by field, and `&str` hashes as
/// `Box<str>` does), without allocating.
#[derive(Hash)]
struct KeyRef<'a>(Kind, &'a str);

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0 && self.1 == &*key.1
    }
}

/// A cached snapshot as the tier holds it.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) snapshot: Arc<Snapshot>,
    /// When its life began (its ranking, or its read from the store tier).
    from: Timestamp,
    /// When it leaves the tier.
    until: Timestamp,
    /// For a head: until when (unix ms) it is served without a store read
    /// (`FeedCache::recheck`). Shared by the clones a lookup hands out, so a recheck extends
    /// it for every later lookup.
    trusted_until_ms: Arc<AtomicI64>,
}

impl Entry {
    /// `snapshot`, kept `ttl` from `from`, served without a store read until `trusted_until`.
    pub(super) fn new(
        snapshot: Arc<Snapshot>,
        from: Timestamp,
        ttl: Duration,
        trusted_until: Timestamp,
    ) -> Self {
        Self {
            snapshot,
            from,
            until: from.after(ttl),
            trusted_until_ms: Arc::new(AtomicI64::new(trusted_until.millis())),
        }
    }

    /// Whether it is served at `now` without a store read.
    pub(super) fn trusted_at(&self, now: Timestamp) -> bool {
        now.millis() < self.trusted_until_ms.load(Ordering::Relaxed)
    }

    /// Serves it without a store read until `until` (never shortens the trust).
    pub(super) fn trust_until(&self, until: Timestamp) {
        self.trusted_until_ms
            .fetch_max(until.millis(), Ordering::Relaxed);
    }

    /// Whether it is served at `now`: before its end, and not from before its beginning by more
    /// than a clock step (a request that read the time just before a ranking it then waited for
    /// still takes its page).
    fn live_at(&self, now: Timestamp) -> bool {
        now < self.until && now.after(CLOCK_STEP_TOLERANCE) >= self.from
    }
}

/// How far before an entry's beginning a request's time may be and the entry still serve it.
const CLOCK_STEP_TOLERANCE: Duration = Duration::from_secs(1);

/// An entry weighs its ranked items, and one for the entry itself (never zero: a weightless
/// entry would never be evicted).
#[derive(Clone)]
struct ItemsWeighter;

impl Weighter<Key, Entry> for ItemsWeighter {
    fn weight(&self, _key: &Key, entry: &Entry) -> u64 {
        entry.snapshot.items.len() as u64 + 1
    }
}

/// Share of the bound for entries read again since they came in (and for new ones while it has
/// room); the rest takes new entries until they are read again or evicted. Heads are read again
/// within seconds (a user's next page, a hot user's next request), so a generous share for
/// recency. An entry heavier than this share of its shard is never kept.
const HOT_SHARE: f64 = 0.7;

/// Entries as heavy as the largest snapshot each shard holds at least (see [`shards_for`]).
const LARGEST_PER_SHARD: u64 = 8;

/// How many shards a tier of `max_items` splits into, each bounded by its share: as many as
/// `parallelism` threads want (4 each, as `quick_cache` would choose), but no more than leave
/// each shard [`LARGEST_PER_SHARD`] entries of `largest` items (a deep `--feed-depth` on a large
/// machine must not make its snapshots too heavy for their shard). A power of two, at least 1.
fn shards_for(max_items: u64, largest: u64, parallelism: usize) -> usize {
    let wanted = u64::try_from(parallelism.saturating_mul(4)).unwrap_or(u64::MAX);
    let fit = max_items / largest.max(1).saturating_mul(LARGEST_PER_SHARD);
    let shards = fit.min(wanted).max(1);
    // The largest power of two not above (quick_cache would round up).
    let power = 1u64 << (63 - shards.leading_zeros());
    usize::try_from(power).unwrap_or(1)
}

/// The tier: at most `max_items` ranked items in all (entries weigh their items).
pub(super) struct LocalTier {
    entries: Cache<Key, Entry, ItemsWeighter, DefaultHashBuilder>,
}

impl LocalTier {
    /// A tier holding at most `max_items` ranked items (0: holds nothing), its snapshots at most
    /// `largest` items each (the feed depth). A snapshot heavier than [`HOT_SHARE`] of its shard
    /// is not kept: with one shard (a tier of fewer than 16 such snapshots) that is 70% of
    /// `max_items`.
    pub(super) fn new(max_items: u64, largest: usize) -> Self {
        let largest = u64::try_from(largest).unwrap_or(u64::MAX).saturating_add(1);
        let parallelism = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let typical_entries = usize::try_from(max_items / largest)
            .unwrap_or(usize::MAX)
            .max(1);
        let shards = shards_for(max_items, largest, parallelism);
        // The builder only fails when a capacity is missing; both are set.
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity(typical_entries)
            .weight_capacity(max_items)
            .hot_allocation(HOT_SHARE)
            .build();
        let entries = match options {
            Ok(options) => Cache::with_options(
                options,
                ItemsWeighter,
                DefaultHashBuilder::default(),
                Default::default(),
            ),
            Err(_) => Cache::with_weighter(typical_entries, max_items, ItemsWeighter),
        };
        Self { entries }
    }

    /// The entry of `kind` for `id` live at `now`, if any; one past its time is removed (unless
    /// it was replaced meanwhile).
    pub(super) fn get(&self, kind: Kind, id: &str, now: Timestamp) -> Option<Entry> {
        let key = KeyRef(kind, id);
        let entry = self.entries.get(&key)?;
        if entry.live_at(now) {
            return Some(entry);
        }
        self.entries.remove_if(&key, |e| !e.live_at(now));
        None
    }

    /// Keeps `entry` as `kind` of `id`, replacing any (and its time).
    pub(super) fn insert(&self, kind: Kind, id: &str, entry: Entry) {
        self.entries.insert(Key(kind, id.into()), entry);
    }

    /// Drops the entry of `kind` for `id`.
    pub(super) fn invalidate(&self, kind: Kind, id: &str) {
        self.entries.remove(&KeyRef(kind, id));
    }

    /// Drops every entry.
    pub(super) fn clear(&self) {
        self.entries.clear();
    }

    /// Ranked items held, entries counted as in the bound.
    #[cfg(test)]
    fn weight(&self) -> u64 {
        self.entries.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::FeedItem;

    /// The cache tests' snapshot `id`, with `items` items (the tier reads only their count).
    fn snapshot(id: &str, items: usize) -> Arc<Snapshot> {
        let items = (0..items)
            .map(|i| FeedItem {
                video_id: format!("v{i}").into(),
                creator_id: "c".into(),
                score: 0.5,
                signals: None,
                explain: None,
            })
            .collect();
        Arc::new(Snapshot {
            items,
            ..super::super::tests::snapshot(id, 0)
        })
    }

    /// The tests' time: entries are inserted at 0 and read at [`NOW`] unless a test says.
    const NOW: Timestamp = Timestamp::from_millis(1_000);

    /// An entry of `items` items kept from 0 until `until_ms`.
    fn entry(id: &str, items: usize, until_ms: i64) -> Entry {
        let ttl = Duration::from_millis(u64::try_from(until_ms).unwrap_or(0));
        let zero = Timestamp::from_millis(0);
        Entry::new(snapshot(id, items), zero, ttl, zero)
    }

    const LONG: i64 = 60_000;

    /// The default feed depth.
    const DEPTH: usize = 200;

    fn id_of(e: Option<Entry>) -> Option<String> {
        e.map(|e| e.snapshot.id.clone())
    }

    #[test]
    fn heads_and_snapshots_of_one_id_are_apart_and_dropped_one_at_a_time() {
        let tier = LocalTier::new(10_000, DEPTH);
        tier.insert(Kind::Head, "x", entry("head of user x", 3, LONG));
        tier.insert(Kind::Snapshot, "x", entry("snapshot x", 3, LONG));
        let get = |kind, id| id_of(tier.get(kind, id, NOW));
        assert_eq!(get(Kind::Head, "x").as_deref(), Some("head of user x"));
        assert_eq!(get(Kind::Snapshot, "x").as_deref(), Some("snapshot x"));
        assert_eq!(get(Kind::Head, "y"), None);

        tier.invalidate(Kind::Head, "x");
        assert_eq!(get(Kind::Head, "x"), None);
        assert_eq!(get(Kind::Snapshot, "x").as_deref(), Some("snapshot x"));

        tier.clear();
        assert_eq!(get(Kind::Snapshot, "x"), None);
        assert_eq!(tier.weight(), 0);
    }

    #[test]
    fn an_entry_is_served_until_its_own_time_and_then_removed() {
        let tier = LocalTier::new(10_000, DEPTH);
        tier.insert(Kind::Head, "short", entry("s", 3, 5_000));
        tier.insert(Kind::Head, "long", entry("l", 3, LONG));
        let at = Timestamp::from_millis;
        assert!(tier.get(Kind::Head, "short", at(4_999)).is_some());
        assert!(tier.get(Kind::Head, "short", at(5_000)).is_none());
        assert!(tier.get(Kind::Head, "long", at(5_000)).is_some());
        // The expired entry left the tier (it no longer counts against the bound).
        assert_eq!(tier.weight(), 4);
        assert!(tier.get(Kind::Head, "short", at(0)).is_none());
    }

    #[test]
    fn a_clock_stepped_back_beyond_the_tolerance_makes_earlier_entries_misses() {
        let tier = LocalTier::new(10_000, DEPTH);
        let made = Timestamp::from_millis(10_000);
        let zero = Timestamp::from_millis(0);
        let minute = Duration::from_secs(60);
        tier.insert(
            Kind::Head,
            "u",
            Entry::new(snapshot("s", 3), made, minute, zero),
        );
        // A request that read the time just before the ranking it waited for takes the page.
        assert!(
            tier.get(Kind::Head, "u", Timestamp::from_millis(9_000))
                .is_some()
        );
        // Stepped back further: not served, and gone (it would otherwise live a minute more
        // than it should once the clock came back).
        assert!(
            tier.get(Kind::Head, "u", Timestamp::from_millis(8_999))
                .is_none()
        );
        assert!(tier.get(Kind::Head, "u", made).is_none());
    }

    #[test]
    fn shards_leave_room_for_the_deepest_snapshots() {
        // The default bound and depth: as many shards as threads want.
        assert_eq!(shards_for(500_000, 201, 2), 8);
        assert_eq!(shards_for(500_000, 201, 64), 256);
        // A deep feed on a large machine: fewer, larger shards.
        assert_eq!(shards_for(500_000, 5_001, 64), 8);
        assert_eq!(shards_for(500_000, 1_000_001, 64), 1);
        // Small tiers: one shard; never zero, and a power of two.
        assert_eq!(shards_for(1_000, 201, 8), 1);
        assert_eq!(shards_for(0, 201, 8), 1);
        assert_eq!(shards_for(500_000, 201, 3), 8);
        for (items, largest, threads) in
            [(500_000, 201, 16), (500_000, 5_001, 64), (50_000, 101, 8)]
        {
            let shards = shards_for(items, largest, threads) as u64;
            assert!(shards.is_power_of_two());
            let hot = (items / shards) as f64 * HOT_SHARE;
            assert!(
                hot >= largest as f64,
                "{items} / {shards} shards: {largest} items refused"
            );
        }
    }

    #[test]
    fn a_deep_feeds_snapshot_is_kept_in_the_default_bound() {
        let tier = LocalTier::new(500_000, 5_000);
        tier.insert(Kind::Snapshot, "deep", entry("deep", 5_000, LONG));
        assert!(tier.get(Kind::Snapshot, "deep", NOW).is_some());
    }

    #[test]
    fn a_replacement_lives_as_long_as_it_asks_not_what_was_left_of_the_old() {
        let tier = LocalTier::new(10_000, DEPTH);
        tier.insert(Kind::Head, "u", entry("old", 3, 5_000));
        tier.insert(Kind::Head, "u", entry("new", 3, LONG));
        let later = id_of(tier.get(Kind::Head, "u", Timestamp::from_millis(10_000)));
        assert_eq!(later.as_deref(), Some("new"));
    }

    #[test]
    fn the_tier_holds_at_most_its_items_and_nothing_with_no_room() {
        let tier = LocalTier::new(2_000, DEPTH);
        for i in 0..100 {
            tier.insert(Kind::Snapshot, &format!("s{i}"), entry("s", 199, LONG));
        }
        assert!(tier.weight() <= 2_000, "{} items held", tier.weight());
        let held = (0..100)
            .filter(|i| tier.get(Kind::Snapshot, &format!("s{i}"), NOW).is_some())
            .count();
        assert!((1..=10).contains(&held), "{held} entries of 200 items held");

        let none = LocalTier::new(0, DEPTH);
        none.insert(Kind::Head, "u", entry("s", 3, LONG));
        assert!(none.get(Kind::Head, "u", NOW).is_none());
    }

    #[test]
    fn a_snapshot_as_deep_as_the_default_feed_fits_a_small_tier() {
        // The smallest tier the tests run with beside a 200-item feed.
        let tier = LocalTier::new(1_000, DEPTH);
        tier.insert(Kind::Head, "u", entry("deep", 200, LONG));
        assert!(tier.get(Kind::Head, "u", NOW).is_some());
    }

    #[test]
    fn trust_is_shared_by_every_copy_handed_out_and_never_shortened() {
        let tier = LocalTier::new(10_000, DEPTH);
        tier.insert(Kind::Head, "u", entry("s", 3, LONG));
        let Some(first) = tier.get(Kind::Head, "u", NOW) else {
            panic!("the head was just inserted");
        };
        assert!(!first.trusted_at(Timestamp::from_millis(0)));
        first.trust_until(Timestamp::from_millis(5_000));
        first.trust_until(Timestamp::from_millis(1_000));
        let Some(second) = tier.get(Kind::Head, "u", NOW) else {
            panic!("the head is live");
        };
        assert!(second.trusted_at(Timestamp::from_millis(4_999)));
        assert!(!second.trusted_at(Timestamp::from_millis(5_000)));
    }
}
