//! The API keys in force: read at start, replaced by [`crate::reload::watch`] when the file
//! changes, with their metrics.

use feed_metrics::ops;
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

use super::decision::LimitKind;
use super::keys::{self, KeyFileError, KeySet};
use crate::metrics::{Metrics, MetricsError};
use crate::reload::{Applied, Reloadable};

/// The keys in force and their generation.
#[derive(Debug)]
pub struct LoadedKeys {
    /// The keys.
    pub keys: KeySet,
    /// 1 for the file read at start, +1 per successful reload.
    pub generation: u64,
}

/// The API keys in force, swapped atomically when the file changes.
pub struct LiveKeys {
    current: ArcSwap<LoadedKeys>,
    metrics: AuthMetrics,
}

impl LiveKeys {
    pub(super) fn new(keys: KeySet, metrics: AuthMetrics) -> Self {
        metrics.loaded(&keys, 1);
        Self {
            current: ArcSwap::from_pointee(LoadedKeys {
                keys,
                generation: 1,
            }),
            metrics,
        }
    }

    /// The keys in force.
    pub fn current(&self) -> Arc<LoadedKeys> {
        self.current.load_full()
    }
}

pub(super) fn summary(keys: &KeySet) -> String {
    if keys.is_empty() {
        tracing::warn!("the API-keys file has no keys: every API request is refused with 401");
    }
    format!("keys {}", keys.names().join(","))
}

impl Reloadable for LiveKeys {
    const WHAT: &'static str = "API keys";

    type Error = KeyFileError;

    fn reload(&self, bytes: &[u8]) -> Result<Applied, KeyFileError> {
        let entries = keys::parse_bytes(bytes)?;
        let previous = self.current.load();
        let keys = KeySet::build(entries, Some(&previous.keys));
        let generation = previous.generation + 1;
        let summary = summary(&keys);
        self.metrics.loaded(&keys, generation);
        self.current
            .store(Arc::new(LoadedKeys { keys, generation }));
        Ok(Applied {
            generation,
            summary,
        })
    }

    fn count_rejection(&self) {
        self.metrics.reload_errors.inc();
    }
}

/// The metrics of authentication and rate limiting.
#[derive(Clone)]
pub struct AuthMetrics {
    /// `feed_api_keys`: keys in force (absent in open mode).
    pub keys: IntGauge,
    /// `feed_api_keys_generation`: generation of the keys file in force.
    pub generation: IntGauge,
    /// `feed_api_keys_reload_errors_total`: rejected changes of the keys file.
    pub reload_errors: IntCounter,
    /// `feed_rate_limited_total{limit}`: requests refused with 429, by limit.
    pub rate_limited: IntCounterVec,
}

impl AuthMetrics {
    pub(super) fn register(metrics: &Metrics, with_keys: bool) -> Result<Self, MetricsError> {
        let m = Self {
            keys: IntGauge::new(ops::API_KEYS, "API keys in force")?,
            generation: IntGauge::new(
                ops::API_KEYS_GENERATION,
                "Generation of the API-keys file in force (1 = read at start)",
            )?,
            reload_errors: IntCounter::new(
                ops::API_KEYS_RELOAD_ERRORS,
                "API-keys file changes rejected (the last good file kept serving)",
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new(
                    ops::RATE_LIMITED,
                    "Requests refused with 429 by limit (key, user, open)",
                ),
                &["limit"],
            )?,
        };
        if with_keys {
            metrics.register(m.keys.clone())?;
            metrics.register(m.generation.clone())?;
            metrics.register(m.reload_errors.clone())?;
        }
        metrics.register(m.rate_limited.clone())?;
        for kind in [LimitKind::Key, LimitKind::User, LimitKind::Open] {
            m.rate_limited.with_label_values(&[kind.as_str()]);
        }
        Ok(m)
    }

    pub(super) fn loaded(&self, keys: &KeySet, generation: u64) {
        self.keys.set(keys.len() as i64);
        self.generation.set(generation as i64);
    }
}
