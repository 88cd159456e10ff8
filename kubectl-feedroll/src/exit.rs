//! Exit codes, documented in `kubectl feedroll --help` and the README: scripts and CI gates
//! branch on them.

use feedroll_crds::Phase;

/// How `kubectl feedroll` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `wait`, the phase waited for was reached.
    Ok,
    /// An error: the API server, the kubeconfig, a missing object, bad input (nothing changed).
    Error,
    /// The command line cannot be parsed (clap's own code).
    Usage,
    /// `wait`: the timeout passed first.
    Timeout,
    /// `lint`: a file is not a valid FeedRollout.
    Invalid,
    /// `wait`: the rollout ended in a terminal phase other than the one waited for.
    Ended(Phase),
}

impl Exit {
    /// The process exit code: 0 ok, 1 error, 2 usage, 3 timeout, 4 invalid file; `wait` ending
    /// elsewhere: 10 Succeeded, 11 RolledBack, 12 Aborted, 13 Failed.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::Timeout => 3,
            Exit::Invalid => 4,
            Exit::Ended(phase) => match phase {
                Phase::Succeeded => 10,
                Phase::RolledBack => 11,
                Phase::Aborted => 12,
                Phase::Failed => 13,
                // Not terminal: `wait` never ends on these (see `wait::judge`).
                Phase::Progressing | Phase::Paused | Phase::Promoting => 1,
            },
        }
    }
}
