//! Child processes of the cluster: started with their output in `DIR/<name>.log`, stopped with
//! SIGTERM (then SIGKILL after a grace period), killed when their handle is dropped — so
//! nothing outlives the cluster, also when a test panics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be run.
    #[error(
        "cannot start {program}: {source} (scripts/install-deps.sh installs the test dependencies)"
    )]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Its log file could not be created.
    #[error("cannot create the log {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It did not listen in time (or exited).
    #[error("{name} did not listen on {address} within {secs} s (see {log})")]
    NotReady {
        /// The process's name.
        name: String,
        /// Where it should listen.
        address: SocketAddr,
        /// How long we waited.
        secs: u64,
        /// Its log.
        log: String,
    },
}

/// A running child process.
pub struct Process {
    name: String,
    log: PathBuf,
    child: Child,
}

impl Process {
    /// Starts `cmd` as `name`, stdout and stderr appended to `dir/<name>.log`.
    pub fn spawn(name: &str, dir: &Path, mut cmd: Command) -> Result<Self, ProcessError> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| ProcessError::Log {
                path: log.clone(),
                source,
            })?;
        let err = file.try_clone().map_err(|source| ProcessError::Log {
            path: log.clone(),
            source,
        })?;
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ProcessError::Spawn { program, source })?;
        Ok(Self {
            name: name.to_owned(),
            log,
            child,
        })
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until something accepts connections on `address` (`Err` when the process exits
    /// first or `within` passes).
    pub async fn wait_listening(
        &mut self,
        address: SocketAddr,
        within: Duration,
    ) -> Result<(), ProcessError> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline && self.running() {
            if tokio::net::TcpStream::connect(address).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ProcessError::NotReady {
            name: self.name.clone(),
            address,
            secs: within.as_secs(),
            log: self.log.display().to_string(),
        })
    }

    /// Kills it at once (SIGKILL): a crash, as a test wants it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Stops it: SIGTERM, then SIGKILL if it is still running after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            // `kill -TERM`: no unsafe signal call in this crate.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        self.kill().await;
    }
}
