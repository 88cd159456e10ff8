//! Child processes of a scenario: Redis, Prometheus and feed-servers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The program could not be run.
    #[error("cannot start {program}: {source} (run `make deps`)")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It started but never became ready.
    #[error("{0} did not become ready in time")]
    NotReady(String),
    /// Building the fault-injectable feed-server failed.
    #[error("building feed-server with fault-injection failed: {0}")]
    Build(String),
    /// File-system trouble in the scenario's temp dir.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A free loopback port.
pub fn free_port() -> Result<u16, ProcError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process killed (and reaped) on drop.
pub struct Proc {
    name: String,
    child: Option<Child>,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Result<Self, ProcError> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| ProcError::Spawn {
                program: name.to_owned(),
                source,
            })?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
        })
    }

    /// Process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has exited (e.g. crashed).
    pub fn exited(&mut self) -> bool {
        matches!(
            self.child.as_mut().map(Child::try_wait),
            Some(Ok(Some(_))) | None
        )
    }

    /// Kills the process now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        tracing::debug!(name = %self.name, "stopped");
    }
}

fn wait_tcp(port: u16, what: &str, within: Duration) -> Result<(), ProcError> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(ProcError::NotReady(what.to_owned()))
}

/// A redis-server.
pub struct Redis {
    /// Port on 127.0.0.1.
    pub port: u16,
    _proc: Proc,
    _dir: TempDir,
}

impl Redis {
    /// Starts redis-server without persistence.
    pub fn start() -> Result<Self, ProcError> {
        Self::start_on(free_port()?)
    }

    /// Starts redis-server without persistence on `port` (e.g. one a feed-server already
    /// points at, to let it become ready late).
    pub fn start_on(port: u16) -> Result<Self, ProcError> {
        let dir = tempfile::tempdir()?;
        let proc = Proc::spawn(
            "redis-server",
            Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir.path()),
        )?;
        wait_tcp(port, "redis-server", Duration::from_secs(10))?;
        Ok(Self {
            port,
            _proc: proc,
            _dir: dir,
        })
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// A Prometheus server scraping the given targets every second.
pub struct Prometheus {
    /// Port on 127.0.0.1.
    pub port: u16,
    proc: Proc,
    dir: TempDir,
    targets: Vec<String>,
}

impl Prometheus {
    /// Writes the config and starts Prometheus (Debian's package).
    pub fn start(targets: &[String]) -> Result<Self, ProcError> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let targets = targets.to_vec();
        let proc = Self::spawn(dir.path(), port, &targets)?;
        Ok(Self {
            port,
            proc,
            dir,
            targets,
        })
    }

    fn spawn(dir: &Path, port: u16, targets: &[String]) -> Result<Proc, ProcError> {
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: feed-server\n    static_configs:\n      - targets: [{}]\n",
            quoted.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let data = dir.join("data");
        let proc = Proc::spawn(
            "prometheus",
            Command::new("prometheus")
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=error"),
        )?;
        wait_tcp(port, "prometheus", Duration::from_secs(30))?;
        Ok(proc)
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills it (an outage).
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Starts it again on the same port and data (after [`Prometheus::kill`]).
    pub fn restart(&mut self) -> Result<(), ProcError> {
        self.proc.kill();
        self.proc = Self::spawn(self.dir.path(), self.port, &self.targets)?;
        Ok(())
    }
}

/// Environment variable naming a feed-server binary already built with the `fault-injection`
/// feature (`make test` builds one beside the workspace's own build, sharing its dependencies).
pub const FAULTY_FEED_SERVER_ENV: &str = "FEEDROLL_FAULTY_FEED_SERVER";

/// Path of a feed-server binary built with the `fault-injection` feature: the one
/// [`FAULTY_FEED_SERVER_ENV`] names, or else one built once per process into its own target
/// directory (`target/e2e`), so the workspace's ordinary builds never get the feature.
pub fn faulty_feed_server() -> Result<PathBuf, ProcError> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(given) = std::env::var_os(FAULTY_FEED_SERVER_ENV) {
                let given = PathBuf::from(given);
                return if given.is_file() {
                    Ok(given)
                } else {
                    Err(format!(
                        "{FAULTY_FEED_SERVER_ENV}={} is not a file",
                        given.display()
                    ))
                };
            }
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let target = root.join("target").join("e2e");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = Command::new(cargo)
                .current_dir(&root)
                // No debug info: a lighter second build of feed-server and its dependencies.
                .env("CARGO_PROFILE_DEV_DEBUG", "0")
                .args([
                    "build",
                    "-q",
                    "-p",
                    "feed-server",
                    "--features",
                    "fault-injection",
                    "--target-dir",
                ])
                .arg(&target)
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            Ok(target.join("debug").join("feed-server"))
        })
        .clone()
        .map_err(ProcError::Build)
}

/// One feed-server process of the rollout.
pub struct FeedServer {
    /// `stable` or `canary`.
    pub track: String,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// The process.
    pub proc: Proc,
    profile: PathBuf,
}

impl FeedServer {
    /// Starts a feed-server on the shared Redis with the given track, rollout name and profile
    /// file content, and waits for `/readyz`.
    pub async fn start(
        redis: &Redis,
        rollout: &str,
        track: &str,
        profile: &str,
        dir: &Path,
    ) -> Result<Self, ProcError> {
        let server = Self::spawn(&redis.url(), rollout, track, profile, dir)?;
        server.wait_ready(Duration::from_secs(30)).await?;
        Ok(server)
    }

    /// Starts a feed-server on the Redis at `redis_url` without waiting for it to be ready:
    /// while that Redis does not answer, it serves `/healthz` and `/metrics` and answers
    /// `/readyz` with 503 (warm-up not done).
    pub fn spawn(
        redis_url: &str,
        rollout: &str,
        track: &str,
        profile: &str,
        dir: &Path,
    ) -> Result<Self, ProcError> {
        let port = free_port()?;
        let path = dir.join(format!("profile-{track}-{port}.yaml"));
        std::fs::write(&path, profile)?;
        let binary = faulty_feed_server()?;
        let proc = Proc::spawn(
            "feed-server",
            Command::new(binary)
                .env("FEED_LISTEN", format!("127.0.0.1:{port}"))
                .env("FEED_REDIS_URL", redis_url)
                .env("FEED_ROLLOUT", rollout)
                .env("FEED_TRACK", track)
                .env("FEED_PROFILE", &path)
                .env("FEED_PROFILE_POLL_MS", "200")
                .env("FEED_WARMUP_USERS", "0"),
        )?;
        let server = Self {
            track: track.to_owned(),
            port,
            proc,
            profile: path,
        };
        wait_tcp(port, "feed-server", Duration::from_secs(30))?;
        Ok(server)
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `host:port` for the scrape config.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Polls `/readyz`.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), ProcError> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if client
                .get(format!("{}/readyz", self.url()))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ProcError::NotReady(format!("feed-server {}", self.track)))
    }

    /// Sets the injected faults (`POST /debug/faults`).
    pub async fn set_faults(&self, faults: serde_json::Value) -> Result<(), reqwest::Error> {
        reqwest::Client::new()
            .post(format!("{}/debug/faults", self.url()))
            .json(&faults)
            .send()
            .await?
            .error_for_status()
            .map(|_| ())
    }

    /// Replaces the profile file (atomically); the server hot-reloads it.
    pub fn set_profile(&self, profile: &str) -> Result<(), ProcError> {
        let tmp = self.profile.with_extension("tmp");
        std::fs::write(&tmp, profile)?;
        std::fs::rename(&tmp, &self.profile)?;
        Ok(())
    }
}
