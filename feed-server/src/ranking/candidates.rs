//! Candidate sources: which lists to read for a user, and how they merge.

use foldhash::{HashMap, HashMapExt};

use feed_profile::RankingProfile;

use super::user::UserAt;
use crate::learning::{TrendingScope, day_of};
use crate::model::{CandidateSource, Sources};
use crate::store::{CandidateLists, CandidateQuery, CandidateRef, SeenOf};
use crate::vocabulary::Term;

/// Most followed creators and friends read per request (strongest affinity first).
pub const MAX_SOCIAL_FANOUT: usize = 50;
/// How many of the user's strongest tags feed the similar-content source.
pub const SIMILAR_TAGS: usize = 5;

/// The source lists to read for the user (decayed at unix time `now`).
pub fn plan(profile: &RankingProfile, user_id: &str, at: &UserAt<'_>, now: f64) -> CandidateQuery {
    let b = &profile.candidates;
    let user = at.user;
    let creator_affinity = |c: &str| at.creators.get(c).copied().unwrap_or(0.0);

    let mut creators: Vec<&String> = user.follows.iter().collect();
    creators.sort_by(|a, b| {
        creator_affinity(b)
            .total_cmp(&creator_affinity(a))
            .then(a.cmp(b))
    });
    creators.truncate(MAX_SOCIAL_FANOUT);

    let mut tags: Vec<(&str, f64)> = at
        .tags
        .iter()
        .map(|(t, v)| (*t, *v))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    tags.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    tags.truncate(SIMILAR_TAGS);

    let today = day_of(now);
    let lang = &user.profile.language;
    let mut languages = vec!["*".to_owned()];
    if !lang.is_empty() {
        languages.insert(0, lang.clone());
    }
    // Trending where the user is, then in their language, then everywhere.
    let mut scopes = Vec::with_capacity(3);
    if !user.profile.region.is_empty() {
        scopes.push(TrendingScope::Region(user.profile.region.clone()));
    }
    if !lang.is_empty() {
        scopes.push(TrendingScope::Language(lang.clone()));
    }
    scopes.push(TrendingScope::All);
    let long_tail = b.long_tail as usize;
    // A per-user offset spreads exploration over the least-exposed videos.
    let offset = (feed_profile::bucket("long-tail", user_id) as usize % 4) * long_tail;

    CandidateQuery {
        creators: creators.into_iter().cloned().collect(),
        per_creator: b.per_followed_creator as usize,
        friends: user
            .friends
            .iter()
            .take(MAX_SOCIAL_FANOUT)
            .cloned()
            .collect(),
        per_friend: b.per_friend as usize,
        trending: scopes
            .into_iter()
            .flat_map(|scope| [(scope.clone(), today), (scope, today - 1)])
            .collect(),
        per_trending: b.trending as usize,
        fresh: languages,
        per_fresh: b.fresh as usize,
        per_tag: if tags.is_empty() {
            0
        } else {
            (b.similar as usize).div_ceil(tags.len())
        },
        tags: tags.into_iter().map(|(t, _)| t.to_owned()).collect(),
        long_tail: (offset, long_tail),
        seen: SeenOf {
            user: user_id.to_owned(),
            count: user.seen,
        },
    }
}

/// Merges the lists into distinct candidates with the sources that nominated them, at most `max`
/// of them. Long-tail candidates are taken first (their budget is small and reserved), then the
/// social sources, similar, trending and fresh, each in its own order. Candidates are told
/// apart by their catalog terms (equal exactly when the ids are), which hash as integers.
pub fn merge(lists: &CandidateLists, max: usize) -> Vec<(CandidateRef<'_>, Sources)> {
    let mut index: HashMap<Term, usize> = HashMap::with_capacity(max);
    let mut out: Vec<(CandidateRef<'_>, Sources)> = Vec::with_capacity(max);
    let ordered = [
        (&lists.long_tail, CandidateSource::LongTail),
        (&lists.followed, CandidateSource::Followed),
        (&lists.friends, CandidateSource::Friend),
        (&lists.similar, CandidateSource::Similar),
        (&lists.trending, CandidateSource::Trending),
        (&lists.fresh, CandidateSource::Fresh),
    ];
    for (list, source) in ordered {
        for (id, term) in list.iter() {
            if let Some(&i) = index.get(&term) {
                out[i].1 = out[i].1.with(source);
            } else if out.len() < max {
                index.insert(term, out.len());
                let candidate = CandidateRef {
                    id,
                    term: Some(term),
                };
                out.push((candidate, Sources::default().with(source)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::Decayed;
    use crate::store::UserState;

    #[test]
    fn merge_dedups_keeps_flags_and_caps() {
        let lists = CandidateLists {
            followed: vec!["a".to_owned(), "b".to_owned()].into(),
            trending: vec!["b".to_owned(), "c".to_owned(), "d".to_owned()].into(),
            long_tail: vec!["z".to_owned()].into(),
            ..CandidateLists::default()
        };
        let merged = merge(&lists, 4);
        let ids: Vec<&str> = merged.iter().map(|(c, _)| c.id).collect();
        assert_eq!(ids, ["z", "a", "b", "c"]);
        assert_eq!(
            merged[2].1,
            Sources::default()
                .with(CandidateSource::Followed)
                .with(CandidateSource::Trending)
        );
    }

    #[test]
    fn plan_reads_strongest_tags_and_language_lists() {
        let mut user = UserState::default();
        user.profile.language = "en".into();
        user.profile.region = "fr".into();
        user.affinity.tags.insert(
            "cats".into(),
            Decayed {
                value: 5.0,
                at: 0.0,
            },
        );
        user.affinity.tags.insert(
            "cars".into(),
            Decayed {
                value: 1.0,
                at: 0.0,
            },
        );
        user.affinity.tags.insert(
            "spam".into(),
            Decayed {
                value: -1.0,
                at: 0.0,
            },
        );
        let q = plan(
            &RankingProfile::default(),
            "u1",
            &UserAt::new(&user, 0.0),
            0.0,
        );
        assert_eq!(q.tags, ["cats", "cars"]);
        assert_eq!(q.fresh, ["en", "*"]);
        let scopes: Vec<&TrendingScope> = q.trending.iter().map(|(s, _)| s).collect();
        assert_eq!(
            scopes,
            [
                &TrendingScope::Region("fr".into()),
                &TrendingScope::Region("fr".into()),
                &TrendingScope::Language("en".into()),
                &TrendingScope::Language("en".into()),
                &TrendingScope::All,
                &TrendingScope::All,
            ],
            "trending in the user's region, then language, then everywhere; today and yesterday"
        );
    }
}
