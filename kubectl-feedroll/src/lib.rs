//! `kubectl feedroll`: a kubectl plugin for FeedRollouts.
//!
//! Layers point one way: [`cli`] (the command line) → the binary's thin I/O shell (`run.rs`:
//! kubeconfig, API calls, watches; `anyhow` lives only there) → the pure parts in this library,
//! which take CRD types and return text or patches: [`render`] (tables, the status view, the timeline), [`edit`] (the command annotation,
//! `set image`, `undo`), [`wait`] (whether a `wait` is over, and its exit code) and [`lint`]
//! (the operator's own validation, without Prometheus).
//!
//! The command protocol (`feedroll.dev/command=<verb>/<nonce>`, verbs), the revision hash and
//! the stable Deployment's recorded source are the operator's code (`feedroll-operator` as a
//! library); validation is `feedroll_crds::validate`, as in `feedroll-operator check` and the
//! local API server.

pub mod cli;
pub mod edit;
pub mod exit;
pub mod lint;
pub mod render;
pub mod wait;
