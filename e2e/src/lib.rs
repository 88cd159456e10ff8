//! # feedroll-e2e
//!
//! The whole product loop on one machine, as far as it goes without a Kubernetes API server:
//! real Redis, two feed-server processes (`FEED_TRACK=stable` and `canary`, one rollout, shared
//! Redis) built with the test-only `fault-injection` feature, real Prometheus scraping both every
//! second, a traffic generator splitting requests by the canary weight (as the replica-ratio mode
//! splits traffic), and the operator's own brain and analysis engine deciding.
//!
//! - [`procs`]: the processes, on free loopback ports in temporary directories, killed on drop.
//! - [`traffic`]: the traffic generator.
//! - [`driver`]: the rollout driver (brain + analysis engine) and [`timeline`] of its decisions.
//! - [`local`]: the same scenarios on the local cluster (`feedroll-localkube`): the real operator
//!   binary, real kubectl and the `kubectl feedroll` plugin, pods as processes.

pub mod driver;
pub mod local;
pub mod procs;
pub mod timeline;
pub mod traffic;
