#!/usr/bin/env bash
# Benchmarks/real-servers.sh [SECONDS] [CONNECTIONS...]
#
# RingStorm beside the tools users pick today, against real servers, in one sitting, interleaved:
#   1. `ringstorm load --protocol http` vs `wrk -t1` on the same nginx (one worker, `return 200`):
#      requests/s, client CPU µs per request, latency p50/p99.
#   2. `ringstorm load --protocol raw` (inline PING) vs `redis-benchmark -t ping_inline` on the same
#      redis-server: requests/s, client CPU µs per request.
#   3. `wrk` against `ringstorm serve --protocol http` (both backends) and against nginx: server CPU µs
#      per request.
# Servers are pinned to CPU 0 and clients to CPU 1 (2-core machines: one each). Everything listens on
# 127.0.0.1 only, in a temporary folder with its own configs, and is stopped at the end (by its pid).
# Installs nginx-light, redis-server, wrk and redis-tools from Debian when missing (needs root).
# Needs a release build: swift build -c release.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-5}
shift || true
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(1000 10000)
ringstorm=${RINGSTORM:-$here/.build/release/ringstorm}
[ -x "$ringstorm" ] || { echo "no release build at $ringstorm: run swift build -c release" >&2; exit 2; }
for tool in nginx redis-server wrk redis-benchmark; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin
done
if ! command -v nginx >/dev/null || ! command -v redis-server >/dev/null || ! command -v wrk >/dev/null || ! command -v redis-benchmark >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light redis-server wrk redis-tools >/dev/null
fi
ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
nginx_port=18080; redis_port=16379; serve_port=18081
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; exit 1; }

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
wait_port $nginx_port; wait_port $redis_port

# CPU seconds (user+system) of a process and its children threads/processes, from /proc.
cpu_of() { local total=0 p; for p in "$@"; do total=$(awk -v t="$total" '{ print t + ($14 + $15) / 100 }' "/proc/$p/stat" 2>/dev/null || echo "$total"); done; echo "$total"; }
client() { # name: runs the rest under /usr/bin/time on CPU 1; sets user_sys
  local out=$1; shift
  /usr/bin/time -f "%U %S" -o "$tmp/time" taskset -c 1 "$@" >"$out" 2>"$out.err" || { cat "$out.err" >&2; return 1; }
  read -r u s <"$tmp/time"; user_sys=$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')
}
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores, ${secs}s per run"
echo "## 1. HTTP load: ringstorm load --protocol http vs wrk -t1, nginx 1 worker (return 200)"
for n in "${conns[@]}"; do
  client "$tmp/rs" "$ringstorm" load --protocol http --target "http://127.0.0.1:$nginx_port/" --connections "$n" \
    --duration "${secs}s" --report-interval 0 --json "$tmp/rs.json"
  rs_n=$(json "$tmp/rs.json" "r['requests']['answered']"); rs_cpu=$user_sys
  rs_rps=$(awk -v n="$rs_n" -v d="$secs" 'BEGIN { printf "%.0f", n / d }')
  rs_us=$(awk -v c="$rs_cpu" -v n="$rs_n" 'BEGIN { printf "%.3f", n ? c * 1e6 / n : 0 }')
  rs_p50=$(json "$tmp/rs.json" "r['latency_us']['request']['p50']"); rs_p99=$(json "$tmp/rs.json" "r['latency_us']['request']['p99']")
  rs_fail=$(json "$tmp/rs.json" "sum(v for ph in r['outcomes'].values() for k, v in ph.items() if k != 'other') + sum(sum(ph['other'].values()) for ph in r['outcomes'].values())")
  client "$tmp/wrk" wrk -t1 -c "$n" -d "${secs}s" --latency "http://127.0.0.1:$nginx_port/"
  wrk_n=$(awk '/requests in/ { print $1 }' "$tmp/wrk"); wrk_cpu=$user_sys
  wrk_rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$tmp/wrk")
  wrk_us=$(awk -v c="$wrk_cpu" -v n="$wrk_n" 'BEGIN { printf "%.3f", n ? c * 1e6 / n : 0 }')
  wrk_p50=$(awk '$1 == "50%" { print $2 }' "$tmp/wrk"); wrk_p99=$(awk '$1 == "99%" { print $2 }' "$tmp/wrk")
  wrk_err=$(awk '/Socket errors|Non-2xx/ { print }' "$tmp/wrk" | tr '\n' ' ')
  echo "conns=$n ringstorm requests/s=$rs_rps client_cpu_us/req=$rs_us p50_us=$rs_p50 p99_us=$rs_p99 failures=$rs_fail"
  echo "conns=$n wrk       requests/s=$wrk_rps client_cpu_us/req=$wrk_us p50=$wrk_p50 p99=$wrk_p99 ${wrk_err}"
  echo "conns=$n ringstorm/wrk requests/s=$(ratio "$rs_rps" "$wrk_rps") client_cpu/req=$(ratio "$rs_us" "$wrk_us")"
done

echo "## 2. Redis inline PING: ringstorm load --protocol raw vs redis-benchmark -t ping_inline"
for n in "${conns[@]}"; do
  client "$tmp/rs" "$ringstorm" load --protocol raw --target "127.0.0.1:$redis_port" --message 'PING\r\n' --response-delimiter '\r\n' \
    --connections "$n" --duration "${secs}s" --report-interval 0 --json "$tmp/rs.json"
  rs_n=$(json "$tmp/rs.json" "r['requests']['answered']"); rs_cpu=$user_sys
  rs_rps=$(awk -v n="$rs_n" -v d="$secs" 'BEGIN { printf "%.0f", n / d }')
  rs_us=$(awk -v c="$rs_cpu" -v n="$rs_n" 'BEGIN { printf "%.3f", n ? c * 1e6 / n : 0 }')
  # As many requests as ringstorm answered, so both run about as long.
  client "$tmp/rb" redis-benchmark -h 127.0.0.1 -p "$redis_port" -t ping_inline -c "$n" -n "$rs_n" -q
  rb_rps=$(tr '\r' '\n' <"$tmp/rb" | awk '/PING_INLINE:.*requests per second/ { v = $2 } END { printf "%.0f", v }')
  rb_us=$(awk -v c="$user_sys" -v n="$rs_n" 'BEGIN { printf "%.3f", n ? c * 1e6 / n : 0 }')
  echo "conns=$n ringstorm       requests/s=$rs_rps client_cpu_us/req=$rs_us"
  echo "conns=$n redis-benchmark requests/s=$rb_rps client_cpu_us/req=$rb_us"
  echo "conns=$n ringstorm/redis-benchmark requests/s=$(ratio "$rs_rps" "$rb_rps") client_cpu/req=$(ratio "$rs_us" "$rb_us")"
done

echo "## 3. Server CPU per request: wrk -t1 against ringstorm serve --protocol http and against nginx"
n=${conns[0]}
server_run() { # name pid...: wrk against the port in $port, server CPU over the run
  local name=$1; shift
  local before after
  before=$(cpu_of "$@")
  client "$tmp/wrk" wrk -t1 -c "$n" -d "${secs}s" "http://127.0.0.1:$port/"
  after=$(cpu_of "$@")
  local reqs; reqs=$(awk '/requests in/ { print $1 }' "$tmp/wrk")
  local rps; rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$tmp/wrk")
  echo "conns=$n $name requests/s=$rps server_cpu_us/req=$(awk -v a="$after" -v b="$before" -v n="$reqs" 'BEGIN { printf "%.3f", n ? (a - b) * 1e6 / n : 0 }')"
}
for backend in uring epoll; do
  taskset -c 0 "$ringstorm" serve --protocol http --response-size 13 --backend "$backend" --listen "127.0.0.1:$serve_port" \
    --idle-timeout 0 --report-interval 0 >"$tmp/serve.out" 2>&1 & pid=$!; pids+=($pid)
  wait_port $serve_port
  port=$serve_port server_run "ringstorm-serve-$backend" "$pid"
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  serve_port=$((serve_port + 1))
done
port=$nginx_port server_run "nginx-1-worker" "$nginx_master" $(pgrep -P "$nginx_master")
