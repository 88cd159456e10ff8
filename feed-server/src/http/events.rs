//! `POST /v1/events`: reads and validates each event on its own and hands the well-formed ones
//! to the write use case ([`crate::ingest`]). Only a body that is not JSON (`invalid_json`) or
//! not `{"events":[…]}` (`invalid_batch`) fails the request; a bad item is rejected alone
//! ([`super::event_item`]).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::event_item::read_event;
use super::extract::ApiJson;
use crate::ingest;
use crate::model::{EventBatch, EventsResponse, MAX_EVENT_BATCH};
use crate::state::SharedState;

/// The body's shape, `{"events":[…]}` ([`EventBatch`]), with the items left unread: each is
/// read on its own ([`read_event`]), without a `Value` tree of the whole body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Reads the body's shape, leaving the items unread. The body is valid JSON (the extractor
/// checked), so every error here is its shape; a body naming `events` twice is refused too
/// (which of the two was meant?).
fn parse_batch(body: &RawValue) -> Result<RawBatch<'_>, ApiError> {
    serde_json::from_str(body.get()).map_err(|e| {
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
    ApiJson(body): ApiJson<Box<RawValue>>,
) -> Result<Json<EventsResponse>, ApiError> {
    let batch = parse_batch(&body)?;
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
    let mut rejected = Vec::new();
    let mut valid = Vec::with_capacity(n);
    for (index, item) in batch.events.iter().enumerate() {
        // An item that is not even a JSON value fails the body, as it always did.
        let read = read_event(item).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("item {index} of events is not valid JSON: {e}"),
            )
        })?;
        match read {
            Ok(e) => valid.push((index, e)),
            Err(r) => rejected.push(ingest::reject(
                &state.metrics,
                index,
                r.code.code(),
                r.message,
            )),
        }
    }
    let ingested = ingest::ingest(&state, valid).await?;
    rejected.extend(ingested.rejected);
    rejected.sort_by_key(|r| r.index);
    Ok(Json(EventsResponse {
        accepted: ingested.accepted,
        rejected,
    }))
}
