//! How a ranking checks its candidates against the user's seen set (`P{u:<user>}:seen`, the
//! last 5,000 videos the user was shown or watched), given the set's size read with the
//! user's state (`ZCARD`, [`SeenCount`]).
//!
//! Asking about each candidate (`ZMSCORE` with ~600 ids) costs Redis a lookup and a reply per
//! candidate and feed-server 600 arguments to write and 600 replies to parse, whatever the
//! user has seen. A user who has seen nothing needs no check at all, and one who has seen fewer
//! videos than there are candidates is cheaper to read whole (`ZRANGE 0 -1`) and check in
//! process. Only a set larger than the candidate list is asked about per candidate.
//!
//! A ranking reads a small set whole with its source lists ([`SeenCheck::with_lists`]): the
//! size is known by then, the candidates are not needed for it, and the candidate read is then
//! left with nothing to ask Redis whenever the process holds the candidates' entries and
//! counters. "Small" is then measured against the most ids the lists may nominate.
//!
//! The size is the one read with the state, a round trip earlier: a video marked seen in between
//! is missed only when the set was read empty (the ranking is then of the state it read, and
//! the write moves the user's version, so the next request ranks again).

use redis::Value;

use super::{CandidateQuery, SeenCount, SeenSet, StoreError};

/// Which read checks the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SeenCheck {
    /// The set was empty: nothing is read, nothing is seen.
    Nothing,
    /// Read the set whole (`ZRANGE 0 -1`) and look each candidate up in process.
    Whole,
    /// Ask about each candidate (`ZMSCORE`).
    EachCandidate,
}

impl SeenCheck {
    /// The cheaper read for a set of `count` videos and `candidates` candidates.
    pub(super) fn of(count: SeenCount, candidates: usize) -> Self {
        match count {
            SeenCount::Known(0) => Self::Nothing,
            SeenCount::Known(n) if n <= candidates => Self::Whole,
            SeenCount::Known(_) | SeenCount::Unknown => Self::EachCandidate,
        }
    }

    /// Whether the lists' round trip of `query` reads the user's seen set whole: it is not empty
    /// and holds no more videos than the lists may nominate.
    pub(super) fn with_lists(query: &CandidateQuery) -> bool {
        Self::of(query.seen.count, query.most_listed()) == Self::Whole
    }

    /// The seen flag of each of `ids` from the check's reply, which `reply` yields (not called
    /// for [`Self::Nothing`]).
    pub(super) fn flags(
        self,
        ids: &[&str],
        reply: impl FnOnce() -> Result<Value, StoreError>,
    ) -> Result<Vec<bool>, StoreError> {
        match self {
            Self::Nothing => Ok(vec![false; ids.len()]),
            Self::Whole => Ok(seen_set(reply()?)?.flags(ids)),
            Self::EachCandidate => {
                let scores: Vec<Option<f64>> = parse(reply()?)?;
                if scores.len() != ids.len() {
                    return Err(StoreError::Corrupt(format!(
                        "ZMSCORE answered {} of {} candidates",
                        scores.len(),
                        ids.len()
                    )));
                }
                Ok(scores.iter().map(Option::is_some).collect())
            }
        }
    }
}

/// The set a `ZRANGE 0 -1` of the seen set answered.
pub(super) fn seen_set(reply: Value) -> Result<SeenSet, StoreError> {
    Ok(SeenSet::new(parse::<Vec<Vec<u8>>>(reply)?))
}

fn parse<T: redis::FromRedisValue>(v: Value) -> Result<T, StoreError> {
    redis::from_redis_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn the_cheaper_read_by_the_sets_size() {
        use SeenCheck::*;
        assert_eq!(SeenCheck::of(SeenCount::Known(0), 600), Nothing);
        assert_eq!(SeenCheck::of(SeenCount::Known(1), 600), Whole);
        assert_eq!(SeenCheck::of(SeenCount::Known(600), 600), Whole);
        assert_eq!(SeenCheck::of(SeenCount::Known(601), 600), EachCandidate);
        assert_eq!(SeenCheck::of(SeenCount::Known(5_000), 600), EachCandidate);
        assert_eq!(
            SeenCheck::of(SeenCount::Unknown, 600),
            EachCandidate,
            "a size not read is not taken for an empty set"
        );
    }

    #[test]
    fn the_lists_read_a_set_no_larger_than_they_may_nominate() {
        use crate::store::SeenOf;
        // 2 friends × 10 + 3 trending lists × 20 + long tail 5 = 85 ids at most.
        let query = |count| CandidateQuery {
            friends: vec!["f1".into(), "f2".into()],
            per_friend: 10,
            trending: vec![(crate::learning::TrendingScope::All, 1); 3],
            per_trending: 20,
            long_tail: (0, 5),
            seen: SeenOf {
                user: "u".into(),
                count,
            },
            ..CandidateQuery::default()
        };
        assert_eq!(query(SeenCount::Unknown).most_listed(), 85);
        assert!(SeenCheck::with_lists(&query(SeenCount::Known(1))));
        assert!(SeenCheck::with_lists(&query(SeenCount::Known(85))));
        assert!(!SeenCheck::with_lists(&query(SeenCount::Known(86))));
        assert!(
            !SeenCheck::with_lists(&query(SeenCount::Known(0))),
            "nothing seen: nothing read"
        );
        assert!(!SeenCheck::with_lists(&query(SeenCount::Unknown)));
    }

    #[test]
    fn flags_follow_the_candidates_order_whichever_read() {
        let ids = ["v1", "v2", "v3"];
        let whole = SeenCheck::Whole
            .flags(&ids, || {
                Ok(Value::Array(vec![bulk("v3"), bulk("v9"), bulk("v1")]))
            })
            .unwrap();
        assert_eq!(whole, [true, false, true]);
        let each = SeenCheck::EachCandidate
            .flags(&ids, || {
                Ok(Value::Array(vec![
                    Value::Double(1.0),
                    Value::Nil,
                    bulk("7"),
                ]))
            })
            .unwrap();
        assert_eq!(each, [true, false, true]);
        let nothing = SeenCheck::Nothing
            .flags(&ids, || panic!("nothing is read for an empty set"))
            .unwrap();
        assert_eq!(nothing, [false, false, false]);
    }

    #[test]
    fn a_short_or_malformed_reply_is_an_error() {
        let ids = ["v1", "v2"];
        let short = SeenCheck::EachCandidate.flags(&ids, || Ok(Value::Array(vec![Value::Nil])));
        assert!(
            matches!(&short, Err(StoreError::Corrupt(m)) if m.contains("1 of 2")),
            "{short:?}"
        );
        let not_members = SeenCheck::Whole.flags(&ids, || Ok(Value::Int(3)));
        assert!(
            matches!(not_members, Err(StoreError::Corrupt(_))),
            "{not_members:?}"
        );
    }
}
