import math

import numpy as np
import pytest

from feedeval.baselines import positional_scores
from feedeval.data import TargetList
from feedeval.report import cluster_bootstrap_ci, evaluate, format_table, list_metrics


def make(user, date, finish, gain, like):
    vids = list(range(len(finish)))
    return TargetList(user_id=user, date=date, at_ms=0, video_ids=vids,
                      finish=dict(zip(vids, finish)), watch_gain=dict(zip(vids, gain)), like=dict(zip(vids, like)))


def r(order):
    return list(order), positional_scores(list(order))


def test_list_metrics_by_hand():
    tl = make(1, 20220429, finish=[1, 0, 0], gain=[1.0, 0.5, 0.0], like=[0, 0, 1])
    m = list_metrics(tl, r([1, 0, 2]))
    assert m["gauc_finish"] == 0.5  # the finished video is 2nd of 3: beats one of two
    assert m["ndcg10_watch"] == pytest.approx((0.5 + 1 / math.log2(3)) / (1 + 0.5 / math.log2(3)))
    assert m["ndcg10_like"] == pytest.approx(0.5)  # liked video 3rd


def test_list_metrics_rejects_a_ranking_of_other_videos():
    tl = make(1, 20220429, finish=[1, 0], gain=[1, 0], like=[0, 0])
    with pytest.raises(ValueError):
        list_metrics(tl, r([0, 5]))


def test_evaluate_means_counts_and_draws():
    a = make(1, 20220429, finish=[1, 0], gain=[1.0, 0.2], like=[0, 0])  # no like: NDCG like undefined
    b = make(2, 20220430, finish=[0, 0], gain=[0.0, 0.0], like=[0, 1])  # one class, zero gains
    lists = [a, b]
    rankings = {
        "good": {a.key: r([0, 1]), b.key: r([1, 0])},
        "most-popular": {a.key: r([1, 0]), b.key: r([0, 1])},
        "draws": {a.key: [r([0, 1]), r([1, 0])], b.key: [r([1, 0]), r([1, 0])]},
    }
    res = evaluate(lists, rankings, bootstrap=50)
    g, p, d = (res["methods"][m] for m in ("good", "most-popular", "draws"))
    assert g["gauc_finish"] == {"value": 1.0, "lists": 1, "users": 1,
                                "vs_most-popular": {"delta": 1.0, "ci95": [1.0, 1.0]}}
    assert p["gauc_finish"]["value"] == 0.0
    assert d["gauc_finish"]["value"] == pytest.approx(0.5)  # mean of 1 and 0 over two draws
    assert g["ndcg10_watch"]["lists"] == 1 and g["ndcg10_watch"]["value"] == 1.0
    assert g["ndcg10_like"]["lists"] == 1 and g["ndcg10_like"]["value"] == 1.0
    assert p["ndcg10_like"]["value"] == pytest.approx(1 / math.log2(3))
    assert res["lists"] == 2 and res["users"] == 2
    table = format_table(res, {"good": "the good one"})
    assert "the good one" in table and "1.0000" in table and "0.0000" in table


def test_cluster_bootstrap_interval_contains_the_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(0.3, 1.0, size=400)
    clusters = np.repeat(np.arange(200), 2)
    lo, hi = cluster_bootstrap_ci(values, clusters, np.random.default_rng(1), 500)
    assert lo < values.mean() < hi
    assert hi - lo < 0.5
    # constant differences give a zero-width interval
    assert cluster_bootstrap_ci(np.ones(10), np.arange(10), np.random.default_rng(1), 100) == (1.0, 1.0)
