//! The route vocabulary: every path the router serves and the traffic it carries.
//!
//! The request metrics the rollout checks judge (`feed_http_requests_total`,
//! `feed_http_request_duration_seconds`) count [`TrafficClass::Api`] routes only: kubelet
//! probes, Prometheus scrapes and unmatched paths (scanners, typos) would otherwise dilute a
//! quiet canary's error rate and latency, and the 503s `/readyz` answers during warm-up would
//! count as server errors. They are counted in `feed_http_operational_requests_total` instead.
//!
//! A route exists only as a [`Route`] variant: [`Route::class`] and `Route::handler` match
//! exhaustively, so a route added later cannot be served without being classified. API routes
//! live under `/v1/` (a unit test holds the two together), which is what the operator's presets
//! also filter on (`route=~"/v1/.+"`) for feed-servers older than this split.

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};

use super::{catalog, events, feed, health, openapi, replay, tune, users};
use crate::state::SharedState;

/// The `route` label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// What a route's traffic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficClass {
    /// Client traffic: judged by the rollout's SLO checks.
    Api,
    /// Probes and scrapes: counted apart, never in an SLO query.
    Operational,
}

/// Every route of the HTTP API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/feed`.
    Feed,
    /// `POST /v1/rank`.
    Rank,
    /// `POST /v1/events`.
    Events,
    /// `PUT /v1/videos`.
    Videos,
    /// `DELETE /v1/videos/{id}`.
    Video,
    /// `PUT /v1/users/{id}/follows`.
    Follows,
    /// `PUT /v1/users/{id}/profile`.
    Profile,
    /// `POST /v1/admin/tune`: fit a ranking profile on the exposure log.
    Tune,
    /// `POST /v1/admin/replay`: rank the logged exposures of a window with two profiles.
    Replay,
    /// `GET /healthz`: liveness probe.
    Healthz,
    /// `GET /readyz`: readiness probe (503 during warm-up).
    Readyz,
    /// `GET /metrics`: Prometheus scrape.
    Metrics,
    /// `GET /openapi.json`: the API contract (tooling, not client traffic).
    OpenApi,
}

impl Route {
    /// Every route, in the order the router registers them.
    pub const ALL: [Route; 13] = [
        Route::Feed,
        Route::Rank,
        Route::Events,
        Route::Videos,
        Route::Video,
        Route::Follows,
        Route::Profile,
        Route::Tune,
        Route::Replay,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::OpenApi,
    ];

    /// The path pattern, as the router matches it (and as the `route` metric label shows it).
    pub const fn path(self) -> &'static str {
        match self {
            Route::Feed => "/v1/feed",
            Route::Rank => "/v1/rank",
            Route::Events => "/v1/events",
            Route::Videos => "/v1/videos",
            Route::Video => "/v1/videos/{id}",
            Route::Follows => "/v1/users/{id}/follows",
            Route::Profile => "/v1/users/{id}/profile",
            Route::Tune => "/v1/admin/tune",
            Route::Replay => "/v1/admin/replay",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
        }
    }

    /// Whether the route's requests count as API traffic.
    pub const fn class(self) -> TrafficClass {
        match self {
            Route::Feed
            | Route::Rank
            | Route::Events
            | Route::Videos
            | Route::Video
            | Route::Follows
            | Route::Profile
            | Route::Tune
            | Route::Replay => TrafficClass::Api,
            Route::Healthz | Route::Readyz | Route::Metrics | Route::OpenApi => {
                TrafficClass::Operational
            }
        }
    }

    /// The route of a matched path pattern; `None` for a pattern outside the vocabulary (the
    /// test-only `/debug/faults`).
    pub fn from_path(pattern: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.path() == pattern)
    }

    /// The handlers of the route.
    pub(super) fn handler(self) -> MethodRouter<SharedState> {
        match self {
            Route::Feed => get(feed::get_feed),
            Route::Rank => post(feed::rank),
            Route::Events => post(events::post_events),
            Route::Videos => put(catalog::put_videos),
            Route::Video => delete(catalog::delete_video),
            Route::Follows => put(users::put_follows),
            Route::Profile => put(users::put_profile),
            Route::Tune => post(tune::post_tune),
            Route::Replay => post(replay::post_replay),
            Route::Healthz => get(health::healthz),
            Route::Readyz => get(health::readyz),
            Route::Metrics => get(health::metrics),
            Route::OpenApi => get(openapi::openapi_json),
        }
    }

    /// Whether the route's requests carry a body (`PUT`, `POST`): only those routes read one,
    /// so only they carry the body limit (`--max-body-bytes`); the others skip the extension
    /// the limit inserts into every request it wraps. By method: a route whose handler reads a
    /// body under another method must be added here, or it reads up to axum's default 2 MB
    /// (`oversized_bodies_are_refused` sends an oversized body to every route listed here).
    pub fn takes_body(self) -> bool {
        matches!(self.method(), Method::POST | Method::PUT)
    }

    /// The one HTTP method the route serves.
    pub const fn method(self) -> Method {
        match self {
            Route::Feed | Route::Healthz | Route::Readyz | Route::Metrics | Route::OpenApi => {
                Method::GET
            }
            Route::Rank | Route::Events | Route::Tune | Route::Replay => Method::POST,
            Route::Videos | Route::Follows | Route::Profile => Method::PUT,
            Route::Video => Method::DELETE,
        }
    }
}

/// The class and `route` label of a request from the path pattern the router matched: API for
/// API routes; operational for probes, scrapes, patterns outside the vocabulary and requests
/// no route matched (labelled [`UNMATCHED`]).
pub fn classify(matched: Option<&str>) -> (TrafficClass, &str) {
    match matched {
        Some(pattern) => (
            Route::from_path(pattern).map_or(TrafficClass::Operational, Route::class),
            pattern,
        ),
        None => (TrafficClass::Operational, UNMATCHED),
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::*;

    #[test]
    fn api_routes_are_exactly_the_v1_routes() {
        // The operator's presets select `route=~"/v1/.+"`: the classes must agree with it.
        for r in Route::ALL {
            let under_v1 = r.path().starts_with("/v1/") && r.path().len() > 4;
            assert_eq!(r.class() == TrafficClass::Api, under_v1, "{r:?}");
        }
    }

    #[test]
    fn every_route_is_found_by_its_path_and_paths_are_unique() {
        for r in Route::ALL {
            assert_eq!(Route::from_path(r.path()), Some(r));
        }
        let mut paths: Vec<&str> = Route::ALL.iter().map(|r| r.path()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), Route::ALL.len());
    }

    #[test]
    fn every_route_is_in_the_openapi_document_with_its_method() {
        let doc = openapi::ApiDoc::openapi();
        for r in Route::ALL {
            let item = doc
                .paths
                .paths
                .get(r.path())
                .unwrap_or_else(|| panic!("{r:?}: {} missing from /openapi.json", r.path()));
            let m = r.method();
            let op = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
            ]
            .into_iter()
            .find_map(|(method, op)| (method == m).then_some(op))
            .unwrap_or_else(|| panic!("{r:?}: unexpected method {m}"));
            assert!(
                op.is_some(),
                "{r:?}: no {} operation in the document",
                r.method()
            );
        }
        assert_eq!(
            doc.paths.paths.len(),
            Route::ALL.len(),
            "a path outside the vocabulary"
        );
    }

    #[test]
    fn classify_sorts_api_probes_scrapes_and_strays() {
        assert_eq!(classify(Some("/v1/feed")), (TrafficClass::Api, "/v1/feed"));
        assert_eq!(
            classify(Some("/v1/users/{id}/follows")),
            (TrafficClass::Api, "/v1/users/{id}/follows")
        );
        for probe in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert_eq!(classify(Some(probe)), (TrafficClass::Operational, probe));
        }
        assert_eq!(
            classify(Some("/debug/faults")),
            (TrafficClass::Operational, "/debug/faults")
        );
        assert_eq!(classify(None), (TrafficClass::Operational, UNMATCHED));
    }
}
