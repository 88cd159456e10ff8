//! The integration tests of `localkube`, one test binary (one link, shared
//! monomorphisations): each module was its own `tests/*.rs` binary before.

mod cluster;
mod deployments;
mod fidelity;
mod kubectl;
mod kubelet;
mod net;
mod rbac;
mod script;
