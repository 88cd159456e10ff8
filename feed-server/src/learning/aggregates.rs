//! The shared aggregates kept in process: what every user's ranking reads alike — video
//! counters, duration buckets, trending per scope and UTC day, exposures (the long tail), last
//! activity — folded from [`SharedDeltas`] in the order they were accepted. The embedded store
//! keeps its aggregates here; on Redis the consumers apply the same deltas to keys instead
//! (`store::redis_events`), and the design that would fold the ingest stream in each replica
//! (`feed-server/docs/shared-aggregates-in-process.md`) folds into this.
//!
//! **Deterministic.** The fold reads nothing but the deltas — no clock, no replica state — and
//! each member's sum grows in the order of the deltas, so two folds of the same deltas in the
//! same order hold the same state, bit for bit. Trending days expire by the newest event day
//! folded ([`TRENDING_RETENTION_SECS`] after the day ends, as the Redis keys' `EXPIREAT`), not by
//! a clock: the one difference from Redis, which expires the keys by its clock, so that a day
//! already past its retention when its events arrive (events replayed with old times) is gone
//! there at once and kept here until a newer day arrives.
//!
//! **Reads** come in Redis's orders ([`ScoreIndex`]): trending and last activity from the
//! highest score (`ZREVRANGE`), the long tail from the fewest exposures (`ZRANGE`).

mod codec;
mod counters;

use std::collections::HashMap;

use compact_str::CompactString;

pub use codec::{DecodeError, FORMAT};

use self::counters::VideoCounters;
use super::scores::ScoreIndex;
use super::shared::{CatalogChange, SharedDeltas, TrendingDeltas};
use super::{Deltas, DurationStats, TrendingScope, VideoStats};
use crate::vocabulary::Term;

/// How long a trending day is kept after it ends (seconds): one day, the day that reads it as
/// yesterday's (trending reads today's and yesterday's lists, never older ones). In process a
/// day goes when events of the day after next arrive; an event's time may be up to
/// [`crate::ingest::MAX_FUTURE_SKEW_SECS`] ahead, so yesterday's list may go that much before
/// midnight (today's list, a whole day of events by then, stays).
pub const TRENDING_RETENTION_SECS: i64 = 86_400;

/// What [`SharedAggregates::apply`] folds, borrowed from a batch or a stream entry.
#[derive(Clone, Copy, Debug)]
pub struct SharedParts<'d> {
    video_stats: &'d HashMap<String, VideoStats>,
    durations: &'d DurationStats,
    trending: &'d TrendingDeltas,
    exposures: &'d HashMap<String, f64>,
    active: &'d HashMap<String, f64>,
    catalog: &'d [CatalogChange],
}

/// `From<&$source>`: both hold the shared fields under the same names; `$catalog` reads the
/// catalog changes (a batch's [`Deltas`] has none).
macro_rules! shared_parts_of {
    ($source:ty, |$d:ident| $catalog:expr) => {
        impl<'d> From<&'d $source> for SharedParts<'d> {
            fn from($d: &'d $source) -> Self {
                Self {
                    video_stats: &$d.video_stats,
                    durations: &$d.durations,
                    trending: &$d.trending,
                    exposures: &$d.exposures,
                    active: &$d.active,
                    catalog: $catalog,
                }
            }
        }
    };
}

shared_parts_of!(SharedDeltas, |d| &d.catalog);
shared_parts_of!(Deltas, |_d| &[]);

/// A stream entry's id: Redis's clock in milliseconds and a sequence within it, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    /// Milliseconds since the epoch, Redis's clock when the entry was added.
    pub ms: u64,
    /// Sequence among the entries of that millisecond.
    pub seq: u64,
}

impl EntryId {
    /// The id before every entry (`0-0`, where a consumer group starts reading).
    pub const START: Self = Self { ms: 0, seq: 0 };
}

impl std::fmt::Display for EntryId {
    /// `<ms>-<seq>`, as Redis writes an entry id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl std::str::FromStr for EntryId {
    type Err = std::num::ParseIntError;

    /// `<ms>-<seq>`, as Redis writes an entry id (a missing `-` reads as an empty sequence,
    /// refused).
    fn from_str(id: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = id.split_once('-').unwrap_or((id, ""));
        Ok(Self {
            ms: ms.parse()?,
            seq: seq.parse()?,
        })
    }
}

/// A video or user id as the state holds it: inline up to 24 bytes (every id of the bench
/// world), so the state's hundreds of thousands of sorted-set members and counters allocate
/// nothing apart (a `String` each allocated its bytes, twice per member); ordered and hashed as
/// the `str` it holds.
type Id = CompactString;

/// The shared aggregates; see the module docs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedAggregates {
    /// The last stream entry folded ([`SharedAggregates::apply_entry`]).
    last: Option<EntryId>,
    /// Read ~600 times per uncached ranking: by term ([`SharedAggregates::stats_of_term`]).
    stats: VideoCounters,
    durations: DurationStats,
    trending: HashMap<(TrendingScope, i64), ScoreIndex<Id>>,
    exposures: ScoreIndex<Id>,
    active: ScoreIndex<Id>,
    /// The newest UTC day any trending delta named.
    newest_day: Option<i64>,
}

impl SharedAggregates {
    /// Folds `d` (a batch's [`Deltas`] or a stream entry's [`SharedDeltas`], borrowed) in:
    /// counters, bucket counters, trending scores and exposures add up, a user's last activity
    /// keeps the latest time; trending days past their retention are dropped.
    pub fn apply<'d>(&mut self, d: impl Into<SharedParts<'d>>) {
        let d = d.into();
        for (id, s) in d.video_stats {
            self.stats.merge(id, s);
        }
        for (total, add) in self.durations.iter_mut().zip(d.durations) {
            total.merge(add);
        }
        let newest_before = self.newest_day;
        for ((scope, day), incs) in d.trending {
            let scores = self.trending.entry((scope.clone(), *day)).or_default();
            for (id, w) in incs {
                scores.incr(id.as_str(), *w);
            }
            self.newest_day = self.newest_day.max(Some(*day));
        }
        for (id, n) in d.exposures {
            self.exposures.incr(id.as_str(), *n);
        }
        for (user, ts) in d.active {
            self.active.raise(user.as_str(), *ts);
        }
        for change in d.catalog {
            match change {
                CatalogChange::Added(id) => self.add_video(id),
                CatalogChange::Deleted(id) => self.remove_video(id),
            }
        }
        // A day expires when a newer day arrives; a late event of an expired day is dropped.
        if let Some(newest) = self.newest_day {
            let late = d.trending.keys().any(|(_, day)| expired(*day, newest));
            if self.newest_day > newest_before || late {
                self.trending.retain(|(_, day), _| !expired(*day, newest));
            }
        }
    }

    /// Folds the stream entry `id` unless an entry at or after it was folded already, so that
    /// reading entries again (a retried poll, a checkpoint's entries replayed) folds each once;
    /// whether it was folded.
    pub fn apply_entry<'d>(&mut self, id: EntryId, d: impl Into<SharedParts<'d>>) -> bool {
        if self.last.is_some_and(|last| id <= last) {
            return false;
        }
        self.apply(d);
        self.last = Some(id);
        true
    }

    /// The last stream entry folded, if any.
    pub fn last_entry(&self) -> Option<EntryId> {
        self.last
    }

    /// A catalog video joins the long tail with no exposures, unless it has some (`ZADD NX`).
    pub fn add_video(&mut self, id: &str) {
        self.exposures.insert_new(id, 0.0);
    }

    /// A deleted video's counters and exposures go.
    pub fn remove_video(&mut self, id: &str) {
        self.stats.remove(id);
        self.exposures.remove(id);
    }

    /// The counters of video `id` (zero when it has none).
    pub fn stats(&self, id: &str) -> VideoStats {
        self.stats.get(id).copied().unwrap_or_default()
    }

    /// The counters of the video whose id is `t` (zero when it has none). Every video with
    /// counters has a term, interned when its first counters were folded or read back from a
    /// checkpoint: a video whose id has no term has no counters either.
    pub fn stats_of_term(&self, t: Term) -> VideoStats {
        self.stats.get_term(t).copied().unwrap_or_default()
    }

    /// The duration buckets' counters.
    pub fn durations(&self) -> &DurationStats {
        &self.durations
    }

    /// The trending videos of `scope` on UTC day `day`, the highest score first.
    pub fn trending(&self, scope: &TrendingScope, day: i64) -> impl Iterator<Item = &str> {
        self.trending
            .get(&(scope.clone(), day))
            .into_iter()
            .flat_map(|s| s.highest().map(|(id, _)| id.as_str()))
    }

    /// The long tail: videos from the fewest exposures up.
    pub fn long_tail(&self) -> impl Iterator<Item = &str> {
        self.exposures.lowest().map(|(id, _)| id.as_str())
    }

    /// Users from the most recently active.
    pub fn recently_active(&self) -> impl Iterator<Item = &str> {
        self.active.highest().map(|(user, _)| user.as_str())
    }

    /// The (scope, day) trending lists held.
    #[cfg(test)]
    fn trending_days(&self) -> usize {
        self.trending.len()
    }
}

/// Whether the trending list of `day` is past its retention once events of day `newest` came:
/// the Redis key's `EXPIREAT` is `(day + 1) · 86,400 + retention`, which an event of day
/// `newest` is at or past when that is at most the start of `newest`.
fn expired(day: i64, newest: i64) -> bool {
    (day + 1) * 86_400 + TRENDING_RETENTION_SECS <= newest * 86_400
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::learning::{BucketStats, DURATION_BUCKETS};

    fn stats(views: f64, likes: f64) -> VideoStats {
        VideoStats {
            views,
            likes,
            ..VideoStats::default()
        }
    }

    fn deltas(video: &str, day: i64, w: f64, user: &str, ts: f64) -> SharedDeltas {
        let mut d = SharedDeltas::default();
        d.video_stats.insert(video.to_owned(), stats(1.0, w));
        d.durations[1] = BucketStats {
            impressions: 1.0,
            plays: 1.0,
            completes: 0.0,
        };
        d.trending.insert(
            (TrendingScope::All, day),
            HashMap::from([(video.to_owned(), w)]),
        );
        d.exposures.insert(video.to_owned(), 1.0);
        d.active.insert(user.to_owned(), ts);
        d
    }

    fn trending(a: &SharedAggregates, day: i64) -> Vec<&str> {
        a.trending(&TrendingScope::All, day).collect()
    }

    #[test]
    fn folds_counters_trending_exposures_and_activity() {
        let mut a = SharedAggregates::default();
        a.add_video("v3");
        a.apply(&deltas("v1", 100, 1.0, "u1", 50.0));
        a.apply(&deltas("v2", 100, 3.0, "u2", 40.0));
        a.apply(&deltas("v1", 100, 0.5, "u1", 10.0));
        assert_eq!(a.stats("v1"), stats(2.0, 1.5));
        assert_eq!(a.stats("none"), VideoStats::default());
        assert_eq!(a.durations()[1].impressions, 3.0);
        assert_eq!(a.durations().len(), DURATION_BUCKETS);
        assert_eq!(trending(&a, 100), ["v2", "v1"]);
        assert_eq!(a.long_tail().collect::<Vec<_>>(), ["v3", "v2", "v1"]);
        assert_eq!(
            a.recently_active().collect::<Vec<_>>(),
            ["u1", "u2"],
            "u1's later event was older: its latest time stays"
        );
    }

    /// Merging adds a member's increments before the fold does, so in general the last bits
    /// of a float sum (and so a near tie) may differ; these values are exact in binary.
    #[test]
    fn merged_deltas_fold_to_the_same_counters_and_orders() {
        let batches = [
            deltas("v1", 100, 1.0, "u1", 50.0),
            deltas("v2", 100, 3.0, "u2", 40.0),
            deltas("v1", 101, 0.25, "u1", 60.0),
        ];
        let mut one_by_one = SharedAggregates::default();
        let mut merged = SharedDeltas::default();
        for b in &batches {
            one_by_one.apply(b);
            merged.merge(b.clone());
        }
        let mut at_once = SharedAggregates::default();
        at_once.apply(&merged);
        for id in ["v1", "v2"] {
            assert_eq!(one_by_one.stats(id), at_once.stats(id));
        }
        for day in [100, 101] {
            assert_eq!(trending(&one_by_one, day), trending(&at_once, day));
        }
        assert_eq!(
            one_by_one.long_tail().collect::<Vec<_>>(),
            at_once.long_tail().collect::<Vec<_>>()
        );
        assert_eq!(
            one_by_one.recently_active().collect::<Vec<_>>(),
            at_once.recently_active().collect::<Vec<_>>()
        );
    }

    #[test]
    fn trending_days_expire_by_the_newest_event_day() {
        let mut a = SharedAggregates::default();
        a.apply(&deltas("v1", 100, 1.0, "u1", 1.0));
        a.apply(&deltas("v1", 101, 1.0, "u1", 2.0));
        assert_eq!(
            trending(&a, 100),
            ["v1"],
            "yesterday's, kept the day after it"
        );
        a.apply(&deltas("v1", 102, 1.0, "u1", 3.0));
        assert!(trending(&a, 100).is_empty(), "expired as day 102 began");
        assert_eq!(a.trending_days(), 2);
        a.apply(&deltas("v1", 90, 1.0, "u1", 4.0));
        assert!(
            trending(&a, 90).is_empty(),
            "a late event of an expired day"
        );
        assert_eq!(a.trending_days(), 2);
    }

    #[test]
    fn a_stream_entry_is_folded_once() {
        let mut a = SharedAggregates::default();
        let (first, second) = (EntryId { ms: 7, seq: 1 }, EntryId { ms: 8, seq: 0 });
        assert!(a.apply_entry(first, &deltas("v1", 100, 1.0, "u1", 1.0)));
        assert!(a.apply_entry(second, &deltas("v1", 100, 1.0, "u1", 1.0)));
        assert!(
            !a.apply_entry(first, &deltas("v1", 100, 1.0, "u1", 1.0)),
            "again"
        );
        assert!(!a.apply_entry(
            EntryId { ms: 7, seq: 9 },
            &deltas("v1", 100, 1.0, "u1", 1.0)
        ));
        assert_eq!(a.stats("v1").views, 2.0);
        assert_eq!(a.last_entry(), Some(second));
    }

    #[test]
    fn a_deleted_video_leaves_counters_and_long_tail() {
        let mut a = SharedAggregates::default();
        a.apply(&deltas("v1", 100, 1.0, "u1", 1.0));
        a.add_video("v2");
        a.remove_video("v1");
        assert_eq!(a.stats("v1"), VideoStats::default());
        assert_eq!(a.long_tail().collect::<Vec<_>>(), ["v2"]);
    }
}
