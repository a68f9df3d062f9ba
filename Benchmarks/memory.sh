#!/usr/bin/env bash
# Benchmarks/memory.sh [CONNECTIONS] [BACKENDS]
#
# User memory per idle connection (issue 11, item 2), on both sides: `ringstorm serve --protocol echo`
# and `ringstorm load --protocol echo --silent` (connect, then hold) in one process each, on loopback.
# Measured from outside, as /proc shows it: VmRSS (/proc/PID/status) and the anonymous memory
# (Anonymous in /proc/PID/smaps_rollup: the process's own heap and maps, without the shared libraries'
# pages) of each process before its connects and when all are open and idle, divided by the count;
# beside it, what the reports themselves say (`memory.user_bytes_per_connection`, sampled inside).
#
#   Benchmarks/memory.sh 15000 "uring epoll"
#
# One process holds at most RLIMIT_NOFILE descriptors: it refuses a count above that less 100.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
R=${RINGSTORM:-$here/.build/release/ringstorm}
n=${1:-15000}
backends=${2:-uring epoll}
port=${PORT:-7850}
[ -x "$R" ] || { echo "no release build at $R: run swift build -c release" >&2; exit 2; }
limit=$(ulimit -n)
[ "$n" -le $(( limit - 100 )) ] || { echo "$n connections need $n descriptors in one process; RLIMIT_NOFILE is $limit: use at most $(( limit - 100 ))" >&2; exit 2; }
read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range
nsrc=$(( n / (hi - lo + 1) + 1 ))
out=$(mktemp -d /tmp/ringstorm-memory.XXXXXX)
rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
anon() { awk '/^Anonymous/{print $2}' "/proc/$1/smaps_rollup"; }
trap '[ -z "${sp:-}" ] || kill "$sp" 2>/dev/null || true; [ -z "${lp:-}" ] || kill "$lp" 2>/dev/null || true' EXIT
printf '%-6s %-6s %8s %10s %10s %10s %10s %12s\n' backend side open "rss0 KiB" "rss1 KiB" "B/conn" "anon B/conn" "report B/conn"
for b in $backends; do
  hold=$(( n / 20000 + 5 ))
  "$R" serve --protocol echo --backend "$b" --listen "127.0.0.1:$port" --duration "$(( hold + 4 ))s" \
    --json "$out/server-$b.json" > /dev/null 2> "$out/server-$b.err" & sp=$!
  sleep 1.5
  s0=$(rss "$sp"); sa0=$(anon "$sp")
  "$R" load --protocol echo --silent --backend "$b" --target "127.0.0.1:$port" -c "$n" --connect-rate 20000 \
    --source "127.0.0.2-127.0.0.$(( nsrc + 1 ))" -d "${hold}s" --json "$out/load-$b.json" > /dev/null 2> "$out/load-$b.err" & lp=$!
  # The load's baseline: its earliest sample, once the process has mapped itself, before most of its
  # connects (the report's own baseline, taken inside before the engines, is the exact one).
  for _ in $(seq 200); do [ -r "/proc/$lp/status" ] && grep -q VmRSS "/proc/$lp/status" && break; sleep 0.005; done
  sleep 0.05
  l0=$(rss "$lp"); la0=$(anon "$lp")
  sleep "$(( n / 20000 + 2 ))"
  open=$(ss -tnH state established "( dport = :$port )" | wc -l)
  s1=$(rss "$sp"); sa1=$(anon "$sp"); l1=$(rss "$lp"); la1=$(anon "$lp")
  wait "$lp" || true; lp=
  wait "$sp" || true; sp=
  lr=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])).get('memory') or {}; print(m.get('user_bytes_per_connection','-'))" "$out/load-$b.json")
  sr=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])).get('memory') or {}; print(m.get('user_bytes_per_connection','-'))" "$out/server-$b.json")
  printf '%-6s %-6s %8d %10d %10d %10d %10d %12s\n' "$b" server "$open" "$s0" "$s1" $(( (s1 - s0) * 1024 / open )) $(( (sa1 - sa0) * 1024 / open )) "$sr"
  printf '%-6s %-6s %8d %10d %10d %10d %10d %12s\n' "$b" load "$open" "$l0" "$l1" $(( (l1 - l0) * 1024 / open )) $(( (la1 - la0) * 1024 / open )) "$lr"
  port=$(( port + 1 ))
done
echo "files: $out" >&2
