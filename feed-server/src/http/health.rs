//! `/healthz`, `/readyz`, `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::error::{ApiError, ErrorCode};
use crate::state::SharedState;

/// Alive: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: warm-up done and the store answers within the readiness timeout.
pub async fn readyz(State(state): State<SharedState>) -> Result<Json<Value>, ApiError> {
    if !state.is_warm() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::WarmingUp,
            "cache warm-up has not finished",
        ));
    }
    match tokio::time::timeout(state.settings.ready_timeout, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(
            json!({ "status": "ready", "store": state.store.kind() }),
        )),
        Ok(Err(e)) => Err(ApiError::from(e)),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::StoreUnavailable,
            "the store did not answer in time",
        )),
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
