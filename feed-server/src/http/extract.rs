//! Extractors whose rejections are [`ApiError`]s (JSON bodies, not axum's plain text).

use axum::extract::{FromRequest, FromRequestParts};

use super::error::ApiError;

/// `axum::Json` answering malformed bodies with a JSON error.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query` answering malformed query strings with a JSON error.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
