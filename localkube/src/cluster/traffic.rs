//! The traffic generator: users of a generated world (the bench crate's [`World`]: Zipf-active
//! users, topic-loving viewers) fetch feeds and report what they watched — impression, then
//! view or skip, sometimes complete, like, share, comment, with the bench's rates — to every
//! FeedRollout, at a fixed rate per rollout (open loop: a slow server does not slow the
//! arrivals; at most [`MAX_IN_FLIGHT`] requests wait per rollout, more are counted as dropped).
//!
//! A rollout is reached the way its users would: through its HTTPRoute's parent (Gateway API
//! mode: the route owned by the FeedRollout) with the route's first hostname as Host, else
//! through its main Service (owned by it, without the track label) on the port named `http`.
//! The world's catalog and users are loaded once per rollout before its traffic starts.
//! FeedRollouts in [`TrafficConfig::quiet_namespaces`] get none.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use feedroll_bench::client::Req;
use feedroll_bench::world::{BatchShape, World, WorldSpec, user_id};
use feedroll_bench::zipf::Zipf;
use futures::StreamExt;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::net::gateway::{Gateway, HTTP_ROUTE_API_VERSION};
use crate::net::services::Resolver;
use crate::server::FakeApi;

/// Requests waiting for an answer per rollout, at most.
pub const MAX_IN_FLIGHT: usize = 64;
/// Requests in flight while a rollout's world is loaded.
const LOAD_CONCURRENCY: usize = 4;
/// Tries of each loading request.
const LOAD_ATTEMPTS: usize = 3;
/// The label a FeedRollout's per-track Services carry (its main Service does not).
const TRACK_LABEL: &str = "feedroll.dev/track";

/// Settings of the generator.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Requests per second to each FeedRollout (feeds and event batches together).
    pub rate: f64,
    /// `Authorization: Bearer <key>` on every request, for pods started with `--api-keys`.
    pub api_key: Option<String>,
    /// Seed of the world and of the users' choices.
    pub seed: u64,
    /// Namespaces whose FeedRollouts get no traffic: their pods see only the kubelet's probes
    /// and Prometheus' scrapes (a canary nobody uses, which analysis must hold on, not judge).
    pub quiet_namespaces: Vec<String>,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        Self {
            rate: 50.0,
            api_key: None,
            seed: 11,
            quiet_namespaces: Vec::new(),
        }
    }
}

/// What one rollout's traffic got.
#[derive(Debug, Default)]
pub struct Counts {
    /// Requests answered 2xx.
    pub ok: AtomicU64,
    /// Requests answered 4xx or 5xx.
    pub refused: AtomicU64,
    /// Requests with no answer (connection refused or reset, timeout).
    pub failed: AtomicU64,
    /// Requests not sent because [`MAX_IN_FLIGHT`] were waiting.
    pub dropped: AtomicU64,
}

/// Where a rollout's users send their requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The address.
    pub address: SocketAddr,
    /// The Host header.
    pub host: String,
}

/// The entry of the FeedRollout `fr`: the parent of an HTTPRoute it owns, else its main
/// Service's `http` port (its first port if none is named so).
pub fn entry(
    fr: &Value,
    services: &[Value],
    routes: &[Value],
    gateway: &Gateway,
    resolver: &Resolver,
) -> Option<Entry> {
    let uid = fr["metadata"]["uid"].as_str()?;
    let ns = fr["metadata"]["namespace"].as_str()?;
    let owned = |o: &&Value| {
        o["metadata"]["namespace"].as_str() == Some(ns)
            && o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
    };
    if let Some(route) = routes.iter().find(owned) {
        let parent = &route["spec"]["parentRefs"][0];
        let address = gateway.address(
            parent["namespace"].as_str().unwrap_or(ns),
            parent["name"].as_str()?,
        )?;
        let host = route["spec"]["hostnames"][0]
            .as_str()
            .map_or_else(|| address.to_string(), str::to_owned);
        return Some(Entry { address, host });
    }
    let svc = services
        .iter()
        .filter(owned)
        .find(|s| s["metadata"]["labels"].get(TRACK_LABEL).is_none())?;
    let ports = svc["spec"]["ports"].as_array()?;
    let port = ports
        .iter()
        .find(|p| p["name"] == "http")
        .or_else(|| ports.first())?["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())?;
    let ip = resolver.service_ip(ns, svc["metadata"]["name"].as_str()?)?;
    let address = SocketAddr::from((ip, port));
    Some(Entry {
        address,
        host: address.to_string(),
    })
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The running generator; stops when dropped.
pub struct Traffic {
    counts: Arc<Mutex<BTreeMap<String, Arc<Counts>>>>,
    task: JoinHandle<()>,
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn world_spec(seed: u64) -> WorldSpec {
    WorldSpec {
        videos: 400,
        users: 200,
        creators: 40,
        plays: 0,
        follows: 5,
        friends: 3,
        zipf_s: 1.0,
        seed,
    }
}

impl Traffic {
    /// Starts sending to every FeedRollout `api` holds (looked up every second).
    pub fn start(
        api: FakeApi,
        gateway: Arc<Gateway>,
        resolver: Resolver,
        config: TrafficConfig,
    ) -> Self {
        let counts: Arc<Mutex<BTreeMap<String, Arc<Counts>>>> = Arc::default();
        let task = tokio::spawn(run(api, gateway, resolver, config, counts.clone()));
        Self { counts, task }
    }

    /// Counts per rollout (`namespace/name`) so far.
    pub fn counts(&self) -> BTreeMap<String, Arc<Counts>> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Sender {
    world: Arc<World>,
    zipf: Arc<Zipf>,
    client: HttpClient,
    auth: Option<Arc<str>>,
}

impl Sender {
    /// Sends `req` to `entry`; the answer's status, `None` without an answer.
    async fn send(&self, entry: &Entry, req: &Req) -> Option<u16> {
        let mut b = Request::builder()
            .method(req.method.clone())
            .uri(format!("http://{}{}", entry.address, req.path))
            .header(header::HOST, entry.host.as_str());
        if !req.body.is_empty() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(a) = &self.auth {
            b = b.header(header::AUTHORIZATION, a.as_ref());
        }
        let request = b.body(Full::new(req.body.clone())).ok()?;
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            let r = self.client.request(request).await.ok()?;
            let status = r.status().as_u16();
            let _ = r.into_body().collect().await;
            Some(status)
        })
        .await;
        answer.ok().flatten()
    }

    /// The next user action: half feed pages, half batches of one user's play events (as an app
    /// sends them).
    fn next(&self, rng: &mut StdRng) -> Req {
        if rng.random_bool(0.5) {
            let user = self.world.zipf_user(rng, &self.zipf);
            Req::get(format!("/v1/feed?user_id={}&limit=20", user_id(user)))
        } else {
            self.world.live_events(rng, 6, BatchShape::App)
        }
    }
}

/// Loads the world's catalog, then its users, at `entry`, [`LOAD_CONCURRENCY`] requests at a
/// time, each tried up to [`LOAD_ATTEMPTS`] times (the writes are idempotent; a busy pod may
/// shed one); `true` when every request was accepted.
async fn load(sender: Arc<Sender>, entry: Entry) -> bool {
    for group in [
        sender.world.video_requests(100),
        sender.world.user_requests(),
    ] {
        let accepted = futures::stream::iter(group)
            .map(|req| {
                let (sender, entry) = (sender.clone(), entry.clone());
                async move {
                    for _ in 0..LOAD_ATTEMPTS {
                        if matches!(sender.send(&entry, &req).await, Some(200..=299)) {
                            return true;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    false
                }
            })
            .buffer_unordered(LOAD_CONCURRENCY)
            .all(std::future::ready)
            .await;
        if !accepted {
            return false;
        }
    }
    true
}

/// Whether the world of rollout `key` is loaded at `entry`.
fn is_loaded(loaded: &Mutex<BTreeMap<String, Entry>>, key: &str, entry: &Entry) -> bool {
    loaded
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
        == Some(entry)
}

async fn run(
    api: FakeApi,
    gateway: Arc<Gateway>,
    resolver: Resolver,
    config: TrafficConfig,
    counts: Arc<Mutex<BTreeMap<String, Arc<Counts>>>>,
) {
    let spec = world_spec(config.seed);
    let sender = Arc::new(Sender {
        world: Arc::new(World::generate(spec, chrono::Utc::now())),
        zipf: Arc::new(Zipf::new(spec.users, spec.zipf_s)),
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        auth: config
            .api_key
            .as_deref()
            .map(feedroll_bench::client::bearer),
    });
    let mut rng = StdRng::seed_from_u64(config.seed);
    // Rollouts whose world is loaded at their entry; loads run beside the traffic (a rollout
    // being loaded holds up no other), in a set aborted with this task.
    let loaded: Arc<Mutex<BTreeMap<String, Entry>>> = Arc::default();
    let mut loading: BTreeMap<String, Entry> = BTreeMap::new();
    let mut loads = tokio::task::JoinSet::new();
    let in_flight: Arc<Mutex<BTreeMap<String, Arc<Semaphore>>>> = Arc::default();
    let period = Duration::from_secs_f64(1.0 / config.rate.max(0.1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut entries: Vec<(String, Entry)> = Vec::new();
    let mut looked_up = tokio::time::Instant::now() - Duration::from_secs(10);
    loop {
        tick.tick().await;
        if looked_up.elapsed() >= Duration::from_secs(1) {
            looked_up = tokio::time::Instant::now();
            let services = api.list_all("v1", "services");
            let routes = api.list_all(HTTP_ROUTE_API_VERSION, "httproutes");
            entries = api
                .list_all("feedroll.dev/v1alpha1", "feedrollouts")
                .iter()
                .filter_map(|fr| {
                    let ns = fr["metadata"]["namespace"].as_str()?;
                    if config.quiet_namespaces.iter().any(|q| q == ns) {
                        return None;
                    }
                    let key = format!("{ns}/{}", fr["metadata"]["name"].as_str()?);
                    Some((key, entry(fr, &services, &routes, &gateway, &resolver)?))
                })
                .collect();
            while let Some(done) = loads.try_join_next() {
                if let Ok(key) = done {
                    loading.remove(&key);
                }
            }
            for (key, e) in &entries {
                if is_loaded(&loaded, key, e) || loading.get(key) == Some(e) {
                    continue;
                }
                loading.insert(key.clone(), e.clone());
                let (sender, loaded, key, e) =
                    (sender.clone(), loaded.clone(), key.clone(), e.clone());
                loads.spawn(async move {
                    if load(sender, e.clone()).await {
                        loaded
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(key.clone(), e);
                    }
                    key
                });
            }
        }
        for (key, e) in &entries {
            if !is_loaded(&loaded, key, e) {
                continue;
            }
            let c = counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.clone())
                .or_default()
                .clone();
            let sem = in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT)))
                .clone();
            let Ok(permit) = sem.try_acquire_owned() else {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let req = sender.next(&mut rng);
            let (sender, e) = (sender.clone(), e.clone());
            tokio::spawn(async move {
                let counter = match sender.send(&e, &req).await {
                    Some(200..=299) => &c.ok,
                    Some(_) => &c.refused,
                    None => &c.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }
}
