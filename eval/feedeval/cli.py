"""Command line: replay KuaiRand through feed-server and print the offline-quality table."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time

from . import data
from .baselines import PopularityRanker, RandomRanker, ShortestFirstRanker
from .client import FeedServerClient, ServerError, ServerProcess
from .replay import replay
from .data import rfc3339_ms
from .report import METRICS, evaluate, format_table
from .tuned import format_tune, tune_summary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="kuairand_replay",
        description="Replay the KuaiRand logs through feed-server's HTTP API and compare its ranking "
                    "with random and most-popular baselines (GAUC finish, NDCG@10 watch ratio, "
                    "NDCG@10 like).")
    p.add_argument("--data", default=data.default_data_dir(),
                   help="directory holding val.parquet and item_features.parquet (default: %(default)s)")
    p.add_argument("--server", metavar="URL",
                   help="use this running feed-server (it should start empty); default: start "
                        "target/release/feed-server on a free loopback port and stop it afterwards")
    p.add_argument("--binary", default=os.path.join(REPO, "target", "release", "feed-server"),
                   help="feed-server binary to start when --server is not given (default: %(default)s)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for the started feed-server (repeatable), e.g. "
                        "--server-arg=--profile --server-arg=FILE")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny deterministic slice (the first --smoke-users users): runs in seconds")
    p.add_argument("--smoke-users", type=int, default=200, help="users in the --smoke slice (default: %(default)s)")
    p.add_argument("--split", choices=sorted(data.SPLITS), default="test",
                   help="test: history 04-25..28, targets 04-29..30 (the protocol); val: history "
                        "04-25..27, target 04-28, for choosing knobs without touching the test "
                        "targets (default: %(default)s)")
    p.add_argument("--seed", type=int, default=7, help="seed for random orders and tie-breaks (default: %(default)s)")
    p.add_argument("--random-draws", type=int, default=20,
                   help="random orders per list; the random baseline is their mean (default: %(default)s)")
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON to OUT")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples for the confidence intervals (default: %(default)s)")
    p.add_argument("--max-reject-frac", type=float, default=0.01,
                   help="fail when the server rejects more than this fraction of events (default: %(default)s)")
    p.add_argument("--no-tune", action="store_true",
                   help="skip the tuned profile: by default the started server is asked for a "
                        "profile tuned on the history window (POST /v1/admin/tune, objective "
                        "finish) and a second server started with it replays the same history and "
                        "ranks the same lists (not with --server)")
    p.add_argument("--keep-tuned", metavar="FILE",
                   help="keep the tuned profile (JSON, a --profile file) in FILE")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    return p.parse_args(argv)


def _serve_and_replay(args, server_args, catalog, events, lists, say, tune_window):
    """Starts a server (or uses ``--server``), replays and ranks; with ``tune_window`` also asks
    the server for a profile tuned on it. Returns (rankings, stats, (status, tune body) or None).
    Raises ServerError, with the server's log tail, when the server fails."""
    server = None
    try:
        if args.server:
            url = args.server
        else:
            server = ServerProcess(args.binary, server_args)
            url = server.start()
            say(f"eval: started {args.binary} {' '.join(server_args)} at {url} (log {server.log.name})")
        client = FeedServerClient(url)
        try:
            rankings, stats = replay(client, catalog.videos, events, lists, args.seed,
                                     progress=not args.quiet)
            answer = client.tune(*tune_window) if tune_window is not None else None
        finally:
            client.close()
    except ServerError as e:
        if server is not None:
            server.stop()
            raise ServerError(f"{e}\nfeed-server log ({server.log.name}), last lines:\n"
                              + server.log_tail()) from e
        raise
    finally:
        if server is not None:
            server.stop()
    if server is not None:
        server.cleanup_log()
    return rankings, stats, answer


def _days(dates) -> str:
    """(20220425, 20220426, 20220427) -> '2022-04-25..27'."""
    first, last = str(dates[0]), str(dates[-1])
    text = f"{first[:4]}-{first[4:6]}-{first[6:]}"
    return text if first == last else f"{text}..{last[6:]}"


def _terminate(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception so that the server is stopped on the way out.
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)

    def say(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    started = time.monotonic()
    log, items = data.load(args.data)
    if args.smoke:
        log = data.smoke_slice(log, args.smoke_users)
    history_dates, target_dates = data.SPLITS[args.split]
    history, lists = data.split(log, history_dates=history_dates, target_dates=target_dates)
    if not lists:
        print("eval: no target lists to rank", file=sys.stderr)
        return 2
    catalog = data.build_catalog(items, only_ids=set(log["video_id"]) if args.smoke else None)
    events = data.history_events(history)
    say(f"eval: {len(catalog.videos)} videos, {len(history)} history exposures -> {len(events)} events, "
        f"{len(lists)} target lists ({len({t.user_id for t in lists})} users)"
        + (" [smoke]" if args.smoke else ""))

    # The history window, by the events' own times: what the tune may learn from.
    window = (rfc3339_ms(events[0][0]), rfc3339_ms(events[-1][0] + 1)) if events else None
    want_tune = not args.no_tune and not args.server and window is not None
    try:
        server_rankings, stats, tune_answer = _serve_and_replay(
            args, args.server_arg, catalog, events, lists, say, window if want_tune else None)
        tuned_rankings = tuned_profile_path = None
        if tune_answer is not None and tune_answer[0] == 200:
            profile = tune_answer[1]["profile"]
            with tempfile.NamedTemporaryFile("w", prefix="tuned-profile-", suffix=".json",
                                             delete=False) as f:
                json.dump(profile, f, indent=2, sort_keys=True)
                tuned_profile_path = f.name
            say(f"eval: tuned profile in {tuned_profile_path}; replaying with it")
            try:
                tuned_rankings, _, _ = _serve_and_replay(
                    args, [*args.server_arg, "--profile", tuned_profile_path], catalog, events,
                    lists, say, None)
            finally:
                if args.keep_tuned is None:
                    os.unlink(tuned_profile_path)
                else:
                    os.replace(tuned_profile_path, args.keep_tuned)
    except ServerError as e:
        print(f"eval: ERROR: {e}", file=sys.stderr)
        return 1

    popular = PopularityRanker(history, args.seed)
    rands = [RandomRanker(args.seed, d) for d in range(max(1, args.random_draws))]
    shortest = ShortestFirstRanker({int(v["id"]): v["duration_ms"] for v in catalog.videos}, args.seed)
    rankings = {
        "feed-server": server_rankings,
        **({"tuned": tuned_rankings} if tuned_rankings is not None else {}),
        "most-popular": {tl.key: popular.rank(tl) for tl in lists},
        "shortest-first": {tl.key: shortest.rank(tl) for tl in lists},
        "random": {tl.key: [r.rank(tl) for r in rands] for tl in lists},
    }
    result = evaluate(lists, rankings, baseline="most-popular", seed=args.seed, bootstrap=args.bootstrap)
    variants = ",".join(sorted(stats.variants)) or "?"
    labels = {"feed-server": f"feed-server (variant {variants})",
              "tuned": "feed-server, tuned profile",
              "random": f"random (mean of {len(rands)} orders)" if len(rands) > 1 else "random"}

    result.update({
        "protocol": {
            "split": args.split, "history_dates": list(history_dates),
            "target_dates": list(target_dates),
            "gauc_group": "user-day list", "k": 10, "min_candidates": 2, "smoke": args.smoke,
            "seed": args.seed, "random_draws": max(1, args.random_draws),
        },
        "replay": {
            "server": args.server or args.binary, "videos": stats.videos,
            "videos_with_imputed_duration": catalog.imputed_duration,
            "history_events": len(events), "events_sent": stats.events_sent,
            "events_accepted": stats.events_accepted, "rejections": stats.rejections,
            "rank_requests": stats.rank_requests, "missing_in_response": stats.missing_in_response,
            "unexpected_in_response": stats.unexpected_in_response, "variants": stats.variants,
            "seconds": {k: round(v, 2) for k, v in stats.seconds.items()},
        },
        "seconds_total": round(time.monotonic() - started, 2),
    })
    if tune_answer is not None:
        result["tune"] = tune_summary(tune_answer, window)
        if tuned_rankings is not None:
            pair = evaluate(lists, {"feed-server": server_rankings, "tuned": tuned_rankings},
                            baseline="feed-server", seed=args.seed, bootstrap=args.bootstrap)
            result["tune"]["vs_default"] = {
                key: pair["methods"]["tuned"][key].get("vs_feed-server") for key, _ in METRICS}

    print()
    print(f"KuaiRand offline replay{' (smoke slice)' if args.smoke else ''}, split {args.split}: "
          f"history {_days(history_dates)}, targets {_days(target_dates)}, "
          f"{result['lists']} lists of >= 2 videos, {result['users']} users")
    print(format_table(result, labels))
    if "tune" in result:
        print(format_tune(result["tune"]))
    print(f"events: {stats.events_accepted}/{stats.events_sent} accepted"
          + (f", rejected by code: {stats.rejections}" if stats.rejections else "")
          + f"; {stats.rank_requests} rank requests; {result['seconds_total']:.1f}s total")
    if stats.missing_in_response:
        print(f"warning: the server left out {stats.missing_in_response} candidates (scored as ranked last)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
        say(f"eval: wrote {args.json}")

    rejected = stats.events_sent - stats.events_accepted
    if stats.events_sent and rejected > args.max_reject_frac * stats.events_sent:
        print(f"eval: ERROR: the server rejected {rejected} of {stats.events_sent} events; examples: "
              f"{json.dumps(stats.rejection_examples)[:1500]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
