//! `feedroll-localkube`: a local Kubernetes API server for Feedroll, what envtest and kwok's
//! API server are to Go operators.
//!
//! [`FakeApi`] keeps objects in memory ([`store`]) and answers the Kubernetes REST API:
//! discovery, get/list/watch (resumable from a resourceVersion, 410 Gone once compacted),
//! create/update/patch (server-side apply with field managers and conflicts in [`ssa`];
//! merge, strategic and JSON patches in [`patch`]), delete (finalizers, garbage collection of
//! dependents), the `status` and `scale` subresources, Tables for `kubectl get`, RBAC per
//! bearer token ([`rbac`]; every decision recorded with its request unless the request log
//! is bounded ([`FakeApi::set_request_log_limit`]) or off ([`FakeApi::lean`])), and CRDs whose kinds it then serves and
//! validates with the CRD's schema and CEL rules ([`validation`]).
//!
//! In-process, it is a `tower::Service` a `kube::Client` talks to ([`FakeApi::client`]); the
//! `localkube` binary serves it over HTTPS for kubectl and the operator binary ([`serve`]).
//! Controllers plug in through [`FakeApi::subscribe`], [`FakeApi::add_mutator`] and the
//! direct accessors ([`FakeApi::put`], [`FakeApi::update`], [`FakeApi::list_all`]): the
//! [`kubelet`] runs pods as real processes, the [`deployment`] controller turns Deployments
//! into pods, the network ([`net`]: ClusterIPs, EndpointSlices, a TCP proxy per Service port, a
//! gateway for HTTPRoutes, cluster DNS for HTTP clients) serves them and, in [`cluster`], the
//! supervisor runs the API server with all of these, Redis, Prometheus (`file_sd` from the pods),
//! traffic and the operator binary (`localkube --cluster`, `scripts/local-cluster.sh`).

pub mod clock;
pub mod cluster;
pub mod conditions;
pub mod deployment;
pub mod discovery;
pub mod error;
pub mod kubelet;
pub mod meta;
pub mod net;
pub mod patch;
pub mod path;
pub mod printers;
pub mod rbac;
pub mod resources;
pub mod scale;
pub mod selector;
pub mod serve;
pub mod server;
pub mod ssa;
pub mod store;
pub mod table;
pub mod validation;
pub mod watch;

pub use error::ApiError;
pub use rbac::{Decision, Identity, Verb};
pub use server::{FakeApi, Recorded};
pub use store::{Change, EventType, ObjectKey};
