//! The one connection the Redis store talks through: a single Redis (a reconnecting
//! [`ConnectionManager`]) or a Redis Cluster (a slot-routing [`ClusterConnection`]), chosen at
//! start-up. The store builds the same commands and pipelines for both.
//!
//! On a cluster a pipeline goes to the node of its keys' slot. A pipeline whose keys span slots
//! (the store's reads that mix shared and per-user keys) is split by slot, the parts sent to
//! their nodes at once and the replies put back in the pipeline's order, so it still costs one
//! round trip. Two rules follow, both kept by the store (`store::keys` puts what belongs together
//! in one slot):
//! - a transaction (MULTI/EXEC) or a script names keys of one slot only: the cluster refuses
//!   anything else with `CROSSSLOT`, which reaches the caller as [`StoreError::Unavailable`];
//! - a pipeline that spans slots is either read whole ([`RedisLink::query`]: no `ignore()`, every
//!   reply is returned) or not at all ([`RedisLink::exec`]).
//!
//! Every call is bounded by the store timeout: the connection manager's own connection and
//! response timeouts on one server (which keep its error, e.g. a refused certificate), an outer
//! deadline on a cluster, also while it re-discovers its slots during a failover: requests fail
//! fast with [`StoreError::Unavailable`] and succeed again by themselves once a replica has been
//! promoted.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, Value};

use super::StoreError;

/// A single Redis or a cluster; cheap to clone (both share their connections).
#[derive(Clone)]
pub enum RedisLink {
    /// One Redis server (`--redis-url`); its connection manager bounds every call itself.
    Single(ConnectionManager),
    /// A Redis Cluster (`--redis-cluster-nodes`) and the store timeout that bounds every call.
    Cluster(ClusterConnection, Duration),
}

/// Where a pipeline goes on a cluster.
#[derive(Debug, PartialEq)]
enum Plan {
    /// All its keys are in one slot (or it has none): sent as it is.
    Whole,
    /// Command indices by slot, in the pipeline's order within each part.
    Split(Vec<Vec<usize>>),
}

/// The key a command is routed by, for the commands the store sends: the first key of a
/// script call, the first stream of `XREAD`/`XREADGROUP`, the key of `XGROUP <sub> key`, the
/// first argument otherwise; `None` for keyless commands (`PING`, a script without keys).
fn command_key(cmd: &Cmd) -> Option<&[u8]> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .map_while(|a| match a {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"PING" => None,
        b"EVAL" | b"EVALSHA" => {
            let numkeys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            (numkeys > 0).then(|| args.get(3).copied()).flatten()
        }
        b"XREAD" | b"XREADGROUP" => {
            let streams = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
            args.get(streams + 1).copied()
        }
        b"XGROUP" => args.get(2).copied(),
        _ => args.get(1).copied(),
    }
}

/// How a cluster runs `pipe`: whole when it is a transaction (which must be one slot) or its
/// keys are in one slot; otherwise split by slot (keyless commands join the first part).
fn plan(pipe: &Pipeline) -> Plan {
    if pipe.is_transaction() {
        return Plan::Whole;
    }
    let mut parts: Vec<(Option<Slot>, Vec<usize>)> = Vec::new();
    let mut index: HashMap<Option<Slot>, usize> = HashMap::new();
    for (i, cmd) in pipe.cmd_iter().enumerate() {
        let r = command_key(cmd).map(Slot::for_key);
        let part = *index.entry(r).or_insert_with(|| {
            parts.push((r, Vec::new()));
            parts.len() - 1
        });
        parts[part].1.push(i);
    }
    // Keyless commands may go anywhere: with the first keyed part.
    if let Some(keyless) = index.get(&None).copied()
        && parts.len() > 1
    {
        let (_, moved) = parts.remove(keyless);
        parts[0].1.extend(moved);
        parts[0].1.sort_unstable();
    }
    if parts.len() <= 1 {
        Plan::Whole
    } else {
        Plan::Split(parts.into_iter().map(|(_, cmds)| cmds).collect())
    }
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Bounds a cluster call by `timeout` (it retries redirections and reconnects internally).
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from Redis within {} ms",
            timeout.as_millis()
        ))),
    }
}

impl RedisLink {
    /// Whether this is a cluster (some writes are then split by slot, see `redis_store`).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(..))
    }

    /// Runs `pipe` and returns its replies (ignored commands excepted; on a
    /// cluster, see the module docs for pipelines that span slots).
    pub async fn query(&self, pipe: &Pipeline) -> Result<Vec<Value>, StoreError> {
        match self {
            Self::Single(conn) => {
                let mut conn = conn.clone();
                pipe.query_async(&mut conn).await.map_err(unavailable)
            }
            Self::Cluster(conn, timeout) => match plan(pipe) {
                Plan::Whole => {
                    let mut conn = conn.clone();
                    bounded(*timeout, pipe.query_async(&mut conn)).await
                }
                Plan::Split(parts) => {
                    let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
                    let calls = parts.iter().map(|part| {
                        let mut sub = redis::pipe();
                        for &i in part {
                            sub.add_command(cmds[i].clone());
                        }
                        let mut conn = conn.clone();
                        async move { sub.query_async::<Vec<Value>>(&mut conn).await }
                    });
                    let replies = bounded(*timeout, futures::future::try_join_all(calls)).await?;
                    let mut ordered: Vec<Option<Value>> = vec![None; cmds.len()];
                    for (part, values) in parts.iter().zip(replies) {
                        if values.len() != part.len() {
                            return Err(StoreError::Corrupt("short pipeline reply".to_owned()));
                        }
                        for (&i, v) in part.iter().zip(values) {
                            ordered[i] = Some(v);
                        }
                    }
                    ordered
                        .into_iter()
                        .map(|v| v.ok_or_else(|| StoreError::Corrupt("missing reply".to_owned())))
                        .collect()
                }
            },
        }
    }

    /// Runs `pipe`, discarding its replies.
    pub async fn exec(&self, pipe: &Pipeline) -> Result<(), StoreError> {
        self.query(pipe).await.map(|_| ())
    }

    /// Runs one command (routed by its key on a cluster; `PING` asks every
    /// master).
    pub async fn cmd<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        match self {
            Self::Single(conn) => {
                let mut conn = conn.clone();
                cmd.query_async(&mut conn).await.map_err(unavailable)
            }
            Self::Cluster(conn, timeout) => {
                let mut conn = conn.clone();
                bounded(*timeout, cmd.query_async(&mut conn)).await
            }
        }
    }

    /// Runs one command, keeping Redis's own error (for callers that tell error codes apart,
    /// like `BUSYGROUP`); a timeout is reported as an I/O error.
    pub async fn cmd_raw(&self, cmd: &Cmd) -> Result<Value, RedisError> {
        match self {
            Self::Single(conn) => cmd.query_async(&mut conn.clone()).await,
            Self::Cluster(conn, timeout) => {
                tokio::time::timeout(*timeout, cmd.query_async(&mut conn.clone()))
                    .await
                    .unwrap_or_else(|_| {
                        Err(RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no answer from Redis within the store timeout",
                        )))
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_pipelines_and_transactions_go_whole() {
        let mut pipe = redis::pipe();
        pipe.get("a{t}").hgetall("b{t}").cmd("PING");
        assert_eq!(plan(&pipe), Plan::Whole);
        let mut tx = redis::pipe();
        tx.atomic().set("x", 1).set("y", 2);
        assert_eq!(plan(&tx), Plan::Whole, "a transaction is never split");
        assert_eq!(plan(&redis::pipe()), Plan::Whole);
    }

    #[test]
    fn pipelines_over_several_slots_split_by_slot_in_order() {
        let mut pipe = redis::pipe();
        pipe.get("a{s}")
            .get("b{u:1}")
            .cmd("PING")
            .get("c{s}")
            .zrange("d{u:1}", 0, 1)
            .get("e{u:2}");
        assert_eq!(
            plan(&pipe),
            Plan::Split(vec![vec![0, 2, 3], vec![1, 4], vec![5]])
        );
    }

    #[test]
    fn scripts_and_streams_are_routed_by_their_keys() {
        let key = |cmd: &Cmd| command_key(cmd).map(<[u8]>::to_vec);
        let mut eval = redis::cmd("EVAL");
        eval.arg("return 1").arg(1).arg("k{u:1}").arg("x");
        assert_eq!(key(&eval), Some(b"k{u:1}".to_vec()));
        let mut keyless = redis::cmd("eval");
        keyless.arg("return 1").arg(0);
        assert_eq!(key(&keyless), None);
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg("g").arg("c").arg("COUNT").arg(5);
        read.arg("STREAMS").arg("s{shared}:ev").arg(">");
        assert_eq!(key(&read), Some(b"s{shared}:ev".to_vec()));
        let mut group = redis::cmd("XGROUP");
        group.arg("CREATE").arg("s{shared}:ev").arg("g").arg("0");
        assert_eq!(key(&group), Some(b"s{shared}:ev".to_vec()));
        assert_eq!(key(&redis::cmd("PING")), None);
    }
}
