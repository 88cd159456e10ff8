//! `POST /v1/events`: validates each event, applies the accepted ones together.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;

use super::error::ApiError;
use super::extract::ApiJson;
use crate::learning::Deltas;
use crate::model::{EventBatch, EventsResponse, MAX_EVENT_BATCH, RejectedEvent, Video};
use crate::state::SharedState;

/// Events may be stamped at most this far in the future (clock skew).
const MAX_FUTURE_SKEW_SECS: f64 = 300.0;

/// `POST /v1/events`
pub async fn post_events(
    State(state): State<SharedState>,
    ApiJson(batch): ApiJson<EventBatch>,
) -> Result<Json<EventsResponse>, ApiError> {
    let n = batch.events.len();
    if n == 0 {
        return Err(ApiError::bad_request(
            "empty_batch",
            "events must not be empty",
        ));
    }
    if n > MAX_EVENT_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("at most {MAX_EVENT_BATCH} events per batch, got {n}"),
        ));
    }
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    let mut rejected = Vec::new();
    let mut reject = |index: usize, code: &str, message: String| {
        state
            .metrics
            .events_rejected
            .with_label_values(&[code])
            .inc();
        rejected.push(RejectedEvent {
            index,
            code: code.to_owned(),
            message,
        });
    };

    let mut valid = Vec::with_capacity(n);
    for (index, e) in batch.events.iter().enumerate() {
        let ts = e.ts.map_or(now, |t| t.timestamp_millis() as f64 / 1000.0);
        match e.validate() {
            Err(inv) => reject(index, inv.code, inv.message),
            Ok(()) if ts > now + MAX_FUTURE_SKEW_SECS => {
                reject(
                    index,
                    "invalid_ts",
                    format!("ts is more than {MAX_FUTURE_SKEW_SECS} s in the future"),
                );
            }
            Ok(()) => valid.push((index, e, ts)),
        }
    }

    let mut ids: Vec<String> = valid.iter().map(|(_, e, _)| e.video_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let videos: HashMap<String, Video> = state
        .store
        .get_videos(&ids)
        .await?
        .into_iter()
        .flatten()
        .map(|v| (v.id.clone(), v))
        .collect();

    let loaded = state.profiles.current();
    let mut deltas = Deltas::default();
    let mut counted = Vec::new();
    for (index, e, ts) in valid {
        let Some(video) = videos.get(&e.video_id) else {
            reject(
                index,
                "unknown_video",
                format!("video {:?} is not in the catalog", e.video_id),
            );
            continue;
        };
        deltas.add(e, video, ts);
        let variant = e
            .variant
            .as_deref()
            .and_then(|v| loaded.experiment.variant(v))
            .unwrap_or_else(|| loaded.experiment.assign(&e.user_id));
        counted.push((e.kind, variant.name.clone()));
    }
    rejected.sort_by_key(|r| r.index);

    if !counted.is_empty() {
        state.store.apply(&deltas).await?;
        state.cache.invalidate_users(deltas.touched_users()).await?;
    }
    for (kind, variant) in &counted {
        state.metrics.event(*kind, variant);
    }
    Ok(Json(EventsResponse {
        accepted: counted.len(),
        rejected,
    }))
}
