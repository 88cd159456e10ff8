//! `PUT /v1/users/{id}/follows` and `PUT /v1/users/{id}/profile`.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::openapi::Id;
use crate::model::{Follows, UserProfile};
use crate::state::SharedState;
use crate::write::users;

/// Replaces the user's followed creators and friends; the next feed reflects them.
#[utoipa::path(
    put,
    path = "/v1/users/{id}/follows",
    tag = "users",
    params(("id" = Id, Path, description = "The user")),
    request_body = Follows,
    responses(
        (status = 204, description = "Replaced; the user's next feed reflects it"),
        (status = 400, description = "`invalid_json`, `invalid_id`, `duplicate_id` or `too_many`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over the size limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = ErrorBody),
        (status = 500, description = "`internal` or `store_corrupt`", body = ErrorBody),
        (status = 503, description = "`store_unavailable` or `timeout`: retry later", body = ErrorBody),
    )
)]
pub async fn put_follows(
    State(state): State<SharedState>,
    Path(user): Path<String>,
    ApiJson(follows): ApiJson<Follows>,
) -> Result<StatusCode, ApiError> {
    users::set_follows(&state, &user, &follows).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the user's language and region; the next feed reflects them.
#[utoipa::path(
    put,
    path = "/v1/users/{id}/profile",
    tag = "users",
    params(("id" = Id, Path, description = "The user")),
    request_body = UserProfile,
    responses(
        (status = 204, description = "Replaced; the user's next feed reflects it"),
        (status = 400, description = "`invalid_json`, `invalid_id` or `invalid_profile`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over the size limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = ErrorBody),
        (status = 500, description = "`internal` or `store_corrupt`", body = ErrorBody),
        (status = 503, description = "`store_unavailable` or `timeout`: retry later", body = ErrorBody),
    )
)]
pub async fn put_profile(
    State(state): State<SharedState>,
    Path(user): Path<String>,
    ApiJson(profile): ApiJson<UserProfile>,
) -> Result<StatusCode, ApiError> {
    users::set_profile(&state, &user, &profile).await?;
    Ok(StatusCode::NO_CONTENT)
}
