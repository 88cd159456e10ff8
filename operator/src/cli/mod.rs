//! Command line of `feedroll-operator`.

pub mod check;

use clap::{Parser, Subcommand};

/// The FeedRollout operator.
#[derive(Debug, Parser)]
#[command(name = "feedroll-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: reconcile FeedRollouts into stable and canary workloads.
    Run(crate::controller::run::RunArgs),
    /// Print the FeedRollout CustomResourceDefinition as YAML.
    Crd,
    /// Validate a FeedRollout file and evaluate its checks against Prometheus now.
    Check(check::CheckArgs),
}
