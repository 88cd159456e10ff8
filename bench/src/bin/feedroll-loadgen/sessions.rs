//! The session phase: the session trace ([`feedroll_bench::session`]) replayed against
//! feed-server in real time. Each session opens one connection, requests its first page, then
//! its cursor pages; after each page the user "watches" it (a think time) and sends the events
//! of what they saw (impressions of every item, a view of the first two) — which drops their
//! cached first page, as a real user's events do. Only sessions starting in the measured day are
//! measured; the cache hit ratio comes from `feed_cache_requests_total` over that window, the
//! warm-up's work from `feed_predictive_warmups_total` and `feed_predictive_warmup_seconds_total`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use feed_metrics::ops;
use feedroll_bench::client::{Conn, Req};
use feedroll_bench::driver::Outcome;
use feedroll_bench::session::{SessionSpec, SessionTrace};
use feedroll_bench::stats::summarize;
use feedroll_bench::world::user_id;
use hyper::Method;
use serde::{Deserialize, Serialize};

use super::{Phase, RunArgs, Scrape, Targets, begin, finish};

/// Name of the session phase (a label may follow).
pub const SESSION: &str = "session trace";

/// The session phase's flags.
#[derive(Clone, Debug, Args)]
pub struct SessionArgs {
    /// Session phase: active users (taken from the users no other phase requested).
    #[arg(long, default_value_t = 100)]
    pub session_users: usize,
    /// Session phase: one compressed day, seconds (the trace adds a 6-hour lead-in).
    #[arg(long, default_value_t = 24.0)]
    pub session_day_secs: f64,
    /// Session phase: mean sessions per user per day.
    #[arg(long, default_value_t = 8.0)]
    pub session_per_day: f64,
    /// Session phase: time a user spends on a page before sending its events and paging on, ms.
    #[arg(long, default_value_t = 30)]
    pub session_think_ms: u64,
    /// Session phase: label appended to the phase's name (e.g. "no warm-up").
    #[arg(long, default_value = "")]
    pub session_label: String,
}

/// The predictive warm-up's work in a phase.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct WarmupDelta {
    /// First pages ranked ahead.
    pub warmed: f64,
    /// Pages ranked ahead but dropped: the user was active meanwhile.
    pub superseded: f64,
    /// Warm-ups refused by the ranking bound.
    pub shed: f64,
    /// Warm-ups the store failed.
    pub failed: f64,
    /// Seconds spent ranking ahead (wall time).
    pub seconds: f64,
    /// Those seconds over the phase's wall time (summed over the workers: may exceed 1).
    pub core_share: f64,
}

impl WarmupDelta {
    /// The warm-up's work between two scrapes `wall` seconds apart.
    pub fn between(a: &Scrape, b: &Scrape, wall: f64) -> Self {
        let d = |name, labels: &[(&str, &str)]| b.get(name, labels) - a.get(name, labels);
        let of = |result| d(ops::PREDICTIVE_WARMUPS, &[("result", result)]);
        let seconds = d(ops::PREDICTIVE_WARMUP_SECONDS, &[]);
        Self {
            warmed: of("warmed"),
            superseded: of("superseded"),
            shed: of("shed"),
            failed: of("failed"),
            seconds,
            core_share: if wall > 0.0 { seconds / wall } else { 0.0 },
        }
    }
}

/// What one session saw: per feed request, its status and latency (µs) and body bytes.
#[derive(Default)]
struct SessionLog {
    statuses: Vec<u16>,
    micros: Vec<u64>,
    bytes: u64,
    event_errors: u64,
}

/// The ids of a feed page's items and its next cursor.
fn page_of(body: &Bytes) -> (Vec<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (Vec::new(), None);
    };
    let ids = v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["video_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (ids, v["next_cursor"].as_str().map(str::to_owned))
}

/// The events of a watched page: an impression of every item, a view of the first two.
fn watched(user: &str, ids: &[String]) -> Req {
    let mut events: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"user_id": user, "video_id": id, "type": "impression"}))
        .collect();
    events.extend(ids.iter().take(2).map(
        |id| serde_json::json!({"user_id": user, "video_id": id, "type": "view", "watch_ms": 8000}),
    ));
    Req::json(
        Method::POST,
        "/v1/events",
        serde_json::json!({ "events": events }).to_string(),
    )
}

async fn session(addr: SocketAddr, user: String, pages: u8, think: Duration) -> SessionLog {
    let mut log = SessionLog::default();
    let Ok(mut conn) = Conn::connect(addr).await else {
        log.statuses.push(0);
        log.micros.push(0);
        return log;
    };
    let mut cursor: Option<String> = None;
    for _ in 0..pages {
        let path = match &cursor {
            None => format!("/v1/feed?user_id={user}&limit=20"),
            Some(c) => format!("/v1/feed?user_id={user}&limit=20&cursor={c}"),
        };
        let t = Instant::now();
        let reply = conn.send(&Req::get(path)).await;
        log.micros.push(t.elapsed().as_micros() as u64);
        let Ok(reply) = reply else {
            log.statuses.push(0);
            return log;
        };
        log.statuses.push(reply.status);
        log.bytes += reply.body.len() as u64;
        let (ids, next) = page_of(&reply.body);
        tokio::time::sleep(think).await;
        if !ids.is_empty() {
            match conn.send(&watched(&user, &ids)).await {
                Ok(r) if r.status == 200 => {}
                _ => log.event_errors += 1,
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    log
}

/// Replays the trace over `ranks` (world users) and measures its day.
pub async fn run(
    args: &RunArgs,
    targets: &Targets,
    ranks: &[usize],
) -> anyhow::Result<(Phase, WarmupDelta)> {
    let s = &args.session;
    let spec = SessionSpec {
        users: s.session_users,
        day_ms: (s.session_day_secs * 1000.0) as u64,
        sessions_per_day: s.session_per_day,
        // The same trace in every run of a world (before and after differ in users only).
        seed: args.world.seed ^ 0x5e55_1015,
    };
    if ranks.len() < spec.users {
        bail!(
            "the session phase needs {} unused users, {} left",
            spec.users,
            ranks.len()
        );
    }
    let trace = SessionTrace::generate(spec);
    let users: Arc<Vec<String>> = Arc::new(ranks.iter().map(|r| user_id(*r)).collect());
    let think = Duration::from_millis(s.session_think_ms);
    let server = targets.server;
    let origin = tokio::time::Instant::now();
    let measured_from = Duration::from_millis(trace.measured_from_ms);
    let mut lead_in = Vec::new();
    let mut measured = Vec::new();
    for sess in &trace.sessions {
        let at = origin + Duration::from_millis(sess.start_ms);
        let user = users[sess.user].clone();
        let pages = sess.pages;
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            session(server, user, pages, think).await
        });
        if sess.start_ms >= trace.measured_from_ms {
            measured.push(task);
        } else {
            lead_in.push(task);
        }
    }
    tokio::time::sleep_until(origin + measured_from).await;
    let m = begin(args, targets).await?;
    let before = m.scrape.clone();
    let mut all = SessionLog::default();
    for task in measured {
        let log = task.await.context("a session task")?;
        all.statuses.extend(log.statuses);
        all.micros.extend(log.micros);
        all.bytes += log.bytes;
        all.event_errors += log.event_errors;
    }
    for task in lead_in {
        task.await.context("a lead-in session task")?;
    }
    let wall = m.started.elapsed().as_secs_f64();
    let ok = all.statuses.iter().filter(|s| **s == 200).count() as u64;
    let errors = all.statuses.len() as u64 - ok;
    let outcome = Outcome {
        sent: all.statuses.len() as u64,
        body_bytes: all.bytes,
        summary: summarize(all.micros, ok, errors, wall),
        by_status: Default::default(),
    };
    let name = if s.session_label.is_empty() {
        SESSION.to_owned()
    } else {
        format!("{SESSION}, {}", s.session_label)
    };
    let load = format!(
        "{} sessions of {} users (2–5 pages, events after each page, {} ms think), a day in {:.0} s after a 6-h lead-in; {} event POSTs failed",
        trace.measured().count(),
        spec.users,
        s.session_think_ms,
        s.session_day_secs,
        all.event_errors
    );
    let (p, after) = finish(args, targets, m, &name, load, outcome).await?;
    Ok((p, WarmupDelta::between(&before, &after, wall)))
}
