//! `GET /v1/feed` and `POST /v1/rank`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::UserLimit;
use super::cursor;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::extract::{ApiJson, ApiQuery};
use super::openapi::Id;
use crate::cache::Snapshot;
use crate::feed;
use crate::model::{
    DEFAULT_LIMIT, FeedItem, FeedResponse, MAX_LIMIT, MAX_RANK_CANDIDATES, RankRequest,
    validate_id, validate_unique,
};
use crate::ranking;
use crate::state::SharedState;
use crate::time::Timestamp;

/// Variant that served a response, for the request metrics.
#[derive(Clone, Debug)]
pub struct ServedVariant(pub String);

/// Query of `GET /v1/feed`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The user whose feed this is.
    #[param(value_type = Id)]
    user_id: String,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page; absent for the first page.
    cursor: Option<String>,
    /// Include per-signal values (`signals`) and their contributions, candidate sources and
    /// diversity moves (`explain`) in each item. A first page with `explain` is ranked anew
    /// unless the cached list kept its explanations; a cursor page has them only when its first
    /// page asked for them.
    #[serde(default)]
    explain: bool,
}

fn page(items: &[FeedItem], offset: usize, limit: usize, explain: bool) -> Vec<FeedItem> {
    items
        .iter()
        .skip(offset)
        .take(limit)
        .map(|i| FeedItem {
            video_id: i.video_id.clone(),
            creator_id: i.creator_id.clone(),
            score: i.score,
            signals: if explain { i.signals.clone() } else { None },
            explain: if explain { i.explain.clone() } else { None },
        })
        .collect()
}

/// The page of `snapshot` starting at `offset`, with a cursor to the next one if any.
fn snapshot_page(snapshot: &Snapshot, offset: usize, limit: usize, explain: bool) -> FeedResponse {
    let items = page(&snapshot.items, offset, limit, explain);
    let end = offset + items.len();
    let next_cursor = (end < snapshot.items.len()).then(|| cursor::encode(&snapshot.id, end));
    FeedResponse {
        user_id: snapshot.user_id.clone(),
        variant: snapshot.variant.clone(),
        items,
        next_cursor,
    }
}

fn respond(body: FeedResponse) -> Response {
    let variant = ServedVariant(body.variant.clone());
    (Extension(variant), axum::Json(body)).into_response()
}

/// Counts the page `[offset, offset + limit)` of `snapshot`, served at `now`, in the
/// content-health metrics.
fn count_served(
    state: &SharedState,
    snapshot: &Snapshot,
    offset: usize,
    limit: usize,
    now: Timestamp,
) {
    // A snapshot cached by a version without facts is not counted: its page would skew the ratios.
    if let Some(facts) = snapshot.served_facts() {
        state
            .metrics
            .served
            .page(&snapshot.variant, facts, offset, limit, now.millis());
    }
}

/// The default first page of `snapshot` (offset 0, [`DEFAULT_LIMIT`] items, no signals), encoded
/// once per snapshot: a cached first page costs no item copies and no JSON encoding.
fn first_page(snapshot: &Snapshot) -> Result<Response, ApiError> {
    let body = match snapshot.first_page.get() {
        Some(body) => body.clone(),
        None => {
            let response = snapshot_page(snapshot, 0, DEFAULT_LIMIT, false);
            let body = Bytes::from(serde_json::to_vec(&response).map_err(|e| {
                ApiError::new(ErrorCode::Internal, format!("cannot encode the feed: {e}"))
            })?);
            // A concurrent request may have set it first; both encodings are identical.
            let _ = snapshot.first_page.set(body.clone());
            body
        }
    };
    Ok((
        Extension(ServedVariant(snapshot.variant.clone())),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// `GET /v1/feed?user_id=&limit=&cursor=&explain=`
#[utoipa::path(
    get,
    path = "/v1/feed",
    tag = "feed",
    params(FeedQuery),
    responses(
        (status = 200, description = "A page of the user's ranked feed", body = FeedResponse),
        (status = 400, description = "`invalid_query`, `invalid_id`, `invalid_limit` or `invalid_cursor`", body = ErrorBody),
        (status = 410, description = "`cursor_expired`: request the first page again", body = ErrorBody),
        (status = 500, description = "`internal` or `store_corrupt`", body = ErrorBody),
        (status = 503, description = "`overloaded` (too many rankings in progress; a cached page is still served), `store_unavailable` or `timeout`: retry later, after `Retry-After` seconds for `overloaded`", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying (with `overloaded`)"))),
    )
)]
pub async fn get_feed(
    State(state): State<SharedState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> Result<Response, ApiError> {
    validate_id("user_id", &q.user_id)?;
    let now = state.clock.now();
    let limit = match q.limit {
        None => DEFAULT_LIMIT,
        Some(l) if (1..=MAX_LIMIT as i64).contains(&l) => l as usize,
        Some(l) => {
            return Err(ApiError::new(
                ErrorCode::InvalidLimit,
                format!("limit must be between 1 and {MAX_LIMIT}, got {l}"),
            ));
        }
    };
    let (snapshot, offset) = match &q.cursor {
        Some(c) => {
            let (id, offset) = cursor::decode(c).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidCursor,
                    "cursor was not issued by this service",
                )
            })?;
            let snapshot = state.cache.snapshot(&id, now).await?.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::CursorExpired,
                    "the ranked list behind this cursor has expired; request the first page again",
                )
            })?;
            if snapshot.user_id != q.user_id {
                return Err(ApiError::new(
                    ErrorCode::InvalidCursor,
                    "cursor belongs to another user",
                ));
            }
            (snapshot, offset)
        }
        None => {
            let snapshot = feed::head(&state, &q.user_id, limit, q.explain, now).await?;
            state
                .warmup
                .served(&q.user_id, &snapshot, limit, now.millis());
            if limit == DEFAULT_LIMIT && !q.explain {
                let response = first_page(&snapshot)?;
                count_served(&state, &snapshot, 0, limit, now);
                return Ok(response);
            }
            (snapshot, 0)
        }
    };
    // Cursor snapshots were checked to be this user's, heads are looked up by user.
    let response = respond(snapshot_page(&snapshot, offset, limit, q.explain));
    count_served(&state, &snapshot, offset, limit, now);
    Ok(response)
}

/// `POST /v1/rank`: ranks the given candidates (no filters, no diversity), best first.
#[utoipa::path(
    post,
    path = "/v1/rank",
    tag = "feed",
    request_body = RankRequest,
    responses(
        (status = 200, description = "The known candidates, best first (no cursor)", body = FeedResponse),
        (status = 400, description = "`invalid_json`, `invalid_id`, `empty_candidates` or `duplicate_id`", body = ErrorBody),
        (status = 413, description = "`too_many_candidates` or `payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = ErrorBody),
        (status = 500, description = "`internal` or `store_corrupt`", body = ErrorBody),
        (status = 503, description = "`overloaded` (too many rankings in progress), `store_unavailable` or `timeout`: retry later, after `Retry-After` seconds for `overloaded`", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying (with `overloaded`)"))),
    )
)]
pub async fn rank(
    State(state): State<SharedState>,
    user_limit: Option<Extension<UserLimit>>,
    ApiJson(req): ApiJson<RankRequest>,
) -> Result<Response, ApiError> {
    validate_id("user_id", &req.user_id)?;
    // The per-user limit, charged as soon as the user is known (a valid id only), before any work.
    if let Some(Extension(limit)) = &user_limit
        && let Err(refused) = limit.charge(&req.user_id).await
    {
        return Ok(refused);
    }
    if req.video_ids.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyCandidates,
            "video_ids must not be empty",
        ));
    }
    if req.video_ids.len() > MAX_RANK_CANDIDATES {
        return Err(ApiError::new(
            ErrorCode::TooManyCandidates,
            format!(
                "at most {MAX_RANK_CANDIDATES} video_ids, got {}",
                req.video_ids.len()
            ),
        ));
    }
    validate_unique("video_ids", req.video_ids.iter().map(String::as_str))?;
    let loaded = state.profiles.current();
    let variant = loaded.experiment.assign(&req.user_id);
    let at = req
        .at
        .map_or_else(|| state.clock.now(), Timestamp::from)
        .secs_f64();
    // Every rank request ranks: it takes a queue place and a slot like an uncached feed.
    let _permit = state.rankings.reserve()?.slot().await?;
    let ranked = ranking::rank_candidates(
        state.store.as_ref(),
        &variant.profile,
        &req.user_id,
        &req.video_ids,
        at,
    )
    .await?;
    let items = page(&ranked.items, 0, ranked.items.len(), req.explain);
    Ok(respond(FeedResponse {
        user_id: req.user_id,
        variant: variant.name.clone(),
        items,
        next_cursor: None,
    }))
}
