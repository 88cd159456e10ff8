//! Where the shared state a ranking reads came from: the replica's memory or Redis
//! (`feed_ranking_state_reads_total{state, from}`).
//!
//! Per candidate a ranking reads its catalog entry and its counters; per source, a list (a
//! followed creator's uploads, a trending list, a friend's recent engagements, …). A replica on
//! Redis keeps each of these in process while it can trust them — the catalog cache, the kept
//! counters and catalog lists (while the counter change feed is followed), the shared lists
//! (within `--shared-cache-ms`), friends' lists (while it hears the other replicas' writes) —
//! and reads the rest from Redis in the ranking's round trips (feed-server/README.md,
//! *Replicas: what they agree on*). Counting each item by where it came from tells an operator
//! whether that works: a Redis share that rises and stays up (a counter feed not followed, a
//! peer listener down, a catalog larger than the caches) is Redis load and latency the replica
//! could save, and says which of them to look at.
//!
//! Counted once per store call that succeeded (at most two counter adds per state), never per
//! item: a ranking of 600 candidates costs at most ten atomic adds.

use feed_metrics::ops;
use prometheus::{IntCounter, IntCounterVec, Opts};

/// What a ranking reads that a replica may hold in memory (the `state` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum RankingState {
    /// A candidate's catalog entry.
    CatalogEntry = 0,
    /// A candidate's counters (views, likes, completion, …).
    VideoCounters = 1,
    /// A list only catalog writes change: a creator's uploads, the newest uploads in a
    /// language, a tag's videos.
    CatalogList = 2,
    /// A list events move: trending, the long tail.
    SharedList = 3,
    /// A friend's recent engagements.
    FriendList = 4,
}

/// Where an item came from (the `from` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum ReadFrom {
    /// The replica's memory: no Redis work.
    Memory = 0,
    /// Redis, in the ranking's round trip.
    Redis = 1,
}

const STATES: usize = <RankingState as strum::VariantArray>::VARIANTS.len();
const FROM: usize = <ReadFrom as strum::VariantArray>::VARIANTS.len();

// The series are indexed by discriminant: each variant's must be its place in `VARIANTS`.
const _: () = {
    let states = <RankingState as strum::VariantArray>::VARIANTS;
    let mut i = 0;
    while i < states.len() {
        assert!(states[i] as usize == i);
        i += 1;
    }
    let from = <ReadFrom as strum::VariantArray>::VARIANTS;
    let mut i = 0;
    while i < from.len() {
        assert!(from[i] as usize == i);
        i += 1;
    }
};

/// One store call's items by state and origin, recorded at once ([`StateReads::record`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally([[usize; FROM]; STATES]);

impl Tally {
    /// Adds `n` items of `state` that came `from` there.
    pub(crate) fn add(&mut self, state: RankingState, from: ReadFrom, n: usize) {
        self.0[state as usize][from as usize] += n;
    }

    /// Adds the `total` items of `state` of which `from_redis` were read from Redis.
    pub(crate) fn split(&mut self, state: RankingState, total: usize, from_redis: usize) {
        self.add(state, ReadFrom::Memory, total.saturating_sub(from_redis));
        self.add(state, ReadFrom::Redis, from_redis);
    }
}

/// `feed_ranking_state_reads_total{state, from}`, every series resolved once.
#[derive(Clone, Debug)]
pub struct StateReads {
    series: [[IntCounter; FROM]; STATES],
}

impl StateReads {
    fn new() -> Result<(Self, IntCounterVec), prometheus::Error> {
        let vec = IntCounterVec::new(
            Opts::new(
                ops::RANKING_STATE_READS,
                "Items of shared state rankings read (catalog entries, counters, source lists), by where each came from: the replica's memory or Redis",
            ),
            &["state", "from"],
        )?;
        let series = std::array::from_fn(|state| {
            let state: &'static str = <RankingState as strum::VariantArray>::VARIANTS[state].into();
            std::array::from_fn(|from| {
                let from: &'static str = <ReadFrom as strum::VariantArray>::VARIANTS[from].into();
                vec.with_label_values(&[state, from])
            })
        });
        Ok((Self { series }, vec))
    }

    /// Creates the series (each at 0, so a dashboard sees them before the first ranking);
    /// `register` adds them to the server's registry (the metrics layer sits above the store).
    pub fn register<E>(
        register: impl FnOnce(Box<dyn prometheus::core::Collector>) -> Result<(), E>,
    ) -> Result<Self, E>
    where
        E: From<prometheus::Error>,
    {
        let (reads, vec) = Self::new()?;
        register(Box::new(vec))?;
        Ok(reads)
    }

    /// Series no registry exposes (stores built outside the server).
    pub fn unregistered() -> Self {
        let Ok((reads, _)) = Self::new() else {
            unreachable!("a valid metric name, help and labels")
        };
        reads
    }

    /// Adds one store call's items ([`Tally`]).
    pub(crate) fn record(&self, tally: &Tally) {
        for (series, counts) in self.series.iter().zip(&tally.0) {
            for (counter, &n) in series.iter().zip(counts) {
                if n > 0 {
                    counter.inc_by(n as u64);
                }
            }
        }
    }

    /// The count of one series.
    #[cfg(test)]
    fn get(&self, state: RankingState, from: ReadFrom) -> u64 {
        self.series[state as usize][from as usize].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    #[test]
    fn each_series_counts_its_own_state_and_origin() {
        let reads = StateReads::unregistered();
        let mut first = Tally::default();
        first.split(RankingState::VideoCounters, 600, 10);
        first.add(RankingState::FriendList, ReadFrom::Redis, 3);
        reads.record(&first);
        let mut second = Tally::default();
        second.add(RankingState::VideoCounters, ReadFrom::Memory, 5);
        reads.record(&second);
        for &state in RankingState::VARIANTS {
            for &from in ReadFrom::VARIANTS {
                let want = match (state, from) {
                    (RankingState::VideoCounters, ReadFrom::Memory) => 595,
                    (RankingState::VideoCounters, ReadFrom::Redis) => 10,
                    (RankingState::FriendList, ReadFrom::Redis) => 3,
                    _ => 0,
                };
                assert_eq!(reads.get(state, from), want, "{state:?} from {from:?}");
            }
        }
    }

    #[test]
    fn every_series_is_exposed_from_the_start_with_its_labels() {
        let registry = prometheus::Registry::new();
        StateReads::register(|c| registry.register(c)).expect("registers");
        let families = registry.gather();
        let [family] = families.as_slice() else {
            panic!("one family, got {}", families.len());
        };
        assert_eq!(family.name(), ops::RANKING_STATE_READS);
        let mut series: Vec<(String, String)> = family
            .get_metric()
            .iter()
            .map(|m| {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_owned())
                        .unwrap_or_default()
                };
                (label("state"), label("from"))
            })
            .collect();
        series.sort();
        let mut want: Vec<(String, String)> = RankingState::VARIANTS
            .iter()
            .flat_map(|&s| {
                ReadFrom::VARIANTS
                    .iter()
                    .map(move |&f| (<&str>::from(s).to_owned(), <&str>::from(f).to_owned()))
            })
            .collect();
        want.sort();
        assert_eq!(series, want);
        assert!(series.contains(&("catalog_entry".into(), "memory".into())));
    }
}
