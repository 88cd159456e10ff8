"""Ranking metrics: per-list AUC / GAUC and NDCG@k. Pure Python, no dependencies."""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence


def auc(scores: Sequence[float], labels: Sequence[int]) -> Optional[float]:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half. ``None`` when the labels hold a single class."""
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    # Mann-Whitney U with mid-ranks for ties.
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid = (i + j) / 2.0 + 1.0  # 1-based mid-rank of the tie group
        for k in range(i, j + 1):
            ranks[order[k]] = mid
        i = j + 1
    rank_sum_pos = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum_pos - pos * (pos + 1) / 2.0) / (pos * neg)


def gauc(groups: Iterable[tuple[Sequence[float], Sequence[int]]]) -> tuple[Optional[float], int]:
    """Unweighted mean of the per-group AUC over the groups holding both classes.

    Returns (mean, number of groups counted); mean is ``None`` when no group counts."""
    vals = [a for a in (auc(s, y) for s, y in groups) if a is not None]
    if not vals:
        return None, 0
    return sum(vals) / len(vals), len(vals)


def dcg(gains_in_rank_order: Sequence[float], k: int = 10) -> float:
    """Sum over the top k of gain / log2(position + 1), positions from 1."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains_in_rank_order[:k]))


def ndcg_at_k(gains_in_rank_order: Sequence[float], k: int = 10) -> Optional[float]:
    """DCG@k of the ranking divided by the DCG@k of the ideal ordering of the same gains.
    ``None`` when every gain is zero (the list cannot be scored)."""
    ideal = dcg(sorted(gains_in_rank_order, reverse=True), k)
    if ideal <= 0:
        return None
    return dcg(gains_in_rank_order, k) / ideal


def mean_defined(values: Iterable[Optional[float]]) -> tuple[Optional[float], int]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, 0
    return sum(vals) / len(vals), len(vals)
