#!/usr/bin/env bash
# Benchmarks/load-cost.sh [SECONDS] [ROUNDS] [CONNECTIONS]
#
# The load generator's own cost: `ringstorm load --protocol echo --closed-loop` (64-byte messages, one
# in flight per connection) against the C liburing echo yardstick, load pinned to CPU 1 and the server to
# CPU 0, on both backends. Prints, per run, requests/s and the load process's CPU µs per request (user +
# system from its rusage, over the whole run including the ramp and the end). BASELINE=PATH runs an
# earlier build's ringstorm right after each run of this one and prints after/before ratios.
# With the default closed loop each round first runs the yardsticks' C client (`c-echo-client`, liburing,
# the same one in flight per connection) the same way and prints ringstorm's CPU per request as a ratio
# to it (issue 11's target: the io_uring load generator at most 0.80x the C client's).
# PACING='--interval 20ms' measures the open loop instead (default: --closed-loop --pipeline 1); with
# 1,000 connections that asks 50,000 requests/s, more than one core answers: the open loop at overload.
#
# Needs: a release build (swift build -c release), the yardsticks (../shared/yardsticks or YARDSTICKS=DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
secs=${1:-8}
rounds=${2:-2}
conns=${3:-1000}
yard=${YARDSTICKS:-$here/../shared/yardsticks}
ringstorm=${RINGSTORM:-$here/.build/release/ringstorm}
baseline=${BASELINE:-}
read -r -a pacing <<<"${PACING:---closed-loop --pipeline 1}"
need_release_build "$ringstorm"
need_yardsticks "$yard"
[ -z "$baseline" ] || [ -x "$baseline" ] || { echo "BASELINE=$baseline is not an executable ringstorm" >&2; exit 2; }
bin=${YARDSTICKS_BUILD:-/tmp/ringstorm-yardsticks}
"$yard/measure.sh" build >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
port=7600
measure() { # name binary backend -> sets per (µs/request) and rps
  local name=$1 binary=$2 backend=$3
  port=$((port + 1))
  taskset -c 0 "$bin/c-uring-echo" "$port" >/dev/null 2>&1 &
  local server=$!
  wait_port "$port" 50 || true
  /usr/bin/env time -f "%U %S" -o "$tmp/time" taskset -c 1 "$binary" load --protocol echo --target "127.0.0.1:$port" \
    --backend "$backend" --connections "$conns" --connect-rate 100000 "${pacing[@]}" --message-size 64 \
    --duration "${secs}s" --json "$tmp/report.json" >/dev/null 2>"$tmp/stderr" || { cat "$tmp/stderr" >&2; kill $server; exit 1; }
  kill $server; wait $server 2>/dev/null || true
  read -r user sys <"$tmp/time"
  local answered
  answered=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['requests']['answered'])" "$tmp/report.json")
  per=$(awk -v u="$user" -v s="$sys" -v n="$answered" 'BEGIN { printf "%.3f", n ? (u + s) * 1e6 / n : 0 }')
  rps=$(awk -v n="$answered" -v d="$secs" 'BEGIN { printf "%.0f", n / d }')
  echo "$name conns=$conns ${pacing[*]} requests/s=$rps load_cpu_us_per_request=$per"
}
measure_c_client() { # the yardsticks' C closed-loop client (liburing) the same way -> sets c_per
  port=$((port + 1))
  taskset -c 0 "$bin/c-uring-echo" "$port" >/dev/null 2>&1 &
  local server=$!
  wait_port "$port" 50 || true
  /usr/bin/env time -f "%U %S" -o "$tmp/time" taskset -c 1 "$bin/c-echo-client" -p "$port" -c "$conns" -m 64 -w 0 \
    -d "$secs" >"$tmp/c.out" 2>&1 || { cat "$tmp/c.out" >&2; kill $server; exit 1; }
  kill $server; wait $server 2>/dev/null || true
  read -r user sys <"$tmp/time"
  local msgs; msgs=$(sed -n 's/.* msgs=\([0-9]*\).*/\1/p' "$tmp/c.out")
  c_per=$(awk -v u="$user" -v s="$sys" -v n="$msgs" 'BEGIN { printf "%.3f", n ? (u + s) * 1e6 / n : 0 }')
  echo "c-echo-client conns=$conns requests/s=$(awk -v n="$msgs" -v d="$secs" 'BEGIN { printf "%.0f", n / d }') load_cpu_us_per_request=$c_per"
}
closed=0
[ "${pacing[*]}" != "--closed-loop --pipeline 1" ] || closed=1
for round in $(seq "$rounds"); do
  [ "$closed" = 0 ] || measure_c_client
  for backend in uring epoll; do
    measure "ringstorm-$backend" "$ringstorm" "$backend"; after=$per
    [ "$closed" = 0 ] || awk -v r="$round" -v b="$backend" -v a="$after" -v c="$c_per" 'BEGIN {
      printf "round %s %s ringstorm/c-echo-client load_cpu_per_request=%.3f\n", r, b, (c ? a/c : 0) }'
    if [ -n "$baseline" ]; then
      measure "baseline-$backend" "$baseline" "$backend"; before=$per
      awk -v r="$round" -v b="$backend" -v a="$after" -v p="$before" 'BEGIN {
        printf "round %s %s after/before load_cpu_per_request=%.3f\n", r, b, (p ? a/p : 0) }'
    fi
  done
done
