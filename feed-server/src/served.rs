//! Content health of served pages (issue 17's guardrails): what each page of `GET /v1/feed`
//! shows — how many items, how many of them long-tail, how many distinct creators, how old —
//! per variant, so that a canary profile that buys completion by collapsing diversity or
//! freshness is visible next to stable.
//!
//! The per-item facts are computed once, when a list is ranked, and kept in the cached snapshot
//! ([`ItemFacts`]); serving a page (cached or not) then costs two short loops over the page's
//! items: counter adds and the items' ages gathered in a local histogram, added to the shared
//! one at once. A variant's series are resolved once, not looked up by label on every page.

use feed_metrics::contract;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use foldhash::{HashMap as FastMap, HashMapExt};

use parking_lot::RwLock;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use serde::{Deserialize, Serialize};

/// Buckets of `feed_served_item_age_seconds`: 5 minutes to 30 days.
const AGE_BUCKETS: &[f64] = &[
    300.0,       // 5 min
    900.0,       // 15 min
    3_600.0,     // 1 h
    10_800.0,    // 3 h
    21_600.0,    // 6 h
    43_200.0,    // 12 h
    86_400.0,    // 1 day
    172_800.0,   // 2 days
    345_600.0,   // 4 days
    604_800.0,   // 1 week
    1_209_600.0, // 2 weeks
    2_592_000.0, // 30 days
];

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

/// The counts of the page `facts[start..start + len]` of a ranked list (pure, no allocation).
pub fn page_counts(facts: &[ItemFacts], start: usize, len: usize) -> PageCounts {
    let end = start.saturating_add(len).min(facts.len());
    let page = facts.get(start..end).unwrap_or_default();
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
pub struct ServedMetrics {
    items: IntCounterVec,
    long_tail: IntCounterVec,
    pages: IntCounterVec,
    page_creators: IntCounterVec,
    age: HistogramVec,
    /// Each variant's series, resolved on its first page (as many as the vectors hold).
    variants: RwLock<HashMap<String, Arc<VariantSeries>>>,
}

/// One variant's series.
struct VariantSeries {
    items: IntCounter,
    long_tail: IntCounter,
    pages: IntCounter,
    page_creators: IntCounter,
    age: Histogram,
}

impl ServedMetrics {
    /// Creates the series and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), &["variant"])?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let items = counter(
            contract::SERVED_ITEMS,
            "Items on the feed pages served (cached or not), by variant",
        )?;
        let long_tail = counter(
            contract::SERVED_LONG_TAIL_ITEMS,
            "Served feed items nominated by the long-tail source (least-shown videos), by variant",
        )?;
        let pages = counter(
            contract::SERVED_PAGES,
            "Feed pages served (cached or not), by variant",
        )?;
        let page_creators = counter(
            contract::SERVED_PAGE_CREATORS,
            "Sum over served feed pages of the distinct creators on the page, by variant",
        )?;
        let age = HistogramVec::new(
            HistogramOpts::new(
                contract::SERVED_ITEM_AGE,
                "Age of each served feed item (since its published_at) when served, by variant",
            )
            .buckets(AGE_BUCKETS.to_vec()),
            &["variant"],
        )?;
        registry.register(Box::new(age.clone()))?;
        Ok(Self {
            items,
            long_tail,
            pages,
            page_creators,
            age,
            variants: RwLock::default(),
        })
    }

    /// `variant`'s series, resolved once.
    fn series(&self, variant: &str) -> Arc<VariantSeries> {
        if let Some(s) = self.variants.read().get(variant) {
            return s.clone();
        }
        let resolved = Arc::new(VariantSeries {
            items: self.items.with_label_values(&[variant]),
            long_tail: self.long_tail.with_label_values(&[variant]),
            pages: self.pages.with_label_values(&[variant]),
            page_creators: self.page_creators.with_label_values(&[variant]),
            age: self.age.with_label_values(&[variant]),
        });
        self.variants
            .write()
            .entry(variant.to_owned())
            .or_insert(resolved)
            .clone()
    }

    /// Counts a served page of `variant`: `facts[start..start + len]` of its ranked list, served
    /// at unix ms `now_ms`.
    pub fn page(&self, variant: &str, facts: &[ItemFacts], start: usize, len: usize, now_ms: i64) {
        let counts = page_counts(facts, start, len);
        let series = self.series(variant);
        series.pages.inc();
        series.items.inc_by(counts.items);
        series.long_tail.inc_by(counts.long_tail);
        series.page_creators.inc_by(counts.creators);
        // Gathered locally, added to the shared histogram once (not a contended update per item).
        let age = series.age.local();
        let end = start.saturating_add(len).min(facts.len());
        for f in facts.get(start..end).unwrap_or_default() {
            age.observe(((now_ms - f.published_at_ms) as f64 / 1000.0).max(0.0));
        }
        age.flush();
    }

    /// Creates `variant`'s series at zero, so that rates exist before its first page.
    pub fn init_variant(&self, variant: &str) {
        self.series(variant);
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
