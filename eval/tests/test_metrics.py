import itertools
import math
import random

import pytest

from feedeval.metrics import auc, dcg, gauc, ndcg_at_k


def brute_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_perfect_and_reversed():
    assert auc([4, 3, 2, 1], [1, 1, 0, 0]) == 1.0
    assert auc([1, 2, 3, 4], [1, 1, 0, 0]) == 0.0


def test_auc_ties_count_half():
    # positives 0.9, 0.5; negatives 0.5, 0.1: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4
    assert auc([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0]) == pytest.approx(0.875)
    assert auc([2, 2, 2], [1, 0, 1]) == pytest.approx(0.5)


def test_auc_single_class_is_undefined():
    assert auc([1, 2, 3], [0, 0, 0]) is None
    assert auc([1, 2], [1, 1]) is None
    assert auc([], []) is None


def test_auc_matches_pairwise_definition_on_random_inputs():
    rng = random.Random(3)
    for _ in range(300):
        n = rng.randint(2, 12)
        scores = [rng.choice([0, 1, 2, 3, 0.5]) for _ in range(n)]  # many ties
        labels = [rng.randint(0, 1) for _ in range(n)]
        got = auc(scores, labels)
        if 0 < sum(labels) < n:
            assert got == pytest.approx(brute_auc(scores, labels))
        else:
            assert got is None


def test_auc_length_mismatch():
    with pytest.raises(ValueError):
        auc([1, 2], [1])


def test_gauc_excludes_groups_with_one_class():
    groups = [
        ([3, 2, 1], [1, 0, 0]),  # 1.0
        ([1, 2], [1, 0]),  # 0.0
        ([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0]),  # 0.875
        ([1, 2], [1, 1]),  # only positives: excluded
        ([5], [0]),  # one item: excluded
    ]
    mean, n = gauc(groups)
    assert n == 3
    assert mean == pytest.approx((1.0 + 0.0 + 0.875) / 3)


def test_gauc_nothing_to_score():
    assert gauc([([1, 2], [0, 0])]) == (None, 0)


def test_ndcg_hand_computed():
    # ranking puts gains 0, 1, 0.5 at positions 1..3
    dcg_val = 0 + 1 / math.log2(3) + 0.5 / math.log2(4)  # 0.880930
    ideal = 1 + 0.5 / math.log2(3)  # 1.315465
    assert dcg([0, 1, 0.5]) == pytest.approx(0.8809298, abs=1e-6)
    assert ndcg_at_k([0, 1, 0.5]) == pytest.approx(dcg_val / ideal)
    assert ndcg_at_k([0, 1, 0.5]) == pytest.approx(0.669672, abs=1e-6)


def test_ndcg_binary_like():
    assert ndcg_at_k([0, 0, 1]) == pytest.approx(0.5)  # 1/log2(4) over 1
    assert ndcg_at_k([1, 0, 0]) == 1.0


def test_ndcg_cuts_at_k():
    gains = [0.0] * 10 + [1.0, 0.0]  # the only relevant item is 11th
    assert ndcg_at_k(gains, k=10) == 0.0
    assert ndcg_at_k(gains, k=11) == pytest.approx(1 / math.log2(12))
    # the ideal ordering is also cut at k: two relevant items, one inside the top 2
    assert ndcg_at_k([1, 0, 1], k=2) == pytest.approx(1.0 / (1 + 1 / math.log2(3)))


def test_ndcg_all_zero_gains_is_undefined():
    assert ndcg_at_k([0, 0, 0]) is None
