#!/usr/bin/env python3
"""Redis CPU of feed-server's event writes in different command forms, in isolation.

Starts a private redis-server (free loopback port, temp dir, no persistence), replays
generated workloads through `redis-cli --pipe` and reads Redis's own CPU (`INFO cpu`) around
each replay, alternating the forms so that the host's drift hits them alike:

accept (one event POST: 5 users, each 4 affinity `HINCRBYFLOAT`s, a 16-dimension `BITFIELD`,
the seen set's `ZADD` + `ZREMRANGEBYRANK`, `LPUSH` + `LTRIM`; the versions; the stream append):
  multi   MULTI/EXEC with the version script (`EVAL`: INCR + PUBLISH per user) — feed-server's form
  plain   MULTI/EXEC with INCR and PUBLISH queued instead of the script (a constant message)
  nover   MULTI/EXEC without versions at all (the floor)
  script  one `EVAL` running every write as runs of one command, key and arity
and multi without one part, or with it in another form, to size each part of the transaction:
  fixed   the affinities as integer `HINCRBY`s (fixed point) instead of `HINCRBYFLOAT`s
  noaff   without the affinity increments
  notaste without the taste's `BITFIELD`
  notrim  without the two trims
  sumslog the affinities and the taste as one 320-byte `APPEND` per user to its sums log
          (`--user-sums-format log`) instead of the `HINCRBYFLOAT`s and the `BITFIELD`

apply (one consumer round: 350 events over Zipf-drawn videos of 100,000: per distinct video
4 `HINCRBYFLOAT`s and 4 `ZINCRBY`s on 100,000-member sets, an exposure-log `XADD` per event):
  amulti  MULTI/EXEC (no conditional check possible: not a design, a measure of the writes)
  ascript one `EVAL` of runs, as the apply script — feed-server's form

Usage: scripts/redis-write-forms.py [--posts 20000] [--rounds-per-form 400] [--repeats 4]
BENCHMARKS.md, "Where Redis's time goes, in every make bench", has a run without the four
part forms (fixed, noaff, notaste, notrim), "What did not make the relay POST cheaper" one with them,
"The user's sums in one append" one of sumslog.
"""

import argparse
import bisect
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VERSIONS = """for i, key in ipairs(KEYS) do
  local v = redis.call('INCR', key)
  redis.pcall('PUBLISH', ARGV[1], v .. ' ' .. ARGV[i + 1])
end
return #KEYS"""

# Runs after `local i` (the first run's index in ARGV); leaves `call` in scope.
RUNS = """local call = redis.call
local last = #ARGV
while i <= last do
  local name, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  local count, arity = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  if arity == 2 then
    for _ = 1, count do
      call(name, key, ARGV[i], ARGV[i + 1])
      i = i + 2
    end
  else
    for _ = 1, count do
      call(name, key, unpack(ARGV, i, i + arity - 1))
      i = i + arity
    end
  end
end
"""

# KEYS: stream, backlog, the users' version keys (ARGV[5] of them), then the written keys.
ACCEPT = """local m = tonumber(ARGV[5])
local i = 6 + m
""" + RUNS + """for j = 0, m - 1 do
  local v = call('INCR', KEYS[3 + j])
  redis.pcall('PUBLISH', ARGV[4], v .. ' ' .. ARGV[6 + j])
end
call('XADD', KEYS[1], '*', ARGV[3], ARGV[1])
return call('INCRBY', KEYS[2], ARGV[2])"""

APPLY = "local i = 1\n" + RUNS + "return 1"


def resp(args):
    out = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(out) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in out)


def runs_argv(cmds, keys):
    """`cmds` as runs of one name, key and arity (keys appended to `keys`, 1-based)."""
    index = {k: i + 1 for i, k in enumerate(keys)}
    runs = []
    for name, key, *args in cmds:
        if key not in index:
            keys.append(key)
            index[key] = len(keys)
        k = index[key]
        if runs and runs[-1][:3] == [name, k, len(args)]:
            runs[-1][3].append(args)
        else:
            runs.append([name, k, len(args), [args]])
    argv = []
    for name, k, arity, calls in runs:
        argv += [name, k, len(calls), arity]
        for args in calls:
            argv += args
    return argv


def accept_workload(form, posts, rng):
    payload = b"x" * 300
    out = bytearray()
    for _ in range(posts):
        users = rng.sample(range(20_000), 5)
        cmds = []
        for u in users:
            for f in rng.sample(range(30), 4):
                if form == "sumslog":
                    continue
                # Fixed-point sums in hashes of their own: every hash keeps its 30 fields.
                if form == "fixed":
                    cmds.append(["HINCRBY", f"af{{u{u}}}", f"tag{f}", "335544320"])
                elif form != "noaff":
                    cmds.append(["HINCRBYFLOAT", f"a{{u{u}}}", f"tag{f}", "0.3125"])
            bf = ["BITFIELD", f"t{{u{u}}}:e1", "OVERFLOW", "SAT"]
            for d in range(16):
                bf += ["INCRBY", "i64", f"#{d}", str(rng.randint(-99_999, 99_999))]
            if form == "sumslog":
                # Not drawn: every form draws the same users and videos.
                cmds.append(["APPEND", f"sl{{u{u}}}", b"s" * 320])
            elif form != "notaste":
                cmds.append(bf)
            cmds.append(["ZADD", f"s{{u{u}}}", "GT", "1700000000.5", f"v{rng.randint(0, 99_999)}",
                         "1700000001.5", f"v{rng.randint(0, 99_999)}"])
            if form != "notrim":
                cmds.append(["ZREMRANGEBYRANK", f"s{{u{u}}}", "0", "-5001"])
            cmds.append(["LPUSH", f"r{{u{u}}}", f"v{rng.randint(0, 99_999)}"])
            if form != "notrim":
                cmds.append(["LTRIM", f"r{{u{u}}}", "0", "49"])
        versions = [f"ver{{u{u}}}" for u in users]
        if form == "script":
            keys = ["ev", "evq"] + versions
            argv = runs_argv(cmds, keys)
            head = [payload, 10, "d", "Pwrites", len(users)] + [f"u{u}" for u in users]
            out += resp(["EVAL", ACCEPT, len(keys)] + keys + head + argv)
            continue
        out += resp(["MULTI"])
        for c in cmds:
            out += resp(c)
        if form in ("multi", *PARTS):
            out += resp(["EVAL", VERSIONS, len(users)] + versions + ["Pwrites"] + [f"u{u}" for u in users])
        elif form == "plain":
            for v in versions:
                out += resp(["INCR", v])
            for u in users:
                out += resp(["PUBLISH", "Pwrites", f"7 u{u}"])
        out += resp(["XADD", "ev", "*", "d", payload])
        out += resp(["INCRBY", "evq", 10])
        out += resp(["EXEC"])
    return bytes(out)


# The forms of `multi` that drop or change one part of it.
PARTS = ("fixed", "noaff", "notaste", "notrim", "sumslog")
ACCEPT_FORMS = ("multi", "plain", "nover", "script", *PARTS)

SETS = ["exp", "tr:g", "tr:en", "trr:us"]


def populate():
    rng = random.Random(1)
    out = bytearray()
    for s in SETS:
        for c in range(0, 100_000, 1_000):
            args = ["ZADD", s]
            for v in range(c, c + 1_000):
                args += [rng.random() * 100, f"v{v}"]
            out += resp(args)
    return bytes(out)


def apply_workload(form, rounds, rng):
    weights = [1.0 / (k + 1) for k in range(100_000)]
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    out = bytearray()
    for _ in range(rounds):
        videos = sorted({bisect.bisect(cum, rng.random() * total) for _ in range(350)})
        cmds = []
        for v in videos:
            for f in ["views", "plays", "likes", "watch"]:
                cmds.append(["HINCRBYFLOAT", f"vs:{v}", f, "1"])
        for s in SETS:
            for v in videos:
                cmds.append(["ZINCRBY", s, "1.5", f"v{v}"])
        for _ in range(350):
            event = f"u{rng.randint(0, 99_999)}\x1fv{rng.randint(0, 99_999)}\x1fimpression\x1f1700000000"
            cmds.append(["XADD", "xlog", "*", "e", event])
        if form == "amulti":
            out += resp(["MULTI"])
            for c in cmds:
                out += resp(c)
            out += resp(["EXEC"])
        else:
            keys = []
            argv = runs_argv(cmds, keys)
            out += resp(["EVAL", APPLY, len(keys)] + keys + argv)
        out += resp(["XTRIM", "xlog", "MAXLEN", "~", "100000"])
    return bytes(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=20_000, help="accept transactions per replay")
    ap.add_argument("--rounds-per-form", type=int, default=400, help="apply rounds per replay")
    ap.add_argument("--repeats", type=int, default=4, help="alternations of the forms")
    args = ap.parse_args()
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run scripts/install-deps.sh (or apt-get install redis-server)")
    # A TERM (a killed run) unwinds through the cleanup below like an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="redis-write-forms."))
    # A Unix socket in its own directory, no TCP port: no other process's Redis can answer.
    sock = work / "redis.sock"
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
         "--dir", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"redis-write-forms: a private redis-server, pid {server.pid}, in {work}", file=sys.stderr)
    cli = ["redis-cli", "-s", str(sock)]
    try:
        for _ in range(100):
            if server.poll() is not None:
                sys.exit(f"redis-server exited at start (status {server.returncode})")
            if subprocess.run(cli + ["PING"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        else:
            sys.exit("redis-server did not answer")

        def info(section, field):
            text = subprocess.run(cli + ["INFO", section], capture_output=True, text=True, check=True).stdout
            return sum(float(line.split(":")[1]) for line in text.splitlines() if line.startswith(field + ":"))

        def cpu():
            return info("cpu", "used_cpu_sys") + info("cpu", "used_cpu_user")

        def replay(data):
            # `--pipe` counts only top-level errors; Redis's own count also has those inside a
            # transaction's replies and scripts. A refused command would be timed as work.
            errors = info("stats", "total_error_replies")
            out = subprocess.run(cli + ["--pipe"], input=data, capture_output=True, check=True).stdout
            summary = out.decode(errors="replace").strip().splitlines()[-1]
            if info("stats", "total_error_replies") != errors or not summary.startswith("errors: 0,"):
                sys.exit(f"a replay had errors ({summary}): see INFO errorstats")

        workloads = {f: accept_workload(f, args.posts, random.Random(7)) for f in ACCEPT_FORMS}
        workloads.update({f: apply_workload(f, args.rounds_per_form, random.Random(9)) for f in ("amulti", "ascript")})
        replay(populate())
        for data in workloads.values():  # every key exists before anything is measured
            replay(data)
        results = {f: [] for f in workloads}
        for _ in range(args.repeats):
            for form, data in workloads.items():
                before = cpu()
                replay(data)
                used = cpu() - before
                per = used / (args.posts if not form.startswith("a") else args.rounds_per_form)
                results[form].append(per * 1e6)
        for form, values in results.items():
            unit = "µs per round" if form.startswith("a") else "µs per POST"
            print(f"{form:8} {unit:13} " + " ".join(f"{v:8.1f}" for v in values)
                  + f"   mean {sum(values) / len(values):8.1f}")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
