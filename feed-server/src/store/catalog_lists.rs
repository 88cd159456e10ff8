//! Source lists that only catalog writes change — a creator's uploads, a tag's videos, the
//! fresh lists by language — kept in process for as long as the catalog version they were read
//! at holds, instead of for the shared cache's one second.
//!
//! Every catalog write (upload, update, deletion) moves `P{shared}:catv` in the same MULTI/EXEC
//! as its index writes, and nothing else writes these lists, so a list read at version `v` is
//! exact while the version is `v`. Each replica learns the version from its counter change feed
//! poll (`store::redis_counter_feed`, every 20 ms); a version change empties the cache.
//!
//! **Never older than the version a read was issued at.** A read is issued under a
//! [`ListTicket`] (the version known then); what it returns reflects that version or a newer
//! one (a write may land before Redis answers), and it is kept only if the known version is
//! still the ticket's. A list newer than its tag is dropped at the next version change, never
//! served older.
//!
//! **The version itself** is what rankings check their cached catalog entries against
//! ([`CatalogLists::version`]) instead of reading it in each ranking's round trip: entries and
//! lists trail a catalog write by the same poll, and a replica's own catalog write
//! ([`CatalogLists::reset`]) is seen at once.
//!
//! **Bound.** A kept list trails Redis by at most the time from a catalog write to the next poll
//! that sees it (one poll, 20 ms, plus its round trip). Lists are used only while the version
//! was observed within the cache's `bound` (one second), so a follower that stops polling (Redis
//! down, a failover) falls back to reading the lists — never to older ones.

use std::hash::Hash;
use std::time::{Duration, Instant};

use foldhash::HashMap;
use parking_lot::RwLock;

use super::SharedList;

/// The catalog version a list read was issued at (`None`: no live version, keep nothing), and
/// the cache's reset count then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListTicket(Option<i64>, u64);

struct State<K> {
    /// The catalog version last observed, and when.
    version: Option<(i64, Instant)>,
    /// Moves with every reset: a read issued before one is not kept, whatever version the
    /// next observation sees.
    resets: u64,
    /// Lists read at `version` (keyed like the shared cache: the list and the range read).
    entries: HashMap<K, SharedList>,
}

impl<K> Default for State<K> {
    fn default() -> Self {
        Self {
            version: None,
            resets: 0,
            entries: HashMap::default(),
        }
    }
}

/// The kept lists (see the module docs).
pub(crate) struct CatalogLists<K> {
    /// Longest time since the last observation of the version during which lists are used
    /// (zero: never, the cache is off).
    bound: Duration,
    /// Most lists kept; a full cache is emptied.
    max_entries: usize,
    state: RwLock<State<K>>,
}

impl<K: Hash + Eq> CatalogLists<K> {
    /// An empty cache, unused until a version is observed; lists are used while the version
    /// was observed within `bound`.
    pub(crate) fn new(bound: Duration, max_entries: usize) -> Self {
        Self {
            bound,
            max_entries,
            state: RwLock::new(State::default()),
        }
    }

    fn live_version(&self, s: &State<K>, now: Instant) -> Option<i64> {
        let (version, at) = s.version?;
        (!self.bound.is_zero() && now.saturating_duration_since(at) < self.bound).then_some(version)
    }

    /// The catalog version last observed, if observed within the bound (`None`: the caller
    /// reads it). Rankings check their cached catalog entries against it
    /// (`RedisStore::candidates`), so an entry trails a catalog write by the same one poll.
    pub(crate) fn version(&self, now: Instant) -> Option<i64> {
        self.live_version(&self.state.read(), now)
    }

    /// The kept lists of `keys` (`None` where they must be read) and the ticket to keep what is
    /// read under.
    pub(crate) fn lookup(
        &self,
        keys: impl Iterator<Item = K>,
        now: Instant,
    ) -> (ListTicket, Vec<Option<SharedList>>) {
        let s = self.state.read();
        let live = self.live_version(&s, now);
        let found = keys
            .map(|k| live.and_then(|_| s.entries.get(&k).cloned()))
            .collect();
        (ListTicket(live, s.resets), found)
    }

    /// Keeps lists read under `ticket`, unless the version moved since.
    pub(crate) fn keep(
        &self,
        ticket: ListTicket,
        read: impl IntoIterator<Item = (K, SharedList)>,
        now: Instant,
    ) {
        let mut s = self.state.write();
        if ticket.0.is_none() || ticket != ListTicket(self.live_version(&s, now), s.resets) {
            return;
        }
        for (key, list) in read {
            if s.entries.len() >= self.max_entries && !s.entries.contains_key(&key) {
                s.entries.clear();
            }
            s.entries.insert(key, list);
        }
    }

    /// The catalog version is `version` as of `now`: a different version empties the cache.
    pub(crate) fn observed(&self, version: i64, now: Instant) {
        let mut s = self.state.write();
        if s.version.map(|(v, _)| v) != Some(version) {
            s.entries.clear();
        }
        s.version = Some((version, now));
    }

    /// The version is unknown (the poll failed, or this replica just wrote the catalog):
    /// everything is dropped and nothing is kept until the next observation.
    pub(crate) fn reset(&self) {
        let mut s = self.state.write();
        s.version = None;
        s.resets += 1;
        s.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[&str]) -> SharedList {
        std::sync::Arc::new(crate::store::ListedIds::new(
            ids.iter().map(|s| (*s).to_owned()).collect(),
        ))
    }

    fn found(
        c: &CatalogLists<&'static str>,
        keys: &[&'static str],
        now: Instant,
    ) -> Vec<Option<SharedList>> {
        c.lookup(keys.iter().copied(), now).1
    }

    /// A read of `key` issued and answered at `now` with `ids`.
    fn read(c: &CatalogLists<&'static str>, key: &'static str, ids: &[&str], now: Instant) {
        let (ticket, _) = c.lookup([key].into_iter(), now);
        c.keep(ticket, [(key, list(ids))], now);
    }

    #[test]
    fn nothing_is_kept_or_served_before_a_version_is_observed() {
        let c = CatalogLists::new(Duration::from_secs(1), 10);
        let t0 = Instant::now();
        let (ticket, lists) = c.lookup(["a"].into_iter(), t0);
        assert_eq!(lists, [None]);
        c.keep(ticket, [("a", list(&["v1"]))], t0);
        c.observed(1, t0);
        assert_eq!(found(&c, &["a"], t0), [None], "read under no version");
    }

    #[test]
    fn a_list_is_served_while_its_version_holds_and_dropped_when_it_moves() {
        let c = CatalogLists::new(Duration::from_secs(1), 10);
        let t0 = Instant::now();
        c.observed(7, t0);
        read(&c, "a", &["v1"], t0);
        // Far longer than a shared-cache second, as long as the polls keep seeing version 7.
        let later = t0 + Duration::from_secs(30);
        c.observed(7, later);
        assert_eq!(found(&c, &["a", "b"], later), [Some(list(&["v1"])), None]);
        c.observed(8, later);
        assert_eq!(found(&c, &["a"], later), [None], "a catalog write");
    }

    #[test]
    fn a_read_issued_before_a_version_change_is_not_kept() {
        let c = CatalogLists::new(Duration::from_secs(1), 10);
        let t0 = Instant::now();
        c.observed(7, t0);
        let (ticket, _) = c.lookup(["a"].into_iter(), t0);
        c.observed(8, t0);
        c.keep(ticket, [("a", list(&["old"]))], t0);
        assert_eq!(found(&c, &["a"], t0), [None]);
        c.reset();
        c.observed(7, t0);
        c.keep(ticket, [("a", list(&["old"]))], t0);
        assert_eq!(
            found(&c, &["a"], t0),
            [None],
            "nor after a reset, though the version reads the same"
        );
    }

    #[test]
    fn lists_are_not_used_once_the_version_was_not_observed_within_the_bound() {
        let c = CatalogLists::new(Duration::from_secs(1), 10);
        let t0 = Instant::now();
        c.observed(7, t0);
        read(&c, "a", &["v1"], t0);
        let stale = t0 + Duration::from_secs(1);
        assert_eq!(
            found(&c, &["a"], stale),
            [None],
            "the poll stopped: read the lists"
        );
        read(&c, "b", &["v2"], stale);
        c.observed(7, stale);
        assert_eq!(
            found(&c, &["a", "b"], stale),
            [Some(list(&["v1"])), None],
            "kept again once the poll sees the same version; nothing was kept meanwhile"
        );
    }

    #[test]
    fn the_version_is_given_only_while_observed_within_the_bound_and_not_after_a_reset() {
        let c = CatalogLists::<&str>::new(Duration::from_secs(1), 10);
        let t0 = Instant::now();
        assert_eq!(c.version(t0), None, "never observed: read it");
        c.observed(7, t0);
        assert_eq!(c.version(t0 + Duration::from_millis(999)), Some(7));
        assert_eq!(
            c.version(t0 + Duration::from_secs(1)),
            None,
            "the poll stopped"
        );
        c.observed(8, t0);
        c.reset();
        assert_eq!(c.version(t0), None, "this replica wrote the catalog");
        assert_eq!(
            CatalogLists::<&str>::new(Duration::ZERO, 10).version(t0),
            None
        );
    }

    #[test]
    fn a_full_cache_is_emptied_and_a_zero_bound_keeps_nothing() {
        let c = CatalogLists::new(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        c.observed(1, t0);
        let (ticket, _) = c.lookup(std::iter::empty(), t0);
        c.keep(ticket, [("a", list(&["1"])), ("b", list(&["2"]))], t0);
        c.keep(ticket, [("c", list(&["3"]))], t0);
        assert_eq!(
            found(&c, &["a", "b", "c"], t0),
            [None, None, Some(list(&["3"]))]
        );
        let off = CatalogLists::new(Duration::ZERO, 2);
        off.observed(1, t0);
        read(&off, "a", &["1"], t0);
        assert_eq!(found(&off, &["a"], t0), [None]);
    }
}
