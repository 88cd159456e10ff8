//! `POST /v1/admin/tune`: fits a ranking profile on the exposure log ([`crate::exposure`]) and
//! answers it with its held-out quality beside the current profile's. It never changes the
//! serving profile: roll the answer out with a FeedRollout (docs/platform-guide.md).
//!
//! Bounded: at most `--tune-max-events` of the log's newest events are read; the replay and fit
//! run on a blocking thread (`spawn_blocking`), never on the async workers that serve feeds; and
//! one log analysis (a tune or a replay) runs at a time (409 `tune_in_progress` otherwise). The handler checks the request
//! before taking the slot, so a bad request is refused at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::extract::ApiJson;
use crate::exposure::replay::Window;
use crate::exposure::tune::{
    FitChoice, HeldOut, Objective, ObjectiveWeights, TuneCounts, TuneError, TuneInput, tune,
};
use crate::model::Video;
use crate::state::SharedState;
use crate::time::Timestamp;

/// The body of `POST /v1/admin/tune`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TuneRequest {
    /// First instant of the window (RFC 3339), by the events' own `ts`.
    pub since: DateTime<Utc>,
    /// First instant after the window (RFC 3339); must be after `since`.
    pub until: DateTime<Utc>,
    /// What the profile should predict.
    pub objective: Objective,
}

/// How much of the log a tune read.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct LogRead {
    /// Events read (the newest of the log).
    pub events: usize,
    /// The `--tune-max-events` bound: when `events` reached it, older events of the window were
    /// not read.
    pub max_events: usize,
}

/// The answer of `POST /v1/admin/tune`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TuneResponse {
    /// The tuned profile, a document `--profile` reads as it is (JSON is YAML): the profile in
    /// force with the fitted weights, lift and prior strengths, named `tuned`.
    #[schema(value_type = Object)]
    pub profile: serde_json::Value,
    /// The objective, as weights.
    pub objective: ObjectiveWeights,
    /// Exposures found and how they were split.
    pub exposures: TuneCounts,
    /// Held-out GAUC(finish) and NDCG@10 of the tuned and the current profile.
    pub held_out: HeldOut,
    /// Prior strengths and lift chosen on the training slice.
    pub fit: FitChoice,
    /// How much of the log was read.
    pub log: LogRead,
}

impl From<TuneError> for ApiError {
    fn from(e: TuneError) -> Self {
        let code = match &e {
            TuneError::InvalidWindow { .. } => ErrorCode::InvalidWindow,
            TuneError::InvalidObjective(_) => ErrorCode::InvalidObjective,
            TuneError::TooFewExposures { .. } => ErrorCode::TooFewExposures,
            TuneError::NoOutcome { .. } => ErrorCode::NoOutcome,
            TuneError::NoFit(_) => ErrorCode::NoFit,
        };
        ApiError::new(code, e.to_string())
    }
}

/// Unix seconds of an instant.
fn secs(t: DateTime<Utc>) -> f64 {
    Timestamp::from(t).secs_f64()
}

/// The window `[since, until)` of a request, or [`TuneError::InvalidWindow`] when `since` is not
/// before `until`.
pub(super) fn window_of(since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Window, TuneError> {
    let window = Window {
        since: secs(since),
        until: secs(until),
    };
    if window.since >= window.until {
        return Err(TuneError::InvalidWindow {
            since: since.to_rfc3339(),
            until: until.to_rfc3339(),
        });
    }
    Ok(window)
}

/// What a log analysis reads: the log's events before the window's end (at most
/// `--tune-max-events` of the newest) and the catalog entries of their videos.
pub(super) struct WindowLog {
    /// The events before `window.until`.
    pub events: Vec<crate::exposure::LoggedEvent>,
    /// The catalog entries of their videos.
    pub catalog: HashMap<String, Arc<Video>>,
    /// How much of the log was read.
    pub read: LogRead,
}

/// Reads the log and the catalog for a log analysis of `window` (tune or replay).
async fn read_window(state: &SharedState, window: Window) -> Result<WindowLog, ApiError> {
    let max_events = state.settings.tune_max_events;
    let mut events = state.store.read_log(max_events).await?;
    let read = LogRead {
        events: events.len(),
        max_events,
    };
    events.retain(|e| e.ts < window.until);
    let ids: Vec<String> = events
        .iter()
        .map(|e| e.video_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let catalog: HashMap<String, Arc<Video>> = state
        .store
        .get_videos(&ids)
        .await?
        .into_iter()
        .flatten()
        .map(|v| (String::from(&*v.id), Arc::new(v)))
        .collect();
    Ok(WindowLog {
        events,
        catalog,
        read,
    })
}

/// Runs one log analysis of `window` (a tune or a replay): takes the one analysis slot (`busy`,
/// 409, while another tune or replay holds it), reads the window's log and catalog, and runs
/// `analyse` on a blocking thread, which keeps the slot until it ends. Answers its result and
/// how much of the log was read.
pub(super) async fn analyse_log<T, E>(
    state: &SharedState,
    window: Window,
    busy: ErrorCode,
    analyse: impl FnOnce(&WindowLog) -> Result<T, E> + Send + 'static,
) -> Result<(T, LogRead), ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let permit = state.tunes.try_acquire().ok_or_else(|| {
        ApiError::new(
            busy,
            "a tune or a replay is running (one log analysis at a time); retry when it is done",
        )
    })?;
    let log = read_window(state, window).await?;
    let report = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        analyse(&log).map(|report| (report, log.read))
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::Internal, format!("the log analysis failed: {e}")))?;
    report.map_err(Into::into)
}

/// `POST /v1/admin/tune`
#[utoipa::path(
    post,
    path = "/v1/admin/tune",
    tag = "admin",
    request_body = TuneRequest,
    responses(
        (status = 200, description = "A tuned profile (not applied) with held-out figures beside the current profile's", body = TuneResponse),
        (status = 400, description = "`invalid_json`, `invalid_window` (`since` not before `until`) or `invalid_objective`", body = ErrorBody),
        (status = 409, description = "`tune_in_progress`: another tune or a replay is running (one log analysis at a time); retry when it is done", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = ErrorBody),
        (status = 422, description = "`too_few_exposures` (the message says how many the window holds and needs), `no_outcome` or `no_fit`", body = ErrorBody),
        (status = 500, description = "`internal` or `store_corrupt`", body = ErrorBody),
        (status = 503, description = "`store_unavailable` or `timeout`: retry later", body = ErrorBody),
    )
)]
pub async fn post_tune(
    State(state): State<SharedState>,
    ApiJson(req): ApiJson<TuneRequest>,
) -> Result<Json<TuneResponse>, ApiError> {
    let objective = req.objective.weights()?;
    let window = window_of(req.since, req.until)?;
    let current = state
        .profiles
        .current()
        .experiment
        .variants
        .first()
        .map(|v| v.profile.clone())
        .unwrap_or_default();
    let (report, log) = analyse_log(&state, window, ErrorCode::TuneInProgress, move |log| {
        tune(TuneInput {
            events: &log.events,
            catalog: &log.catalog,
            window,
            objective,
            current: &current,
        })
    })
    .await?;
    let profile = serde_json::to_value(&report.profile).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("the tuned profile could not be written: {e}"),
        )
    })?;
    Ok(Json(TuneResponse {
        profile,
        objective,
        exposures: report.exposures,
        held_out: report.held_out,
        fit: report.fit,
        log,
    }))
}
