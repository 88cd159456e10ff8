//! Predictive warm-up: users likely to come back soon get their first page ranked ahead of their
//! return, off the request path, within a CPU budget.
//!
//! Each replica remembers, per user it served, a few numbers ([`plan::Activity`]: last visit,
//! mean gap between visits, until when their page is fresh, whether their own events dropped
//! it). The request path only records: a first page served ([`Warmup::visit`]) and a user's
//! accepted events ([`Warmup::changed`]), each an O(log n) update under a short lock. Background
//! workers ([`Warmup::run`], `--predictive-warmup-concurrency`) take the users whose planned time
//! has come, soonest first, and rank each one's default first page through
//! [`crate::feed::rank_ahead`] (the ranking bound applies: when clients fill it the warm-up is
//! refused and counted as `shed`). After each ranking a worker pauses so that the workers'
//! rankings take at most `--predictive-warmup-budget-ms` of every second in all
//! ([`plan::pause_after`]); wall time bounds their CPU. What "likely" means and when a page is
//! ranked: [`plan`].
//!
//! Memory is bounded by `--predictive-warmup-max-users` (~100 bytes per user); when full, new
//! users are not tracked until a worker forgets those with nothing planned (once a second).

pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use feed_metrics::ops;
use parking_lot::Mutex;
use prometheus::{Counter, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cache::Snapshot;
use crate::feed::{self, FeedError};
use crate::metrics::{Metrics, MetricsError};
use crate::model::DEFAULT_LIMIT;
use crate::state::AppState;
use plan::{Activity, Plan, Policy, ms};

/// Longest the task sleeps before looking at its plan again (new users arrive by notification).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The warm-up's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct WarmupArgs {
    /// Rank the first page of users expected back soon ahead of their return (see
    /// feed-server/README.md, "Predictive warm-up"). Off by default: it spends CPU (up to
    /// `--predictive-warmup-budget-ms` of every second) for hit ratio.
    #[arg(long, env = "FEED_PREDICTIVE_WARMUP", default_value_t = false, action = clap::ArgAction::Set)]
    pub predictive_warmup: bool,
    /// Most milliseconds of every second the warm-up spends ranking, summed over its concurrent
    /// rankings (wall time, which bounds their CPU: 250 with one at a time = a quarter of a core).
    #[arg(long, env = "FEED_PREDICTIVE_WARMUP_BUDGET_MS", default_value_t = 250)]
    pub predictive_warmup_budget_ms: u64,
    /// Warm-up rankings at once, each with an equal share of the budget (a ranking mostly waits
    /// for the store, so a few at once rank more per second for the same CPU).
    #[arg(long, env = "FEED_PREDICTIVE_WARMUP_CONCURRENCY", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub predictive_warmup_concurrency: usize,
    /// A user's session is over after this long without a first page or event (ms); nothing is
    /// ranked for them before.
    #[arg(
        long,
        env = "FEED_PREDICTIVE_WARMUP_QUIET_MS",
        default_value_t = 30_000
    )]
    pub predictive_warmup_quiet_ms: u64,
    /// Users whose usual gap between visits is longer are not warmed (ms).
    #[arg(long, env = "FEED_PREDICTIVE_WARMUP_HORIZON_MS", default_value_t = 24 * 3_600_000)]
    pub predictive_warmup_horizon_ms: u64,
    /// The gap between visits assumed for a user seen once (ms).
    #[arg(
        long,
        env = "FEED_PREDICTIVE_WARMUP_FIRST_GAP_MS",
        default_value_t = 3_600_000
    )]
    pub predictive_warmup_first_gap_ms: u64,
    /// Most users remembered (bounds memory, ~100 bytes each).
    #[arg(
        long,
        env = "FEED_PREDICTIVE_WARMUP_MAX_USERS",
        default_value_t = 1_000_000
    )]
    pub predictive_warmup_max_users: usize,
}

impl WarmupArgs {
    /// The decision constants of the flags.
    pub fn policy(&self) -> Policy {
        Policy {
            quiet: Duration::from_millis(self.predictive_warmup_quiet_ms),
            horizon: Duration::from_millis(self.predictive_warmup_horizon_ms),
            first_gap: Duration::from_millis(self.predictive_warmup_first_gap_ms),
            ..Policy::default()
        }
    }
}

/// The `result` label of `feed_predictive_warmups_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum WarmResult {
    /// The page was ranked and cached.
    Warmed,
    /// The user was active while the page was ranked: it was dropped (ranked again later).
    Superseded,
    /// The ranking bound was full (clients first): not warmed.
    Shed,
    /// The store failed: not warmed.
    Failed,
}

/// The `state` label of `feed_predictive_warmup_users`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum UsersState {
    Tracked,
    Planned,
}

struct WarmupMetrics {
    warmups: IntCounterVec,
    seconds: Counter,
    users: IntGaugeVec,
    /// `users{state="tracked"}` and `users{state="planned"}`, resolved once: set on every change
    /// of the book, so the gauge is current even while the workers pause.
    tracked: IntGauge,
    planned: IntGauge,
}

impl WarmupMetrics {
    fn new() -> Result<Self, MetricsError> {
        let users = IntGaugeVec::new(
            Opts::new(
                ops::PREDICTIVE_WARMUP_USERS,
                "Users the predictive warm-up remembers (tracked) and plans to warm (planned)",
            ),
            &["state"],
        )?;
        let gauge = |state: UsersState| users.with_label_values(&[<&str>::from(state)]);
        Ok(Self {
            tracked: gauge(UsersState::Tracked),
            planned: gauge(UsersState::Planned),
            warmups: IntCounterVec::new(
                Opts::new(
                    ops::PREDICTIVE_WARMUPS,
                    "Predictive warm-up rankings by result (warmed, superseded, shed, failed)",
                ),
                &["result"],
            )?,
            seconds: Counter::new(
                ops::PREDICTIVE_WARMUP_SECONDS,
                "Seconds the predictive warm-up spent ranking (wall time; bounds its CPU)",
            )?,
            users,
        })
    }

    /// Publishes the book's sizes (called under its lock, after each change).
    fn publish(&self, book: &Book) {
        self.tracked
            .set(i64::try_from(book.users.len()).unwrap_or(i64::MAX));
        self.planned
            .set(i64::try_from(book.plan.len()).unwrap_or(i64::MAX));
    }

    fn register(&self, metrics: &Metrics) -> Result<(), MetricsError> {
        metrics.register(self.warmups.clone())?;
        metrics.register(self.seconds.clone())?;
        metrics.register(self.users.clone())
    }
}

/// A remembered user and their place in the plan, if any.
struct Tracked {
    activity: Activity,
    planned: Option<(i64, u64)>,
}

#[derive(Default)]
struct Book {
    users: HashMap<String, Tracked>,
    /// (when, tie-breaker) → user, soonest first; one entry per planned user.
    plan: BTreeMap<(i64, u64), String>,
    seq: u64,
    /// When [`Book::forget_idle`] last swept (unix ms).
    swept_ms: i64,
}

impl Book {
    /// Re-plans `user` at `now_ms` after a change of their activity. Returns whether the plan's
    /// first warm-up is now sooner than before (a sleeping worker must look again; otherwise its
    /// wake-up time still holds: at worst it wakes for nothing).
    fn replan(&mut self, user: &str, now_ms: i64, policy: &Policy) -> bool {
        let first = |plan: &BTreeMap<(i64, u64), String>| plan.first_key_value().map(|(k, _)| k.0);
        let before = first(&self.plan);
        let Some(t) = self.users.get_mut(user) else {
            return false;
        };
        if let Some(key) = t.planned.take() {
            self.plan.remove(&key);
        }
        if let Plan::WarmAt(at) = t.activity.plan(now_ms, policy) {
            self.seq += 1;
            let key = (at, self.seq);
            t.planned = Some(key);
            self.plan.insert(key, user.to_owned());
        }
        match (first(&self.plan), before) {
            (Some(now), Some(before)) => now < before,
            (now, before) => now.is_some() && before.is_none(),
        }
    }

    /// When the book is full, forgets the users with nothing planned (lapsed, not soon, or fresh
    /// until their return) — at most once per [`IDLE_POLL`], and by the workers, never in a
    /// request: until then new users are not tracked.
    fn forget_idle(&mut self, max_users: usize, now_ms: i64) {
        if self.users.len() >= max_users && now_ms - self.swept_ms >= ms(IDLE_POLL) {
            self.users.retain(|_, t| t.planned.is_some());
            self.swept_ms = now_ms;
        }
    }
}

/// The predictive warm-up: what the request path records and the task that ranks ahead.
pub struct Warmup {
    enabled: bool,
    policy: Policy,
    /// Ranking time per second of each of the `concurrency` workers.
    budget: Duration,
    concurrency: usize,
    max_users: usize,
    book: Mutex<Book>,
    wake: Notify,
    /// Registered when built from the flags; `None` in [`Warmup::disabled`].
    metrics: Option<WarmupMetrics>,
}

impl Warmup {
    /// The warm-up of the flags, its metrics registered in `metrics`.
    pub fn new(args: &WarmupArgs, metrics: &Metrics) -> Result<Self, MetricsError> {
        let m = WarmupMetrics::new()?;
        m.register(metrics)?;
        Ok(Self {
            enabled: args.predictive_warmup,
            policy: args.policy(),
            budget: Duration::from_millis(args.predictive_warmup_budget_ms)
                / u32::try_from(args.predictive_warmup_concurrency.max(1)).unwrap_or(1),
            concurrency: args.predictive_warmup_concurrency.max(1),
            max_users: args.predictive_warmup_max_users,
            book: Mutex::new(Book::default()),
            wake: Notify::new(),
            metrics: Some(m),
        })
    }

    /// A warm-up that records nothing and never ranks (metrics unregistered).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            policy: Policy::default(),
            budget: Duration::ZERO,
            concurrency: 0,
            max_users: 0,
            book: Mutex::new(Book::default()),
            wake: Notify::new(),
            metrics: None,
        }
    }

    /// Whether it records and ranks (`--predictive-warmup`).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// `user` was served the first `items` items of `snapshot` at `now_ms`.
    pub fn served(&self, user: &str, snapshot: &Snapshot, items: usize, now_ms: i64) {
        let ttl_ms = snapshot
            .page_ttls
            .for_items(items)
            .map_or(ms(self.policy.page_ttl), |secs| i64::from(secs) * 1000);
        let ranked = snapshot.ranked_at_ms;
        self.visit(user, now_ms, ranked, ranked.saturating_add(ttl_ms));
    }

    /// `user` was served a first page at `now_ms`, ranked at `ranked_at_ms` and fresh until
    /// `fresh_until_ms`.
    pub fn visit(&self, user: &str, now_ms: i64, ranked_at_ms: i64, fresh_until_ms: i64) {
        if !self.enabled {
            return;
        }
        let mut book = self.book.lock();
        match book.users.get_mut(user) {
            Some(t) => t
                .activity
                .visit(now_ms, fresh_until_ms, ranked_at_ms, &self.policy),
            None => {
                if book.users.len() >= self.max_users {
                    return;
                }
                let activity = Activity::first_visit(now_ms, fresh_until_ms, ranked_at_ms);
                book.users.insert(
                    user.to_owned(),
                    Tracked {
                        activity,
                        planned: None,
                    },
                );
            }
        }
        let sooner = book.replan(user, now_ms, &self.policy);
        self.publish(&book);
        drop(book);
        if sooner {
            self.wake.notify_one();
        }
    }

    /// `users`' own events were accepted at `now_ms`: their cached first pages were dropped.
    /// Users this replica never served are ignored.
    pub fn changed<'a>(&self, users: impl IntoIterator<Item = &'a String>, now_ms: i64) {
        if !self.enabled {
            return;
        }
        let mut book = self.book.lock();
        let mut sooner = false;
        for user in users {
            if let Some(t) = book.users.get_mut(user.as_str()) {
                t.activity.change(now_ms);
                sooner |= book.replan(user, now_ms, &self.policy);
            }
        }
        self.publish(&book);
        drop(book);
        if sooner {
            self.wake.notify_one();
        }
    }

    /// The next user whose time has come at `now_ms` (taken off the plan), or how long until one
    /// (at most [`IDLE_POLL`]).
    fn next_due(&self, now_ms: i64, metrics: &WarmupMetrics) -> Result<String, Duration> {
        let mut book = self.book.lock();
        book.forget_idle(self.max_users, now_ms);
        let next = match book.plan.first_entry() {
            None => Err(IDLE_POLL),
            Some(e) if e.key().0 > now_ms => {
                let wait = u64::try_from(e.key().0 - now_ms).unwrap_or(0);
                Err(Duration::from_millis(wait).min(IDLE_POLL))
            }
            Some(e) => Ok(e.remove()),
        };
        if let Ok(user) = &next
            && let Some(t) = book.users.get_mut(user)
        {
            t.planned = None;
        }
        metrics.publish(&book);
        next
    }

    /// A user's first page, ranked ahead from `started_ms`, was cached at `now_ms`, fresh for
    /// `page_ttl_ms`: they are re-planned from it (normally: nothing until they come back or
    /// send events). Returns false when the user was active while it was ranked (their events
    /// may have been read too late): the page must then be dropped, and the user stays planned.
    /// A warm-up that was shed or failed is not retried until the user's next activity.
    fn warmed(&self, user: &str, started_ms: i64, now_ms: i64, page_ttl_ms: i64) -> bool {
        let mut book = self.book.lock();
        let current = match book.users.get_mut(user) {
            Some(t) if t.activity.last_activity_ms < started_ms => {
                t.activity.warmed(now_ms, page_ttl_ms);
                true
            }
            _ => false,
        };
        book.replan(user, now_ms, &self.policy);
        self.publish(&book);
        current
    }

    /// Publishes the book's sizes to `feed_predictive_warmup_users` (under the book's lock).
    fn publish(&self, book: &Book) {
        if let Some(m) = &self.metrics {
            m.publish(book);
        }
    }

    /// Ranks ahead until `stop` with `--predictive-warmup-concurrency` workers: the background
    /// task started by the server when enabled.
    pub async fn run(state: std::sync::Arc<AppState>, stop: CancellationToken) {
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..state.warmup.concurrency {
            workers.spawn(Self::work(state.clone(), stop.clone()));
        }
        while workers.join_next().await.is_some() {}
    }

    /// One worker: the next due user, a ranking, the pause that keeps it within its budget.
    async fn work(state: std::sync::Arc<AppState>, stop: CancellationToken) {
        let warmup = &state.warmup;
        let (true, Some(metrics)) = (warmup.enabled, &warmup.metrics) else {
            return;
        };
        loop {
            let user = match warmup.next_due(state.clock.now().millis(), metrics) {
                Ok(user) => user,
                Err(wait) => {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = warmup.wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            let started = Instant::now();
            let started_ms = state.clock.now().millis();
            let ranked = tokio::select! {
                _ = stop.cancelled() => return,
                r = feed::rank_ahead(&state, &user) => r,
            };
            let spent = started.elapsed();
            metrics.seconds.inc_by(spent.as_secs_f64());
            let result = match ranked {
                Ok(s) => {
                    let ttl_ms = s
                        .page_ttls
                        .for_items(DEFAULT_LIMIT)
                        .map_or(ms(warmup.policy.page_ttl), |secs| i64::from(secs) * 1000);
                    let now_ms = state.clock.now().millis();
                    if warmup.warmed(&user, started_ms, now_ms, ttl_ms) {
                        WarmResult::Warmed
                    } else {
                        // The user's events arrived while it ranked: the in-process page is
                        // dropped (the store tier serves it only if it was ranked at the
                        // user's version, after those events).
                        state.cache.invalidate_users([&user]);
                        WarmResult::Superseded
                    }
                }
                Err(FeedError::Overloaded(_)) => WarmResult::Shed,
                Err(FeedError::Store(e)) => {
                    tracing::debug!(error = %e, "predictive warm-up: ranking failed");
                    WarmResult::Failed
                }
            };
            metrics
                .warmups
                .with_label_values(&[<&str>::from(result)])
                .inc();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(plan::pause_after(spent, warmup.budget)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        warmup: WarmupArgs,
    }

    const T0: i64 = 1_700_000_000_000;

    fn warmup(flags: &[&str]) -> Result<(Warmup, Metrics), Box<dyn std::error::Error>> {
        // On unless the test says otherwise.
        let said = flags.iter().any(|f| f.starts_with("--predictive-warmup="));
        let on = (!said).then_some("--predictive-warmup=true");
        let argv = std::iter::once("feed-server")
            .chain(on)
            .chain(flags.iter().copied());
        let args = Flags::try_parse_from(argv)?;
        let metrics = Metrics::new("r", "stable")?;
        Ok((Warmup::new(&args.warmup, &metrics)?, metrics))
    }

    fn served(w: &Warmup, user: &str, now_ms: i64) {
        w.visit(user, now_ms, now_ms, now_ms + 120_000);
    }

    #[tokio::test]
    async fn a_worker_is_woken_only_when_the_first_warm_up_comes_sooner()
    -> Result<(), Box<dyn std::error::Error>> {
        let (w, _metrics) = warmup(&[
            "--predictive-warmup-quiet-ms=100",
            "--predictive-warmup-first-gap-ms=1000",
        ])?;
        // A wake-up left for the worker is taken at once; none, and the wait times out.
        let woken = || async {
            tokio::time::timeout(Duration::ZERO, w.wake.notified())
                .await
                .is_ok()
        };
        // Served a fresh page: nothing planned, no worker woken (a cached page per request).
        served(&w, "u", T0);
        assert!(!woken().await, "nothing planned");
        // Their events drop it: planned at T0 + 110, the first of an empty plan.
        w.changed([&"u".to_owned()], T0 + 10);
        assert!(woken().await, "the first warm-up");
        // Another user planned later than the first: the worker's wake-up time still holds.
        served(&w, "v", T0 + 20);
        w.changed([&"v".to_owned()], T0 + 30);
        assert!(!woken().await, "later than the first");
        // The first moves later (v's, at T0 + 130, is now first): the worker may wake for
        // nothing at T0 + 110, never too late.
        w.changed([&"u".to_owned()], T0 + 40);
        assert!(!woken().await, "the first moved later");
        Ok(())
    }

    #[test]
    fn a_user_active_while_ranked_stays_planned_and_the_page_is_not_kept()
    -> Result<(), Box<dyn std::error::Error>> {
        // Expected back a second after a first visit: warmed as soon as the session is over.
        let (w, metrics) = warmup(&[
            "--predictive-warmup-quiet-ms=100",
            "--predictive-warmup-first-gap-ms=1000",
        ])?;
        let m = w.metrics.as_ref().ok_or("metrics")?;
        served(&w, "u", T0);
        w.changed([&"u".to_owned()], T0 + 10);
        assert_eq!(w.next_due(T0 + 50, m), Err(Duration::from_millis(60)));
        assert_eq!(w.next_due(T0 + 110, m), Ok("u".to_owned()));
        // Events arrive while the page is ranked (from T0 + 110 to T0 + 130).
        w.changed([&"u".to_owned()], T0 + 120);
        assert!(!w.warmed("u", T0 + 110, T0 + 130, 120_000));
        assert_eq!(w.next_due(T0 + 220, m), Ok("u".to_owned()));
        // Ranked in quiet: kept, and nothing more is planned.
        assert!(w.warmed("u", T0 + 220, T0 + 240, 120_000));
        assert_eq!(w.next_due(T0 + 10_000, m), Err(IDLE_POLL));
        let text = metrics.render();
        assert!(text.contains("feed_predictive_warmup_users{"), "{text}");
        Ok(())
    }

    #[test]
    fn users_never_served_and_a_disabled_warm_up_record_nothing()
    -> Result<(), Box<dyn std::error::Error>> {
        let (w, _metrics) = warmup(&[])?;
        let m = w.metrics.as_ref().ok_or("metrics")?;
        w.changed([&"stranger".to_owned()], T0);
        assert_eq!(w.next_due(T0 + 3_600_000, m), Err(IDLE_POLL));
        assert_eq!(w.book.lock().users.len(), 0);

        let (off, _metrics) = warmup(&["--predictive-warmup=false"])?;
        served(&off, "u", T0);
        off.changed([&"u".to_owned()], T0 + 1);
        assert!(!off.is_enabled());
        assert_eq!(off.book.lock().users.len(), 0);
        Ok(())
    }

    #[test]
    fn a_full_book_forgets_users_with_nothing_planned_first()
    -> Result<(), Box<dyn std::error::Error>> {
        let (w, _metrics) = warmup(&["--predictive-warmup-max-users=2"])?;
        let m = w.metrics.as_ref().ok_or("metrics")?;
        served(&w, "a", T0);
        served(&w, "b", T0);
        w.changed([&"b".to_owned()], T0 + 1);
        served(&w, "c", T0 + 2);
        assert_eq!(w.book.lock().users.len(), 2, "full: not tracked");
        // A worker's sweep forgets "a" (seen once, no events: nothing planned); "c" now fits.
        let _ = w.next_due(T0 + 3, m);
        served(&w, "c", T0 + 4);
        let book = w.book.lock();
        let mut users: Vec<&String> = book.users.keys().collect();
        users.sort();
        assert_eq!(users, ["b", "c"]);
        Ok(())
    }
}
