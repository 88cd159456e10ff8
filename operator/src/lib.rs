//! The FeedRollout operator library: the rollout brain (a pure state machine), the Prometheus
//! analysis engine, client-side validation of FeedRollout files and the `feedroll-operator` CLI.

pub mod analysis;
pub mod brain;
pub mod cli;
pub mod controller;
pub mod desired;
pub mod driver;
pub mod observe;
pub mod tls;
pub mod validate;
