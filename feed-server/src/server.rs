//! Start-up: builds the store, profiles, cache and router from a [`Config`], then serves with
//! warm-up, profile and API-keys hot reload and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use feed_profile::Experiment;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthStartError, Authenticator, LiveKeys};
use crate::cache::FeedCache;
use crate::config::Config;
use crate::demo::{self, DemoSize};
use crate::experiments::{self, LiveProfiles, LoadError};
use crate::exposure::{self, LogSettings};
use crate::http::{self, HttpLimits};
use crate::metrics::{Metrics, MetricsError};
use crate::reload::Watch;
use crate::state::{AppState, ServiceSettings, SharedState};
use crate::store::redis_conn::RedisConfigError;
use crate::store::redis_store::RedisSettings;
use crate::store::{
    IngestMetrics, MemoryStore, Migrated, MigrationError, PeerWrites, RedisStore, StateReads,
    Store, StoreError, UserVersion,
};
use crate::warmup::Warmup;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The profile file is missing or invalid.
    #[error(transparent)]
    Profile(#[from] LoadError),
    /// The store could not be set up (bad URL) or the demo data could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Redis URL or TLS files are invalid (unreadable, not PEM, TLS files without
    /// `rediss://`, …).
    #[error(transparent)]
    Redis(#[from] RedisConfigError),
    /// Metrics registry.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The API-keys file is missing or invalid, or a rate-limit flag is out of range.
    #[error(transparent)]
    Auth(#[from] AuthStartError),
    /// `--checkpoint-from-redis` without a Redis to read.
    #[error("--checkpoint-from-redis needs --redis-url or --redis-cluster-nodes")]
    NoRedis,
    /// `--checkpoint-from-redis` did not run (consumers running, a checkpoint exists, Redis
    /// failed).
    #[error(transparent)]
    Migration(#[from] MigrationError),
}

/// `--checkpoint-from-redis`: writes the first checkpoint of the shared aggregates from the
/// configured Redis's keys (`store::checkpoint_from_redis`).
pub async fn checkpoint_from_redis(config: &Config) -> Result<Migrated, StartError> {
    let target = config.redis_target()?.ok_or(StartError::NoRedis)?;
    let store = RedisStore::connect_tls(
        &RedisSettings {
            target,
            prefix: config.redis_prefix.clone(),
            timeout: Duration::from_millis(config.store_timeout_ms),
            shared_cache: Duration::ZERO,
        },
        &config.redis_tls_files(),
    )?
    .with_log(LogSettings {
        capacity: config.exposure_log_capacity,
        format: config.exposure_log_format,
        ..LogSettings::default()
    });
    Ok(crate::store::checkpoint_from_redis(&store).await?)
}

/// A built, not yet serving, application.
pub struct App {
    /// Shared state (exposed for tests and embedding).
    pub state: SharedState,
    router: axum::Router,
    profile_watch: Option<Watch<LiveProfiles>>,
    keys_watch: Option<Watch<LiveKeys>>,
    warmup_users: usize,
    /// The store whose ingest stream this replica consumes (Redis with `--event-consumer`).
    consumer: Option<Arc<RedisStore>>,
    /// The store whose ingest stream this replica follows and folds, its checkpoints written
    /// while it holds the lease (Redis with `--shared-aggregates process`: no consumer then).
    follower: Option<Arc<RedisStore>>,
    /// The Redis store whose user writes this replica listens to (`store::redis_peers`) and whose
    /// counter change feed it follows (`store::redis_counter_feed`).
    peers: Option<Arc<RedisStore>>,
    /// How long what the replica keeps in process on the strength of the writes it hears is
    /// trusted (`--local-cache-ttl-ms`): in-process first pages, friends' recent engagements.
    local_trust: Duration,
}

impl App {
    /// The HTTP router, every route and middleware as served (for driving requests without a
    /// listener, e.g. `examples/cached_page_timing.rs`).
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }
}

/// Hands the user writes a replica hears to its feed cache.
struct CachePeers(SharedState);

#[async_trait::async_trait]
impl PeerWrites for CachePeers {
    async fn user_written(&self, user: &str, version: UserVersion) {
        self.0.cache.peer_wrote(user, version);
    }

    fn listening(&self, live: bool) {
        self.0.cache.peers_listening(live);
    }
}

/// Builds the application; fails on a bad profile file, API-keys file, Redis URL or Redis TLS
/// file (not on Redis being down or refusing the credentials: the server then starts unready
/// and recovers by itself once Redis answers).
pub async fn build(config: &Config) -> Result<App, StartError> {
    let metrics = Arc::new(Metrics::new(&config.rollout, &config.track)?);
    let timeout = Duration::from_millis(config.store_timeout_ms);
    let tls = config.redis_tls_files();
    let log = LogSettings {
        capacity: config.exposure_log_capacity,
        format: config.exposure_log_format,
        dropped: exposure::register_drop_counter(&metrics)?,
    };
    let mut consumer = None;
    let mut follower = None;
    let mut peers = None;
    let store: Arc<dyn Store> = match config.redis_target()? {
        Some(target) => {
            let store = RedisStore::connect_tls(
                &RedisSettings {
                    target: target.clone(),
                    prefix: config.redis_prefix.clone(),
                    timeout,
                    shared_cache: Duration::from_millis(config.shared_cache_ms),
                },
                &tls,
            )?
            .with_log(log)
            .with_ingest(
                config.events.settings(),
                IngestMetrics::register(|c| metrics.register_boxed(c))?,
            )
            .with_state_reads(StateReads::register(|c| metrics.register_boxed(c))?);
            tracing::info!(
                redis = %target,
                ca_file = ?tls.ca_file,
                client_cert = ?tls.client_cert,
                "redis store configured"
            );
            let store = Arc::new(store);
            peers = Some(store.clone());
            if store.followed().is_some() {
                follower = Some(store.clone());
            } else if config.events.event_consumer {
                consumer = Some(store.clone());
            }
            store
        }
        None => {
            tls.check_unused()?;
            Arc::new(MemoryStore::with_log(log))
        }
    };
    let (experiment, profile_file) = match &config.profile {
        Some(path) => {
            let (experiment, bytes) = experiments::load_file(path)?;
            (experiment, Some((path.clone(), bytes)))
        }
        None => (Experiment::default(), None),
    };
    let profiles = Arc::new(LiveProfiles::new(experiment, metrics.clone()));
    let profile_watch = profile_file.map(|(path, initial)| Watch {
        target: profiles.clone(),
        path,
        initial,
        every: Duration::from_millis(config.profile_poll_ms),
    });
    let (auth, keys_watch) = Authenticator::start(&config.auth, &metrics)?;
    let mut cache = FeedCache::new(
        store.clone(),
        metrics.clone(),
        config.local_cache_items,
        config.feed_depth.max(1),
        Duration::from_millis(config.local_cache_ttl_ms),
    )
    .with_format(config.snapshot_format);
    if peers.is_some() {
        cache = cache.with_peers()?;
    }
    let settings = ServiceSettings {
        feed_depth: config.feed_depth.max(1),
        ready_timeout: timeout,
        shed: config.shed_limits(),
        tune_max_events: config.tune_max_events,
    };
    tracing::info!(limits = ?settings.shed, "ranking load shedding");
    let warmup = Warmup::new(&config.warmup, &metrics)?;
    let state = Arc::new(
        AppState::new(store.clone(), cache, profiles, metrics, settings).with_warmup(warmup),
    );
    if config.demo {
        let (videos, users, events) = demo::load(store.as_ref(), DemoSize::default()).await?;
        tracing::info!(videos, users, events, "demo data loaded");
    }
    let limits = HttpLimits {
        request_timeout: Duration::from_millis(config.request_timeout_ms),
        max_body_bytes: config.max_body_bytes,
    };
    let router = http::router(state.clone(), limits, Arc::new(auth));
    Ok(App {
        state,
        router,
        profile_watch,
        keys_watch,
        warmup_users: config.warmup_users,
        consumer,
        follower,
        peers,
        local_trust: Duration::from_millis(config.local_cache_ttl_ms),
    })
}

async fn warm_up(state: SharedState, users: usize, stop: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    loop {
        let started = std::time::Instant::now();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = crate::feed::warm_up(&state, users) => r,
        };
        match result {
            Ok(n) => {
                tracing::info!(
                    users = n,
                    millis = started.elapsed().as_millis() as u64,
                    "cache warm-up done"
                );
                state.mark_warm();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cache warm-up failed; retrying");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

impl App {
    /// Serves on `listener` until `shutdown` resolves, then drains in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stop = CancellationToken::new();
        if let Some(watch) = self.profile_watch {
            watch.spawn(stop.clone());
        }
        if let Some(watch) = self.keys_watch {
            watch.spawn(stop.clone());
        }
        // Listening first: in-process pages cached before the first subscription are dropped.
        if let Some(store) = self.peers {
            tokio::spawn(crate::store::follow_counter_changes(
                store.clone(),
                stop.clone(),
            ));
            let peers = Arc::new(CachePeers(self.state.clone()));
            let (stop, trust) = (stop.clone(), self.local_trust);
            tokio::spawn(async move { store.listen_to_peers(peers, trust, stop).await });
        }
        let (state, users, warm_stop) = (self.state.clone(), self.warmup_users, stop.clone());
        let follower = self.follower;
        tokio::spawn(async move {
            // With the shared aggregates in process, rankings need them loaded first.
            if let Some(store) = follower
                && !crate::store::redis_follower::start_following(store, warm_stop.clone()).await
            {
                return;
            }
            warm_up(state, users, warm_stop).await;
        });
        if self.state.warmup.is_enabled() {
            tokio::spawn(Warmup::run(self.state.clone(), stop.clone()));
        }
        if let Some(store) = self.consumer {
            tokio::spawn(crate::store::run_event_consumer(
                store.clone(),
                stop.clone(),
            ));
        }
        let result = axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        stop.cancel();
        result
    }
}
