//! The user as one ranking sees them: the stored [`UserState`] with its affinities and taste
//! decayed to the ranking's instant, resolved once and shared by the candidate plan
//! ([`super::candidates`]) and every candidate's signals ([`super::pipeline`]).

use std::collections::HashMap;

use foldhash::{HashMap as FastMap, HashSet as FastSet};

use super::signals::{self, Normed};
use crate::learning::{AFFINITY_HALF_LIFE_SECS, Decayed};
use crate::store::UserState;
use crate::vocabulary::{self, Term};

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
    /// user's first engagement with an embedded video: [`UserAt::taste`].
    taste: Option<Vec<f64>>,
    /// The taste's sum of squares ([`signals::sum_squares`]), computed once for every cosine.
    taste_sum_squares: f64,
}

impl<'a> UserAt<'a> {
    /// Resolves `user`'s decayed values at unix time `now`.
    pub fn new(user: &'a UserState, now: f64) -> Self {
        let at = |m: &'a HashMap<String, Decayed>| {
            m.iter()
                .map(|(k, d)| (k.as_str(), d.value_at(now, AFFINITY_HALF_LIFE_SECS)))
                .collect()
        };
        let taste = user.taste.at(now, AFFINITY_HALF_LIFE_SECS);
        Self {
            user,
            creators: at(&user.affinity.creators),
            tags: at(&user.affinity.tags),
            taste_sum_squares: taste.as_deref().map_or(0.0, signals::sum_squares),
            taste,
        }
    }

    /// The decayed taste with its sum of squares, for cosines with candidates' embeddings.
    pub fn taste(&self) -> Option<Normed<'_, f64>> {
        let values = self.taste.as_deref()?;
        Some(Normed::with_sum_squares(values, self.taste_sum_squares))
    }

    /// The affinities and follows keyed by catalog term, for scoring ([`ByTerm`]). Call it
    /// after the candidates were read.
    pub fn by_term(&self) -> ByTerm {
        ByTerm {
            creators: vocabulary::known_of(self.creators.iter().map(|(k, v)| (*k, *v))),
            tags: vocabulary::known_of(self.tags.iter().map(|(k, v)| (*k, *v))),
            follows: vocabulary::known_terms(self.user.follows.iter().map(String::as_str)),
        }
    }
}

/// The user's decayed affinities and followed creators keyed by catalog [`Term`], so that
/// scoring a candidate compares integers instead of reading its strings. Built after the
/// candidates were read ([`UserAt::by_term`]): a creator or tag that no catalog entry read so
/// far carries is no candidate's, so it is left out.
pub struct ByTerm {
    /// Decayed affinity by creator.
    pub creators: FastMap<Term, f64>,
    /// Decayed affinity by tag.
    pub tags: FastMap<Term, f64>,
    /// Followed creators.
    pub follows: FastSet<Term>,
}
