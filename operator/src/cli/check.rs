//! `feedroll-operator check FILE --prometheus URL [--output json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// FeedRollout YAML file.
    pub file: PathBuf,
    /// Prometheus base URL (overrides `spec.analysis.prometheus.address`).
    #[arg(long, env = "FEEDROLL_PROMETHEUS")]
    pub prometheus: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table for humans.
    Table,
    /// JSON for CI.
    Json,
}

/// Runs `check`.
pub async fn run(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
