//! How the stores hold what events teach, decoded into the domain types of
//! [`crate::affinity`]. Events write affinities under the fields `c:{creator}` and `t:{tag}`
//! ([`crate::learning::creator_field`], [`crate::learning::tag_field`]) and taste under the
//! embedding dimension's index; the stores (and the exposure-log replay, which replays what a
//! store holds) are the only readers of those fields.

use std::collections::HashMap;

use crate::affinity::{Affinities, Taste};
use crate::learning::Decayed;
use crate::model::MAX_EMBEDDING_DIM;

/// Field prefix of a creator's affinity.
const CREATOR: &str = "c:";
/// Field prefix of a tag's affinity.
const TAG: &str = "t:";

/// The affinities of a user's affinity fields; fields of neither kind are ignored.
pub fn affinities<'a>(fields: impl IntoIterator<Item = (&'a str, Decayed)>) -> Affinities {
    let mut out = Affinities::default();
    for (field, d) in fields {
        if let Some(creator) = field.strip_prefix(CREATOR) {
            out.creators.insert(creator.to_owned(), d);
        } else if let Some(tag) = field.strip_prefix(TAG) {
            out.tags.insert(tag.to_owned(), d);
        }
    }
    out
}

/// The dense taste vector of a user's taste fields (one per dimension index). Fields that are
/// not an index below [`MAX_EMBEDDING_DIM`] are ignored: no embedding the catalog accepts has
/// such a dimension, and a corrupt field must not size the vector.
pub fn taste<'a>(fields: impl IntoIterator<Item = (&'a str, Decayed)>) -> Taste {
    let dims: Vec<(usize, Decayed)> = fields
        .into_iter()
        .filter_map(|(k, d)| Some((k.parse::<usize>().ok()?, d)))
        .filter(|(i, _)| *i < MAX_EMBEDDING_DIM)
        .collect();
    let len = dims.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let mut out = vec![Decayed::default(); len];
    for (i, d) in dims {
        out[i] = d;
    }
    Taste(out)
}

/// The fields of a map of decayed values, as [`affinities`] and [`taste`] take them.
pub fn fields(map: &HashMap<String, Decayed>) -> impl Iterator<Item = (&str, Decayed)> {
    map.iter().map(|(k, d)| (k.as_str(), *d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::{creator_field, tag_field};

    fn d(value: f64) -> Decayed {
        Decayed { value, at: 10.0 }
    }

    #[test]
    fn affinity_fields_decode_by_kind_as_events_write_them() {
        let fields = HashMap::from([
            (creator_field("ann"), d(1.0)),
            (tag_field("cats"), d(2.0)),
            // A creator id that looks like a tag field stays a creator.
            (creator_field("t:x"), d(3.0)),
            ("junk".to_owned(), d(4.0)),
        ]);
        let a = affinities(super::fields(&fields));
        assert_eq!(
            a.creators,
            HashMap::from([("ann".to_owned(), d(1.0)), ("t:x".to_owned(), d(3.0))])
        );
        assert_eq!(a.tags, HashMap::from([("cats".to_owned(), d(2.0))]));
    }

    #[test]
    fn taste_fields_decode_into_a_dense_vector() {
        let fields = HashMap::from([
            ("0".to_owned(), d(1.0)),
            ("2".to_owned(), d(3.0)),
            ("x".to_owned(), d(9.0)),
            (MAX_EMBEDDING_DIM.to_string(), d(9.0)),
            ("18446744073709551615".to_owned(), d(9.0)),
        ]);
        assert_eq!(
            taste(super::fields(&fields)),
            Taste(vec![d(1.0), Decayed::default(), d(3.0)])
        );
        assert_eq!(taste(super::fields(&HashMap::new())), Taste::default());
        assert_eq!(taste(super::fields(&HashMap::new())).at(20.0, 1.0), None);
    }
}
