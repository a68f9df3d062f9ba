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
# Needs: a release build (swift build -c release).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
rounds=${2:-1}
ringstorm=${RINGSTORM:-$here/.build/release/ringstorm}
[ -x "$ringstorm" ] || { echo "no release build at $ringstorm: run swift build -c release" >&2; exit 2; }
prio=(); [ "${RT:-0}" = 1 ] && prio=(chrt -f 10)
tmp=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
port=7700
run() { # backend label load-args...
  local backend=$1 label=$2; shift 2
  port=$((port + 1))
  "${prio[@]}" taskset -c 0 "$ringstorm" serve --backend "$backend" --listen "127.0.0.1:$port" --report-interval 0 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
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
    run "$backend" interval --connections 100 --interval 100ms
    run "$backend" rate --connections 100 --rate 1000
    closed=$(p50 "$tmp/closed-1.json")
    for label in interval rate; do
      awk -v b="$backend" -v l="$label" -v o="$(p50 "$tmp/$label.json")" -v c="$closed" \
        'BEGIN { printf "round %s %s %s open/closed p50 = %d/%d = %.2f\n", "'"$round"'", b, l, o, c, c ? o / c : 0 }'
    done
  done
done
