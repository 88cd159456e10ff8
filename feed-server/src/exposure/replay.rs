//! Events → exposures with point-in-time signal inputs (pure; the argument for why nothing
//! leaks is in the [module docs](super)).
//!
//! The log's events are replayed in `ts` order (stable) through an in-memory copy of the learned
//! state, built with the live ingest's own [`Deltas`]: video counters, duration-bucket counters,
//! decayed affinities and taste vectors. Each impression inside the window becomes an
//! [`Exposure`] whose [`SignalInputs`] are taken *before* the impression is applied; the events
//! of the same user and video that follow it, up to that pair's next impression, are its
//! [`Outcome`].
//!
//! Cost: one [`Deltas::add`] per event and one merge of the gathered changes per scored
//! impression; memory: the exposures and the learned state of the log's users and videos.

use std::collections::HashMap;
use std::sync::Arc;

use crate::exposure::LoggedEvent;
use crate::learning::{
    AFFINITY_HALF_LIFE_SECS, Decayed, Deltas, DurationStats, VideoStats, apply_decayed,
    apply_taste, creator_field, duration_bucket, tag_field, watch_ratio,
};
use crate::model::{EventType, Video};
use crate::ranking::inputs::{self, SignalInputs};
use crate::ranking::signals;
use crate::store::encoding;
use crate::time::Timestamp;

/// A time window `[since, until)` in unix seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// First instant inside.
    pub since: f64,
    /// First instant after.
    pub until: f64,
}

impl Window {
    /// Whether `ts` is inside.
    pub fn contains(&self, ts: f64) -> bool {
        ts >= self.since && ts < self.until
    }
}

/// What the user did with a video after it was shown.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Played it (a view, skip or complete).
    pub played: bool,
    /// Highest watch ratio of its plays (capped at 1).
    pub watch_ratio: f64,
    /// Watched to the end (a complete).
    pub completed: bool,
    /// Liked it.
    pub liked: bool,
}

/// One impression inside the window: who saw what when, the signal inputs the ranker had at
/// that moment, and what followed.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposure {
    /// The user.
    pub user_id: String,
    /// Unix seconds of the impression.
    pub ts: f64,
    /// The signal inputs as of `ts`, before the impression and everything after it.
    pub inputs: SignalInputs,
    /// What followed.
    pub outcome: Outcome,
}

/// The learned state the replay maintains (the parts the signals read).
#[derive(Default)]
struct State {
    stats: HashMap<String, VideoStats>,
    durations: DurationStats,
    users: HashMap<String, LearnedFields>,
}

/// What events taught one user, under the fields a store keeps it
/// ([`crate::store::encoding`]).
#[derive(Default)]
struct LearnedFields {
    affinity: HashMap<String, Decayed>,
    taste: HashMap<String, Decayed>,
}

impl State {
    fn apply(&mut self, d: &Deltas) {
        for (id, s) in &d.video_stats {
            self.stats.entry(id.clone()).or_default().merge(s);
        }
        for (total, add) in self.durations.iter_mut().zip(&d.durations) {
            total.merge(add);
        }
        for (user, adds) in &d.affinity {
            let u = self.users.entry(user.clone()).or_default();
            apply_decayed(&mut u.affinity, adds, AFFINITY_HALF_LIFE_SECS);
        }
        for (user, adds) in &d.taste {
            let u = self.users.entry(user.clone()).or_default();
            apply_taste(&mut u.taste, adds, AFFINITY_HALF_LIFE_SECS);
        }
    }

    /// The inputs of `video`'s signals for `user` at `ts`, from the state as it is now.
    fn inputs(&self, user: &str, video: &Arc<Video>, ts: f64) -> SignalInputs {
        let state = self.users.get(user);
        let decayed = |field: String| {
            state
                .and_then(|u| u.affinity.get(&field))
                .map_or(0.0, |d| d.value_at(ts, AFFINITY_HALF_LIFE_SECS))
        };
        SignalInputs {
            content_type: video.content_type,
            duration_ms: video.duration_ms,
            stats: self.stats.get(&*video.id).copied().unwrap_or_default(),
            bucket: self.durations[duration_bucket(video.duration_ms)],
            creator_affinity: decayed(creator_field(&video.creator_id)),
            tag_affinity: inputs::tag_mean(&video.tags, |t| decayed(tag_field(t))),
            followed: false,
            friend_engaged: false,
            taste_cosine: signals::cosine(
                state
                    .and_then(|u| {
                        encoding::taste(encoding::fields(&u.taste)).at(ts, AFFINITY_HALF_LIFE_SECS)
                    })
                    .as_deref(),
                video.embedding.as_deref(),
            ),
            age_secs: inputs::age_secs(Timestamp::from(video.published_at), ts),
        }
    }
}

/// Replays `events` (any order; those at or after `window.until` and those of videos not in
/// `catalog` are left out) and returns the exposures of `window`, in `ts` order.
pub fn replay(
    events: &[LoggedEvent],
    catalog: &HashMap<String, Arc<Video>>,
    window: Window,
) -> Vec<Exposure> {
    let mut order: Vec<&LoggedEvent> = events.iter().filter(|e| e.ts < window.until).collect();
    // Stable: events of one `ts` keep their arrival order.
    order.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    let mut state = State::default();
    // Learned changes not yet in `state`: additions commute (counters add, decayed values are
    // order-independent), so events are gathered and applied together just before the next
    // impression whose inputs are read.
    let mut pending = Deltas::default();
    let mut exposures: Vec<Exposure> = Vec::new();
    let mut open: HashMap<(&str, &str), usize> = HashMap::new();
    for e in order {
        let Some(video) = catalog.get(&e.video_id) else {
            continue;
        };
        let pair = (e.user_id.as_str(), e.video_id.as_str());
        match e.kind {
            EventType::Impression if window.contains(e.ts) => {
                state.apply(&std::mem::take(&mut pending));
                open.insert(pair, exposures.len());
                exposures.push(Exposure {
                    user_id: e.user_id.clone(),
                    ts: e.ts,
                    inputs: state.inputs(&e.user_id, video, e.ts),
                    outcome: Outcome::default(),
                });
            }
            // An impression before the window closes the pair's previous exposure.
            EventType::Impression => {
                open.remove(&pair);
            }
            kind => {
                if let Some(&i) = open.get(&pair) {
                    record(
                        &mut exposures[i].outcome,
                        kind,
                        watch_ratio(e.watch_ms, video.duration_ms),
                    );
                }
            }
        }
        pending.add(&e.event(), video, e.ts);
    }
    exposures
}

fn record(o: &mut Outcome, kind: EventType, ratio: f64) {
    match kind {
        EventType::View | EventType::Skip => {
            o.played = true;
            o.watch_ratio = o.watch_ratio.max(ratio);
        }
        EventType::Complete => {
            o.played = true;
            o.completed = true;
            o.watch_ratio = o.watch_ratio.max(ratio);
        }
        EventType::Like => o.liked = true,
        EventType::Impression | EventType::Share | EventType::Comment => {}
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::model::ContentType;

    fn video(id: &str, creator: &str) -> Arc<Video> {
        Arc::new(Video {
            id: id.into(),
            creator_id: creator.into(),
            published_at: Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
            duration_ms: 10_000,
            language: String::new(),
            region: String::new(),
            tags: vec!["cats".into()],
            content_type: ContentType::Short,
            embedding: None,
        })
    }

    fn ev(user: &str, video: &str, kind: EventType, ts: f64) -> LoggedEvent {
        LoggedEvent {
            user_id: user.into(),
            video_id: video.into(),
            kind,
            watch_ms: matches!(kind, EventType::View | EventType::Complete).then_some(10_000.0),
            ts,
        }
    }

    fn catalog() -> HashMap<String, Arc<Video>> {
        [video("a", "c1"), video("b", "c1")]
            .into_iter()
            .map(|v| (String::from(&*v.id), v))
            .collect()
    }

    const ALL: Window = Window {
        since: 0.0,
        until: 1e12,
    };

    /// u1 sees and loves `a` at t=100: impression, view, complete, like — all stamped 100.
    fn loved(ts: f64) -> Vec<LoggedEvent> {
        vec![
            ev("u1", "a", EventType::Impression, ts),
            ev("u1", "a", EventType::View, ts),
            ev("u1", "a", EventType::Complete, ts),
            ev("u1", "a", EventType::Like, ts),
        ]
    }

    #[test]
    fn an_exposures_outcome_never_leaks_into_its_own_features() {
        // Earlier history of u2 on `a`, so the video has counters before u1 sees it.
        let mut events = vec![
            ev("u2", "a", EventType::Impression, 50.0),
            ev("u2", "a", EventType::View, 50.0),
        ];
        events.extend(loved(100.0));
        let with = replay(&events, &catalog(), ALL);
        let u1 = with
            .iter()
            .find(|x| x.user_id == "u1")
            .expect("u1's exposure");
        assert_eq!(
            u1.outcome,
            Outcome {
                played: true,
                watch_ratio: 1.0,
                completed: true,
                liked: true
            }
        );
        // The features are the same as in a log where u1 never did anything with `a`.
        let without = replay(&events[..3], &catalog(), ALL);
        assert_eq!(without[1].outcome, Outcome::default());
        assert_eq!(u1.inputs, without[1].inputs);
        assert_eq!(u1.inputs.stats.completes, 0.0);
        assert_eq!(u1.inputs.stats.impressions, 1.0, "u2's impression only");
        assert_eq!(u1.inputs.creator_affinity, 0.0);
        // Outcomes that arrive first in the log (a late impression) still come after in `ts`.
        let mut shuffled = loved(100.0);
        shuffled.rotate_left(1);
        shuffled.insert(0, ev("u1", "a", EventType::Impression, 99.0));
        let late = replay(&shuffled, &catalog(), ALL);
        assert_eq!(late.len(), 2);
        assert_eq!(late[0].inputs.stats, VideoStats::default());
    }

    #[test]
    fn later_outcomes_teach_later_exposures_and_the_window_selects_impressions() {
        let mut events = loved(100.0);
        events.push(ev("u1", "b", EventType::Impression, 200.0));
        events.push(ev("u3", "a", EventType::Impression, 300.0));
        let all = replay(&events, &catalog(), ALL);
        assert_eq!(all.len(), 3);
        // u1's love of `a` (creator c1) shows in their affinity to `b` (same creator) …
        assert!(all[1].inputs.creator_affinity > 0.0);
        assert!(!all[1].outcome.played);
        // … and in `a`'s counters when u3 sees it.
        assert_eq!(all[2].inputs.stats.completes, 1.0);
        // A window after the history: the history warms the state up without being scored.
        let late = replay(
            &events,
            &catalog(),
            Window {
                since: 150.0,
                until: 250.0,
            },
        );
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].ts, 200.0);
        assert!(late[0].inputs.creator_affinity > 0.0);
    }

    #[test]
    fn outcomes_stop_at_the_pairs_next_impression() {
        let events = vec![
            ev("u1", "a", EventType::Impression, 10.0),
            ev("u1", "a", EventType::Impression, 20.0),
            ev("u1", "a", EventType::Complete, 21.0),
            ev("u1", "gone", EventType::Impression, 22.0),
        ];
        let x = replay(&events, &catalog(), ALL);
        assert_eq!(x.len(), 2, "the unknown video is left out");
        assert!(!x[0].outcome.completed);
        assert!(x[1].outcome.completed);
    }
}
