#!/usr/bin/env bash
# Benchmarks/real-servers.sh [SECONDS] [CONNECTIONS...]      (ROUNDS=5 by default)
#
# RingStorm beside the tools users pick today, against real servers, in one sitting, interleaved:
#   1. `ringstorm load --protocol http` vs `wrk -t1`, and `ringstorm load --threads T` vs `wrk -tT`
#      (T = $WRK_THREADS, default 2), on the same nginx (one worker, `return 200`): requests/s, client
#      CPU µs per request, latency p50/p99. Every client is pinned to CPU 1 (the server has CPU 0), so
#      the threads of both share one core.
#   2. `ringstorm load --protocol raw` (inline PING) vs `redis-benchmark -t ping_inline` on the same
#      redis-server: requests/s, client CPU µs per request.
#   3. `wrk -t1` against `ringstorm serve --protocol http` (both backends) and against nginx: server CPU
#      µs per request, at every connection count.
# ROUNDS rounds; in each, every pair runs back to back, the order alternating from round to round
# (ringstorm first in odd rounds, the other tool first in even ones). The end prints, per measure, the
# median over the rounds with the min–max, and the ratios (taken within each round, then their median).
#
# What each requests/s divides by (the same kind of window for all: the whole run, connects included):
#   - ringstorm: `requests_per_s` of its JSON report, answered / `duration_s` (from the start of its
#     connects to the deadline); its steady rate (`steady.requests_per_s`: from the moment all
#     connections were open to the deadline) is printed beside it, not used in the ratios.
#   - wrk: its `Requests/sec`, completed / the time from just after its threads start (they connect
#     first) to just after they are joined (up to 100 ms past the duration).
#   - redis-benchmark: its `requests per second`, requests / the time from just after its clients'
#     connect calls to the last reply. It runs as many requests as ringstorm answered in that round.
# Client CPU: user + system time of the client process (all its threads), from /proc: the `cutime` and
# `cstime` of the subshell that waited for it (/proc/PID/stat fields 16 and 17), the same way for every
# client, divided by the requests it got answered (ringstorm: `requests.answered`; wrk: its
# "requests in"; redis-benchmark: -n).
# Server CPU: utime + stime of the server processes (/proc/PID/stat fields 14 and 15) before and after
# the wrk run, divided by wrk's requests.
#
# Servers are pinned to CPU 0 and clients to CPU 1 (2-core machines: one each). Everything listens on
# 127.0.0.1 only, in a temporary folder with its own configs, and is stopped at the end (by its pid).
# Installs nginx-light, redis-server, wrk and redis-tools from Debian when missing (needs root).
# Needs a release build: swift build -c release. Raw lines go to $RESULTS (default: a temporary file,
# printed at the end) as tab-separated `round section conns tool metric value`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
secs=${1:-5}
shift || true
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(1000 10000)
rounds=${ROUNDS:-5}
wrk_threads=${WRK_THREADS:-2}
ringstorm=${RINGSTORM:-$here/.build/release/ringstorm}
need_release_build "$ringstorm"
PATH=$PATH:/usr/sbin
if ! command -v nginx >/dev/null || ! command -v redis-server >/dev/null || ! command -v wrk >/dev/null || ! command -v redis-benchmark >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light redis-server wrk redis-tools >/dev/null
fi
ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
results=${RESULTS:-$tmp/results.tsv}
: >"$results"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
nginx_port=18080; redis_port=16379; uring_port=18081; epoll_port=18082
ticks=$(getconf CLK_TCK)

mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 30000;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log crit;
events { worker_connections 25000; multi_accept on; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_temp_path $tmp/nginx;
  server {
    listen 127.0.0.1:$nginx_port backlog=4096 reuseport;
    location / { return 200 "hello, world\n"; }
  }
}
CONF
taskset -c 0 nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" & pids+=($!)
nginx_master=$!
taskset -c 0 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --protected-mode no \
  --maxclients 20000 --dir "$tmp" --logfile "$tmp/redis.log" & pids+=($!)
taskset -c 0 "$ringstorm" serve --protocol http --response-size 13 --backend uring --listen "127.0.0.1:$uring_port" \
  --idle-timeout 0 --report-interval 0 >"$tmp/serve-uring.out" 2>&1 & pids+=($!)
serve_uring=$!
taskset -c 0 "$ringstorm" serve --protocol http --response-size 13 --backend epoll --listen "127.0.0.1:$epoll_port" \
  --idle-timeout 0 --report-interval 0 >"$tmp/serve-epoll.out" 2>&1 & pids+=($!)
serve_epoll=$!
for p in $nginx_port $redis_port $uring_port $epoll_port; do wait_port $p || { echo "nothing on port $p" >&2; exit 1; }; done

# CPU seconds (utime + stime) of running processes, from /proc.
cpu_of() { local total=0 p; for p in "$@"; do total=$(awk -v t="$total" -v k="$ticks" '{ print t + ($14 + $15) / k }' "/proc/$p/stat" 2>/dev/null || echo "$total"); done; echo "$total"; }
client() { # out command...: runs the command on CPU 1; sets user_sys (its CPU seconds, from /proc)
  local out=$1; shift
  user_sys=$( (taskset -c 1 "$@" >"$out" 2>"$out.err" || exit 1; awk -v k="$ticks" '{ print ($16 + $17) / k }' "/proc/$BASHPID/stat") ) \
    || { cat "$out.err" >&2; return 1; }
}
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }
per_req() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.3f", n ? c * 1e6 / n : 0 }'; }
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$@" >>"$results"; }

run_rs_http() { # [THREADS]: recorded as ringstorm (1 thread) or ringstorm-tTHREADS
  local t=${1:-1} rs=ringstorm
  [ "$t" = 1 ] || rs=ringstorm-t$t
  client "$tmp/rs" "$ringstorm" load --protocol http --target "http://127.0.0.1:$nginx_port/" --connections "$n" \
    --threads "$t" --duration "${secs}s" --report-interval 0 --json "$tmp/rs.json"
  local answered; answered=$(json "$tmp/rs.json" "r['requests']['answered']")
  record http "$n" $rs requests_per_s "$(json "$tmp/rs.json" "round(r['requests_per_s'])")"
  record http "$n" $rs steady_requests_per_s "$(json "$tmp/rs.json" "round(r['steady']['requests_per_s']) if r.get('steady') else 0")"
  record http "$n" $rs cpu_us_per_req "$(per_req "$user_sys" "$answered")"
  record http "$n" $rs p50_ms "$(json "$tmp/rs.json" "r['latency_us']['request']['p50'] / 1000")"
  record http "$n" $rs p99_ms "$(json "$tmp/rs.json" "r['latency_us']['request']['p99'] / 1000")"
  record http "$n" $rs failures "$(json "$tmp/rs.json" "sum(v for ph in r['outcomes'].values() for k, v in ph.items() if k != 'other') + sum(sum(ph['other'].values()) for ph in r['outcomes'].values())")"
}
ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v / 1000; else if (v ~ /ms$/) printf "%.3f", v + 0; else if (v ~ /s$/) printf "%.3f", v * 1000; else print 0 }'; }
run_wrk() { # [THREADS]: wrk -tTHREADS, recorded as wrk (1 thread) or wrk-tTHREADS
  local t=${1:-1} tool=wrk
  [ "$t" = 1 ] || tool=wrk-t$t
  client "$tmp/wrk" wrk -t"$t" -c "$n" -d "${secs}s" --latency "http://127.0.0.1:$nginx_port/"
  local done; done=$(awk '/requests in/ { print $1 }' "$tmp/wrk")
  record http "$n" $tool requests_per_s "$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$tmp/wrk")"
  record http "$n" $tool cpu_us_per_req "$(per_req "$user_sys" "$done")"
  record http "$n" $tool p50_ms "$(ms "$(awk '$1 == "50%" { print $2 }' "$tmp/wrk")")"
  record http "$n" $tool p99_ms "$(ms "$(awk '$1 == "99%" { print $2 }' "$tmp/wrk")")"
  record http "$n" $tool failures "$(awk '/Socket errors/ { gsub(",", ""); s += $4 + $6 + $8 + $10 } /Non-2xx/ { s += $NF } END { print s + 0 }' "$tmp/wrk")"
}
run_rs_redis() {
  client "$tmp/rs" "$ringstorm" load --protocol raw --target "127.0.0.1:$redis_port" --message 'PING\r\n' --response-delimiter '\r\n' \
    --connections "$n" --duration "${secs}s" --report-interval 0 --json "$tmp/rs.json"
  rs_answered=$(json "$tmp/rs.json" "r['requests']['answered']")
  record redis "$n" ringstorm requests_per_s "$(json "$tmp/rs.json" "round(r['requests_per_s'])")"
  record redis "$n" ringstorm steady_requests_per_s "$(json "$tmp/rs.json" "round(r['steady']['requests_per_s']) if r.get('steady') else 0")"
  record redis "$n" ringstorm cpu_us_per_req "$(per_req "$user_sys" "$rs_answered")"
}
run_rb() { # as many requests as ringstorm answered (or 300,000 before its first run), so both run about as long
  local requests=${rs_answered:-300000}
  client "$tmp/rb" redis-benchmark -h 127.0.0.1 -p "$redis_port" -t ping_inline -c "$n" -n "$requests" -q
  record redis "$n" redis-benchmark requests_per_s "$(tr '\r' '\n' <"$tmp/rb" | awk '/PING_INLINE:.*requests per second/ { v = $2 } END { printf "%.0f", v }')"
  record redis "$n" redis-benchmark cpu_us_per_req "$(per_req "$user_sys" "$requests")"
}
server_run() { # name port pid...: wrk against the port, the server's CPU over the run
  local name=$1 port=$2; shift 2
  local before after
  before=$(cpu_of "$@")
  client "$tmp/wrk" wrk -t1 -c "$n" -d "${secs}s" "http://127.0.0.1:$port/"
  after=$(cpu_of "$@")
  local done; done=$(awk '/requests in/ { print $1 }' "$tmp/wrk")
  record server "$n" "$name" requests_per_s "$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$tmp/wrk")"
  record server "$n" "$name" cpu_us_per_req "$(per_req "$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" "$done")"
}

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores, ${secs}s per run, $rounds rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A rs_answered_last
for round in $(seq "$rounds"); do
  for n in "${conns[@]}"; do
    if [ $((round % 2)) = 1 ]; then run_rs_http; run_wrk; run_rs_http "$wrk_threads"; run_wrk "$wrk_threads"
    else run_wrk "$wrk_threads"; run_rs_http "$wrk_threads"; run_wrk; run_rs_http; fi
    if [ $((round % 2)) = 1 ]; then run_rs_redis; run_rb; else rs_answered=${rs_answered_last[$n]:-}; run_rb; run_rs_redis; fi
    rs_answered_last[$n]=$rs_answered
    nginx_pids=("$nginx_master" $(pgrep -P "$nginx_master"))
    order=("ringstorm-serve-uring $uring_port $serve_uring" "ringstorm-serve-epoll $epoll_port $serve_epoll" "nginx-1-worker $nginx_port ${nginx_pids[*]}")
    [ $((round % 2)) = 1 ] || order=("${order[2]}" "${order[0]}" "${order[1]}")
    for o in "${order[@]}"; do server_run $o; done
  done
  echo "round $round done at $(date -u +%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
done

python3 - "$results" <<'PY'
import sys, statistics
from collections import defaultdict
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
v = defaultdict(dict)        # (section, conns, tool, metric) -> {round: value}
for rnd, section, n, tool, metric, value in rows:
    v[(section, int(n), tool, metric)][int(rnd)] = float(value)
def med(xs): return statistics.median(xs) if xs else 0
def fmt(xs, digits):
    return f"{med(xs):,.{digits}f} ({min(xs):,.{digits}f}–{max(xs):,.{digits}f})" if xs else "-"
def show(section, n, tool, metrics):
    parts = []
    for metric, digits in metrics:
        xs = list(v.get((section, n, tool, metric), {}).values())
        if xs: parts.append(f"{metric}={fmt(xs, digits)}")
    print(f"conns={n} {tool:<22} " + "  ".join(parts))
def ratio(section, n, a, b, metric):
    ra, rb = v.get((section, n, a, metric), {}), v.get((section, n, b, metric), {})
    return [ra[r] / rb[r] for r in ra if r in rb and rb[r]]
print("## medians over the rounds (min–max)")
wrk_threaded = sorted({k[2] for k in v if k[0] == "http" and k[2].startswith("wrk-t")})
for section, others in (("http", ["wrk"] + wrk_threaded), ("redis", ["redis-benchmark"])):
    print(f"### {section}: ringstorm vs {', '.join(others)}")
    for n in sorted({k[1] for k in v if k[0] == section}):
        show(section, n, "ringstorm", [("requests_per_s", 0), ("steady_requests_per_s", 0), ("cpu_us_per_req", 3), ("p50_ms", 1), ("p99_ms", 1), ("failures", 0)])
        for other in others:
            show(section, n, other, [("requests_per_s", 0), ("cpu_us_per_req", 3), ("p50_ms", 1), ("p99_ms", 1), ("failures", 0)])
        for other in others[1:]:
            show(section, n, "ringstorm" + other[3:], [("requests_per_s", 0), ("steady_requests_per_s", 0), ("cpu_us_per_req", 3), ("p50_ms", 1), ("p99_ms", 1), ("failures", 0)])
        for other in others:
            mine = "ringstorm" + other[3:] if other.startswith("wrk-t") else "ringstorm"
            print(f"conns={n} {mine}/{other:<12} requests/s={fmt(ratio(section, n, mine, other, 'requests_per_s'), 2)}"
                  f"  cpu/req={fmt(ratio(section, n, mine, other, 'cpu_us_per_req'), 2)}")
print("### server CPU per request (wrk -t1)")
for n in sorted({k[1] for k in v if k[0] == "server"}):
    for tool in ("ringstorm-serve-uring", "ringstorm-serve-epoll", "nginx-1-worker"):
        show("server", n, tool, [("requests_per_s", 0), ("cpu_us_per_req", 3)])
    for tool in ("ringstorm-serve-uring", "ringstorm-serve-epoll"):
        print(f"conns={n} {tool}/nginx cpu/req={fmt(ratio('server', n, tool, 'nginx-1-worker', 'cpu_us_per_req'), 2)}")
PY
[ -n "${RESULTS:-}" ] || { echo "## raw (round section conns tool metric value)"; cat "$results"; }
