//! The write use cases of the catalog and the users: validate, store, and drop the cached feeds
//! the change makes stale. Handlers (`crate::http`) only parse and answer. (Events are written by
//! their own path.)

pub mod catalog;
pub mod users;

use crate::model::Invalid;
use crate::store::StoreError;

/// Why a write was refused or failed; a refused write changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The input is invalid (its code says how).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
