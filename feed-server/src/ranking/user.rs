//! The user as one ranking sees them: the stored [`UserState`] with its affinities and taste
//! decayed to the ranking's instant, resolved once and shared by the candidate plan
//! ([`super::candidates`]) and every candidate's signals ([`super::pipeline`]).

use std::collections::HashMap;

use crate::learning::AFFINITY_HALF_LIFE_SECS;
use crate::store::UserState;

/// The user's decayed state at one instant, resolved once per ranking (for the candidate plan
/// and for every candidate's signals): affinities by creator and by tag, and the taste vector.
pub struct UserAt<'a> {
    /// The state as stored.
    pub user: &'a UserState,
    /// Decayed affinity by creator id.
    pub creators: HashMap<&'a str, f64>,
    /// Decayed affinity by tag.
    pub tags: HashMap<&'a str, f64>,
    /// Decayed taste vector (dense, one value per embedding dimension); `None` before the
    /// user's first engagement with an embedded video.
    pub taste: Option<Vec<f64>>,
}

impl<'a> UserAt<'a> {
    /// Resolves `user`'s decayed values at unix time `now`.
    pub fn new(user: &'a UserState, now: f64) -> Self {
        let mut creators = HashMap::new();
        let mut tags = HashMap::new();
        for (field, d) in &user.affinity {
            let value = d.value_at(now, AFFINITY_HALF_LIFE_SECS);
            if let Some(c) = field.strip_prefix("c:") {
                creators.insert(c, value);
            } else if let Some(t) = field.strip_prefix("t:") {
                tags.insert(t, value);
            }
        }
        Self {
            user,
            creators,
            tags,
            taste: taste_at(user, now),
        }
    }
}

/// The user's taste vector as of `now`, if any.
pub fn taste_at(user: &UserState, now: f64) -> Option<Vec<f64>> {
    if user.taste.is_empty() {
        return None;
    }
    let dims = user
        .taste
        .keys()
        .filter_map(|k| k.parse::<usize>().ok())
        .max()?
        + 1;
    let mut v = vec![0.0; dims];
    for (k, d) in &user.taste {
        if let Ok(i) = k.parse::<usize>() {
            v[i] = d.value_at(now, AFFINITY_HALF_LIFE_SECS);
        }
    }
    Some(v)
}
