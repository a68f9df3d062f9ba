#!/usr/bin/env bash
# Benchmarks/yardsticks.sh [SECONDS] [ROUNDS]
#
# RingStorm's echo server on both backends beside the C yardsticks (../shared/yardsticks: a liburing
# echo server and an epoll echo server), at 1,000 and 10,000 connections, measured by the yardsticks'
# own measure.sh: server pinned to CPU 0, the C closed-loop client on CPU 1, 64-byte messages, one in
# flight per connection. Prints one line per run and, per round, each backend's ratio to its yardstick.
# Servers run interleaved so each ratio compares runs taken minutes apart on the same noisy machine.
#
# WITH_NIO=1 adds nio-echo, a minimal SwiftNIO echo server on one event loop (Benchmarks/Sources/nio-echo,
# built here in release from the nested Benchmarks package unless NIO_ECHO=PATH names a binary), after
# the four servers in each round, and a second ratio line per round: ringstorm's backends to SwiftNIO.
#
# BASELINE=PATH adds a second ringstorm binary (an earlier commit's release build) right after each of
# this build's runs, and per round a line with this build's CPU per message and syscalls per message as
# ratios to the baseline's: before and after a change, in one sitting.
#   git worktree add /tmp/rs-base <commit> && swift build -c release --package-path /tmp/rs-base
#   BASELINE=/tmp/rs-base/.build/release/ringstorm Benchmarks/yardsticks.sh 8 2
#
# Needs: a release build (swift build -c release), perf (apt-get install -y linux-perf), the yardsticks.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
secs=${1:-8}
rounds=${2:-2}
yard=${YARDSTICKS:-$here/../shared/yardsticks}
ringstorm=${RINGSTORM:-$here/.build/release/ringstorm}
need_release_build "$ringstorm"
need_yardsticks "$yard"
command -v perf >/dev/null || { echo "perf missing: Scripts/install-dependencies --with-perf" >&2; exit 2; }
bin=${YARDSTICKS_BUILD:-/tmp/ringstorm-yardsticks}
with_nio=${WITH_NIO:-0}
baseline=${BASELINE:-}
[ -z "$baseline" ] || [ -x "$baseline" ] || { echo "BASELINE=$baseline is not an executable ringstorm" >&2; exit 2; }
if [ "$with_nio" = 1 ]; then
  nio=${NIO_ECHO:-$here/Benchmarks/.build/release/nio-echo}
  if [ -z "${NIO_ECHO:-}" ]; then
    echo "building nio-echo (swift build -c release --package-path Benchmarks --product nio-echo)" >&2
    swift build -c release --package-path "$here/Benchmarks" --product nio-echo >&2 \
      || { echo "could not build nio-echo in $here/Benchmarks" >&2; exit 2; }
  fi
  [ -x "$nio" ] || { echo "no nio-echo at $nio" >&2; exit 2; }
fi
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
  cpu=$(sed -n 's/.*server_cpu_us_per_msg=\([0-9.]*\).*/\1/p' <<<"$line")
  sys=$(sed -n 's/.*syscalls_per_msg=\([0-9.]*\).*/\1/p' <<<"$line")
}
versus_baseline() { # backend conns cpu sys base-cpu base-sys
  awk -v r="$round" -v b="$1" -v c="$2" -v cpu="$3" -v sys="$4" -v bcpu="$5" -v bsys="$6" 'BEGIN {
    printf "round %s conns=%s %s after/before cpu_per_msg=%.3f syscalls_per_msg=%.3f/%.3f\n", r, c, b, (bcpu ? cpu/bcpu : 0), sys, bsys }'
}
for round in $(seq "$rounds"); do
  for conns in 1000 10000; do
    run c-uring-echo "$conns" "$bin/c-uring-echo" PORT; cu=$rate
    run ringstorm-uring "$conns" "$ringstorm" serve --protocol echo --listen 127.0.0.1:PORT --backend uring --report-interval 0; ru=$rate
    if [ -n "$baseline" ]; then
      ucpu=$cpu usys=$sys
      run baseline-uring "$conns" "$baseline" serve --protocol echo --listen 127.0.0.1:PORT --backend uring --report-interval 0
      versus_baseline uring "$conns" "$ucpu" "$usys" "$cpu" "$sys"
    fi
    run c-epoll-echo "$conns" "$bin/c-epoll-echo" PORT; ce=$rate
    run ringstorm-epoll "$conns" "$ringstorm" serve --protocol echo --listen 127.0.0.1:PORT --backend epoll --report-interval 0; re=$rate
    if [ -n "$baseline" ]; then
      ecpu=$cpu esys=$sys
      run baseline-epoll "$conns" "$baseline" serve --protocol echo --listen 127.0.0.1:PORT --backend epoll --report-interval 0
      versus_baseline epoll "$conns" "$ecpu" "$esys" "$cpu" "$sys"
    fi
    awk -v r="$round" -v c="$conns" -v cu="$cu" -v ru="$ru" -v ce="$ce" -v re="$re" 'BEGIN {
      printf "round %s conns=%s ratio uring/c-uring=%.2f epoll/c-epoll=%.2f\n", r, c, (cu ? ru/cu : 0), (ce ? re/ce : 0) }'
    if [ "$with_nio" = 1 ]; then
      run nio-echo "$conns" "$nio" --host 127.0.0.1 --port PORT; ne=$rate
      awk -v r="$round" -v c="$conns" -v ru="$ru" -v re="$re" -v ne="$ne" 'BEGIN {
        printf "round %s conns=%s ratio uring/nio=%.2f epoll/nio=%.2f\n", r, c, (ne ? ru/ne : 0), (ne ? re/ne : 0) }'
    fi
  done
done
