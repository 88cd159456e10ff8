//! The human command protocol's verbs: `kubectl annotate fr/NAME
//! feedroll.dev/command=<verb>/<nonce>` (the Argo CD actions and `kubectl feedroll` write the
//! same). One derived table gives both directions (verb → [`CommandKind`] and back).

use serde::{Deserialize, Serialize};
use strum::{Display, EnumIter, EnumString, IntoEnumIterator, IntoStaticStr};

/// Human commands, named by their verb in the command annotation (`promote`, `promote-full`,
/// `pause`, `resume`, `abort`, `retry`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumIter,
    EnumString,
    IntoStaticStr,
)]
#[serde(rename_all = "camelCase")]
pub enum CommandKind {
    /// Skip the rest of the current step (analysis gates included).
    #[strum(serialize = "promote")]
    PromoteStep,
    /// Skip every remaining step and promote.
    #[strum(serialize = "promote-full")]
    PromoteFull,
    /// Pause where we are.
    #[strum(serialize = "pause")]
    Pause,
    /// Leave a pause (an indefinite pause step counts as done).
    #[strum(serialize = "resume")]
    Resume,
    /// Send all traffic back to stable and stop; sticky until a new revision or retry.
    #[strum(serialize = "abort")]
    Abort,
    /// Start the current revision again from the first step after a rollback or abort.
    #[strum(serialize = "retry")]
    Retry,
}

impl CommandKind {
    /// The verb used in annotations and events.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The command named `verb`, if it is one.
    pub fn from_verb(verb: &str) -> Option<Self> {
        verb.parse().ok()
    }

    /// Every verb, for messages: `promote, promote-full, pause, resume, abort or retry`.
    pub fn verbs() -> String {
        let verbs: Vec<&str> = Self::iter().map(Self::as_str).collect();
        match verbs.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => verbs.concat(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_parses_back_to_its_command() {
        for kind in CommandKind::iter() {
            assert_eq!(CommandKind::from_verb(kind.as_str()), Some(kind));
        }
        assert_eq!(
            CommandKind::from_verb("promote"),
            Some(CommandKind::PromoteStep)
        );
        assert_eq!(CommandKind::from_verb("Promote"), None);
        assert_eq!(CommandKind::from_verb("rollback"), None);
        assert_eq!(
            CommandKind::verbs(),
            "promote, promote-full, pause, resume, abort or retry"
        );
    }
}
