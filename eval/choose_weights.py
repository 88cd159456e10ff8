#!/usr/bin/env python3
"""Choose the default profile's signal weights on the validation split (never the test targets).

Replays ``--split val`` (history 2022-04-25..27, target 2022-04-28) through feed-server once with
``explain``, then searches weight vectors and affinity lifts offline on the returned signal values
(feedeval.weights) and prints the one the selection rule picks (feedeval.weights.select: among the
candidates whose val GAUC(finish) is within --gauc-tolerance of the best, the highest val NDCG@10
like, with val NDCG@10 watch and like reaching --min-watch and --min-like), as the exact
`weights` and `affinity.lift` of the profile to ship. The grid is the simplex: every vector,
fixed weights included, sums to 1. `--split test` is refused: the test days are measured once,
afterwards, by make eval. Usage (from the repository root, after building the release binary):

    .venv/bin/python eval/choose_weights.py [--binary target/release/feed-server] [--step 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from feedeval import data, weights  # noqa: E402
from feedeval.cli import REPO  # noqa: E402
from feedeval.client import FeedServerClient, ServerProcess  # noqa: E402
from feedeval.replay import replay  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=data.default_data_dir())
    p.add_argument("--binary", default=os.path.join(REPO, "target", "release", "feed-server"))
    p.add_argument("--server-arg", action="append", default=[])
    p.add_argument("--split", default="val", help="only val: the test days are never used to choose")
    p.add_argument("--step", type=float, default=0.05, help="weight grid step (default: %(default)s)")
    p.add_argument("--lifts", default="1,2", help="affinity lifts to try (default: %(default)s: at least 1, so an engaged topic can outrank generic freshness on the bench world)")
    p.add_argument("--fixed", default="freshness=0.2,embedding=0.05",
                   help="weights held fixed, as shares of the total (default: %(default)s: constant on "
                        "this slice, set for the bench world's fresh uploads and taste vectors)")
    p.add_argument("--min-watch", type=float, default=0.895,
                   help="floor on val NDCG@10 watch (default: %(default)s, the issue's bar)")
    p.add_argument("--min-like", type=float, default=0.80,
                   help="floor on val NDCG@10 like (default: %(default)s, about the version-1 default "
                        "profile's val figure, 0.7998: the issue's 'like not below today's' on val)")
    p.add_argument("--gauc-tolerance", type=float, default=0.005,
                   help="val GAUC differences up to this count as ties, broken by the higher val "
                        "NDCG@10 like (default: %(default)s, the drop in GAUC the product treats as "
                        "a regression: the replay gate's maxDrop)")
    p.add_argument("--answers", help="JSON file caching the server's answers (read if present, "
                                     "else written): search again without replaying")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    if args.split != "val":
        p.error(f"--split {args.split}: weights are chosen on the val split only; the test days "
                "are measured once, afterwards, with make eval")

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
    # The server's own order (the profile it ran with) for reference.
    served = {}
    for tl in lists:
        n = len(answers.get(tl.key, []))
        for i, item in enumerate(answers.get(tl.key, [])):
            served[(tl.key, item["video_id"])] = float(n - i)
    ref = np.array([served[(tl.key, item["video_id"])] for tl in lists for item in answers.get(tl.key, [])])
    print(f"split {args.split}: {len(lists)} lists, {len(t.finish)} candidates, "
          f"{len(pairs.count)} lists for GAUC")
    print(f"server's current order: GAUC {pairs.gauc(ref):.4f}  NDCG@10 watch "
          f"{weights.ndcg(t, ref, t.watch):.4f}  like {weights.ndcg(t, ref, t.like):.4f}")

    lifts = [float(x) for x in args.lifts.split(",")]
    candidates = [(w, lift) for lift in lifts for w in weights.grid(args.step, fixed)]
    choice, rejected = weights.select(t, pairs, candidates, args.min_watch, args.min_like,
                                      args.gauc_tolerance)
    print(f"{len(candidates)} (weights, lift) candidates on the simplex (weights sum to 1, fixed "
          f"ones included); rule: among GAUC(finish) within {args.gauc_tolerance} of the best, "
          f"the best NDCG@10 like with NDCG@10 watch >= {args.min_watch} and like >= "
          f"{args.min_like}; {rejected} tied or better candidates failed the NDCG floors")
    if choice is None:
        print("no candidate meets the floors", file=sys.stderr)
        return 1
    print(f"chosen: GAUC {choice.gauc:.4f}  NDCG@10 watch {choice.ndcg_watch:.4f}  like "
          f"{choice.ndcg_like:.4f}")
    print(weights.profile_yaml(choice), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
