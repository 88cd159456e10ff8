//! The folded counters per video, read by [`Term`] as well as by id.
//!
//! An uncached ranking reads ~600 of them. By id, each read hashes the id and probes a map of
//! 100,000 entries at the bench world (a cache miss for the control bytes, another for the
//! entry): 15% of feed-server's CPU per uncached ranking in process mode (BENCHMARKS.md,
//! *Compact ingest entries*). By term — the ranking holds its candidates' terms already — a read
//! is one indexed load from a dense table, as the default mode's kept counters are read.
//!
//! **Every counted video has a term.** A video's id is interned ([`vocabulary::term`]) when its
//! first counters are folded or read back from a checkpoint, so a video without a term has no
//! counters here. This is within the vocabulary's bound: counters are kept only for catalog
//! videos (events are accepted only for them), which the vocabulary holds anyway.

use std::collections::hash_map::Entry;

use super::Id;
use crate::learning::VideoStats;
use crate::vocabulary::{self, Term, TermTable};

/// The counters by video; see the module docs.
#[derive(Clone, Debug, Default)]
pub(super) struct VideoCounters {
    /// Each counted video's term, by id: what a read by id and the checkpoint (by id, sorted)
    /// go through.
    terms: foldhash::HashMap<Id, Term>,
    /// The counters, by the video's term.
    values: TermTable<VideoStats>,
}

impl VideoCounters {
    /// Room for `videos` without growing the map.
    pub(super) fn with_capacity(videos: usize) -> Self {
        Self {
            terms: foldhash::HashMap::with_capacity_and_hasher(videos, Default::default()),
            values: TermTable::default(),
        }
    }

    /// Adds `add` to video `id`'s counters (zero before its first).
    pub(super) fn merge(&mut self, id: &str, add: &VideoStats) {
        if let Some(values) = self.terms.get(id).and_then(|&t| self.values.get_mut(t)) {
            values.merge(add);
            return;
        }
        let mut values = VideoStats::default();
        values.merge(add);
        self.insert_new(Id::from(id), values);
    }

    /// Stores `values` as video `id`'s counters if it has none; whether it had none.
    pub(super) fn insert_new(&mut self, id: Id, values: VideoStats) -> bool {
        match self.terms.entry(id) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                let t = vocabulary::term(slot.key());
                slot.insert(t);
                self.values.insert(t, values);
                true
            }
        }
    }

    /// Drops video `id`'s counters.
    pub(super) fn remove(&mut self, id: &str) {
        if let Some(t) = self.terms.remove(id) {
            self.values.remove(t);
        }
    }

    /// Video `id`'s counters, if it has any.
    pub(super) fn get(&self, id: &str) -> Option<&VideoStats> {
        self.terms.get(id).and_then(|&t| self.values.get(t))
    }

    /// The counters of the video whose id is `t`, if it has any.
    pub(super) fn get_term(&self, t: Term) -> Option<&VideoStats> {
        self.values.get(t)
    }

    /// Every counted video's id and counters, in no order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Id, &VideoStats)> {
        self.terms
            .iter()
            .filter_map(|(id, &t)| self.values.get(t).map(|s| (id, s)))
    }

    /// Videos counted.
    pub(super) fn len(&self) -> usize {
        self.terms.len()
    }
}

/// Equal when the same videos have the same counters (terms are this process's, the same for
/// the same id).
impl PartialEq for VideoCounters {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(id, s)| other.get(id) == Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(n: f64) -> VideoStats {
        VideoStats {
            views: n,
            ..VideoStats::default()
        }
    }

    #[test]
    fn reads_by_id_and_by_term_agree() {
        let mut c = VideoCounters::default();
        c.merge("counters-v1", &views(1.0));
        c.merge("counters-v1", &views(2.0));
        c.merge("counters-v2", &views(5.0));
        let t1 = vocabulary::known("counters-v1").expect("a counted video has a term");
        assert_eq!(c.get("counters-v1"), Some(&views(3.0)));
        assert_eq!(c.get_term(t1), Some(&views(3.0)));
        assert_eq!(c.len(), 2);
        let creator = vocabulary::term("counters-creator");
        assert_eq!(c.get_term(creator), None, "a term with no counters");
        assert_eq!(c.get("counters-none"), None);
    }

    #[test]
    fn a_removed_video_reads_nothing_either_way() {
        let mut c = VideoCounters::default();
        c.merge("counters-gone", &views(1.0));
        let t = vocabulary::known("counters-gone").expect("a counted video has a term");
        c.remove("counters-gone");
        assert_eq!(c.get("counters-gone"), None);
        assert_eq!(c.get_term(t), None);
        assert_eq!(c.len(), 0);
        assert_eq!(c.iter().count(), 0);
        c.merge("counters-gone", &views(4.0));
        assert_eq!(c.get_term(t), Some(&views(4.0)), "counted afresh");
    }

    #[test]
    fn a_video_is_stored_new_once() {
        let mut c = VideoCounters::with_capacity(2);
        assert!(c.insert_new(Id::from("counters-once"), views(1.0)));
        assert!(!c.insert_new(Id::from("counters-once"), views(9.0)));
        assert_eq!(c.get("counters-once"), Some(&views(1.0)));
    }

    #[test]
    fn equal_by_what_they_count() {
        let (mut a, mut b) = (VideoCounters::default(), VideoCounters::default());
        a.merge("counters-eq1", &views(1.0));
        a.merge("counters-eq2", &views(2.0));
        b.merge("counters-eq2", &views(2.0));
        assert_ne!(a, b);
        b.merge("counters-eq1", &views(1.0));
        assert_eq!(a, b, "the same counters, folded in another order");
        b.merge("counters-eq1", &views(1.0));
        assert_ne!(a, b);
    }
}
