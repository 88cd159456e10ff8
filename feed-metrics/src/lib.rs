//! The names of the metrics feed-server exports, defined once.
//!
//! feed-server registers its series under these names, the operator's analysis presets query
//! them (`operator/src/analysis/presets.rs`) and the bench reads them from scrapes: a rename is
//! one edit, and a preset can never query a series the server does not export. The product
//! contract (PRODUCT.md §1) is the [`contract`] module; [`ops`] holds the rest, which dashboards
//! and alerts may use but rollouts do not judge on. Label names and values are documented with
//! each metric in `feed-server/README.md` (Metrics).
//!
//! A histogram is exported as three series; its `_bucket`, `_sum` and `_count` names are
//! constants too (a unit test holds them to the base name).

/// The metrics of the product contract (PRODUCT.md §1): what rollouts are judged on.
pub mod contract {
    /// Counter of API requests (`/v1/` routes) by `route`, `method`, `status`, `variant`, `key`:
    /// error rate and availability.
    pub const HTTP_REQUESTS: &str = "feed_http_requests_total";
    /// Histogram of API request latency (`route`, `method`, `variant`, `key`), 1 ms – 10 s.
    pub const HTTP_REQUEST_DURATION: &str = "feed_http_request_duration_seconds";
    /// The buckets of [`HTTP_REQUEST_DURATION`]: latency quantiles.
    pub const HTTP_REQUEST_DURATION_BUCKET: &str = "feed_http_request_duration_seconds_bucket";
    /// Counter of feed cache lookups by `tier` (local, store) and `result` (hit, miss).
    pub const CACHE_REQUESTS: &str = "feed_cache_requests_total";
    /// Counter of accepted engagement events by `type` and `variant`.
    pub const EVENTS: &str = "feed_events_total";
    /// Gauge, 1 for the ranking profile in force, by `profile`, `variant`, `generation`.
    pub const RANKING_PROFILE_INFO: &str = "feed_ranking_profile_info";
    /// Counter of feed pages served by `GET /v1/feed`, by `variant`.
    pub const SERVED_PAGES: &str = "feed_served_pages_total";
    /// Counter of the items on those pages, by `variant`.
    pub const SERVED_ITEMS: &str = "feed_served_items_total";
    /// Counter of the long-tail items among them, by `variant`.
    pub const SERVED_LONG_TAIL_ITEMS: &str = "feed_served_long_tail_items_total";
    /// Counter summing, over served pages, the distinct creators on the page, by `variant`.
    pub const SERVED_PAGE_CREATORS: &str = "feed_served_page_creators_total";
    /// Histogram of each served item's age when served, by `variant`, 5 min – 30 days.
    pub const SERVED_ITEM_AGE: &str = "feed_served_item_age_seconds";
    /// The sum of [`SERVED_ITEM_AGE`].
    pub const SERVED_ITEM_AGE_SUM: &str = "feed_served_item_age_seconds_sum";
    /// The count of [`SERVED_ITEM_AGE`].
    pub const SERVED_ITEM_AGE_COUNT: &str = "feed_served_item_age_seconds_count";
}

/// Operational metrics: capacity, failures, configuration reloads.
pub mod ops {
    /// Counter of probes, scrapes and unmatched requests by `route` and `status` (not API traffic).
    pub const HTTP_OPERATIONAL_REQUESTS: &str = "feed_http_operational_requests_total";
    /// Counter of API requests refused with 401/403/429 before any work, by `route`, `reason`, `key`.
    pub const HTTP_REFUSED: &str = "feed_http_refused_total";
    /// Counter of rejected engagement events by `code`.
    pub const EVENTS_REJECTED: &str = "feed_events_rejected_total";
    /// Counter of rejected ranking-profile file changes.
    pub const RANKING_PROFILE_RELOAD_ERRORS: &str = "feed_ranking_profile_reload_errors_total";
    /// Counter of requests failed by the store, by `kind`.
    pub const STORE_ERRORS: &str = "feed_store_errors_total";
    /// Histogram of the candidates scored per ranking.
    pub const RANKING_CANDIDATES: &str = "feed_ranking_candidates";
    /// The buckets of [`RANKING_CANDIDATES`].
    pub const RANKING_CANDIDATES_BUCKET: &str = "feed_ranking_candidates_bucket";
    /// The sum of [`RANKING_CANDIDATES`].
    pub const RANKING_CANDIDATES_SUM: &str = "feed_ranking_candidates_sum";
    /// The count of [`RANKING_CANDIDATES`].
    pub const RANKING_CANDIDATES_COUNT: &str = "feed_ranking_candidates_count";
    /// Counter of requests refused with 503 `overloaded`, by `reason` (queue_full, queue_timeout).
    pub const SHED_REQUESTS: &str = "feed_shed_requests_total";
    /// Gauge of the rankings running now.
    pub const RANKINGS_IN_FLIGHT: &str = "feed_rankings_in_flight";
    /// Gauge of the requests holding a ranking queue place.
    pub const RANKINGS_QUEUED: &str = "feed_rankings_queued";
    /// Gauge of the ranking bounds in force, by `kind` (in_flight, queued).
    pub const RANKINGS_LIMIT: &str = "feed_rankings_limit";
    /// Counter of requests refused with 429, by `limit` (key, user, open).
    pub const RATE_LIMITED: &str = "feed_rate_limited_total";
    /// Gauge of the API keys in force (with `--api-keys` only).
    pub const API_KEYS: &str = "feed_api_keys";
    /// Gauge of the generation of the keys file in force (1 = read at start).
    pub const API_KEYS_GENERATION: &str = "feed_api_keys_generation";
    /// Counter of rejected changes of the keys file.
    pub const API_KEYS_RELOAD_ERRORS: &str = "feed_api_keys_reload_errors_total";
    /// Counter of events dropped from the exposure log to make room (oldest first).
    pub const EXPOSURE_LOG_DROPPED: &str = "feed_exposure_log_dropped_total";
    /// Counter of the predictive warm-up's rankings by `result` (warmed, superseded, shed, failed).
    pub const PREDICTIVE_WARMUPS: &str = "feed_predictive_warmups_total";
    /// Counter of the seconds the predictive warm-up spent ranking (wall time, which bounds its CPU).
    pub const PREDICTIVE_WARMUP_SECONDS: &str = "feed_predictive_warmup_seconds_total";
    /// Gauge of the users the predictive warm-up remembers, and of those with a warm-up planned,
    /// by `state` (tracked, planned).
    pub const PREDICTIVE_WARMUP_USERS: &str = "feed_predictive_warmup_users";
}

#[cfg(test)]
mod tests {
    use super::{contract, ops};

    #[test]
    fn histogram_series_are_named_after_their_histogram() {
        for (series, base, suffix) in [
            (
                contract::HTTP_REQUEST_DURATION_BUCKET,
                contract::HTTP_REQUEST_DURATION,
                "_bucket",
            ),
            (
                contract::SERVED_ITEM_AGE_SUM,
                contract::SERVED_ITEM_AGE,
                "_sum",
            ),
            (
                contract::SERVED_ITEM_AGE_COUNT,
                contract::SERVED_ITEM_AGE,
                "_count",
            ),
            (
                ops::RANKING_CANDIDATES_BUCKET,
                ops::RANKING_CANDIDATES,
                "_bucket",
            ),
            (ops::RANKING_CANDIDATES_SUM, ops::RANKING_CANDIDATES, "_sum"),
            (
                ops::RANKING_CANDIDATES_COUNT,
                ops::RANKING_CANDIDATES,
                "_count",
            ),
        ] {
            assert_eq!(series, format!("{base}{suffix}"));
        }
    }
}
