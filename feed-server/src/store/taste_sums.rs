//! A user's taste vector as Redis holds it: anchored sums in fixed point, one string per era
//! with a signed 64-bit integer per dimension, so that a batch adds to every dimension with one
//! `BITFIELD … INCRBY` and reads nothing.
//!
//! The taste is a decayed sum per embedding dimension, like an affinity ([`super::anchored`]
//! explains anchored sums): an event adds `w · 2^((ts − A)/h)` to the sum of its era, whose
//! anchor is `A`. Held as `HINCRBYFLOAT` fields, a taste cost one command per dimension and
//! batch (16 in the bench world: 72 of the ~125 commands of an event POST, with Redis printing
//! and parsing a long double each time). Here a dimension's sum is the integer
//! `round(term · 2^`[`FRACTION_BITS`]`)` at byte offset `8·i` of the key of its era
//! ([`Keys::taste_era`](super::keys::Keys::taste_era)), as `BITFIELD INCRBY i64 #i` writes it
//! (big-endian two's complement): one command per user and batch, whatever the dimension.
//!
//! **Eras of [`ERA_HALF_LIVES`] half-lives** (16: 112 days at the 7-day half-life). A term is at
//! most `3 · 2^16 · 2^30 ≈ 2^47.6`, so a dimension's sum holds at least ~44,000 of the largest
//! terms (a share at the very end of the era, its whole weight on one dimension) before it
//! saturates (`OVERFLOW SAT`: it stops growing, it never wraps); an increment is rounded by at
//! most `2^−31` of the weight it carries. A read takes the eras of `now − 1`, `now` and `now + 1`
//! (the last for events stamped up to five minutes ahead near an era's end): what older eras
//! hold is at least 16 half-lives old, decayed below `2^−16` of its weight, and is not read.
//! Nothing deletes an era's key (a replay ranks as of a past `now` and reads that time's eras);
//! a user's key costs 8 bytes per dimension and era.
//!
//! **Written before this format** (taste fields in the `taste` hash, [`super::anchored`]):
//! still read and folded in — decayed values are linear — so no migration step is needed.

use std::sync::LazyLock;

use super::anchored::Eras;
use crate::affinity::Taste;
use crate::learning::{Decayed, TasteAdd};
use crate::model::MAX_EMBEDDING_DIM;

/// Length of an era in half-lives.
pub const ERA_HALF_LIVES: f64 = 16.0;

/// Bits after the binary point of a stored sum.
pub const FRACTION_BITS: i32 = 30;

/// The eras of the taste's sums.
const ERAS: Eras = Eras {
    half_lives: ERA_HALF_LIVES,
};

/// The eras a read at `now` takes, oldest first (see the module docs).
pub fn eras_read_at(now: f64, half_life: f64) -> [i64; 3] {
    let era = ERAS.of(now, half_life);
    [era - 1, era, era + 1]
}

/// The terms `adds` add per era, in ascending order, and per dimension (`None`: not written).
/// Dimensions from [`MAX_EMBEDDING_DIM`] on are skipped, as a read skips them.
fn era_sums(adds: &[TasteAdd], half_life: f64) -> Vec<(i64, Vec<Option<f64>>)> {
    // A batch's additions fall in one era but for the rare one stamped across an era's start.
    let mut eras: Vec<(i64, Vec<Option<f64>>)> = Vec::with_capacity(1);
    for a in adds.iter().filter(|a| a.dim < MAX_EMBEDDING_DIM) {
        let (era, term) = ERAS.term(a.weight, a.ts, half_life);
        if !eras.iter().any(|(e, _)| *e == era) {
            eras.push((era, Vec::new()));
        }
        let Some((_, sums)) = eras.iter_mut().find(|(e, _)| *e == era) else {
            continue;
        };
        if sums.len() <= a.dim {
            sums.resize(a.dim + 1, None);
        }
        if let Some(sum) = sums.get_mut(a.dim) {
            *sum.get_or_insert(0.0) += term;
        }
    }
    eras.sort_by_key(|(era, _)| *era);
    eras
}

/// What `adds` add to the stored sums: per era, in ascending order, one `(dimension,
/// increment)` per dimension written, ascending. Dimensions from [`MAX_EMBEDDING_DIM`] on are
/// skipped, as a read skips them; increments that round to zero are kept (they size the vector
/// as the dimension's field did).
pub fn increments(adds: &[TasteAdd], half_life: f64) -> Vec<(i64, Vec<(usize, i64)>)> {
    let scale = f64::from(FRACTION_BITS).exp2();
    era_sums(adds, half_life)
        .into_iter()
        .map(|(era, sums)| {
            // `as` saturates: a non-finite or huge term is clamped like the stored sum.
            let dims = sums
                .into_iter()
                .enumerate()
                .filter_map(|(d, sum)| Some((d, (sum? * scale).round() as i64)))
                .collect();
            (era, dims)
        })
        .collect()
}

/// What `adds` add to the sums as a user's sums log holds them ([`super::user_sums`]): per
/// era, in ascending order, the terms of every dimension up to the last one written (0 for
/// those not written, and for a term that is not a finite number, which would make the sum
/// unusable forever).
pub fn terms(adds: &[TasteAdd], half_life: f64) -> Vec<(i64, Vec<f64>)> {
    era_sums(adds, half_life)
        .into_iter()
        .map(|(era, sums)| {
            let sums = sums
                .into_iter()
                .map(|s| s.filter(|s| s.is_finite()).unwrap_or(0.0))
                .collect();
            (era, sums)
        })
        .collect()
}

/// `#0`, `#1`, …: the `BITFIELD` offsets of the dimensions (an `i64` each).
static OFFSETS: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..MAX_EMBEDDING_DIM).map(|d| format!("#{d}")).collect());

/// The `BITFIELD` on `key` adding `dims` (from [`increments`]), saturating; its buffers sized
/// once (growing them was a third of the cost of building it).
pub fn bitfield(key: &str, dims: &[(usize, i64)]) -> redis::Cmd {
    // Per dimension `INCRBY`, `i64`, `#<dim>` (≤ 5 bytes) and the increment (≤ 20).
    let mut cmd = redis::Cmd::with_capacity(4 + 4 * dims.len(), 20 + key.len() + 34 * dims.len());
    cmd.arg("BITFIELD").arg(key).arg("OVERFLOW").arg("SAT");
    for (dim, inc) in dims {
        cmd.arg("INCRBY").arg("i64");
        match OFFSETS.get(*dim) {
            Some(offset) => cmd.arg(offset.as_str()),
            None => cmd.arg(format!("#{dim}")),
        };
        cmd.arg(*inc);
    }
    cmd
}

/// The taste of the stored eras (`(era, the key's bytes)`, any order; a missing key is an era
/// without writes), of `logged` (`(era, sums by dimension)` from the user's sums log,
/// [`super::user_sums`], any era: the sums of every era are folded in) and `legacy`, the
/// dimensions read from the format before these. Bytes past the last whole 8 are ignored;
/// dimensions past [`MAX_EMBEDDING_DIM`] too, and logged sums that are not finite.
pub fn decode(
    eras: &[(i64, Vec<u8>)],
    logged: &[(i64, Vec<f64>)],
    legacy: &Taste,
    half_life: f64,
) -> Taste {
    let dims = eras
        .iter()
        .map(|(_, b)| b.len() / 8)
        .chain(logged.iter().map(|(_, sums)| sums.len()))
        .chain([legacy.0.len()])
        .max()
        .unwrap_or(0)
        .min(MAX_EMBEDDING_DIM);
    let scale = f64::from(-FRACTION_BITS).exp2();
    let mut eras: Vec<&(i64, Vec<u8>)> = eras.iter().collect();
    eras.sort_by_key(|(era, _)| *era);
    let out = (0..dims)
        .map(|dim| {
            let start = legacy.0.get(dim).copied().unwrap_or_default();
            let stored = eras.iter().fold(start, |d, (era, bytes)| {
                let Some(word) = bytes.get(8 * dim..8 * dim + 8) else {
                    return d;
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(word);
                let sum = i64::from_be_bytes(be);
                if sum == 0 {
                    return d;
                }
                d.add(sum as f64 * scale, ERAS.anchor(*era, half_life), half_life)
            });
            logged
                .iter()
                .fold(stored, |d, (era, sums)| match sums.get(dim) {
                    Some(&sum) if sum != 0.0 && sum.is_finite() => {
                        d.add(sum, ERAS.anchor(*era, half_life), half_life)
                    }
                    _ => d,
                })
        })
        .collect::<Vec<Decayed>>();
    Taste(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::learning::{AFFINITY_HALF_LIFE_SECS as HL, apply_taste};
    use proptest::prelude::*;

    const ERA: f64 = ERA_HALF_LIVES * HL;

    fn add(dim: usize, weight: f64, ts: f64) -> TasteAdd {
        TasteAdd { dim, weight, ts }
    }

    /// What Redis holds after each batch's `BITFIELD … OVERFLOW SAT INCRBY`s.
    fn stored(batches: &[Vec<TasteAdd>]) -> Vec<(i64, Vec<u8>)> {
        let mut words: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for b in batches {
            for (era, dims) in increments(b, HL) {
                let w = words.entry(era).or_default();
                for (d, inc) in dims {
                    if w.len() <= d {
                        w.resize(d + 1, 0);
                    }
                    w[d] = w[d].saturating_add(inc);
                }
            }
        }
        words
            .into_iter()
            .map(|(era, w)| (era, w.iter().flat_map(|x| x.to_be_bytes()).collect()))
            .collect()
    }

    /// The read-modify-write reference: every addition folded with [`Decayed::add`].
    fn reference(batches: &[Vec<TasteAdd>]) -> Taste {
        let mut m = std::collections::HashMap::new();
        for b in batches {
            apply_taste(&mut m, b, HL);
        }
        crate::store::encoding::taste(crate::store::encoding::fields(&m))
    }

    fn assert_close_at(t: f64, got: &Taste, want: &Taste, tolerance: f64) {
        assert_eq!(got.0.len(), want.0.len(), "dimensions");
        for (i, (g, w)) in got.0.iter().zip(&want.0).enumerate() {
            let (g, w) = (g.value_at(t, HL), w.value_at(t, HL));
            assert!(
                (g - w).abs() <= tolerance * w.abs().max(1.0),
                "dimension {i}: fixed point {g}, reference {w}"
            );
        }
    }

    #[test]
    fn one_increment_per_dimension_and_era_in_fixed_point() {
        let t = 20_000.5 * ERA;
        let incs = increments(
            &[
                add(0, 1.0, t),
                add(3, -0.5, t),
                add(0, 2.0, t + HL),
                add(1, 1.0, t - ERA),
                add(2000, 1.0, t),
            ],
            HL,
        );
        let one = f64::from(FRACTION_BITS).exp2();
        // Half an era past the anchor: a term weighs 2^8 times its weight.
        let at = |w: f64, half_lives: f64| (w * (8.0 + half_lives).exp2() * one).round() as i64;
        assert_eq!(
            incs,
            vec![
                (19_999, vec![(1, at(1.0, 0.0))]),
                (
                    20_000,
                    vec![(0, at(1.0, 0.0) + at(2.0, 1.0)), (3, at(-0.5, 0.0))]
                ),
            ]
        );
        let args = crate::store::command_text(&bitfield("k", &incs[1].1));
        let (a, b) = (incs[1].1[0].1.to_string(), incs[1].1[1].1.to_string());
        assert_eq!(
            args,
            [
                "BITFIELD", "k", "OVERFLOW", "SAT", "INCRBY", "i64", "#0", &a, "INCRBY", "i64",
                "#3", &b
            ]
        );
    }

    #[test]
    fn the_largest_term_leaves_room_for_many_before_saturating() {
        // A share (weight 3) on one dimension just before its era ends, five minutes ahead.
        let ts = 20_001.0 * ERA - 1e-3 + 300.0;
        let (_, dims) = increments(&[add(0, 3.0, ts - 300.0)], HL).remove(0);
        assert!(i64::MAX / dims[0].1 > 40_000, "{}", dims[0].1);
        // Non-finite weights saturate instead of wrapping or panicking.
        let (_, dims) = increments(&[add(0, f64::INFINITY, ts)], HL).remove(0);
        assert_eq!(dims[0].1, i64::MAX);
    }

    #[test]
    fn reads_skip_what_no_dimension_can_hold() {
        let legacy = Taste(vec![Decayed {
            value: 1.0,
            at: 5.0,
        }]);
        // Three bytes past the only whole word, and an era without the second dimension.
        let mut bytes = 7i64.to_be_bytes().to_vec();
        bytes.extend([1, 2, 3]);
        let t = decode(&[(0, bytes)], &[], &legacy, HL);
        assert_eq!(t.0.len(), 1);
        assert_eq!(decode(&[], &[], &Taste::default(), HL), Taste::default());
        assert_eq!(decode(&[], &[], &legacy, HL), legacy);
    }

    #[test]
    fn fixed_point_sums_read_as_the_reference_fold() {
        let t0 = 1_700_000_000.0;
        let day = 86_400.0;
        let batches = [
            vec![add(0, 1.0, t0), add(1, 0.5, t0), add(15, -0.25, t0)],
            vec![add(0, 2.0, t0 + day), add(1, 1.0, t0 + day)],
            // Earlier than the last update, and across the next era's start.
            vec![add(1, -0.5, t0 - 0.5 * day)],
            vec![add(2, 3.0, (ERAS.of(t0, HL) + 1) as f64 * ERA + day)],
        ];
        // Read after the third batch, in its era, and after the last, in the next era.
        let next_era = (ERAS.of(t0, HL) + 1) as f64 * ERA + 2.0 * day;
        for (written, read_at) in [(3, t0 + 2.0 * day), (4, next_era)] {
            let batches = &batches[..written];
            let eras = eras_read_at(read_at, HL);
            let held: Vec<(i64, Vec<u8>)> = stored(batches)
                .into_iter()
                .filter(|(e, _)| eras.contains(e))
                .collect();
            let got = decode(&held, &[], &Taste::default(), HL);
            assert_close_at(read_at, &got, &reference(batches), 1e-8);
        }
    }

    #[test]
    fn the_legacy_hash_is_folded_in() {
        let t0 = 1_700_000_000.0;
        let old = vec![add(0, 4.0, t0), add(2, 1.0, t0)];
        let new = vec![add(0, 1.0, t0 + 3600.0), add(1, 2.0, t0 - 3600.0)];
        let legacy = reference(std::slice::from_ref(&old));
        let got = decode(&stored(std::slice::from_ref(&new)), &[], &legacy, HL);
        assert_close_at(t0 + 86_400.0, &got, &reference(&[old, new]), 1e-8);
    }

    #[test]
    fn sums_logged_in_any_era_fold_in_with_the_stored_ones() {
        let t0 = 1_700_000_000.0;
        let fields = vec![add(0, 4.0, t0), add(2, 1.0, t0)];
        // A batch across an era's start, one of them a term that is not a number.
        let next = (ERAS.of(t0, HL) + 1) as f64 * ERA;
        let logged = vec![
            add(0, 1.0, t0 + 3600.0),
            add(3, 2.0, next + 60.0),
            add(1, f64::INFINITY, t0),
        ];
        let terms = terms(&logged, HL);
        assert_eq!(terms.len(), 2, "{terms:?}");
        assert_eq!(
            terms[0].1.len(),
            2,
            "dimension 1 is written (as 0), sizing the vector"
        );
        assert_eq!(terms[0].1[1], 0.0);
        let got = decode(
            &stored(std::slice::from_ref(&fields)),
            &terms,
            &Taste::default(),
            HL,
        );
        let finite: Vec<TasteAdd> = logged
            .into_iter()
            .filter(|a| a.weight.is_finite())
            .collect();
        assert_close_at(next + 86_400.0, &got, &reference(&[fields, finite]), 1e-8);
        // Not finite once summed: skipped on read.
        let broken = decode(&[], &[(0, vec![1.0, f64::NAN])], &Taste::default(), HL);
        assert_eq!(broken.0[1], Decayed::default());
    }

    proptest! {
        #[test]
        fn any_history_reads_as_the_reference_within_the_rounding(
            batches in prop::collection::vec(
                prop::collection::vec((0usize..20, -3.0f64..3.0, 0.0f64..3.0 * ERA), 1..12), 1..8),
            later in 0.0f64..ERA,
        ) {
            let t0 = 1_600_000_000.0;
            let batches: Vec<Vec<TasteAdd>> = batches
                .into_iter()
                .map(|b| b.into_iter().map(|(d, w, dt)| add(d, w, t0 + dt)).collect())
                .collect();
            let last = batches.iter().flatten().map(|a| a.ts).fold(t0, f64::max);
            let now = last + later;
            let eras = eras_read_at(now, HL);
            let held: Vec<(i64, Vec<u8>)> = stored(&batches)
                .into_iter()
                .filter(|(e, _)| eras.contains(e))
                .collect();
            let got = decode(&held, &[], &Taste::default(), HL);
            let want = reference(&batches);
            // A dimension written only in an era not read is missing: it reads as zero.
            prop_assert!(got.0.len() <= want.0.len());
            // Additions more than one era before `now` are not read: they are below 2^-16 of
            // their weight (3) by now. Each increment rounds by at most 2^-31 of its weight.
            let adds = batches.iter().flatten().count() as f64;
            let tolerance = adds * 3.0 * (2f64.powi(-16) + 2f64.powi(-31));
            for (i, w) in want.0.iter().enumerate() {
                let g = got.0.get(i).copied().unwrap_or_default();
                let (g, w) = (g.value_at(now, HL), w.value_at(now, HL));
                prop_assert!((g - w).abs() <= tolerance, "dimension {}: {} against {}", i, g, w);
            }
        }
    }
}
