//! A real Redis Cluster for the tests: three masters and three replicas (`redis-server
//! --cluster-enabled yes` on free loopback ports in a temporary directory, joined by
//! `redis-cli --cluster create … --cluster-replicas 1`), killed on drop.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Nodes of a test cluster: three masters, one replica each.
const NODES: usize = 6;

/// How long a node may be silent before the others fail it over (ms). Long enough that a
/// loaded CI machine does not trigger failovers by itself, short enough for the failover test.
const NODE_TIMEOUT_MS: u64 = 2_000;

/// A running cluster owned by the test (or shared by the tests of one process, see
/// [`RedisCluster::shared`]).
pub struct RedisCluster {
    /// The nodes' ports, in start order.
    pub ports: Vec<u16>,
    children: Mutex<Vec<Option<Child>>>,
    _dir: TempDir,
}

/// Six distinct free loopback ports whose cluster bus ports (port + 10000) are free too.
fn cluster_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < NODES {
        let port = rand::random_range(20_000..55_000);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if !ports.contains(&port) && free(port) && free(port + 10_000) {
            ports.push(port);
        }
    }
    ports
}

/// The cluster the tests of this process share while at least one of them holds it.
static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok` and every replica is in sync with its master. Tries again on other
    /// ports when a node cannot start or the cluster cannot be created (another process of a
    /// parallel test run may take a port between its choice and its use).
    pub fn start() -> Self {
        let mut errors = Vec::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(cluster) => {
                    cluster.wait_healthy(Duration::from_secs(30));
                    return cluster;
                }
                Err(e) => errors.push(e),
            }
        }
        panic!("cannot start a Redis Cluster: {errors:?}");
    }

    fn try_start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cluster = Self {
            ports: cluster_ports(),
            children: Mutex::new(Vec::new()),
            _dir: dir,
        };
        for &port in &cluster.ports {
            let node_dir = cluster._dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).map_err(|e| e.to_string())?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                // A replica's first sync starts at once (the default waits 5 s for more
                // replicas to share one diskless transfer).
                .args(["--repl-diskless-sync-delay", "0"])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server not found: run `make deps` (scripts/install-deps.sh)");
            let pid = child.id();
            cluster
                .children
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Some(child));
            cluster.wait_own_node(port, pid)?;
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        create.args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = create
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli not found: run `make deps` (scripts/install-deps.sh)");
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(cluster)
    }

    /// Waits (up to 10 s) until the node started as process `pid` answers on `port` (and not
    /// another process that holds the port).
    fn wait_own_node(&self, port: u16, pid: u32) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let own = format!("process_id:{pid}");
        while Instant::now() < deadline {
            if self.cli(port, &["INFO", "server"]).contains(&own) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server (pid {pid}) did not start on port {port}"
        ))
    }

    /// The cluster shared by the tests of this process that run at the same time (each app
    /// uses its own key prefix); started when none is running, stopped with its last holder.
    pub fn shared() -> Arc<Self> {
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Self::start());
        *shared = Arc::downgrade(&cluster);
        cluster
    }

    /// The `--redis-cluster-nodes` value: every node, as seed.
    pub fn nodes_flag(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `redis-cli -p port args…` (the reply as text; empty when the node does not answer).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    /// `redis-cli -c` (follows redirections) against any live node.
    pub fn cli_any(&self, args: &[&str]) -> String {
        for &port in &self.ports {
            if self.is_alive(port) {
                return Command::new("redis-cli")
                    .args(["-c", "-p", &port.to_string()])
                    .args(args)
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .unwrap_or_default();
            }
        }
        String::new()
    }

    fn is_alive(&self, port: u16) -> bool {
        let index = self.ports.iter().position(|p| *p == port);
        let children = self
            .children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        index.is_some_and(|i| children[i].is_some())
    }

    /// The port of the master serving `key`'s slot, as the live nodes see it now.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = self
            .cli_any(&["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("keyslot");
        let nodes = self.cli_any(&["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((a, b)) => {
                    a.parse::<u16>().is_ok_and(|a| a <= slot)
                        && b.parse::<u16>().is_ok_and(|b| slot <= b)
                }
                None => range.parse::<u16>() == Ok(slot),
            });
            if serves {
                let port = fields[1]
                    .split('@')
                    .next()
                    .and_then(|addr| addr.rsplit_once(':'))
                    .and_then(|(_, p)| p.parse().ok())
                    .expect("node address");
                return port;
            }
        }
        panic!("no master serves slot {slot}: {nodes}");
    }

    /// Kills a node with SIGKILL (a crash: no goodbye to the others).
    pub fn kill(&self, port: u16) {
        let index = self.ports.iter().position(|p| *p == port).expect("a node");
        let mut children = self
            .children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mut child) = children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every replica of `master` has received everything `master` has written so
    /// far (its replication offset), at most `within`: what a test kills after that, Redis kept.
    /// (Replication is asynchronous and the server sends no `WAIT`: a write acknowledged just
    /// before a master dies can be lost, as documented in feed-server/README.md.)
    pub fn wait_replicated(&self, master: u16, within: Duration) {
        let field = |text: &str, name: &str| -> Option<u64> {
            text.split([',', '\n', '\r'])
                .find_map(|kv| kv.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        let info = self.cli(master, &["INFO", "replication"]);
        let written = field(&info, "master_repl_offset:").expect("master_repl_offset");
        poll_until(within, Duration::from_millis(20), || {
            let info = self.cli(master, &["INFO", "replication"]);
            let replicas: Vec<&str> = info
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("ip="))
                .collect();
            let caught_up = !replicas.is_empty()
                && replicas.iter().all(|r| {
                    r.contains("state=online") && field(r, "offset=").is_some_and(|o| o >= written)
                });
            caught_up.then_some(()).ok_or_else(|| {
                format!("the replicas of {master} did not reach offset {written}: {info}")
            })
        });
    }

    /// Waits until every live node reports `cluster_state:ok` and every live replica's link to
    /// its master is up.
    pub fn wait_healthy(&self, within: Duration) {
        poll_until(within, Duration::from_millis(100), || {
            let live: Vec<u16> = self
                .ports
                .iter()
                .copied()
                .filter(|p| self.is_alive(*p))
                .collect();
            let healthy = live.iter().all(|&p| {
                let info = self.cli(p, &["CLUSTER", "INFO"]);
                let replication = self.cli(p, &["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            });
            healthy
                .then_some(())
                .ok_or_else(|| "the cluster is not healthy".to_owned())
        });
    }
}

/// Calls `check` every `every` until it succeeds; panics with its last error once `within` has
/// passed.
fn poll_until(within: Duration, every: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(()) => return,
            Err(why) => assert!(Instant::now() < deadline, "{why} (within {within:?})"),
        }
        std::thread::sleep(every);
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let children = self.children.get_mut().unwrap_or_else(|e| e.into_inner());
        for child in children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
