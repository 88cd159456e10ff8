//! Ranking quality of user-day lists: GAUC(finish) and NDCG@10 of watch ratio and of likes — a
//! port of `eval/feedeval/metrics.py`, so the tuner's held-out figures mean what `make eval`'s
//! mean. A unit test matches the Python's numbers on a committed fixture
//! (`fixtures/quality.json`, written by `fixtures/make_quality_fixture.py`).

use serde::Serialize;
use utoipa::ToSchema;

use super::replay::Outcome;

/// Positions counted by NDCG.
pub const NDCG_K: usize = 10;

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (Mann-Whitney U with mid-ranks). `None` when the labels hold
/// a single class.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&y| y).count();
    let neg = labels.len().checked_sub(pos)?;
    if pos == 0 || neg == 0 || scores.len() != labels.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = mid;
        }
        i = j + 1;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, y)| **y)
        .map(|(r, _)| r)
        .sum();
    let (pos, neg) = (pos as f64, neg as f64);
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Sum over the top `k` of `gain / log2(position + 1)`, positions from 1.
pub fn dcg(gains_in_rank_order: &[f64], k: usize) -> f64 {
    gains_in_rank_order
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| g / (i as f64 + 2.0).log2())
        .sum()
}

/// DCG@k of the ranking over the DCG@k of the ideal order of the same gains; `None` when every
/// gain is zero.
pub fn ndcg_at_k(gains_in_rank_order: &[f64], k: usize) -> Option<f64> {
    let mut ideal = gains_in_rank_order.to_vec();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let best = dcg(&ideal, k);
    (best > 0.0).then(|| dcg(gains_in_rank_order, k) / best)
}

/// The mean of the defined values and how many there were; `None` when none is.
pub fn mean_defined(values: impl IntoIterator<Item = Option<f64>>) -> (Option<f64>, usize) {
    let (sum, n) = values
        .into_iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    ((n > 0).then(|| sum / n as f64), n)
}

/// GAUC(finish), NDCG@10 and like-AUC of one ranking over a set of lists, each a mean over the
/// lists where it is defined (as in `make eval`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Quality {
    /// Mean per-list AUC against `completed`, over the lists holding both outcomes.
    pub gauc_finish: Option<f64>,
    /// Mean NDCG@10 with gain = watch ratio, over the lists with some watching.
    pub ndcg10_watch: Option<f64>,
    /// Mean NDCG@10 with gain = liked, over the lists with a like.
    pub ndcg10_like: Option<f64>,
    /// Mean per-list AUC against `liked` (GAUC(like)), over the lists holding both outcomes.
    pub gauc_like: Option<f64>,
    /// Lists counted by `gauc_finish`.
    pub lists_finish: usize,
    /// Lists counted by `ndcg10_watch`.
    pub lists_watch: usize,
    /// Lists counted by `ndcg10_like`.
    pub lists_like: usize,
    /// Lists counted by `gauc_like`.
    pub lists_like_auc: usize,
}

/// The figures of one list under one ranking; `None` where the list cannot be scored (a single
/// class, or no gain). Whether a figure is defined depends on the outcomes only, never on the
/// scores, so two rankings of the same list are defined on the same lists (paired).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ListFigures {
    /// AUC against `completed`.
    pub auc_finish: Option<f64>,
    /// NDCG@10 with gain = watch ratio.
    pub ndcg10_watch: Option<f64>,
    /// NDCG@10 with gain = liked.
    pub ndcg10_like: Option<f64>,
    /// AUC against `liked`.
    pub auc_like: Option<f64>,
}

/// The figures of one list: every scored exposure of one user-day with its score.
pub fn list_figures(list: &[(f64, Outcome)]) -> ListFigures {
    let scores: Vec<f64> = list.iter().map(|(s, _)| *s).collect();
    let flags = |f: fn(&Outcome) -> bool| list.iter().map(|(_, o)| f(o)).collect::<Vec<bool>>();
    let liked = |o: &Outcome| if o.liked { 1.0 } else { 0.0 };
    ListFigures {
        auc_finish: auc(&scores, &flags(|o| o.completed)),
        ndcg10_watch: ndcg_at_k(&in_rank_order(list, |o| o.watch_ratio), NDCG_K),
        ndcg10_like: ndcg_at_k(&in_rank_order(list, liked), NDCG_K),
        auc_like: auc(&scores, &flags(|o| o.liked)),
    }
}

/// The quality of lists already reduced to their figures (means over the defined ones).
pub fn aggregate<'a>(figures: impl IntoIterator<Item = &'a ListFigures>) -> Quality {
    let figures: Vec<&ListFigures> = figures.into_iter().collect();
    let (gauc_finish, lists_finish) = mean_defined(figures.iter().map(|f| f.auc_finish));
    let (ndcg10_watch, lists_watch) = mean_defined(figures.iter().map(|f| f.ndcg10_watch));
    let (ndcg10_like, lists_like) = mean_defined(figures.iter().map(|f| f.ndcg10_like));
    let (gauc_like, lists_like_auc) = mean_defined(figures.iter().map(|f| f.auc_like));
    Quality {
        gauc_finish,
        ndcg10_watch,
        ndcg10_like,
        gauc_like,
        lists_finish,
        lists_watch,
        lists_like,
        lists_like_auc,
    }
}

/// The gains of a list in the order of its scores, best first (ties keep the list's order).
fn in_rank_order(list: &[(f64, Outcome)], gain: impl Fn(&Outcome) -> f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..list.len()).collect();
    order.sort_by(|&a, &b| list[b].0.total_cmp(&list[a].0));
    order.into_iter().map(|i| gain(&list[i].1)).collect()
}

/// The quality of `lists`: each list holds every scored exposure of one user-day with its score.
pub fn measure<'a>(lists: impl IntoIterator<Item = &'a [(f64, Outcome)]>) -> Quality {
    let figures: Vec<ListFigures> = lists.into_iter().map(list_figures).collect();
    aggregate(&figures)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct Case {
        scores: Vec<f64>,
        labels: Vec<u8>,
        gains: Vec<f64>,
        auc: Option<f64>,
        ndcg10: Option<f64>,
    }

    #[derive(Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
        gauc: Option<f64>,
        gauc_groups: usize,
    }

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-12,
            (None, None) => true,
            _ => false,
        }
    }

    #[test]
    fn matches_the_python_metrics_on_the_fixture() {
        let fixture: Fixture =
            serde_json::from_str(include_str!("fixtures/quality.json")).expect("fixture");
        let mut aucs = Vec::new();
        for (i, c) in fixture.cases.iter().enumerate() {
            let labels: Vec<bool> = c.labels.iter().map(|&y| y == 1).collect();
            let a = auc(&c.scores, &labels);
            assert!(close(a, c.auc), "case {i}: auc {a:?} vs python {:?}", c.auc);
            let n = ndcg_at_k(&c.gains, NDCG_K);
            assert!(
                close(n, c.ndcg10),
                "case {i}: ndcg {n:?} vs python {:?}",
                c.ndcg10
            );
            aucs.push(a);
        }
        let (g, groups) = mean_defined(aucs);
        assert!(close(g, fixture.gauc) && groups == fixture.gauc_groups);
        assert!(
            fixture.cases.iter().any(|c| c.auc.is_none()),
            "fixture covers undefined lists"
        );
    }

    #[test]
    fn measure_ranks_each_list_by_score() {
        let hit = Outcome {
            played: true,
            watch_ratio: 1.0,
            completed: true,
            liked: true,
        };
        let miss = Outcome::default();
        let good = [(0.9, hit), (0.1, miss)];
        let bad = [(0.1, hit), (0.9, miss)];
        let q = measure([&good[..], &bad[..], &[(0.5, miss)][..]]);
        assert_eq!(q.gauc_finish, Some(0.5));
        assert_eq!(q.lists_finish, 2);
        assert_eq!(q.lists_watch, 2);
        let perfect = measure([&good[..]]);
        assert_eq!(perfect.ndcg10_like, Some(1.0));
        assert!(measure([&bad[..]]).ndcg10_watch < Some(1.0));
    }
}
