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
/// Client-side validation of FeedRollout files; it lives in `feedroll-crds` so the local API
/// server (`feedroll-localkube`) validates with the same code.
pub use feedroll_crds::validate;
