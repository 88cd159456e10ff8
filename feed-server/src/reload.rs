//! Hot reload of a configuration file by polling: the one loop behind the ranking profile
//! (`--profile`, [`crate::experiments`]) and the API keys (`--api-keys`, [`crate::auth`]).
//!
//! The file is read every `every`; content that differs from the last content seen is handed
//! to the [`Reloadable`], which either makes it the next generation or rejects it. A rejection
//! or an unreadable file is logged and counted by the target, and the last good configuration
//! keeps serving: a bad edit never takes the server down or opens it up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What a successful reload put in force, for the log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The new generation (1 is the file read at start).
    pub generation: u64,
    /// A short, secret-free summary (variant names, key names).
    pub summary: String,
}

/// A configuration that a changed file can replace.
pub trait Reloadable: Send + Sync + 'static {
    /// What the file holds, for log messages (`ranking profile`, `API keys`).
    const WHAT: &'static str;

    /// Parses, validates and applies new file content; returns what is now in force, or why the
    /// content was rejected (the configuration in force is then unchanged).
    fn reload(&self, bytes: &[u8]) -> Result<Applied, String>;

    /// Counts a rejected change or an unreadable file (its `…_reload_errors_total` metric).
    fn count_rejection(&self);
}

/// A file to watch for a [`Reloadable`], set up at start and spawned when serving.
pub struct Watch<T> {
    /// What the file configures.
    pub target: Arc<T>,
    /// The file.
    pub path: PathBuf,
    /// The content read at start (in force).
    pub initial: Vec<u8>,
    /// How often the file is read (at least 10 ms).
    pub every: Duration,
}

impl<T: Reloadable> Watch<T> {
    /// Polls the file in a task until `stop` fires.
    pub fn spawn(self, stop: CancellationToken) {
        tokio::spawn(watch(
            self.target,
            self.path,
            self.initial,
            self.every.max(Duration::from_millis(10)),
            stop,
        ));
    }
}

/// Polls `path` every `every` until `stop` fires; `initial` is the content already in force.
pub async fn watch<T: Reloadable>(
    target: Arc<T>,
    path: PathBuf,
    initial: Vec<u8>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut last = initial;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                // Reported once per disappearance, not on every tick.
                if last.is_empty() {
                    continue;
                }
                tracing::error!(path = %path.display(), error = %e, "{} file unreadable; keeping the last good configuration", T::WHAT);
                target.count_rejection();
                last.clear();
                continue;
            }
        };
        if bytes == last {
            continue;
        }
        last = bytes.clone();
        match target.reload(&bytes) {
            Ok(Applied {
                generation,
                summary,
            }) => {
                tracing::info!(path = %path.display(), generation, summary, "{} reloaded", T::WHAT)
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "{} rejected; keeping the last good configuration", T::WHAT);
                target.count_rejection();
            }
        }
    }
}
