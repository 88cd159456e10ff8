//! The reads of a ranking's shared state (`Store::candidate_lists`, `Store::candidates`): what
//! the replica keeps in process — kept source lists ([`super::CatalogLists`],
//! [`super::SharedCache`], [`super::RecentLists`]), the catalog cache ([`super::catalog_cache`])
//! and the kept counters ([`super::VideoCounters`]) — and the rest read from Redis in one
//! pipelined round trip each, counted by origin in `feed_ranking_state_reads_total`
//! ([`super::StateReads`]).

use std::sync::Arc;
use std::time::Instant;

use redis::Value;

use super::catalog_cache::video_of;
use super::{RedisStore, corrupt, parse};
use crate::learning::VideoStats;
use crate::store::list_reads::{self, Keep, Order, Source};
use crate::store::redis_counter_feed::durations_of;
use crate::store::seen_check::{SeenCheck, seen_set};
use crate::store::state_reads::{RankingState, ReadFrom, Tally};
use crate::store::{
    CandidateData, CandidateLists, CandidateQuery, CandidateRef, ListedIds, SeenRead, SharedList,
    SourceList, StoreError,
};
use crate::vocabulary::{Term, known};

/// Counters from an `HMGET` of [`VideoStats::FIELDS`] (missing fields count as 0).
pub(in crate::store) fn stats_of(reply: Value) -> Result<VideoStats, StoreError> {
    let Value::Array(values) = reply else {
        return Err(corrupt("HMGET reply is not an array"));
    };
    let mut out = [0.0; VideoStats::FIELDS.len()];
    for (slot, v) in out.iter_mut().zip(values) {
        *slot = match v {
            Value::Nil => 0.0,
            v => parse::<f64>(v)?,
        };
    }
    Ok(VideoStats::from_pairs(
        VideoStats::FIELDS.iter().copied().zip(out),
    ))
}

impl RedisStore {
    /// `Store::candidate_lists`: kept lists from the replica's caches, the rest (and a small seen
    /// set) in one round trip; what was read is kept as its source allows.
    pub(super) async fn read_lists(
        &self,
        q: &CandidateQuery,
    ) -> Result<CandidateLists, StoreError> {
        let reads = list_reads::reads_of(q);
        // Kept lists come from the caches; the rest in one round trip.
        let cache_keys = list_reads::cache_keys(&reads);
        let kept_by = |keep: Keep| -> Vec<usize> {
            (0..reads.len())
                .filter(|&i| reads[i].source.keep() == keep && cache_keys[i].is_some())
                .collect()
        };
        let (shared, catalog) = (
            kept_by(Keep::SharedCacheBound),
            kept_by(Keep::WhileCatalogHolds),
        );
        let now = Instant::now();
        let cached = self
            .lists
            .lookup(shared.iter().filter_map(|&i| cache_keys[i]));
        let (ticket, kept) = self
            .catalog_lists
            .lookup(catalog.iter().filter_map(|&i| cache_keys[i]), now);
        let users: Vec<usize> = (0..reads.len())
            .filter(|&i| reads[i].user_list().is_some() && !reads[i].is_empty())
            .collect();
        let user_lists: Vec<(&str, isize)> =
            users.iter().filter_map(|&i| reads[i].user_list()).collect();
        let (recent_ticket, recent) = self.recent.lookup(&user_lists);
        let mut lists: Vec<Option<SharedList>> = vec![None; reads.len()];
        for (&i, list) in shared
            .iter()
            .chain(&catalog)
            .chain(&users)
            .zip(cached.into_iter().chain(kept).chain(recent))
        {
            lists[i] = list;
        }
        for (list, r) in lists.iter_mut().zip(&reads) {
            if r.is_empty() {
                *list = Some(SharedList::default());
            }
        }
        // Trending and the long tail from the aggregates folded in process, when they are: kept
        // in the shared cache as a read from Redis would be.
        let mut from_state = Vec::new();
        if let Some(followed) = &self.followed {
            let f = followed.read();
            for (i, r) in reads.iter().enumerate() {
                if lists[i].is_some() {
                    continue;
                }
                let (Ok(start), Ok(stop)) = (usize::try_from(r.start), usize::try_from(r.stop))
                else {
                    continue;
                };
                let range = |ids: &mut dyn Iterator<Item = &str>| -> Vec<String> {
                    ids.skip(start)
                        .take(stop + 1 - start)
                        .map(str::to_owned)
                        .collect()
                };
                let ids = match r.source {
                    Source::Trending(scope, day) => range(&mut f.aggregates().trending(scope, day)),
                    Source::LongTail => range(&mut f.aggregates().long_tail()),
                    _ => continue,
                };
                from_state.push((i, ids));
            }
        }
        let mut read_state = Vec::new();
        for (i, ids) in from_state {
            let ids = Arc::new(ListedIds::new(ids));
            read_state.extend(cache_keys[i].map(|key| (key, ids.clone())));
            lists[i] = Some(ids);
        }
        self.lists.insert(read_state);
        let mut pipe = redis::pipe();
        let missing: Vec<usize> = (0..reads.len()).filter(|i| lists[*i].is_none()).collect();
        let mut tally = Tally::default();
        for (r, list) in reads.iter().zip(&lists) {
            if !r.is_empty() {
                let from = if list.is_some() {
                    ReadFrom::Memory
                } else {
                    ReadFrom::Redis
                };
                tally.add(r.source.keep().state(), from, 1);
            }
        }
        for &i in &missing {
            let r = &reads[i];
            let key = r.redis_key(&self.keys);
            match r.source.order() {
                Order::Newest => pipe.zrevrange(key, r.start, r.stop),
                Order::Oldest => pipe.zrange(key, r.start, r.stop),
                Order::List => pipe.lrange(key, r.start, r.stop),
            };
        }
        // A small seen set comes along, so the candidate read need not ask for it.
        let read_seen = SeenCheck::with_lists(q);
        if read_seen {
            pipe.zrange(self.keys.seen(&q.seen.user), 0, -1);
        }
        let mut seen = SeenRead::Pending(q.seen.count);
        if !missing.is_empty() || read_seen {
            let mut replies = self.run(&pipe).await?;
            if replies.len() != missing.len() + usize::from(read_seen) {
                return Err(corrupt("short pipeline reply"));
            }
            if read_seen {
                let set = replies
                    .pop()
                    .ok_or_else(|| corrupt("short pipeline reply"))?;
                seen = SeenRead::Whole(seen_set(set)?);
            }
            let (mut read_shared, mut read_catalog, mut read_recent) =
                (Vec::new(), Vec::new(), Vec::new());
            for (&i, reply) in missing.iter().zip(replies) {
                let ids = Arc::new(ListedIds::new(parse::<Vec<String>>(reply)?));
                let kept = cache_keys[i].map(|key| (key, ids.clone()));
                match (reads[i].source.keep(), kept, reads[i].user_list()) {
                    (Keep::WhileCatalogHolds, Some(kept), _) => read_catalog.push(kept),
                    (Keep::SharedCacheBound, Some(kept), _) => read_shared.push(kept),
                    (Keep::UntilUserWrites, _, Some((user, stop))) => {
                        read_recent.push((user, stop, ids.clone()));
                    }
                    _ => {}
                }
                lists[i] = Some(ids);
            }
            self.lists.insert(read_shared);
            self.catalog_lists
                .keep(ticket, read_catalog, Instant::now());
            self.recent.keep(recent_ticket, read_recent);
        }
        // Counted once the reads succeeded: a failed call read nothing.
        self.state_reads.record(&tally);
        let mut lists = lists.into_iter().map(Option::unwrap_or_default);
        let mut take = |count: usize| -> SourceList { lists.by_ref().take(count).collect() };
        Ok(CandidateLists {
            followed: take(q.creators.len()),
            friends: take(q.friends.len()),
            trending: take(q.trending.len()),
            fresh: take(q.fresh.len()),
            similar: take(q.tags.len()),
            long_tail: take(usize::from(q.long_tail.1 > 0)),
            seen,
        })
    }

    /// `Store::candidates`: catalog entries and counters from the catalog cache and the kept
    /// counters, the rest, the seen check and the catalog version (unless the counter change
    /// feed's last poll has it) in one round trip.
    pub(super) async fn read_candidates(
        &self,
        user: &str,
        seen: &SeenRead,
        candidates: &[CandidateRef<'_>],
    ) -> Result<Vec<Option<CandidateData>>, StoreError> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = candidates.iter().map(|c| c.id).collect();
        // A set read with the lists is checked in process: nothing to read for it here.
        let seen_check = match seen {
            SeenRead::Pending(count) => SeenCheck::of(*count, ids.len()),
            SeenRead::Whole(_) => SeenCheck::Nothing,
        };
        // The catalog cache and the counters (kept or folded) are keyed by the ids' terms: a
        // merged list's candidates carry theirs, the others are looked up (an id without one
        // has no cached entry, kept counters or folded counters: catalog entries, source lists
        // and folded counters add terms; its kept counters are then kept under the term of the
        // catalog entry read with it, if there is one).
        let terms: Vec<Option<Term>> = candidates
            .iter()
            .map(|c| c.term.or_else(|| known(c.id)))
            .collect();
        let (cached_at, mut videos) = self.catalog.read().lookup(terms.iter().copied());
        // Counters and duration totals folded in process, when they are; otherwise the kept
        // counters and the duration totals as of the counter feed's last poll, while it is
        // followed (the rest read here). The catalog version likewise.
        let (ticket, mut stats, kept_durations) = match &self.followed {
            Some(followed) => {
                let f = followed.read();
                // By term: every video with counters has one (an id without one has none).
                let stats = terms
                    .iter()
                    .map(|t| {
                        Some(
                            t.map_or_else(VideoStats::default, |t| f.aggregates().stats_of_term(t)),
                        )
                    })
                    .collect();
                (None, stats, Some(*f.aggregates().durations()))
            }
            None => {
                let (ticket, stats) = self.counters.lookup(terms.iter().copied());
                (Some(ticket), stats, self.counters.durations())
            }
        };
        let kept_version = self.catalog_lists.version(Instant::now());
        let mut pipe = redis::pipe();
        if kept_version.is_none() {
            pipe.get(self.keys.catalog_version());
        }
        if kept_durations.is_none() {
            pipe.hgetall(self.keys.durations());
        }
        let unknown: Vec<usize> = (0..ids.len()).filter(|i| stats[*i].is_none()).collect();
        for &i in &unknown {
            pipe.cmd("HMGET")
                .arg(self.keys.video_stats(ids[i]))
                .arg(&VideoStats::FIELDS[..]);
        }
        match seen_check {
            SeenCheck::Nothing => {}
            SeenCheck::Whole => {
                pipe.zrange(self.keys.seen(user), 0, -1);
            }
            SeenCheck::EachCandidate => {
                pipe.cmd("ZMSCORE").arg(self.keys.seen(user)).arg(&ids);
            }
        }
        let missing: Vec<usize> = (0..ids.len()).filter(|i| videos[*i].is_none()).collect();
        for &i in &missing {
            pipe.get(self.keys.video(ids[i]));
        }
        // Nothing to read (every entry and counter held in process; a user who has seen nothing,
        // or whose seen set came with the lists): no round trip.
        let replies = if pipe.cmd_iter().next().is_some() {
            self.run(&pipe).await?
        } else {
            Vec::new()
        };
        let mut replies = replies.into_iter();
        let mut next = || {
            replies
                .next()
                .ok_or_else(|| corrupt("short pipeline reply"))
        };
        let version = match kept_version {
            Some(v) => v,
            None => parse::<Option<i64>>(next()?)?.unwrap_or(0),
        };
        let durations = match kept_durations {
            Some(d) => d,
            None => durations_of(next()?)?,
        };
        for &i in &unknown {
            stats[i] = Some(stats_of(next()?)?);
        }
        let seen = match seen {
            SeenRead::Whole(set) => set.flags(&ids),
            SeenRead::Pending(_) => seen_check.flags(&ids, &mut next)?,
        };
        for &i in &missing {
            videos[i] = video_of(next()?)?;
        }
        if let Some(ticket) = ticket {
            self.counters.keep(
                ticket,
                unknown.iter().filter_map(|&i| {
                    let term = terms[i].or_else(|| videos[i].as_ref().map(|v| v.keys().id));
                    term.zip(stats[i])
                }),
            );
        }
        let read_again = self
            .settle_catalog_read(&ids, cached_at, version, &mut videos, &missing)
            .await?;
        // Counted once the reads succeeded; entries read again after a catalog write came from
        // Redis too.
        let mut tally = Tally::default();
        tally.split(
            RankingState::CatalogEntry,
            ids.len(),
            missing.len() + read_again,
        );
        tally.split(RankingState::VideoCounters, ids.len(), unknown.len());
        self.state_reads.record(&tally);
        Ok(videos
            .into_iter()
            .zip(stats)
            .zip(seen)
            .map(|((video, stats), seen)| {
                video.map(|video| CandidateData {
                    bucket: durations[video.keys().bucket()],
                    video,
                    stats: stats.unwrap_or_default(),
                    seen,
                })
            })
            .collect())
    }
}
