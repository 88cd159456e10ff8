# Sourced by scripts/bench.sh and scripts/bench-ab.sh: the processes a bench starts, stopped on
# every exit path, and its private Redis. The sourcing script sets `tmp` (a temp dir, removed on
# exit) before it starts anything.

# Exits with an error naming the script ($1) unless redis-server and redis-cli are installed.
require_redis() {
  local exe
  for exe in redis-server redis-cli; do
    command -v "$exe" >/dev/null || { echo "$1: $exe missing (make deps)" >&2; exit 1; }
  done
}

# Processes the bench started, stopped by bench_cleanup.
pids=()

# Stops every process in `pids`, prints the tail of each log in $tmp when the script failed,
# removes $tmp and exits with the script's status.
bench_cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if ((status != 0)); then
    for log in "$tmp"/*.log; do
      [ -f "$log" ] && { echo "--- $log (tail)" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  rm -rf "$tmp"
  exit "$status"
}

# bench_cleanup on exit, and INT/TERM turned into an exit so that it runs.
bench_traps() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Runs a command in the background and waits for it, so that INT/TERM reach the traps at once
# (bash defers traps while a foreground child runs) and the child is stopped with the rest.
run() {
  "$@" &
  local pid=$!
  pids+=("$pid")
  wait "$pid"
}

# Starts a private redis-server on loopback port $1, in $tmp, without persistence, at
# `redis_nice`, and waits until it answers; sets redis_pid.
start_private_redis() { # PORT [DIR, default $tmp]
  local dir="${2:-$tmp}"
  redis-server --port "$1" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --daemonize no --logfile "$dir/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 100); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$1" ping >/dev/null
  set_nice "$redis_pid" "$redis_nice" || true
}

# The scheduling priority the bench's redis-server runs at (`nice` value; BENCH_REDIS_NICE,
# default -10). This host runs the load generator, feed-server and Redis on two cores, where a
# real deployment gives Redis its own CPU: Redis serves every request one at a time, so each
# moment the scheduler runs another process in its place stalls every request in flight, and the
# host idled a quarter of the time while the event phases' rate stayed flat from 16 to 32
# connections (BENCHMARKS.md, "Redis's turn on a shared host"). Priority gives Redis the CPU
# whenever it has work, as its own core would. 0 measures the shared host as it was.
redis_nice="${BENCH_REDIS_NICE:--10}"

# Sets the scheduling priority of process $1 (its main thread: Redis serves commands there) to
# `nice` $2, absolute; warns and fails (the process goes on at the priority it has) when this
# user may not raise priorities.
set_nice() { # PID NICE
  renice "$2" -p "$1" >/dev/null 2>&1 || {
    echo "bench: could not set redis-server's nice to $2 (needs root); it runs at $(ps -o ni= -p "$1" | tr -d ' ')" >&2
    return 1
  }
}

# Sets the array `redis_stats` to the flags that make the loadgen LOADGEN read the command
# statistics of the Redis on loopback port PORT, per phase; empty for a loadgen of an earlier
# build, which lacks the flag.
redis_stats_flags() { # LOADGEN PORT
  redis_stats=()
  if "$1" run --help | grep -q -- '--redis-url'; then
    redis_stats=(--redis-url "redis://127.0.0.1:$2/")
  fi
}
