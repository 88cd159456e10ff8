//! Decayed values as Redis holds them: sums anchored to an era, so that an addition is one
//! `HINCRBYFLOAT` and reads nothing.
//!
//! A decayed value at time `t` is `Σ wₑ · 2^(−(t − tsₑ)/h)` ([`crate::learning`]). With an
//! anchor `Aₖ` it is `2^(−(t − Aₖ)/h) · Σ wₑ · 2^((tsₑ − Aₖ)/h)`, and the sum does not depend on
//! `t`: an event adds its own term `wₑ · 2^((tsₑ − Aₖ)/h)` to the stored sum, whatever the sum
//! holds. The anchors are eras of [`ERA_HALF_LIVES`] half-lives from the unix epoch (`Aₖ = k·E`,
//! about 1.2 years at the 7-day half-life), and an event adds to the field of its own
//! timestamp's era, `~{k}:{field}` ([`anchored_field`]). A reader folds the fields of every era
//! back into one [`Decayed`] per field ([`decode`]); an era's sums fade with the values they
//! hold (by `2^−64` one era later).
//!
//! **Why eras this short.** Within an era the exponent stays in `[0, 64)`, so a term is at most
//! `w · 2^64 ≈ w · 1.8·10^19`. Redis stores an `HINCRBYFLOAT` sum as fixed-point decimal text
//! with 17 digits after the point (a `long double` printed with `%.17Lf`): a sum below `10^20`
//! is under 40 characters (a listpack-encoded hash keeps values up to 64 bytes) and cheap to
//! print and parse. With 512-half-life eras (~10 years) the sums reached `10^123` today, and
//! printing and parsing their 140-digit text took a third of Redis's CPU per event. The cost of
//! short eras is one more field per field and era (~1.2 years) in which the field is written;
//! nothing may drop them, since a replay (`POST /v1/rank` with `at`) reads history at any time.
//!
//! **The legacy form** (before this format): field `f` held the value as of its last update and
//! `f@` that time, written by a read-modify-write script. [`decode`] still reads it and folds it
//! in — decayed values are linear, so a value split over both forms is the same value — so data
//! written before the change is kept with no migration step; nothing writes that form any more.
//!
//! The half-life is part of the format: the stored sums mean something only with the half-life
//! that wrote them ([`crate::learning::AFFINITY_HALF_LIFE_SECS`]).

use std::collections::HashMap;

use crate::learning::{Decayed, DecayedAdd};

/// Length of an era in half-lives: terms stay below `2^64` times their weight.
pub const ERA_HALF_LIVES: f64 = 64.0;

/// Prefix of an anchored field; no legacy field starts with it (creator and tag fields start
/// with `c:` and `t:`, taste fields with a digit).
const ANCHORED: char = '~';
/// Suffix of a legacy field's time field.
const LEGACY_TIME: char = '@';

/// Eras of a fixed length from the unix epoch, each with its anchor `A` (its start): a term
/// `w · 2^((ts − A)/h)` is added to the sum of `ts`'s era, so it stays below `2^length` times
/// its weight. The decayed hashes use [`ERAS`]; the taste's fixed-point sums shorter ones
/// (`super::taste_sums`).
#[derive(Clone, Copy, Debug)]
pub struct Eras {
    /// Length of an era in half-lives.
    pub half_lives: f64,
}

impl Eras {
    /// The era of unix time `ts`.
    pub fn of(self, ts: f64, half_life: f64) -> i64 {
        (ts / (self.half_lives * half_life)).floor() as i64
    }

    /// The anchor (unix time) of `era`.
    pub fn anchor(self, era: i64, half_life: f64) -> f64 {
        era as f64 * self.half_lives * half_life
    }

    /// The era of an addition of `weight` at `ts`, and the term it adds to that era's sum.
    pub fn term(self, weight: f64, ts: f64, half_life: f64) -> (i64, f64) {
        let era = self.of(ts, half_life);
        (
            era,
            weight * ((ts - self.anchor(era, half_life)) / half_life).exp2(),
        )
    }
}

/// The eras of the decayed hashes.
const ERAS: Eras = Eras {
    half_lives: ERA_HALF_LIVES,
};

/// The field holding `field`'s anchored sum in `era`. Ids never hold control characters but may
/// hold anything else, so the era comes first and ends at the first `:`.
pub fn anchored_field(field: &str, era: i64) -> String {
    format!("{ANCHORED}{era}:{field}")
}

/// What `adds` add to the anchored sums: one `(field, era, increment)` per field and era, in the
/// order the fields first appear (terms of one field and era summed).
pub fn terms(adds: &[DecayedAdd], half_life: f64) -> Vec<(&str, i64, f64)> {
    let mut out: Vec<(&str, i64, f64)> = Vec::new();
    let mut index: HashMap<(&str, i64), usize> = HashMap::new();
    for a in adds {
        let (era, term) = ERAS.term(a.weight, a.ts, half_life);
        let key = (a.field.as_str(), era);
        match index.get(&key) {
            Some(&i) => out[i].2 += term,
            None => {
                index.insert(key, out.len());
                out.push((key.0, era, term));
            }
        }
    }
    out
}

/// What `adds` add to a decayed hash: one `(field, increment)` per field and era, in the order
/// the fields first appear (terms of one field and era summed: [`terms`]).
pub fn increments(adds: &[DecayedAdd], half_life: f64) -> Vec<(String, f64)> {
    terms(adds, half_life)
        .into_iter()
        .map(|(field, era, sum)| (anchored_field(field, era), sum))
        .collect()
}

/// A part of a decayed value: the time of its anchor (or legacy update) and its value there.
type Part = (f64, f64);

/// The decayed values of a decayed hash (its fields and values, as `HGETALL` returns them) and
/// of `logged`, anchored sums `(field, era, sum)` from a user's sums log
/// ([`super::user_sums`]): every era's anchored sum and the legacy value of a field folded into
/// one [`Decayed`], each field once, in no particular order. Fields that do not parse, and
/// values that are not finite numbers, are skipped.
///
/// A heavy user's affinity hash holds thousands of fields (~4,500 for the bench world's most
/// active user), read by every ranking of that user: the fields are borrowed from the reply, not
/// copied, and a field of one part (one era, the common case) is not sorted or folded.
pub fn decode<'a>(
    raw: &[(&'a str, &'a str)],
    logged: &[(&'a str, i64, f64)],
    half_life: f64,
) -> Vec<(&'a str, Decayed)> {
    let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
    // Each field's parts: the first inline, any more beside it.
    let mut fields: Vec<(&str, Part, Vec<Part>)> = Vec::with_capacity(raw.len());
    let mut index: HashMap<&str, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(raw.len(), Default::default());
    let mut add = |field: &'a str, part: Part| match index.get(field) {
        Some(&at) => fields[at].2.push(part),
        None => {
            index.insert(field, fields.len());
            fields.push((field, part, Vec::new()));
        }
    };
    // Only data written before the anchored form has legacy fields.
    let mut legacy: Vec<(&str, f64)> = Vec::new();
    let mut legacy_times: HashMap<&str, f64> = HashMap::new();
    for &(name, value) in raw {
        if let Some(rest) = name.strip_prefix(ANCHORED) {
            let Some((era, field)) = rest.split_once(':') else {
                continue;
            };
            let (Ok(era), Some(sum)) = (era.parse::<i64>(), number(value)) else {
                continue;
            };
            add(field, (ERAS.anchor(era, half_life), sum));
        } else if let Some(field) = name.strip_suffix(LEGACY_TIME) {
            if let Some(t) = number(value) {
                legacy_times.insert(field, t);
            }
        } else if let Some(v) = number(value) {
            legacy.push((name, v));
        }
    }
    for (name, v) in legacy {
        add(name, (legacy_times.get(name).copied().unwrap_or(0.0), v));
    }
    for &(field, era, sum) in logged.iter().filter(|(.., sum)| sum.is_finite()) {
        add(field, (ERAS.anchor(era, half_life), sum));
    }
    fields
        .into_iter()
        .map(|(field, (at, v), mut more)| {
            let d = if more.is_empty() {
                Decayed::default().add(v, at, half_life)
            } else {
                // Folded in time order, so that a read does not depend on the reply's order.
                more.push((at, v));
                more.sort_by(|a, b| a.0.total_cmp(&b.0));
                more.into_iter()
                    .fold(Decayed::default(), |d, (at, v)| d.add(v, at, half_life))
            };
            (field, d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::{AFFINITY_HALF_LIFE_SECS as HL, apply_decayed};
    use proptest::prelude::*;

    const ERA: f64 = ERA_HALF_LIVES * HL;

    fn add(field: &str, weight: f64, ts: f64) -> DecayedAdd {
        DecayedAdd {
            field: field.into(),
            weight,
            ts,
        }
    }

    /// [`super::decode`] of a hash given as a map, each field checked to come back once.
    fn decode(raw: &HashMap<String, String>, half_life: f64) -> HashMap<String, Decayed> {
        let pairs: Vec<(&str, &str)> = raw.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let fields = super::decode(&pairs, &[], half_life);
        let n = fields.len();
        let out: HashMap<String, Decayed> =
            fields.into_iter().map(|(f, d)| (f.to_owned(), d)).collect();
        assert_eq!(out.len(), n, "a field came back twice");
        out
    }

    /// What Redis holds after `HINCRBYFLOAT` of each increment (as text, like a reply).
    fn stored(batches: &[Vec<DecayedAdd>]) -> HashMap<String, String> {
        let mut sums: HashMap<String, f64> = HashMap::new();
        for b in batches {
            for (f, inc) in increments(b, HL) {
                *sums.entry(f).or_default() += inc;
            }
        }
        sums.into_iter().map(|(f, v)| (f, v.to_string())).collect()
    }

    fn reference(batches: &[Vec<DecayedAdd>]) -> HashMap<String, Decayed> {
        let mut m = HashMap::new();
        for b in batches {
            apply_decayed(&mut m, b, HL);
        }
        m
    }

    fn assert_same_at(t: f64, got: &HashMap<String, Decayed>, want: &HashMap<String, Decayed>) {
        assert_eq!(got.len(), want.len(), "fields: {got:?} against {want:?}");
        for (f, w) in want {
            let (g, w) = (got[f].value_at(t, HL), w.value_at(t, HL));
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "{f}: anchored {g}, read-modify-write {w}"
            );
        }
    }

    #[test]
    fn one_increment_per_field_and_era_with_the_terms_summed() {
        let t = 1_700_000_000.0;
        let incs = increments(
            &[
                add("c:a", 1.0, t),
                add("t:x", 2.0, t),
                add("c:a", 3.0, t + HL),
                // The same field in the era before.
                add("c:a", 1.0, t - ERA),
            ],
            HL,
        );
        let era = ERAS.of(t, HL);
        let term = |w: f64, ts: f64| w * ((ts - ERAS.anchor(ERAS.of(ts, HL), HL)) / HL).exp2();
        assert_eq!(
            incs,
            vec![
                (anchored_field("c:a", era), term(1.0, t) + term(3.0, t + HL)),
                (anchored_field("t:x", era), term(2.0, t)),
                (anchored_field("c:a", era - 1), term(1.0, t - ERA)),
            ]
        );
        // A later addition in one era weighs more in the sum, by 2 per half-life.
        assert_eq!(term(3.0, t + HL) / term(1.0, t), 6.0);
    }

    #[test]
    fn terms_stay_inside_the_float_range_for_every_era() {
        for ts in [-1e12, -1.0, 0.0, ERA - 1e-3, 1.8e9, 4e10, 1e12] {
            let (_, inc) = increments(&[add("c:a", 3.0, ts)], HL).remove(0);
            assert!((3.0..3.0 * 2f64.powi(64)).contains(&inc), "{ts}: {inc}");
        }
    }

    #[test]
    fn reads_equal_the_read_modify_write_across_an_era_boundary() {
        let boundary = ERAS.anchor(ERAS.of(1.8e9, HL) + 1, HL);
        let batches = vec![
            vec![
                add("c:a", 1.0, boundary - 2.0 * HL),
                add("t:x", 2.0, boundary - 1.0),
            ],
            vec![add("c:a", -0.5, boundary + 10.0), add("t:x", 1.0, boundary)],
            // Earlier than the last update, in the old era.
            vec![add("c:a", 4.0, boundary - 3.0 * HL)],
        ];
        let raw = stored(&batches);
        assert_eq!(raw.len(), 4, "two eras of two fields: {raw:?}");
        let want = reference(&batches);
        for t in [boundary + 11.0, boundary + 5.0 * HL, boundary + 40.0 * HL] {
            assert_same_at(t, &decode(&raw, HL), &want);
        }
    }

    #[test]
    fn legacy_values_are_read_and_fold_with_new_additions() {
        let t = 1_750_000_000.0;
        // Written by the old script: the value as of `f@`.
        let mut raw = HashMap::from([
            ("c:a".to_owned(), "4".to_owned()),
            ("c:a@".to_owned(), t.to_string()),
            ("0".to_owned(), "0.25".to_owned()),
            ("0@".to_owned(), (t - HL).to_string()),
        ]);
        let later = vec![add("c:a", 1.0, t + HL), add("0", 0.5, t)];
        raw.extend(stored(std::slice::from_ref(&later)));
        let mut want = HashMap::from([
            ("c:a".to_owned(), Decayed { value: 4.0, at: t }),
            (
                "0".to_owned(),
                Decayed {
                    value: 0.25,
                    at: t - HL,
                },
            ),
        ]);
        apply_decayed(&mut want, &later, HL);
        assert_same_at(t + 2.0 * HL, &decode(&raw, HL), &want);
        // Legacy alone reads exactly as before.
        let legacy = HashMap::from([
            ("t:x".to_owned(), "2.5".to_owned()),
            ("t:x@".to_owned(), "100".to_owned()),
        ]);
        assert_eq!(
            decode(&legacy, HL),
            HashMap::from([(
                "t:x".to_owned(),
                Decayed {
                    value: 2.5,
                    at: 100.0
                }
            )])
        );
    }

    #[test]
    fn ids_with_separators_stay_whole_and_junk_is_skipped() {
        let t = 1_750_000_000.0;
        let batches = vec![vec![
            add("c:a:b", 1.0, t),
            add("t:~5:x@", 2.0, t),
            add("c:@", 3.0, t),
        ]];
        let mut raw = stored(&batches);
        for (k, v) in [
            ("~x:c:a", "1"),
            ("~5", "1"),
            ("~5:c:nan", "nan"),
            ("~5:c:inf", "inf"),
            ("t:bad", "not a number"),
        ] {
            raw.insert(k.into(), v.into());
        }
        assert_same_at(t, &decode(&raw, HL), &reference(&batches));
    }

    #[test]
    fn sums_as_redis_prints_them_parse() {
        // Redis stores an `HINCRBYFLOAT` sum as `%.17Lf` with trailing zeros cut.
        let raw = HashMap::from([
            ("~5:c:a".to_owned(), "18446744073709551616.5".to_owned()),
            ("~5:c:b".to_owned(), "-0.00000000000000001".to_owned()),
        ]);
        let d = decode(&raw, HL);
        assert_eq!(
            (d["c:a"].value, d["c:a"].at),
            (18446744073709551616.5, 5.0 * ERA)
        );
        assert_eq!(d["c:b"].value, -1e-17);
    }

    proptest! {
        /// Any additions, in any batches, read back as the read-modify-write computes them.
        #[test]
        fn anchored_sums_equal_decayed_additions(
            batches in prop::collection::vec(
                prop::collection::vec(
                    (0usize..4, -3.0f64..3.0, 1.0e9f64..2.5e9),
                    1..6,
                ),
                1..5,
            ),
        ) {
            let fields = ["c:a", "t:x", "0", "15"];
            let batches: Vec<Vec<DecayedAdd>> = batches
                .into_iter()
                .map(|b| b.into_iter().map(|(f, w, ts)| add(fields[f], w, ts)).collect())
                .collect();
            let last = batches.iter().flatten().map(|a| a.ts).fold(0.0, f64::max);
            let got = decode(&stored(&batches), HL);
            let want = reference(&batches);
            prop_assert_eq!(got.len(), want.len());
            for (f, w) in &want {
                // Compared at the last addition: later, both decay by the same factor. The
                // tolerance is relative to the largest term, since terms may cancel, and values
                // under 10⁻¹⁰⁰ count as zero (a term read over 1,022 half-lives after its anchor
                // passes through subnormal floats, where precision thins out).
                let scale: f64 = batches
                    .iter()
                    .flatten()
                    .filter(|a| a.field == *f)
                    .map(|a| a.weight.abs() * ((a.ts - last) / HL).exp2())
                    .sum();
                let (g, w) = (got[f].value_at(last, HL), w.value_at(last, HL));
                prop_assert!((g - w).abs() <= 1e-12 * scale + 1e-100, "{}: {} against {}", f, g, w);
            }
        }
    }
}
