//! Proptest generators shared by the brain's property tests (`state_machine_props.rs`,
//! `history_props.rs`): random sequences of what the world reports
//! between two decisions — time passing, analysis runs, pod health, human commands, new
//! revisions — each test drawing them in its own proportions ([`Mix`]).

#![allow(dead_code)]

use std::ops::Range;

use feedroll_crds::{CommandKind, Verdict};
use proptest::prelude::*;

/// What happens before one decision.
#[derive(Clone, Debug)]
pub struct Event {
    /// Seconds since the previous decision.
    pub advance: i64,
    /// An analysis run: whether it is a fast one, and one verdict per check.
    pub verdicts: Option<(bool, Vec<Verdict>)>,
    /// The canary pods are ready.
    pub ready: bool,
    /// A canary pod crash-loops.
    pub crash: bool,
    /// A human command, and whether its author is named.
    pub command: Option<(CommandKind, bool)>,
    /// The spec moves to revision `r<n>`.
    pub new_revision: Option<u8>,
    /// The stable pods are ready at the revision being promoted.
    pub stable_ready: bool,
    /// A no-data record of a sequential check is evidence still being gathered.
    pub gathering: bool,
}

/// How often each kind of [`Event`] happens.
#[derive(Clone, Debug)]
pub struct Mix {
    /// Seconds between two decisions.
    pub advance: Range<i64>,
    /// Weights of pass and fail verdicts (no data and errors weigh 1 each).
    pub pass: u32,
    /// See `pass`.
    pub fail: u32,
    /// Probability of the canary pods being ready.
    pub ready: f64,
    /// Probability of a crash loop.
    pub crash: f64,
    /// Probability of a human command.
    pub command: f64,
    /// Probability of a new revision.
    pub new_revision: f64,
}

/// A verdict, `pass` and `fail` weighted against one no-data and one error.
pub fn verdict(pass: u32, fail: u32) -> impl Strategy<Value = Verdict> {
    prop_oneof![
        pass => Just(Verdict::Pass),
        fail => Just(Verdict::Fail),
        1 => Just(Verdict::NoData),
        1 => Just(Verdict::Error),
    ]
}

/// Any human command.
pub fn command() -> impl Strategy<Value = CommandKind> {
    prop_oneof![
        Just(CommandKind::PromoteStep),
        Just(CommandKind::PromoteFull),
        Just(CommandKind::Pause),
        Just(CommandKind::Resume),
        Just(CommandKind::Abort),
        Just(CommandKind::Retry),
    ]
}

/// One [`Event`] in the proportions of `mix`, with a verdict for each of `checks` checks.
pub fn event(mix: Mix, checks: usize) -> impl Strategy<Value = Event> {
    let outcomes = (
        mix.advance,
        prop::option::weighted(
            0.7,
            (
                any::<bool>(),
                prop::collection::vec(verdict(mix.pass, mix.fail), checks),
            ),
        ),
        prop::bool::weighted(mix.ready),
        prop::bool::weighted(mix.crash),
    );
    let changes = (
        prop::option::weighted(mix.command, (command(), any::<bool>())),
        prop::option::weighted(mix.new_revision, 1..4u8),
        prop::bool::weighted(0.7),
        prop::bool::weighted(0.7),
    );
    (outcomes, changes).prop_map(
        |((advance, verdicts, ready, crash), (command, new_revision, stable_ready, gathering))| {
            Event {
                advance,
                verdicts,
                ready,
                crash,
                command,
                new_revision,
                stable_ready,
                gathering,
            }
        },
    )
}
