import numpy as np

from feedeval import weights
from feedeval.data import TargetList
from feedeval.metrics import auc


def tl(user, vids, finish):
    return TargetList(user_id=user, date=20220428, at_ms=0, video_ids=list(vids),
                      finish=dict(zip(vids, finish)), watch_gain={v: float(f) for v, f in zip(vids, finish)},
                      like={v: 0 for v in vids})


def item(v, **signals):
    return {"video_id": str(v), "signals": signals}


def test_vectorised_gauc_matches_the_per_list_auc_and_weights_decide_the_order():
    lists = [tl(1, [1, 2, 3], [1, 0, 0]), tl(2, [4, 5], [0, 1]), tl(3, [6, 7], [0, 0])]
    answers = {
        "1:20220428": [item(1, completion=0.9, brevity=0.1), item(2, completion=0.2, brevity=0.9),
                       item(3, completion=0.5, brevity=0.5)],
        "2:20220428": [item(4, completion=0.8, brevity=0.0), item(5, completion=0.1, brevity=1.0)],
        "3:20220428": [item(6), item(7)],
    }
    t = weights.table(lists, answers)
    pairs = weights.Pairs(t)
    assert len(pairs.count) == 2, "the list without a finish has no pair"
    for w in ({"completion": 1.0}, {"brevity": 1.0}, {"completion": 0.5, "brevity": 0.5}):
        s = weights.scores(t, w, lift=0.0)
        expected = np.mean([auc(list(s[0:3]), [1, 0, 0]), auc(list(s[3:5]), [0, 1])])
        assert abs(pairs.gauc(s) - expected) < 1e-12
    assert pairs.gauc(weights.scores(t, {"completion": 1.0}, 0.0)) == 0.5
    assert pairs.gauc(weights.scores(t, {"brevity": 1.0}, 0.0)) == 0.5 * (0.0 + 1.0)


def test_lift_scales_by_affinity_like_the_server():
    lists = [tl(1, [1, 2], [1, 0])]
    answers = {"1:20220428": [item(1, completion=0.5, affinity=1.0), item(2, completion=0.5, affinity=0.0)]}
    t = weights.table(lists, answers)
    s = weights.scores(t, {"completion": 1.0}, lift=1.0)
    assert s[0] == 0.5 and s[1] == 0.25


def test_grid_spans_the_simplex_with_fixed_weights_kept():
    grid = list(weights.grid(0.5, {"freshness": 0.0, "embedding": 0.0}))
    assert all(abs(sum(w.values()) - 1.0) < 1e-9 for w in grid)
    assert all(w["freshness"] == 0.0 and w["embedding"] == 0.0 for w in grid)
    assert len(grid) == 10  # 4 free signals, 2 units: C(5, 3)


def test_select_takes_the_best_gauc_that_meets_the_ndcg_floors_and_breaks_near_ties_by_like():
    lists = [tl(1, [1, 2], [1, 0]), tl(2, [3, 4], [1, 0])]
    lists[0].like[1] = 1  # NDCG@10 like is defined (a list without likes is skipped)
    answers = {"1:20220428": [item(1, completion=0.9, brevity=0.0), item(2, completion=0.1, brevity=1.0)],
               "2:20220428": [item(3, completion=0.8, brevity=0.0), item(4, completion=0.2, brevity=1.0)]}
    t = weights.table(lists, answers)
    pairs = weights.Pairs(t)
    good, bad = {"completion": 1.0}, {"brevity": 1.0}
    choice, rejected = weights.select(t, pairs, [(bad, 0.0), (good, 0.0)], 0.0, 0.0)
    assert choice.weights == good and choice.gauc == 1.0 and rejected == 0
    # A floor the best vector misses moves the choice to the next one, or to none.
    choice, rejected = weights.select(t, pairs, [(bad, 0.0), (good, 0.0)], 1.01, 0.0)
    assert choice is None and rejected == 2
    # Within the GAUC tolerance the better NDCG@10 like wins; outside it, GAUC alone decides.
    lists[0].like = {1: 0, 2: 1}
    t = weights.table(lists, answers)
    # `mixed` puts list 1's unfinished but liked video first (0.55 vs 0.45) and list 2's finished one.
    mixed = {"completion": 0.5, "brevity": 0.5}
    assert pairs.gauc(weights.scores(t, mixed, 0.0)) < pairs.gauc(weights.scores(t, good, 0.0))
    like = {name: weights.ndcg(t, weights.scores(t, w, 0.0), t.like) for name, w in (("good", good), ("mixed", mixed))}
    assert like["mixed"] > like["good"]
    choice, _ = weights.select(t, pairs, [(good, 0.0), (mixed, 0.0)], 0.0, 0.0, gauc_tolerance=1.0)
    assert choice.weights == mixed
    choice, _ = weights.select(t, pairs, [(good, 0.0), (mixed, 0.0)], 0.0, 0.0, gauc_tolerance=0.0)
    assert choice.weights == good
    # A tied candidate that misses a floor is passed over for the next qualifying one.
    choice, rejected = weights.select(t, pairs, [(good, 0.0), (mixed, 0.0)], 0.0, like["mixed"] + 0.01,
                                      gauc_tolerance=1.0)
    assert choice is None and rejected == 2
    text = weights.profile_yaml(weights.Choice(0.7, 0.9, 0.8, 1.0, {"completion": 0.65, "brevity": 0.35}))
    assert text.startswith("version: 2\nweights:\n  freshness: 0\n  completion: 0.65\n")
    assert "lift: 1" in text


def test_choose_weights_refuses_the_test_split(capsys):
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    import choose_weights
    import pytest
    with pytest.raises(SystemExit) as e:
        choose_weights.main(["--split", "test", "--data", "/nonexistent"])
    assert e.value.code == 2
    assert "val split only" in capsys.readouterr().err
