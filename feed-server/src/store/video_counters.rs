//! Video counters kept in process, exact within the change feed's lag: every ranking reads the
//! counters of hundreds of candidates, and a video's counters change only when a consumer applies
//! events to it, so a replica keeps each counter it read until the *counter change feed*
//! (`store::redis_counter_feed`) says the video changed, instead of re-reading every candidate
//! once a second.
//!
//! **No stale read is kept.** A read is issued under a [`ReadTicket`] (the generation of the
//! changes seen so far); when its values arrive they are kept only if no change of that video
//! was seen after the ticket was taken (the change may have landed after Redis answered). A
//! change seen before the read was issued is older than the read, so the read is kept.
//!
//! **The duration buckets' totals** (`P{shared}:dur`, the completion prior every candidate's
//! score reads) change with every applied watch, so no change mark would outlive a poll: every
//! poll reads the few fields whole instead ([`VideoCounters::followed`]), and rankings use them on
//! the same terms as the counters. That is one `HGETALL` fifty times a second per replica
//! instead of one per ranking, trailing Redis by the same poll.
//!
//! **Nothing is kept while the feed is not followed.** Until the follower has read the feed
//! within [`VideoCounters::new`]'s `bound`, lookups find nothing and reads are not kept, so every
//! ranking reads Redis, as without this cache; a gap in the feed (trimmed before it was read,
//! Redis restarted or failed over, a failed poll) empties it.

use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::learning::{DurationStats, VideoStats};
use crate::vocabulary::{self, Term, TermTable};

/// The change generation a read was issued at (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadTicket(u64);

/// A video's entry: its counters as read, or the generation of its last change.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Known(VideoStats),
    Changed(u64),
}

#[derive(Default)]
struct State {
    /// Moves with every round of changes and every reset.
    generation: u64,
    /// Reads issued before this generation are not kept (issued before a reset).
    floor: u64,
    /// The last time the feed was read without a gap; `None` while not followed.
    followed_at: Option<Instant>,
    /// The duration buckets' counters read by the last poll.
    durations: Option<DurationStats>,
    entries: TermTable<Slot>,
}

/// Counters by video id, in a dense table by the id's interned [`Term`] (see the module docs):
/// a lookup is one indexed read, no hash, no string.
pub(crate) struct VideoCounters {
    /// Longest time since the last successful read of the feed during which entries are used.
    bound: Duration,
    /// Most entries (counters and change marks); a full map is emptied.
    max_entries: usize,
    state: RwLock<State>,
}

impl VideoCounters {
    /// An empty map, unused until the feed is followed; entries are used while the feed was read
    /// within `bound` (zero: never, the cache is off).
    pub(crate) fn new(bound: Duration, max_entries: usize) -> Self {
        Self {
            bound,
            max_entries,
            state: RwLock::new(State::default()),
        }
    }

    /// Whether counters are kept at all (`false` with a zero bound: every ranking reads them).
    pub(crate) fn is_on(&self) -> bool {
        !self.bound.is_zero()
    }

    fn live(&self, s: &State) -> bool {
        self.is_on() && s.followed_at.is_some_and(|t| t.elapsed() < self.bound)
    }

    /// The kept counters of `ids` (`None` where they must be read: always for an id without a
    /// term) and the ticket to keep what is read under.
    pub(crate) fn lookup(
        &self,
        ids: impl Iterator<Item = Option<Term>>,
    ) -> (ReadTicket, Vec<Option<VideoStats>>) {
        let s = self.state.read();
        let ticket = ReadTicket(s.generation);
        if !self.live(&s) {
            return (ticket, ids.map(|_| None).collect());
        }
        let found = ids
            .map(|id| match id.and_then(|id| s.entries.get(id)) {
                Some(Slot::Known(stats)) => Some(*stats),
                _ => None,
            })
            .collect();
        (ticket, found)
    }

    /// Keeps counters read under `ticket`, except those of videos changed since.
    pub(crate) fn keep(
        &self,
        ticket: ReadTicket,
        read: impl IntoIterator<Item = (Term, VideoStats)>,
    ) {
        let mut s = self.state.write();
        if !self.live(&s) || ticket.0 < s.floor {
            return;
        }
        for (id, stats) in read {
            if matches!(s.entries.get(id), Some(Slot::Changed(at)) if *at > ticket.0) {
                continue;
            }
            if s.entries.len() >= self.max_entries && !s.entries.contains(id) {
                Self::empty(&mut s);
                return;
            }
            s.entries.insert(id, Slot::Known(stats));
        }
    }

    /// Records that the counters of `ids` changed: what was kept of them is dropped, and reads
    /// issued before are not kept. The ids are interned: a read in flight may be kept under the
    /// term of the catalog entry read with it, so its change must be marked even if no entry
    /// was read yet (changed videos are catalog videos: events are accepted only for those).
    pub(crate) fn changed<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let ids: Vec<Term> = ids.into_iter().map(vocabulary::term).collect();
        let mut s = self.state.write();
        s.generation += 1;
        let at = s.generation;
        for id in ids {
            if let Some(slot) = s.entries.get_mut(id) {
                *slot = Slot::Changed(at);
            } else if s.entries.len() < self.max_entries {
                s.entries.insert(id, Slot::Changed(at));
            } else {
                Self::empty(&mut s);
                return;
            }
        }
    }

    /// The feed was read up to its end with no gap, and the duration buckets' totals with it:
    /// entries and totals may be used for `bound` from now.
    pub(crate) fn followed(&self, durations: DurationStats) {
        let mut s = self.state.write();
        s.followed_at = Some(Instant::now());
        s.durations = Some(durations);
    }

    /// The duration buckets' totals read by the last poll, while the feed is followed (`None`:
    /// the ranking reads them).
    pub(crate) fn durations(&self) -> Option<DurationStats> {
        let s = self.state.read();
        if self.live(&s) { s.durations } else { None }
    }

    /// The feed has a gap or could not be read: everything is dropped and nothing is used until
    /// it is followed again.
    pub(crate) fn reset(&self) {
        let mut s = self.state.write();
        s.followed_at = None;
        s.durations = None;
        Self::empty(&mut s);
    }

    /// Drops every entry; reads in flight are not kept.
    fn empty(s: &mut State) {
        s.entries.clear();
        s.generation += 1;
        s.floor = s.generation;
    }

    /// Entries kept (counters and change marks).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.read().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::term;

    fn terms<const N: usize>(ids: [&str; N]) -> impl Iterator<Item = Option<Term>> {
        ids.into_iter().map(|id| Some(term(id)))
    }

    fn stats(views: f64) -> VideoStats {
        VideoStats {
            views,
            ..VideoStats::default()
        }
    }

    fn followed() -> VideoCounters {
        let c = VideoCounters::new(Duration::from_secs(60), 100);
        c.followed(DurationStats::default());
        c
    }

    /// Reads `id`'s counters (`views` views) as a ranking does: a lookup, then a keep under its
    /// ticket.
    fn read_and_keep(c: &VideoCounters, id: &str, views: f64) {
        let (ticket, _) = c.lookup(terms([id]));
        c.keep(ticket, [(term(id), stats(views))]);
    }

    fn views(c: &VideoCounters, id: &str) -> Option<f64> {
        c.lookup(terms([id])).1[0].map(|s| s.views)
    }

    #[test]
    fn a_read_is_kept_until_its_video_changes() {
        let c = followed();
        let (ticket, found) = c.lookup(terms(["a", "b"]));
        assert_eq!(found, [None, None]);
        c.keep(ticket, [(term("a"), stats(1.0)), (term("b"), stats(2.0))]);
        assert_eq!(views(&c, "a"), Some(1.0));
        c.changed(["a"]);
        assert_eq!(views(&c, "a"), None, "a changed: read it again");
        assert_eq!(views(&c, "b"), Some(2.0), "b did not change");
    }

    #[test]
    fn a_change_before_the_read_gets_its_term_still_stops_the_keep() {
        let c = followed();
        // A read of an id no catalog entry carried yet: nothing to find under no term.
        let (ticket, found) = c.lookup([None].into_iter());
        assert_eq!(found, [None]);
        // Its video changes while the read is in flight, then its catalog entry (read with
        // it) gives it a term: the read may predate the change, so it is not kept.
        c.changed(["vc-first-read"]);
        c.keep(ticket, [(term("vc-first-read"), stats(1.0))]);
        assert_eq!(views(&c, "vc-first-read"), None);
        read_and_keep(&c, "vc-first-read", 2.0);
        assert_eq!(
            views(&c, "vc-first-read"),
            Some(2.0),
            "a later read is kept"
        );
    }

    #[test]
    fn a_read_overtaken_by_a_change_is_not_kept() {
        let c = followed();
        let (ticket, _) = c.lookup(terms(["a", "b"]));
        // The change is seen while the read is in flight: its values may predate it.
        c.changed(["a"]);
        c.keep(ticket, [(term("a"), stats(1.0)), (term("b"), stats(2.0))]);
        assert_eq!(views(&c, "a"), None);
        assert_eq!(views(&c, "b"), Some(2.0));
        // A read issued after the change is newer than it: kept.
        read_and_keep(&c, "a", 3.0);
        assert_eq!(views(&c, "a"), Some(3.0));
    }

    #[test]
    fn nothing_is_kept_or_used_unless_the_feed_is_followed() {
        let c = VideoCounters::new(Duration::from_secs(60), 100);
        read_and_keep(&c, "a", 1.0);
        c.followed(DurationStats::default());
        assert_eq!(views(&c, "a"), None, "read before the feed was followed");
        read_and_keep(&c, "a", 1.0);
        assert_eq!(views(&c, "a"), Some(1.0));
        // A gap in the feed: everything goes, and reads in flight are not kept.
        let (ticket, _) = c.lookup(terms(["b"]));
        c.reset();
        assert_eq!(views(&c, "a"), None);
        c.followed(DurationStats::default());
        c.keep(ticket, [(term("b"), stats(2.0))]);
        assert_eq!(views(&c, "b"), None, "issued before the reset");
        assert_eq!(views(&c, "a"), None, "dropped by the reset");
    }

    #[test]
    fn entries_are_unused_once_the_feed_was_not_read_within_the_bound() {
        let c = VideoCounters::new(Duration::from_millis(30), 100);
        c.followed(DurationStats::default());
        read_and_keep(&c, "a", 1.0);
        assert_eq!(views(&c, "a"), Some(1.0));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(views(&c, "a"), None, "the follower is silent: read Redis");
        c.followed(DurationStats::default());
        assert_eq!(views(&c, "a"), Some(1.0));
        let off = VideoCounters::new(Duration::ZERO, 100);
        off.followed(DurationStats::default());
        read_and_keep(&off, "a", 1.0);
        assert_eq!(views(&off, "a"), None, "a zero bound turns the cache off");
    }

    #[test]
    fn the_duration_totals_are_the_last_polls_and_used_only_while_followed() {
        let c = VideoCounters::new(Duration::from_millis(30), 100);
        assert_eq!(c.durations(), None, "no poll yet: the ranking reads them");
        let mut polled = DurationStats::default();
        polled[2].completes = 7.0;
        c.followed(polled);
        assert_eq!(c.durations(), Some(polled));
        polled[2].completes = 9.0;
        c.followed(polled);
        assert_eq!(c.durations(), Some(polled), "the newest poll's");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.durations(), None, "the follower is silent");
        c.followed(polled);
        c.reset();
        assert_eq!(c.durations(), None, "dropped with the counters");
        let off = VideoCounters::new(Duration::ZERO, 100);
        off.followed(polled);
        assert_eq!(off.durations(), None, "a zero bound keeps nothing");
    }

    #[test]
    fn a_full_map_is_emptied_and_drops_reads_in_flight() {
        let c = VideoCounters::new(Duration::from_secs(60), 3);
        c.followed(DurationStats::default());
        let (ticket, _) = c.lookup(terms(["a"]));
        c.keep(ticket, (0..3).map(|i| (term(&format!("v{i}")), stats(1.0))));
        assert_eq!(c.len(), 3);
        c.keep(ticket, [(term("v0"), stats(2.0))]);
        assert_eq!(
            c.len(),
            3,
            "a full map still takes a newer read of a kept video"
        );
        assert_eq!(views(&c, "v0"), Some(2.0));
        c.keep(ticket, [(term("v9"), stats(1.0))]);
        assert_eq!(c.len(), 0, "emptied when full");
        c.keep(ticket, [(term("v9"), stats(1.0))]);
        assert_eq!(views(&c, "v9"), None, "the ticket predates the emptying");
    }
}
