//! The generated world: a catalog of videos by topic-specialised creators, users with a
//! language, region, two favourite topics, followed creators and friends, and an event history
//! whose users and videos are Zipf-distributed. Deterministic for a seed: timestamps are
//! relative to `now`, so regenerating with the same spec gives the same ids, orders and
//! activity ranking.
//!
//! User `u1` is the most active (Zipf rank 0), `u2` the next, and so on.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use hyper::Method;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::client::Req;
use crate::zipf::Zipf;

/// Number of topics (tags `t0` …).
pub const TOPICS: usize = 40;
/// Embedding dimensions.
pub const DIM: usize = 16;
const REGIONS: [&str; 4] = ["US", "GB", "IN", "CA"];

/// Sizes and seed of a world.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldSpec {
    /// Videos.
    pub videos: usize,
    /// Users.
    pub users: usize,
    /// Creators.
    pub creators: usize,
    /// Plays in the history (each is an impression plus a view or skip, sometimes complete,
    /// like, share or comment).
    pub plays: usize,
    /// Followed creators per user.
    pub follows: usize,
    /// Friends per user.
    pub friends: usize,
    /// Zipf exponent of user activity and video popularity.
    pub zipf_s: f64,
    /// Seed.
    pub seed: u64,
}

/// User id of Zipf rank `rank` (0 = most active).
pub fn user_id(rank: usize) -> String {
    format!("u{}", rank + 1)
}

/// A catalog entry on the wire.
#[derive(Clone, Debug, Serialize)]
pub struct Video {
    id: String,
    creator_id: String,
    published_at: DateTime<Utc>,
    duration_ms: u64,
    language: &'static str,
    region: &'static str,
    tags: Vec<String>,
    content_type: &'static str,
    embedding: Vec<f32>,
}

#[derive(Serialize)]
struct Profile {
    language: &'static str,
    region: &'static str,
}

#[derive(Serialize)]
struct Follows {
    creators: Vec<String>,
    friends: Vec<String>,
}

/// An event on the wire.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    user_id: String,
    video_id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    watch_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct EventBatch<'a> {
    events: &'a [Event],
}

/// A generated world.
pub struct World {
    /// Its spec.
    pub spec: WorldSpec,
    videos: Vec<Video>,
    video_topic: Vec<usize>,
    topic_videos: Vec<Vec<usize>>,
    user_topics: Vec<[usize; 2]>,
    user_region: Vec<&'static str>,
    user_follows: Vec<Vec<usize>>,
    user_friends: Vec<Vec<usize>>,
    history: Vec<Event>,
    /// Users by last activity in the history, most recent first (what feed-server warms).
    pub recently_active: Vec<usize>,
    user_zipf: Zipf,
    video_zipf: Zipf,
}

fn embedding(topic: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..DIM)
        .map(|d| if d == topic % DIM { 1.0 } else { 0.0 } + rng.random_range(-0.2..0.2))
        .collect()
}

impl World {
    /// Generates the world as of `now`.
    pub fn generate(spec: WorldSpec, now: DateTime<Utc>) -> Self {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let creators = spec.creators.max(1);
        let creator_topic: Vec<usize> = (0..creators).map(|c| c % TOPICS).collect();
        let mut topic_creators = vec![Vec::new(); TOPICS];
        for (c, t) in creator_topic.iter().enumerate() {
            topic_creators[*t].push(c);
        }
        let mut videos = Vec::with_capacity(spec.videos);
        let mut video_topic = Vec::with_capacity(spec.videos);
        let mut topic_videos = vec![Vec::new(); TOPICS];
        for i in 0..spec.videos {
            let creator = rng.random_range(0..creators);
            let topic = if rng.random_bool(0.85) {
                creator_topic[creator]
            } else {
                rng.random_range(0..TOPICS)
            };
            // One in a thousand is a live stream, on air for at most four hours.
            let (content_type, age_minutes, duration_ms) = match rng.random_range(0..1000) {
                0 => (
                    "live",
                    rng.random_range(0..240),
                    rng.random_range(1_800_000..7_200_000),
                ),
                1..=140 => (
                    "long",
                    rng.random_range(0..14 * 24 * 60),
                    rng.random_range(120_000..900_000),
                ),
                _ => (
                    "short",
                    rng.random_range(0..14 * 24 * 60),
                    rng.random_range(8_000..60_000),
                ),
            };
            let secondary = rng.random_range(0..TOPICS);
            videos.push(Video {
                id: format!("v{i}"),
                creator_id: format!("c{creator}"),
                published_at: now - Duration::minutes(age_minutes),
                duration_ms,
                language: "en",
                region: REGIONS[rng.random_range(0..REGIONS.len())],
                tags: vec![format!("t{topic}"), format!("t{secondary}")],
                content_type,
                embedding: embedding(topic, &mut rng),
            });
            video_topic.push(topic);
            topic_videos[topic].push(i);
        }

        let users = spec.users.max(1);
        let user_zipf = Zipf::new(users, spec.zipf_s);
        let video_zipf = Zipf::new(spec.videos.max(1), spec.zipf_s);
        let mut user_topics = Vec::with_capacity(users);
        let mut user_region = Vec::with_capacity(users);
        let mut user_follows = Vec::with_capacity(users);
        let mut user_friends = Vec::with_capacity(users);
        for u in 0..users {
            let topics = [rng.random_range(0..TOPICS), rng.random_range(0..TOPICS)];
            let mut follows: Vec<usize> = (0..spec.follows)
                .filter_map(|i| {
                    let pool = &topic_creators[topics[i % 2]];
                    (!pool.is_empty()).then(|| pool[rng.random_range(0..pool.len())])
                })
                .collect();
            follows.sort_unstable();
            follows.dedup();
            let mut friends: Vec<usize> = (0..spec.friends)
                .map(|_| user_zipf.sample(&mut rng))
                .filter(|f| *f != u)
                .collect();
            friends.sort_unstable();
            friends.dedup();
            user_topics.push(topics);
            user_region.push(REGIONS[rng.random_range(0..REGIONS.len())]);
            user_follows.push(follows);
            user_friends.push(friends);
        }

        let mut world = Self {
            spec,
            videos,
            video_topic,
            topic_videos,
            user_topics,
            user_region,
            user_follows,
            user_friends,
            history: Vec::new(),
            recently_active: Vec::new(),
            user_zipf,
            video_zipf,
        };
        let mut last_active = vec![i64::MIN; users];
        let mut history = Vec::with_capacity(spec.plays * 2);
        for _ in 0..spec.plays {
            let user = world.user_zipf.sample(&mut rng);
            // Mostly within the last 46 hours, so that today's and yesterday's trending lists
            // are long.
            let ts = now - Duration::seconds(rng.random_range(0..46 * 3600));
            last_active[user] = last_active[user].max(ts.timestamp_millis());
            world.play(&mut rng, user, Some(ts), &mut history);
        }
        world.history = history;
        let mut order: Vec<usize> = (0..users).filter(|u| last_active[*u] > i64::MIN).collect();
        order.sort_by_key(|u| (std::cmp::Reverse(last_active[*u]), *u));
        world.recently_active = order;
        world
    }

    /// Appends the events of one play by `user` (Zipf rank) to `out`.
    fn play<R: Rng>(
        &self,
        rng: &mut R,
        user: usize,
        ts: Option<DateTime<Utc>>,
        out: &mut Vec<Event>,
    ) {
        if self.videos.is_empty() {
            return;
        }
        let topics = self.user_topics[user];
        let pool = &self.topic_videos[topics[rng.random_range(0..2)]];
        let v = if rng.random_bool(0.5) && !pool.is_empty() {
            pool[rng.random_range(0..pool.len())]
        } else {
            self.video_zipf.sample(rng)
        };
        let video = &self.videos[v];
        let liked = topics.contains(&self.video_topic[v]);
        let event = |kind, watch_ms| Event {
            user_id: user_id(user),
            video_id: video.id.clone(),
            kind,
            watch_ms,
            ts,
        };
        out.push(event("impression", None));
        let ratio: f64 = if liked {
            rng.random_range(0.4..1.2)
        } else {
            rng.random_range(0.0..0.6)
        };
        let watch = (ratio.min(1.0) * video.duration_ms as f64) as u64;
        if ratio < 0.15 {
            out.push(event("skip", Some(watch)));
            return;
        }
        out.push(event("view", Some(watch)));
        if ratio >= 1.0 {
            out.push(event("complete", Some(video.duration_ms)));
        }
        if liked && rng.random_bool(0.25) {
            out.push(event("like", None));
        }
        if liked && rng.random_bool(0.04) {
            out.push(event("share", None));
        }
        if liked && rng.random_bool(0.03) {
            out.push(event("comment", None));
        }
    }

    /// The creators user `user` (Zipf rank) follows.
    pub fn follows_of(&self, user: usize) -> Vec<String> {
        self.user_follows
            .get(user)
            .map(|f| f.iter().map(|c| format!("c{c}")).collect())
            .unwrap_or_default()
    }

    /// The ids and upload times of the videos whose main topic is `topic`.
    pub fn topic_videos(&self, topic: usize) -> Vec<(String, DateTime<Utc>)> {
        self.topic_videos
            .get(topic)
            .map(|vs| {
                vs.iter()
                    .map(|&v| (self.videos[v].id.clone(), self.videos[v].published_at))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Events in the generated history.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// `PUT /v1/videos` requests of at most `per_request` videos each.
    pub fn video_requests(&self, per_request: usize) -> Vec<Req> {
        self.videos
            .chunks(per_request.max(1))
            .map(|chunk| json_req(Method::PUT, "/v1/videos".into(), &chunk))
            .collect()
    }

    /// `PUT /v1/users/{id}/profile` and `…/follows` for every user.
    pub fn user_requests(&self) -> Vec<Req> {
        let mut out = Vec::with_capacity(self.user_topics.len() * 2);
        for u in 0..self.user_topics.len() {
            let id = user_id(u);
            out.push(json_req(
                Method::PUT,
                format!("/v1/users/{id}/profile"),
                &Profile {
                    language: "en",
                    region: self.user_region[u],
                },
            ));
            out.push(json_req(
                Method::PUT,
                format!("/v1/users/{id}/follows"),
                &Follows {
                    creators: self.user_follows[u]
                        .iter()
                        .map(|c| format!("c{c}"))
                        .collect(),
                    friends: self.user_friends[u].iter().map(|f| user_id(*f)).collect(),
                },
            ));
        }
        out
    }

    /// `POST /v1/events` requests replaying the history, `per_request` events each.
    pub fn history_requests(&self, per_request: usize) -> Vec<Req> {
        self.history
            .chunks(per_request.max(1))
            .map(|events| json_req(Method::POST, "/v1/events".into(), &EventBatch { events }))
            .collect()
    }

    /// A live `POST /v1/events` body of at least `events` events (stamped on receipt), from
    /// Zipf-drawn users as `shape` says.
    pub fn live_events<R: Rng>(&self, rng: &mut R, events: usize, shape: BatchShape) -> Req {
        let mut out = Vec::with_capacity(events + 4);
        let mut user = self.user_zipf.sample(rng);
        while out.len() < events {
            self.play(rng, user, None, &mut out);
            if shape == BatchShape::Relay {
                user = self.user_zipf.sample(rng);
            }
        }
        json_req(
            Method::POST,
            "/v1/events".into(),
            &EventBatch { events: &out },
        )
    }

    /// A Zipf-drawn user rank among the first `n` ranks (all users when `n` is 0 or larger).
    pub fn zipf_user<R: Rng>(&self, rng: &mut R, zipf: &Zipf) -> usize {
        zipf.sample(rng).min(self.user_topics.len() - 1)
    }

    /// Users outside the `exclude` most recently active (the ones feed-server warms at start)
    /// and outside the `skip_top` most active ranks, shuffled by `seed`: users whose first page
    /// nobody has ranked yet, as long as the caller does not request them otherwise.
    pub fn cold_users(&self, exclude: usize, skip_top: usize, seed: u64) -> Vec<usize> {
        let mut excluded = vec![false; self.user_topics.len()];
        for u in self.recently_active.iter().take(exclude) {
            excluded[*u] = true;
        }
        let mut pool: Vec<usize> = (skip_top..self.user_topics.len())
            .filter(|u| !excluded[*u])
            .collect();
        pool.shuffle(&mut StdRng::seed_from_u64(seed));
        pool
    }
}

/// Who sends an event batch, which decides how many users' writes one POST carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchShape {
    /// A collector relaying many clients: every play in the batch from its own Zipf-drawn user
    /// (~4.5 users in a batch of 10 events).
    Relay,
    /// A feed app sending its own user's events after a page: one Zipf-drawn user's plays.
    App,
}

fn json_req<T: Serialize + ?Sized>(method: Method, path: String, body: &T) -> Req {
    // Serialising these plain structs cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Req::json(method, path, Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorldSpec {
        WorldSpec {
            videos: 500,
            users: 100,
            creators: 50,
            plays: 1_000,
            follows: 10,
            friends: 3,
            zipf_s: 1.0,
            seed: 7,
        }
    }

    #[test]
    fn deterministic_and_well_formed() {
        let now = Utc::now();
        let a = World::generate(spec(), now);
        let b = World::generate(spec(), now - Duration::hours(1));
        assert_eq!(a.recently_active, b.recently_active);
        assert_eq!(a.history_len(), b.history_len());
        assert!(a.history_len() >= 2_000);
        assert_eq!(a.video_requests(200).len(), 3);
        assert_eq!(a.user_requests().len(), 200);
        let body: serde_json::Value =
            serde_json::from_slice(&a.history_requests(1_000)[0].body).expect("json");
        assert_eq!(body["events"].as_array().map(Vec::len), Some(1_000));
        assert!(body["events"][0]["ts"].is_string());
        let cold = a.cold_users(10, 5, 1);
        assert!(
            cold.iter()
                .all(|u| *u >= 5 && !a.recently_active[..10].contains(u))
        );
    }

    /// Distinct senders in each of `batches` live batches of `shape`.
    fn senders(world: &World, shape: BatchShape, batches: usize) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(3);
        (0..batches)
            .map(|_| {
                let req = world.live_events(&mut rng, 10, shape);
                let body: serde_json::Value = serde_json::from_slice(&req.body).expect("json");
                let events = body["events"].as_array().cloned().unwrap_or_default();
                assert!(events.len() >= 10, "{} events", events.len());
                let users: std::collections::BTreeSet<String> =
                    events.iter().map(|e| e["user_id"].to_string()).collect();
                users.len()
            })
            .collect()
    }

    #[test]
    fn an_app_batch_is_one_users_and_a_relay_batch_mixes_users() {
        let world = World::generate(spec(), Utc::now());
        assert!(
            senders(&world, BatchShape::App, 200)
                .iter()
                .all(|n| *n == 1)
        );
        let relay = senders(&world, BatchShape::Relay, 200);
        let mean = relay.iter().sum::<usize>() as f64 / relay.len() as f64;
        assert!(mean > 2.5, "{mean} users per relay batch");
    }
}
