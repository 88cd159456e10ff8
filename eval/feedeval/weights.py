"""Choosing signal weights offline: replay a split once asking feed-server for every candidate's
signal values (``explain``), then score weight vectors on those values without the server.

The score is feed-server's (``feed-server/src/ranking/signals.rs``):
``(sum_i w_i * s_i / sum_i w_i) * (1 + lift * affinity) / (1 + lift)``. Only the weights and the
lift are searched here: the signal values themselves depend on other knobs (priors, half-lives),
which stay as the replayed server had them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .data import TargetList
from .metrics import ndcg_at_k

SIGNALS = ("freshness", "completion", "engagement", "affinity", "embedding", "brevity")


@dataclass
class SignalTable:
    """Every candidate of every list: its signal values and outcomes, lists as contiguous rows."""
    values: np.ndarray  # (candidates, signals)
    finish: np.ndarray  # (candidates,) 0/1
    watch: np.ndarray  # (candidates,) min(watch ratio, 1)
    like: np.ndarray  # (candidates,) 0/1
    list_of: np.ndarray  # (candidates,) list index
    users: np.ndarray  # (lists,) user id of each list


def table(lists: list[TargetList], answers: dict[str, list[dict]]) -> SignalTable:
    """Builds the table from the server's answers (``answers[list key]`` = items with ``signals``).
    Candidates the server left out are skipped."""
    rows, fin, wat, lik, lid, users = [], [], [], [], [], []
    for n, tl in enumerate(lists):
        users.append(tl.user_id)
        for item in answers.get(tl.key, []):
            v = int(item["video_id"])
            sig = item.get("signals") or {}
            rows.append([float(sig.get(s, 0.0)) for s in SIGNALS])
            fin.append(tl.finish[v])
            wat.append(tl.watch_gain[v])
            lik.append(tl.like[v])
            lid.append(n)
    return SignalTable(np.array(rows, dtype=float).reshape(-1, len(SIGNALS)), np.array(fin),
                       np.array(wat), np.array(lik), np.array(lid), np.array(users))


def scores(t: SignalTable, weights: dict[str, float], lift: float) -> np.ndarray:
    w = np.array([weights.get(s, 0.0) for s in SIGNALS], dtype=float)
    base = t.values @ w / w.sum()
    aff = t.values[:, SIGNALS.index("affinity")]
    return base * (1.0 + lift * aff) / (1.0 + lift)


class Pairs:
    """(finished, unfinished) candidate pairs within each list, for a vectorised GAUC."""

    def __init__(self, t: SignalTable):
        pos_i, neg_i, lst = [], [], []
        for n in np.unique(t.list_of):
            idx = np.flatnonzero(t.list_of == n)
            pos = idx[t.finish[idx] == 1]
            neg = idx[t.finish[idx] == 0]
            for p, q in itertools.product(pos, neg):
                pos_i.append(p)
                neg_i.append(q)
                lst.append(n)
        self.pos = np.array(pos_i, dtype=int)
        self.neg = np.array(neg_i, dtype=int)
        _, self.group = np.unique(np.array(lst, dtype=int), return_inverse=True)
        self.count = np.bincount(self.group).astype(float)

    def gauc(self, s: np.ndarray) -> float:
        win = (s[self.pos] > s[self.neg]) + 0.5 * (s[self.pos] == s[self.neg])
        return float((np.bincount(self.group, weights=win) / self.count).mean())


def ndcg(t: SignalTable, s: np.ndarray, gain: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over the lists with some gain (ties broken by row order)."""
    out = []
    for n in np.unique(t.list_of):
        idx = np.flatnonzero(t.list_of == n)
        g = gain[idx]
        if g.sum() <= 0:
            continue
        order = idx[np.argsort(-s[idx], kind="stable")]
        v = ndcg_at_k([float(x) for x in gain[order]], k)
        if v is not None:
            out.append(v)
    return float(np.mean(out)) if out else float("nan")


def grid(step: float = 0.05, fixed: dict[str, float] | None = None):
    """Weight vectors on a simplex grid of ``step`` over the signals not in ``fixed``."""
    fixed = fixed or {}
    free = [s for s in SIGNALS if s not in fixed]
    units = int(round((1.0 - sum(fixed.values())) / step))
    for combo in itertools.product(range(units + 1), repeat=len(free) - 1):
        if sum(combo) > units:
            continue
        w = dict(fixed)
        for s, c in zip(free, combo):
            w[s] = c * step
        w[free[-1]] = (units - sum(combo)) * step
        yield w


@dataclass(frozen=True)
class Choice:
    """One weight vector and lift with its figures on the split it was measured on."""
    gauc: float
    ndcg_watch: float
    ndcg_like: float
    lift: float
    weights: dict


def select(t: SignalTable, pairs: Pairs, candidates, min_watch: float, min_like: float,
           gauc_tolerance: float = 0.0) -> tuple[Choice | None, int]:
    """The selection rule of the default profile. A GAUC(finish) within ``gauc_tolerance`` of the
    best candidate's counts as a tie with it (on a flat surface such differences are noise);
    among the tied ``(weights, lift)`` candidates whose NDCG@10 watch is at least ``min_watch``
    and NDCG@10 like at least ``min_like``, the rule takes the highest NDCG@10 like (then the
    higher GAUC, then the candidate listed first), so that the secondary objective is not traded
    for noise in the first. When no tied candidate meets the floors, it takes the highest GAUC
    that does. With ``gauc_tolerance`` 0 it is "the best GAUC that meets the floors".
    Returns the choice (None when no candidate qualifies) and how many better-GAUC or tied
    candidates failed the floors."""
    ranked = []
    for n, (w, lift) in enumerate(candidates):
        if sum(w.values()) <= 0:
            continue
        ranked.append((-pairs.gauc(scores(t, w, lift)), n, w, lift))
    ranked.sort(key=lambda r: (r[0], r[1]))
    if not ranked:
        return None, 0
    best = -ranked[0][0]
    tied: list[tuple[float, float, int, Choice]] = []
    rejected = 0
    for neg_gauc, n, w, lift in ranked:
        in_tie = -neg_gauc >= best - gauc_tolerance
        if not in_tie and tied:
            break
        s = scores(t, w, lift)
        watch, like = ndcg(t, s, t.watch), ndcg(t, s, t.like)
        if not (watch >= min_watch and like >= min_like):
            rejected += 1
            continue
        choice = Choice(-neg_gauc, watch, like, lift, dict(w))
        if not in_tie:
            return choice, rejected
        tied.append((like, -neg_gauc, -n, choice))
    if not tied:
        return None, rejected
    return max(tied, key=lambda c: c[:3])[3], rejected


def profile_yaml(choice: Choice, digits: int = 2) -> str:
    """The ``weights`` and ``affinity.lift`` of a choice as a profile fragment (YAML), in the
    server's signal order, rounded to the grid."""
    lines = ["version: 2", "weights:"]
    lines += [f"  {s}: {round(choice.weights.get(s, 0.0), digits):g}" for s in SIGNALS]
    lines += ["affinity:", f"  lift: {choice.lift:g}"]
    return "\n".join(lines) + "\n"
