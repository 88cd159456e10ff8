//! `POST /v1/admin/replay`: ranks the logged exposures of a window with two ranking profiles
//! (stable and canary) and answers each one's GAUC(finish), NDCG@10(watch) and like-AUC with
//! paired bootstrap intervals of the differences ([`crate::exposure::replay_gate`]). The
//! operator's replay gate (`strategy.replayGate`) asks a stable pod for it before an in-app
//! rollout's first step. It never changes the serving profile.
//!
//! Bounded like a tune: at most `--tune-max-events` of the log's newest events are read, the work
//! runs on a blocking thread, and one log analysis (a tune or a replay) runs at a time — the two
//! share one slot (409 `replay_in_progress` otherwise). The request is checked before the slot is
//! taken, so a bad request is refused at once.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::extract::ApiJson;
use super::tune::{LogRead, analyse_log, window_of};
use crate::exposure::quality::Quality;
use crate::exposure::replay_gate::{
    Bootstrap, Differences, ProfileSide, ReplayError, ReplayInput, compare, load_profile,
};
use crate::state::SharedState;

/// The body of `POST /v1/admin/replay`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// First instant of the window (RFC 3339), by the events' own `ts`.
    pub since: DateTime<Utc>,
    /// First instant after the window (RFC 3339); must be after `since`.
    pub until: DateTime<Utc>,
    /// The profile serving now: a ranking profile as a `--profile` file holds it (not an
    /// experiment), validated the same way.
    #[schema(value_type = Object)]
    pub stable: serde_json::Value,
    /// The candidate profile, same format.
    #[schema(value_type = Object)]
    pub canary: serde_json::Value,
}

/// The answer of `POST /v1/admin/replay`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReplayResponse {
    /// Exposures in the window.
    pub exposures: usize,
    /// User-day lists they make.
    pub lists: usize,
    /// Distinct users (the bootstrap's unit).
    pub users: usize,
    /// The stable profile's figures.
    pub stable: Quality,
    /// The canary profile's figures.
    pub canary: Quality,
    /// Canary − stable of GAUC(finish), NDCG@10(watch) and like-AUC, with intervals.
    pub differences: Differences,
    /// Resamples, seed and confidence of the intervals.
    pub bootstrap: Bootstrap,
    /// How much of the log was read.
    pub log: LogRead,
}

impl From<ReplayError> for ApiError {
    fn from(e: ReplayError) -> Self {
        let code = match &e {
            ReplayError::InvalidProfile { .. } => ErrorCode::InvalidRankingProfile,
            ReplayError::TooFewExposures { .. } => ErrorCode::TooFewExposures,
        };
        ApiError::new(code, e.to_string())
    }
}

/// `POST /v1/admin/replay`
#[utoipa::path(
    post,
    path = "/v1/admin/replay",
    tag = "admin",
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "Both profiles' figures on the window's exposures and paired bootstrap intervals of canary − stable", body = ReplayResponse),
        (status = 400, description = "`invalid_json`, `invalid_window` (`since` not before `until`) or `invalid_ranking_profile` (the message names the side and the field)", body = ErrorBody),
        (status = 409, description = "`replay_in_progress`: a replay or a tune is running; retry when it is done", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = ErrorBody),
        (status = 422, description = "`too_few_exposures` (the message says how many the window holds and needs)", body = ErrorBody),
        (status = 500, description = "`internal` or `store_corrupt`", body = ErrorBody),
        (status = 503, description = "`store_unavailable` or `timeout`: retry later", body = ErrorBody),
    )
)]
pub async fn post_replay(
    State(state): State<SharedState>,
    ApiJson(req): ApiJson<ReplayRequest>,
) -> Result<Json<ReplayResponse>, ApiError> {
    // `invalid_window`, as a tune answers it.
    let window = window_of(req.since, req.until)?;
    let stable = load_profile(ProfileSide::Stable, &req.stable)?;
    let canary = load_profile(ProfileSide::Canary, &req.canary)?;
    let (report, log) = analyse_log(&state, window, ErrorCode::ReplayInProgress, move |log| {
        compare(ReplayInput {
            events: &log.events,
            catalog: &log.catalog,
            window,
            stable: &stable,
            canary: &canary,
        })
    })
    .await?;
    Ok(Json(ReplayResponse {
        exposures: report.exposures,
        lists: report.lists,
        users: report.users,
        stable: report.stable,
        canary: report.canary,
        differences: report.differences,
        bootstrap: report.bootstrap,
        log,
    }))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn a_replay_is_refused_while_a_tune_or_replay_holds_the_slot() {
        let config = Config::try_parse_from(["feed-server"]).expect("defaults parse");
        let app = crate::server::build(&config).await.expect("embedded store");
        let state = app.state.clone();
        let request = || ReplayRequest {
            since: DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default(),
            until: Utc::now(),
            stable: json!({}),
            canary: json!({}),
        };
        let held = state.tunes.try_acquire();
        assert!(held.is_some());
        let busy = post_replay(State(state.clone()), ApiJson(request())).await;
        let e = busy.expect_err("refused while the slot is held");
        assert_eq!(e.code, ErrorCode::ReplayInProgress);
        assert_eq!(e.code.http_status(), 409);
        // Free again: the empty log is judged (and the slot is released afterwards).
        drop(held);
        let empty = post_replay(State(state.clone()), ApiJson(request())).await;
        assert_eq!(
            empty.err().map(|e| e.code),
            Some(ErrorCode::TooFewExposures)
        );
        assert!(state.tunes.try_acquire().is_some());
    }
}
