//! The ranking pipeline over a store: at most three round trips (user state, source lists,
//! candidate data; Redis often skips the last) whatever the number of candidates, then pure
//! scoring and re-ranking.

use std::sync::Arc;

use feed_profile::RankingProfile;

use super::candidates;
use super::diversity::{self, Diversifiable, Move, Notes};
use super::inputs::{self, SignalInputs};
use super::page_ttls::PageTtls;
use super::signals;
use super::user::{ByTerm, UserAt};
use crate::model::{CandidateSource, DiversityEffect, Explanation, FeedItem, Signals, Sources};
use crate::prefetch;
use crate::served::{self, ItemFacts};
use crate::store::{
    CandidateData, CandidateRef, SeenRead, Store, StoreError, UserState, UserVersion,
};
use crate::vocabulary::{self, CatalogEntry, Term};

/// How many leading items of a ranked list a first page can show (the largest page size): the
/// page's cache TTL is the shortest TTL among their content types. Items further down are only
/// reached through cursors, which read the snapshot itself for at least
/// [`crate::cache::MIN_SNAPSHOT_TTL`] whatever their content type.
pub const FIRST_PAGE_ITEMS: usize = crate::model::MAX_LIMIT;

/// Whether a ranked list is explained: each item with its signals and explanation (re-ranking
/// noting what it did to it), or the items alone — cheaper, for pages nobody asked to explain
/// ([`diversity::Notes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Items with their signals and explanations.
    Explained,
    /// Items without them (`signals` and `explain` are `None`).
    Plain,
}

/// A ranked list of items, with their signals and explanations when [`Detail::Explained`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RankedList {
    /// Best first.
    pub items: Vec<FeedItem>,
    /// Cache TTLs of first pages by how many leading items (at most [`FIRST_PAGE_ITEMS`]) they
    /// show: the shortest TTL among those items' content types.
    pub page_ttls: PageTtls,
    /// Candidates scored (after the filters, before diversity and the depth cut).
    pub scored: usize,
    /// What the content-health metrics need of each item, in the order of `items` (home feeds
    /// only; empty for [`rank_candidates`], whose lists are not served as pages).
    pub facts: Vec<ItemFacts>,
    /// The user's version the ranking read the user's state at (home feeds only; default for
    /// [`rank_candidates`]).
    pub user_version: UserVersion,
}

/// A scored candidate. Sorting and re-ranking leave it where scoring put it and work on its
/// [`Slot`]; its [`FeedItem`] (the ids shared with the catalog entry, the explanation) is built
/// only if it is kept ([`Scored::item`]), after re-ranking cut the list to its depth.
struct Scored {
    video: Arc<CatalogEntry>,
    score: f64,
    signals: Signals,
    sources: Sources,
    ttl: u32,
}

impl Scored {
    /// The item, with its signals and explanation (diversity's part left for [`items_of`]) when
    /// `detail` asks for them.
    fn item(&self, profile: &RankingProfile, detail: Detail) -> FeedItem {
        let (weights, lift, s) = (&profile.weights, profile.affinity.lift, self.signals);
        let explained = detail == Detail::Explained;
        FeedItem {
            score: self.score,
            signals: explained.then(|| Box::new(s)),
            explain: explained.then(|| {
                Box::new(Explanation {
                    contributions: signals::contributions(weights, &s),
                    affinity_lift: signals::affinity_lift(weights, lift, &s),
                    affinity_multiplier: signals::affinity_multiplier(lift, s.affinity),
                    sources: self.sources,
                    diversity: None,
                })
            }),
            creator_id: self.video.creator_id.clone(),
            video_id: self.video.id.clone(),
        }
    }
}

/// A scored candidate as sorting and re-ranking handle it: its place in the scored list, what
/// the diversity rules read of it, and what re-ranking did to it. Sorting and re-ranking move
/// these (~50 bytes) instead of the candidates (~90 bytes, each moved many times by a sort).
#[derive(Clone, Copy)]
struct Slot {
    /// Index in the scored list.
    at: usize,
    creator: Term,
    primary_tag: Option<Term>,
    long_tail: bool,
    diversity: DiversityEffect,
}

impl Diversifiable for Slot {
    fn creator(&self) -> Term {
        self.creator
    }
    fn primary_tag(&self) -> Option<Term> {
        self.primary_tag
    }
    fn long_tail(&self) -> bool {
        self.long_tail
    }
    fn note(&mut self, what: Move) {
        match what {
            Move::Capped => self.diversity.capped = true,
            Move::Spread => self.diversity.spread = true,
            Move::LongTailSlot => self.diversity.long_tail_slot = true,
        }
    }
}

/// The slots of `scored` by score, best first, ties by video id; each knows its rank in that
/// order (`score_rank`). Sorts the scores and positions alone (16 bytes each).
fn by_score(scored: &[Scored]) -> Vec<Slot> {
    let mut order: Vec<(f64, usize)> = scored
        .iter()
        .enumerate()
        .map(|(at, s)| (s.score, at))
        .collect();
    order.sort_unstable_by(|(a_score, a), (b_score, b)| {
        b_score
            .total_cmp(a_score)
            .then_with(|| scored[*a].video.id.cmp(&scored[*b].video.id))
    });
    order
        .into_iter()
        .enumerate()
        .map(|(rank, (_, at))| {
            let keys = scored[at].video.keys();
            Slot {
                at,
                creator: keys.creator,
                primary_tag: keys.primary_tag(),
                long_tail: scored[at].sources.contains(CandidateSource::LongTail),
                diversity: DiversityEffect {
                    score_rank: u32::try_from(rank).unwrap_or(u32::MAX),
                    ..DiversityEffect::default()
                },
            }
        })
        .collect()
}

/// Computes the six signals of a candidate for a user (pure).
fn signals_for(
    profile: &RankingProfile,
    user: &UserAt<'_>,
    by_term: &ByTerm,
    c: &CandidateData,
    friend_engaged: bool,
    now: f64,
) -> Signals {
    let keys = c.video.keys();
    SignalInputs {
        content_type: keys.content_type,
        duration_ms: keys.duration_ms,
        stats: c.stats,
        bucket: c.bucket,
        creator_affinity: by_term.creators.get(&keys.creator).copied().unwrap_or(0.0),
        tag_affinity: inputs::tag_mean(&keys.tags, |t| by_term.tags.get(t).copied().unwrap_or(0.0)),
        followed: by_term.follows.contains(&keys.creator),
        friend_engaged,
        taste_cosine: signals::normed_cosine(user.taste(), keys.embedding()),
        age_secs: inputs::age_secs(keys.published, now),
    }
    .signals(profile)
}

fn ttl_of(profile: &RankingProfile, c: &CandidateData) -> u32 {
    let t = &profile.cache.ttl_seconds;
    match c.video.keys().content_type {
        crate::model::ContentType::Short => t.short,
        crate::model::ContentType::Long => t.long,
        crate::model::ContentType::Live => t.live,
    }
}

/// Each candidate scored, in the order given (see [`by_score`]).
fn score_all(
    profile: &RankingProfile,
    user: &UserAt<'_>,
    candidates: Vec<(CandidateData, Sources)>,
    now: f64,
) -> Vec<Scored> {
    let lift = profile.affinity.lift;
    let by_term = user.by_term();
    candidates
        .into_iter()
        .map(|(c, sources)| {
            let friend = sources.contains(CandidateSource::Friend);
            let s = signals_for(profile, user, &by_term, &c, friend, now);
            Scored {
                score: signals::score(&profile.weights, lift, &s),
                signals: s,
                sources,
                ttl: ttl_of(profile, &c),
                video: c.video,
            }
        })
        .collect()
}

/// The final list's items (`ranked`: the slots of `scored` in their final order), each
/// explained with what re-ranking did to it when `detail` asks for explanations.
fn items_of(
    profile: &RankingProfile,
    scored: &[Scored],
    ranked: &[Slot],
    detail: Detail,
) -> Vec<FeedItem> {
    // Each item clones its video's two ids, strings scattered over the catalog's memory.
    prefetch::arc_counts(ranked.iter().flat_map(|slot| {
        let video = &scored[slot.at].video;
        [&video.id, &video.creator_id]
    }));
    ranked
        .iter()
        .enumerate()
        .map(|(position, slot)| {
            let mut effect = slot.diversity;
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            effect.moved = i32::try_from(i64::from(effect.score_rank) - position).unwrap_or(0);
            let mut item = scored[slot.at].item(profile, detail);
            if let Some(explain) = item.explain.as_mut() {
                explain.diversity = Some(effect);
            }
            item
        })
        .collect()
}

/// A user's side of the language or region filter, as a catalog [`Term`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wanted {
    /// Off, or the user gave none: every candidate matches.
    Any,
    /// Candidates with another non-empty value are dropped.
    Only(Term),
    /// The user's value is no catalog entry's (never interned): every candidate with a
    /// non-empty value differs.
    Unheard,
}

impl Wanted {
    /// The user's `value` as the filter wants it (`on`: the profile's filter is enabled).
    fn of(on: bool, value: &str) -> Self {
        if !on || value.is_empty() {
            return Self::Any;
        }
        vocabulary::known(value).map_or(Self::Unheard, Self::Only)
    }

    /// Whether a candidate whose value is `theirs` (`None`: empty, any) is dropped.
    fn drops(self, theirs: Option<Term>) -> bool {
        match (self, theirs) {
            (Self::Any, _) | (_, None) => false,
            (Self::Only(mine), Some(theirs)) => mine != theirs,
            (Self::Unheard, Some(_)) => true,
        }
    }
}

/// The filters of a profile for one user, resolved once per ranking: a candidate is dropped when
/// it is in the user's seen set (`excludeSeen`), or when both it and the user name a language
/// (`matchLanguage`) or a region (`matchRegion`) and they differ.
#[derive(Clone, Copy, Debug)]
pub struct Filters {
    exclude_seen: bool,
    language: Wanted,
    region: Wanted,
}

impl Filters {
    /// `profile`'s filters for `user`. Resolve them after the candidates were read: a value
    /// no catalog entry read so far carries is taken to be no candidate's.
    pub fn resolve(profile: &RankingProfile, user: &UserState) -> Self {
        let f = &profile.filters;
        Self {
            exclude_seen: f.exclude_seen,
            language: Wanted::of(f.match_language, &user.profile.language),
            region: Wanted::of(f.match_region, &user.profile.region),
        }
    }

    /// Whether candidate `c` is kept.
    pub fn keep(&self, c: &CandidateData) -> bool {
        let keys = c.video.keys();
        let drop = (self.exclude_seen && c.seen)
            || self.language.drops(keys.language)
            || self.region.drops(keys.region);
        !drop
    }
}

/// The home feed of `user_id`: candidates from every source, filtered, scored, diversified, at
/// most `depth` items, explained or not (`detail`).
pub async fn rank_feed(
    store: &dyn Store,
    profile: &RankingProfile,
    user_id: &str,
    now: f64,
    depth: usize,
    detail: Detail,
) -> Result<RankedList, StoreError> {
    let user = store.user_state(user_id, now).await?;
    rank_feed_with(store, profile, user_id, &user, now, depth, detail).await
}

/// [`rank_feed`] with the user's state already read (a first-page lookup that missed read it
/// with the head, in the same round trip): the lists, then the candidates — at most two round
/// trips, one when the store holds what the candidates need ([`Store::candidates`]).
pub async fn rank_feed_with(
    store: &dyn Store,
    profile: &RankingProfile,
    user_id: &str,
    user: &UserState,
    now: f64,
    depth: usize,
    detail: Detail,
) -> Result<RankedList, StoreError> {
    let at = UserAt::new(user, now);
    let query = candidates::plan(profile, user_id, &at, now);
    let lists = store.candidate_lists(&query).await?;
    let merged = candidates::merge(&lists, profile.candidates.max_candidates as usize);
    let (ids, flags): (Vec<CandidateRef<'_>>, Vec<Sources>) = merged.into_iter().unzip();
    let data = store.candidates(user_id, &lists.seen, &ids).await?;
    let filters = Filters::resolve(profile, user);
    // Sized for every candidate: collecting a filtered iterator would grow it from empty.
    let mut kept: Vec<(CandidateData, Sources)> = Vec::with_capacity(data.len());
    kept.extend(
        data.into_iter()
            .zip(flags)
            .filter_map(|(d, flags)| d.map(|d| (d, flags)))
            .filter(|(d, _)| filters.keep(d)),
    );
    let scored = score_all(profile, &at, kept, now);
    let notes = match detail {
        Detail::Explained => Notes::Given,
        Detail::Plain => Notes::Skipped,
    };
    let ranked = diversity::rerank(by_score(&scored), &profile.diversity, depth, notes);
    let facts = served::facts_of(ranked.iter().map(|slot| {
        let published = scored[slot.at].video.keys().published;
        (slot.creator, published.millis(), slot.long_tail)
    }));
    Ok(RankedList {
        items: items_of(profile, &scored, &ranked, detail),
        page_ttls: page_ttls_of(profile, &scored, &ranked),
        scored: scored.len(),
        facts,
        user_version: user.version,
    })
}

/// Ranks a caller-supplied candidate list by score (no filters, no diversity); unknown ids are
/// left out. `now` may be in the past for replay.
pub async fn rank_candidates(
    store: &dyn Store,
    profile: &RankingProfile,
    user_id: &str,
    ids: &[String],
    now: f64,
) -> Result<RankedList, StoreError> {
    let user = store.user_state(user_id, now).await?;
    let ids: Vec<CandidateRef<'_>> = ids
        .iter()
        .map(|id| CandidateRef::from(id.as_str()))
        .collect();
    let data = store
        .candidates(user_id, &SeenRead::Pending(user.seen), &ids)
        .await?;
    let known: Vec<(CandidateData, Sources)> = data
        .into_iter()
        .flatten()
        .map(|d| (d, Sources::default()))
        .collect();
    let scored = score_all(profile, &UserAt::new(&user, now), known, now);
    let ranked = by_score(&scored);
    Ok(RankedList {
        page_ttls: page_ttls_of(profile, &scored, &ranked),
        scored: scored.len(),
        items: ranked
            .iter()
            .map(|slot| scored[slot.at].item(profile, Detail::Explained))
            .collect(),
        facts: Vec::new(),
        user_version: UserVersion::default(),
    })
}

/// The page TTLs of the list `ranked` (slots of `scored`, in order).
fn page_ttls_of(profile: &RankingProfile, scored: &[Scored], ranked: &[Slot]) -> PageTtls {
    let default_ttl = profile.cache.ttl_seconds.short;
    PageTtls::of(
        ranked.iter().map(|slot| scored[slot.at].ttl),
        FIRST_PAGE_ITEMS,
        default_ttl,
    )
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::*;
    use crate::model::{ContentType, Video};
    use crate::store::MemoryStore;
    use crate::time::Timestamp;

    fn video(i: usize, content_type: ContentType, age: Duration) -> Video {
        Video {
            id: format!("v{i}").into(),
            creator_id: format!("c{i}").into(),
            published_at: Utc::now() - age,
            duration_ms: 30_000,
            language: String::new(),
            region: String::new(),
            tags: Vec::new(),
            content_type,
            embedding: None,
        }
    }

    /// 150 short videos from the last hours and one live stream `live_age` old.
    async fn ttl_with_live(live_age: Duration) -> (usize, u32, PageTtls) {
        let store = MemoryStore::new();
        let mut videos: Vec<Video> = (0..150)
            .map(|i| video(i, ContentType::Short, Duration::minutes(i as i64)))
            .collect();
        videos.push(video(150, ContentType::Live, live_age));
        store.put_videos(&videos).await.expect("put");
        let mut profile = RankingProfile::default();
        profile.candidates.fresh = 500;
        let ranked = rank_feed(
            &store,
            &profile,
            "u1",
            Timestamp::from(Utc::now()).secs_f64(),
            200,
            Detail::Plain,
        )
        .await
        .expect("rank");
        let live_at = ranked
            .items
            .iter()
            .position(|i| &*i.video_id == "v150")
            .expect("live stream ranked");
        let largest_page = ranked
            .page_ttls
            .for_items(FIRST_PAGE_ITEMS)
            .expect("page TTLs");
        (live_at, largest_page, ranked.page_ttls)
    }

    #[tokio::test]
    async fn first_page_ttl_comes_from_the_items_a_first_page_can_show() {
        let ttl = RankingProfile::default().cache.ttl_seconds;
        // An old live stream ranks last, below the largest page: the page keeps the short TTL.
        let (at, secs, pages) = ttl_with_live(Duration::days(10)).await;
        assert!(at >= FIRST_PAGE_ITEMS, "live stream at {at}");
        assert_eq!(secs, ttl.short);
        assert_eq!(pages.for_items(FIRST_PAGE_ITEMS), Some(ttl.short));
        // A live stream on air ranks near the top: the page lives as long as live content may;
        // smaller pages above it keep the short TTL.
        let (at, secs, pages) = ttl_with_live(Duration::minutes(1)).await;
        assert!(at < FIRST_PAGE_ITEMS, "live stream at {at}");
        assert_eq!(secs, ttl.live);
        assert_eq!(pages.for_items(at + 1), Some(ttl.live));
        if at > 0 {
            assert_eq!(pages.for_items(at), Some(ttl.short));
        }
    }

    #[tokio::test]
    async fn candidates_rank_by_score_then_by_id_whatever_order_they_come_in() {
        let store = MemoryStore::new();
        let hour = Duration::hours(1);
        // v1…v4 alike but for their ids (equal scores); v9 is fresher, so scores higher.
        let mut videos: Vec<Video> = [4, 2, 1, 3]
            .map(|i| video(i, ContentType::Short, hour))
            .to_vec();
        let published = videos[0].published_at;
        videos.iter_mut().for_each(|v| {
            v.creator_id = "c-same".into();
            // One instant for all (each `video` reads the clock anew).
            v.published_at = published;
        });
        videos.push(video(9, ContentType::Short, Duration::minutes(1)));
        store.put_videos(&videos).await.expect("put");
        let now = Timestamp::from(Utc::now()).secs_f64();
        let asked: Vec<String> = ["v3", "v9", "v1", "v4", "v2"].map(String::from).to_vec();
        let ranked = rank_candidates(&store, &RankingProfile::default(), "u1", &asked, now)
            .await
            .expect("rank");
        let order: Vec<&str> = ranked.items.iter().map(|i| &*i.video_id).collect();
        assert_eq!(order, ["v9", "v1", "v2", "v3", "v4"]);
        let scores: Vec<f64> = ranked.items.iter().map(|i| i.score).collect();
        assert!(scores[0] > scores[1], "{scores:?}");
        assert!(scores[1..].iter().all(|s| *s == scores[1]), "{scores:?}");
    }

    #[tokio::test]
    async fn an_explained_feed_tells_each_items_rank_by_score_and_how_far_diversity_moved_it() {
        let store = MemoryStore::new();
        // Three creators with four videos each: the creator cap moves some items down.
        let videos: Vec<Video> = (0..12)
            .map(|i| {
                let mut v = video(i, ContentType::Short, Duration::minutes(i as i64));
                v.creator_id = format!("c{}", i / 4).into();
                v
            })
            .collect();
        store.put_videos(&videos).await.expect("put");
        let mut profile = RankingProfile::default();
        profile.diversity.creator_cap = 1;
        profile.diversity.window = 3;
        let now = Timestamp::from(Utc::now()).secs_f64();
        let ranked = rank_feed(&store, &profile, "u1", now, 12, Detail::Explained)
            .await
            .expect("rank");
        assert_eq!(ranked.items.len(), 12);
        let effects: Vec<DiversityEffect> = ranked
            .items
            .iter()
            .map(|i| {
                i.explain
                    .as_ref()
                    .and_then(|e| e.diversity)
                    .expect("explained")
            })
            .collect();
        let mut by_rank: Vec<(u32, f64)> = effects
            .iter()
            .zip(&ranked.items)
            .map(|(e, i)| (e.score_rank, i.score))
            .collect();
        by_rank.sort_by_key(|(rank, _)| *rank);
        let ranks: Vec<u32> = by_rank.iter().map(|(rank, _)| *rank).collect();
        assert_eq!(ranks, (0..12).collect::<Vec<u32>>(), "each rank once");
        assert!(
            by_rank.windows(2).all(|w| w[0].1 >= w[1].1),
            "ranks follow the scores: {by_rank:?}"
        );
        for (position, e) in effects.iter().enumerate() {
            assert_eq!(
                i64::from(e.score_rank) - position as i64,
                i64::from(e.moved)
            );
        }
        assert!(effects.iter().any(|e| e.moved != 0), "the cap moved some");
        assert!(effects.iter().any(|e| e.capped), "and said so");
    }

    /// The string rule the filters implement: both name a value and they differ.
    fn differs(mine: &str, theirs: &str) -> bool {
        !mine.is_empty() && !theirs.is_empty() && mine != theirs
    }

    #[test]
    fn filters_drop_what_the_string_rule_drops() {
        // "pipeline-test-unheard" is no catalog entry's value: never interned by any test.
        let values = [
            "",
            "pipeline-test-en",
            "pipeline-test-fr",
            "pipeline-test-unheard",
        ];
        let catalog = &values[..3];
        for (my_language, my_region) in values.iter().flat_map(|l| values.map(|r| (*l, r))) {
            for (its_language, its_region) in catalog
                .iter()
                .flat_map(|l| catalog.iter().map(move |r| (*l, *r)))
            {
                for (match_language, match_region, exclude_seen, seen) in [
                    (true, false, false, false),
                    (false, true, false, false),
                    (true, true, true, true),
                    (true, true, true, false),
                    (false, false, true, true),
                    (false, false, false, true),
                ] {
                    let mut v = video(0, ContentType::Short, Duration::zero());
                    v.language = its_language.to_owned();
                    v.region = its_region.to_owned();
                    let candidate = CandidateData {
                        video: Arc::new(CatalogEntry::new(v)),
                        stats: Default::default(),
                        bucket: Default::default(),
                        seen,
                    };
                    let mut user = UserState::default();
                    user.profile.language = my_language.to_owned();
                    user.profile.region = my_region.to_owned();
                    let mut profile = RankingProfile::default();
                    profile.filters.match_language = match_language;
                    profile.filters.match_region = match_region;
                    profile.filters.exclude_seen = exclude_seen;
                    let dropped = (exclude_seen && seen)
                        || (match_language && differs(my_language, its_language))
                        || (match_region && differs(my_region, its_region));
                    assert_eq!(
                        Filters::resolve(&profile, &user).keep(&candidate),
                        !dropped,
                        "user {my_language:?}/{my_region:?}, video {its_language:?}/\
                         {its_region:?}, language {match_language}, region {match_region}, \
                         exclude seen {exclude_seen}, seen {seen}"
                    );
                }
            }
        }
        assert_eq!(
            vocabulary::known("pipeline-test-unheard"),
            None,
            "only looked up"
        );
    }
}
