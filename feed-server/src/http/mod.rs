//! The HTTP API (PRODUCT.md §1): routes ([`routes`]), handlers by resource, and the middleware
//! stack (request metrics, authentication and rate limits, timeout, body-size limit, panic
//! catching, tracing).

pub mod access;
pub mod auth;
pub mod catalog;
pub mod cursor;
pub mod error;
pub mod event_item;
pub mod events;
pub mod extract;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod feed;
pub mod health;
pub mod observe;
pub mod openapi;
pub mod openapi_security;
pub mod replay;
pub mod routes;
pub mod tune;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::Authenticator;
use crate::state::SharedState;
use error::{ApiError, ErrorCode};
use routes::Route;

/// Limits of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// A request taking longer is answered 503 `timeout`.
    pub request_timeout: Duration,
    /// Larger bodies are answered 413.
    pub max_body_bytes: usize,
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

async fn timed_out(_: tower::BoxError) -> ApiError {
    ApiError::new(ErrorCode::Timeout, "the request took too long; retry later")
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(ErrorCode::Internal, "internal error").into_response()
}

/// The application router; `authenticator` admits or refuses every request (`auth`).
pub fn router(state: SharedState, limits: HttpLimits, authenticator: Arc<Authenticator>) -> Router {
    let api = Route::ALL.into_iter().fold(Router::new(), |r, route| {
        let handler = route.handler();
        let handler = if route.takes_body() {
            handler.layer(DefaultBodyLimit::max(limits.max_body_bytes))
        } else {
            handler
        };
        r.route(route.path(), handler)
    });
    #[cfg(feature = "fault-injection")]
    let api = faults::install(api, state.clone(), limits.max_body_bytes);
    api.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(observe::ObserveLayer::new(state.clone()))
                .layer(auth::AuthLayer::new(authenticator))
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(limits.request_timeout),
        )
        .with_state(state)
}
