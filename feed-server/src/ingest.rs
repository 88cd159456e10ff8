//! The write use case behind `POST /v1/events`: well-formed events in, accepted or rejected
//! one by one. An event is rejected alone when it is stamped too far in the future or names a
//! video the catalog does not hold; the others are turned into [`Deltas`] and handed to the
//! store in one write ([`Store::apply`]): once that returns they are durable and the sending
//! users' own next feeds reflect them (their cached pages are dropped here). On Redis the shared
//! aggregates follow within the apply lag (`store::redis_events`); a store error fails the whole
//! batch with nothing accepted, so a client may retry it.
//!
//! [`Store::apply`]: crate::store::Store::apply

use crate::learning::Deltas;
use crate::metrics::Metrics;
use crate::model::{ErrorCode, Event, RejectedEvent};
use crate::state::AppState;
use crate::store::StoreError;

/// Events may be stamped at most this far in the future (clock skew).
pub const MAX_FUTURE_SKEW_SECS: f64 = 300.0;

/// The outcome of a batch's well-formed events.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Events accepted (and counted in `feed_events_total`).
    pub accepted: usize,
    /// Events refused, with their position in the batch (not sorted).
    pub rejected: Vec<RejectedEvent>,
}

/// A rejected event, counted in `feed_events_rejected_total{code}`.
pub fn reject(
    metrics: &Metrics,
    index: usize,
    code: ErrorCode,
    message: impl Into<String>,
) -> RejectedEvent {
    metrics
        .events_rejected
        .with_label_values(&[code.as_str()])
        .inc();
    RejectedEvent {
        index,
        code,
        message: message.into(),
    }
}

/// Accepts `events` (each with its index in the batch) as described in the module docs.
pub async fn ingest(state: &AppState, events: Vec<(usize, Event)>) -> Result<Ingested, StoreError> {
    let now = state.clock.now().secs_f64();
    let mut out = Ingested::default();
    let mut timely = Vec::with_capacity(events.len());
    for (index, e) in events {
        let ts = e.ts.map_or(now, |t| t.timestamp_millis() as f64 / 1000.0);
        if ts > now + MAX_FUTURE_SKEW_SECS {
            out.rejected.push(reject(
                &state.metrics,
                index,
                ErrorCode::InvalidTs,
                format!("ts is more than {MAX_FUTURE_SKEW_SECS} s in the future"),
            ));
        } else {
            timely.push((index, e, ts));
        }
    }

    let mut ids: Vec<String> = timely.iter().map(|(_, e, _)| e.video_id.clone()).collect();
    ids.sort();
    ids.dedup();
    // In the order of `ids` (sorted): found by binary search.
    let videos = state.store.event_videos(&ids).await?;

    let loaded = state.profiles.current();
    let mut deltas = Deltas::default();
    let mut counted = Vec::with_capacity(timely.len());
    for (index, e, ts) in timely {
        let found = ids.binary_search(&e.video_id).ok();
        let Some(video) = found.and_then(|i| videos.get(i)?.as_deref()) else {
            out.rejected.push(reject(
                &state.metrics,
                index,
                ErrorCode::UnknownVideo,
                format!("video {:?} is not in the catalog", e.video_id),
            ));
            continue;
        };
        deltas.add(&e, video, ts);
        let variant = e
            .variant
            .as_deref()
            .and_then(|v| loaded.experiment.variant(v))
            .unwrap_or_else(|| loaded.experiment.assign(&e.user_id));
        counted.push((e.kind, variant.name.clone()));
    }

    if !counted.is_empty() {
        state.store.apply(&deltas).await?;
        state.cache.invalidate_users(deltas.touched_users());
        state
            .warmup
            .changed(deltas.touched_users(), state.clock.now().millis());
    }
    for (kind, variant) in &counted {
        state.metrics.event(*kind, variant);
    }
    out.accepted = counted.len();
    Ok(out)
}
