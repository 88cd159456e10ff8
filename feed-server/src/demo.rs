//! A generated demo world (`--demo`): creators, videos with topic embeddings, users with
//! follows, friends and topic tastes, and three days of engagement events. Deterministic.

use chrono::{Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::learning::Deltas;
use crate::model::{ContentType, Event, EventType, Follows, UserProfile, Video};
use crate::store::{Store, StoreError};

/// Sizes of the demo world.
#[derive(Clone, Copy, Debug)]
pub struct DemoSize {
    /// Creators.
    pub creators: usize,
    /// Videos.
    pub videos: usize,
    /// Users (`user-1` ...).
    pub users: usize,
    /// Events.
    pub events: usize,
}

impl Default for DemoSize {
    fn default() -> Self {
        Self {
            creators: 60,
            videos: 3_000,
            users: 300,
            events: 30_000,
        }
    }
}

const TOPICS: [&str; 12] = [
    "music", "dance", "comedy", "food", "travel", "pets", "sports", "gaming", "tech", "fashion",
    "diy", "science",
];
const DIM: usize = 16;

fn topic_vector(topic: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..DIM)
        .map(|d| if d % TOPICS.len() == topic { 1.0 } else { 0.0 } + rng.random_range(-0.2..0.2))
        .collect()
}

/// Loads the demo world into `store`; returns the number of videos, users and events.
pub async fn load(store: &dyn Store, size: DemoSize) -> Result<(usize, usize, usize), StoreError> {
    let mut rng = StdRng::seed_from_u64(42);
    let now = Utc::now();
    let creator_topic: Vec<usize> = (0..size.creators)
        .map(|_| rng.random_range(0..TOPICS.len()))
        .collect();
    let mut videos = Vec::with_capacity(size.videos);
    for i in 0..size.videos {
        let creator = rng.random_range(0..size.creators);
        let topic = if rng.random_bool(0.8) {
            creator_topic[creator]
        } else {
            rng.random_range(0..TOPICS.len())
        };
        let content_type = match rng.random_range(0..20) {
            0 => ContentType::Live,
            1 | 2 => ContentType::Long,
            _ => ContentType::Short,
        };
        let secondary = TOPICS[rng.random_range(0..TOPICS.len())];
        videos.push(Video {
            id: format!("v{i}").into(),
            creator_id: format!("creator-{creator}").into(),
            published_at: now - Duration::minutes(rng.random_range(0..7 * 24 * 60)),
            duration_ms: if content_type == ContentType::Long {
                rng.random_range(120_000..900_000)
            } else {
                rng.random_range(8_000..60_000)
            },
            language: if rng.random_bool(0.9) {
                "en".into()
            } else {
                "es".into()
            },
            region: ["US", "GB", "IN"][rng.random_range(0..3)].into(),
            tags: vec![TOPICS[topic].into(), secondary.into()],
            content_type,
            embedding: Some(topic_vector(topic, &mut rng).into()),
        });
    }
    for chunk in videos.chunks(1_000) {
        store.put_videos(chunk).await?;
    }

    let mut tastes = Vec::with_capacity(size.users);
    for u in 0..size.users {
        let user = format!("user-{}", u + 1);
        let taste = [
            rng.random_range(0..TOPICS.len()),
            rng.random_range(0..TOPICS.len()),
        ];
        tastes.push(taste);
        store
            .set_profile(
                &user,
                &UserProfile {
                    language: "en".into(),
                    region: "US".into(),
                },
            )
            .await?;
        let creators: Vec<String> = {
            let mut c: Vec<String> = (0..size.creators)
                .filter(|c| taste.contains(&creator_topic[*c]))
                .take(4)
                .map(|c| format!("creator-{c}"))
                .collect();
            c.dedup();
            c
        };
        let mut friends: Vec<String> = (0..3)
            .map(|_| format!("user-{}", rng.random_range(1..=size.users)))
            .filter(|f| *f != user)
            .collect();
        friends.sort();
        friends.dedup();
        store
            .set_follows(&user, &Follows { creators, friends })
            .await?;
    }

    let mut deltas = Deltas::default();
    let by_id = |i: usize| &videos[i];
    for _ in 0..size.events {
        let u = rng.random_range(0..size.users);
        let v = by_id(rng.random_range(0..videos.len()));
        let likes_topic = v
            .tags
            .first()
            .is_some_and(|t| tastes[u].iter().any(|x| TOPICS[*x] == t));
        let ts = now - Duration::seconds(rng.random_range(0..3 * 86_400));
        let user_id = format!("user-{}", u + 1);
        let event = |kind, watch_ms| Event {
            user_id: user_id.clone(),
            video_id: String::from(&*v.id),
            kind,
            watch_ms,
            ts: Some(ts),
            variant: None,
        };
        let tsf = ts.timestamp_millis() as f64 / 1000.0;
        deltas.add(&event(EventType::Impression, None), v, tsf);
        let ratio: f64 = if likes_topic {
            rng.random_range(0.5..1.2)
        } else {
            rng.random_range(0.0..0.5)
        };
        if ratio < 0.15 {
            deltas.add(
                &event(EventType::Skip, Some(ratio * v.duration_ms as f64)),
                v,
                tsf,
            );
            continue;
        }
        deltas.add(
            &event(EventType::View, Some(ratio * v.duration_ms as f64)),
            v,
            tsf,
        );
        if ratio >= 1.0 {
            deltas.add(
                &event(EventType::Complete, Some(v.duration_ms as f64)),
                v,
                tsf,
            );
        }
        if likes_topic && rng.random_bool(0.3) {
            deltas.add(&event(EventType::Like, None), v, tsf);
        }
        if likes_topic && rng.random_bool(0.05) {
            deltas.add(&event(EventType::Share, None), v, tsf);
        }
    }
    store.apply(&deltas).await?;
    Ok((videos.len(), size.users, size.events))
}
