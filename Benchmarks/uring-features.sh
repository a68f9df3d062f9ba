#!/usr/bin/env bash
# Benchmarks/uring-features.sh [SECONDS] [ROUNDS] [FEATURE-LISTS...]
#
# io_uring features one at a time (Docs/benchmarks.md, "io_uring features, one at a time"): the C
# liburing echo server (../shared/yardsticks) and `ringstorm serve --protocol echo --backend uring`
# once per `--uring-features` list, interleaved within each round, at 64 B and 16 KiB messages and
# 1,000 and 10,000 connections. Measured like the yardsticks' measure.sh (server pinned to CPU 0, the
# C closed-loop client on CPU 1, 2 s warm-up, CPU from /proc/PID/stat, syscalls from perf's
# raw_syscalls:sys_enter), but with the message size as a parameter (measure.sh fixes 64 B).
# Prints one line per run and, per round and size and count, each list's CPU and syscalls per message
# as ratios to the C server's and to the first list's.
#   Benchmarks/uring-features.sh 6 3 none incremental-buffers
# SIZES="64 16384" and CONNS="1000 10000" choose the grid.
#
# Needs: a release build (swift build -c release), perf (Scripts/install-dependencies --with-perf),
# the yardsticks (YARDSTICKS=DIR, default ../shared/yardsticks).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
secs=${1:-6}
rounds=${2:-2}
shift $(( $# >= 2 ? 2 : $# ))
lists=("$@")
[ ${#lists[@]} -gt 0 ] || lists=(none default)
sizes=${SIZES:-"64 16384"}
conns_list=${CONNS:-"1000 10000"}
yard=${YARDSTICKS:-$here/../shared/yardsticks}
ringstorm=${RINGSTORM:-$here/.build/release/ringstorm}
bin=${YARDSTICKS_BUILD:-/tmp/ringstorm-yardsticks}
need_release_build "$ringstorm"
need_yardsticks "$yard"
command -v perf >/dev/null || { echo "perf missing: Scripts/install-dependencies --with-perf" >&2; exit 2; }
"$yard/measure.sh" build >/dev/null
for list in "${lists[@]}"; do
  "$ringstorm" serve --protocol echo --uring-features "$list" --help >/dev/null 2>&1 \
    || { echo "--uring-features $list is refused by $ringstorm" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
port=7800
measure() { # size conns command... -> sets cpu sys rate
  local size=$1 conns=$2; shift 2
  port=$((port + 1))
  local cmd=("${@//PORT/$port}")
  taskset -c 0 "${cmd[@]}" >"$tmp/server.log" 2>&1 &
  local spid=$!
  wait_port "$port" || true
  taskset -c 1 "$bin/c-echo-client" -p "$port" -c "$conns" -m "$size" -w 2 -d $((secs + 1)) >"$tmp/client.log" 2>&1 &
  local cpid=$!
  sleep 2.5
  local t0 t1 sc
  t0=$(awk '{print $14+$15}' "/proc/$spid/stat")
  perf stat -e raw_syscalls:sys_enter -p "$spid" -x, -o "$tmp/perf" -- sleep "$secs"
  t1=$(awk '{print $14+$15}' "/proc/$spid/stat")
  wait $cpid || true
  kill $spid 2>/dev/null; wait $spid 2>/dev/null || true
  rate=$(sed -n 's/.*rate=\([0-9.]*\)msg\/s.*/\1/p' "$tmp/client.log")
  sc=$(grep raw_syscalls "$tmp/perf" | cut -d, -f1)
  read -r cpu sys < <(awk -v rate="${rate:-0}" -v sc="${sc:-0}" -v t0="$t0" -v t1="$t1" -v tck="$(getconf CLK_TCK)" -v secs="$secs" 'BEGIN {
    msgs = rate * secs; c = (t1 - t0) / tck
    if (msgs == 0) { print 0, 0; exit }
    printf "%.2f %.4f\n", c*1e6/msgs, sc/msgs }')
}
for round in $(seq "$rounds"); do
  for size in $sizes; do
    for conns in $conns_list; do
      measure "$size" "$conns" "$bin/c-uring-echo" PORT
      echo "round=$round size=$size conns=$conns server=c-uring-echo rate=${rate:-0} cpu_us_per_msg=$cpu syscalls_per_msg=$sys"
      ccpu=$cpu csys=$sys first_cpu="" first_sys=""
      for list in "${lists[@]}"; do
        measure "$size" "$conns" "$ringstorm" serve --protocol echo --listen 127.0.0.1:PORT --backend uring --report-interval 0 --uring-features "$list"
        echo "round=$round size=$size conns=$conns server=ringstorm:$list rate=${rate:-0} cpu_us_per_msg=$cpu syscalls_per_msg=$sys"
        [ -n "$first_cpu" ] || { first_cpu=$cpu; first_sys=$sys; }
        awk -v r="$round" -v s="$size" -v c="$conns" -v l="$list" -v cpu="$cpu" -v sys="$sys" -v cc="$ccpu" -v cs="$csys" -v fc="$first_cpu" -v fs="$first_sys" 'BEGIN {
          printf "ratio round=%s size=%s conns=%s list=%s cpu/c-uring=%.2f syscalls/c-uring=%.2f cpu/%s=%.3f syscalls/first=%.3f\n",
            r, s, c, l, (cc > 0 ? cpu/cc : 0), (cs > 0 ? sys/cs : 0), "first", (fc > 0 ? cpu/fc : 0), (fs > 0 ? sys/fs : 0) }'
      done
    done
  done
done
