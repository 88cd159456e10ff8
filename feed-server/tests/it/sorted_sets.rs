//! The in-process sorted set ([`ScoreIndex`], which holds the embedded store's trending,
//! long tail and last activity, `feed_server::learning::aggregates`) against a real Redis sorted
//! set: the same writes (`ZINCRBY`, `ZADD GT`, `ZADD NX`, `ZREM`) in the same order leave the
//! same members with the same scores, read in the same orders (`ZRANGE`, `ZREVRANGE`) — ties
//! broken by member, `-0` equal to `0`, infinities, and sums that are not a number refused.
//! And the embedded store against the Redis store: the same lists after the same batches.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::{self, RedisServer};

use feed_server::learning::scores::ScoreIndex;
use feed_server::learning::{Deltas, TrendingScope, VideoStats, day_of};
use feed_server::model::Video;
use feed_server::store::{
    CandidateData, CandidateQuery, CandidateRef, MemoryStore, SeenRead, SourceList, Store,
    run_event_consumer,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::{Commands, Connection, RedisResult};
use tokio_util::sync::CancellationToken;

const KEY: &str = "z";

#[derive(Clone, Debug)]
enum Op {
    Incr(u8, f64),
    Raise(u8, f64),
    InsertNew(u8, f64),
    Remove(u8),
}

/// Scores that tie often (halves), signed zeros, infinities and arbitrary ones.
fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-4i32..=4).prop_map(|n| f64::from(n) / 2.0),
        1 => Just(-0.0),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        2 => -1e6f64..1e6,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let member = 0u8..MEMBERS;
    prop_oneof![
        4 => (member.clone(), score()).prop_map(|(m, s)| Op::Incr(m, s)),
        2 => (member.clone(), score()).prop_map(|(m, s)| Op::Raise(m, s)),
        1 => (member.clone(), score()).prop_map(|(m, s)| Op::InsertNew(m, s)),
        1 => member.prop_map(Op::Remove),
    ]
}

/// Members drawn from.
const MEMBERS: u8 = 18;

/// `v0` … `v11`: `v10` sorts before `v2`, as Redis compares bytes; then ids that share their
/// first eight bytes or are a prefix of one another (the index orders ties by those bytes first,
/// then by the rest), one with a byte above ASCII.
fn member(m: u8) -> String {
    match m {
        0..12 => format!("v{m}"),
        12 => "trending".to_owned(),
        13 => "trending-v1".to_owned(),
        14 => "trending-v10".to_owned(),
        15 => "trending-v2".to_owned(),
        16 => "trendinf-zz".to_owned(),
        _ => "trendin\u{e9}".to_owned(),
    }
}

/// A score as Redis reads it (`inf`, `-inf`, `-0`, digits).
fn arg(score: f64) -> String {
    score.to_string()
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// `ZADD` with `flag` (`GT`, `NX`).
fn zadd(flag: &str, score: f64, m: u8) -> redis::Cmd {
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(KEY).arg(flag).arg(arg(score)).arg(member(m));
    cmd
}

/// What a write answered: `ZINCRBY`'s new score, `ZREM`'s whether it removed; nothing for
/// the others, and nothing for a refused `ZINCRBY` (a sum that is not a number: the index
/// changes nothing either, and Redis's error is not the test's).
#[derive(Debug, PartialEq)]
enum Answer {
    Score(f64),
    Removed(bool),
    Nothing,
}

/// Applies `op` to Redis.
fn on_redis(conn: &mut Connection, op: &Op) -> Result<Answer, TestCaseError> {
    let done: RedisResult<redis::Value> = match op {
        Op::Incr(m, s) => redis::cmd("ZINCRBY")
            .arg(KEY)
            .arg(arg(*s))
            .arg(member(*m))
            .query(conn),
        Op::Raise(m, s) => zadd("GT", *s, *m).query(conn),
        Op::InsertNew(m, s) => zadd("NX", *s, *m).query(conn),
        Op::Remove(m) => redis::cmd("ZREM").arg(KEY).arg(member(*m)).query(conn),
    };
    let reply = match done {
        Err(e) if e.to_string().contains("not a number") => return Ok(Answer::Nothing),
        other => other.map_err(fail)?,
    };
    Ok(match op {
        Op::Incr(..) => Answer::Score(redis::from_redis_value(reply).map_err(fail)?),
        Op::Remove(..) => {
            Answer::Removed(redis::from_redis_value::<i64>(reply).map_err(fail)? == 1)
        }
        Op::Raise(..) | Op::InsertNew(..) => Answer::Nothing,
    })
}

/// Applies `op` to the index; `incr`'s unchanged score for a refused sum is no answer, as on
/// Redis.
fn on_index(index: &mut ScoreIndex<String>, op: &Op) -> Answer {
    match op {
        Op::Incr(m, s) => {
            let before = index.score(member(*m).as_str()).unwrap_or(0.0);
            let after = index.incr(member(*m).as_str(), *s);
            if (before + s).is_nan() {
                Answer::Nothing
            } else {
                Answer::Score(after)
            }
        }
        Op::Raise(m, s) => {
            index.raise(member(*m).as_str(), *s);
            Answer::Nothing
        }
        Op::InsertNew(m, s) => {
            index.insert_new(member(*m).as_str(), *s);
            Answer::Nothing
        }
        Op::Remove(m) => Answer::Removed(index.remove(member(*m).as_str())),
    }
}

/// `(member, score)` pairs read from Redis with `command` (`ZRANGE` or `ZREVRANGE`).
fn read(conn: &mut Connection, command: &str) -> Result<Vec<(String, f64)>, TestCaseError> {
    redis::cmd(command)
        .arg(KEY)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(conn)
        .map_err(fail)
}

fn held<'a>(pairs: impl Iterator<Item = (&'a String, f64)>) -> Vec<(String, f64)> {
    pairs.map(|(m, s)| (m.clone(), s)).collect()
}

#[test]
fn the_in_process_sorted_set_keeps_redis_scores_and_order() {
    let redis = RedisServer::start();
    // The runner takes a `Fn`: the cases share one connection, one at a time.
    let conn = RefCell::new(redis.connection());
    let mut runner = TestRunner::new(Config {
        cases: 128,
        ..Config::default()
    });
    let ops = proptest::collection::vec(op(), 1..80);
    let outcome = runner.run(&ops, |ops| {
        let mut conn = conn.borrow_mut();
        let conn = &mut *conn;
        let _: () = conn.del(KEY).map_err(fail)?;
        let mut index = ScoreIndex::default();
        for op in &ops {
            let answered = on_redis(conn, op)?;
            prop_assert_eq!(answered, on_index(&mut index, op), "{:?}", op);
        }
        // Scores compare as numbers: Redis writes `-0` where the index holds `0`.
        prop_assert_eq!(read(conn, "ZRANGE")?, held(index.lowest()));
        prop_assert_eq!(read(conn, "ZREVRANGE")?, held(index.highest()));
        let card: usize = conn.zcard(KEY).map_err(fail)?;
        prop_assert_eq!(card, index.len());
        for m in 0..MEMBERS {
            let on_redis: Option<f64> = conn.zscore(KEY, member(m)).map_err(fail)?;
            prop_assert_eq!(on_redis, index.score(member(m).as_str()));
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// The embedded store and the Redis store (its consumer applying) hold the same trending list,
/// long tail, last activity and counters after the same batches and a deletion — ties included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_lists_trending_long_tail_and_activity_as_redis() {
    let redis = RedisServer::start();
    let on_redis = redis.store("eq:");
    let stop = CancellationToken::new();
    tokio::spawn(run_event_consumer(on_redis.clone(), stop.clone()));
    let embedded = MemoryStore::new();
    let videos: Vec<Video> = common::catalog(12, 3)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("video"))
        .collect();
    on_redis.put_videos(&videos).await.expect("put on redis");
    embedded.put_videos(&videos).await.expect("put embedded");
    // Today: Redis expires a trending day by the clock, the fold by the newest event day.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    let day = day_of(now);
    // Ties everywhere: equal trending weights, equal exposures, equal activity times.
    for (i, (video, weight, user, ts)) in [
        ("v1", 2.0, "u1", 100.0),
        ("v2", 2.0, "u2", 100.0),
        ("v3", 0.5, "u3", 90.0),
        ("v10", 2.0, "u1", 80.0),
        ("v2", 1.0, "u4", 100.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut d = Deltas::default();
        d.video_stats.insert(
            video.to_owned(),
            VideoStats {
                impressions: 1.0,
                views: 1.0,
                likes: i as f64,
                ..VideoStats::default()
            },
        );
        d.trending.insert(
            (TrendingScope::All, day),
            HashMap::from([(video.to_owned(), weight)]),
        );
        d.exposures.insert(video.to_owned(), 1.0);
        d.active.insert(user.to_owned(), ts);
        on_redis.apply(&d).await.expect("apply on redis");
        embedded.apply(&d).await.expect("apply embedded");
    }
    // Applied before the deletion: on Redis a batch applied after it would count the deleted
    // video again, which the embedded store, applying at once, never does.
    let mut conn = redis.connection();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pending = |conn: &mut redis::Connection| -> i64 {
        redis::cmd("XLEN")
            .arg("eq:{shared}:ev")
            .query(conn)
            .expect("xlen")
    };
    while pending(&mut conn) > 0 {
        assert!(Instant::now() < deadline, "batches not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    on_redis.delete_video("v3").await.expect("delete on redis");
    embedded.delete_video("v3").await.expect("delete embedded");
    let q = CandidateQuery {
        trending: vec![(TrendingScope::All, day)],
        per_trending: 20,
        long_tail: (0, 20),
        ..Default::default()
    };
    let (a, b) = (
        on_redis.candidate_lists(&q).await.expect("redis lists"),
        embedded.candidate_lists(&q).await.expect("embedded lists"),
    );
    let ids =
        |list: &SourceList| -> Vec<String> { list.iter().map(|(id, _)| id.to_owned()).collect() };
    assert_eq!(ids(&a.trending), ids(&b.trending), "trending");
    assert_eq!(
        ids(&a.trending)[..3],
        ["v2", "v10", "v1"],
        "ties by id, from the greatest"
    );
    assert_eq!(ids(&a.long_tail), ids(&b.long_tail), "long tail");
    assert_eq!(
        on_redis.active_users(10).await.expect("redis active"),
        embedded.active_users(10).await.expect("embedded active"),
        "last activity"
    );
    let refs: Vec<CandidateRef<'_>> = videos.iter().map(|v| CandidateRef::from(&*v.id)).collect();
    let stats = |data: Vec<Option<CandidateData>>| -> Vec<Option<VideoStats>> {
        data.into_iter().map(|c| c.map(|c| c.stats)).collect()
    };
    assert_eq!(
        stats(
            on_redis
                .candidates("u", &SeenRead::default(), &refs)
                .await
                .expect("redis")
        ),
        stats(
            embedded
                .candidates("u", &SeenRead::default(), &refs)
                .await
                .expect("embedded")
        ),
        "counters"
    );
}
