#!/usr/bin/env bash
# Two feed-server builds compared alternately on one world, by default on the uncached ranking
# path (BENCHMARKS.md: a shared host's speed drifts over minutes, so runs minutes apart cannot
# resolve a few percent; these runs are ~25 s apart).
#
#   scripts/bench-ab.sh [--rounds N] [--duration-secs S] [--phases P] [--out DIR]
#                       [--a-flags F] [--b-flags F] [--a-redis-nice N] [--b-redis-nice N]
#                       [--profile SECS] A_DIR B_DIR
#
# --phases: the `feedroll-loadgen run` phases of each run (default `uncached`; e.g.
# `baseline,cached` for cached pages beside the static baseline, measured in every run).
#
# A_DIR and B_DIR each hold release binaries: feed-server, feedroll-loadgen and
# feedroll-static-baseline (copy them from target/release after building each version). One
# private redis-server on a free loopback port; the bench world (defaults of
# `feedroll-loadgen load`) loaded once through A's feed-server; then N rounds (default 6) of
# both, A first in odd rounds and B first in even ones (on this host the second run of a pair
# tends to be the faster whichever build it is: BENCHMARKS.md, "Friends' lists: a full map keeps
# its usable lists"; give an even N): feed-server restarted on the same Redis, the cached heads
# dropped (every run ranks anew), and `feedroll-loadgen run --phases P` (3 s lead-in, S s
# measured, default 10, a fresh cold-user order each run). Prints one line per phase and run (requests/s, bytes per
# response, server (feed-server or baseline) and Redis CPU µs per request, loadgen CPU µs per
# request, CPU of bench / other processes) and writes each run's results to DIR (default
# bench-out/ab), where Redis's time went per phase included (`INFO commandstats`); at the end,
# scripts/ab-ratios.py's comparison of the pairs by CPU per request over the load generator's
# (DIR/ratios.txt). Everything it starts is stopped on every exit path.
#
# --a-flags / --b-flags: feed-server flags of one side only (word-split; e.g. `--b-flags
# "--shared-aggregates process"` compares the shared aggregates' modes, one build as A and B).
# Each side then has its own redis-server, the same world loaded into it through its own
# feed-server with its flags, as a deployment of that configuration would hold it.
#
# --a-redis-nice / --b-redis-nice: the `nice` value Redis runs at during that side's runs
# (default BENCH_REDIS_NICE, -10: scripts/bench-lib.sh says why); e.g. `--a-redis-nice 0`
# measures what Redis's priority is worth, one build as A and B.
#
# --profile SECS: in every run, `perf record --call-graph dwarf` of feed-server for SECS seconds
# from 1 s into the first phase's measured window (SECS at most the phase's length minus 1), then
# DIR/<run>.profile.txt: scripts/perf-shares.py's shares of feed-server's CPU by part, the kernel's,
# and the top functions. Compare the sides' shares, not a profiled run's rate with an unprofiled
# one's (the recording costs CPU). Needs perf (Debian: linux-perf) and a perf_event_paranoid that
# lets it attach.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

rounds=6 duration=10 phases=uncached out=bench-out/ab dirs=() a_flags="" b_flags="" profile=""
a_nice="$redis_nice" b_nice="$redis_nice"
while (($#)); do
  case "$1" in
    -h|--help) sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --rounds) rounds="$2"; shift ;;
    --duration-secs) duration="$2"; shift ;;
    --phases) phases="$2"; shift ;;
    --out) out="$2"; shift ;;
    --a-flags) a_flags="$2"; shift ;;
    --b-flags) b_flags="$2"; shift ;;
    --a-redis-nice) a_nice="$2"; shift ;;
    --b-redis-nice) b_nice="$2"; shift ;;
    --profile) profile="$2"; shift ;;
    *) dirs+=("$1") ;;
  esac
  shift
done
((${#dirs[@]} == 2)) || { echo "bench-ab: give two binary directories (A_DIR B_DIR); --help" >&2; exit 2; }
for dir in "${dirs[@]}"; do
  for exe in feed-server feedroll-loadgen feedroll-static-baseline; do
    [ -x "$dir/$exe" ] || { echo "bench-ab: $dir has no executable $exe" >&2; exit 1; }
  done
done
require_redis bench-ab
if [ -n "$profile" ]; then
  [[ "$profile" =~ ^[1-9][0-9]*$ ]] && ((profile < duration)) || {
    echo "bench-ab: --profile takes whole seconds, fewer than --duration-secs ($duration)" >&2; exit 2; }
  command -v perf >/dev/null || { echo "bench-ab: --profile needs perf (Debian: linux-perf)" >&2; exit 1; }
fi

tmp="$(mktemp -d -t feedroll-bench-ab.XXXXXX)"
mkdir -p "$out"
bench_traps

loadgen="${dirs[0]}/feedroll-loadgen"
mapfile -t ports < <("$loadgen" ports --count 4)
redis_port="${ports[0]}" server_port="${ports[1]}" baseline_port="${ports[2]}"
start_private_redis "$redis_port"
redis_a=("$redis_port" "$redis_pid") redis_b=("$redis_port" "$redis_pid")
if [ -n "$a_flags$b_flags" ]; then
  mkdir -p "$tmp/b"
  start_private_redis "${ports[3]}" "$tmp/b"
  redis_b=("${ports[3]}" "$redis_pid")
fi
export RUST_LOG="${RUST_LOG:-warn}"

start_server() { # binary dir, redis port, extra flags...; sets server_pid
  "$1/feed-server" --listen "127.0.0.1:$server_port" --redis-url "redis://127.0.0.1:$2/" \
    --log-format text "${@:3}" >>"$tmp/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  "$loadgen" wait-ready --url "127.0.0.1:$server_port" >/dev/null
}
stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || { echo "bench-ab: feed-server exited with an error" >&2; return 1; }
}

# shellcheck disable=SC2086 # the side's flags are word-split on purpose
load_world() { # binary dir, redis port, side flags
  echo "bench-ab: loading the world through $1/feed-server${3:+ ($3)}" >&2
  start_server "$1" "$2" --warmup-users 0 --store-timeout-ms 10000 $3
  run "$loadgen" load --url "127.0.0.1:$server_port" >"$out/load.json"
  run "$loadgen" capture --url "127.0.0.1:$server_port" --user u1 --out "$tmp/payload.json" >/dev/null
  stop_server
}
load_world "${dirs[0]}" "${redis_a[0]}" "$a_flags"
if [ "${redis_b[0]}" != "${redis_a[0]}" ]; then
  load_world "${dirs[1]}" "${redis_b[0]}" "$b_flags"
fi
"${dirs[0]}/feedroll-static-baseline" --listen "127.0.0.1:$baseline_port" --body "$tmp/payload.json" \
  >>"$tmp/baseline.log" 2>&1 &
baseline_pid=$!
pids+=("$baseline_pid")
"$loadgen" wait-ready --url "127.0.0.1:$baseline_port" >/dev/null

seed=1000
for ((round = 1; round <= rounds; round++)); do
  order="A B"
  ((round % 2 == 0)) && order="B A"
  for side in $order; do
    dir="${dirs[0]}" redis=("${redis_a[@]}") flags="$a_flags" nice="$a_nice"
    [ "$side" = B ] && dir="${dirs[1]}" redis=("${redis_b[@]}") flags="$b_flags" nice="$b_nice"
    # Both sides' priorities must hold, or the runs would compare two identical setups.
    set_nice "${redis[1]}" "$nice" || [ "$a_nice" = "$b_nice" ] || {
      echo "bench-ab: the sides' Redis priorities differ ($a_nice, $b_nice) and $side's could not be set" >&2
      exit 1
    }
    for pattern in '*head:*' '*snap:*'; do
      redis-cli -p "${redis[0]}" --scan --pattern "$pattern" |
        xargs -r -n 1000 redis-cli -p "${redis[0]}" DEL >/dev/null
    done
    # shellcheck disable=SC2086 # the side's flags are word-split on purpose
    start_server "$dir" "${redis[0]}" --warmup-users 0 $flags
    seed=$((seed + 1))
    name="$round-$side"
    redis_stats_flags "$dir/feedroll-loadgen" "${redis[0]}"
    if [ -n "$profile" ]; then
      # 3 s of lead-in, then 1 s into the measured window.
      (sleep 4 && exec perf record -q -F 299 --call-graph dwarf -p "$server_pid" \
        -o "$out/$name.perf.data" -- sleep "$profile") >"$out/$name.perf.log" 2>&1 &
      profiler=$!
      pids+=("$profiler")
    fi
    run "$dir/feedroll-loadgen" run --url "127.0.0.1:$server_port" --baseline-url "127.0.0.1:$baseline_port" \
      --server-pid "$server_pid" --redis-pid "${redis[1]}" --baseline-pid "$baseline_pid" "${redis_stats[@]}" \
      --warmed-users 0 --phases "$phases" \
      --duration-secs "$duration" --cold-seed "$seed" --load-json "$out/load.json" \
      --out "$out/$name.json" --markdown "$out/$name.md" >/dev/null 2>"$out/$name.log"
    if [ -n "$profile" ]; then
      wait "$profiler" || { echo "bench-ab: perf record failed: $(tail -n 3 "$out/$name.perf.log")" >&2; exit 1; }
    fi
    stop_server
    if [ -n "$profile" ]; then
      perf script -i "$out/$name.perf.data" 2>/dev/null | python3 scripts/perf-shares.py >"$out/$name.profile.txt"
      echo "bench-ab: $name profiled: $out/$name.profile.txt ($(head -n 1 "$out/$name.profile.txt"))" >&2
    fi
    # The rows of the phase table: name, load, req/s, ... bytes/resp, server, Redis, loadgen, CPU.
    awk -F'|' -v at="$(date -u +%H:%M:%S) round $round $side ($dir):" '
      /^\| phase \|/ { table = 1; next }
      table && /^\| ---/ { next }
      table && /^\|/ { print at $2 "|" $4 "|" $10 "|" $11 "|" $12 "|" $13 "|" $14; next }
      table { exit }' "$out/$name.md"
  done
done
# Each phase's pairs by CPU per request over the load generator's (the host's speed drifts).
python3 scripts/ab-ratios.py "$out" | tee "$out/ratios.txt"
echo "bench-ab: results in $out (the pairs compared: $out/ratios.txt)" >&2
