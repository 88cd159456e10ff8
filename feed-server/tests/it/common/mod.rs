//! Test harness: a real `redis-server` on a free loopback port (temporary directory, killed on
//! drop), a real Redis Cluster ([`cluster`]), and the feed-server application served in process
//! on an ephemeral port.

#![allow(dead_code)]

pub mod cluster;
pub mod tls;

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use feed_server::config::Config;
use feed_server::store::redis_conn::RedisTarget;
use feed_server::store::redis_store::RedisSettings;
use feed_server::store::{IngestMetrics, IngestSettings, RedisStore};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// Which store the app runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    /// A Redis Cluster (3 masters, 3 replicas) shared by the tests of the process that run at
    /// the same time, each app under its own key prefix.
    Cluster,
    /// One Redis server, the shared aggregates folded in each replica
    /// (`--shared-aggregates process`, checkpoints every 200 ms).
    Process,
    /// The shared Redis Cluster, the shared aggregates folded in each replica.
    ClusterProcess,
}

impl Backend {
    /// Whether the shared aggregates are folded in process (`--shared-aggregates process`).
    pub fn in_process(self) -> bool {
        matches!(self, Backend::Process | Backend::ClusterProcess)
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Starts the redis-server `command` (output discarded) and waits until it listens on `port`.
pub fn run_redis(mut command: Command, port: u16) -> Child {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server not found: run `make deps` (scripts/install-deps.sh)");
    wait_for_port(port);
    child
}

/// Waits (up to 10 s) until a server listens on loopback `port`.
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not start on port {port}");
}

/// A redis-server process owned by the test.
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts redis-server (append-only persistence in a temp dir) and waits until it answers.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut child = Command::new("redis-server");
        child
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--dir")
            .arg(self.dir.path());
        self.child = Some(run_redis(child, self.port));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A Redis store on this server under `prefix`, with no shared cache (every read goes to
    /// Redis) and the default ingest settings (no consumer runs unless the test starts one).
    pub fn store(&self, prefix: &str) -> Arc<RedisStore> {
        Arc::new(self.plain_store(prefix))
    }

    /// [`RedisServer::store`] with these ingest settings and metrics.
    pub fn store_with_ingest(
        &self,
        prefix: &str,
        ingest: IngestSettings,
        metrics: IngestMetrics,
    ) -> Arc<RedisStore> {
        Arc::new(self.plain_store(prefix).with_ingest(ingest, metrics))
    }

    fn plain_store(&self, prefix: &str) -> RedisStore {
        RedisStore::connect(&RedisSettings {
            target: RedisTarget::Single(self.url().into()),
            prefix: prefix.to_owned(),
            timeout: Duration::from_secs(2),
            shared_cache: Duration::ZERO,
        })
        .expect("connect")
    }

    /// A plain blocking connection, for a test to read or write Redis behind the store's back.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("redis connection")
    }

    /// Stops the server (SIGTERM: it flushes its append-only file) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the process: connections stay open, answers stop.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let sig = if frozen { "-STOP" } else { "-CONT" };
            let _ = Command::new("kill")
                .arg(sig)
                .arg(child.id().to_string())
                .status();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.freeze(false);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The status and the body (as JSON, or as a string when it is not JSON) of a response.
async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A feed-server served in process, and the client to call it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub redis: Option<RedisServer>,
    pub cluster: Option<Arc<cluster::RedisCluster>>,
    /// `--redis-prefix` of the app.
    pub redis_prefix: String,
    pub profile_path: Option<PathBuf>,
    _profile_dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
}

/// Options of a test app.
#[derive(Default)]
pub struct Options {
    /// Profile file content (YAML/JSON).
    pub profile: Option<String>,
    /// Extra command-line flags.
    pub flags: Vec<String>,
}

impl TestApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, options: Options) -> Self {
        let app = Self::launch(backend, options).await;
        app.wait_ready(Duration::from_secs(10)).await;
        app
    }

    /// Builds and serves the app without waiting for it to be ready (for stores that refuse it).
    pub async fn launch(backend: Backend, options: Options) -> Self {
        let profile_dir = tempfile::tempdir().expect("tempdir");
        let redis = matches!(backend, Backend::Redis | Backend::Process).then(RedisServer::start);

        let mut args = vec![
            "feed-server".to_owned(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--rollout".into(),
            "test-rollout".into(),
            "--track".into(),
            "canary".into(),
            "--profile-poll-ms".into(),
            "50".into(),
            "--store-timeout-ms".into(),
            "300".into(),
        ];
        if let Some(r) = &redis {
            args.extend(["--redis-url".into(), r.url()]);
        }
        if backend.in_process() {
            args.extend(
                [
                    "--shared-aggregates",
                    "process",
                    "--checkpoint-interval-ms",
                    "200",
                ]
                .map(String::from),
            );
        }
        let cluster = matches!(backend, Backend::Cluster | Backend::ClusterProcess)
            .then(cluster::RedisCluster::shared);
        if let Some(c) = &cluster {
            static APPS: AtomicUsize = AtomicUsize::new(0);
            let prefix = format!("t{}:", APPS.fetch_add(1, Ordering::Relaxed));
            args.extend(["--redis-cluster-nodes".into(), c.nodes_flag()]);
            args.extend(["--redis-prefix".into(), prefix]);
        }
        let profile_path = options.profile.as_ref().map(|text| {
            let path = profile_dir.path().join("profile.yaml");
            std::fs::write(&path, text).expect("write profile");
            args.extend(["--profile".into(), path.display().to_string()]);
            path
        });
        args.extend(options.flags);
        let config = Config::try_parse_from(args).expect("config");
        let redis_prefix = config.redis_prefix.clone();
        let app = feed_server::server::build(&config)
            .await
            .expect("build app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app.serve(listener, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self {
            base,
            client,
            redis,
            cluster,
            redis_prefix,
            profile_path,
            _profile_dir: profile_dir,
            stop: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Polls /readyz until 200 or the deadline; returns whether it became ready.
    pub async fn wait_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self
                .client
                .get(self.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        status_and_body(r).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .request(method, self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        status_and_body(r).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, body).await
    }

    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let r = self
            .client
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        status_and_body(r).await
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Puts videos, asserting success.
    pub async fn put_videos(&self, videos: &[Value]) {
        let (status, body) = self.put("/v1/videos", &Value::Array(videos.to_vec())).await;
        assert_eq!(status, 200, "put videos: {body}");
    }

    /// Posts events, asserting they were all accepted.
    pub async fn events(&self, events: Vec<Value>) {
        let n = events.len();
        let (status, body) = self.post("/v1/events", &json!({ "events": events })).await;
        assert_eq!(status, 200, "events: {body}");
        assert_eq!(body["accepted"], n, "events: {body}");
        self.settle().await;
    }

    /// Polls the unlabelled series `name` until `holds` its value (`None`: not exported), at
    /// most `within`; returns the metrics text it held in, and panics naming `what` otherwise.
    pub async fn wait_metric(
        &self,
        name: &str,
        within: Duration,
        what: &str,
        holds: impl Fn(Option<f64>) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.metrics().await;
            let value = metric(&text, name, &[]);
            if holds(value) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {within:?} ({name} is {value:?})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// On Redis, waits (up to 10 s) until the shared aggregates hold every accepted event (the
    /// ingest stream's consumer applies them within the lag bound; the embedded store at once),
    /// then until the server has polled the counter change feed since: what it holds in process
    /// (counters, duration totals) trails Redis by that poll (README, "Replicas").
    pub async fn settle(&self) {
        if self.redis.is_none() && self.cluster.is_none() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        self.wait_metric(
            "feed_event_backlog",
            Duration::from_secs(10),
            "events not applied",
            |backlog| backlog.unwrap_or(0.0) <= 0.0,
        )
        .await;
        // The gauge is the replica's last reading, and a follower's poll that Redis answered
        // before an accept may be read after the accept's reply: on a Redis of the test's own,
        // wait for the count Redis holds (0 once applied, or in process mode checkpointed and
        // logged).
        if let Some(redis) = &self.redis {
            let key = format!("{}{{shared}}:evq", self.redis_prefix);
            let mut conn = redis.connection();
            loop {
                let left: Option<i64> = redis::cmd("GET").arg(&key).query(&mut conn).expect("get");
                if left.unwrap_or(0) <= 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "{left:?} events not applied");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let applied = unix_secs();
        self.wait_metric(
            "feed_counter_feed_read_timestamp_seconds",
            deadline.saturating_duration_since(Instant::now()),
            "the counter change feed not polled",
            |read_at| read_at.unwrap_or(0.0) >= applied,
        )
        .await;
    }

    /// The feed page for a user (status must be 200).
    pub async fn feed(&self, user: &str, query: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/feed?user_id={user}{query}")).await;
        assert_eq!(status, 200, "feed: {body}");
        body
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A video JSON value published `hours_ago` hours ago.
pub fn video(id: &str, creator: &str, tags: &[&str], hours_ago: i64) -> Value {
    let published: DateTime<Utc> = Utc::now() - chrono::Duration::hours(hours_ago);
    json!({
        "id": id, "creator_id": creator, "published_at": published.to_rfc3339(),
        "duration_ms": 30_000, "language": "en", "region": "US", "tags": tags, "content_type": "short"
    })
}

/// A catalog of `n` videos over `creators` creators, each with one of 6 tags, 1 hour old.
pub fn catalog(n: usize, creators: usize) -> Vec<Value> {
    const TAGS: [&str; 6] = ["music", "dance", "food", "pets", "tech", "travel"];
    (0..n)
        .map(|i| {
            video(
                &format!("v{i}"),
                &format!("c{}", i % creators),
                &[TAGS[i % TAGS.len()]],
                1,
            )
        })
        .collect()
}

/// Item ids of a feed response.
pub fn ids(feed: &Value) -> Vec<String> {
    feed["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["video_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs each listed async test function on each listed store: `on_stores!([memory => Memory,
/// redis => Redis] test_a, test_b)` makes `test_a::memory`, `test_a::redis`, ….
#[macro_export]
macro_rules! on_stores {
    (@one [$($store:ident => $backend:ident),*] $name:ident) => {
        mod $name {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $store() { super::$name(Backend::$backend).await }
            )*
        }
    };
    ($stores:tt $($name:ident),* $(,)?) => {
        $( $crate::on_stores!(@one $stores $name); )*
    };
}

/// Runs each listed async test function against both stores (Redis with the shared aggregates
/// on Redis and in process).
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $crate::on_stores!([memory => Memory, redis => Redis, process => Process] $($name),*);
    };
}

/// Runs each listed async test function against the embedded store, one Redis server and a
/// Redis Cluster, the shared aggregates on Redis and in process on both.
#[macro_export]
macro_rules! all_stores {
    ($($name:ident),* $(,)?) => {
        $crate::on_stores!([memory => Memory, redis => Redis, cluster => Cluster, process => Process, cluster_process => ClusterProcess] $($name),*);
    };
}

/// A replica on `redis` (`--redis-url`) with `flags`, the embedded store's harness otherwise:
/// several of them share one Redis, as replicas behind a load balancer do.
pub async fn replica_on(redis: &RedisServer, flags: &[&str]) -> TestApp {
    let mut flags: Vec<String> = flags.iter().map(ToString::to_string).collect();
    flags.extend(["--redis-url".into(), redis.url()]);
    TestApp::start_with(
        Backend::Memory,
        Options {
            flags,
            ..Options::default()
        },
    )
    .await
}

/// Waits until every accepted batch was applied (`feed:{shared}:evq` 0 and the ingest stream
/// empty), at most `within`.
pub fn wait_applied(conn: &mut redis::Connection, within: Duration) {
    let deadline = Instant::now() + within;
    let left = |conn: &mut redis::Connection| -> (i64, i64) {
        let backlog: Option<i64> = redis::cmd("GET")
            .arg("feed:{shared}:evq")
            .query(conn)
            .expect("get");
        let batches: i64 = redis::cmd("XLEN")
            .arg("feed:{shared}:ev")
            .query(conn)
            .expect("xlen");
        (backlog.unwrap_or(0), batches)
    };
    loop {
        let (backlog, batches) = left(conn);
        if (backlog, batches) == (0, 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backlog {backlog} events, {batches} batches not applied within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the feed-server binary with `args` and the environment `env`; returns whether it exited
/// successfully and what it printed (stdout, then stderr).
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_feed-server"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run feed-server");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The value of the first sample of `name` whose labels include every `(key, value)` of
/// `labels`, parsed from the Prometheus text format (label order does not matter).
/// Now, in Unix seconds (as the server's timestamp gauges).
pub fn unix_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric_name != name {
                return None;
            }
            let have: Vec<(&str, &str)> = label_text
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.trim_matches(','), v.trim_matches('"')))
                })
                .collect();
            labels
                .iter()
                .all(|l| have.contains(l))
                .then(|| value.parse().ok())
                .flatten()
        })
}
