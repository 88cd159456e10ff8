//! The shared aggregates as bytes: the versioned encoding a checkpoint stores
//! (`feed-server/docs/shared-aggregates-in-process.md`), read back equal.
//!
//! **Deterministic.** Every map is written in sorted order (counters by video id, trending
//! lists by scope and day, members in their sorted-set order), so two replicas holding the same
//! state write the same bytes: two checkpoint writers of the same stream prefix cannot disagree.
//!
//! **Layout** (little-endian; a string is its byte length as `u32`, then UTF-8):
//! `FRAG`, the format version (`u8`, [`FORMAT`]), the last entry applied (`u8` 0 or 1, then
//! its milliseconds and sequence as `u64`s), the newest trending day (`u8` 0 or 1, then `i64`),
//! the counters (`u32` count; each: id, the 8 [`VideoStats`] values as `f64`s in
//! [`VideoStats::FIELDS`] order), the duration buckets (`u32` count, each: impressions, plays,
//! completes), the trending lists (`u32` count; each: scope — `u8` 0 all, 1 language, 2 region,
//! then the language or region — day as `i64`, then the list), the exposures, the last
//! activity; a list is a `u32` count of (id, score as `f64`). Nothing may follow.

use thiserror::Error;

use super::{EntryId, Id, SharedAggregates, VideoCounters};
use crate::learning::scores::ScoreIndex;
use crate::learning::{BucketStats, DURATION_BUCKETS, TrendingScope, VideoStats};

/// The first bytes of every encoding.
const MAGIC: &[u8; 4] = b"FRAG";

/// The format this version writes and reads.
pub const FORMAT: u8 = 1;

/// Why bytes are not an encoding this version reads.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// They do not start with `FRAG`.
    #[error("not shared aggregates (no FRAG header)")]
    NotAggregates,
    /// A format this version does not know (written by a newer version).
    #[error("format {0} of the shared aggregates is unknown to this version (it reads {FORMAT})")]
    UnknownFormat(u8),
    /// They end inside a value.
    #[error("the shared aggregates end early, at byte {0}")]
    Truncated(usize),
    /// A string is not UTF-8, a flag not 0 or 1, a scope tag unknown, a count of duration
    /// buckets not this version's.
    #[error("malformed shared aggregates at byte {0}")]
    Malformed(usize),
    /// Bytes follow the last value.
    #[error("{0} bytes follow the shared aggregates")]
    Trailing(usize),
}

impl SharedAggregates {
    /// The state as bytes (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_chunks(DEFAULT_CHUNK).concat()
    }

    /// The bytes of [`SharedAggregates::encode`] cut in chunks of `chunk_bytes` (the last one
    /// shorter) as they are written: a checkpoint stores them so, and a large state is then
    /// never one allocation that grows (copied, doubling) while it is written.
    pub fn encode_chunks(&self, chunk_bytes: usize) -> Vec<Vec<u8>> {
        let mut w = Writer::new(chunk_bytes);
        w.bytes(MAGIC);
        w.u8(FORMAT);
        match self.last {
            Some(id) => {
                w.u8(1);
                w.u64(id.ms);
                w.u64(id.seq);
            }
            None => w.u8(0),
        }
        match self.newest_day {
            Some(day) => {
                w.u8(1);
                w.i64(day);
            }
            None => w.u8(0),
        }
        let mut stats: Vec<(&Id, &VideoStats)> = self.stats.iter().collect();
        stats.sort_unstable_by_key(|(id, _)| *id);
        w.len(stats.len());
        for (id, s) in stats {
            w.str(id);
            for v in s.values() {
                w.f64(v);
            }
        }
        w.len(self.durations.len());
        for b in &self.durations {
            for v in [b.impressions, b.plays, b.completes] {
                w.f64(v);
            }
        }
        let mut trending: Vec<_> = self.trending.iter().collect();
        trending.sort_unstable_by(|a, b| a.0.cmp(b.0));
        w.len(trending.len());
        for ((scope, day), list) in trending {
            match scope {
                TrendingScope::All => w.u8(0),
                TrendingScope::Language(l) => {
                    w.u8(1);
                    w.str(l);
                }
                TrendingScope::Region(r) => {
                    w.u8(2);
                    w.str(r);
                }
            }
            w.i64(*day);
            w.list(list);
        }
        w.list(&self.exposures);
        w.list(&self.active);
        w.finish()
    }

    /// Reads what [`SharedAggregates::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len()).ok() != Some(MAGIC.as_slice()) {
            return Err(DecodeError::NotAggregates);
        }
        match r.u8()? {
            FORMAT => {}
            other => return Err(DecodeError::UnknownFormat(other)),
        }
        let mut a = SharedAggregates {
            last: match r.flag()? {
                true => Some(EntryId {
                    ms: r.u64()?,
                    seq: r.u64()?,
                }),
                false => None,
            },
            newest_day: match r.flag()? {
                true => Some(r.i64()?),
                false => None,
            },
            ..SharedAggregates::default()
        };
        let count = r.len()?;
        a.stats = VideoCounters::with_capacity(r.at_most(count, STATS_ENTRY_BYTES));
        for _ in 0..count {
            let at = r.at;
            let id = r.id()?;
            let mut values = [0.0; 8];
            for v in &mut values {
                *v = r.f64()?;
            }
            // Written once each, by id: a second one is not this encoding's.
            if !a.stats.insert_new(id, VideoStats::from_values(values)) {
                return Err(DecodeError::Malformed(at));
            }
        }
        if r.len()? != DURATION_BUCKETS {
            return Err(DecodeError::Malformed(r.at));
        }
        for b in &mut a.durations {
            *b = BucketStats {
                impressions: r.f64()?,
                plays: r.f64()?,
                completes: r.f64()?,
            };
        }
        for _ in 0..r.len()? {
            let at = r.at;
            let scope = match r.u8()? {
                0 => TrendingScope::All,
                1 => TrendingScope::Language(r.string()?),
                2 => TrendingScope::Region(r.string()?),
                _ => return Err(DecodeError::Malformed(r.at - 1)),
            };
            let day = r.i64()?;
            if a.trending.insert((scope, day), r.list()?).is_some() {
                return Err(DecodeError::Malformed(at));
            }
        }
        a.exposures = r.list()?;
        a.active = r.list()?;
        match bytes.len() - r.at {
            0 => Ok(a),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

/// The chunk size of [`SharedAggregates::encode`] (the chunks are then joined).
const DEFAULT_CHUNK: usize = 1 << 20;

/// Writes bytes into chunks of a fixed size, each allocated once at that size.
struct Writer {
    full: Vec<Vec<u8>>,
    current: Vec<u8>,
    chunk: usize,
}

impl Writer {
    fn new(chunk: usize) -> Self {
        let chunk = chunk.max(1);
        Self {
            full: Vec::new(),
            current: Vec::with_capacity(chunk.min(DEFAULT_CHUNK)),
            chunk,
        }
    }

    fn bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.current.len() == self.chunk {
                let next = Vec::with_capacity(self.chunk.min(DEFAULT_CHUNK));
                self.full.push(std::mem::replace(&mut self.current, next));
            }
            let (now, later) = bytes.split_at((self.chunk - self.current.len()).min(bytes.len()));
            self.current.extend_from_slice(now);
            bytes = later;
        }
    }

    /// The chunks written (none when nothing was).
    fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.current.is_empty() {
            self.full.push(self.current);
        }
        self.full
    }

    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }

    fn f64(&mut self, v: f64) {
        self.bytes(&v.to_le_bytes());
    }

    /// A count; the state's maps hold far fewer than `u32::MAX` entries (saturated if not,
    /// which decoding then refuses as malformed).
    fn len(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.bytes(&n.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }

    fn list(&mut self, list: &ScoreIndex<Id>) {
        self.len(list.len());
        for (id, score) in list.lowest() {
            self.str(id);
            self.f64(score);
        }
    }
}

/// The fewest bytes a list member takes (an empty id's length, a score).
const LIST_MEMBER_BYTES: usize = 4 + 8;

/// The fewest bytes a video's counters take (an empty id's length, 8 values).
const STATS_ENTRY_BYTES: usize = 4 + 8 * 8;

struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(DecodeError::Truncated(self.bytes.len()))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let at = self.at;
        self.take(N)?
            .try_into()
            .map_err(|_| DecodeError::Malformed(at))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Malformed(self.at - 1)),
        }
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let at = self.at;
        usize::try_from(u32::from_le_bytes(self.array()?)).map_err(|_| DecodeError::Malformed(at))
    }

    /// A length-prefixed UTF-8 string, borrowed from the bytes.
    fn str(&mut self) -> Result<&'b str, DecodeError> {
        let n = self.len()?;
        let at = self.at;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::Malformed(at))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    /// How many of a count read from the bytes, each taking at least `min_bytes`, the bytes
    /// left can hold: what a collection may reserve for them, so that a corrupt count cannot
    /// reserve more than the input could fill.
    fn at_most(&self, count: usize, min_bytes: usize) -> usize {
        count.min((self.bytes.len() - self.at) / min_bytes)
    }

    /// A string held as an [`Id`] (inline when short: no allocation of its own).
    fn id(&mut self) -> Result<Id, DecodeError> {
        self.str().map(Id::from)
    }

    /// A list in [`ScoreIndex::lowest`]'s order, as written; out of order, or with a member
    /// twice, it is malformed.
    fn list(&mut self) -> Result<ScoreIndex<Id>, DecodeError> {
        let at = self.at;
        let n = self.len()?;
        let mut members = Vec::with_capacity(self.at_most(n, LIST_MEMBER_BYTES));
        for _ in 0..n {
            let id = self.id()?;
            members.push((id, self.f64()?));
        }
        ScoreIndex::from_lowest(members).ok_or(DecodeError::Malformed(at))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::learning::shared::SharedDeltas;

    /// Deltas of `video`s (`v0`…`v7`), with scopes and days, trending ties and activity.
    fn deltas() -> impl Strategy<Value = SharedDeltas> {
        let video = (0u8..8).prop_map(|v| format!("v{v}"));
        let scope = prop_oneof![
            Just(TrendingScope::All),
            Just(TrendingScope::Language("en".to_owned())),
            Just(TrendingScope::Region("ü".to_owned())),
        ];
        let weight = prop_oneof![Just(1.0), Just(0.5), -2.0f64..2.0];
        proptest::collection::vec((video, scope, 100i64..106, weight, 0u8..4), 1..12).prop_map(
            |events| {
                let mut d = SharedDeltas::default();
                for (video, scope, day, w, user) in events {
                    d.video_stats.entry(video.clone()).or_default().views += 1.0;
                    d.durations[usize::from(user)].plays += 1.0;
                    *d.trending
                        .entry((scope, day))
                        .or_insert_with(HashMap::new)
                        .entry(video.clone())
                        .or_default() += w;
                    *d.exposures.entry(video).or_default() += 1.0;
                    d.active.insert(format!("u{user}"), day as f64 * w);
                }
                d
            },
        )
    }

    fn folded(batches: &[SharedDeltas]) -> SharedAggregates {
        let mut a = SharedAggregates::default();
        for (i, d) in batches.iter().enumerate() {
            a.apply_entry(
                EntryId {
                    ms: i as u64,
                    seq: 0,
                },
                d,
            );
        }
        a
    }

    proptest! {
        #[test]
        fn encodings_read_back_equal_and_are_the_same_bytes_for_the_same_state(
            batches in proptest::collection::vec(deltas(), 0..6),
        ) {
            let a = folded(&batches);
            let bytes = a.encode();
            let back = SharedAggregates::decode(&bytes);
            prop_assert_eq!(back.as_ref(), Ok(&a));
            // Another fold of the same batches: other hash-map orders, the same bytes.
            prop_assert_eq!(folded(&batches).encode(), bytes.clone());
            if let Ok(back) = back {
                prop_assert_eq!(back.encode(), bytes);
            }
        }

        #[test]
        fn chunks_cut_the_same_bytes_at_the_chunk_size(
            batches in proptest::collection::vec(deltas(), 0..4),
            chunk in 1usize..200,
        ) {
            let a = folded(&batches);
            let chunks = a.encode_chunks(chunk);
            prop_assert_eq!(chunks.concat(), a.encode());
            if let Some((last, full)) = chunks.split_last() {
                prop_assert!(full.iter().all(|c| c.len() == chunk));
                prop_assert!((1..=chunk).contains(&last.len()));
            }
        }

        #[test]
        fn every_cut_or_extension_is_refused_not_misread(
            batches in proptest::collection::vec(deltas(), 1..4),
        ) {
            let bytes = folded(&batches).encode();
            for cut in 0..bytes.len() {
                prop_assert!(SharedAggregates::decode(&bytes[..cut]).is_err(), "cut at {}", cut);
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert_eq!(SharedAggregates::decode(&longer), Err(DecodeError::Trailing(1)));
        }
    }

    #[test]
    fn another_format_or_no_header_is_named() {
        let mut bytes = SharedAggregates::default().encode();
        assert_eq!(
            SharedAggregates::decode(&bytes),
            Ok(SharedAggregates::default())
        );
        bytes[4] = FORMAT + 1;
        assert_eq!(
            SharedAggregates::decode(&bytes),
            Err(DecodeError::UnknownFormat(FORMAT + 1))
        );
        assert_eq!(
            SharedAggregates::decode(b"{\"json\":1}"),
            Err(DecodeError::NotAggregates)
        );
    }

    #[test]
    fn a_video_counted_twice_or_a_trending_day_listed_twice_is_malformed() {
        // Two counters, `a` and `b`; `b` renamed `a`.
        let mut d = SharedDeltas::default();
        d.video_stats.insert("a".to_owned(), VideoStats::default());
        d.video_stats.insert("b".to_owned(), VideoStats::default());
        let mut bytes = folded(&[d]).encode();
        let b = bytes
            .windows(5)
            .position(|w| w == [1, 0, 0, 0, b'b'])
            .expect("b is encoded")
            + 4;
        bytes[b] = b'a';
        assert!(matches!(
            SharedAggregates::decode(&bytes),
            Err(DecodeError::Malformed(_))
        ));
        // Two trending lists of day 100, scopes `all` and `language:x`; the second made `all`
        // too (its tag 0, then its language's 5 bytes cut out).
        let mut d = SharedDeltas::default();
        for scope in [TrendingScope::All, TrendingScope::Language("x".to_owned())] {
            d.trending
                .insert((scope, 100), HashMap::from([("v".to_owned(), 1.0)]));
        }
        let bytes = folded(&[d]).encode();
        let language = bytes
            .windows(6)
            .position(|w| w == [1, 1, 0, 0, 0, b'x'])
            .expect("the language scope is encoded");
        let mut twice = bytes.clone();
        twice[language] = 0;
        twice.drain(language + 1..language + 6);
        assert_eq!(
            SharedAggregates::decode(&bytes).map(|a| a.trending_days()),
            Ok(2)
        );
        assert!(matches!(
            SharedAggregates::decode(&twice),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn a_list_with_a_member_twice_or_out_of_order_is_malformed() {
        let mut d = SharedDeltas::default();
        d.exposures.insert("a".to_owned(), 1.0);
        d.exposures.insert("b".to_owned(), 2.0);
        let bytes = folded(&[d]).encode();
        // The second member's id, `b` (a length of 1, then the byte).
        let b = bytes
            .windows(5)
            .position(|w| w == [1, 0, 0, 0, b'b'])
            .expect("b is encoded")
            + 4;
        let mut twice = bytes.clone();
        twice[b] = b'a';
        assert!(matches!(
            SharedAggregates::decode(&twice),
            Err(DecodeError::Malformed(_))
        ));
        // `b` at a score below `a`'s, listed after it: out of order.
        let mut out_of_order = bytes;
        out_of_order[b + 1..b + 9].copy_from_slice(&0.5f64.to_le_bytes());
        assert!(matches!(
            SharedAggregates::decode(&out_of_order),
            Err(DecodeError::Malformed(_))
        ));
    }
}
