"""Replaying the log through feed-server: catalog, history events in time order, and each target
list ranked as of its first exposure, with exactly the history events that happened before it."""

from __future__ import annotations

import bisect
import sys
import time
from dataclasses import dataclass, field

from .baselines import Ranking, list_rng, positional_scores
from .client import MAX_EVENTS_PER_POST, FeedServerClient
from .data import TargetList, rfc3339_ms


@dataclass
class ReplayStats:
    videos: int = 0
    events_sent: int = 0
    events_accepted: int = 0
    rejections: dict = field(default_factory=dict)
    rejection_examples: list = field(default_factory=list)
    rank_requests: int = 0
    missing_in_response: int = 0  # candidates the server did not return (ranked last)
    unexpected_in_response: int = 0  # ids the server returned that were not candidates
    variants: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


def schedule(event_times: list[int], lists: list[TargetList]) -> list[tuple[int, int]]:
    """For each list (in the given order, which must be by ``at``), the slice [start, end) of the
    time-ordered history events to send before ranking it: every event strictly before ``at``."""
    out, sent = [], 0
    for tl in lists:
        end = max(sent, bisect.bisect_left(event_times, tl.at_ms))
        out.append((sent, end))
        sent = end
    return out


def server_order(returned: list[str], candidates: list[int]) -> tuple[list[int], int, int]:
    """Map the server's answer back to candidate ids: (order, missing, unexpected). Candidates the
    server left out go last, in the order they were sent."""
    cand = set(candidates)
    order, seen, unexpected = [], set(), 0
    for vid in returned:
        try:
            v = int(vid)
        except ValueError:
            unexpected += 1
            continue
        if v in cand and v not in seen:
            order.append(v)
            seen.add(v)
        else:
            unexpected += 1
    missing = [v for v in candidates if v not in seen]
    return order + missing, len(missing), unexpected


def replay(client: FeedServerClient, videos: list[dict], events: list[tuple[int, dict]],
           lists: list[TargetList], seed: int, progress: bool = True,
           on_ranked=None) -> tuple[dict[str, Ranking], ReplayStats]:
    """Replays and ranks every list. ``on_ranked(list, items)``, when given, receives each answer's
    items with their per-signal values (the rank requests then ask for ``explain``)."""
    stats = ReplayStats()
    t0 = time.monotonic()
    client.put_videos(videos)
    stats.videos = len(videos)
    stats.seconds["catalog"] = time.monotonic() - t0

    times = [t for t, _ in events]
    plan = schedule(times, lists)
    rankings: dict[str, Ranking] = {}
    t_events = t_rank = 0.0
    last_report = time.monotonic()
    for n, (tl, (start, end)) in enumerate(zip(lists, plan)):
        if end > start:
            t1 = time.monotonic()
            for i in range(start, end, MAX_EVENTS_PER_POST):
                client.post_events([ev for _, ev in events[i:min(end, i + MAX_EVENTS_PER_POST)]])
            t_events += time.monotonic() - t1
        # Candidates go out in a seeded random order so that a server that keeps the input order
        # for equal scores cannot profit from the order in which the log showed them.
        cands = list(tl.video_ids)
        list_rng(seed, "server-candidates", tl).shuffle(cands)
        t1 = time.monotonic()
        items = client.rank_items(str(tl.user_id), [str(v) for v in cands], rfc3339_ms(tl.at_ms),
                                  explain=on_ranked is not None)
        returned = [str(item["video_id"]) for item in items]
        if on_ranked is not None:
            on_ranked(tl, items)
        t_rank += time.monotonic() - t1
        order, missing, unexpected = server_order(returned, cands)
        stats.missing_in_response += missing
        stats.unexpected_in_response += unexpected
        rankings[tl.key] = (order, positional_scores(order))
        stats.rank_requests += 1
        if progress and time.monotonic() - last_report > 5:
            last_report = time.monotonic()
            print(f"  ranked {n + 1}/{len(lists)} lists, {client.events_sent} events sent",
                  file=sys.stderr, flush=True)
    stats.seconds["events"] = t_events
    stats.seconds["rank"] = t_rank
    stats.events_sent = client.events_sent
    stats.events_accepted = client.events_accepted
    stats.rejections = dict(client.rejections)
    stats.rejection_examples = list(client.rejection_examples)
    stats.variants = dict(client.variants)
    return rankings, stats
