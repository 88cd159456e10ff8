//! A sorted set kept in process, in Redis's order: members by score, ties by member
//! ([`ScoreIndex::lowest`] is `ZRANGE`'s order, [`ScoreIndex::highest`] `ZREVRANGE`'s), with the
//! writes the shared aggregates use (`ZINCRBY`, `ZADD GT`, `ZADD NX`, `ZREM`). A member's score
//! is found by hash, its place by a B-tree, so a write is O(log n) and reading the first `k`
//! is O(k + log n), where sorting at every read was O(n log n).
//!
//! Scores are `f64`s compared as Redis compares them: `-0.0` is stored as `0.0` (Redis holds
//! them equal), and a write whose result is not a number changes nothing (Redis refuses it:
//! "resulting score is not a number"). The tests check the order against a real Redis
//! (`tests/it/sorted_sets.rs`).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// A score in Redis's order (`total_cmp` on values that are never NaN or `-0.0`).
#[derive(Clone, Copy, Debug)]
struct Score(f64);

impl Score {
    /// `None` for NaN; `-0.0` becomes `0.0`.
    fn of(value: f64) -> Option<Self> {
        (!value.is_nan()).then_some(Self(value + 0.0))
    }
}

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Members with scores, in Redis's sorted-set order; see the module docs.
#[derive(Clone, Debug)]
pub struct ScoreIndex<M> {
    scores: HashMap<M, Score>,
    order: BTreeSet<(Score, M)>,
}

/// Equal when they hold the same members with the same scores (the order holds both).
impl<M: Ord> PartialEq for ScoreIndex<M> {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
    }
}

impl<M> Default for ScoreIndex<M> {
    fn default() -> Self {
        Self {
            scores: HashMap::new(),
            order: BTreeSet::new(),
        }
    }
}

impl<M: Clone + Eq + Hash + Ord> ScoreIndex<M> {
    /// Members held (`ZCARD`).
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether no member is held.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The score of `member` (`ZSCORE`).
    pub fn score<Q>(&self, member: &Q) -> Option<f64>
    where
        M: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.scores.get(member).map(|s| s.0)
    }

    /// Adds `delta` to the score of `member`, which starts at 0 (`ZINCRBY`); the new score, or
    /// the unchanged one (0 for a new member, which is then not added) when the sum is not a
    /// number.
    pub fn incr<Q>(&mut self, member: &Q, delta: f64) -> f64
    where
        M: Borrow<Q> + for<'q> From<&'q Q>,
        Q: Hash + Eq + ?Sized,
    {
        let old = self.scores.get(member).copied();
        let new = old.map_or(0.0, |s| s.0) + delta;
        self.set(member, old, new)
    }

    /// Sets the score of `member` to `score` when it is absent or lower (`ZADD GT`).
    pub fn raise<Q>(&mut self, member: &Q, score: f64)
    where
        M: Borrow<Q> + for<'q> From<&'q Q>,
        Q: Hash + Eq + ?Sized,
    {
        let old = self.scores.get(member).copied();
        if old.is_none_or(|s| score > s.0) {
            self.set(member, old, score);
        }
    }

    /// Adds `member` with `score` when it is absent (`ZADD NX`).
    pub fn insert_new<Q>(&mut self, member: &Q, score: f64)
    where
        M: Borrow<Q> + for<'q> From<&'q Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.scores.contains_key(member) {
            self.set(member, None, score);
        }
    }

    /// Removes `member` (`ZREM`); whether it was held.
    pub fn remove<Q>(&mut self, member: &Q) -> bool
    where
        M: Borrow<Q> + for<'q> From<&'q Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.scores.remove(member) {
            Some(old) => {
                self.order.remove(&(old, M::from(member)));
                true
            }
            None => false,
        }
    }

    /// The index of `members` given in [`ScoreIndex::lowest`]'s order, as an encoding lists
    /// them: built in one pass, with full B-tree nodes (inserting them one by one in that order
    /// leaves every node about half empty). `None` when they are out of that order, a member
    /// repeats, or a score is NaN.
    pub fn from_lowest(members: Vec<(M, f64)>) -> Option<Self> {
        let mut scores = HashMap::with_capacity(members.len());
        let mut order = Vec::with_capacity(members.len());
        for (member, score) in members {
            let score = Score::of(score)?;
            let pair = (score, member);
            if order.last().is_some_and(|last| *last >= pair)
                || scores.insert(pair.1.clone(), score).is_some()
            {
                return None;
            }
            order.push(pair);
        }
        Some(Self {
            scores,
            order: BTreeSet::from_iter(order),
        })
    }

    /// Members and scores from the lowest score up, ties by member (`ZRANGE … WITHSCORES`).
    pub fn lowest(&self) -> impl DoubleEndedIterator<Item = (&M, f64)> {
        self.order.iter().map(|(s, m)| (m, s.0))
    }

    /// Members and scores from the highest score down, ties by member from the greatest
    /// (`ZREVRANGE … WITHSCORES`).
    pub fn highest(&self) -> impl Iterator<Item = (&M, f64)> {
        self.lowest().rev()
    }

    /// Moves `member` from `old` to `new`; a NaN `new` changes nothing (the old score, or 0).
    fn set<Q>(&mut self, member: &Q, old: Option<Score>, new: f64) -> f64
    where
        M: Borrow<Q> + for<'q> From<&'q Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(new) = Score::of(new) else {
            return old.map_or(0.0, |s| s.0);
        };
        let owned = M::from(member);
        match old {
            // The order's own copy of the member moves to its new place.
            Some(old) => {
                if let Some(score) = self.scores.get_mut(member) {
                    *score = new;
                }
                let moved = self.order.take(&(old, owned)).map(|(_, m)| m);
                if let Some(m) = moved {
                    self.order.insert((new, m));
                }
            }
            None => {
                self.order.insert((new, owned.clone()));
                self.scores.insert(owned, new);
            }
        }
        new.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowest(s: &ScoreIndex<String>) -> Vec<&str> {
        s.lowest().map(|(m, _)| m.as_str()).collect()
    }

    fn highest(s: &ScoreIndex<String>) -> Vec<&str> {
        s.highest().map(|(m, _)| m.as_str()).collect()
    }

    fn index(pairs: &[(&str, f64)]) -> ScoreIndex<String> {
        let mut s = ScoreIndex::default();
        for (m, score) in pairs {
            s.incr(*m, *score);
        }
        s
    }

    fn owned(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(m, s)| ((*m).to_owned(), *s)).collect()
    }

    #[test]
    fn built_from_its_own_order_it_equals_the_index_it_came_from() {
        let s = index(&[("b", 1.0), ("a", 1.0), ("c", 0.5), ("d", 2.0), ("e", -3.0)]);
        let listed: Vec<(String, f64)> = s.lowest().map(|(m, v)| (m.clone(), v)).collect();
        let built = ScoreIndex::from_lowest(listed).expect("in order");
        assert_eq!(built, s);
        assert_eq!(built.score("a"), Some(1.0));
        assert_eq!(built.len(), 5);
        let mut built = built;
        built.incr("e", 10.0);
        assert_eq!(highest(&built), ["e", "d", "b", "a", "c"]);
    }

    #[test]
    fn built_from_members_out_of_order_repeated_or_nan_it_is_refused() {
        for bad in [
            owned(&[("b", 1.0), ("a", 1.0)]),
            owned(&[("a", 2.0), ("b", 1.0)]),
            owned(&[("a", 1.0), ("a", 1.0)]),
            owned(&[("a", 1.0), ("b", 1.5), ("a", 2.0)]),
            owned(&[("a", f64::NAN)]),
        ] {
            assert_eq!(ScoreIndex::from_lowest(bad.clone()), None, "{bad:?}");
        }
        assert_eq!(
            ScoreIndex::from_lowest(Vec::<(String, f64)>::new()),
            Some(ScoreIndex::default())
        );
    }

    #[test]
    fn orders_by_score_then_member_both_ways() {
        let s = index(&[("b", 1.0), ("a", 1.0), ("c", 0.5), ("d", 2.0)]);
        assert_eq!(lowest(&s), ["c", "a", "b", "d"]);
        assert_eq!(highest(&s), ["d", "b", "a", "c"]);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn increments_move_a_member_and_keep_one_place_each() {
        let mut s = index(&[("a", 1.0), ("b", 2.0)]);
        assert_eq!(s.incr("a", 5.0), 6.0);
        assert_eq!(s.incr("new", -1.0), -1.0);
        assert_eq!(highest(&s), ["a", "b", "new"]);
        assert_eq!(s.lowest().count(), s.len(), "one place per member");
        assert_eq!(s.score("a"), Some(6.0));
    }

    #[test]
    fn raise_keeps_the_greater_score_and_insert_new_only_adds() {
        let mut s = index(&[("a", 5.0)]);
        s.raise("a", 3.0);
        assert_eq!(s.score("a"), Some(5.0));
        s.raise("a", 7.0);
        s.raise("b", 1.0);
        assert_eq!(s.score("a"), Some(7.0));
        assert_eq!(s.score("b"), Some(1.0));
        s.insert_new("a", 0.0);
        s.insert_new("c", 0.0);
        assert_eq!(s.score("a"), Some(7.0));
        assert_eq!(lowest(&s), ["c", "b", "a"]);
    }

    #[test]
    fn remove_forgets_score_and_place() {
        let mut s = index(&[("a", 1.0), ("b", 2.0)]);
        assert!(s.remove("a"));
        assert!(!s.remove("a"));
        assert_eq!(s.score("a"), None);
        assert_eq!(lowest(&s), ["b"]);
        assert!(!s.is_empty());
    }

    #[test]
    fn negative_zero_ties_with_zero_and_nan_changes_nothing() {
        let mut s = index(&[("b", 0.0)]);
        s.insert_new("a", -0.0);
        assert_eq!(lowest(&s), ["a", "b"]);
        s.incr("b", 1.0);
        assert_eq!(s.incr("b", f64::NAN), 1.0);
        s.incr("inf", f64::INFINITY);
        assert_eq!(s.incr("inf", f64::NEG_INFINITY), f64::INFINITY);
        assert_eq!(s.lowest().count(), 3);
        assert_eq!(s.score("b"), Some(1.0));
    }
}
