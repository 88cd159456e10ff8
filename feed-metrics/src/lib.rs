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
    /// The count of [`HTTP_REQUEST_DURATION`].
    pub const HTTP_REQUEST_DURATION_COUNT: &str = "feed_http_request_duration_seconds_count";
    /// The buckets of [`SERVED_ITEM_AGE`].
    pub const SERVED_ITEM_AGE_BUCKET: &str = "feed_served_item_age_seconds_bucket";
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
    /// Gauge: 1 while the replica hears every user write of the other replicas (on Redis), 0
    /// while it serves first pages from Redis only.
    pub const PEER_WRITES_LISTENING: &str = "feed_peer_writes_listening";
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
    /// Gauge: age of the oldest batch of the last apply round of the ingest stream when applied
    /// to the shared aggregates (0 when idle).
    pub const EVENT_APPLY_LAG: &str = "feed_event_apply_lag_seconds";
    /// Gauge of the events accepted and not yet applied to the shared aggregates.
    pub const EVENT_BACKLOG: &str = "feed_event_backlog";
    /// Counter of the events this replica's consumer applied to the shared aggregates.
    pub const EVENTS_APPLIED: &str = "feed_events_applied_total";
    /// Gauge: the backlog (`feed_event_backlog`) beyond which `POST /v1/events` answers 503
    /// (`--event-backlog-max`), so alerts and dashboards can read the backlog as a share of it.
    pub const EVENT_BACKLOG_LIMIT: &str = "feed_event_backlog_limit";
    /// Counter of event batches claimed from a silent consumer.
    pub const EVENT_BATCHES_CLAIMED: &str = "feed_event_batches_claimed_total";
    /// Counter of ingest-stream entries that could not be decoded (acknowledged, not applied).
    pub const EVENT_BATCHES_UNREADABLE: &str = "feed_event_batches_unreadable_total";
    /// Counter of the checkpoints of the shared aggregates this replica wrote (moved the
    /// manifest to), by what started them (`reason`: `interval`, `pressure`).
    pub const CHECKPOINTS: &str = "feed_checkpoints_total";
    /// Counter of the compactions of users' sums logs this replica ran
    /// (`--user-sums-format log`), by `outcome`: `compacted`, `unchanged` (another replica
    /// compacted the log first, or its sums would not halve it), `failed`.
    pub const USER_SUMS_COMPACTIONS: &str = "feed_user_sums_compactions_total";
    /// Gauge: age of the oldest counter change the replica read in its last poll of the counter
    /// change feed (0 when there was none): how far its in-process video counters trail Redis.
    pub const COUNTER_FEED_LAG: &str = "feed_counter_feed_lag_seconds";
    /// Counter of the times the replica dropped its in-process video counters (a gap in the
    /// counter change feed, a failed poll).
    pub const COUNTER_FEED_RESETS: &str = "feed_counter_feed_resets_total";
    /// Gauge: Unix time at which the replica sent its last successful poll of the counter change
    /// feed. Its in-process counters, duration totals and catalog version reflect Redis as of
    /// then; more than a second ago, the replica reads them from Redis for every ranking.
    pub const COUNTER_FEED_READ_AT: &str = "feed_counter_feed_read_timestamp_seconds";
    /// Counter of the items of shared state rankings read (catalog entries, counters, source
    /// lists), by `state` (catalog_entry, video_counters, catalog_list, shared_list, friend_list)
    /// and `from` (memory: held by the replica; redis: read in the ranking's round trip).
    pub const RANKING_STATE_READS: &str = "feed_ranking_state_reads_total";
    /// Counter of the predictive warm-up's rankings by `result` (warmed, superseded, shed, failed).
    pub const PREDICTIVE_WARMUPS: &str = "feed_predictive_warmups_total";
    /// Counter of the seconds the predictive warm-up spent ranking (wall time, which bounds its CPU).
    pub const PREDICTIVE_WARMUP_SECONDS: &str = "feed_predictive_warmup_seconds_total";
    /// Gauge of the users the predictive warm-up remembers, and of those with a warm-up planned,
    /// by `state` (tracked, planned).
    pub const PREDICTIVE_WARMUP_USERS: &str = "feed_predictive_warmup_users";
}

/// Every name above, contract first: what dashboards, alerts and other consumers may query
/// (the chart's tests hold every `feed_*` name the chart spells to this list).
pub const ALL: &[&str] = &[
    contract::HTTP_REQUESTS,
    contract::HTTP_REQUEST_DURATION,
    contract::HTTP_REQUEST_DURATION_BUCKET,
    contract::HTTP_REQUEST_DURATION_COUNT,
    contract::CACHE_REQUESTS,
    contract::EVENTS,
    contract::RANKING_PROFILE_INFO,
    contract::SERVED_PAGES,
    contract::SERVED_ITEMS,
    contract::SERVED_LONG_TAIL_ITEMS,
    contract::SERVED_PAGE_CREATORS,
    contract::SERVED_ITEM_AGE,
    contract::SERVED_ITEM_AGE_BUCKET,
    contract::SERVED_ITEM_AGE_SUM,
    contract::SERVED_ITEM_AGE_COUNT,
    ops::HTTP_OPERATIONAL_REQUESTS,
    ops::HTTP_REFUSED,
    ops::EVENTS_REJECTED,
    ops::RANKING_PROFILE_RELOAD_ERRORS,
    ops::STORE_ERRORS,
    ops::RANKING_CANDIDATES,
    ops::RANKING_CANDIDATES_BUCKET,
    ops::RANKING_CANDIDATES_SUM,
    ops::RANKING_CANDIDATES_COUNT,
    ops::SHED_REQUESTS,
    ops::RANKINGS_IN_FLIGHT,
    ops::RANKINGS_QUEUED,
    ops::RANKINGS_LIMIT,
    ops::RATE_LIMITED,
    ops::API_KEYS,
    ops::API_KEYS_GENERATION,
    ops::API_KEYS_RELOAD_ERRORS,
    ops::EXPOSURE_LOG_DROPPED,
    ops::PEER_WRITES_LISTENING,
    ops::PREDICTIVE_WARMUPS,
    ops::PREDICTIVE_WARMUP_SECONDS,
    ops::PREDICTIVE_WARMUP_USERS,
    ops::EVENT_APPLY_LAG,
    ops::EVENT_BACKLOG,
    ops::EVENT_BACKLOG_LIMIT,
    ops::COUNTER_FEED_LAG,
    ops::COUNTER_FEED_RESETS,
    ops::COUNTER_FEED_READ_AT,
    ops::RANKING_STATE_READS,
    ops::EVENTS_APPLIED,
    ops::EVENT_BATCHES_CLAIMED,
    ops::EVENT_BATCHES_UNREADABLE,
    ops::CHECKPOINTS,
    ops::USER_SUMS_COMPACTIONS,
];

#[cfg(test)]
mod tests {
    use super::{ALL, contract, ops};

    /// Every name this file defines is in [`ALL`], once: a constant added without it would let
    /// the chart spell a name nobody checks.
    #[test]
    fn all_lists_every_name_once() {
        let source = include_str!("lib.rs");
        let defined: std::collections::BTreeSet<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub const "))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        let listed: std::collections::BTreeSet<&str> = ALL.iter().copied().collect();
        assert_eq!(listed.len(), ALL.len(), "a name is listed twice");
        assert_eq!(defined, listed);
    }

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
