//! Serving feeds: cache lookup, ranking on a miss, paging over snapshots. Used by the HTTP
//! handlers and the start-up warm-up.

use std::time::Duration;

use rand::Rng;

use std::sync::Arc;

use crate::cache::{HeadWanted, Snapshot, StoreHead};
use crate::ranking::{self, Detail};
use crate::shed::Overloaded;
use crate::state::AppState;
use crate::store::{StoreError, UserState};
use crate::time::Timestamp;

/// Why a feed could not be served.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The feed needed a ranking and the ranking bound refused it (load shedding).
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
}

/// How a ranking is admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    /// Through the ranking bound: refused at once when it is full (client requests).
    Bounded,
    /// Waits for a ranking slot however long (the start-up warm-up, before any traffic).
    Unbounded,
}

/// The user's first-page snapshot for a page of `items` items: from the cache while such a page
/// is fresh, or ranked now and cached. With `explain` only a snapshot that kept its items'
/// signals and explanations will do; without, a newly ranked snapshot is cached without them.
/// A ranking goes through the ranking bound ([`crate::shed`]): when it is full the request fails
/// with [`FeedError::Overloaded`] after one store read (the store tier's lookup); cached pages,
/// in either tier, are served however busy the rankings are. `now` is the request's time (a
/// page is fresh until its TTL from the ranking has passed).
pub async fn head(
    state: &AppState,
    user_id: &str,
    items: usize,
    explain: bool,
    now: Timestamp,
) -> Result<Arc<Snapshot>, FeedError> {
    head_admitted(state, user_id, items, explain, now, Admission::Bounded).await
}

async fn head_admitted(
    state: &AppState,
    user_id: &str,
    items: usize,
    explain: bool,
    now: Timestamp,
    admission: Admission,
) -> Result<Arc<Snapshot>, FeedError> {
    let loaded = state.profiles.current();
    let variant = loaded.experiment.assign(user_id);
    let want = HeadWanted {
        now,
        user: user_id,
        variant: &variant.name,
        generation: loaded.generation,
        items,
        explain,
    };
    if let Some(snapshot) = state.cache.head_local(&want).await? {
        return Ok(snapshot);
    }
    // The store tier before the ranking bound: a page cached there is served however full
    // the queue is (hot users' in-process entries expire together, and their requests must
    // not be refused as if they needed a ranking); a refused request costs this one read.
    // When a ranking may run, the same round trip reads the user's state for it.
    let user = if state.rankings.has_place() {
        match state.cache.head_store_or_state(&want).await? {
            StoreHead::Hit(snapshot) => return Ok(snapshot),
            StoreHead::Miss(user) => Some(user),
        }
    } else if let Some(snapshot) = state.cache.head_store(&want).await? {
        return Ok(snapshot);
    } else {
        None
    };
    // One ranking per user at a time (`crate::single_flight`): a request that missed while the
    // user's page was being ranked takes that page. If there is none it can use (that ranking
    // failed, or ranked a page without this request's explanations) it ranks without the
    // lock, so that such requests rank side by side rather than one after another.
    let flight = state.first_pages.lock(user_id).await;
    let _flight = if flight.waited() {
        if let Some(snapshot) = state.cache.head_ranked_meanwhile(&want).await? {
            return Ok(snapshot);
        }
        drop(flight);
        None
    } else {
        Some(flight)
    };
    let _permit = match admission {
        Admission::Bounded => Some(state.rankings.reserve()?.slot().await?),
        Admission::Unbounded => state.rankings.slot_unbounded().await,
    };
    rank_and_cache(state, user_id, variant, loaded.generation, explain, user).await
}

/// Ranks the user's default first page now and caches it as their head, without looking in the
/// cache first: the predictive warm-up ([`crate::warmup`]) calls it off the request path for a
/// user expected back soon. It goes through the ranking bound like a client request, so it is
/// refused with [`FeedError::Overloaded`] when rankings are busy (clients come first).
pub async fn rank_ahead(state: &AppState, user_id: &str) -> Result<Arc<Snapshot>, FeedError> {
    let loaded = state.profiles.current();
    let variant = loaded.experiment.assign(user_id);
    let _permit = state.rankings.reserve()?.slot().await?;
    rank_and_cache(state, user_id, variant, loaded.generation, false, None).await
}

/// Ranks `user_id`'s feed with `variant`'s profile and caches it as the user's head (a ranking
/// slot is held by the caller); with the user's state when the head lookup read it.
async fn rank_and_cache(
    state: &AppState,
    user_id: &str,
    variant: &feed_profile::Variant,
    generation: u64,
    explain: bool,
    user: Option<Box<UserState>>,
) -> Result<Arc<Snapshot>, FeedError> {
    let now = state.clock.now().secs_f64();
    let (store, profile, depth) = (
        state.store.as_ref(),
        &variant.profile,
        state.settings.feed_depth,
    );
    let detail = if explain {
        Detail::Explained
    } else {
        Detail::Plain
    };
    let ranked = match user {
        Some(user) => {
            ranking::rank_feed_with(store, profile, user_id, &user, now, depth, detail).await?
        }
        None => ranking::rank_feed(store, profile, user_id, now, depth, detail).await?,
    };
    state
        .metrics
        .ranking_candidates
        .observe(ranked.scored as f64);
    // The head lives as long as its longest-lived first page; `fresh_for` judges each size.
    let ttl = ranked
        .page_ttls
        .longest()
        .unwrap_or(variant.profile.cache.ttl_seconds.short)
        .max(1);
    let snapshot = Snapshot {
        id: format!("{:032x}", rand::rng().random::<u128>()),
        user_id: user_id.to_owned(),
        variant: variant.name.clone(),
        generation,
        items: ranked.items,
        explained: explain,
        facts: ranked.facts,
        // A page's TTL runs from the end of its ranking (which may have queued for a slot).
        ranked_at_ms: state.clock.now().millis(),
        page_ttls: ranked.page_ttls,
        user_version: ranked.user_version,
        first_page: Default::default(),
    };
    Ok(state
        .cache
        .put(snapshot, Duration::from_secs(u64::from(ttl)))
        .await?)
}

/// Ranks and caches the first pages of the most recently active users; returns how many.
pub async fn warm_up(state: &AppState, users: usize) -> Result<usize, FeedError> {
    let active = state.store.active_users(users).await?;
    for user in &active {
        head_admitted(
            state,
            user,
            crate::model::DEFAULT_LIMIT,
            false,
            state.clock.now(),
            Admission::Unbounded,
        )
        .await?;
    }
    Ok(active.len())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::DEFAULT_LIMIT;
    use crate::time::{Clock, ManualClock};

    #[tokio::test]
    async fn a_first_page_is_served_from_the_cache_until_its_ttl_by_the_injected_clock()
    -> Result<(), Box<dyn std::error::Error>> {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
        let state = AppState::for_tests()?.with_clock(clock.clone());

        let first = head(&state, "u1", DEFAULT_LIMIT, false, clock.now()).await?;
        assert_eq!(first.ranked_at_ms, 1_700_000_000_000);
        let ttl = first
            .page_ttls
            .for_items(DEFAULT_LIMIT)
            .ok_or("no page TTL")?;
        clock.advance(Duration::from_secs(u64::from(ttl)) - Duration::from_millis(1));
        assert_eq!(
            head(&state, "u1", DEFAULT_LIMIT, false, clock.now())
                .await?
                .id,
            first.id
        );
        clock.advance(Duration::from_millis(1));
        let next = head(&state, "u1", DEFAULT_LIMIT, false, clock.now()).await?;
        assert_ne!(next.id, first.id, "a page past its TTL is ranked anew");
        assert_eq!(next.ranked_at_ms, clock.now().millis());
        Ok(())
    }
}
