#!/usr/bin/env bash
# Benchmarks/open-loop.sh [SECONDS] [ROUNDS]
#
# Issue 9's open-loop target: on each backend, `ringstorm serve` (CPU 0) and `ringstorm load` (CPU 1) on
# loopback; the closed-loop p50 of one connection, then the open loop at 100 connections x 10 requests/s
# (--interval 100ms) and the same pace as --rate 1000; prints request p50/p99, send lag p50/p99/max,
# response p50, and open/closed p50. Target: open-loop p50 <= 1.2 x closed-loop p50.
#
# RT=1 runs both under SCHED_FIFO (chrt -f 10, needs root): on a shared, busy machine a waking thread
# otherwise waits behind other tenants' work, which is the machine's noise, not the tool's timing.
#
# The same two paces from a 100-line C client (Benchmarks/paced-client.c, built here with cc: epoll,
# one thread, the same send lag / response split), against the same ringstorm server and, with
# YARDSTICKS=DIR, against the C epoll echo yardstick: if C shows the same response time above its own
# closed loop, the gap is the machine's wake-up latency, not RingStorm's. SPIN=T adds --send-spin T to the
# open-loop runs (and the same spin to the C client).
#
# Needs: a release build (swift build -c release), cc.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
secs=${1:-10}
rounds=${2:-1}
ringstorm=${RINGSTORM:-$here/.build/release/ringstorm}
need_release_build "$ringstorm"
prio=(); [ "${RT:-0}" = 1 ] && prio=(chrt -f 10)
tmp=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
port=7700
spin=${SPIN:-0}
spin_us=$(python3 -c "import sys; t=sys.argv[1]; print(float(t[:-2]) if t.endswith('us') else float(t[:-2])*1000 if t.endswith('ms') else float(t))" "$spin")
cc -O2 -o "$tmp/paced-client" "$here/Benchmarks/paced-client.c"
yard=${YARDSTICKS:-}
if [ -n "$yard" ]; then cc -O2 -o "$tmp/c-epoll-echo" "$yard/c-epoll-echo/echo.c"; fi
paced() { # label server-command... : the C client, closed loop on 1 connection then 100 x 10/s
  local label=$1; shift
  port=$((port + 1))
  "${prio[@]}" taskset -c 0 "$@" >/dev/null 2>&1 &
  server=$!
  wait_port "$port" 50 || true
  echo "$label $("${prio[@]}" taskset -c 1 "$tmp/paced-client" "$port" 1 0 "$secs")"
  echo "$label $("${prio[@]}" taskset -c 1 "$tmp/paced-client" "$port" 100 1000 "$secs" "$spin_us")"
  kill $server; wait $server 2>/dev/null || true
  server=
}
run() { # backend label load-args...
  local backend=$1 label=$2; shift 2
  port=$((port + 1))
  "${prio[@]}" taskset -c 0 "$ringstorm" serve --backend "$backend" --listen "127.0.0.1:$port" --report-interval 0 >/dev/null 2>&1 &
  server=$!
  wait_port "$port" 50 || true
  "${prio[@]}" taskset -c 1 "$ringstorm" load --backend "$backend" --target "127.0.0.1:$port" --duration "${secs}s" --report-interval 0 \
    --json "$tmp/$label.json" "$@" >/dev/null 2>"$tmp/stderr" || { cat "$tmp/stderr" >&2; exit 1; }
  kill $server; wait $server 2>/dev/null || true
  server=
  python3 - "$tmp/$label.json" "$backend" "$label" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); l = r["latency_us"]
q, s, p = l["request"], l.get("send_lag", {}), l.get("response", {})
print(f"{sys.argv[2]:6} {sys.argv[3]:12} answered={r['requests']['answered']:6} request_p50={q['p50']}us p99={q['p99']}us"
      + (f" send_lag_p50={s['p50']}us p99={s['p99']}us max={s['max']}us response_p50={p['p50']}us" if s.get("count") else ""))
EOF
}
p50() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['latency_us']['request']['p50'])" "$1"; }
for round in $(seq "$rounds"); do
  for backend in uring epoll; do
    run "$backend" closed-1 --connections 1 --closed-loop
    run "$backend" interval --connections 100 --interval 100ms --send-spin "$spin"
    run "$backend" rate --connections 100 --rate 1000 --send-spin "$spin"
    closed=$(p50 "$tmp/closed-1.json")
    for label in interval rate; do
      awk -v b="$backend" -v l="$label" -v o="$(p50 "$tmp/$label.json")" -v c="$closed" \
        'BEGIN { printf "round %s %s %s open/closed p50 = %d/%d = %.2f\n", "'"$round"'", b, l, o, c, c ? o / c : 0 }'
    done
    paced "c-client->ringstorm-serve-$backend" "$ringstorm" serve --protocol echo --backend "$backend" --listen "127.0.0.1:$((port + 1))" --report-interval 0
  done
  if [ -n "$yard" ]; then paced "c-client->c-epoll-echo" "$tmp/c-epoll-echo" "$((port + 1))"; fi
done
