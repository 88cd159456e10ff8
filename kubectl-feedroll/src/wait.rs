//! `wait NAME --for PHASE`: whether the rollout is there yet. Pure.

use clap::ValueEnum;
use feedroll_crds::{FeedRollout, Phase};

/// What `wait` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    /// `Succeeded`: stable runs the spec's revision.
    Succeeded,
    /// `Paused`: the rollout waits for a human.
    Paused,
    /// `RolledBack`: analysis or pod health rolled the canary back.
    RolledBack,
    /// Any of `Succeeded`, `RolledBack`, `Aborted`, `Failed`.
    AnyTerminal,
}

impl WaitFor {
    /// The flag value: `succeeded`, `paused`, `rolled-back`, `any-terminal`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitFor::Succeeded => "succeeded",
            WaitFor::Paused => "paused",
            WaitFor::RolledBack => "rolled-back",
            WaitFor::AnyTerminal => "any-terminal",
        }
    }
}

/// Where a rollout stands for a `wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The phase waited for was reached.
    Reached(Phase),
    /// The rollout stopped in another terminal phase: it will not get there without a change.
    Ended(Phase),
    /// Not yet (includes a status that does not reflect the latest spec yet).
    Pending,
}

/// The phases a rollout stays in until the spec changes or a human acts.
pub fn is_terminal(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Succeeded | Phase::RolledBack | Phase::Aborted | Phase::Failed
    )
}

/// Judges `fr` for a wait on `target`. A status older than the spec (`observedGeneration`
/// below `metadata.generation`, e.g. right after `set image`) is `Pending`: its phase
/// describes the previous revision.
pub fn judge(fr: &FeedRollout, target: WaitFor) -> Outcome {
    let Some(status) = fr.status.as_ref() else {
        return Outcome::Pending;
    };
    if let (Some(generation), observed) = (fr.metadata.generation, status.observed_generation)
        && observed.is_none_or(|o| o < generation)
    {
        return Outcome::Pending;
    }
    let Some(phase) = status.phase else {
        return Outcome::Pending;
    };
    let reached = match target {
        WaitFor::Succeeded => phase == Phase::Succeeded,
        WaitFor::Paused => phase == Phase::Paused,
        WaitFor::RolledBack => phase == Phase::RolledBack,
        WaitFor::AnyTerminal => is_terminal(phase),
    };
    if reached {
        Outcome::Reached(phase)
    } else if is_terminal(phase) {
        Outcome::Ended(phase)
    } else {
        Outcome::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use feedroll_crds::FeedRolloutStatus;

    fn fr(generation: i64, observed: Option<i64>, phase: Option<Phase>) -> FeedRollout {
        let mut fr: FeedRollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "feedroll.dev/v1alpha1", "kind": "FeedRollout",
            "metadata": {"name": "feed", "generation": generation},
            "spec": {"template": {"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}}}
        }))
        .expect("a FeedRollout");
        fr.status = Some(FeedRolloutStatus {
            observed_generation: observed,
            phase,
            ..FeedRolloutStatus::default()
        });
        fr
    }

    #[test]
    fn the_target_phase_is_reached_and_other_terminal_phases_end_the_wait() {
        let cases = [
            (
                WaitFor::Succeeded,
                Phase::Succeeded,
                Outcome::Reached(Phase::Succeeded),
            ),
            (
                WaitFor::Succeeded,
                Phase::RolledBack,
                Outcome::Ended(Phase::RolledBack),
            ),
            (
                WaitFor::Succeeded,
                Phase::Aborted,
                Outcome::Ended(Phase::Aborted),
            ),
            (
                WaitFor::Succeeded,
                Phase::Failed,
                Outcome::Ended(Phase::Failed),
            ),
            (WaitFor::Succeeded, Phase::Paused, Outcome::Pending),
            (WaitFor::Succeeded, Phase::Progressing, Outcome::Pending),
            (
                WaitFor::Paused,
                Phase::Paused,
                Outcome::Reached(Phase::Paused),
            ),
            (
                WaitFor::Paused,
                Phase::Succeeded,
                Outcome::Ended(Phase::Succeeded),
            ),
            (
                WaitFor::RolledBack,
                Phase::RolledBack,
                Outcome::Reached(Phase::RolledBack),
            ),
            (WaitFor::RolledBack, Phase::Promoting, Outcome::Pending),
            (
                WaitFor::AnyTerminal,
                Phase::Aborted,
                Outcome::Reached(Phase::Aborted),
            ),
            (WaitFor::AnyTerminal, Phase::Paused, Outcome::Pending),
        ];
        for (target, phase, want) in cases {
            assert_eq!(
                judge(&fr(2, Some(2), Some(phase)), target),
                want,
                "{target:?} {phase:?}"
            );
        }
    }

    #[test]
    fn flag_names_are_the_ones_clap_accepts() {
        for target in WaitFor::value_variants() {
            let value = target.to_possible_value().expect("a value");
            assert_eq!(value.get_name(), target.as_str());
        }
    }

    #[test]
    fn a_status_older_than_the_spec_is_pending() {
        assert_eq!(
            judge(&fr(3, Some(2), Some(Phase::Succeeded)), WaitFor::Succeeded),
            Outcome::Pending
        );
        assert_eq!(
            judge(&fr(3, None, Some(Phase::Succeeded)), WaitFor::Succeeded),
            Outcome::Pending
        );
        assert_eq!(
            judge(&fr(3, Some(3), None), WaitFor::AnyTerminal),
            Outcome::Pending
        );
    }
}
