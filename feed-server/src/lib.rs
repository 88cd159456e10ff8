//! # feed-server
//!
//! Feedroll's personalised short-video ranking service (PRODUCT.md §1): an axum HTTP API that
//! ranks videos for a user from six signals, ingests engagement events in real time, caches
//! feeds in two tiers, runs ranking experiments and exposes Prometheus metrics.
//!
//! Where to look:
//! - [`http`]: routes and handlers by resource (feed and rank, events, catalog, users, health).
//! - [`ranking`]: the ranking pipeline — candidate sources, filters, [`ranking::signals`],
//!   diversity re-ranking.
//! - [`affinity`]: what events taught about a user, typed (creators, tags, a dense taste).
//! - [`ingest`]: the write use case behind `POST /v1/events` (the Redis side of its guarantees is
//!   `store::redis_events`).
//! - [`learning`]: what an event teaches (statistics, decayed affinities, taste vectors).
//! - [`store`]: the storage interface with Redis and embedded implementations.
//! - [`cache`]: ranked snapshots, cursors and invalidation.
//! - [`experiments`]: the live ranking profiles; the format is `feed_profile`. [`reload`]: the
//!   file polling behind their hot reload and the API keys'.
//! - [`auth`]: API keys, scopes and rate limits (the HTTP side is `http::auth`).
//! - [`exposure`]: the exposure log and `POST /v1/admin/tune` (a profile fitted on it).
//! - [`metrics`]: the metrics contract.
//! - [`served`]: content health of served pages (long tail, creators per page, item age).
//! - [`feed`] and [`write`]: the read use case and the catalog and user write use cases.
//! - [`time`]: one instant type and the injected clock.
//! - [`shed`]: load shedding — the bound on concurrent and queued rankings; [`single_flight`]:
//!   one ranking of a user's first page at a time.
//! - [`server`]: start-up, warm-up and graceful shutdown; [`config`]: flags and env vars.
//! - [`warmup`]: the predictive warm-up (first pages ranked ahead of users' expected returns).

pub mod affinity;
pub mod auth;
pub mod cache;
pub mod config;
pub mod demo;
pub mod experiments;
pub mod exposure;
pub mod feed;
pub mod http;
pub mod ingest;
mod layers;
pub mod learning;
pub mod metrics;
pub mod model;
pub mod peer_heads;
mod prefetch;
pub mod ranking;
pub mod reload;
pub mod schema;
pub mod served;
pub mod server;
pub mod shed;
pub mod single_flight;
pub mod state;
pub mod store;
pub mod stored_snapshot;
pub mod time;
pub mod vocabulary;
pub mod warmup;
pub mod write;
