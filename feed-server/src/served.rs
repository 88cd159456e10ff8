//! Content health of served pages (issue 17's guardrails): what each page of `GET /v1/feed`
//! shows — how many items, how many of them long-tail, how many distinct creators, how old —
//! per variant, so that a canary profile that buys completion by collapsing diversity or
//! freshness is visible next to stable.
//!
//! The per-item facts are computed once, when a list is ranked, and kept in the cached snapshot
//! ([`ItemFacts`]); serving a page (cached or not) then costs one short loop over the page's
//! items and a few adds to the serving thread's own cells of its variant ([`ServedMetrics`]),
//! summed when Prometheus scrapes.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use feed_metrics::contract;
use foldhash::{HashMap as FastMap, HashMapExt};
use prometheus::Registry;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily};
use serde::{Deserialize, Serialize};
use thread_local::ThreadLocal;

/// Upper bounds of the buckets of `feed_served_item_age_seconds`, in seconds: 5 minutes to 30
/// days.
const AGE_BUCKETS: [i64; 12] = [
    300,       // 5 min
    900,       // 15 min
    3_600,     // 1 h
    10_800,    // 3 h
    21_600,    // 6 h
    43_200,    // 12 h
    86_400,    // 1 day
    172_800,   // 2 days
    345_600,   // 4 days
    604_800,   // 1 week
    1_209_600, // 2 weeks
    2_592_000, // 30 days
];

/// [`AGE_BUCKETS`] as 32-bit lanes: four compares per vector instruction even on baseline x86-64.
const AGE_BUCKETS_I32: [i32; 12] = {
    let mut lanes = [0; 12];
    let mut i = 0;
    while i < lanes.len() {
        assert!(
            AGE_BUCKETS[i] <= i32::MAX as i64,
            "an age bound beyond a 32-bit lane"
        );
        lanes[i] = AGE_BUCKETS[i] as i32;
        i += 1;
    }
    lanes
};

/// What the content-health metrics need to know about one ranked item, beyond its creator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFacts {
    /// When the video was published (unix ms).
    pub published_at_ms: i64,
    /// Nominated by the long-tail candidate source (the least-shown videos): the definition the
    /// diversity stage uses for its long-tail slots.
    pub long_tail: bool,
    /// Position of the previous item of the same creator in the ranked list, if any: a page
    /// `[start, end)` shows a new creator at each item whose previous one is before `start`.
    /// Left out of the JSON form when there is none (each creator's first item; a reader
    /// without the field reads `None`, as every version's derived reader does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_of_creator: Option<u32>,
}

/// Facts of a ranked list from each item's `(creator, published_at_ms, long_tail)`, best first;
/// `creator` is anything that is equal exactly when the creators are (an id, or its catalog
/// term, which hashes as one integer).
pub fn facts_of<C: Eq + Hash>(
    items: impl ExactSizeIterator<Item = (C, i64, bool)>,
) -> Vec<ItemFacts> {
    let mut last_of: FastMap<C, u32> = FastMap::with_capacity(items.len());
    items
        .enumerate()
        .map(|(position, (creator, published_at_ms, long_tail))| {
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            ItemFacts {
                published_at_ms,
                long_tail,
                previous_of_creator: last_of.insert(creator, position),
            }
        })
        .collect()
}

/// Counts of one served page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Items on the page.
    pub items: u64,
    /// Long-tail items among them.
    pub long_tail: u64,
    /// Distinct creators on the page.
    pub creators: u64,
}

/// `facts[start..start + len]`, cut at the list's end (empty beyond it).
fn page_of(facts: &[ItemFacts], start: usize, len: usize) -> &[ItemFacts] {
    let end = start.saturating_add(len).min(facts.len());
    facts.get(start..end).unwrap_or_default()
}

/// The counts of the page `facts[start..start + len]` of a ranked list (pure, no allocation).
pub fn page_counts(facts: &[ItemFacts], start: usize, len: usize) -> PageCounts {
    let page = page_of(facts, start, len);
    let mut counts = PageCounts {
        items: page.len() as u64,
        ..PageCounts::default()
    };
    for f in page {
        counts.long_tail += u64::from(f.long_tail);
        let first_on_page = f.previous_of_creator.is_none_or(|p| (p as usize) < start);
        counts.creators += u64::from(first_on_page);
    }
    counts
}

/// The content-health series, each with `variant` (and the registry's `rollout` and `track`).
///
/// One collector ([`prometheus::core::Collector`]) for the five families rather than five
/// prometheus vectors: a page served adds its counts to its thread's own cells of its variant
/// (one map lookup of the variant, no lock, no locked instruction, no cache line shared with the
/// other worker threads), and a scrape sums every thread's cells. On cached pages the vectors'
/// way — a label lookup, four
/// shared counters and a histogram flushed per page, and per item a division and a search of
/// its bucket — was 6% of feed-server's CPU, this way 2% (BENCHMARKS.md, "Cached pages:
/// content-health counts in per-thread cells").
pub struct ServedMetrics {
    descs: [Desc; 5],
    /// Each variant's cells, created on its first page or by [`Self::init_variant`]; replaced
    /// whole when a variant is added (rare: variants come from the experiment configuration).
    variants: ArcSwap<FastMap<Box<str>, Arc<VariantCells>>>,
}

/// The families, in the order of [`ServedMetrics::descs`].
const FAMILIES: [(&str, &str); 5] = [
    (
        contract::SERVED_ITEMS,
        "Items on the feed pages served (cached or not), by variant",
    ),
    (
        contract::SERVED_LONG_TAIL_ITEMS,
        "Served feed items nominated by the long-tail source (least-shown videos), by variant",
    ),
    (
        contract::SERVED_PAGES,
        "Feed pages served (cached or not), by variant",
    ),
    (
        contract::SERVED_PAGE_CREATORS,
        "Sum over served feed pages of the distinct creators on the page, by variant",
    ),
    (
        contract::SERVED_ITEM_AGE,
        "Age of each served feed item (since its published_at) when served, by variant",
    ),
];

/// The items' ages of one page, gathered before they reach a thread's cells.
#[derive(Debug, Default, PartialEq)]
struct PageAges {
    /// Items per bucket of [`AGE_BUCKETS`], not cumulative; the last one is `+Inf`.
    buckets: [u64; AGE_BUCKETS.len() + 1],
    /// Sum of the ages, in seconds.
    sum: f64,
}

impl PageAges {
    /// The ages of `page`'s items at unix ms `now_ms` (an item published later counts as age 0).
    /// In whole seconds rounded up, each item compared with every bound at once (the compiler's
    /// vector compares): a search per item mispredicts on random ages, and that search and a
    /// division per item were most of a cached page's counting.
    fn of(page: &[ItemFacts], now_ms: i64) -> Self {
        // Items whose age is within each bound (cumulative, as Prometheus reports them).
        let mut within = [0u32; AGE_BUCKETS_I32.len()];
        let mut sum_ms: i64 = 0;
        for f in page {
            let age_ms = now_ms.saturating_sub(f.published_at_ms).max(0);
            // Within a bound of whole seconds exactly when the age rounded up to seconds is;
            // beyond 68 years every age is in `+Inf` alike.
            let age_s = i32::try_from(age_ms.saturating_add(999) / 1000).unwrap_or(i32::MAX);
            for (count, bound) in within.iter_mut().zip(AGE_BUCKETS_I32) {
                *count += u32::from(age_s <= bound);
            }
            sum_ms = sum_ms.saturating_add(age_ms);
        }
        let mut ages = Self {
            sum: sum_ms as f64 / 1000.0,
            ..Self::default()
        };
        let mut below = 0;
        for (bucket, within) in ages.buckets.iter_mut().zip(within.map(u64::from)) {
            *bucket = within - below;
            below = within;
        }
        if let Some(inf) = ages.buckets.last_mut() {
            *inf = page.len() as u64 - below;
        }
        ages
    }
}

/// One variant's counts, one set of cells per thread that served a page of it.
#[derive(Default)]
struct VariantCells {
    threads: ThreadLocal<Cells>,
}

/// One thread's counts of one variant. Only its thread writes them (a plain load and store),
/// a scrape reads them; aligned so that two threads' cells share no cache line.
#[derive(Default)]
#[repr(align(128))]
struct Cells {
    items: AtomicU64,
    long_tail: AtomicU64,
    pages: AtomicU64,
    page_creators: AtomicU64,
    age_buckets: [AtomicU64; AGE_BUCKETS.len() + 1],
    /// `f64` bits of the sum of the ages in seconds.
    age_sum: AtomicU64,
}

/// Adds `n` to a cell only the calling thread writes.
fn bump(cell: &AtomicU64, n: u64) {
    cell.store(
        cell.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The totals of one variant over every thread's cells, at a scrape.
#[derive(Debug, Default, PartialEq)]
struct Totals {
    counts: PageCounts,
    pages: u64,
    ages: PageAges,
}

impl VariantCells {
    /// Adds one page to the calling thread's cells.
    fn add(&self, counts: &PageCounts, ages: &PageAges) {
        let cells = self.threads.get_or_default();
        bump(&cells.pages, 1);
        bump(&cells.items, counts.items);
        bump(&cells.long_tail, counts.long_tail);
        bump(&cells.page_creators, counts.creators);
        for (cell, n) in cells.age_buckets.iter().zip(ages.buckets) {
            bump(cell, n);
        }
        if ages.sum > 0.0 {
            let sum = f64::from_bits(cells.age_sum.load(Ordering::Relaxed)) + ages.sum;
            cells.age_sum.store(sum.to_bits(), Ordering::Relaxed);
        }
    }

    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for cells in self.threads.iter() {
            let read = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
            t.pages += read(&cells.pages);
            t.counts.items += read(&cells.items);
            t.counts.long_tail += read(&cells.long_tail);
            t.counts.creators += read(&cells.page_creators);
            for (total, cell) in t.ages.buckets.iter_mut().zip(&cells.age_buckets) {
                *total += read(cell);
            }
            t.ages.sum += f64::from_bits(read(&cells.age_sum));
        }
        t
    }
}

impl ServedMetrics {
    /// Creates the series and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Arc<Self>, prometheus::Error> {
        let desc = |(name, help): (&str, &str)| {
            Desc::new(
                name.to_owned(),
                help.to_owned(),
                vec!["variant".to_owned()],
                HashMap::new(),
            )
        };
        let [items, long_tail, pages, creators, age] = FAMILIES.map(desc);
        let served = Arc::new(Self {
            descs: [items?, long_tail?, pages?, creators?, age?],
            variants: ArcSwap::default(),
        });
        registry.register(Box::new(Collected(served.clone())))?;
        Ok(served)
    }

    /// `variant`'s cells, created on first use.
    fn cells(&self, variant: &str) -> Arc<VariantCells> {
        if let Some(cells) = self.variants.load().get(variant) {
            return cells.clone();
        }
        self.variants.rcu(|variants| {
            let mut variants = FastMap::clone(variants);
            variants.entry(variant.into()).or_default();
            variants
        });
        // Variants are never removed, so the map holds it now; the default is never taken.
        self.variants
            .load()
            .get(variant)
            .cloned()
            .unwrap_or_default()
    }

    /// Counts a served page of `variant`: `facts[start..start + len]` of its ranked list, served
    /// at unix ms `now_ms`.
    pub fn page(&self, variant: &str, facts: &[ItemFacts], start: usize, len: usize, now_ms: i64) {
        let counts = page_counts(facts, start, len);
        let ages = PageAges::of(page_of(facts, start, len), now_ms);
        // Read under the map's guard: no reference count of a shared `Arc` moves per page.
        if let Some(cells) = self.variants.load().get(variant) {
            cells.add(&counts, &ages);
            return;
        }
        self.cells(variant).add(&counts, &ages);
    }

    /// Creates `variant`'s series at zero, so that rates exist before its first page.
    pub fn init_variant(&self, variant: &str) {
        self.cells(variant);
    }

    /// The five families, a metric per variant each.
    fn families(&self) -> Vec<MetricFamily> {
        let variants = self.variants.load();
        let mut by_variant: Vec<(&str, Totals)> = variants
            .iter()
            .map(|(name, cells)| (&**name, cells.totals()))
            .collect();
        by_variant.sort_by(|a, b| a.0.cmp(b.0));
        let counter = |desc: &Desc, value: fn(&Totals) -> u64| {
            let metrics = by_variant
                .iter()
                .map(|(variant, totals)| {
                    let mut c = proto::Counter::default();
                    c.set_value(value(totals) as f64);
                    let mut m = proto::Metric::from_label(vec![variant_label(variant)]);
                    m.set_counter(c);
                    m
                })
                .collect();
            family(desc, proto::MetricType::COUNTER, metrics)
        };
        let [items, long_tail, pages, creators, age] = &self.descs;
        let ages = by_variant
            .iter()
            .map(|(variant, totals)| {
                let mut m = proto::Metric::from_label(vec![variant_label(variant)]);
                m.set_histogram(histogram(&totals.ages));
                m
            })
            .collect();
        vec![
            counter(items, |t| t.counts.items),
            counter(long_tail, |t| t.counts.long_tail),
            counter(pages, |t| t.pages),
            counter(creators, |t| t.counts.creators),
            family(age, proto::MetricType::HISTOGRAM, ages),
        ]
    }
}

/// The `variant` label of a metric.
fn variant_label(variant: &str) -> proto::LabelPair {
    let mut label = proto::LabelPair::default();
    label.set_name("variant".to_owned());
    label.set_value(variant.to_owned());
    label
}

fn family(desc: &Desc, kind: proto::MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(desc.fq_name.clone());
    f.set_help(desc.help.clone());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

/// A histogram of `ages`: its count is the sum of its buckets, so a scrape that races a page
/// still reads buckets and count that agree.
fn histogram(ages: &PageAges) -> proto::Histogram {
    let mut h = proto::Histogram::default();
    let mut cumulative = 0;
    let buckets = AGE_BUCKETS
        .iter()
        .zip(ages.buckets)
        .map(|(bound, n)| {
            cumulative += n;
            let mut b = proto::Bucket::default();
            b.set_upper_bound(*bound as f64);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    h.set_bucket(buckets);
    h.set_sample_count(ages.buckets.iter().sum());
    h.set_sample_sum(ages.sum);
    h
}

/// The registry's handle on [`ServedMetrics`] (the server keeps the other `Arc`).
struct Collected(Arc<ServedMetrics>);

impl Collector for Collected {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.families()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(creators: &[&str]) -> Vec<ItemFacts> {
        facts_of(
            creators
                .iter()
                .enumerate()
                .map(|(i, c)| (*c, i as i64, i % 3 == 2)),
        )
    }

    #[test]
    fn distinct_creators_are_counted_within_the_page_only() {
        let facts = list(&["a", "b", "a", "c", "b", "b", "d"]);
        // Whole list: a, b, c, d.
        assert_eq!(page_counts(&facts, 0, 7).creators, 4);
        // Items 2..5 = a, c, b: "a" and "b" appeared before the page, yet are new on it.
        assert_eq!(page_counts(&facts, 2, 3).creators, 3);
        // Items 4..6 = b, b.
        assert_eq!(page_counts(&facts, 4, 2).creators, 1);
    }

    #[test]
    fn a_page_counts_its_items_and_long_tail_items_and_stops_at_the_list_end() {
        let facts = list(&["a", "b", "c", "d", "e", "f", "g"]);
        // Long tail at positions 2 and 5.
        assert_eq!(
            page_counts(&facts, 0, 20),
            PageCounts {
                items: 7,
                long_tail: 2,
                creators: 7
            }
        );
        assert_eq!(page_counts(&facts, 3, 3).long_tail, 1);
        assert_eq!(page_counts(&facts, 7, 20), PageCounts::default());
        assert_eq!(page_counts(&facts, 100, 20), PageCounts::default());
        assert_eq!(
            page_counts(&facts, usize::MAX, usize::MAX),
            PageCounts::default()
        );
    }

    fn facts_published_at(published_at_ms: &[i64]) -> Vec<ItemFacts> {
        facts_of(published_at_ms.iter().map(|p| ("c", *p, false)))
    }

    #[test]
    fn an_age_on_a_bucket_bound_counts_in_that_bucket_as_prometheus_does() {
        let now = 100_000_000_000;
        // 5 min exactly, 5 min and 1 ms, published 1 s in the future, older than 30 days.
        let facts = facts_published_at(&[now - 300_000, now - 300_001, now + 1_000, 0]);
        let ages = PageAges::of(&facts, now);
        let mut expected = [0; AGE_BUCKETS.len() + 1];
        expected[0] = 2; // 300 s and the future item (age 0)
        expected[1] = 1; // 300.001 s: above 5 min, within 15 min
        expected[AGE_BUCKETS.len()] = 1; // +Inf
        assert_eq!(ages.buckets, expected);
        assert!((ages.sum - (300.0 + 300.001 + 0.0 + 100_000_000.0)).abs() < 1e-6);
    }

    #[test]
    fn pages_served_on_threads_at_once_and_one_after_another_all_reach_the_scrape()
    -> Result<(), prometheus::Error> {
        let registry = Registry::new();
        let served = ServedMetrics::register(&registry)?;
        let facts = list(&["a", "b", "a", "c"]);
        let (threads, pages_each) = (8u32, 1_000u32);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for _ in 0..pages_each {
                        served.page("stable", &facts, 0, 20, 10_000);
                    }
                });
            }
        });
        // Threads one after another: each new thread may take over an ended one's cells.
        for _ in 0..threads {
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    for _ in 0..pages_each {
                        served.page("stable", &facts, 0, 20, 10_000);
                    }
                });
            });
        }
        let families = registry.gather();
        let value = |name: &str| {
            families
                .iter()
                .find(|f| f.name() == name)
                .and_then(|f| f.get_metric().first())
                .map(|m| m.get_counter().get_value())
        };
        let pages = f64::from(2 * threads * pages_each);
        assert_eq!(value(contract::SERVED_PAGES), Some(pages));
        assert_eq!(value(contract::SERVED_ITEMS), Some(4.0 * pages));
        assert_eq!(value(contract::SERVED_LONG_TAIL_ITEMS), Some(pages));
        assert_eq!(value(contract::SERVED_PAGE_CREATORS), Some(3.0 * pages));
        let age = families
            .iter()
            .find(|f| f.name() == contract::SERVED_ITEM_AGE)
            .and_then(|f| f.get_metric().first())
            .map(|m| m.get_histogram().get_sample_count());
        assert_eq!(age, Some(8 * u64::from(threads * pages_each)));
        Ok(())
    }

    #[test]
    fn the_scrape_carries_the_registrys_labels_and_the_exposition_format()
    -> Result<(), prometheus::Error> {
        use prometheus::Encoder;
        let labels = [("rollout", "r1"), ("track", "canary")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        let registry = Registry::new_custom(None, Some(labels))?;
        let served = ServedMetrics::register(&registry)?;
        // Published 100 s before it is served.
        served.page("v2", &facts_published_at(&[0]), 0, 20, 100_000);
        let mut text = Vec::new();
        prometheus::TextEncoder::new().encode(&registry.gather(), &mut text)?;
        // The registry appends its labels in no fixed order: compare label sets sorted.
        let sorted = |line: &str| match (line.find('{'), line.rfind('}')) {
            (Some(open), Some(close)) if open < close => {
                let mut labels: Vec<&str> = line[open + 1..close].split(',').collect();
                labels.sort_unstable();
                format!(
                    "{}{{{}}}{}",
                    &line[..open],
                    labels.join(","),
                    &line[close + 1..]
                )
            }
            _ => line.to_owned(),
        };
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<String> = text.lines().map(sorted).collect();
        for line in [
            "# TYPE feed_served_pages_total counter",
            r#"feed_served_pages_total{rollout="r1",track="canary",variant="v2"} 1"#,
            "# TYPE feed_served_item_age_seconds histogram",
            r#"feed_served_item_age_seconds_bucket{le="300",rollout="r1",track="canary",variant="v2"} 1"#,
            r#"feed_served_item_age_seconds_bucket{le="+Inf",rollout="r1",track="canary",variant="v2"} 1"#,
            r#"feed_served_item_age_seconds_sum{rollout="r1",track="canary",variant="v2"} 100"#,
            r#"feed_served_item_age_seconds_count{rollout="r1",track="canary",variant="v2"} 1"#,
        ] {
            assert!(
                lines.iter().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        // A second registration of the same families is refused, as for any collector.
        assert!(ServedMetrics::register(&registry).is_err());
        Ok(())
    }

    #[test]
    fn served_pages_reach_their_variants_series() -> Result<(), prometheus::Error> {
        let registry = Registry::new();
        let served = ServedMetrics::register(&registry)?;
        served.init_variant("idle");
        // Published at 0, 1 and 2 s; long tail at position 2; served at 1,000 s.
        let facts = list(&["a", "b", "a"]);
        served.page("canary", &facts, 0, 20, 1_000_000);
        served.page("canary", &facts, 1, 1, 1_000_000);
        served.page("stable", &facts, 2, 5, 1_000_000);
        let families = registry.gather();
        let family = |name: &str| families.iter().find(|f| f.name() == name);
        let of = |name: &str, variant: &str| {
            family(name)?
                .get_metric()
                .iter()
                .find(|m| m.get_label().iter().any(|l| l.value() == variant))
                .cloned()
        };
        let counter = |name, variant| of(name, variant).map(|m| m.get_counter().get_value());
        assert_eq!(counter(contract::SERVED_PAGES, "canary"), Some(2.0));
        assert_eq!(counter(contract::SERVED_ITEMS, "canary"), Some(4.0));
        assert_eq!(
            counter(contract::SERVED_LONG_TAIL_ITEMS, "canary"),
            Some(1.0)
        );
        assert_eq!(counter(contract::SERVED_PAGE_CREATORS, "canary"), Some(3.0));
        assert_eq!(counter(contract::SERVED_PAGES, "stable"), Some(1.0));
        // Initialised at zero before its first page.
        assert_eq!(counter(contract::SERVED_PAGES, "idle"), Some(0.0));
        let age =
            |variant| of(contract::SERVED_ITEM_AGE, variant).map(|m| m.get_histogram().clone());
        let canary =
            age("canary").ok_or_else(|| prometheus::Error::Msg("no canary ages".into()))?;
        assert_eq!(canary.get_sample_count(), 4);
        assert!((canary.get_sample_sum() - (1_000.0 + 999.999 + 999.998 + 999.999)).abs() < 1e-6);
        // All four are 1,000 s old: above 15 min, within the first hour's bucket.
        let within = |le: f64| {
            canary
                .get_bucket()
                .iter()
                .find(|b| b.upper_bound() == le)
                .map(prometheus::proto::Bucket::cumulative_count)
        };
        assert_eq!((within(900.0), within(3_600.0)), (Some(0), Some(4)));
        Ok(())
    }
}
