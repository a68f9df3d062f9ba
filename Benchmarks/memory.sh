#!/usr/bin/env bash
# Benchmarks/memory.sh [CONNECTIONS] [BACKENDS]
#
# User memory per idle connection (issue 11, item 2), on both sides: `ringstorm serve --protocol echo`
# and `ringstorm load --protocol echo --interval 100s` (connect, one 64-byte echo, then idle; LOAD_MODE=--silent
# for connections that never send) in one process each, on loopback.
# Measured from outside, as /proc shows it: VmRSS (/proc/PID/status) and the anonymous memory
# (Anonymous in /proc/PID/smaps_rollup: the process's own heap and maps, without the shared libraries'
# pages) before the connects and when all are open and idle, divided by the count; the load's baseline
# is its report's (`memory.rss_before_kib`, sampled inside before its engines are made). Beside them,
# what the reports themselves say (`memory.user_bytes_per_connection`, sampled about once a second).
#
#   Benchmarks/memory.sh 15000 "uring epoll"
#
# URING_FEATURES=LIST passes `--uring-features LIST` to both (A/B of io_uring features; epoll ignores it).
#
# One process holds at most RLIMIT_NOFILE descriptors: it refuses a count above that less 100.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
R=${RINGSTORM:-$here/.build/release/ringstorm}
n=${1:-15000}
backends=${2:-uring epoll}
port=${PORT:-7850}
features=()
[ -z "${URING_FEATURES:-}" ] || features=(--uring-features "$URING_FEATURES")
need_release_build "$R"
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
  hold=$(( n / 2000 + 8 ))  # long enough to ramp on a busy machine; sampled once all are open
  "$R" serve --protocol echo "${features[@]}" --backend "$b" --listen "127.0.0.1:$port" --duration "$(( hold + 4 ))s" \
    --json "$out/server-$b.json" > /dev/null 2> "$out/server-$b.err" & sp=$!
  sleep 1.5
  s0=$(rss "$sp"); sa0=$(anon "$sp")
  "$R" load --protocol echo "${features[@]}" ${LOAD_MODE:---interval 100s} --backend "$b" --target "127.0.0.1:$port" -c "$n" --connect-rate 20000 \
    --source "127.0.0.2-127.0.0.$(( nsrc + 1 ))" -d "${hold}s" --json "$out/load-$b.json" > /dev/null 2> "$out/load-$b.err" & lp=$!
  # Sampled once every connection is open (or after the hold less 3 s), and 1 s later still idle.
  for _ in $(seq $(( (hold - 3) * 5 ))); do
    open=$(ss -tnH state established "( dport = :$port )" | wc -l)
    [ "$open" -lt "$n" ] || break
    sleep 0.2
  done
  sleep 1
  open=$(ss -tnH state established "( dport = :$port )" | wc -l)
  s1=$(rss "$sp"); sa1=$(anon "$sp"); l1=$(rss "$lp"); la1=$(anon "$lp")
  wait "$lp" || true; lp=
  wait "$sp" || true; sp=
  # The load's baseline is its report's (sampled inside, before its engines were made): from outside
  # there is no moment after the process has mapped itself and before its first connect.
  l0=$(python3 -c "import json,sys; print((json.load(open(sys.argv[1])).get('memory') or {}).get('rss_before_kib', 0))" "$out/load-$b.json")
  lr=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])).get('memory') or {}; print(m.get('user_bytes_per_connection','-'))" "$out/load-$b.json")
  sr=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])).get('memory') or {}; print(m.get('user_bytes_per_connection','-'))" "$out/server-$b.json")
  printf '%-6s %-6s %8d %10d %10d %10d %10d %12s\n' "$b" server "$open" "$s0" "$s1" $(( (s1 - s0) * 1024 / open )) $(( (sa1 - sa0) * 1024 / open )) "$sr"
  printf '%-6s %-6s %8d %10d %10d %10d %10s %12s\n' "$b" load "$open" "$l0" "$l1" $(( (l1 - l0) * 1024 / open )) - "$lr"
  port=$(( port + 1 ))
done
echo "files: $out" >&2
