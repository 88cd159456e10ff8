//! The shared aggregates followed from the ingest stream and checkpointed on a real Redis
//! (`store::redis_follower`, `store::redis_checkpoint`): batches accepted by the Redis store
//! (no consumer group running) are folded by every follower exactly once; a follower started
//! from a checkpoint and the rest of the stream, a follower left behind a trim, and one that
//! read every entry all hold what a fold of the accepted batches holds; the stream is never
//! trimmed past what the manifest's checkpoint covers; the manifest moves only forward; the
//! lease admits one writer.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use crate::common::{self, RedisServer, run_binary, unix_secs, wait_applied};

use feed_server::learning::aggregates::{EntryId, SharedAggregates};
use feed_server::learning::shared::SharedDeltas;
use feed_server::learning::{Deltas, TrendingScope, VideoStats, day_of};
use feed_server::model::{Event, EventType, Video};
use feed_server::store::redis_checkpoint::{
    self, CheckpointError, CheckpointSettings, LOG, MOVE, Snapshot, Written,
};
use feed_server::store::redis_follower::{
    CheckpointSchedule, FollowedState, Follower, READ_COUNT, run_checkpoints, run_follower,
};
use feed_server::store::{
    AggregatesMode, IngestMetrics, IngestSettings, RedisStore, Store, run_event_consumer,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::Connection;
use tokio_util::sync::CancellationToken;

/// Unix time of the first day the generated events fall on.
const T0: f64 = 1_700_000_000.0;

fn videos() -> Vec<Video> {
    common::catalog(12, 3)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("video"))
        .collect()
}

/// One event: user, video, kind (index into [`EventType::ALL`]), seconds after [`T0`] (over
/// five days, so trending days expire within a run).
type Generated = (u8, usize, usize, u32);

fn batch() -> impl Strategy<Value = Vec<Generated>> {
    proptest::collection::vec((0u8..5, 0usize..12, 0usize..7, 0u32..5 * 86_400), 1..6)
}

/// The deltas the ingest use case would apply for `events`.
fn deltas(videos: &[Video], events: &[Generated]) -> Deltas {
    let mut d = Deltas::default();
    for &(user, video, kind, secs) in events {
        let v = &videos[video];
        let e = Event {
            user_id: format!("u{user}"),
            video_id: v.id.to_string(),
            kind: EventType::ALL[kind],
            watch_ms: Some(4_000.0),
            ts: None,
            variant: None,
        };
        d.add(&e, v, T0 + f64::from(secs));
    }
    d
}

/// The id of the newest entry of the ingest stream.
fn newest(conn: &mut Connection, prefix: &str) -> EntryId {
    let ids: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
        .arg(format!("{prefix}{{shared}}:ev"))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(conn)
        .expect("xrevrange");
    ids[0].0.parse().expect("entry id")
}

/// The entries of stream `key`.
fn xlen(conn: &mut Connection, key: &str) -> usize {
    redis::cmd("XLEN").arg(key).query(conn).expect("xlen")
}

/// What every follower must hold: the accepted batches folded in stream order.
#[derive(Default)]
struct Reference {
    state: SharedAggregates,
    events: u64,
    ids: Vec<EntryId>,
    /// Events of each entry of `ids`.
    sizes: Vec<u64>,
}

impl Reference {
    fn accept(&mut self, id: EntryId, d: &Deltas) {
        self.state.apply_entry(id, &SharedDeltas::of(d));
        self.events += d.log.len() as u64;
        self.ids.push(id);
        self.sizes.push(d.log.len() as u64);
    }

    fn check(&self, f: &Follower, who: &str) -> Result<(), TestCaseError> {
        let state = f.state().read();
        prop_assert_eq!(
            state.cursor(),
            self.ids.last().copied().unwrap_or(EntryId::START),
            "{} cursor",
            who
        );
        prop_assert!(
            state.aggregates() == &self.state,
            "{} holds another state",
            who
        );
        prop_assert_eq!(state.events(), self.events, "{} events", who);
        Ok(())
    }
}

/// Polls `f` until it has read the whole stream; whether it had to load the checkpoint.
async fn catch_up(f: &Follower) -> bool {
    let mut reloaded = false;
    loop {
        let p = f.poll(READ_COUNT).await.expect("poll");
        reloaded |= p.reloaded;
        if !p.reloaded && p.entries == 0 {
            return reloaded;
        }
    }
}

/// The stream holds exactly the accepted entries from the manifest's trim point on (never
/// fewer: nothing a follower may still need is gone), and the backlog counter the events
/// after the checkpoint.
fn check_stream(
    conn: &mut Connection,
    prefix: &str,
    reference: &Reference,
) -> Result<(), TestCaseError> {
    let manifest: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(format!("{prefix}{{shared}}:ckpt"))
        .query(conn)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let trimmed = manifest.get("trim_ms").map(|&ms| EntryId {
        ms,
        seq: manifest["trim_seq"],
    });
    let kept = reference
        .ids
        .iter()
        .filter(|id| trimmed.is_none_or(|t| **id >= t))
        .count();
    let len: usize = redis::cmd("XLEN")
        .arg(format!("{prefix}{{shared}}:ev"))
        .query(conn)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(len, kept, "stream entries kept (trimmed to {:?})", trimmed);
    let backlog: Option<u64> = redis::cmd("GET")
        .arg(format!("{prefix}{{shared}}:evq"))
        .query(conn)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let checkpointed = manifest.get("events").copied().unwrap_or(0);
    prop_assert_eq!(
        backlog.unwrap_or(0),
        reference.events - checkpointed,
        "backlog"
    );
    // Every event of the entries up to the logged mark is in the exposure log, once.
    let logged: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}{{shared}}:ckpt:logged"))
        .query(conn)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let logged: Option<EntryId> = logged.map(|l| l.parse().expect("logged mark"));
    let expected: u64 = reference
        .ids
        .iter()
        .zip(&reference.sizes)
        .filter(|(id, _)| logged.is_some_and(|l| **id <= l))
        .map(|(_, n)| n)
        .sum();
    let in_log: u64 = redis::cmd("XLEN")
        .arg(format!("{prefix}{{shared}}:xlog"))
        .query(conn)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(
        in_log,
        expected,
        "exposure log (logged through {:?})",
        logged
    );
    prop_assert!(trimmed <= logged, "trimmed past the log");
    Ok(())
}

#[derive(Clone, Debug)]
enum Step {
    Accept(Vec<Generated>),
    /// The writer catches up and writes a checkpoint.
    Checkpoint,
    /// A new replica starts: loads the checkpoint and replays the rest.
    Start,
    /// The follower left behind catches up (loading the checkpoint if the stream was trimmed
    /// past it).
    CatchUp,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => batch().prop_map(Step::Accept),
        2 => Just(Step::Checkpoint),
        1 => Just(Step::Start),
        1 => Just(Step::CatchUp),
    ]
}

/// Checkpoint + replay equals the whole fold, at any checkpoint points and with followers
/// joining and falling behind anywhere.
#[test]
fn followers_from_a_checkpoint_or_behind_a_trim_hold_the_fold_of_every_accepted_batch() {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let videos = videos();
    let conn = RefCell::new(redis.connection());
    let case = Cell::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let settings = CheckpointSettings {
        chunk_bytes: 256, // several chunks per checkpoint
        ..CheckpointSettings::default()
    };
    let reloads = Cell::new(0);
    runner
        .run(&proptest::collection::vec(step(), 1..40), |steps| {
            case.set(case.get() + 1);
            let prefix = format!("ck{}:", case.get());
            let mut conn = conn.borrow_mut();
            rt.block_on(async {
                let store = redis.store(&prefix);
                store.put_videos(&videos).await.expect("catalog");
                let writer = Follower::start(store.clone(), FollowedState::default())
                    .await
                    .expect("writer");
                let behind = Follower::start(store.clone(), FollowedState::default())
                    .await
                    .expect("behind");
                let mut reference = Reference::default();
                for step in steps {
                    match step {
                        Step::Accept(events) => {
                            let d = deltas(&videos, &events);
                            store.apply(&d).await.expect("accept");
                            reference.accept(newest(&mut conn, &prefix), &d);
                        }
                        Step::Checkpoint => {
                            catch_up(&writer).await;
                            let snapshot = writer.state().read().snapshot(settings.chunk_bytes);
                            let written = redis_checkpoint::write(&store, &snapshot, &settings)
                                .await
                                .expect("checkpoint");
                            prop_assert_ne!(written, Written::Refused);
                        }
                        Step::Start => {
                            let joined = Follower::start(store.clone(), FollowedState::default())
                                .await
                                .expect("start");
                            reference.check(&joined, "a new follower")?;
                        }
                        Step::CatchUp => {
                            reloads.set(reloads.get() + usize::from(catch_up(&behind).await));
                            reference.check(&behind, "the follower left behind")?;
                        }
                    }
                    check_stream(&mut conn, &prefix, &reference)?;
                }
                catch_up(&writer).await;
                reference.check(&writer, "the writer")?;
                reloads.set(reloads.get() + usize::from(catch_up(&behind).await));
                reference.check(&behind, "the follower left behind")?;
                let last = Follower::start(store.clone(), FollowedState::default())
                    .await
                    .expect("start");
                reference.check(&last, "a follower started last")
            })
        })
        .expect("followers agree with the fold");
    assert!(reloads.get() > 0, "no follower was ever left behind a trim");
}

/// Three replicas follow the stream and compete for the checkpoint lease while batches arrive:
/// all three, and one started afterwards, hold the fold of every batch; checkpoints were
/// written and the stream trimmed behind them; the lease is given back when they stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_fold_every_batch_once_while_one_of_them_checkpoints() {
    let redis = RedisServer::start();
    let prefix = "r3:";
    let store = redis.store(prefix);
    let videos = videos();
    store.put_videos(&videos).await.expect("catalog");
    let stop = CancellationToken::new();
    let schedule = CheckpointSchedule {
        interval: Duration::from_millis(30),
        ..CheckpointSchedule::default()
    };
    let mut followers = Vec::new();
    let mut tasks = Vec::new();
    for replica in 0..3 {
        let f = Arc::new(
            Follower::start(store.clone(), FollowedState::default())
                .await
                .expect("start"),
        );
        tasks.push(tokio::spawn(run_follower(f.clone(), stop.clone())));
        tasks.push(tokio::spawn(run_checkpoints(
            f.clone(),
            format!("replica-{replica}"),
            schedule.clone(),
            stop.clone(),
        )));
        followers.push(f);
    }
    let mut conn = redis.connection();
    let mut reference = Reference::default();
    for i in 0..300usize {
        let events: Vec<Generated> = (0..1 + i % 5)
            .map(|k| {
                let j = i * 5 + k;
                (
                    (j % 5) as u8,
                    (j * 7) % 12,
                    j % 7,
                    (j as u32 * 977) % (5 * 86_400),
                )
            })
            .collect();
        let d = deltas(&videos, &events);
        store.apply(&d).await.expect("accept");
        reference.accept(newest(&mut conn, prefix), &d);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let last = *reference.ids.last().expect("accepted");
    let deadline = Instant::now() + Duration::from_secs(10);
    for f in &followers {
        while f.state().read().cursor() < last {
            assert!(Instant::now() < deadline, "a follower did not catch up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for (i, f) in followers.iter().enumerate() {
        reference
            .check(f, &format!("replica {i}"))
            .expect("a replica agrees with the fold");
    }
    // The checkpoint writer catches up with the followers, then the stream is trimmed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = redis_checkpoint::manifest(&store).await.expect("manifest");
        if m.is_some_and(|m| m.id == last) {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint of the last entry");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let len = xlen(&mut conn, "r3:{shared}:ev");
    assert!(len < 300, "the stream was not trimmed: {len} entries");
    let logged = xlen(&mut conn, "r3:{shared}:xlog");
    assert_eq!(
        logged as u64, reference.events,
        "events in the exposure log"
    );
    let joined = Follower::start(store.clone(), FollowedState::default())
        .await
        .expect("start");
    reference
        .check(&joined, "a replica started afterwards")
        .expect("joined");
    stop.cancel();
    for t in tasks {
        t.await.expect("task");
    }
    let lease: Option<String> = redis::cmd("GET")
        .arg("r3:{shared}:ckpt:lease")
        .query(&mut conn)
        .expect("get");
    assert_eq!(lease, None, "the lease was not given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_at_half_its_bound_is_checkpointed_before_the_interval_ends() {
    let redis = RedisServer::start();
    let prefix = "bp:";
    let metrics = IngestMetrics::unregistered();
    let store = redis.store_with_ingest(
        prefix,
        IngestSettings {
            mode: AggregatesMode::Process,
            backlog_max: 40,
            ..IngestSettings::default()
        },
        metrics.clone(),
    );
    let checkpoints = |reason: &str| metrics.checkpoints.with_label_values(&[reason]).get();
    let stop = CancellationToken::new();
    let followed = store.followed().cloned().expect("in process");
    let f = Arc::new(
        Follower::start(store.clone(), followed)
            .await
            .expect("start"),
    );
    let tasks = [
        tokio::spawn(run_follower(f.clone(), stop.clone())),
        tokio::spawn(run_checkpoints(
            f.clone(),
            "writer".to_owned(),
            CheckpointSchedule {
                interval: Duration::from_secs(600),
                ..CheckpointSchedule::default()
            },
            stop.clone(),
        )),
    ];
    let videos = videos();
    store.put_videos(&videos).await.expect("catalog");
    let mut conn = redis.connection();
    let backlog = |conn: &mut Connection| -> i64 {
        redis::cmd("GET")
            .arg("bp:{shared}:evq")
            .query::<Option<i64>>(conn)
            .expect("get")
            .unwrap_or(0)
    };
    let accept = |i: usize, n: usize| {
        let events: Vec<Generated> = (0..n)
            .map(|k| ((k % 5) as u8, (i + k) % 12, 1, 60))
            .collect();
        deltas(&videos, &events)
    };
    // The first tick's checkpoint, then 15 events: under half the bound, the writer waits for
    // its interval.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(m) = redis_checkpoint::manifest(&store).await.expect("manifest") {
            break Some(m);
        }
        assert!(Instant::now() < deadline, "no first checkpoint");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for i in 0..3 {
        store.apply(&accept(i, 5)).await.expect("accept");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        redis_checkpoint::manifest(&store).await.expect("manifest"),
        first,
        "a checkpoint under half the bound"
    );
    assert_eq!(backlog(&mut conn), 15);
    assert_eq!(
        (checkpoints("interval"), checkpoints("pressure")),
        (1, 0),
        "checkpoints by reason under half the bound"
    );
    // One batch takes it to 25 events: past half the bound, a checkpoint of what the follower
    // has folded is written at once and its events leave the backlog (the writer may see the
    // backlog before its follower folds that batch: then 10 events stay, under half, until the
    // next interval; it does not wait for its interval either way).
    store.apply(&accept(3, 10)).await.expect("accept");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = redis_checkpoint::manifest(&store).await.expect("manifest");
        // The writer counts its checkpoint once the move has answered.
        if m != first && backlog(&mut conn) < 20 && checkpoints("pressure") >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint within 30 s of the backlog reaching half its bound (interval 600 s)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(checkpoints("interval"), 1, "a second interval's checkpoint");
    stop.cancel();
    for t in tasks {
        t.await.expect("task");
    }
}

/// A checkpoint of `n` accepted batches, written.
async fn checkpoint_after(
    store: &Arc<RedisStore>,
    videos: &[Video],
    n: usize,
    settings: &CheckpointSettings,
) -> Snapshot {
    for i in 0..n {
        let d = deltas(videos, &[(i as u8 % 5, i % 12, i % 7, i as u32 * 600)]);
        store.apply(&d).await.expect("accept");
    }
    let f = Follower::start(store.clone(), FollowedState::default())
        .await
        .expect("start");
    let snapshot = f.state().read().snapshot(settings.chunk_bytes);
    assert_eq!(
        redis_checkpoint::write(store, &snapshot, settings)
            .await
            .expect("write"),
        Written::Moved
    );
    snapshot
}

/// A Redis holding the test catalog, a store on it under `prefix`, and checkpoint settings of
/// several chunks per checkpoint, replaced ones kept 30 s.
async fn catalogued(
    prefix: &str,
) -> (RedisServer, Arc<RedisStore>, Vec<Video>, CheckpointSettings) {
    let redis = RedisServer::start();
    let store = redis.store(prefix);
    let videos = videos();
    store.put_videos(&videos).await.expect("catalog");
    let settings = CheckpointSettings {
        chunk_bytes: 512,
        keep: Duration::from_secs(30),
    };
    (redis, store, videos, settings)
}

/// The manifest moves only forward: an older state is not written, a writer whose manifest
/// changed since it read it is refused and trims nothing, and a chunk that expired before the
/// move (a writer slower than `keep`) refuses the move. The replaced checkpoint's chunks
/// expire, the current one's stay.
#[tokio::test]
async fn the_manifest_moves_only_forward_and_a_refused_move_trims_nothing() {
    let (redis, store, videos, settings) = catalogued("mf:").await;
    let first = checkpoint_after(&store, &videos, 4, &settings).await;
    assert_eq!(
        redis_checkpoint::write(&store, &first, &settings)
            .await
            .expect("again"),
        Written::NotNewer,
        "the same state twice"
    );
    let second = checkpoint_after(&store, &videos, 3, &settings).await;
    assert_eq!(
        redis_checkpoint::write(&store, &first, &settings)
            .await
            .expect("older"),
        Written::NotNewer,
        "an older state after a newer one"
    );
    let mut conn = redis.connection();
    let pttl = |conn: &mut Connection, id: EntryId| -> i64 {
        redis::cmd("PTTL")
            .arg(format!("mf:{{shared}}:ckpt:{id}:0"))
            .query(conn)
            .expect("pttl")
    };
    assert_eq!(
        pttl(&mut conn, second.id),
        -1,
        "the current checkpoint's chunks expire"
    );
    assert!(
        pttl(&mut conn, first.id) > 0,
        "the replaced checkpoint's chunks are kept forever"
    );
    // A writer of the same entries whose move is refused must not put an expiry back on them.
    redis_checkpoint::write_chunks(&store, &second, &settings)
        .await
        .expect("chunks again");
    assert_eq!(
        pttl(&mut conn, second.id),
        -1,
        "the manifest's chunks expire again"
    );
    let before = redis_checkpoint::manifest(&store).await.expect("manifest");
    assert_eq!(
        before.map(|m| (m.id, m.trimmed)),
        Some((second.id, Some(first.id)))
    );

    // A move by a writer that read the first manifest (another moved it since): refused.
    for i in 0..3 {
        store
            .apply(&deltas(&videos, &[(1, i, 0, 100)]))
            .await
            .expect("accept");
    }
    let len = |conn: &mut Connection| xlen(conn, "mf:{shared}:ev");
    let entries = len(&mut conn);
    let later = newest(&mut conn, "mf:");
    let stale_move = |expected: EntryId, chunk_ttl_ms: u64, conn: &mut Connection| -> i64 {
        let chunk = format!("mf:{{shared}}:ckpt:{later}:0");
        let _: () = redis::cmd("SET")
            .arg(&chunk)
            .arg("bytes")
            .arg("PX")
            .arg(chunk_ttl_ms)
            .query(conn)
            .expect("set");
        std::thread::sleep(Duration::from_millis(5));
        redis::cmd("EVAL")
            .arg(MOVE)
            .arg(4)
            .arg("mf:{shared}:ckpt")
            .arg("mf:{shared}:ev")
            .arg("mf:{shared}:evq")
            .arg(chunk)
            .arg(expected.ms)
            .arg(expected.seq)
            .arg(later.ms)
            .arg(later.seq)
            .arg(1)
            .arg(99)
            .arg(1)
            .arg(1_000)
            .arg("bytes".len())
            .query(conn)
            .expect("eval")
    };
    assert_eq!(
        stale_move(first.id, 30_000, &mut conn),
        0,
        "a stale writer moved the manifest"
    );
    assert_eq!(
        stale_move(second.id, 1, &mut conn),
        -1,
        "moved onto an expired chunk"
    );
    assert_eq!(
        redis_checkpoint::manifest(&store).await.expect("manifest"),
        before
    );
    assert_eq!(len(&mut conn), entries, "a refused move trimmed the stream");

    // A log append by a writer that read the mark before another moved it: refused, nothing
    // appended.
    let logged = xlen(&mut conn, "mf:{shared}:xlog");
    let stale: i64 = redis::cmd("EVAL")
        .arg(LOG)
        .arg(2)
        .arg("mf:{shared}:ckpt:logged")
        .arg("mf:{shared}:xlog")
        .arg(first.id.to_string())
        .arg(later.to_string())
        .arg(1_000)
        .arg(2)
        .arg("e")
        .arg("twice")
        .query(&mut conn)
        .expect("eval");
    assert_eq!(stale, -1, "a stale writer appended to the log");
    assert_eq!(xlen(&mut conn, "mf:{shared}:xlog"), logged);
    assert_eq!(logged, 7, "every event of the checkpointed entries, once");
}

/// Chunks another writer left at the same entry and never published (it stopped before its
/// move) are kept by `NX`; when they hold another encoding of those entries (a replica of
/// another version), the move is refused instead of publishing a mix of both, and succeeds
/// once they are gone.
#[tokio::test]
async fn a_move_over_chunks_of_another_encoding_is_refused() {
    let (redis, store, videos, settings) = catalogued("mix:").await;
    let first = checkpoint_after(&store, &videos, 4, &settings).await;
    for i in 0..3 {
        store
            .apply(&deltas(&videos, &[(2, i, 1, 200)]))
            .await
            .expect("accept");
    }
    let f = Follower::start(store.clone(), FollowedState::default())
        .await
        .expect("start");
    let next = f.state().read().snapshot(settings.chunk_bytes);
    let left = format!("mix:{{shared}}:ckpt:{}:0", next.id);
    let mut conn = redis.connection();
    let _: () = redis::cmd("SET")
        .arg(&left)
        .arg("another encoding")
        .arg("PX")
        .arg(30_000)
        .query(&mut conn)
        .expect("set");

    assert_eq!(
        redis_checkpoint::write(&store, &next, &settings)
            .await
            .expect("write"),
        Written::Refused
    );
    let (manifest, _) = redis_checkpoint::load(&store)
        .await
        .expect("load")
        .expect("a checkpoint");
    assert_eq!(
        manifest.id, first.id,
        "published over another writer's chunks"
    );

    let _: () = redis::cmd("DEL").arg(&left).query(&mut conn).expect("del");
    assert_eq!(
        redis_checkpoint::write(&store, &next, &settings)
            .await
            .expect("write"),
        Written::Moved
    );
    let (manifest, state) = redis_checkpoint::load(&store)
        .await
        .expect("load")
        .expect("a checkpoint");
    assert_eq!(manifest.id, next.id);
    assert_eq!(state.encode(), next.chunks.concat());
}

/// The lease admits one holder at a time, is extended only by its holder, is taken over once
/// it expires, and is given back only by its holder.
#[tokio::test]
async fn the_checkpoint_lease_admits_one_writer() {
    let redis = RedisServer::start();
    let store = redis.store("ls:");
    let ttl = Duration::from_secs(30);
    let hold = |who: &'static str, ttl: Duration| {
        let store = store.clone();
        async move {
            redis_checkpoint::hold_lease(&store, who, ttl)
                .await
                .expect("hold")
        }
    };
    assert!(hold("a", ttl).await);
    assert!(!hold("b", ttl).await, "two holders");
    assert!(hold("a", ttl).await, "the holder could not extend it");
    redis_checkpoint::release_lease(&store, "b")
        .await
        .expect("release");
    assert!(!hold("b", ttl).await, "released by another than its holder");
    redis_checkpoint::release_lease(&store, "a")
        .await
        .expect("release");
    assert!(
        hold("b", Duration::from_millis(50)).await,
        "not free once released"
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(hold("c", ttl).await, "not taken over once expired");
}

/// A checkpoint this version cannot read is a clear error, never an empty or partial state:
/// a newer format, chunks that do not decode, chunks of another stream id.
#[tokio::test]
async fn an_unreadable_checkpoint_is_refused_with_its_reason() {
    let redis = RedisServer::start();
    let store = redis.store("bad:");
    let videos = videos();
    store.put_videos(&videos).await.expect("catalog");
    let settings = CheckpointSettings::default();
    let snapshot = checkpoint_after(&store, &videos, 3, &settings).await;
    let mut conn = redis.connection();
    let manifest = "bad:{shared}:ckpt";
    let chunk = format!("bad:{{shared}}:ckpt:{}:0", snapshot.id);

    let _: () = redis::cmd("HSET")
        .arg(manifest)
        .arg("format")
        .arg(2)
        .query(&mut conn)
        .expect("hset");
    assert!(matches!(
        redis_checkpoint::load(&store).await,
        Err(CheckpointError::UnknownFormat(2))
    ));
    assert!(
        Follower::start(store.clone(), FollowedState::default())
            .await
            .is_err(),
        "started on a newer format"
    );
    let _: () = redis::cmd("HSET")
        .arg(manifest)
        .arg("format")
        .arg(1)
        .query(&mut conn)
        .expect("hset");

    let _: () = redis::cmd("SETRANGE")
        .arg(&chunk)
        .arg(0)
        .arg("GARB")
        .query(&mut conn)
        .expect("setrange");
    assert!(matches!(
        redis_checkpoint::load(&store).await,
        Err(CheckpointError::Decode { .. })
    ));
    let _: () = redis::cmd("SET")
        .arg(&chunk)
        .arg(snapshot.chunks.concat())
        .query(&mut conn)
        .expect("set");
    assert!(
        redis_checkpoint::load(&store)
            .await
            .expect("load")
            .is_some()
    );

    let _: () = redis::cmd("HSET")
        .arg(manifest)
        .arg("seq")
        .arg(snapshot.id.seq + 1)
        .query(&mut conn)
        .expect("hset");
    let _: () = redis::cmd("RENAME")
        .arg(&chunk)
        .arg(format!(
            "bad:{{shared}}:ckpt:{}-{}:0",
            snapshot.id.ms,
            snapshot.id.seq + 1
        ))
        .query(&mut conn)
        .expect("rename");
    assert!(matches!(
        redis_checkpoint::load(&store).await,
        Err(CheckpointError::Mismatch { .. })
    ));
}

/// A checkpoint in several chunks reads back as the state it was encoded from; with one of
/// its chunks gone (the manifest moved on and the chunk outlived its keep), a load tries again
/// and then gives up, and a replica does not start on it.
#[tokio::test]
async fn a_checkpoint_in_chunks_reads_back_whole_and_a_lost_chunk_is_refused() {
    let redis = RedisServer::start();
    let store = redis.store("lost:");
    let videos = videos();
    store.put_videos(&videos).await.expect("catalog");
    let settings = CheckpointSettings {
        chunk_bytes: 64,
        ..CheckpointSettings::default()
    };
    let snapshot = checkpoint_after(&store, &videos, 6, &settings).await;
    assert!(
        snapshot.chunks.len() > 3,
        "{} chunks",
        snapshot.chunks.len()
    );
    let (manifest, state) = redis_checkpoint::load(&store)
        .await
        .expect("load")
        .expect("a checkpoint");
    assert_eq!(manifest.chunks as usize, snapshot.chunks.len());
    assert_eq!(state.encode(), snapshot.chunks.concat(), "read back whole");

    let last = snapshot.chunks.len() - 1;
    let mut conn = redis.connection();
    let _: () = redis::cmd("DEL")
        .arg(format!("lost:{{shared}}:ckpt:{}:{last}", snapshot.id))
        .query(&mut conn)
        .expect("del");
    assert!(matches!(
        redis_checkpoint::load(&store).await,
        Err(CheckpointError::Moving)
    ));
    assert!(
        Follower::start(store.clone(), FollowedState::default())
            .await
            .is_err(),
        "started on a checkpoint missing a chunk"
    );
}

/// The one-off step from `--shared-aggregates redis` (as users run it: the binary with
/// `--checkpoint-from-redis`): a replica in process mode refuses to start from an empty state
/// on a Redis the consumers applied to; the step refuses while a consumer is live; then it
/// checkpoints what the consumers applied, and a follower that loads it and folds the batches
/// left pending holds exactly the fold of every accepted batch, the exposure log every event
/// once; a second run refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregates_applied_by_consumers_become_the_first_checkpoint() {
    let redis = RedisServer::start();
    let on_redis = redis.store("feed:");
    let videos = videos();
    on_redis.put_videos(&videos).await.expect("catalog");
    let mut reference = SharedAggregates::default();
    for v in &videos {
        reference.add_video(&v.id);
    }
    let stop = CancellationToken::new();
    let consumer = tokio::spawn(run_event_consumer(on_redis.clone(), stop.clone()));
    // Sums exact in any order (the consumers merge rounds): integer counters, halves.
    let today = day_of(unix_secs());
    let batch = |i: usize| {
        let mut d = Deltas::default();
        let video = format!("v{}", i % 12);
        d.video_stats.insert(
            video.clone(),
            VideoStats::from_values([1.0, (i % 3) as f64, 0.5, 1.0, 0.0, 2.0, 0.0, 1.0]),
        );
        d.durations[i % 4].plays += 1.0;
        d.trending.insert(
            (TrendingScope::All, today),
            HashMap::from([(video.clone(), 0.5 * (i % 5) as f64)]),
        );
        d.trending.insert(
            (TrendingScope::Region("FR".into()), today - 1),
            HashMap::from([(video.clone(), 1.0)]),
        );
        d.exposures.insert(video.clone(), 1.0);
        d.active.insert(format!("u{}", i % 7), 1_000.0 + i as f64);
        d.log = deltas(&videos, &[((i % 5) as u8, i % 12, 0, 0)]).log;
        d
    };
    let mut events = 0;
    for i in 0..40 {
        let d = batch(i);
        on_redis.apply(&d).await.expect("accept");
        reference.apply(&d);
        events += d.log.len();
    }
    let mut conn = redis.connection();
    wait_applied(&mut conn, Duration::from_secs(10));
    stop.cancel();
    consumer.await.expect("consumer");
    let stopped = Instant::now();
    // Accepted while no consumer runs: left in the stream.
    for i in 40..55 {
        let d = batch(i);
        on_redis.apply(&d).await.expect("accept");
        reference.apply(&d);
        events += d.log.len();
    }
    let last = newest(&mut conn, "feed:");
    reference.apply_entry(last, &SharedDeltas::default());

    let state = FollowedState::default();
    assert!(
        matches!(
            Follower::start(on_redis.clone(), state.clone()).await,
            Err(CheckpointError::NotMigrated)
        ),
        "a replica in process mode started from an empty state"
    );
    let args = ["--redis-url", &redis.url(), "--checkpoint-from-redis"];
    let (ok, printed) = run_binary(&args, &[]);
    assert!(
        !ok && printed.contains("--event-consumer false"),
        "{printed}"
    );
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(stopped.elapsed())).await;
    let (ok, printed) = run_binary(&args, &[]);
    assert!(
        ok && printed.contains("\"entries_to_fold\":15"),
        "{printed}"
    );

    let follower = Follower::start(on_redis.clone(), state)
        .await
        .expect("start");
    assert!(
        follower.state().read().aggregates() == &reference,
        "the migrated state and the batches left differ from the fold of every batch"
    );
    let settings = CheckpointSettings::default();
    let snapshot = follower.state().read().snapshot(settings.chunk_bytes);
    let written = redis_checkpoint::write(&on_redis, &snapshot, &settings)
        .await
        .expect("checkpoint");
    assert_eq!(written, Written::Moved);
    let logged = xlen(&mut conn, "feed:{shared}:xlog");
    assert_eq!(logged, events, "every event in the exposure log, once");
    let (ok, printed) = run_binary(&args, &[]);
    assert!(!ok && printed.contains("a checkpoint exists"), "{printed}");
}

/// A replica started without `--shared-aggregates process` against a Redis whose aggregates are
/// kept in process applies nothing: its consumer would delete the entries the other replicas
/// still fold and log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_applies_nothing_where_the_aggregates_are_kept_in_process() {
    let redis = RedisServer::start();
    let store = redis.store("mix:");
    let videos = videos();
    store.put_videos(&videos).await.expect("catalog");
    checkpoint_after(&store, &videos, 2, &CheckpointSettings::default()).await;
    store
        .apply(&deltas(&videos, &[(1, 1, 1, 1)]))
        .await
        .expect("accept");
    let mut conn = redis.connection();
    let len = |conn: &mut Connection| xlen(conn, "mix:{shared}:ev");
    let entries = len(&mut conn);
    let stop = CancellationToken::new();
    let consumer = tokio::spawn(run_event_consumer(store.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    consumer.await.expect("consumer");
    assert_eq!(
        len(&mut conn),
        entries,
        "a consumer applied and deleted entries"
    );
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("mix:{shared}:ev")
        .query(&mut conn)
        .expect("xinfo");
    assert!(groups.is_empty(), "a consumer group was created");
}
