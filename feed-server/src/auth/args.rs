//! The flags of authentication and rate limiting, and why they can stop the start.

use std::path::PathBuf;

use clap::Args;

use super::keys::KeyFileError;
use super::limits::{InvalidLimit, RateLimit};
use crate::metrics::MetricsError;

/// Flags of authentication and rate limiting.
#[derive(Clone, Debug, Default, Args)]
pub struct AuthArgs {
    /// API-keys file (YAML or JSON: names, SHA-256 digests, scopes, limits); unset = open mode,
    /// no authentication (development only).
    #[arg(long, env = "FEED_API_KEYS")]
    pub api_keys: Option<PathBuf>,
    /// How often the API-keys file is checked for changes (ms).
    #[arg(long, env = "FEED_API_KEYS_POLL_MS", default_value_t = 1000)]
    pub api_keys_poll_ms: u64,
    /// Requests per second to `GET /v1/feed` and `POST /v1/rank` per `user_id`: one bucket per
    /// user shared by every key (a key that exhausts it refuses that user to the others too);
    /// unset = no per-user limit.
    #[arg(long, env = "FEED_USER_RATE_LIMIT")]
    pub user_rate_limit: Option<f64>,
    /// Burst of --user-rate-limit (default: one second's worth, at least 1).
    #[arg(long, env = "FEED_USER_RATE_BURST")]
    pub user_rate_burst: Option<u32>,
    /// Open mode only: requests per second the whole server takes on its API routes; unset = no
    /// limit.
    #[arg(long, env = "FEED_OPEN_RATE_LIMIT")]
    pub open_rate_limit: Option<f64>,
    /// Burst of --open-rate-limit (default: one second's worth, at least 1).
    #[arg(long, env = "FEED_OPEN_RATE_BURST")]
    pub open_rate_burst: Option<u32>,
}

/// Why authentication could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthStartError {
    /// The keys file cannot be read.
    #[error("cannot read API-keys file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The keys file is invalid.
    #[error("API-keys file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeyFileError,
    },
    /// A rate-limit flag is out of range.
    #[error("--{flag}: {source}")]
    Limit {
        /// The flag.
        flag: &'static str,
        /// Why.
        source: InvalidLimit,
    },
    /// An open-mode flag was given with a keys file (it would be ignored).
    #[error("--open-rate-limit applies to open mode only; with --api-keys each key has its limit")]
    OpenLimitWithKeys,
    /// The auth metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// A limit from a rate flag and an optional burst flag (default: one second's worth).
pub(super) fn flag_limit(
    flag: &'static str,
    rate: Option<f64>,
    burst: Option<u32>,
) -> Result<Option<RateLimit>, AuthStartError> {
    rate.map(|r| {
        let burst = burst.unwrap_or_else(|| r.ceil().clamp(1.0, f64::from(u32::MAX)) as u32);
        RateLimit::new(r, burst).map_err(|source| AuthStartError::Limit { flag, source })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_flags_default_their_burst_to_a_second_and_refuse_bad_values() {
        let l = flag_limit("x", Some(2.5), None).ok().flatten();
        assert_eq!(l.map(|l| l.burst()), Some(3));
        let l = flag_limit("x", Some(0.2), None).ok().flatten();
        assert_eq!(l.map(|l| l.burst()), Some(1));
        assert!(matches!(flag_limit("x", None, Some(5)), Ok(None)));
        let err = flag_limit("user-rate-limit", Some(-1.0), None).err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("--user-rate-limit: requestsPerSecond"),
            "{message}"
        );
    }
}
