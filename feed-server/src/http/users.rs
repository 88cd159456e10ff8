//! `PUT /v1/users/{id}/follows` and `PUT /v1/users/{id}/profile`.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::ApiError;
use super::extract::ApiJson;
use crate::model::{Follows, UserProfile, validate_id};
use crate::state::SharedState;

/// Replaces the user's followed creators and friends; the next feed reflects them.
pub async fn put_follows(
    State(state): State<SharedState>,
    Path(user): Path<String>,
    ApiJson(follows): ApiJson<Follows>,
) -> Result<StatusCode, ApiError> {
    validate_id("user id", &user)?;
    follows.validate()?;
    state.store.set_follows(&user, &follows).await?;
    state.cache.invalidate_users([&user]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the user's language and region; the next feed reflects them.
pub async fn put_profile(
    State(state): State<SharedState>,
    Path(user): Path<String>,
    ApiJson(profile): ApiJson<UserProfile>,
) -> Result<StatusCode, ApiError> {
    validate_id("user id", &user)?;
    profile.validate()?;
    state.store.set_profile(&user, &profile).await?;
    state.cache.invalidate_users([&user]).await?;
    Ok(StatusCode::NO_CONTENT)
}
