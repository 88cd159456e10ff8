//! The half of a batch's [`Deltas`] that every user reads alike (video counters, duration
//! buckets, trending, exposures, last activity, the exposure log): on Redis it is queued in the
//! ingest stream and applied by the consumers ([`crate::store::redis_store`]), while the sending
//! user's own state (affinities, taste, seen set, recent engagements — one cluster slot per
//! user) is written when the event is accepted. Pure data: encoding, decoding and merging.
//!
//! **Entry forms** (`--event-entry-format`), told apart by their first byte; every form is read:
//!
//! - **JSON** (`{`): readable with `redis-cli`, and the form every version reads.
//! - **Compact** (`0x01`, then the deltas in [postcard](https://postcard.jamesmunns.com/)): no
//!   field names, counters as their 8 bytes, lengths as varints. Every replica decodes every
//!   entry with the shared aggregates in process, and parsing JSON text was most of that work
//!   (BENCHMARKS.md, *Compact ingest entries*). postcard is positional: the wire is the field
//!   order of [`CompactOut`] and the variant order of the enums it holds, pinned by a test of
//!   its bytes; a later layout takes the next first byte.
//!
//! A version older than compact entries cannot read them, and an entry nobody reads is an
//! entry whose events never reach the aggregates: `compact` is for deployments where every
//! replica (stable and canary) reads it, and a rollback below this version first goes back to
//! `json` and waits until no compact entry is left (feed-server/README.md).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Deltas, DurationStats, TrendingScope, VideoStats};
use crate::exposure::LoggedEvent;

/// Trending increments per (scope, UTC day) and video.
pub type TrendingDeltas = HashMap<(TrendingScope, i64), HashMap<String, f64>>;

/// How a replica writes its entries in the ingest stream (`--event-entry-format`); both are
/// read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EntryFormat {
    /// JSON: the form every version reads. The default until no replica older than the reader
    /// of compact entries runs anywhere.
    #[default]
    Json,
    /// Binary, decoded without parsing text: readable only by versions that have this option;
    /// set it once every replica (stable and canary) runs one.
    Compact,
}

/// The first byte of a compact entry (a JSON entry begins with `{`). A later compact layout
/// takes the next value, so that a reader never mistakes one for the other.
const COMPACT_V1: u8 = 0x01;

/// Deltas that could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The JSON form failed (a counter that is not finite).
    #[error("encoding an ingest entry as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The compact form failed.
    #[error("encoding a compact ingest entry: {0}")]
    Compact(#[from] postcard::Error),
}

/// Entry bytes that are no deltas this version reads.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// An empty entry.
    #[error("an empty ingest entry")]
    Empty,
    /// A first byte of no known form (a later version's layout, or not an entry at all).
    #[error("an ingest entry of unknown form (first byte {0:#04x}): written by a newer version?")]
    UnknownForm(u8),
    /// A JSON entry that does not parse.
    #[error("a JSON ingest entry: {0}")]
    Json(#[from] serde_json::Error),
    /// A compact entry that does not parse.
    #[error("a compact ingest entry: {0}")]
    Compact(#[from] postcard::Error),
    /// A compact entry followed by more bytes.
    #[error("a compact ingest entry with {0} bytes after its end")]
    Trailing(usize),
}

/// What a batch changes in the shared aggregates; several merge into one write. A compact
/// entry is read back into it by field order ([`CompactOut`] writes them in this order).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SharedDeltas {
    /// Counter increments per video.
    pub video_stats: HashMap<String, VideoStats>,
    /// Global counters per duration bucket.
    pub durations: DurationStats,
    /// Trending increments (stored as a list: JSON keys are strings).
    #[serde(with = "trending_list")]
    pub trending: TrendingDeltas,
    /// Latest activity time per user.
    pub active: HashMap<String, f64>,
    /// Impressions per video (long tail).
    pub exposures: HashMap<String, f64>,
    /// The accepted events, in order, for the exposure log.
    pub log: Vec<LoggedEvent>,
    /// Catalog writes, in order, when the shared aggregates are folded in process
    /// (`--shared-aggregates process`): every replica then drops a deleted video's counters, or
    /// lists a new one in the long tail, at the same point of the stream. Entries of catalog
    /// writes hold nothing else; with the aggregates on Redis the catalog write changes the keys
    /// itself and appends none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<CatalogChange>,
}

/// A catalog write as the shared aggregates see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogChange {
    /// A video was put: it joins the long tail with no exposures unless it has some.
    Added(String),
    /// A video was deleted: its counters and exposures go.
    Deleted(String),
}

impl SharedDeltas {
    /// The shared half of `d`.
    pub fn of(d: &Deltas) -> Self {
        Self {
            video_stats: d.video_stats.clone(),
            durations: d.durations,
            trending: d.trending.clone(),
            active: d.active.clone(),
            exposures: d.exposures.clone(),
            log: d.log.clone(),
            catalog: Vec::new(),
        }
    }

    /// How many events these deltas hold.
    pub fn events(&self) -> usize {
        self.log.len()
    }

    /// Adds `later` (accepted after `self`): counters add up, lists and the log keep their order,
    /// activity keeps the latest time.
    pub fn merge(&mut self, later: SharedDeltas) {
        for (id, s) in later.video_stats {
            self.video_stats.entry(id).or_default().merge(&s);
        }
        for (total, add) in self.durations.iter_mut().zip(&later.durations) {
            total.merge(add);
        }
        for (key, incs) in later.trending {
            let t = self.trending.entry(key).or_default();
            for (id, w) in incs {
                *t.entry(id).or_default() += w;
            }
        }
        for (user, ts) in later.active {
            let t = self.active.entry(user).or_insert(ts);
            *t = t.max(ts);
        }
        for (id, n) in later.exposures {
            *self.exposures.entry(id).or_default() += n;
        }
        self.log.extend(later.log);
        self.catalog.extend(later.catalog);
    }

    /// The bytes kept in the ingest stream, in `format`.
    pub fn encode(&self, format: EntryFormat) -> Result<Vec<u8>, EncodeError> {
        SharedRef {
            video_stats: &self.video_stats,
            durations: &self.durations,
            trending: &self.trending,
            active: &self.active,
            exposures: &self.exposures,
            log: &self.log,
            catalog: &self.catalog,
        }
        .encode(format)
    }

    /// The entry of `d`'s shared half in `format`, as `SharedDeltas::of(d).encode(format)`
    /// writes it, without copying `d`'s maps first (an accept's entry).
    pub fn encode_of(d: &Deltas, format: EntryFormat) -> Result<Vec<u8>, EncodeError> {
        SharedRef {
            video_stats: &d.video_stats,
            durations: &d.durations,
            trending: &d.trending,
            active: &d.active,
            exposures: &d.exposures,
            log: &d.log,
            catalog: &[],
        }
        .encode(format)
    }

    /// Reads what [`SharedDeltas::encode`] wrote, in either form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes.split_first() {
            None => Err(DecodeError::Empty),
            Some((b'{', _)) => Ok(serde_json::from_slice(bytes)?),
            Some((&COMPACT_V1, body)) => {
                // Read as written by [`CompactOut`]: the same fields in the same order.
                let (deltas, rest) = postcard::take_from_bytes::<Self>(body)?;
                if !rest.is_empty() {
                    return Err(DecodeError::Trailing(rest.len()));
                }
                Ok(deltas)
            }
            Some((&other, _)) => Err(DecodeError::UnknownForm(other)),
        }
    }
}

/// [`SharedDeltas`] borrowed, as both forms write it: its JSON is [`SharedDeltas`]'s (the same
/// fields in the same order).
#[derive(Serialize)]
struct SharedRef<'a> {
    video_stats: &'a HashMap<String, VideoStats>,
    durations: &'a DurationStats,
    #[serde(serialize_with = "trending_ref")]
    trending: &'a TrendingDeltas,
    active: &'a HashMap<String, f64>,
    exposures: &'a HashMap<String, f64>,
    log: &'a [LoggedEvent],
    #[serde(skip_serializing_if = "no_catalog")]
    catalog: &'a [CatalogChange],
}

impl SharedRef<'_> {
    fn encode(&self, format: EntryFormat) -> Result<Vec<u8>, EncodeError> {
        match format {
            EntryFormat::Json => Ok(serde_json::to_vec(self)?),
            EntryFormat::Compact => {
                let compact = CompactOut {
                    video_stats: self.video_stats,
                    durations: self.durations,
                    trending: self.trending,
                    active: self.active,
                    exposures: self.exposures,
                    log: self.log,
                    catalog: self.catalog,
                };
                // ~160 bytes an event for a relay's batch (its counters, trending and log
                // lines; 1,758 for 11 events): one allocation for most.
                let bytes = Vec::with_capacity(128 + 160 * self.log.len());
                Ok(postcard::to_extend(&compact, with_tag(bytes))?)
            }
        }
    }
}

fn trending_ref<S: serde::Serializer>(t: &&TrendingDeltas, s: S) -> Result<S::Ok, S::Error> {
    trending_list::serialize(t, s)
}

fn no_catalog(catalog: &&[CatalogChange]) -> bool {
    catalog.is_empty()
}

/// `bytes` with the compact form's first byte pushed.
fn with_tag(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.push(COMPACT_V1);
    bytes
}

/// The compact form as written (postcard is positional: this field order, and the variant
/// order of [`TrendingScope`], [`crate::model::EventType`] and [`CatalogChange`], is the wire).
/// The trending increments go as the JSON form's list of `(scope, day, increments)`.
#[derive(Serialize)]
struct CompactOut<'a> {
    video_stats: &'a HashMap<String, VideoStats>,
    durations: &'a DurationStats,
    #[serde(serialize_with = "trending_ref")]
    trending: &'a TrendingDeltas,
    active: &'a HashMap<String, f64>,
    exposures: &'a HashMap<String, f64>,
    log: &'a [LoggedEvent],
    catalog: &'a [CatalogChange],
}

/// `(scope, day) → increments` as a list of `[scope, day, increments]`.
mod trending_list {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{TrendingDeltas, TrendingScope};

    pub fn serialize<S: Serializer>(t: &TrendingDeltas, s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<(&TrendingScope, i64, &HashMap<String, f64>)> = t
            .iter()
            .map(|((scope, day), incs)| (scope, *day, incs))
            .collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TrendingDeltas, D::Error> {
        let list: Vec<(TrendingScope, i64, HashMap<String, f64>)> = Vec::deserialize(d)?;
        Ok(list
            .into_iter()
            .map(|(scope, day, incs)| ((scope, day), incs))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::DURATION_BUCKETS;
    use crate::model::{Event, EventType, Video};

    fn video(id: &str) -> Video {
        serde_json::from_value(serde_json::json!({
            "id": id, "creator_id": "c1", "published_at": "2026-01-01T00:00:00Z",
            "duration_ms": 30_000, "language": "en", "region": "US", "tags": ["music", "pets"],
            "content_type": "short", "embedding": [0.5, 0.5, 0.0, 1.0]
        }))
        .expect("video")
    }

    fn event(user: &str, video: &str, kind: EventType) -> Event {
        Event {
            user_id: user.into(),
            video_id: video.into(),
            kind,
            watch_ms: Some(20_000.0),
            ts: None,
            variant: None,
        }
    }

    fn deltas(events: &[(&str, &str, EventType, f64)]) -> Deltas {
        let mut d = Deltas::default();
        for (user, id, kind, ts) in events {
            d.add(&event(user, id, *kind), &video(id), *ts);
        }
        d
    }

    /// Deltas with every field set, a catalog write's included.
    fn every_field() -> SharedDeltas {
        let d = deltas(&[
            ("u1", "v1", EventType::Impression, 1_000.0),
            ("u1", "v1", EventType::View, 1_001.0),
            ("u2", "v2", EventType::Like, 90_000.0),
            ("u2", "v2", EventType::Skip, 90_001.5),
        ]);
        let mut shared = SharedDeltas::of(&d);
        shared.catalog = vec![
            CatalogChange::Added("v9".into()),
            CatalogChange::Deleted("v1".into()),
        ];
        assert!(!shared.trending.is_empty() && !shared.active.is_empty());
        assert!(!shared.exposures.is_empty() && shared.log.len() == 4);
        shared
    }

    #[test]
    fn encoding_round_trips_every_field_in_either_form() {
        let shared = every_field();
        for format in [EntryFormat::Json, EntryFormat::Compact] {
            let bytes = shared.encode(format).expect("encode");
            assert_eq!(
                SharedDeltas::decode(&bytes).expect("decode"),
                shared,
                "{format:?}"
            );
        }
        let json = shared.encode(EntryFormat::Json).expect("encode");
        assert_eq!(
            json.first(),
            Some(&b'{'),
            "JSON stays readable with redis-cli"
        );
        let compact = shared.encode(EntryFormat::Compact).expect("encode");
        assert_eq!(compact.first(), Some(&COMPACT_V1));
        assert!(
            compact.len() * 2 < json.len(),
            "compact {} bytes, JSON {}",
            compact.len(),
            json.len()
        );
    }

    #[test]
    fn an_accepts_entry_is_the_entry_of_its_shared_half_in_either_form() {
        let d = deltas(&[
            ("u1", "v1", EventType::Impression, 1_000.0),
            ("u1", "v2", EventType::Complete, 1_030.0),
            ("u2", "v1", EventType::Like, 90_000.0),
        ]);
        let shared = SharedDeltas::of(&d);
        for format in [EntryFormat::Json, EntryFormat::Compact] {
            let bytes = SharedDeltas::encode_of(&d, format).expect("encode");
            assert_eq!(
                SharedDeltas::decode(&bytes).expect("decode"),
                shared,
                "{format:?}"
            );
        }
        // The borrowed JSON is the owned one's, field for field (what older versions read).
        let json = SharedDeltas::encode_of(&d, EntryFormat::Json).expect("encode");
        let json: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(json, serde_json::to_value(&shared).expect("json"));
        assert!(json.get("catalog").is_none(), "no catalog field: {json}");
        let with_catalog = every_field();
        let json = with_catalog.encode(EntryFormat::Json).expect("encode");
        let json: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(json, serde_json::to_value(&with_catalog).expect("json"));
    }

    /// The compact layout is a wire between versions: a change to a field's order or type, or
    /// to an enum's variants, changes these bytes and needs the next first byte.
    #[test]
    fn the_compact_layout_is_pinned() {
        let mut shared = SharedDeltas::default();
        shared.video_stats.insert(
            "v".into(),
            VideoStats {
                likes: 1.0,
                ..VideoStats::default()
            },
        );
        shared.durations[1].plays = 2.0;
        shared
            .trending
            .entry((TrendingScope::Region("US".into()), 7))
            .or_default()
            .insert("v".into(), 0.5);
        shared.active.insert("u".into(), 3.0);
        shared.log.push(LoggedEvent {
            user_id: "u".into(),
            video_id: "v".into(),
            kind: EventType::Share,
            watch_ms: None,
            ts: 3.0,
        });
        shared.catalog.push(CatalogChange::Deleted("w".into()));
        let bytes = shared.encode(EntryFormat::Compact).expect("encode");
        let f64s = |xs: &[f64]| -> Vec<u8> { xs.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let mut want = vec![COMPACT_V1, 1, 1, b'v'];
        want.extend(f64s(&[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]));
        for bucket in 0..DURATION_BUCKETS {
            let plays = if bucket == 1 { 2.0 } else { 0.0 };
            want.extend(f64s(&[0.0, plays, 0.0]));
        }
        // Trending: one list, `Region` (variant 2), day 7 as a zigzag varint (14).
        want.extend([1, 2, 2, b'U', b'S', 14, 1, 1, b'v']);
        want.extend(f64s(&[0.5]));
        want.extend([1, 1, b'u']);
        want.extend(f64s(&[3.0]));
        // No exposures; one logged event: `Share` (variant 4), no watch time.
        want.extend([0, 1, 1, b'u', 1, b'v', 4, 0]);
        want.extend(f64s(&[3.0]));
        // One catalog change: `Deleted` (variant 1).
        want.extend([1, 1, 1, b'w']);
        assert_eq!(bytes, want);
        assert_eq!(SharedDeltas::decode(&want).expect("decode"), shared);
    }

    #[test]
    fn decoding_what_is_no_entry_of_this_version_fails_and_says_why() {
        let compact = every_field().encode(EntryFormat::Compact).expect("encode");
        let mut trailing = compact.clone();
        trailing.push(0);
        let cases: [(&[u8], &str); 7] = [
            (b"", "empty"),
            (b"{\"video_stats\": 3}", "JSON ingest entry"),
            (b"not json", "unknown form (first byte 0x6e)"),
            (&[0x02, 0, 0], "unknown form (first byte 0x02)"),
            (&compact[..compact.len() - 3], "compact ingest entry"),
            (&trailing, "1 bytes after its end"),
            (&[COMPACT_V1], "compact ingest entry"),
        ];
        for (bytes, why) in cases {
            let err = SharedDeltas::decode(bytes).expect_err("not an entry");
            assert!(err.to_string().contains(why), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn merged_batches_equal_one_batch_of_all_events() {
        let a = [
            ("u1", "v1", EventType::Impression, 1_000.0),
            ("u1", "v1", EventType::Complete, 1_030.0),
        ];
        let b = [
            ("u1", "v2", EventType::Share, 900.0),
            ("u2", "v1", EventType::View, 2_000.0),
        ];
        let mut merged = SharedDeltas::of(&deltas(&a));
        merged.merge(SharedDeltas::of(&deltas(&b)));
        let all: Vec<_> = a.iter().chain(&b).copied().collect();
        assert_eq!(merged, SharedDeltas::of(&deltas(&all)));
        assert_eq!(merged.events(), 4);
        assert_eq!(merged.active["u1"], 1_030.0);
    }
}
