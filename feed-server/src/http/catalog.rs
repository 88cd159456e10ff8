//! `PUT /v1/videos` (JSON array or NDJSON) and `DELETE /v1/videos/{id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::openapi::{Id, VideoBatch};
use crate::model::{Video, VideosStored};
use crate::state::SharedState;
use crate::write::catalog;

/// The NDJSON media type.
pub const NDJSON: &str = "application/x-ndjson";

fn parse_videos(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Video>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with(NDJSON) {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::new(ErrorCode::InvalidJson, "body is not UTF-8"))?;
        let mut videos = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v = serde_json::from_str(line).map_err(|e| {
                ApiError::new(ErrorCode::InvalidJson, format!("line {}: {e}", i + 1))
            })?;
            videos.push(v);
        }
        Ok(videos)
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("body: {e}")))
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type must be application/json or {NDJSON}"),
        ))
    }
}

/// `PUT /v1/videos`: inserts or replaces videos, all or nothing.
#[utoipa::path(
    put,
    path = "/v1/videos",
    tag = "catalog",
    request_body(
        description = "A JSON array of videos, or NDJSON (`application/x-ndjson`): one video per line",
        content(
            (VideoBatch = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "Every video was stored", body = VideosStored),
        (status = 400, description = "`invalid_json`, `empty_batch`, `duplicate_id` or a video check (`invalid_id`, `invalid_duration`, `invalid_tags`, `invalid_embedding`); nothing stored", body = ErrorBody),
        (status = 413, description = "`batch_too_large` or `payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither JSON nor NDJSON", body = ErrorBody),
        (status = 500, description = "`internal` or `store_corrupt`", body = ErrorBody),
        (status = 503, description = "`store_unavailable` or `timeout`: retry later", body = ErrorBody),
    )
)]
pub async fn put_videos(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<VideosStored>, ApiError> {
    let body = body.map_err(|r| {
        // A body over the limit, or one that could not be read at all.
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::InvalidJson
        };
        ApiError::new(code, r.body_text())
    })?;
    let videos = parse_videos(&headers, &body)?;
    let stored = catalog::put_videos(&state, &videos).await?;
    Ok(Json(VideosStored { stored }))
}

/// `DELETE /v1/videos/{id}`: 204, or 404 when unknown.
#[utoipa::path(
    delete,
    path = "/v1/videos/{id}",
    tag = "catalog",
    params(("id" = Id, Path, description = "The video to remove")),
    responses(
        (status = 204, description = "The video was removed"),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`unknown_video`: not in the catalog", body = ErrorBody),
        (status = 500, description = "`internal` or `store_corrupt`", body = ErrorBody),
        (status = 503, description = "`store_unavailable` or `timeout`: retry later", body = ErrorBody),
    )
)]
pub async fn delete_video(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if catalog::delete_video(&state, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorCode::UnknownVideo,
            format!("video {id:?} is not in the catalog"),
        ))
    }
}
