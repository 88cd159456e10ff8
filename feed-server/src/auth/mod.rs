//! Authentication, scopes and rate limits of the API.
//!
//! - [`keys`]: the API-keys file (digests, never keys), its validation and the set of keys.
//! - [`scope`]: the scopes and the access each [`Route`](crate::http::routes::Route) requires.
//! - [`limits`]: token buckets per key, per user of `GET /v1/feed`, and for open mode.
//! - `decision` ([`authorize`], [`Refusal`]): which key a request carries and whether it holds
//!   the route's scope, free of I/O.
//! - [`LiveKeys`]: the keys in force and their hot reload; [`AuthArgs`]: the flags.
//! - [`Authenticator`]: admits or refuses one request, limits included (no HTTP here:
//!   `http::auth` turns a [`Refusal`] into 401/403/429).
//!
//! With `--api-keys` every API route needs `Authorization: Bearer <key>` of a key holding the
//! route's scope; the file is hot-reloaded ([`crate::reload`]). Without it the server runs
//! *open* (development, the test harnesses): no key is asked for, and a warning is logged once
//! at start.

mod args;
mod decision;
pub mod keys;
pub mod limits;
mod live;
pub mod scope;

use std::sync::Arc;
use std::time::Duration;

pub use args::{AuthArgs, AuthStartError};
pub use decision::{LimitKind, Refusal, Unauthenticated, authorize, bearer};
pub use live::{AuthMetrics, LiveKeys, LoadedKeys};

use crate::metrics::Metrics;
use crate::reload::Watch;
use args::flag_limit;
use keys::{KeyName, KeySet};
use limits::{Bucket, PerUser, RetryAfter};
use live::summary;
use scope::Access;

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
                let entries =
                    keys::parse_bytes(&bytes).map_err(|source| AuthStartError::Invalid {
                        path: path.clone(),
                        source,
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

    /// Whether a request needing `access`, with `authorization` (the header's value), may
    /// proceed as far as its key (or the open-mode limit) decides: the key's scope and bucket.
    /// A `GET /v1/feed` admitted here still takes a token of its user's bucket
    /// ([`Authenticator::charge_user`]) when [`Authenticator::limits_users`]. A refused request
    /// has taken no token from any bucket it did not reach, and no handler runs for it.
    pub fn admit(&self, access: Access, authorization: Option<&[u8]>) -> Result<Admitted, Refusal> {
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
        Ok(Admitted { key })
    }

    /// Takes a token of `user`'s bucket (`--user-rate-limit`; nothing without it) for a request
    /// admitted with `key`. `admit` does it for `GET /v1/feed`; `POST /v1/rank` names its user
    /// in the body, so its handler calls this once the body is parsed, before any work.
    pub async fn charge_user(&self, key: Option<KeyName>, user: &str) -> Result<(), Refusal> {
        if let Some(per_user) = &self.per_user
            && let Err(retry_after) = per_user.check(user).await
        {
            return Err(self.limited(key, LimitKind::User, retry_after));
        }
        Ok(())
    }

    /// Whether `--user-rate-limit` is set.
    pub fn limits_users(&self) -> bool {
        self.per_user.is_some()
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
