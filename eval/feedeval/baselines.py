"""Baselines computed in the same run as the feed-server replay: random order, most-popular and
shortest-first.

A ranking is (order, scores): ``order`` lists the candidates best first (used by NDCG), ``scores``
maps each candidate to a number, higher is better (used by AUC; ties count one half)."""

from __future__ import annotations

import bisect
import random
from collections import defaultdict

import pandas as pd

from .data import TargetList

Ranking = tuple[list[int], dict[int, float]]


def list_rng(seed: int, purpose: str, tl: TargetList) -> random.Random:
    """A random generator that depends only on (seed, purpose, list): results do not depend on the
    order in which lists are processed."""
    return random.Random(f"{seed}|{purpose}|{tl.user_id}|{tl.date}")


def order_by_scores(scores: dict[int, float], rng: random.Random) -> list[int]:
    """Candidates by descending score; equal scores in a random (seeded) order."""
    ids = sorted(scores)  # canonical start so that only the rng decides ties
    rng.shuffle(ids)
    return sorted(ids, key=lambda v: -scores[v])  # stable: keeps the shuffled order within ties


def positional_scores(order: list[int]) -> dict[int, float]:
    """Scores that reproduce a given order exactly (first gets the highest)."""
    n = len(order)
    return {v: float(n - i) for i, v in enumerate(order)}


class RandomRanker:
    name = "random"

    def __init__(self, seed: int, draw: int = 0):
        self.seed = seed
        self.draw = draw

    def rank(self, tl: TargetList) -> Ranking:
        order = list(tl.video_ids)
        list_rng(self.seed, f"{self.name}#{self.draw}", tl).shuffle(order)
        return order, positional_scores(order)


class PopularityRanker:
    """Most-popular: number of finishes of each video in the history, counted as of the list's
    time (the same information the server has been sent when the list is ranked)."""

    name = "most-popular"

    def __init__(self, history: pd.DataFrame, seed: int):
        self.seed = seed
        times: dict[int, list[int]] = defaultdict(list)
        fin = history[history["finish"] > 0]
        for v, t in zip(fin["video_id"].tolist(), fin["time_ms"].tolist()):
            times[int(v)].append(int(t))
        self.finish_times = {v: sorted(ts) for v, ts in times.items()}

    def finishes_before(self, video_id: int, at_ms: int) -> int:
        return bisect.bisect_left(self.finish_times.get(video_id, ()), at_ms)

    def rank(self, tl: TargetList) -> Ranking:
        scores = {v: float(self.finishes_before(v, tl.at_ms)) for v in tl.video_ids}
        return order_by_scores(scores, list_rng(self.seed, self.name, tl)), scores


class ShortestFirstRanker:
    """Shortest-first: videos by ascending catalog duration (the one-line heuristic a product
    developer would try first; short clips are finished far more often), ties in a seeded random
    order. Uses only the static catalog, as sent to the server."""

    name = "shortest-first"

    def __init__(self, durations_ms: dict[int, int], seed: int):
        self.durations_ms = durations_ms
        self.seed = seed

    def rank(self, tl: TargetList) -> Ranking:
        # Unknown videos count as longest: they rank last.
        scores = {v: -float(self.durations_ms.get(v, float("inf"))) for v in tl.video_ids}
        return order_by_scores(scores, list_rng(self.seed, self.name, tl)), scores
