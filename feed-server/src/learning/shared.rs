//! The half of a batch's [`Deltas`] that every user reads alike (video counters, duration
//! buckets, trending, exposures, last activity, the exposure log): on Redis it is queued in the
//! ingest stream and applied by the consumers ([`crate::store::redis_store`]), while the sending
//! user's own state (affinities, taste, seen set, recent engagements — one cluster slot per
//! user) is written when the event is accepted. Pure data: encoding, decoding and merging.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Deltas, DurationStats, TrendingScope, VideoStats};
use crate::exposure::LoggedEvent;

/// Trending increments per (scope, UTC day) and video.
pub type TrendingDeltas = HashMap<(TrendingScope, i64), HashMap<String, f64>>;

/// What a batch changes in the shared aggregates; several merge into one write.
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

    /// The bytes kept in the ingest stream (JSON: readable with `redis-cli`).
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Reads what [`SharedDeltas::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
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

    #[test]
    fn encoding_round_trips_every_field() {
        let d = deltas(&[
            ("u1", "v1", EventType::Impression, 1_000.0),
            ("u1", "v1", EventType::View, 1_001.0),
            ("u2", "v2", EventType::Like, 90_000.0),
        ]);
        let shared = SharedDeltas::of(&d);
        assert!(!shared.trending.is_empty() && !shared.active.is_empty());
        let bytes = shared.encode().expect("encode");
        assert_eq!(SharedDeltas::decode(&bytes).expect("decode"), shared);
    }

    #[test]
    fn decoding_garbage_fails() {
        assert!(SharedDeltas::decode(b"{\"video_stats\": 3}").is_err());
        assert!(SharedDeltas::decode(b"not json").is_err());
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
