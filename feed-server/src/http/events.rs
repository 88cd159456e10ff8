//! `POST /v1/events`: reads and validates each event on its own, applies the accepted ones
//! together. Only a body that is not JSON (`invalid_json`) or not `{"events":[…]}`
//! (`invalid_batch`) fails the request; a bad item is rejected alone ([`super::event_item`]).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde_json::Value;

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::event_item::{RejectCode, Rejection, parse_event};
use super::extract::ApiJson;
use crate::learning::Deltas;
use crate::model::{EventBatch, EventsResponse, MAX_EVENT_BATCH, RejectedEvent, Video};
use crate::state::SharedState;

/// Events may be stamped at most this far in the future (clock skew).
const MAX_FUTURE_SKEW_SECS: f64 = 300.0;

/// Reads the body's shape, `{"events":[…]}`, leaving the items unread.
fn parse_batch(body: Value) -> Result<EventBatch, ApiError> {
    serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidBatch,
            format!("the body must be {{\"events\":[…]}}: {e}"),
        )
    })
}

/// `POST /v1/events`
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body = EventBatch,
    responses(
        (status = 200, description = "How many events were stored; the others with a per-item code", body = EventsResponse),
        (status = 400, description = "`invalid_json`, `invalid_batch` (not `{\"events\":[…]}`) or `empty_batch`", body = ErrorBody),
        (status = 413, description = "`batch_too_large` or `payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = ErrorBody),
        (status = 500, description = "`internal` or `store_corrupt`", body = ErrorBody),
        (status = 503, description = "`store_unavailable` or `timeout`: retry later", body = ErrorBody),
    )
)]
pub async fn post_events(
    State(state): State<SharedState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<EventsResponse>, ApiError> {
    let batch = parse_batch(body)?;
    let n = batch.events.len();
    if n == 0 {
        return Err(ApiError::new(
            ErrorCode::EmptyBatch,
            "events must not be empty",
        ));
    }
    if n > MAX_EVENT_BATCH {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("at most {MAX_EVENT_BATCH} events per batch, got {n}"),
        ));
    }
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    let mut rejected = Vec::new();
    let mut reject = |index: usize, r: Rejection| {
        state
            .metrics
            .events_rejected
            .with_label_values(&[r.code.as_str()])
            .inc();
        rejected.push(RejectedEvent {
            index,
            code: r.code.code(),
            message: r.message,
        });
    };

    let mut valid = Vec::with_capacity(n);
    for (index, item) in batch.events.iter().enumerate() {
        let e = match parse_event(item) {
            Ok(e) => e,
            Err(r) => {
                reject(index, r);
                continue;
            }
        };
        let ts = e.ts.map_or(now, |t| t.timestamp_millis() as f64 / 1000.0);
        if ts > now + MAX_FUTURE_SKEW_SECS {
            reject(
                index,
                Rejection::new(
                    RejectCode::InvalidTs,
                    format!("ts is more than {MAX_FUTURE_SKEW_SECS} s in the future"),
                ),
            );
        } else {
            valid.push((index, e, ts));
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
                Rejection::new(
                    RejectCode::UnknownVideo,
                    format!("video {:?} is not in the catalog", e.video_id),
                ),
            );
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
