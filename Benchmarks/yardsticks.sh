#!/usr/bin/env bash
# Benchmarks/yardsticks.sh [SECONDS] [ROUNDS]
#
# RingStorm's echo server on both backends beside the C yardsticks (../shared/yardsticks: a liburing
# echo server and an epoll echo server), at 1,000 and 10,000 connections, measured by the yardsticks'
# own measure.sh: server pinned to CPU 0, the C closed-loop client on CPU 1, 64-byte messages, one in
# flight per connection. Prints one line per run and, per round, each backend's ratio to its yardstick.
# Servers run interleaved so each ratio compares runs taken minutes apart on the same noisy machine.
#
# Needs: a release build (swift build -c release), perf (apt-get install -y linux-perf), the yardsticks.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-8}
rounds=${2:-2}
yard=${YARDSTICKS:-$here/../shared/yardsticks}
ringstorm=${RINGSTORM:-$here/.build/release/ringstorm}
[ -x "$ringstorm" ] || { echo "no release build at $ringstorm: run swift build -c release" >&2; exit 2; }
[ -x "$yard/measure.sh" ] || { echo "no yardsticks at $yard: set YARDSTICKS=DIR" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf missing: Scripts/install-dependencies --with-perf" >&2; exit 2; }
bin=${YARDSTICKS_BUILD:-/tmp/ringstorm-yardsticks}
"$yard/measure.sh" build >/dev/null
port=7400
run() { # name conns command...
  local name=$1 conns=$2; shift 2
  port=$((port + 1))
  local cmd=("${@//PORT/$port}")
  local line
  line=$("$yard/measure.sh" "$port" "$conns" "$secs" -- "${cmd[@]}" 2>&1 | tail -1)
  echo "$name conns=$conns $line"
  rate=$(sed -n 's/.*rate=\([0-9]*\)msg.*/\1/p' <<<"$line")
}
for round in $(seq "$rounds"); do
  for conns in 1000 10000; do
    run c-uring-echo "$conns" "$bin/c-uring-echo" PORT; cu=$rate
    run ringstorm-uring "$conns" "$ringstorm" serve --protocol echo --listen 127.0.0.1:PORT --backend uring --report-interval 0; ru=$rate
    run c-epoll-echo "$conns" "$bin/c-epoll-echo" PORT; ce=$rate
    run ringstorm-epoll "$conns" "$ringstorm" serve --protocol echo --listen 127.0.0.1:PORT --backend epoll --report-interval 0; re=$rate
    awk -v r="$round" -v c="$conns" -v cu="$cu" -v ru="$ru" -v ce="$ce" -v re="$re" 'BEGIN {
      printf "round %s conns=%s ratio uring/c-uring=%.2f epoll/c-epoll=%.2f\n", r, c, (cu ? ru/cu : 0), (ce ? re/ce : 0) }'
  done
done
