//! The command line, like kubectl's: `-n/--namespace`, `-A/--all-namespaces`, `--kubeconfig`,
//! `--context`, `-o json|yaml`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::wait::WaitFor;

/// Exit codes, shown at the end of `--help`.
const EXIT_CODES: &str = "Exit codes: 0 ok (wait: reached), 1 error (nothing changed), 2 usage, \
3 wait timed out, 4 lint found an invalid file; wait ended in another terminal phase: \
10 Succeeded, 11 RolledBack, 12 Aborted, 13 Failed.";

/// List, watch, explain and command FeedRollouts.
#[derive(Debug, Parser)]
#[command(name = "kubectl-feedroll", bin_name = "kubectl feedroll", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Connection and output flags.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Flags every verb takes, as kubectl spells them.
#[derive(Debug, Args)]
pub struct Global {
    /// Namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// `list` in every namespace.
    #[arg(short = 'A', long = "all-namespaces", global = true)]
    pub all_namespaces: bool,
    /// Path of the kubeconfig (default: `$KUBECONFIG`, else `~/.kube/config`).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Output for scripts instead of tables.
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<Output>,
}

/// Machine-readable outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Every FeedRollout (or one): phase, step, desired and actual weight, revisions, age, the
    /// check in trouble.
    #[command(visible_alias = "get")]
    List {
        /// Only this FeedRollout.
        name: Option<String>,
    },
    /// One rollout in detail: steps, checks against thresholds, why it holds, last decisions.
    Status {
        /// FeedRollout name.
        name: String,
        /// Keep watching: redraw on every change.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// The decision history: time, step, weight, decision, the check behind it, who commanded.
    Timeline {
        /// FeedRollout name.
        name: String,
    },
    /// Finish the current step now (`--full`: skip every remaining step and promote).
    Promote {
        /// FeedRollout name.
        name: String,
        /// Skip all remaining steps.
        #[arg(long)]
        full: bool,
    },
    /// Pause where the rollout is.
    Pause {
        /// FeedRollout name.
        name: String,
    },
    /// Leave a pause (a pause step without duration counts as done).
    Resume {
        /// FeedRollout name.
        name: String,
    },
    /// Send all traffic back to stable and stop.
    Abort {
        /// FeedRollout name.
        name: String,
    },
    /// Start a rolled-back or aborted revision again from the first step.
    Retry {
        /// FeedRollout name.
        name: String,
    },
    /// Wait until the rollout reaches a phase (for CI gates; see the exit codes).
    Wait {
        /// FeedRollout name.
        name: String,
        /// The phase to wait for.
        #[arg(long = "for", value_enum)]
        target: WaitFor,
        /// Give up after this long (`30s`, `10m`, `1h30m`).
        #[arg(long, default_value = "10m", value_parser = parse_timeout)]
        timeout: Duration,
    },
    /// Change the spec.
    #[command(subcommand)]
    Set(SetVerb),
    /// Put the stable revision's pod template and ranking profile back into the spec.
    Undo {
        /// FeedRollout name.
        name: String,
    },
    /// Validate FeedRollout files offline: schema, CEL rules, defaults and presets.
    Lint {
        /// Files to check (`-` reads standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a shell completion script.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// `set` verbs.
#[derive(Debug, Subcommand)]
pub enum SetVerb {
    /// Set a container's image (a new revision: the operator starts a rollout).
    Image {
        /// FeedRollout name.
        name: String,
        /// `CONTAINER=IMAGE`.
        #[arg(value_name = "CONTAINER=IMAGE")]
        image: String,
    },
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    feedroll_crds::duration::parse_duration(text)
        .map_err(|_| format!("{text:?} is not a duration like 30s, 10m or 1h30m"))
}
