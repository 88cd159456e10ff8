//! What a user's engagement taught, as the ranking reads it: decayed affinities by creator and
//! by tag, and the taste vector by embedding dimension. The stores decode their encodings into
//! these types (`store::encoding`); nothing above the store sees a field name or a stringified
//! index.

use std::collections::HashMap;

use crate::learning::Decayed;

/// A user's decayed affinities (7-day half-life, [`crate::learning::AFFINITY_HALF_LIFE_SECS`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Affinities {
    /// By creator id.
    pub creators: HashMap<String, Decayed>,
    /// By tag.
    pub tags: HashMap<String, Decayed>,
}

/// A user's decayed taste vector, dense: entry `i` is embedding dimension `i`, zero for
/// dimensions never engaged with; empty before the first engagement with an embedded video.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Taste(pub Vec<Decayed>);

impl Taste {
    /// The vector as of unix time `now` (seconds), `None` when the user has no taste yet.
    pub fn at(&self, now: f64, half_life: f64) -> Option<Vec<f64>> {
        (!self.0.is_empty()).then(|| self.0.iter().map(|d| d.value_at(now, half_life)).collect())
    }
}
