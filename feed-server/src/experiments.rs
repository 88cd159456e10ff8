//! The live ranking configuration: the experiment (variants and their profiles) currently
//! served, swapped atomically when the profile file changes.
//!
//! The file is polled ([`crate::reload::watch`]); a change that parses and validates becomes the
//! next *generation*. A bad file is logged and counted
//! (`feed_ranking_profile_reload_errors_total`) and the last good configuration keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use feed_profile::{Experiment, ProfileError};

use crate::metrics::Metrics;
use crate::reload::{Applied, NotUtf8, Reloadable, utf8};

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
        source: ProfileFileError,
    },
}

/// Why the content of a profile file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileFileError {
    /// Not UTF-8 text.
    #[error(transparent)]
    NotUtf8(#[from] NotUtf8),
    /// Not a valid profile or experiment.
    #[error(transparent)]
    Invalid(#[from] ProfileError),
}

/// Parses and validates the content of a profile file; bytes that are not UTF-8 are refused.
fn parse(bytes: &[u8]) -> Result<Experiment, ProfileFileError> {
    Ok(Experiment::parse(utf8(bytes)?)?)
}

/// Reads and validates a profile file.
pub fn load_file(path: &Path) -> Result<(Experiment, Vec<u8>), LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let experiment = parse(&bytes).map_err(|source| LoadError::Invalid {
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
}

impl Reloadable for LiveProfiles {
    const WHAT: &'static str = "ranking profile";

    type Error = ProfileFileError;

    fn reload(&self, bytes: &[u8]) -> Result<Applied, ProfileFileError> {
        let experiment = parse(bytes)?;
        let variants: Vec<&str> = experiment
            .variants
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        let summary = format!("variants {}", variants.join(","));
        Ok(Applied {
            generation: self.replace(experiment),
            summary,
        })
    }

    fn count_rejection(&self) {
        self.metrics.profile_reload_errors.inc();
    }
}
