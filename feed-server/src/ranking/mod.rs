//! The ranking pipeline: candidate sources → filters → six signals → weighted score →
//! diversity re-ranking.
//!
//! - [`signals`]: the formulas, pure and documented.
//! - [`inputs`]: what a candidate's signals are computed from (shared with the exposure-log
//!   replay).
//! - [`user`]: the user's affinities and taste decayed to the ranking's instant.
//! - [`candidates`]: which source lists to read for a user, and how they merge.
//! - [`page_ttls`]: how long first pages of a ranked list stay fresh, by their content types.
//! - [`diversity`]: greedy re-ranking for creator cap, similar-content spread, long-tail slots.
//! - [`pipeline`]: the orchestration over a [`crate::store::Store`] in a fixed, small number of
//!   round trips, independent of the number of candidates.

pub mod candidates;
pub mod diversity;
pub mod inputs;
pub mod page_ttls;
pub mod pipeline;
pub mod signals;
pub mod user;

pub use pipeline::{Detail, RankedList, rank_candidates, rank_feed, rank_feed_with};
