//! The user as one ranking sees them: the stored [`UserState`] with its affinities and taste
//! decayed to the ranking's instant, resolved once and shared by the candidate plan
//! ([`super::candidates`]) and every candidate's signals ([`super::pipeline`]).

use std::collections::HashMap;

use foldhash::HashMap as FastMap;

use crate::learning::{AFFINITY_HALF_LIFE_SECS, Decayed};
use crate::store::UserState;

/// The user's decayed state at one instant, resolved once per ranking (for the candidate plan
/// and for every candidate's signals): affinities by creator and by tag, and the taste vector.
pub struct UserAt<'a> {
    /// The state as stored.
    pub user: &'a UserState,
    /// Decayed affinity by creator id.
    pub creators: FastMap<&'a str, f64>,
    /// Decayed affinity by tag.
    pub tags: FastMap<&'a str, f64>,
    /// Decayed taste vector (dense, one value per embedding dimension); `None` before the
    /// user's first engagement with an embedded video.
    pub taste: Option<Vec<f64>>,
}

impl<'a> UserAt<'a> {
    /// Resolves `user`'s decayed values at unix time `now`.
    pub fn new(user: &'a UserState, now: f64) -> Self {
        let at = |m: &'a HashMap<String, Decayed>| {
            m.iter()
                .map(|(k, d)| (k.as_str(), d.value_at(now, AFFINITY_HALF_LIFE_SECS)))
                .collect()
        };
        Self {
            user,
            creators: at(&user.affinity.creators),
            tags: at(&user.affinity.tags),
            taste: user.taste.at(now, AFFINITY_HALF_LIFE_SECS),
        }
    }
}
