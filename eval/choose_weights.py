#!/usr/bin/env python3
"""Choose the default profile's signal weights on the validation split (never the test targets).

Replays ``--split val`` (history 2022-04-25..27, target 2022-04-28) through feed-server once with
``explain``, then searches weight vectors and affinity lifts offline on the returned signal values
(feedeval.weights) and prints the best by GAUC(finish), with NDCG@10 watch and like, beside the
server's current default. Usage (from the repository root, after building the release binary):

    .venv/bin/python eval/choose_weights.py [--binary target/release/feed-server] [--step 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from feedeval import data, weights  # noqa: E402
from feedeval.cli import REPO  # noqa: E402
from feedeval.client import FeedServerClient, ServerProcess  # noqa: E402
from feedeval.replay import replay  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=data.default_data_dir())
    p.add_argument("--binary", default=os.path.join(REPO, "target", "release", "feed-server"))
    p.add_argument("--server-arg", action="append", default=[])
    p.add_argument("--split", choices=sorted(data.SPLITS), default="val")
    p.add_argument("--step", type=float, default=0.05, help="weight grid step (default: %(default)s)")
    p.add_argument("--lifts", default="0,0.5,1,2", help="affinity lifts to try (default: %(default)s)")
    p.add_argument("--fixed", default="", help="weights held fixed, e.g. freshness=0.1,embedding=0")
    p.add_argument("--answers", help="JSON file caching the server's answers (read if present, "
                                     "else written): search again without replaying")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    log, items = data.load(args.data)
    hist_dates, tgt_dates = data.SPLITS[args.split]
    history, lists = data.split(log, history_dates=hist_dates, target_dates=tgt_dates)
    catalog = data.build_catalog(items)
    answers: dict[str, list[dict]] = {}
    if args.answers and os.path.exists(args.answers):
        with open(args.answers) as f:
            answers = json.load(f)
    else:
        server = ServerProcess(args.binary, args.server_arg)
        try:
            client = FeedServerClient(server.start())
            replay(client, catalog.videos, data.history_events(history), lists, args.seed,
                   progress=False, on_ranked=lambda tl, got: answers.__setitem__(tl.key, got))
            client.close()
        finally:
            server.stop()
            server.cleanup_log()
        if args.answers:
            with open(args.answers, "w") as f:
                json.dump(answers, f)
    fixed = {k: float(v) for k, v in (kv.split("=") for kv in args.fixed.split(",") if kv)}

    t = weights.table(lists, answers)
    pairs = weights.Pairs(t)
    # The server's own order (current default profile) for reference.
    served = {}
    for tl in lists:
        n = len(answers.get(tl.key, []))
        for i, item in enumerate(answers.get(tl.key, [])):
            served[(tl.key, item["video_id"])] = float(n - i)
    import numpy as np
    ref = np.array([served[(tl.key, item["video_id"])] for tl in lists for item in answers.get(tl.key, [])])
    print(f"split {args.split}: {len(lists)} lists, {len(t.finish)} candidates, "
          f"{len(pairs.count)} lists for GAUC")
    print(f"server's current order: GAUC {pairs.gauc(ref):.4f}  NDCG@10 watch "
          f"{weights.ndcg(t, ref, t.watch):.4f}  like {weights.ndcg(t, ref, t.like):.4f}")

    results = []
    for lift in [float(x) for x in args.lifts.split(",")]:
        for w in weights.grid(args.step, fixed):
            if sum(w.values()) <= 0:
                continue
            results.append((pairs.gauc(weights.scores(t, w, lift)), lift, w))
    results.sort(key=lambda r: -r[0])
    print(f"{len(results)} weight vectors tried; best by GAUC(finish):")
    for g, lift, w in results[:args.top]:
        s = weights.scores(t, w, lift)
        ws = " ".join(f"{k}={v:.2f}" for k, v in w.items())
        print(f"GAUC {g:.4f}  NDCG watch {weights.ndcg(t, s, t.watch):.4f}  like "
              f"{weights.ndcg(t, s, t.like):.4f}  lift={lift:g}  {ws}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
