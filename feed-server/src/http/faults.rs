//! Test-only fault injection (cargo feature `fault-injection`, never in release builds): makes
//! this replica misbehave so the end-to-end rollout tests can watch the operator's brain react.
//!
//! `POST /debug/faults {"error_rate": 0.1, "added_latency_ms": 600, "ranking_latency_ms": 0,
//! "crash": false}` sets the faults (every field optional, missing = off); `GET /debug/faults`
//! reads them. Errors and latency apply to `/v1/*` only, so health checks and scrapes keep
//! working; `ranking_latency_ms` slows rankings only, inside their ranking slot (cached pages
//! stay fast: the load-shedding tests); `crash` exits the process with status 70 right after
//! answering. Initial values come from `FEED_FAULT_ERROR_RATE`
//! and `FEED_FAULT_LATENCY_MS`. `FEED_FAULT_EXIT_AT_START=1` makes the process exit with
//! [`EXIT_AT_START_CODE`] before it listens ([`exit_at_start`]): a crash-looping canary for the
//! local cluster's kubelet (localkube) and the e2e scenarios.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorCode};
use super::extract::ApiJson;
use crate::state::SharedState;

/// The faults in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of `/v1/*` requests answered 500 `injected_fault` (0..=1).
    pub error_rate: f64,
    /// Added to every `/v1/*` request.
    pub added_latency_ms: u64,
    /// Added to every ranking while it holds its ranking slot ([`crate::shed`]): makes rankings
    /// slow without slowing cached pages (load-shedding tests).
    pub ranking_latency_ms: u64,
    /// Exit the process after answering.
    pub crash: bool,
}

type Shared = Arc<RwLock<Faults>>;

/// Environment variable that makes the process exit at start (`1` or `true`).
pub const EXIT_AT_START_ENV: &str = "FEED_FAULT_EXIT_AT_START";

/// The exit status of a process told to exit at start (the status `crash` exits with too).
pub const EXIT_AT_START_CODE: i32 = 70;

/// Whether the environment asks the process to exit at start ([`EXIT_AT_START_ENV`] is `1` or
/// `true`; anything else, or unset, is no).
pub fn exit_at_start() -> bool {
    std::env::var(EXIT_AT_START_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true"))
}

fn from_env() -> Faults {
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    Faults {
        error_rate: num("FEED_FAULT_ERROR_RATE").unwrap_or(0.0).clamp(0.0, 1.0),
        added_latency_ms: num("FEED_FAULT_LATENCY_MS").unwrap_or(0.0).max(0.0) as u64,
        ranking_latency_ms: 0,
        crash: false,
    }
}

async fn misbehave(State(faults): State<Shared>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let f = *faults.read();
    if f.added_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.added_latency_ms)).await;
    }
    if f.error_rate > 0.0 && rand::rng().random_bool(f.error_rate) {
        return ApiError::new(ErrorCode::InjectedFault, "fault injected for testing")
            .into_response();
    }
    next.run(req).await
}

/// Adds `/debug/faults` (its `POST` under the body limit of the other routes that read a body,
/// `max_body_bytes`) and the misbehaving middleware to the API routes.
pub fn install(
    api: Router<SharedState>,
    state: SharedState,
    max_body_bytes: usize,
) -> Router<SharedState> {
    let faults: Shared = Arc::new(RwLock::new(from_env()));
    let read = faults.clone();
    let write = faults.clone();
    api.route(
        "/debug/faults",
        get(move || {
            let f = *read.read();
            async move { Json(f) }
        })
        .post(move |ApiJson(new): ApiJson<Faults>| {
            let shared = write.clone();
            let state = state.clone();
            async move {
                if !(0.0..=1.0).contains(&new.error_rate) {
                    return Err(ApiError::new(
                        ErrorCode::InvalidFaults,
                        "error_rate must be between 0 and 1",
                    ));
                }
                *shared.write() = new;
                state.rankings.set_added_latency_ms(new.ranking_latency_ms);
                tracing::warn!(?new, "fault injection changed");
                if new.crash {
                    tokio::spawn(async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        tracing::error!("crashing on request (fault injection)");
                        std::process::exit(EXIT_AT_START_CODE);
                    });
                }
                Ok(Json(new))
            }
        })
        .layer(DefaultBodyLimit::max(max_body_bytes)),
    )
    .layer(middleware::from_fn_with_state(faults, misbehave))
}
