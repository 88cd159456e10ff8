//! The stages of one reconcile, each a module with its own error type (Stackable's operators
//! are the model: `dereference → validate → build → apply → update_status`), called in order by
//! [`super::reconcile::apply`]:
//!
//! ```text
//!  FeedRollout ─► resolve ─► observe ─► decide ─► build ─► apply ─► status ─► record
//!                 (plan)     (caches)   (brain,   (pure)   (SSA)    (SSA of   (Events,
//!                                       analyzer)                   status)   metrics)
//! ```
//!
//! - resolve: [`super::plan::Plan::resolve`], once per reconcile.
//! - [`observe`]: the rollout's Deployments and pods from the watch caches (no API request),
//!   as the brain's observations, and the command annotation.
//! - [`decide`]: the analysis run that is due (queued with the analyzer, which wakes the rollout
//!   when the run is ready), the replay the gate asks for, and the brain's transition.
//! - [`build`]: the objects the decided status asks for, and the live Deployments that drifted
//!   (pure).
//! - [`apply`]: server-side apply of those objects, and the HTTPRoutes a changed spec no
//!   longer asks for.
//! - [`status`]: the `Reconciled` condition, replica counts, weights and selector; the status
//!   is written when it changed.
//! - [`record`]: Events, metrics and logs of the decision.

pub mod apply;
pub mod build;
pub mod decide;
pub mod observe;
pub mod record;
pub mod status;
