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
pub mod openapi;
pub mod openapi_security;
pub mod replay;
pub mod routes;
pub mod tune;
pub mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::auth::Authenticator;
use crate::state::SharedState;
use error::{ApiError, ErrorCode};
use routes::{Route, TrafficClass};

/// Limits of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// A request taking longer is answered 503 `timeout`.
    pub request_timeout: Duration,
    /// Larger bodies are answered 413.
    pub max_body_bytes: usize,
}

/// Records every request: API routes in the request metrics the rollout checks judge, refusals
/// of authentication and rate limits in their own counter (see [`auth::refusal_reason`]),
/// probes, scrapes and unmatched paths in the operational counter only (see [`routes`]).
async fn record_metrics(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    // Cheap clones (shared string, standard method): nothing is allocated per request here.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let (class, route) = routes::classify(matched.as_ref().map(MatchedPath::as_str));
    let method = req.method().clone();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    let m = &state.metrics;
    match class {
        TrafficClass::Api if let Some(reason) = auth::refusal_reason(&response) => {
            let key = response.extensions().get::<auth::ClientKey>();
            m.http_refused
                .with_label_values(&[route, reason.as_str(), key.map_or("", |k| k.0.as_str())])
                .inc();
        }
        TrafficClass::Api => {
            let variant = response
                .extensions()
                .get::<feed::ServedVariant>()
                .map_or("", |v| v.0.as_str());
            let key = response
                .extensions()
                .get::<auth::ClientKey>()
                .map_or("", |k| k.0.as_str());
            m.http_requests
                .with_label_values(&[route, method.as_str(), status.as_str(), variant, key])
                .inc();
            m.http_duration
                .with_label_values(&[route, method.as_str(), variant, key])
                .observe(start.elapsed().as_secs_f64());
        }
        TrafficClass::Operational => m
            .http_operational
            .with_label_values(&[route, status.as_str()])
            .inc(),
    }
    // Only failures of the store itself, not timeouts or warm-up.
    if let Some(code) = response.extensions().get::<ErrorCode>()
        && let Some(kind) = code.as_str().strip_prefix("store_")
    {
        m.store_errors.with_label_values(&[kind]).inc();
    }
    response
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
        r.route(route.path(), route.handler())
    });
    #[cfg(feature = "fault-injection")]
    let api = faults::install(api, state.clone());
    api.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(auth::request_span)
                        .on_failure(DefaultOnFailure::new().level(Level::WARN)),
                )
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    record_metrics,
                ))
                .layer(middleware::from_fn_with_state(
                    authenticator,
                    auth::authenticate,
                ))
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(limits.request_timeout)
                .layer(DefaultBodyLimit::max(limits.max_body_bytes)),
        )
        .with_state(state)
}
