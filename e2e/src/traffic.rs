//! The traffic generator: feed, rank and event requests at a fixed rate, each sent to the canary
//! with probability `weight / 100` (as a Service over stable and canary pods split by replica
//! ratio would), counted per track.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio::task::JoinHandle;

/// Counters per track.
#[derive(Debug, Default)]
pub struct Counts {
    /// Requests sent to stable.
    pub stable: AtomicU64,
    /// Requests sent to canary.
    pub canary: AtomicU64,
    /// Requests that failed (any status >= 500 or transport error).
    pub failed: AtomicU64,
}

/// A running traffic generator; stops on drop.
pub struct Traffic {
    /// Canary weight, 0–100; the driver moves it.
    pub weight: Arc<AtomicU32>,
    /// Counters.
    pub counts: Arc<Counts>,
    task: JoinHandle<()>,
}

/// What to send.
#[derive(Clone, Debug)]
pub struct TrafficPlan {
    /// Stable base URL.
    pub stable: String,
    /// Canary base URL.
    pub canary: String,
    /// Requests per second in total.
    pub rate: u32,
    /// Distinct users.
    pub users: u32,
    /// Video ids that exist.
    pub videos: Vec<String>,
}

impl Traffic {
    /// Starts sending.
    pub fn start(plan: TrafficPlan) -> Self {
        let weight = Arc::new(AtomicU32::new(0));
        let counts = Arc::new(Counts::default());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let (w, c) = (weight.clone(), counts.clone());
        let task = tokio::spawn(async move {
            let period = Duration::from_secs_f64(1.0 / f64::from(plan.rate.max(1)));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let (to_canary, user, kind, video, ratio) = {
                    let mut rng = rand::rng();
                    let to_canary = rng.random_range(0..100) < w.load(Ordering::Relaxed);
                    let user = format!("user-{}", rng.random_range(0..plan.users.max(1)));
                    let video = plan.videos
                        [rng.random_range(0..plan.videos.len().max(1)) % plan.videos.len().max(1)]
                    .clone();
                    (
                        to_canary,
                        user,
                        rng.random_range(0..10u8),
                        video,
                        rng.random_range(0.2..1.0f64),
                    )
                };
                let base = if to_canary {
                    &plan.canary
                } else {
                    &plan.stable
                };
                if to_canary { &c.canary } else { &c.stable }.fetch_add(1, Ordering::Relaxed);
                let request = match kind {
                    0..=5 => client.get(format!("{base}/v1/feed?user_id={user}&limit=10")),
                    6 | 7 => client.post(format!("{base}/v1/rank")).json(&json!({"user_id": user, "video_ids": plan.videos.iter().take(20).collect::<Vec<_>>()})),
                    _ => {
                        // One play: shown, watched for a share of its length, completed past 80%,
                        // liked now and then.
                        let mut events = vec![
                            json!({"user_id": user, "video_id": video, "type": "impression"}),
                            json!({"user_id": user, "video_id": video, "type": "view", "watch_ms": 30_000.0 * ratio}),
                        ];
                        if ratio > 0.8 {
                            events.push(json!({"user_id": user, "video_id": video, "type": "complete", "watch_ms": 30_000}));
                        }
                        if ratio > 0.9 {
                            events.push(json!({"user_id": user, "video_id": video, "type": "like"}));
                        }
                        client.post(format!("{base}/v1/events")).json(&json!({ "events": events }))
                    }
                };
                let counts = c.clone();
                tokio::spawn(async move {
                    let failed = request
                        .send()
                        .await
                        .map_or(true, |r| r.status().is_server_error());
                    if failed {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        Self {
            weight,
            counts,
            task,
        }
    }

    /// Sets the canary weight (0–100).
    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight.min(100), Ordering::Relaxed);
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.task.abort();
    }
}
