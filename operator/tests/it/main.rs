//! The integration tests of `operator`, one test binary (one link, shared
//! monomorphisations): each module was its own `tests/*.rs` binary before.

mod support {
    pub mod brain;
    pub mod generators;
    pub mod prometheus;
}
mod analysis_prometheus;
mod analyzer;
mod check_cli;
mod controller;
mod desired;
mod examples;
mod history_props;
mod leader;
mod localkube;
mod observe;
mod progress_deadline;
mod prometheus_auth;
mod rbac;
mod reconcile;
mod replay_gate;
mod run_judgement;
mod run_server;
mod sequential_prometheus;
mod sequential_props;
mod state_machine;
mod state_machine_props;
mod until_confident;
