//! Times serving a cached first page through the whole router (BENCHMARKS.md, "Cached pages"):
//! every middleware (panic catching, tracing, request metrics, authentication and rate limits,
//! timeout; the body limit wraps only the routes that read a body), the query's parsing, the
//! in-process head lookup, the page's metrics and the response — everything feed-server does for
//! `GET /v1/feed` except hyper's HTTP/1.1 parsing and the socket's system calls, which a static
//! axum server pays alike.
//!
//! `cargo run --release -p feed-server --example cached_page_timing` builds the app on the
//! embedded store with the demo world (`--demo`), ranks one first page for each of 100 users,
//! then sends 200,000 requests for those pages in rounds on a single-threaded runtime and prints
//! this process's CPU per request for each round, their median, and the bytes served (equal
//! between two versions that serve the same pages).

use std::time::Instant;

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Parser;
use feed_server::config::Config;
use tower::ServiceExt;

/// The allocator the `feed-server` binary runs with.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USERS: usize = 100;
const ROUNDS: usize = 10;
const PER_ROUND: usize = 20_000;

/// This thread's CPU time so far (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution).
fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let config = Config::try_parse_from(["feed-server", "--demo", "--log-format", "text"])?;
    let app = feed_server::server::build(&config)
        .await
        .context("building the app")?;
    let router = app.router();
    let paths: Vec<String> = (1..=USERS)
        .map(|u| format!("/v1/feed?user_id=user-{u}&limit=20"))
        .collect();
    let get = |path: &str| {
        let router = router.clone();
        let req = Request::get(path).body(Body::empty());
        async move {
            let res = router.oneshot(req?).await?;
            let status = res.status();
            let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await?
                .len();
            anyhow::Ok((status, bytes))
        }
    };
    // Rank every user's first page once: the timed requests are all cache hits.
    for path in &paths {
        let (status, _) = get(path).await?;
        if status != StatusCode::OK {
            bail!("{path}: {status}");
        }
    }
    let mut per_request = Vec::with_capacity(ROUNDS);
    let mut bytes = 0usize;
    for _ in 0..ROUNDS {
        let (cpu, wall) = (thread_cpu(), Instant::now());
        for i in 0..PER_ROUND {
            let (status, n) = get(&paths[i % USERS]).await?;
            if status != StatusCode::OK {
                bail!("{}: {status}", paths[i % USERS]);
            }
            bytes += n;
        }
        let us = (thread_cpu() - cpu).as_secs_f64() * 1e6 / PER_ROUND as f64;
        let wall_us = wall.elapsed().as_secs_f64() * 1e6 / PER_ROUND as f64;
        println!("round: {us:.2} µs CPU per request ({wall_us:.2} µs wall)");
        per_request.push(us);
    }
    per_request.sort_by(f64::total_cmp);
    println!(
        "median {:.2} µs CPU per cached page; {} bytes served in all",
        per_request[ROUNDS / 2],
        bytes
    );
    Ok(())
}
