//! The `feed-server` binary: configuration, logging, signals.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use feed_server::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}

fn print_examples(addr: &std::net::SocketAddr, auth_on: bool) {
    let base = format!("http://{addr}");
    if auth_on {
        println!(
            "\nAPI keys are on (--api-keys): add -H \"Authorization: Bearer $KEY\" to the /v1/ calls below."
        );
    }
    println!(
        r#"
feed-server is up with demo data on the embedded store. Try:

  curl -s '{base}/v1/feed?user_id=user-1&limit=5&explain=true' | python3 -m json.tool
  curl -s -X POST {base}/v1/events -H 'content-type: application/json' \
       -d '{{"events":[{{"user_id":"user-1","video_id":"v42","type":"like"}}]}}'
  curl -s -X PUT {base}/v1/users/user-1/follows -H 'content-type: application/json' \
       -d '{{"creators":["creator-7"],"friends":["user-2"]}}'
  curl -s -X POST {base}/v1/rank -H 'content-type: application/json' \
       -d '{{"user_id":"user-1","video_ids":["v1","v2","v3"],"explain":true}}'
  curl -s {base}/readyz
  curl -s {base}/metrics | grep ^feed_
"#
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_logging(config.log_format);
    #[cfg(feature = "fault-injection")]
    if feed_server::http::faults::exit_at_start() {
        tracing::error!(
            "exiting at start: {} is set (fault injection)",
            feed_server::http::faults::EXIT_AT_START_ENV
        );
        std::process::exit(feed_server::http::faults::EXIT_AT_START_CODE);
    }
    if config.events.checkpoint_from_redis {
        let migrated = feed_server::server::checkpoint_from_redis(&config)
            .await
            .context("cannot checkpoint the shared aggregates")?;
        tracing::info!(
            videos = migrated.videos,
            trending_lists = migrated.trending_lists,
            long_tail = migrated.exposures,
            users = migrated.users,
            entries_to_fold = migrated.pending_entries,
            bytes = migrated.bytes,
            "checkpoint of the shared aggregates written at 0-0: replicas with --shared-aggregates process start from it"
        );
        return Ok(());
    }
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let app = feed_server::server::build(&config)
        .await
        .context("cannot start feed-server")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = app.state.store.kind(), rollout = %config.rollout, track = %config.track, "feed-server listening");
    if config.demo {
        print_examples(&addr, config.auth.api_keys.is_some());
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = rx.await;
    }));
    shutdown_signal().await;
    let _ = tx.send(());
    match tokio::time::timeout(grace, server).await {
        Ok(joined) => joined
            .context("server task failed")?
            .context("server error")?,
        Err(_) => tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "drain time exceeded; exiting with requests in flight"
        ),
    }
    tracing::info!("feed-server stopped");
    Ok(())
}
