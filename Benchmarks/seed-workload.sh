#!/usr/bin/env bash
# Benchmarks/seed-workload.sh [CONNECTIONS] [CONNECT_RATE]
#
# The seed's workload at scale (issue 11, item 4; Docs/benchmarks.md, "100,000 connections, the
# seed's workload"): CONNECTIONS clients (default 100,000) each REGISTER, then send a request every
# INTERVAL (default 5s), ramped at CONNECT_RATE connects a second (default 4,000), `serve --processes`
# and `load --processes` on loopback (io_uring unless BACKEND=epoll) for DURATION (default 55s).
# Prints the load's report, then the request latency **after the ramp** (the intervals of the load's
# time series in which nothing connected, their HDR histograms added: `hdrhistogram` from PyPI,
# installed by Scripts/install-dependencies) and each interval's p99 and send lag p99, so a tail can
# be told apart: the generator's own lateness (send lag) or the server and the kernel (response);
# then the kernel's counters over the run (nstat: retransmits, listen drops, SYN retransmits).
# Last line: whether the run met issue 11's target (post-ramp request p99 < 20 ms, no failure, no
# retransmit, no listen drop).
#
#   Benchmarks/seed-workload.sh                    # 100,000 at 4,000/s
#   NO_SYSCTL=1 Benchmarks/seed-workload.sh        # with the machine's own queue sizes
#
# Raises the listen and input queues for the run and restores them (RAMP_SYSCTLS in lib.sh; root, or
# NO_SYSCTL=1). Environment: PROCESSES (per side, default connections/18,000 rounded up: RLIMIT_NOFILE
# is 20,000 here), SOURCES (127.0.0.x source addresses, default one per 20,000 connections),
# SOURCE_BASE (first is 127.0.0.SOURCE_BASE, default 2), INTERVAL, DURATION, BACKEND, PORT (7802),
# OUT (a directory for the reports and logs; default a temporary one, kept and named at the end).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
R=${RINGSTORM:-$here/.build/release/ringstorm}
n=${1:-100000}
rate=${2:-4000}
interval=${INTERVAL:-5s}
duration=${DURATION:-55s}
backend=${BACKEND:-uring}
port=${PORT:-7802}
need_release_build "$R"
command -v nstat >/dev/null || { echo "nstat missing: apt-get install -y iproute2" >&2; exit 2; }
python3 -c "import hdrh" 2>/dev/null || { echo "the Python module hdrh is missing: pip install hdrhistogram (Scripts/install-dependencies)" >&2; exit 2; }
procs=${PROCESSES:-$(( (n + 17999) / 18000 ))}
limit=$(ulimit -n)
[ $(( (n + procs - 1) / procs )) -le $(( limit - 200 )) ] \
  || { echo "$n connections in $procs processes exceed RLIMIT_NOFILE $limit per process: set PROCESSES=$(( (n + limit - 201) / (limit - 200) ))" >&2; exit 2; }
nsrc=${SOURCES:-$(( (n + 19999) / 20000 ))}
base=${SOURCE_BASE:-2}
[ $(( base + nsrc - 1 )) -le 254 ] || { echo "SOURCE_BASE=$base with $nsrc sources passes 127.0.0.254" >&2; exit 2; }
sources="127.0.0.$base-127.0.0.$(( base + nsrc - 1 ))"
out=${OUT:-$(mktemp -d /tmp/ringstorm-seed.XXXXXX)}
mkdir -p "$out"

server_pid=
cleanup() { [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true; restore_sysctls; }
trap cleanup EXIT
if [ "${NO_SYSCTL:-0}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "raising ${RAMP_SYSCTLS[*]} needs root; run as root or set NO_SYSCTL=1" >&2; exit 2; }
  raise_sysctls "${RAMP_SYSCTLS[@]}"
fi

echo "# $(date -u +%FT%TZ) $n connections at $rate/s, a request every $interval, $duration, $procs processes per side, sources $sources, $backend, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$R" serve --processes "$procs" --backend "$backend" --backlog 65535 --listen "127.0.0.1:$port" --duration 10m \
  --json "$out/server.json" --log-level warning >"$out/server.txt" 2>"$out/server.err" &
server_pid=$!
wait_port "$port" || { echo "the server did not listen on $port; see $out/server.err" >&2; exit 1; }
nstat -n
"$R" load --processes "$procs" --backend "$backend" --target "127.0.0.1:$port" --connections "$n" --connect-rate "$rate" \
  --interval "$interval" --duration "$duration" --source "$sources" --report-interval 5s \
  --json "$out/load.json" >"$out/load.txt" 2>"$out/load.err" || true
nstat -z TcpRetransSegs TcpExtTCPSynRetrans TcpExtListenOverflows TcpExtListenDrops TcpExtTCPAbortOnClose >"$out/nstat.txt" || true
kill -INT "$server_pid" 2>/dev/null || true
wait "$server_pid" || true
server_pid=
[ -s "$out/load.json" ] || { echo "no load report; see $out/load.err" >&2; exit 1; }
cat "$out/load.txt"
python3 - "$out" <<'PY'
import json, sys
from hdrh.histogram import HdrHistogram
out = sys.argv[1]
load, server = json.load(open(f"{out}/load.json")), json.load(open(f"{out}/server.json"))
post, rows = HdrHistogram(1, 3_600_000_000, 3), []
for iv in load["intervals"]:
    rows.append(f"  {iv['start_ms'] / 1000 - load['intervals'][0]['start_ms'] / 1000:5.0f} s  open {iv['open']:>9,}  "
                f"connects {iv['connects']:>7,}  answered {iv['answered']:>9,}  p99 {iv['request_p99_us'] / 1000:8.2f} ms  "
                f"send lag p99 {iv['send_lag_p99_us'] / 1000:8.2f} ms")
    if iv["connects"] == 0 and iv.get("request_histogram"):
        post.add(HdrHistogram.decode(iv["request_histogram"]))
print("intervals (time series):"); print("\n".join(rows))
kernel = {l.split()[0]: int(l.split()[1]) for l in open(f"{out}/nstat.txt") if l[:1].isalpha() and len(l.split()) > 1}
print("kernel (nstat over the run, system-wide): " + "  ".join(f"{k} {v:,}" for k, v in kernel.items()))
fails = sum(v for o in load["outcomes"].values() for k, v in o.items() if k not in ("other", "closed"))
fails += sum(v for o in load["outcomes"].values() for v in o["other"].values())
count = post.get_total_count()
p99 = post.get_value_at_percentile(99) / 1000 if count else float("inf")
print(f"after the ramp: {count:,} requests  p50 {post.get_value_at_percentile(50) / 1000:.2f} ms  "
      f"p90 {post.get_value_at_percentile(90) / 1000:.2f} ms  p99 {p99:.2f} ms  p99.9 {post.get_value_at_percentile(99.9) / 1000:.2f} ms  "
      f"max {post.get_max_value() / 1000:.2f} ms")
print(f"server: accepted {server['accepted']:,}, register timeouts {server['register_timeouts']:,}; load: established "
      f"{load['connections']['established']:,} of {load['connections']['attempted']:,}, failures {fails:,}")
clean = all(kernel.get(k, 0) == 0 for k in ("TcpRetransSegs", "TcpExtTCPSynRetrans", "TcpExtListenDrops"))
met = count > 0 and p99 < 20 and fails == 0 and clean and load["connections"]["established"] == load["connections"]["attempted"]
print(f"target (post-ramp p99 < 20 ms, no failure, no retransmit or listen drop): {'met' if met else 'not met'}")
PY
echo "files: $out" >&2
