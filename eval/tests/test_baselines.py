import pandas as pd

from feedeval.baselines import PopularityRanker, RandomRanker, order_by_scores, positional_scores
from feedeval.data import TargetList, normalise_log
from feedeval.metrics import auc
from synth import log_row


def tl(user=1, date=20220429, at=10_000, vids=(1, 2, 3, 4)):
    return TargetList(user_id=user, date=date, at_ms=at, video_ids=list(vids),
                      finish={v: 0 for v in vids}, watch_gain={v: 0.0 for v in vids}, like={v: 0 for v in vids})


def history():
    return normalise_log(pd.DataFrame([
        log_row(9, 1, 20220425, 1000, click=1, finish=1),
        log_row(8, 1, 20220425, 2000, click=1, finish=1),
        log_row(7, 3, 20220425, 3000, click=1, finish=1),
        log_row(7, 2, 20220425, 4000, click=1, finish=0),
        log_row(6, 2, 20220428, 12_000, click=1, finish=1),  # after the list's time
        log_row(5, 2, 20220428, 13_000, click=1, finish=1),
    ]))


def test_popularity_counts_finishes_before_the_list_time():
    pop = PopularityRanker(history(), seed=0)
    order, scores = pop.rank(tl(at=10_000))
    assert scores == {1: 2.0, 2: 0.0, 3: 1.0, 4: 0.0}
    assert order[:2] == [1, 3]
    assert set(order[2:]) == {2, 4}
    order, scores = pop.rank(tl(at=20_000))
    assert scores[2] == 2.0
    assert pop.finishes_before(2, 12_000) == 0 and pop.finishes_before(2, 12_001) == 1


def test_ties_are_broken_by_the_seed_only():
    import random
    scores = {v: 0.0 for v in range(20)}
    a = order_by_scores(scores, random.Random(1))
    assert a == order_by_scores(dict(reversed(list(scores.items()))), random.Random(1))
    assert a != order_by_scores(scores, random.Random(2))


def test_random_is_a_seeded_permutation():
    t = tl(vids=range(30))
    a, sa = RandomRanker(1).rank(t)
    assert sorted(a) == list(range(30))
    assert RandomRanker(1).rank(t)[0] == a
    assert RandomRanker(2).rank(t)[0] != a
    assert RandomRanker(1).rank(tl(user=2, vids=range(30)))[0] != a
    assert sa == positional_scores(a)


def test_positional_scores_reproduce_the_order():
    s = positional_scores([7, 3, 5])
    assert sorted(s, key=lambda v: -s[v]) == [7, 3, 5]
    assert auc([s[v] for v in (7, 3, 5)], [1, 0, 0]) == 1.0


def test_shortest_first_orders_by_catalog_duration_and_unknown_last():
    from feedeval.baselines import ShortestFirstRanker
    durations = {1: 30_000, 2: 8_000, 3: 300_000}
    order, scores = ShortestFirstRanker(durations, seed=0).rank(tl(vids=(1, 2, 3, 4)))
    assert order == [2, 1, 3, 4]
    assert scores[2] > scores[1] > scores[3] > scores[4]
    # Equal durations: a seeded tie-break, the same for the same seed.
    same = ShortestFirstRanker({v: 10_000 for v in range(20)}, seed=3)
    assert same.rank(tl(vids=range(20)))[0] == same.rank(tl(vids=range(20)))[0]
    assert sorted(same.rank(tl(vids=range(20)))[0]) == list(range(20))
