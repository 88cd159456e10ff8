//! Ranking profiles and ranking experiments.
//!
//! A [`RankingProfile`] holds the weights of the six ranking signals ([`Signal`]) and the knobs around them
//! (freshness half-lives, smoothing priors, candidate budgets, filters, diversity, cache TTLs).
//! An [`Experiment`] holds several named variants, each a profile with a traffic share; users are
//! assigned to a variant by a stable hash of `(salt, user id)` ([`Experiment::assign`]).
//!
//! This crate is the one definition of the format: feed-server reads it from its profile file and
//! the FeedRollout custom resource embeds it (enable the `schema` feature for `JsonSchema`).
//! Field names are camelCase, as in every Kubernetes API.

mod assignment;
mod error;
mod experiment;
mod profile;

pub use assignment::{BUCKETS, bucket};
pub use error::ProfileError;
pub use experiment::{DEFAULT_VARIANT, Experiment, Variant};
pub use profile::{
    AffinityKnobs, BrevityKnobs, CacheKnobs, CandidateBudgets, CompletionKnobs, ContentTypeHours,
    ContentTypeSeconds, DiversityKnobs, EmbeddingKnobs, EngagementKnobs, FilterKnobs,
    FreshnessKnobs, ProfileVersion, RankingProfile, Signal, SignalWeights, V1_BUCKET_PRIOR_WEIGHT,
};
