//! Redis Cluster failover: a master killed (SIGKILL) while events and feeds are served. Requests
//! fail fast during the failover (503 `store_unavailable`, bounded by the store timeout), succeed
//! again by themselves once a replica is promoted, and every accepted event is applied to the
//! shared aggregates exactly once. (The whole black-box HTTP suite also runs on a cluster:
//! `tests/it/api.rs`.)

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::RedisCluster;
use common::{Backend, Options, TestApp, catalog, run_binary};
use serde_json::json;

/// Longest a failing request may take: the store timeout is 300 ms and an event batch makes
/// at most three store calls one after another on a cluster.
const FAST: Duration = Duration::from_millis(2_000);

/// The three users of request `i` (each in its own cluster slot, most likely): the exposure
/// log tells requests apart by them.
fn users(i: usize) -> [String; 3] {
    [0, 1, 2].map(|k| format!("w{i}-{k}"))
}

/// The three events of request `i`, one per user.
fn batch(i: usize) -> serde_json::Value {
    let events: Vec<_> = users(i)
        .iter()
        .enumerate()
        .map(|(k, user)| json!({"user_id": user, "video_id": format!("v{}", (i + k) % 20), "type": "impression"}))
        .collect();
    json!({ "events": events })
}

/// Users of the exposure log entries under `prefix`, with their number of entries.
fn logged_users(cluster: &RedisCluster, prefix: &str) -> HashMap<String, usize> {
    let client = redis::cluster::ClusterClient::new(
        cluster
            .ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>(),
    )
    .expect("cluster client");
    let mut conn = client.get_connection().expect("cluster connection");
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(format!("{prefix}{{shared}}:xlog"))
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .expect("xrange");
    let mut users = HashMap::new();
    for (_, fields) in entries {
        *users.entry(fields["u"].clone()).or_default() += 1;
    }
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_requests_fast_and_the_cluster_recovers_losing_nothing() {
    let cluster = Arc::new(RedisCluster::start());
    let prefix = "fo:";
    let options = Options {
        flags: vec![
            "--redis-cluster-nodes".into(),
            cluster.nodes_flag(),
            "--redis-prefix".into(),
            prefix.into(),
        ],
        ..Options::default()
    };
    let mut app = TestApp::start_with(Backend::Memory, options).await;
    app.cluster = Some(cluster.clone());
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["store"], "redis", "{ready}");
    app.put_videos(&catalog(20, 4)).await;

    let shared_master = cluster.master_of(&format!("{prefix}{{shared}}:ev"));
    let mut accepted: Vec<usize> = Vec::new();
    let mut failed: Vec<usize> = Vec::new();
    let mut killed_at: Option<Instant> = None;
    let mut recovered_after: Option<Duration> = None;
    let mut streak = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0.. {
        assert!(Instant::now() < deadline, "no recovery within 60 s");
        if i == 30 {
            // What Redis kept: everything before the kill has reached the replica.
            cluster.wait_replicated(shared_master, Duration::from_secs(10));
            cluster.kill(shared_master);
            killed_at = Some(Instant::now());
        }
        let started = Instant::now();
        let (status, body) = app.post("/v1/events", &batch(i)).await;
        let took = started.elapsed();
        if status == 200 {
            assert_eq!(body["accepted"], 3, "{body}");
            accepted.push(i);
            if let (Some(at), None, false) = (killed_at, recovered_after, failed.is_empty()) {
                recovered_after = Some(at.elapsed());
            }
        } else {
            assert_eq!(
                (status, &body["error"]["code"]),
                (503, &json!("store_unavailable")),
                "{body}"
            );
            assert!(took < FAST, "a failing request took {took:?}");
            assert!(
                killed_at.is_some(),
                "a request failed before the kill: {body}"
            );
            failed.push(i);
        }
        let started = Instant::now();
        let (feed_status, feed) = app.get(&format!("/v1/feed?user_id=w{i}-0&limit=5")).await;
        assert!(
            feed_status == 200
                || (feed["error"]["code"] == "store_unavailable" && started.elapsed() < FAST),
            "{feed_status} {feed} after {:?}",
            started.elapsed()
        );
        // Twenty requests in a row accepted after the failover: recovered.
        if status == 200 && !failed.is_empty() {
            streak += 1;
        } else {
            streak = 0;
        }
        if streak >= 20 {
            break;
        }
    }
    assert!(
        !failed.is_empty(),
        "requests fail while the master is failed over"
    );
    let recovered_after = recovered_after.expect("requests succeed again");
    assert!(app.wait_ready(Duration::from_secs(10)).await, "ready again");
    cluster.wait_healthy(Duration::from_secs(20));
    app.settle().await;

    // Exactly once: every accepted request's three events are in the exposure log (applied in
    // the same script as the counters), none twice. A failed request's batch is there whole or
    // not at all (the append is its commit point), and only one in flight at the kill may be
    // there (its reply was lost after Redis kept it).
    let logged = logged_users(&cluster, prefix);
    for (user, n) in &logged {
        assert_eq!(*n, 1, "{user} applied once");
    }
    for i in &accepted {
        for user in users(*i) {
            assert!(logged.contains_key(&user), "{user} accepted, never applied");
        }
    }
    let mut kept_without_200 = 0;
    for i in &failed {
        let kept = users(*i).iter().filter(|u| logged.contains_key(*u)).count();
        assert!(
            kept == 0 || kept == 3,
            "request {i}: {kept} of its 3 events applied"
        );
        kept_without_200 += usize::from(kept == 3);
    }
    assert!(
        kept_without_200 <= 1,
        "only a request in flight at the kill may be kept without its 200: {kept_without_200}"
    );
    eprintln!(
        "failover: {} accepted, {} failed fast, recovered {recovered_after:?} after the kill",
        accepted.len(),
        failed.len()
    );
}

/// Environment variables of a run.
type Env<'a> = Vec<(&'a str, &'a str)>;

#[test]
fn contradictory_or_bad_cluster_flags_stop_the_start_with_a_clear_error() {
    let nodes = "redis://127.0.0.1:1,redis://127.0.0.1:2";
    let cases: Vec<(Vec<&str>, Env<'_>, &str)> = vec![
        (
            vec![
                "--redis-url",
                "redis://127.0.0.1:1",
                "--redis-cluster-nodes",
                nodes,
            ],
            vec![],
            "--redis-url and --redis-cluster-nodes exclude each other",
        ),
        (
            vec!["--redis-url", "redis://127.0.0.1:1"],
            vec![("FEED_REDIS_CLUSTER_NODES", nodes)],
            "--redis-url and --redis-cluster-nodes exclude each other",
        ),
        (
            vec![
                "--redis-cluster-nodes",
                "redis://127.0.0.1:1,rediss://127.0.0.1:2",
            ],
            vec![],
            "must agree on the transport",
        ),
        (
            vec![
                "--redis-cluster-nodes",
                "redis://feed:s3cret@127.0.0.1:1,redis://feed:other@127.0.0.1:2",
            ],
            vec![],
            "must agree on the user and password",
        ),
        (
            vec![
                "--redis-cluster-nodes",
                nodes,
                "--redis-ca-file",
                "/no/ca.pem",
            ],
            vec![],
            "--redis-ca-file needs a TLS URL",
        ),
        (
            vec!["--redis-cluster-nodes", "rediss://127.0.0.1:1#insecure"],
            vec![],
            "turns certificate verification off",
        ),
        (
            vec!["--redis-cluster-nodes", "nonsense"],
            vec![],
            "is not a Redis URL",
        ),
        (
            vec!["--redis-cluster-nodes", nodes, "--redis-prefix", "feed{1}:"],
            vec![],
            "--redis-prefix \"feed{1}:\" holds `{`",
        ),
    ];
    for (args, env, want) in cases {
        let (ok, output) = run_binary(&args, &env);
        assert!(!ok, "{args:?} started");
        assert!(output.contains(want), "{args:?}: {output}");
        assert!(!output.contains("s3cret"), "{output}");
    }
}
