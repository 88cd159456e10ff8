//! The cluster's Prometheus (Debian's `prometheus` package, installed by
//! scripts/install-deps.sh): one scrape job per PodMonitor, its targets from the `file_sd` file
//! [`super::file_sd`] keeps, scraped every second, on a free port of 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::file_sd::PodMonitor;
use super::process::{Process, ProcessError};

/// The scrape interval (and the file_sd refresh fallback).
pub const SCRAPE_INTERVAL: &str = "1s";

/// `prometheus.yml`: a job named after the monitor (`podMonitor/<ns>/<name>/0`, as
/// prometheus-operator names it), `honor_labels` as the chart's PodMonitor asks, targets from
/// `targets_file`.
pub fn config(monitor: &PodMonitor, targets_file: &Path) -> String {
    format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: {SCRAPE_INTERVAL}\n  evaluation_interval: {SCRAPE_INTERVAL}\n\
scrape_configs:\n  - job_name: {job:?}\n    honor_labels: true\n    metrics_path: {path:?}\n    file_sd_configs:\n      - files: [{file:?}]\n        refresh_interval: {SCRAPE_INTERVAL}\n",
        job = format!("podMonitor/{}/0", monitor.job),
        path = monitor.path,
        file = targets_file.display().to_string(),
    )
}

/// A running Prometheus that can be killed and started again on the same port and data.
pub struct Prometheus {
    dir: PathBuf,
    address: SocketAddr,
    process: Option<Process>,
}

impl Prometheus {
    /// Writes `dir/prometheus/prometheus.yml` and starts Prometheus on `address`; returns once
    /// it listens.
    pub async fn start(
        dir: &Path,
        address: SocketAddr,
        monitor: &PodMonitor,
        targets_file: &Path,
    ) -> Result<Self, ProcessError> {
        let home = dir.join("prometheus");
        std::fs::create_dir_all(&home).map_err(|source| ProcessError::Log {
            path: home.clone(),
            source,
        })?;
        let file = home.join("prometheus.yml");
        std::fs::write(&file, config(monitor, targets_file)).map_err(|source| {
            ProcessError::Log {
                path: file.clone(),
                source,
            }
        })?;
        let mut p = Self {
            dir: dir.to_owned(),
            address,
            process: None,
        };
        p.restart().await?;
        Ok(p)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Its address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Kills it (an outage).
    pub async fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill().await;
        }
    }

    /// Starts it (again), on the same port and data; returns once it listens.
    pub async fn restart(&mut self) -> Result<(), ProcessError> {
        self.kill().await;
        let home = self.dir.join("prometheus");
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            home.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            home.join("data").display()
        ))
        .arg(format!("--web.listen-address={}", self.address))
        .arg("--log.level=warn");
        let mut process = Process::spawn("prometheus", &self.dir, cmd)?;
        process
            .wait_listening(self.address, Duration::from_secs(30))
            .await?;
        self.process = Some(process);
        Ok(())
    }

    /// Stops it (SIGTERM).
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop(Duration::from_secs(5)).await;
        }
    }
}
