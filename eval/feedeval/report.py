"""Scoring every method's rankings on the target lists, and the printed table."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .baselines import Ranking
from .data import TargetList
from .metrics import auc, ndcg_at_k

METRICS = (
    ("gauc_finish", "GAUC finish"),
    ("ndcg10_watch", "NDCG@10 watch"),
    ("ndcg10_like", "NDCG@10 like"),
)


def list_metrics(tl: TargetList, ranking: Ranking, k: int = 10) -> dict[str, Optional[float]]:
    order, scores = ranking
    if sorted(order) != sorted(tl.video_ids):
        raise ValueError(f"ranking of list {tl.key} is not a permutation of its candidates")
    return {
        "gauc_finish": auc([scores[v] for v in tl.video_ids], [tl.finish[v] for v in tl.video_ids]),
        "ndcg10_watch": ndcg_at_k([tl.watch_gain[v] for v in order], k),
        "ndcg10_like": ndcg_at_k([float(tl.like[v]) for v in order], k),
    }


def average_metrics(tl: TargetList, ranking) -> dict[str, Optional[float]]:
    """``list_metrics`` of one ranking, or the per-list mean over several draws (a list of
    rankings, as for the random baseline). Whether a metric is defined depends on the labels only,
    so it is defined for every draw or for none."""
    if isinstance(ranking, tuple):
        return list_metrics(tl, ranking)
    draws = [list_metrics(tl, r) for r in ranking]
    return {key: (None if draws[0][key] is None else sum(d[key] for d in draws) / len(draws))
            for key, _ in METRICS}


def evaluate(lists: list[TargetList], rankings: dict[str, dict],
             baseline: str = "most-popular", seed: int = 0, bootstrap: int = 1000) -> dict:
    """``rankings[method][list key]`` is a Ranking or a list of Rankings (draws, averaged per list).

    Per method and metric: mean over the lists where the metric is defined, the number of those
    lists and of their users; per non-baseline method, the paired difference to ``baseline`` with a
    95% interval from a bootstrap over users."""
    per = {m: {key: [] for key, _ in METRICS} for m in rankings}
    for tl in lists:
        for m, r in rankings.items():
            vals = average_metrics(tl, r[tl.key])
            for key, _ in METRICS:
                per[m][key].append(vals[key])
    users = np.array([tl.user_id for tl in lists])
    out = {"methods": {}, "lists": len(lists), "users": int(len(set(users.tolist())))}
    for m in rankings:
        out["methods"][m] = {}
        for key, _ in METRICS:
            v = per[m][key]
            mask = np.array([x is not None for x in v], dtype=bool)
            arr = np.array([x for x in v if x is not None], dtype=float)
            out["methods"][m][key] = {
                "value": float(arr.mean()) if arr.size else None,
                "lists": int(mask.sum()),
                "users": int(len(set(users[mask].tolist()))),
            }
    if baseline in rankings:
        rng = np.random.default_rng(seed)
        for m in rankings:
            if m == baseline:
                continue
            for key, _ in METRICS:
                a, b = per[m][key], per[baseline][key]
                idx = [i for i, x in enumerate(a) if x is not None and b[i] is not None]
                if not idx:
                    continue
                diff = np.array([a[i] - b[i] for i in idx])
                lo, hi = cluster_bootstrap_ci(diff, users[idx], rng, bootstrap)
                out["methods"][m][key]["vs_" + baseline] = {
                    "delta": float(diff.mean()), "ci95": [lo, hi]}
    return out


def cluster_bootstrap_ci(values: np.ndarray, clusters: np.ndarray, rng: np.random.Generator,
                         n: int = 1000) -> tuple[float, float]:
    """95% percentile interval of the mean of ``values``, resampling whole clusters (users)."""
    _, inv = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inv, weights=values)
    counts = np.bincount(inv).astype(float)
    k = len(sums)
    draws = rng.integers(0, k, size=(n, k))
    est = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    lo, hi = np.percentile(est, [2.5, 97.5])
    return float(lo), float(hi)


def _fmt(x: Optional[float]) -> str:
    return "   n/a" if x is None else f"{x:.4f}"


def format_table(result: dict, labels: dict[str, str] | None = None,
                 baseline: str = "most-popular") -> str:
    labels = labels or {}
    names = list(result["methods"])
    w = max([len("method")] + [len(labels.get(m, m)) for m in names] + [len("lists (users) scored")])
    head = f"{'method':<{w}}  " + "  ".join(f"{t:>15}" for _, t in METRICS)
    lines = [head, "-" * len(head)]
    for m in names:
        row = result["methods"][m]
        lines.append(f"{labels.get(m, m):<{w}}  " + "  ".join(f"{_fmt(row[k]['value']):>15}" for k, _ in METRICS))
    first = result["methods"][names[0]]
    lines.append(f"{'lists (users) scored':<{w}}  " + "  ".join(
        f"{str(first[k]['lists']) + ' (' + str(first[k]['users']) + ')':>15}" for k, _ in METRICS))
    for m in names:
        row = result["methods"][m]
        key = "vs_" + baseline
        if m == baseline or not any(key in row[k] for k, _ in METRICS):
            continue
        cells = []
        for k, _ in METRICS:
            d = row[k].get(key)
            cells.append(f"{d['delta']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]" if d else "n/a")
        lines.append(f"{labels.get(m, m)} minus {baseline} (95% CI, bootstrap over users):")
        lines.append("  " + "   ".join(f"{t}: {c}" for (_, t), c in zip(METRICS, cells)))
    return "\n".join(lines)
