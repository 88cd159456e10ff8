//! The cluster's Redis: a real `redis-server` (scripts/install-deps.sh) on a free port of
//! 127.0.0.1, nothing persisted, its working directory `DIR/redis`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::process::{Process, ProcessError};

/// Starts redis-server on `address`; returns once it listens.
pub async fn start(dir: &Path, address: SocketAddr) -> Result<Process, ProcessError> {
    let home = dir.join("redis");
    std::fs::create_dir_all(&home).map_err(|source| ProcessError::Log {
        path: home.clone(),
        source,
    })?;
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--bind",
        &address.ip().to_string(),
        "--port",
        &address.port().to_string(),
    ])
    .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
    .arg("--dir")
    .arg(&home);
    let mut p = Process::spawn("redis", dir, cmd)?;
    p.wait_listening(address, Duration::from_secs(10)).await?;
    Ok(p)
}
