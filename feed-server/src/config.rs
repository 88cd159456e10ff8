//! Configuration: every flag is also an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::auth::AuthArgs;
use crate::shed::ShedLimits;
use crate::store::redis_conn::{RedisConfigError, RedisTarget, RedisTlsFiles, RedisUrl};
use crate::stored_snapshot::SnapshotFormat;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable.
    Text,
}

/// `feed-server` — Feedroll's personalised short-video ranking service.
#[derive(Clone, Debug, Parser)]
#[command(name = "feed-server", version, about, args_override_self = true)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "FEED_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Redis URL: `redis://[user:password@]host:port/db`, or `rediss://…` for TLS; unset = the
    /// embedded in-process store. Logs and errors show it with the password redacted.
    #[arg(long, env = "FEED_REDIS_URL")]
    pub redis_url: Option<RedisUrl>,
    /// Redis Cluster seed nodes, comma-separated: `redis://h1:p1,redis://h2:p2,…` (or
    /// `rediss://…` for TLS; the same user and password in each). Selects the cluster client
    /// (which discovers the other nodes and the slots); excludes --redis-url.
    #[arg(long, env = "FEED_REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Vec<RedisUrl>,
    /// PEM bundle of the CA(s) that sign the Redis server's certificate (rediss:// only);
    /// unset = the system's trust store.
    #[arg(long, env = "FEED_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for a Redis that requires one (rediss:// only; with
    /// --redis-client-key).
    #[arg(long, env = "FEED_REDIS_CLIENT_CERT")]
    pub redis_client_cert: Option<PathBuf>,
    /// PEM private key of --redis-client-cert.
    #[arg(long, env = "FEED_REDIS_CLIENT_KEY")]
    pub redis_client_key: Option<PathBuf>,
    /// Prefix of every Redis key.
    #[arg(long, env = "FEED_REDIS_PREFIX", default_value = "feed:")]
    pub redis_prefix: String,
    /// How long a store call may take before the request fails with 503 (ms).
    #[arg(long, env = "FEED_STORE_TIMEOUT_MS", default_value_t = 500)]
    pub store_timeout_ms: u64,
    /// Redis only: longest the source lists events move (trending, long tail) are reused
    /// between rankings of this replica (ms). Video counters are kept until the counter change
    /// feed says they changed, and the lists only catalog writes change (creators', tags',
    /// fresh) until the catalog version moves (other replicas' uploads within one poll of the
    /// feed, 20 ms; a replica's own at once), and friends' recent engagements until the
    /// friend's next write is heard. 0 = read all of them for every ranking.
    #[arg(long, env = "FEED_SHARED_CACHE_MS", default_value_t = 1000)]
    pub shared_cache_ms: u64,
    /// Ranking profile or experiment file (YAML or JSON); unset = the default profile.
    #[arg(long, env = "FEED_PROFILE")]
    pub profile: Option<PathBuf>,
    /// How often the profile file is checked for changes (ms).
    #[arg(long, env = "FEED_PROFILE_POLL_MS", default_value_t = 1000)]
    pub profile_poll_ms: u64,
    /// Load a generated demo catalog, users and events at start.
    #[arg(long, env = "FEED_DEMO")]
    pub demo: bool,
    /// Request timeout (ms); slower requests are answered 503.
    #[arg(long, env = "FEED_REQUEST_TIMEOUT_MS", default_value_t = 5000)]
    pub request_timeout_ms: u64,
    /// Rankings (uncached feeds, `POST /v1/rank`) running at once; more wait in the queue.
    /// Default: 2 × the CPUs this process may use (see feed-server/README.md, "Load shedding").
    #[arg(long, env = "FEED_MAX_RANKINGS_IN_FLIGHT", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_rankings_in_flight: Option<usize>,
    /// Rankings waiting for a slot; beyond it requests are refused at once with 503
    /// `overloaded` and `Retry-After` (cached pages never are). Default: 3 × the slots.
    #[arg(long, env = "FEED_MAX_QUEUED_RANKINGS")]
    pub max_queued_rankings: Option<usize>,
    /// Longest a queued ranking waits for a slot before it is refused with 503 `overloaded` (ms).
    #[arg(long, env = "FEED_MAX_RANKING_QUEUE_WAIT_MS", default_value_t = 500)]
    pub max_ranking_queue_wait_ms: u64,
    /// Largest accepted request body (bytes).
    #[arg(long, env = "FEED_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Items kept per ranked feed (how deep a user can page).
    #[arg(long, env = "FEED_DEPTH", default_value_t = 200)]
    pub feed_depth: usize,
    /// Most ranked items held in process across all cached snapshots (bounds memory: ~200 bytes
    /// per item at the bench world, so the default's 500,000 are ~100 MB; a snapshot holds up to
    /// --feed-depth items). Past it, snapshots leave the process and are read from the store.
    #[arg(long, env = "FEED_LOCAL_CACHE_ITEMS", default_value_t = 500_000)]
    pub local_cache_items: u64,
    /// Longest an in-process first page is served without a store read (ms), then rechecked
    /// (a few bytes); bounds staleness across replicas for writes no replica heard of. A
    /// snapshot read by cursor stays in process this long, and a friend's recent engagements
    /// kept in process are used at most this long after their read.
    #[arg(long, env = "FEED_LOCAL_CACHE_TTL_MS", default_value_t = 5_000)]
    pub local_cache_ttl_ms: u64,
    /// Form of the cached pages this replica writes to the store; both are read. `json` is for
    /// a rolling upgrade from a version without compact pages, which cannot read them (README:
    /// Upgrading).
    #[arg(long, env = "FEED_SNAPSHOT_FORMAT", value_enum, default_value_t = SnapshotFormat::Compact)]
    pub snapshot_format: SnapshotFormat,
    /// Feeds of this many most recently active users are ranked at start-up.
    #[arg(long, env = "FEED_WARMUP_USERS", default_value_t = 1_000)]
    pub warmup_users: usize,
    /// Drain time for in-flight requests after SIGTERM (ms).
    #[arg(long, env = "FEED_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
    /// `rollout` label of every metric (set by the operator).
    #[arg(long, env = "FEED_ROLLOUT", default_value = "none")]
    pub rollout: String,
    /// `track` label of every metric: stable or canary (set by the operator).
    #[arg(long, env = "FEED_TRACK", default_value = "stable")]
    pub track: String,
    /// Log format.
    #[arg(long, env = "FEED_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Events the exposure log keeps (Redis: a Stream trimmed after each append; embedded: a
    /// ring buffer); older ones are dropped and counted in `feed_exposure_log_dropped_total`. The
    /// default holds at least 500,000 exposures (impression, view, complete, like).
    #[arg(long, env = "FEED_EXPOSURE_LOG_CAPACITY", default_value_t = crate::exposure::DEFAULT_LOG_CAPACITY,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub exposure_log_capacity: usize,
    /// Form of the exposure-log entries this replica writes on Redis; all are read. `packed`
    /// (one field an event) and `batched` (up to 64 events an entry) cost Redis less per event,
    /// but versions without that value cannot read it: set it once no such version runs
    /// (README: Tuning a profile from the exposure log).
    #[arg(long, env = "FEED_EXPOSURE_LOG_FORMAT", value_enum, default_value_t = crate::exposure::LogFormat::Fields)]
    pub exposure_log_format: crate::exposure::LogFormat,
    /// Most exposure-log events one `POST /v1/admin/tune` reads: the newest, so a tune's work
    /// and memory are bounded whatever the window.
    #[arg(long, env = "FEED_TUNE_MAX_EVENTS", default_value_t = crate::exposure::DEFAULT_TUNE_MAX_EVENTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub tune_max_events: usize,
    /// Authentication and rate limits (`--api-keys`, `--user-rate-limit`, …).
    #[command(flatten)]
    pub auth: AuthArgs,
    /// The Redis ingest stream (`--event-backlog-max`, `--event-claim-idle-ms`,
    /// `--event-consumer`).
    #[command(flatten)]
    pub events: crate::store::IngestArgs,
    /// The predictive warm-up (`--predictive-warmup`, `--predictive-warmup-budget-ms`, …).
    #[command(flatten)]
    pub warmup: crate::warmup::WarmupArgs,
}

impl Config {
    /// The load-shedding bounds of the flags.
    pub fn shed_limits(&self) -> ShedLimits {
        ShedLimits::new(
            self.max_rankings_in_flight,
            self.max_queued_rankings,
            Duration::from_millis(self.max_ranking_queue_wait_ms),
        )
    }

    /// The Redis of the flags (`None`: the embedded store); both `--redis-url` and
    /// `--redis-cluster-nodes` is an error.
    pub fn redis_target(&self) -> Result<Option<RedisTarget>, RedisConfigError> {
        RedisTarget::of_flags(self.redis_url.as_ref(), &self.redis_cluster_nodes)
    }

    /// The Redis TLS files of the flags.
    pub fn redis_tls_files(&self) -> RedisTlsFiles {
        RedisTlsFiles {
            ca_file: self.redis_ca_file.clone(),
            client_cert: self.redis_client_cert.clone(),
            client_key: self.redis_client_key.clone(),
        }
    }
}
