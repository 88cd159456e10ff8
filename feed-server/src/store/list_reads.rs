//! The source-list reads of a candidate query ([`reads_of`]): which list each is, the range, how
//! Redis reads it and how long it is kept in process.
//!
//! A kept list is known in process by a [`ListKey`]: the list by its names' catalog terms
//! (creator, tag, language, region) and the range read. Every ranking looks up a score of kept
//! lists, so the lookup formats, allocates and hashes no string; a list's Redis key is formatted
//! only when the list is read. A name without a term (no catalog entry read by this process
//! carries it yet) has no key: its list is read every time until one does.

use super::CandidateQuery;
use super::keys::{EVERY_LANGUAGE, Keys};
use super::state_reads::RankingState;
use crate::learning::TrendingScope;
use crate::vocabulary::{Term, known_each};

/// How a source list is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    /// Sorted set, highest score first (`ZREVRANGE`): shared.
    Newest,
    /// Sorted set, lowest score first (`ZRANGE`): shared.
    Oldest,
    /// A user's list (`LRANGE`).
    List,
}

/// How long a source list read is kept in process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Keep {
    /// While the catalog version it was read at holds: only catalog writes change the list
    /// (a creator's uploads, a tag's videos, the fresh lists; [`super::catalog_lists`]).
    WhileCatalogHolds,
    /// For the shared cache's bound: events change the list (trending, long tail).
    SharedCacheBound,
    /// Until the list's user writes: a friend's recent engagements, kept by user
    /// ([`super::recent_lists`]) rather than by [`ListKey`].
    UntilUserWrites,
}

impl Keep {
    /// The `state` a list kept this way is counted as ([`super::state_reads`]).
    pub(super) fn state(self) -> RankingState {
        match self {
            Self::WhileCatalogHolds => RankingState::CatalogList,
            Self::SharedCacheBound => RankingState::SharedList,
            Self::UntilUserWrites => RankingState::FriendList,
        }
    }
}

/// Which list a read is of, its names borrowed from the query.
#[derive(Clone, Copy, Debug)]
pub(super) enum Source<'q> {
    /// A followed creator's newest videos.
    Creator(&'q str),
    /// A friend's recent engagements.
    Friend(&'q str),
    /// A trending list of one UTC day.
    Trending(&'q TrendingScope, i64),
    /// The newest uploads in a language, or in every language ([`EVERY_LANGUAGE`]).
    Fresh(&'q str),
    /// A tag's newest videos.
    Tag(&'q str),
    /// The least-exposed videos.
    LongTail,
}

impl Source<'_> {
    /// How Redis reads the list: a user's list in its order, the long tail least exposed
    /// first, every other list newest first.
    pub(super) fn order(self) -> Order {
        match self {
            Self::Friend(_) => Order::List,
            Self::LongTail => Order::Oldest,
            Self::Creator(_) | Self::Trending(..) | Self::Fresh(_) | Self::Tag(_) => Order::Newest,
        }
    }

    /// How long a read of the list is kept: what only catalog writes change while the catalog
    /// version holds, what events move for the shared cache's bound, a friend's until the
    /// friend writes.
    pub(super) fn keep(self) -> Keep {
        match self {
            Self::Creator(_) | Self::Fresh(_) | Self::Tag(_) => Keep::WhileCatalogHolds,
            Self::Trending(..) | Self::LongTail => Keep::SharedCacheBound,
            Self::Friend(_) => Keep::UntilUserWrites,
        }
    }
}

/// A trending list's scope by its name's term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ScopeName {
    All,
    Language(Term),
    Region(Term),
}

/// A kept list by its names' terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ListName {
    Creator(Term),
    Tag(Term),
    /// `None`: every language.
    Fresh(Option<Term>),
    Trending(ScopeName, i64),
    LongTail,
}

/// A kept list's in-process identity: the list and the range read (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ListKey {
    list: ListName,
    start: isize,
    stop: isize,
}

/// One source-list read of a candidate query.
#[derive(Clone, Copy, Debug)]
pub(super) struct ListRead<'q> {
    pub(super) source: Source<'q>,
    pub(super) start: isize,
    pub(super) stop: isize,
}

impl ListRead<'_> {
    /// The name whose term the list is kept under (`None`: a list without one).
    fn name(&self) -> Option<&str> {
        match self.source {
            Source::Creator(name) | Source::Tag(name) => Some(name),
            Source::Fresh(EVERY_LANGUAGE) => None,
            Source::Fresh(lang) => Some(lang),
            Source::Trending(TrendingScope::All, _) => None,
            Source::Trending(TrendingScope::Language(name) | TrendingScope::Region(name), _) => {
                Some(name)
            }
            Source::Friend(_) | Source::LongTail => None,
        }
    }

    /// The user whose list this is (a friend's recent engagements), with the read's last index:
    /// what [`super::recent_lists`] keeps it under.
    pub(super) fn user_list(&self) -> Option<(&str, isize)> {
        match self.source {
            Source::Friend(user) => Some((user, self.stop)),
            _ => None,
        }
    }

    /// The key the list is kept under, given its name's term ([`Self::name`]).
    fn key_with(&self, term: Option<Term>) -> Option<ListKey> {
        let list = match self.source {
            Source::Friend(_) => return None,
            Source::Creator(_) => ListName::Creator(term?),
            Source::Tag(_) => ListName::Tag(term?),
            Source::Fresh(EVERY_LANGUAGE) => ListName::Fresh(None),
            Source::Fresh(_) => ListName::Fresh(Some(term?)),
            Source::Trending(scope, day) => ListName::Trending(
                match scope {
                    TrendingScope::All => ScopeName::All,
                    TrendingScope::Language(_) => ScopeName::Language(term?),
                    TrendingScope::Region(_) => ScopeName::Region(term?),
                },
                day,
            ),
            Source::LongTail => ListName::LongTail,
        };
        Some(ListKey {
            list,
            start: self.start,
            stop: self.stop,
        })
    }

    /// The list's Redis key.
    pub(super) fn redis_key(&self, keys: &Keys) -> String {
        match self.source {
            Source::Creator(c) => keys.creator_videos(c),
            Source::Friend(f) => keys.recent(f),
            Source::Trending(scope, day) => keys.trending(scope, day),
            Source::Fresh(lang) => keys.fresh(lang),
            Source::Tag(t) => keys.tag_videos(t),
            Source::LongTail => keys.exposures(),
        }
    }

    /// Whether the read asks for nothing (a zero budget; a stop of -1 would read the whole list).
    pub(super) fn is_empty(&self) -> bool {
        self.stop < self.start
    }
}

/// The key each of `reads` is kept under: `None` for a friend's list (kept by user instead:
/// [`ListRead::user_list`]) and for one whose name has no term yet. The names are looked up
/// under one vocabulary lock.
pub(super) fn cache_keys(reads: &[ListRead<'_>]) -> Vec<Option<ListKey>> {
    let mut terms = known_each(reads.iter().filter_map(ListRead::name)).into_iter();
    reads
        .iter()
        .map(|r| {
            let term = r.name().and_then(|_| terms.next().flatten());
            r.key_with(term)
        })
        .collect()
}

/// The reads of `q`, in the order [`super::CandidateLists`] takes them: followed creators,
/// friends, trending, fresh, tags, then the long tail when it has a budget.
pub(super) fn reads_of(q: &CandidateQuery) -> Vec<ListRead<'_>> {
    let first = |n: usize, source| ListRead {
        source,
        start: 0,
        stop: (n as isize) - 1,
    };
    let mut reads = Vec::with_capacity(
        q.creators.len() + q.friends.len() + q.trending.len() + q.fresh.len() + q.tags.len() + 1,
    );
    reads.extend(
        q.creators
            .iter()
            .map(|c| first(q.per_creator, Source::Creator(c))),
    );
    reads.extend(
        q.friends
            .iter()
            .map(|f| first(q.per_friend, Source::Friend(f))),
    );
    reads.extend(
        q.trending
            .iter()
            .map(|(scope, day)| first(q.per_trending, Source::Trending(scope, *day))),
    );
    reads.extend(
        q.fresh
            .iter()
            .map(|lang| first(q.per_fresh, Source::Fresh(lang))),
    );
    reads.extend(q.tags.iter().map(|t| first(q.per_tag, Source::Tag(t))));
    let (offset, n) = q.long_tail;
    if n > 0 {
        reads.push(ListRead {
            source: Source::LongTail,
            start: offset as isize,
            stop: (offset + n) as isize - 1,
        });
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::term;

    fn query() -> CandidateQuery {
        CandidateQuery {
            creators: vec!["lr-creator".into(), "lr-unknown-creator".into()],
            per_creator: 3,
            friends: vec!["lr-friend".into()],
            per_friend: 4,
            trending: vec![
                (TrendingScope::Region("lr-region".into()), 9),
                (TrendingScope::All, 9),
                (TrendingScope::All, 8),
            ],
            per_trending: 5,
            fresh: vec!["lr-lang".into(), EVERY_LANGUAGE.into()],
            per_fresh: 0,
            tags: vec!["lr-tag".into()],
            per_tag: 2,
            long_tail: (20, 10),
            ..CandidateQuery::default()
        }
    }

    #[test]
    fn reads_come_in_the_lists_order_with_their_ranges_and_redis_keys() {
        let q = query();
        let keys = Keys::new("P");
        let got: Vec<(String, isize, isize, Order, Keep, bool)> = reads_of(&q)
            .iter()
            .map(|r| {
                (
                    r.redis_key(&keys),
                    r.start,
                    r.stop,
                    r.source.order(),
                    r.source.keep(),
                    r.is_empty(),
                )
            })
            .collect();
        use {Keep::*, Order::*};
        let want: Vec<(String, isize, isize, Order, Keep, bool)> = vec![
            (
                keys.creator_videos("lr-creator"),
                0,
                2,
                Newest,
                WhileCatalogHolds,
                false,
            ),
            (
                keys.creator_videos("lr-unknown-creator"),
                0,
                2,
                Newest,
                WhileCatalogHolds,
                false,
            ),
            (keys.recent("lr-friend"), 0, 3, List, UntilUserWrites, false),
            (
                keys.trending(&TrendingScope::Region("lr-region".into()), 9),
                0,
                4,
                Newest,
                SharedCacheBound,
                false,
            ),
            (
                keys.trending(&TrendingScope::All, 9),
                0,
                4,
                Newest,
                SharedCacheBound,
                false,
            ),
            (
                keys.trending(&TrendingScope::All, 8),
                0,
                4,
                Newest,
                SharedCacheBound,
                false,
            ),
            (
                keys.fresh("lr-lang"),
                0,
                -1,
                Newest,
                WhileCatalogHolds,
                true,
            ),
            (
                keys.fresh(EVERY_LANGUAGE),
                0,
                -1,
                Newest,
                WhileCatalogHolds,
                true,
            ),
            (
                keys.tag_videos("lr-tag"),
                0,
                1,
                Newest,
                WhileCatalogHolds,
                false,
            ),
            (keys.exposures(), 20, 29, Oldest, SharedCacheBound, false),
        ];
        assert_eq!(got, want);
        let no_long_tail = CandidateQuery {
            long_tail: (20, 0),
            ..query()
        };
        assert_eq!(reads_of(&no_long_tail).len(), want.len() - 1);
    }

    #[test]
    fn a_list_is_keyed_by_its_names_terms_and_range_and_only_when_kept_and_named() {
        for name in ["lr-creator", "lr-region", "lr-tag"] {
            term(name);
        }
        let q = query();
        let reads = reads_of(&q);
        let keys = cache_keys(&reads);
        assert!(keys[0].is_some(), "a creator with a term");
        assert_eq!(keys[1], None, "no catalog entry names this creator yet");
        assert_eq!(keys[2], None, "a friend's list is never kept");
        assert!(keys[3].is_some() && keys[4].is_some() && keys[5].is_some());
        assert_ne!(keys[4], keys[5], "another day, another list");
        assert_ne!(keys[3], keys[4], "another scope");
        assert_eq!(keys[6], None, "a language no entry carries yet");
        assert!(keys[7].is_some(), "every language needs no term");
        assert!(keys[8].is_some() && keys[9].is_some());
        // The same list over another range is another key; the same names, the same key.
        assert_eq!(cache_keys(&reads_of(&q)), keys);
        let longer = ListRead {
            stop: 9,
            ..reads[0]
        };
        assert_ne!(cache_keys(&[longer])[0], keys[0]);
        let keys_of = |q: &CandidateQuery| cache_keys(&reads_of(q));
        let other_tag = CandidateQuery {
            tags: vec!["lr-creator".into()],
            ..query()
        };
        assert_ne!(
            keys_of(&other_tag)[8],
            keys[8],
            "a tag and a creator of the same name are different lists"
        );
    }
}
