//! A user's decayed sums (affinities and taste) as one append-only string per user, the
//! **sums log** `P{u:<user>}:sums` ([`Keys::user_sums`](super::keys::Keys::user_sums)),
//! written with `--user-sums-format log`: an event batch adds to a user's sums with one `APPEND`
//! of binary entries, where the `fields` form ran one `HINCRBYFLOAT` per affinity field and a
//! 16-dimension `BITFIELD` for the taste (~5 commands per user and batch, Redis printing and
//! parsing a long double for each field and moving the taste's bits one by one: about half of a
//! relay POST's transaction, BENCHMARKS.md, *The user's sums in one append*).
//!
//! **Entries** hold the same anchored sums as the other forms (decayed values are linear:
//! [`super::anchored`]), so a reader adds them up by what they name and folds them in with
//! whatever the hashes and the taste's eras hold:
//!
//! | entry | bytes |
//! | --- | --- |
//! | an affinity field's sum in one era ([`super::anchored`]'s eras) | `a`, the field's length (`u16`), the field, the era (`i64`), the sum (`f64`) |
//! | the taste's sums in one era ([`super::taste_sums`]'s eras) | `t`, the era (`i64`), the dimensions `n` (`u16`), `n` sums (`f64`) |
//! | a compaction's mark (first, adds nothing) | `h`, a random `u64` |
//!
//! (integers and floats little-endian). An entry names what it adds to; many entries may name
//! the same field and era, and their sum is what the user's state holds.
//!
//! **Compaction.** The log grows by an append per batch; when an append makes it cross the next
//! of a series of lengths ([`crosses_threshold`]: 4 KiB, then each √2 times the last), the
//! replica that appended reads it after answering and sums it into one entry per field and era
//! ([`compact`]), behind a **mark**: an entry holding a random number, new at every compaction.
//! Only when the sums take at most half of the bytes read ([`worth_replacing`]) does it replace
//! those bytes with them, in one script ([`REPLACE_PREFIX`]) that first checks that the log
//! still begins as it read it ([`check_bytes`]: its first bytes, a mark or the first appends).
//! Nothing but an append or a compaction writes a log: appends add after the bytes read, so an
//! unchanged beginning means the bytes read are still the log's first bytes, entry for entry,
//! and replacing them with their sums changes no sum; appends made meanwhile are kept. A log
//! another replica compacted meanwhile begins with that compaction's mark, and is left as it
//! is. The script moves the sums and the appends since the read, not the bytes read (moving
//! bytes through Lua costs Redis ~1 ns each, several times over: a script comparing and copying
//! the whole log cost ~100 µs per compaction in the bench). Replacing only logs at least twice
//! their sums makes a log's rewriting cost at most about what was appended since its last
//! compaction; the series makes a heavy user's log (thousands of fields) read to be compacted
//! after growing by ~41%, not every few kilobytes. A compaction that fails or is not worth it
//! waits for the next threshold.
//!
//! **Formats side by side.** This version reads the hashes, the taste's eras and the log
//! together, whatever it writes, so `--user-sums-format` can move either way on a running
//! deployment; a version without this reader ignores the log (see feed-server/README.md,
//! *Forms written to Redis*).

use std::collections::HashMap;

use thiserror::Error;

/// How a replica writes users' decayed sums (`--user-sums-format`); every form is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UserSumsFormat {
    /// An `HINCRBYFLOAT` per affinity field and era, a `BITFIELD` per taste era: the form
    /// every version reads. The default until no replica older than the log's reader runs.
    #[default]
    Fields,
    /// One `APPEND` per user and batch to the user's sums log (see the module docs): readable
    /// only by versions that have this option.
    Log,
}

/// The tag of an affinity entry.
const AFFINITY: u8 = b'a';
/// The tag of a taste entry.
const TASTE: u8 = b't';
/// The tag of a compaction's mark.
const MARK: u8 = b'h';
/// Bytes of a mark.
pub const MARK_LEN: usize = 9;
/// Bytes of a log's beginning a compaction checks before replacing what it read: a mark (its
/// random number), or the first appends' bytes (a log compacted since begins with a mark
/// instead). The first [`MARK_LEN`] would do; a few more cost nothing.
const CHECKED: usize = 32;

/// The length from which a log is compacted when an append crosses it (then each √2 times the
/// last).
pub const FIRST_THRESHOLD: usize = 4096;

/// A sums log that does not parse.
#[derive(Debug, Error, PartialEq)]
#[error("user sums log: {what} at byte {at}")]
pub struct LogError {
    /// What was wrong.
    pub what: &'static str,
    /// Where the entry that does not parse begins.
    pub at: usize,
}

/// The sums a log holds, each field and era (and taste era) once, in the order first named;
/// affinity fields borrowed from the log's bytes.
#[derive(Debug, Default, PartialEq)]
pub struct UserSums<'a> {
    /// `(field, era, sum)`: an affinity field's anchored sum in one era.
    pub affinity: Vec<(&'a str, i64, f64)>,
    /// `(era, sums)`: the taste's anchored sums in one era, by dimension.
    pub taste: Vec<(i64, Vec<f64>)>,
}

impl UserSums<'_> {
    /// Whether the log holds nothing.
    pub fn is_empty(&self) -> bool {
        self.affinity.is_empty() && self.taste.is_empty()
    }
}

/// The entries of one batch for one user: `affinity` as `(field, era, term sum)` and `taste`
/// as `(era, sums by dimension)` (as [`super::anchored::terms`] and
/// [`super::taste_sums::terms`] give them). Fields longer than a `u16` can count are left out
/// (ids are at most 128 bytes); so are dimensions past a `u16`, and affinity sums that are not
/// finite numbers (they would make the field's sum unusable for good; the hash form's
/// `HINCRBYFLOAT` refuses them).
pub fn append_bytes(affinity: &[(&str, i64, f64)], taste: &[(i64, Vec<f64>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        affinity.iter().map(|(f, ..)| 19 + f.len()).sum::<usize>()
            + taste.iter().map(|(_, d)| 11 + 8 * d.len()).sum::<usize>(),
    );
    for &(field, era, sum) in affinity.iter().filter(|(.., sum)| sum.is_finite()) {
        let Ok(len) = u16::try_from(field.len()) else {
            continue;
        };
        out.push(AFFINITY);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(&era.to_le_bytes());
        out.extend_from_slice(&sum.to_le_bytes());
    }
    for (era, sums) in taste {
        let sums = &sums[..sums.len().min(usize::from(u16::MAX))];
        out.push(TASTE);
        out.extend_from_slice(&era.to_le_bytes());
        out.extend_from_slice(&(sums.len() as u16).to_le_bytes());
        for s in sums {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    out
}

/// Reads a log's bytes, one entry after another.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Where the entry being read begins (for errors).
    entry: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(LogError {
                what: "an entry cut short",
                at: self.entry,
            });
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LogError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<usize, LogError> {
        Ok(usize::from(u16::from_le_bytes(self.array()?)))
    }

    fn i64(&mut self) -> Result<i64, LogError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, LogError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
}

/// The sums of a log (see the module docs): entries naming the same field and era added up,
/// the taste's per dimension. A log that does not parse is an error, naming the first entry
/// that does not (a log only this module writes is never cut or mixed).
pub fn parse(bytes: &[u8]) -> Result<UserSums<'_>, LogError> {
    let mut out = UserSums::default();
    let mut fields: HashMap<(&str, i64), usize, foldhash::fast::RandomState> = HashMap::default();
    let mut r = Reader {
        bytes,
        at: 0,
        entry: 0,
    };
    while r.at < bytes.len() {
        r.entry = r.at;
        match r.take(1)?[0] {
            AFFINITY => {
                let len = r.u16()?;
                let field = std::str::from_utf8(r.take(len)?).map_err(|_| LogError {
                    what: "a field that is not UTF-8",
                    at: r.entry,
                })?;
                let era = r.i64()?;
                let sum = r.f64()?;
                match fields.get(&(field, era)) {
                    Some(&i) => out.affinity[i].2 += sum,
                    None => {
                        fields.insert((field, era), out.affinity.len());
                        out.affinity.push((field, era, sum));
                    }
                }
            }
            TASTE => {
                let era = r.i64()?;
                let n = r.u16()?;
                let at = match out.taste.iter().position(|(e, _)| *e == era) {
                    Some(at) => at,
                    None => {
                        out.taste.push((era, Vec::with_capacity(n)));
                        out.taste.len() - 1
                    }
                };
                let sums = &mut out.taste[at].1;
                if sums.len() < n {
                    sums.resize(n, 0.0);
                }
                for sum in sums.iter_mut().take(n) {
                    *sum += r.f64()?;
                }
            }
            MARK => {
                r.take(MARK_LEN - 1)?;
            }
            _ => {
                return Err(LogError {
                    what: "an entry of an unknown kind",
                    at: r.entry,
                });
            }
        }
    }
    Ok(out)
}

/// The log `bytes` summed: the mark `mark` (a random number, new for every compaction), then
/// one entry per field and era and one per taste era, holding the same sums ([`parse`] of the
/// result equals [`parse`] of `bytes`, up to the rounding of the sums already added).
pub fn compact(bytes: &[u8], mark: u64) -> Result<Vec<u8>, LogError> {
    let sums = parse(bytes)?;
    let entries = append_bytes(&sums.affinity, &sums.taste);
    let mut out = Vec::with_capacity(MARK_LEN + entries.len());
    out.push(MARK);
    out.extend_from_slice(&mark.to_le_bytes());
    out.extend_from_slice(&entries);
    Ok(out)
}

/// Whether a compaction of `read` bytes into `compacted` is worth replacing them: the sums take
/// at most half (see the module docs).
pub fn worth_replacing(read: usize, compacted: usize) -> bool {
    compacted.saturating_mul(2) <= read
}

/// The beginning of `read` (a log as a compaction read it) that [`REPLACE_PREFIX`] checks.
pub fn check_bytes(read: &[u8]) -> &[u8] {
    &read[..read.len().min(CHECKED)]
}

/// The thresholds' step: the first doubled every two of them.
fn level(len: usize) -> Option<u32> {
    (len >= FIRST_THRESHOLD).then(|| (2.0 * (len as f64 / FIRST_THRESHOLD as f64).log2()) as u32)
}

/// Whether an append of `appended` bytes that left the log at `len` bytes crossed a
/// compaction threshold: [`FIRST_THRESHOLD`], then each √2 times the last.
pub fn crosses_threshold(len: usize, appended: usize) -> bool {
    level(len) > level(len.saturating_sub(appended))
}

/// Replaces the first `ARGV[1]` bytes of the log `KEYS[1]` (the bytes a compaction read) with
/// `ARGV[3]` when the log is at least that long and begins with `ARGV[2]` ([`check_bytes`] of
/// them); returns 1 when replaced, 0 when not (see the module docs). The key keeps any expiry
/// it has.
pub const REPLACE_PREFIX: &str = r#"
local n = tonumber(ARGV[1])
local len = redis.call('STRLEN', KEYS[1])
if n == nil or n < 1 or len < n
  or redis.call('GETRANGE', KEYS[1], 0, #ARGV[2] - 1) ~= ARGV[2] then
  return 0
end
local rest = ''
if len > n then
  rest = redis.call('GETRANGE', KEYS[1], n, -1)
end
redis.call('SET', KEYS[1], ARGV[3] .. rest, 'KEEPTTL')
return 1
"#;

/// The script call replacing `read` (the bytes a compaction read from the start of `key`)
/// with `compacted`.
pub fn replace_prefix(key: &str, read: &[u8], compacted: &[u8]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(REPLACE_PREFIX)
        .arg(1)
        .arg(key)
        .arg(read.len())
        .arg(check_bytes(read))
        .arg(compacted);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Affinity sums by (field, era), taste sums by era.
    type Sums = (HashMap<(String, i64), f64>, HashMap<i64, Vec<f64>>);

    fn sums_map(s: &UserSums<'_>) -> Sums {
        (
            s.affinity
                .iter()
                .map(|(f, e, v)| (((*f).to_owned(), *e), *v))
                .collect(),
            s.taste.iter().cloned().collect(),
        )
    }

    #[test]
    fn entries_naming_the_same_field_and_era_add_up() {
        let mut log = append_bytes(&[("c:ann", 7, 1.5), ("t:cats", 7, 2.0)], &[(3, vec![1.0])]);
        log.extend(append_bytes(
            &[("c:ann", 7, 0.25), ("c:ann", 8, 4.0)],
            &[(3, vec![0.5, 2.0]), (4, vec![9.0])],
        ));
        let sums = parse(&log).expect("parses");
        assert_eq!(
            sums.affinity,
            vec![("c:ann", 7, 1.75), ("t:cats", 7, 2.0), ("c:ann", 8, 4.0)]
        );
        assert_eq!(sums.taste, vec![(3, vec![1.5, 2.0]), (4, vec![9.0])]);
        assert!(parse(&[]).expect("empty").is_empty());
        let not_finite = append_bytes(&[("c:a", 1, f64::INFINITY), ("c:b", 1, f64::NAN)], &[]);
        assert!(not_finite.is_empty(), "{not_finite:?}");
    }

    #[test]
    fn a_log_that_does_not_parse_names_the_entry() {
        let good = append_bytes(&[("c:ann", 1, 1.0)], &[]);
        let mut cut = good.clone();
        cut.extend_from_slice(&good[..good.len() - 1]);
        assert_eq!(
            parse(&cut),
            Err(LogError {
                what: "an entry cut short",
                at: good.len()
            })
        );
        let mut unknown = good.clone();
        unknown.push(b'z');
        assert_eq!(
            parse(&unknown).map_err(|e| (e.what, e.at)),
            Err(("an entry of an unknown kind", good.len()))
        );
        let mut latin = vec![AFFINITY, 1, 0, 0xff];
        latin.extend_from_slice(&[0; 16]);
        assert_eq!(
            parse(&latin).map_err(|e| e.what),
            Err("a field that is not UTF-8")
        );
        // A length past the end is cut short, not a panic.
        assert!(parse(&[AFFINITY, 0xff, 0xff, b'x']).is_err());
        assert!(parse(&[TASTE, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]).is_err());
    }

    #[test]
    fn a_compaction_begins_with_its_own_mark() {
        let log = append_bytes(&[("c:ann", 1, 1.0), ("c:ann", 1, 2.0)], &[(1, vec![1.0])]);
        let (a, b) = (compact(&log, 1).expect("a"), compact(&log, 2).expect("b"));
        assert_eq!(a[0], MARK);
        assert_ne!(
            check_bytes(&a),
            check_bytes(&b),
            "two compactions begin alike"
        );
        assert_ne!(check_bytes(&a), check_bytes(&log));
        assert_eq!(parse(&a), parse(&b));
        assert_eq!(parse(&a).expect("parses").affinity, vec![("c:ann", 1, 3.0)]);
        // A mark in the middle (a compaction's output followed by appends) adds nothing.
        let mut more = a.clone();
        more.extend_from_slice(&b);
        assert_eq!(
            parse(&more).expect("parses").affinity,
            vec![("c:ann", 1, 6.0)]
        );
        assert!(parse(&a[..MARK_LEN - 1]).is_err(), "a cut mark");
        assert!(worth_replacing(200, 100));
        assert!(!worth_replacing(200, 101));
    }

    #[test]
    fn thresholds_start_at_4_kib_and_grow_by_root_two() {
        assert!(!crosses_threshold(FIRST_THRESHOLD - 1, 100));
        assert!(crosses_threshold(FIRST_THRESHOLD, 1));
        assert!(!crosses_threshold(FIRST_THRESHOLD + 100, 100));
        // The next ones: ~5,793 and 8,192.
        assert!(!crosses_threshold(5_700, 1_000));
        assert!(crosses_threshold(5_800, 100));
        assert!(crosses_threshold(8_192, 1));
        assert!(!crosses_threshold(8_191, 1));
        // A log of 1 MiB (a threshold) is compacted again after ~41% more, not every few
        // kilobytes.
        let big = 1 << 20;
        assert!(crosses_threshold(big, 1));
        let next = (big + 1..)
            .find(|&l| crosses_threshold(l, 1))
            .expect("a threshold");
        assert!(next > big + big / 3, "{next}");
    }

    proptest! {
        /// Compacting any log, at any split into what was read and what was appended after,
        /// keeps every sum (to rounding) and parses to one entry per field and era.
        #[test]
        fn compaction_keeps_every_sum(
            batches in prop::collection::vec((
                prop::collection::vec((0usize..4, -2i64..2, -1e3f64..1e3), 0..5),
                prop::collection::vec((-2i64..2, prop::collection::vec(-1e3f64..1e3, 0..5)), 0..3),
            ), 0..12),
            split in 0usize..12,
        ) {
            let names = ["c:a", "c:b", "t:x", "t:é"];
            let logs: Vec<Vec<u8>> = batches.iter().map(|(aff, taste)| {
                let aff: Vec<(&str, i64, f64)> =
                    aff.iter().map(|&(f, e, v)| (names[f], e, v)).collect();
                append_bytes(&aff, taste)
            }).collect();
            let split = split.min(logs.len());
            let read: Vec<u8> = logs[..split].concat();
            let after: Vec<u8> = logs[split..].concat();
            let mut compacted = compact(&read, 7).expect("compacts");
            prop_assert!(compacted.len() <= read.len() + MARK_LEN);
            compacted.extend_from_slice(&after);
            let whole = [read.as_slice(), after.as_slice()].concat();
            let (want_aff, want_taste) = sums_map(&parse(&whole).expect("parses"));
            let (got_aff, got_taste) = sums_map(&parse(&compacted).expect("parses"));
            prop_assert_eq!(want_aff.len(), got_aff.len());
            for (k, v) in &want_aff {
                prop_assert!((got_aff[k] - v).abs() <= 1e-9 * (1.0 + v.abs()), "{:?}", k);
            }
            prop_assert_eq!(want_taste.len(), got_taste.len());
            for (era, want) in &want_taste {
                let got = &got_taste[era];
                prop_assert_eq!(want.len(), got.len());
                for (w, g) in want.iter().zip(got) {
                    prop_assert!((w - g).abs() <= 1e-9 * (1.0 + w.abs()));
                }
            }
            let once = compact(&whole, 7).expect("compacts");
            prop_assert_eq!(compact(&once, 7).expect("compacts"), once);
        }
    }
}
