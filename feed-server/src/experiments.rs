//! The live ranking configuration: the experiment (variants and their profiles) currently
//! served, swapped atomically when the profile file changes.
//!
//! The file is polled; a change that parses and validates becomes the next *generation*. A bad
//! file is logged and counted (`feed_ranking_profile_reload_errors_total`) and the last good
//! configuration keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use feed_profile::{Experiment, ProfileError};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// One loaded configuration.
#[derive(Debug)]
pub struct Loaded {
    /// Variants and profiles.
    pub experiment: Experiment,
    /// Increases by one with every successful (re)load, starting at 1.
    pub generation: u64,
}

/// The configuration in force; cheap to read on every request (no lock).
pub struct LiveProfiles {
    current: ArcSwap<Loaded>,
    metrics: Arc<Metrics>,
}

/// Why the profile file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read profile file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid profile.
    #[error("profile file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ProfileError,
    },
}

/// Reads and validates a profile file.
pub fn load_file(path: &Path) -> Result<(Experiment, Vec<u8>), LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let experiment = Experiment::parse(&text).map_err(|source| LoadError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    Ok((experiment, bytes))
}

impl LiveProfiles {
    /// Starts serving `experiment` as generation 1.
    pub fn new(experiment: Experiment, metrics: Arc<Metrics>) -> Self {
        let loaded = Loaded {
            experiment,
            generation: 1,
        };
        metrics.profile_loaded(&loaded.experiment, loaded.generation);
        Self {
            current: ArcSwap::from_pointee(loaded),
            metrics,
        }
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// Replaces the configuration; returns the new generation.
    pub fn replace(&self, experiment: Experiment) -> u64 {
        let generation = self.current.load().generation + 1;
        self.metrics.profile_loaded(&experiment, generation);
        self.current.store(Arc::new(Loaded {
            experiment,
            generation,
        }));
        generation
    }

    /// Polls `path` every `every` until `stop` fires; reloads on change, keeps the last good
    /// configuration when the new content is bad.
    pub async fn watch(
        self: Arc<Self>,
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
                    if last.is_empty() {
                        continue;
                    }
                    tracing::error!(path = %path.display(), error = %e, "profile file unreadable; keeping the last good profile");
                    self.metrics.profile_reload_errors.inc();
                    last.clear();
                    continue;
                }
            };
            if bytes == last {
                continue;
            }
            last = bytes.clone();
            match Experiment::parse(&String::from_utf8_lossy(&bytes)) {
                Ok(experiment) => {
                    let variants: Vec<&str> = experiment
                        .variants
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect();
                    let variants = variants.join(",");
                    let generation = self.replace(experiment);
                    tracing::info!(path = %path.display(), generation, variants, "ranking profile reloaded");
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "ranking profile rejected; keeping the last good profile");
                    self.metrics.profile_reload_errors.inc();
                }
            }
        }
    }
}
