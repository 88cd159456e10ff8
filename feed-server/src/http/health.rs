//! `/healthz`, `/readyz`, `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::SharedState;

/// `GET /healthz` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// `GET /readyz` body when ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
    /// The store behind the server (`memory` or `redis`).
    #[schema(value_type = String)]
    pub store: &'static str,
}

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process answers", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready: warm-up done and the store answers within the readiness timeout.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Warmed up and the store answers", body = Ready),
        (status = 500, description = "`store_corrupt`", body = ErrorBody),
        (status = 503, description = "`warming_up` or `store_unavailable`", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<SharedState>) -> Result<Json<Ready>, ApiError> {
    if !state.is_warm() {
        return Err(ApiError::new(
            ErrorCode::WarmingUp,
            "cache warm-up has not finished",
        ));
    }
    match tokio::time::timeout(state.settings.ready_timeout, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(Ready {
            status: "ready",
            store: state.store.kind(),
        })),
        Ok(Err(e)) => Err(ApiError::from(e)),
        Err(_) => Err(ApiError::new(
            ErrorCode::StoreUnavailable,
            "the store did not answer in time",
        )),
    }
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
