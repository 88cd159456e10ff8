//! Authentication, scopes and rate limits of the API.
//!
//! - [`keys`]: the API-keys file (digests, never keys), its validation and the set of keys.
//! - [`scope`]: the scopes and the access each [`Route`](crate::http::routes::Route) requires.
//! - [`limits`]: token buckets per key, per user of `GET /v1/feed`, and for open mode.
//! - [`Authenticator`]: the decision for one request (no HTTP here; `http::auth` turns a
//!   [`Refusal`] into 401/403/429).
//!
//! With `--api-keys` every API route needs `Authorization: Bearer <key>` of a key holding the
//! route's scope; the file is hot-reloaded ([`crate::reload`]). Without it the server runs
//! *open* (development, the test harnesses): no key is asked for, and a warning is logged once
//! at start.

pub mod keys;
pub mod limits;
pub mod scope;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use clap::Args;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

use crate::metrics::{Metrics, MetricsError};
use crate::reload::{Applied, Reloadable, Watch};
use keys::{ApiKey, KeyFileError, KeyName, KeySet};
use limits::{Bucket, InvalidLimit, PerUser, RateLimit, RetryAfter};
use scope::{Access, Scope};

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
    /// Requests per second each user may make to `GET /v1/feed`, whatever the key; unset = no
    /// per-user limit.
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
fn flag_limit(
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

/// Which limit refused a request (the `limit` label of `feed_rate_limited_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// The key's own bucket.
    Key,
    /// The user's bucket of `GET /v1/feed`.
    User,
    /// The server's bucket in open mode.
    Open,
}

impl LimitKind {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitKind::Key => "key",
            LimitKind::User => "user",
            LimitKind::Open => "open",
        }
    }
}

/// Why a request without a usable key is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <key>`.
    Malformed,
    /// A bearer key no entry of the file has (never issued, mistyped or revoked).
    Unknown,
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// 401: no known key.
    Unauthenticated(Unauthenticated),
    /// 403: a known key without the scope the route needs.
    Forbidden {
        /// The key's name.
        key: KeyName,
        /// The scope the route needs.
        needs: Scope,
    },
    /// 429: over a limit.
    RateLimited {
        /// The key's name (none in open mode).
        key: Option<KeyName>,
        /// Which limit.
        limit: LimitKind,
        /// When to retry.
        retry_after: RetryAfter,
    },
}

impl Refusal {
    /// The key the refusal names, if any (for metrics and logs).
    pub fn key(&self) -> Option<&KeyName> {
        match self {
            Refusal::Unauthenticated(_) => None,
            Refusal::Forbidden { key, .. } => Some(key),
            Refusal::RateLimited { key, .. } => key.as_ref(),
        }
    }
}

/// The bearer key of an `Authorization` header value (`Bearer <key>`, scheme in any case).
pub fn bearer(header: Option<&[u8]>) -> Result<&str, Unauthenticated> {
    let value = header.ok_or(Unauthenticated::Missing)?;
    let value = std::str::from_utf8(value).map_err(|_| Unauthenticated::Malformed)?;
    let (scheme, key) = value
        .trim()
        .split_once(' ')
        .ok_or(Unauthenticated::Malformed)?;
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(Unauthenticated::Malformed);
    }
    Ok(key)
}

/// Which key, if any, may make a request needing `access`. Pure: no I/O, no limits.
pub fn authorize<'k>(
    keys: &'k KeySet,
    access: Access,
    header: Option<&[u8]>,
) -> Result<Option<&'k Arc<ApiKey>>, Refusal> {
    let Access::Requires(needs) = access else {
        return Ok(None);
    };
    let presented = bearer(header).map_err(Refusal::Unauthenticated)?;
    let key = keys
        .find(presented)
        .ok_or(Refusal::Unauthenticated(Unauthenticated::Unknown))?;
    if key.scopes.contains(&needs) {
        Ok(Some(key))
    } else {
        Err(Refusal::Forbidden {
            key: key.name.clone(),
            needs,
        })
    }
}

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
    fn new(keys: KeySet, metrics: AuthMetrics) -> Self {
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

fn summary(keys: &KeySet) -> String {
    if keys.is_empty() {
        tracing::warn!("the API-keys file has no keys: every API request is refused with 401");
    }
    format!("keys {}", keys.names().join(","))
}

impl Reloadable for LiveKeys {
    const WHAT: &'static str = "API keys";

    fn reload(&self, bytes: &[u8]) -> Result<Applied, String> {
        let entries = keys::parse(&String::from_utf8_lossy(bytes)).map_err(|e| e.to_string())?;
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
    fn register(metrics: &Metrics, with_keys: bool) -> Result<Self, MetricsError> {
        let m = Self {
            keys: IntGauge::new("feed_api_keys", "API keys in force")?,
            generation: IntGauge::new(
                "feed_api_keys_generation",
                "Generation of the API-keys file in force (1 = read at start)",
            )?,
            reload_errors: IntCounter::new(
                "feed_api_keys_reload_errors_total",
                "API-keys file changes rejected (the last good file kept serving)",
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new(
                    "feed_rate_limited_total",
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

    fn loaded(&self, keys: &KeySet, generation: u64) {
        self.keys.set(keys.len() as i64);
        self.generation.set(generation as i64);
    }
}

/// Open mode or keys.
enum Mode {
    Open(Option<Bucket>),
    Keys(Arc<LiveKeys>),
}

/// A request let through.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Admitted {
    /// The key it came with (none in open mode and on open routes).
    pub key: Option<KeyName>,
}

/// Decides, for each request, whether it may proceed.
pub struct Authenticator {
    mode: Mode,
    per_user: Option<PerUser>,
    metrics: AuthMetrics,
}

impl Authenticator {
    /// Sets up authentication from the flags: reads and validates the keys file (an error stops
    /// the start), and returns the file's watch to spawn when serving. Without a keys file,
    /// logs the open-mode warning (once: this runs once per process).
    pub fn start(
        args: &AuthArgs,
        metrics: &Metrics,
    ) -> Result<(Self, Option<Watch<LiveKeys>>), AuthStartError> {
        let per_user = flag_limit(
            "user-rate-limit",
            args.user_rate_limit,
            args.user_rate_burst,
        )?;
        let open = flag_limit(
            "open-rate-limit",
            args.open_rate_limit,
            args.open_rate_burst,
        )?;
        let auth_metrics = AuthMetrics::register(metrics, args.api_keys.is_some())?;
        let (mode, watch) = match &args.api_keys {
            Some(path) => {
                if open.is_some() {
                    return Err(AuthStartError::OpenLimitWithKeys);
                }
                let bytes = std::fs::read(path).map_err(|source| AuthStartError::Read {
                    path: path.clone(),
                    source,
                })?;
                let entries = keys::parse(&String::from_utf8_lossy(&bytes)).map_err(|source| {
                    AuthStartError::Invalid {
                        path: path.clone(),
                        source,
                    }
                })?;
                let keys = KeySet::build(entries, None);
                let summary = summary(&keys);
                tracing::info!(path = %path.display(), summary, "API keys loaded; authentication on");
                let live = Arc::new(LiveKeys::new(keys, auth_metrics.clone()));
                let watch = Watch {
                    target: live.clone(),
                    path: path.clone(),
                    initial: bytes,
                    every: Duration::from_millis(args.api_keys_poll_ms),
                };
                (Mode::Keys(live), Some(watch))
            }
            None => {
                tracing::warn!(
                    open_rate_limit = open.map(|l| l.to_string()),
                    "no --api-keys (FEED_API_KEYS): authentication is OFF; anyone who reaches the port can read every feed and rewrite the catalog. Development only"
                );
                (Mode::Open(open.map(Bucket::new)), None)
            }
        };
        let authenticator = Self {
            mode,
            per_user: per_user.map(PerUser::new),
            metrics: auth_metrics,
        };
        Ok((authenticator, watch))
    }

    /// Whether a request needing `access`, with `authorization` (the header's value) and, for
    /// `GET /v1/feed`, its `feed_user`, may proceed. A refused request has taken no token from
    /// any bucket it did not reach, and no handler runs for it.
    pub async fn admit(
        &self,
        access: Access,
        authorization: Option<&[u8]>,
        feed_user: Option<&str>,
    ) -> Result<Admitted, Refusal> {
        if access == Access::Open {
            return Ok(Admitted::default());
        }
        let key = match &self.mode {
            Mode::Open(bucket) => {
                if let Some(retry_after) = bucket.as_ref().and_then(|b| b.check().err()) {
                    return Err(self.limited(None, LimitKind::Open, retry_after));
                }
                None
            }
            Mode::Keys(live) => {
                let current = live.current();
                let key = authorize(&current.keys, access, authorization)?.map(Arc::clone);
                if let Some(k) = &key
                    && let Err(retry_after) = k.bucket.check()
                {
                    return Err(self.limited(Some(k.name.clone()), LimitKind::Key, retry_after));
                }
                key.map(|k| k.name.clone())
            }
        };
        if let (Some(per_user), Some(user)) = (&self.per_user, feed_user)
            && let Err(retry_after) = per_user.check(user).await
        {
            return Err(self.limited(key, LimitKind::User, retry_after));
        }
        Ok(Admitted { key })
    }

    fn limited(&self, key: Option<KeyName>, limit: LimitKind, retry_after: RetryAfter) -> Refusal {
        self.metrics
            .rate_limited
            .with_label_values(&[limit.as_str()])
            .inc();
        Refusal::RateLimited {
            key,
            limit,
            retry_after,
        }
    }

    /// Whether keys are checked (false in open mode).
    pub fn is_on(&self) -> bool {
        matches!(self.mode, Mode::Keys(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_reads_the_key_of_a_bearer_header_only() {
        assert_eq!(bearer(Some(b"Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some(b"bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(Unauthenticated::Missing));
        for bad in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"abc",
            b"Bearer \xff",
        ] {
            assert_eq!(
                bearer(Some(bad)),
                Err(Unauthenticated::Malformed),
                "{bad:?}"
            );
        }
    }

    fn keys() -> KeySet {
        let sha = |k: &str| hex::encode(ring::digest::digest(&ring::digest::SHA256, k.as_bytes()));
        let text = format!(
            "keys:\n  - {{name: reader, sha256: {}, scopes: [read], limit: {{requestsPerSecond: 1, burst: 1}}}}\n",
            sha("r-key")
        );
        KeySet::build(keys::parse(&text).expect("valid"), None)
    }

    #[test]
    fn authorize_sorts_open_unknown_forbidden_and_allowed() {
        let keys = keys();
        let read = Access::Requires(Scope::Read);
        let write = Access::Requires(Scope::Write);
        assert!(matches!(authorize(&keys, Access::Open, None), Ok(None)));
        assert_eq!(
            authorize(&keys, read, None).err(),
            Some(Refusal::Unauthenticated(Unauthenticated::Missing))
        );
        assert_eq!(
            authorize(&keys, read, Some(b"Bearer nope")).err(),
            Some(Refusal::Unauthenticated(Unauthenticated::Unknown))
        );
        assert_eq!(
            authorize(&keys, write, Some(b"Bearer r-key")).err(),
            Some(Refusal::Forbidden {
                key: KeyName::new("reader").expect("name"),
                needs: Scope::Write
            })
        );
        let allowed = authorize(&keys, read, Some(b"Bearer r-key")).ok().flatten();
        assert_eq!(allowed.map(|k| k.name.as_str()), Some("reader"));
    }

    #[test]
    fn rate_flags_default_their_burst_to_a_second_and_refuse_bad_values() {
        let l = flag_limit("x", Some(2.5), None).ok().flatten();
        assert_eq!(l.map(|l| l.burst()), Some(3));
        let l = flag_limit("x", Some(0.2), None).ok().flatten();
        assert_eq!(l.map(|l| l.burst()), Some(1));
        assert!(matches!(flag_limit("x", None, Some(5)), Ok(None)));
        let err = flag_limit("user-rate-limit", Some(-1.0), None).err();
        assert!(err.is_some_and(|e| {
            e.to_string()
                .starts_with("--user-rate-limit: requestsPerSecond")
        }),);
    }
}
