//! The decision history (`status.history`): why the rollout is where it is, long after the
//! Events (about an hour) are gone.
//!
//! The operator appends one [`HistoryEntry`] per decision (a new revision, a step, a pause, a
//! resume, a promotion, a rollback, an abort, a retry, a revert, an invalid spec, a human
//! command that did not apply) and keeps the last [`HISTORY_LIMIT`]; `kubectl feedroll
//! timeline` prints them. An entry costs 180–250 bytes of JSON (at most about 600: the
//! reason is capped at [`REASON_LIMIT`] bytes), so a full history adds about 12 KiB (at most
//! ~30 KiB) to the object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strum::{Display, EnumIter, IntoStaticStr};

use crate::events::EventReason;
use crate::status::{Phase, Verdict};

/// How many decisions `status.history` keeps (the oldest are dropped).
pub const HISTORY_LIMIT: usize = 50;

/// Longest `reason` kept in an entry, in bytes (longer ones are cut at a character boundary
/// and end with `…`).
pub const REASON_LIMIT: usize = 300;

/// One decision of the operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When it was decided.
    pub at: Time,
    /// What was decided.
    pub decision: Decision,
    /// The phase after the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The step index after the decision (0-based, like `currentStepIndex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// The desired canary weight after the decision.
    #[serde(default)]
    pub weight: i32,
    /// Why, in words (the status message of the decision).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 300))]
    pub reason: String,
    /// The check whose result decided, when analysis decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<DecisiveCheck>,
    /// The human command behind the decision, when a human caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandRef>,
}

/// The kinds of decision kept in the history: the Events that move a rollout
/// ([`Decision::of`] an [`EventReason`]), under the shorter names the timeline shows.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Display,
    IntoStaticStr,
    EnumIter,
)]
pub enum Decision {
    /// A new revision started rolling out (or was first deployed).
    Started,
    /// A step was entered.
    StepAdvanced,
    /// The rollout waits for a human.
    Paused,
    /// A pause ended.
    Resumed,
    /// All steps done (or a full promotion): the canary becomes stable.
    Promoting,
    /// Stable runs the new revision.
    Promoted,
    /// Analysis, pod health or the progress deadline rolled the canary back.
    RolledBack,
    /// A human aborted.
    Aborted,
    /// A human restarted a rolled-back or aborted revision.
    Retried,
    /// The spec went back to the stable revision.
    Reverted,
    /// The spec cannot be acted on.
    Failed,
    /// A human command did not apply in the phase it arrived in.
    CommandIgnored,
}

impl Decision {
    /// The name shown by `kubectl feedroll timeline`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The decision an Event with `reason` stands for, given the phase after it (`None`: a
    /// notice that changes nothing, kept only as an Event). Exhaustive on purpose: a new
    /// reason must say whether it is a decision.
    pub fn of(reason: EventReason, phase: Option<Phase>) -> Option<Self> {
        Some(match reason {
            EventReason::RolloutStarted => Decision::Started,
            EventReason::StepAdvanced => Decision::StepAdvanced,
            EventReason::PausedForHuman => Decision::Paused,
            EventReason::Resumed => Decision::Resumed,
            EventReason::Promoting => Decision::Promoting,
            EventReason::Promoted => Decision::Promoted,
            EventReason::RolledBack | EventReason::ReplayRegression => Decision::RolledBack,
            EventReason::Aborted => Decision::Aborted,
            EventReason::Retried => Decision::Retried,
            EventReason::Reverted => Decision::Reverted,
            EventReason::InvalidSpec => Decision::Failed,
            EventReason::CommandIgnored => Decision::CommandIgnored,
            // The deadline rolls back or pauses a step; during a promotion it is only a warning.
            EventReason::ProgressDeadlineExceeded => match phase {
                Some(Phase::RolledBack) => Decision::RolledBack,
                Some(Phase::Paused) => Decision::Paused,
                _ => return None,
            },
            EventReason::WeightChanged
            | EventReason::AnalysisPassed
            | EventReason::AnalysisFailed
            | EventReason::Held
            | EventReason::ApplyFailed
            | EventReason::CanaryNotReady
            | EventReason::WeightSkew
            | EventReason::PrometheusCredentialsInvalid
            | EventReason::PrometheusAuthFailed
            | EventReason::PrometheusUnreachable
            | EventReason::ReplayPassed => return None,
        })
    }

    /// Which decision names a transition that made several (a retry also enters step 1; a
    /// promote command past the last step also starts the promotion): the higher, the more it
    /// says about where the rollout ended up.
    pub fn rank(self) -> u8 {
        match self {
            Decision::CommandIgnored => 0,
            Decision::StepAdvanced => 1,
            Decision::Resumed => 2,
            Decision::Paused => 3,
            Decision::Promoting => 4,
            Decision::Promoted => 5,
            Decision::Started | Decision::Retried | Decision::Reverted => 6,
            Decision::RolledBack | Decision::Aborted | Decision::Failed => 7,
        }
    }
}

/// The check behind a decision: its value against its threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisiveCheck {
    /// Check name.
    pub name: String,
    /// The judged value; absent without data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold, e.g. `<= 0.005`.
    pub threshold: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// A human command, as the `feedroll.dev/command` annotation carried it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandRef {
    /// The command id (the annotation value, `<verb>/<nonce>`).
    #[schemars(length(max = 128))]
    pub id: String,
    /// Who sent it, as the sender declared it (`feedroll.dev/command-author`; `kubectl
    /// feedroll` writes the kubeconfig user). Not authenticated: the API server's audit log is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub author: Option<String>,
}

/// Longest command id or author kept in an entry, in bytes (both come from annotations, which
/// anyone with `patch` can fill).
pub const COMMAND_LIMIT: usize = 128;

/// `history` with `entry` appended and only the last [`HISTORY_LIMIT`] kept; the reason and the
/// command's id and author are capped ([`REASON_LIMIT`], [`COMMAND_LIMIT`]) so the status stays
/// small whatever the annotations hold.
pub fn append(history: &mut Vec<HistoryEntry>, mut entry: HistoryEntry) {
    entry.reason = cap(&entry.reason, REASON_LIMIT);
    if let Some(command) = &mut entry.command {
        command.id = cap(&command.id, COMMAND_LIMIT);
        command.author = command.author.as_deref().map(|a| cap(a, COMMAND_LIMIT));
    }
    history.push(entry);
    if history.len() > HISTORY_LIMIT {
        let excess = history.len() - HISTORY_LIMIT;
        history.drain(..excess);
    }
}

/// `text` cut to at most `limit` bytes at a character boundary, ending with `…` when cut.
fn cap(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn every_decision_stands_for_some_event_reason() {
        let phases = [None, Some(Phase::RolledBack), Some(Phase::Paused)];
        for decision in Decision::iter() {
            let reached = EventReason::iter()
                .any(|r| phases.iter().any(|p| Decision::of(r, *p) == Some(decision)));
            assert!(reached, "{decision} is the decision of no Event reason");
        }
        // Notices are not decisions, and a deadline during a promotion only warns.
        assert_eq!(Decision::of(EventReason::Held, None), None);
        assert_eq!(Decision::of(EventReason::ApplyFailed, None), None);
        assert_eq!(
            Decision::of(
                EventReason::ProgressDeadlineExceeded,
                Some(Phase::Promoting)
            ),
            None
        );
    }

    #[test]
    fn old_history_entries_still_parse() {
        let yaml = "at: 2025-01-02T03:04:05Z\ndecision: CommandIgnored\nphase: Paused\nstep: 2\nweight: 25\nreason: command abort/1 does not apply\n";
        let entry: HistoryEntry = serde_yaml::from_str(yaml).expect("old entry parses");
        assert_eq!(entry.decision, Decision::CommandIgnored);
        assert_eq!(entry.decision.as_str(), "CommandIgnored");
        assert_eq!(entry.phase, Some(Phase::Paused));
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let text = "é".repeat(400);
        let capped = cap(&text, REASON_LIMIT);
        assert!(capped.len() <= REASON_LIMIT, "{}", capped.len());
        assert!(capped.ends_with('…'));
        assert_eq!(cap("short", REASON_LIMIT), "short");
    }

    #[test]
    fn appending_keeps_the_last_entries_and_caps_annotation_values() {
        let entry = |i: usize| HistoryEntry {
            at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            decision: Decision::Paused,
            phase: Some(Phase::Paused),
            step: Some(i32::try_from(i).unwrap_or_default()),
            weight: 10,
            reason: String::new(),
            check: None,
            command: Some(CommandRef {
                id: format!("pause/{}", "9".repeat(1000)),
                author: Some("a".repeat(1000)),
            }),
        };
        let mut history = Vec::new();
        for i in 0..HISTORY_LIMIT + 7 {
            append(&mut history, entry(i));
        }
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert_eq!(history[0].step, Some(7));
        let command = history[0].command.as_ref().expect("command");
        assert!(command.id.len() <= COMMAND_LIMIT && command.id.starts_with("pause/"));
        assert!(
            command
                .author
                .as_ref()
                .is_some_and(|a| a.len() <= COMMAND_LIMIT)
        );
    }
}
