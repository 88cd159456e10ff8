//! `feedroll-static-baseline`: an axum server that answers every GET with the same static JSON
//! body (the bytes of a real feed response), the upper bound a cached feed is compared to.
//! `/readyz` answers 200 so that the harness can wait for it like for feed-server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use clap::Parser;

/// Static-JSON axum baseline.
#[derive(Debug, Parser)]
#[command(name = "feedroll-static-baseline", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// File whose bytes every GET answers (application/json).
    #[arg(long)]
    body: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = Bytes::from(
        std::fs::read(&args.body).with_context(|| format!("reading {}", args.body.display()))?,
    );
    let serve = move || {
        let body = body.clone();
        async move { ([(CONTENT_TYPE, "application/json")], body).into_response() }
    };
    let app = Router::new()
        .route("/readyz", get(|| async { "ok" }))
        .fallback(get(serve));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!("feedroll-static-baseline: listening on {}", args.listen);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")?;
    Ok(())
}
