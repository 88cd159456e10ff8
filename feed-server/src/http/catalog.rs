//! `PUT /v1/videos` (JSON array or NDJSON) and `DELETE /v1/videos/{id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::error::{ApiError, ErrorCode};
use crate::model::{MAX_VIDEO_BATCH, Video, validate_id};
use crate::state::SharedState;

/// The NDJSON media type.
pub const NDJSON: &str = "application/x-ndjson";

fn parse_videos(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Video>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with(NDJSON) {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request(ErrorCode::InvalidJson, "body is not UTF-8"))?;
        let mut videos = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v = serde_json::from_str(line).map_err(|e| {
                ApiError::bad_request(ErrorCode::InvalidJson, format!("line {}: {e}", i + 1))
            })?;
            videos.push(v);
        }
        Ok(videos)
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidJson, format!("body: {e}")))
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type must be application/json or {NDJSON}"),
        ))
    }
}

/// `PUT /v1/videos`: inserts or replaces videos, all or nothing.
pub async fn put_videos(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body =
        body.map_err(|r| ApiError::new(r.status(), ErrorCode::PayloadTooLarge, r.body_text()))?;
    let videos = parse_videos(&headers, &body)?;
    if videos.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyBatch,
            "no videos in the body",
        ));
    }
    if videos.len() > MAX_VIDEO_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BatchTooLarge,
            format!(
                "at most {MAX_VIDEO_BATCH} videos per request, got {}",
                videos.len()
            ),
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, v) in videos.iter().enumerate() {
        v.validate()
            .map_err(|e| ApiError::bad_request(e.code, format!("videos[{i}]: {}", e.message)))?;
        if !ids.insert(v.id.as_str()) {
            return Err(ApiError::bad_request(
                ErrorCode::DuplicateId,
                format!("videos[{i}]: id {:?} appears more than once", v.id),
            ));
        }
    }
    state.store.put_videos(&videos).await?;
    Ok(Json(json!({ "stored": videos.len() })))
}

/// `DELETE /v1/videos/{id}`: 204, or 404 when unknown.
pub async fn delete_video(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    validate_id("id", &id)?;
    if state.store.delete_video(&id).await? {
        state.cache.clear_local();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            ErrorCode::UnknownVideo,
            format!("video {id:?} is not in the catalog"),
        ))
    }
}
