//! Serving feeds: cache lookup, ranking on a miss, paging over snapshots. Used by the HTTP
//! handlers and the start-up warm-up.

use std::time::Duration;

use chrono::Utc;
use rand::Rng;

use std::sync::Arc;

use crate::cache::Snapshot;
use crate::ranking;
use crate::state::AppState;
use crate::store::StoreError;

/// Unix time now, in seconds.
pub fn now_secs() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

/// The user's first-page snapshot for a page of `items` items: from the cache while such a page
/// is fresh, or ranked now and cached.
pub async fn head(
    state: &AppState,
    user_id: &str,
    items: usize,
) -> Result<Arc<Snapshot>, StoreError> {
    let loaded = state.profiles.current();
    let variant = loaded.experiment.assign(user_id);
    if let Some(snapshot) = state
        .cache
        .head(user_id, &variant.name, loaded.generation, items)
        .await?
    {
        return Ok(snapshot);
    }
    let ranked = ranking::rank_feed(
        state.store.as_ref(),
        &variant.profile,
        user_id,
        now_secs(),
        state.settings.feed_depth,
    )
    .await?;
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
        generation: loaded.generation,
        items: ranked.items,
        ranked_at_ms: Utc::now().timestamp_millis(),
        page_ttls: ranked.page_ttls,
        first_page: Default::default(),
    };
    state
        .cache
        .put(snapshot, Duration::from_secs(u64::from(ttl)))
        .await
}

/// Ranks and caches the first pages of the most recently active users; returns how many.
pub async fn warm_up(state: &AppState, users: usize) -> Result<usize, StoreError> {
    let active = state.store.active_users(users).await?;
    for user in &active {
        head(state, user, crate::http::feed::DEFAULT_LIMIT).await?;
    }
    Ok(active.len())
}
