#!/usr/bin/env bash
# Benchmarks/ramp.sh [CONNECTIONS] [RATE] [LOCAL_PORTS]
#
# The connect ramp (issue 11, item 1): `ringstorm serve --processes` and `ringstorm load --processes`
# on loopback, silent echo clients (connect, then hold), source addresses 127.0.0.2-... (28,232 ports
# per source address and destination). Prints one line: connections established, the time from the
# first second with connects to the first second with all of them open, the sustained connect rate,
# connect p50/p99/max, and the kernel counters that reveal dropped SYNs (nstat, before vs after:
# TcpExtTCPSynRetrans, TcpRetransSegs, TcpExtListenOverflows, TcpExtListenDrops).
#
#   Benchmarks/ramp.sh 100000 30000 assign      # LOCAL_PORTS: assign | range | kernel (load --local-ports)
#   PROFILE=1 Benchmarks/ramp.sh 30000 30000 kernel   # also perf record -g system-wide during the ramp
#
# Sysctls it raises for the run and restores on exit (root only; without root it refuses unless
# NO_SYSCTL=1): net.core.somaxconn, net.ipv4.tcp_max_syn_backlog (the listen backlog is capped by
# them: a burst of SYNs past it is dropped or answered with syncookies), net.core.netdev_max_backlog
# (loopback packets queued per CPU: past it they are dropped and resent after 1 s).
# Environment: PROCESSES (load and server worker processes, default: connections/16,000 rounded up),
# SOURCES (default: enough 127.0.0.x addresses for 20,000 connections each), SOURCE_BASE (the first is
# 127.0.0.SOURCE_BASE, default 2: another base avoids an earlier run's TIME_WAIT), BACKEND (uring|epoll),
# HOLD (seconds to hold after the ramp, default 3), PORT (default 7830), OUT (directory for the JSON).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
R=${RINGSTORM:-$here/.build/release/ringstorm}
n=${1:-100000}
rate=${2:-30000}
ports=${3:-assign}
backend=${BACKEND:-uring}
port=${PORT:-7830}
hold=${HOLD:-3}
out=${OUT:-$(mktemp -d /tmp/ringstorm-ramp.XXXXXX)}
need_release_build "$R"
command -v nstat >/dev/null || { echo "nstat missing (apt-get install -y iproute2)" >&2; exit 2; }
case $ports in assign|range|kernel) ;; *) echo "LOCAL_PORTS must be assign, range or kernel, not '$ports'" >&2; exit 2;; esac
procs=${PROCESSES:-$(( (n + 15999) / 16000 ))}
per_process=$(( (n + procs - 1) / procs ))
limit=$(ulimit -n)
if [ "$per_process" -gt $(( limit - 100 )) ]; then
  echo "each of $procs processes would hold $per_process descriptors but RLIMIT_NOFILE is $limit: set PROCESSES=$(( (n + limit - 200) / (limit - 200) ))" >&2; exit 2
fi
nsrc=${SOURCES:-$(( (n + 19999) / 20000 ))}
[ "$nsrc" -le 250 ] || { echo "SOURCES=$nsrc: at most 250 (127.0.0.2-127.0.0.251)" >&2; exit 2; }
read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range
if [ $(( n / nsrc )) -gt $(( hi - lo + 1 )) ]; then
  echo "$n connections from $nsrc source addresses need $(( n / nsrc )) ports each; the range $lo-$hi has $(( hi - lo + 1 )): set SOURCES=$(( n / (hi - lo + 1) + 1 ))" >&2; exit 2
fi
base=${SOURCE_BASE:-2}  # the first source address 127.0.0.BASE: a fresh BASE avoids earlier runs' TIME_WAIT
[ $(( base + nsrc - 1 )) -le 254 ] || { echo "SOURCE_BASE=$base with $nsrc sources passes 127.0.0.254" >&2; exit 2; }
sources="127.0.0.$base-127.0.0.$(( base + nsrc - 1 ))"

restore() {
  restore_sysctls
  [ -z "${server_pid:-}" ] || kill "$server_pid" 2>/dev/null || true
  [ -z "${perf_pid:-}" ] || kill -INT "$perf_pid" 2>/dev/null || true
}
trap restore EXIT
if [ "${NO_SYSCTL:-0}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "raising ${RAMP_SYSCTLS[*]} needs root; run as root or set NO_SYSCTL=1 to run with the current values" >&2; exit 2; }
  raise_sysctls "${RAMP_SYSCTLS[@]}"
fi
tw=$(ss -tanH state time-wait | wc -l)

duration=$(( n / (rate > 0 ? rate : n) + 4 + hold ))
"$R" serve --protocol echo --backend "$backend" --processes "$procs" --backlog 65535 --listen "127.0.0.1:$port" \
  --duration "$(( duration + 6 ))s" --json "$out/server.json" > "$out/server.txt" 2> "$out/server.err" &
server_pid=$!
sleep 1.5
nstat -n  # resets nstat's history: the next nstat prints the change since now
if [ "${PROFILE:-0}" = 1 ]; then
  perf record -a -g -o "$out/perf.data" -- sleep "$(( n / rate + 1 ))" > /dev/null 2>&1 &
  perf_pid=$!
fi
"$R" load --protocol echo --silent --backend "$backend" --processes "$procs" --target "127.0.0.1:$port" \
  -c "$n" --connect-rate "$rate" --source "$sources" --local-ports "$ports" -d "${duration}s" \
  --json "$out/load.json" > "$out/load.txt" 2> "$out/load.err" || true
nstat -z TcpExtTCPSynRetrans TcpRetransSegs TcpExtListenOverflows TcpExtListenDrops TcpExtTCPReqQFullDrop TcpExtSyncookiesSent > "$out/nstat.txt" || true
[ -z "${perf_pid:-}" ] || { wait "$perf_pid" || true; perf_pid=; }
wait "$server_pid" || true; server_pid=
python3 - "$out" "$n" "$rate" "$ports" "$backend" "$procs" "$sources" "$tw" <<'EOF'
import json, re, sys
out, n, rate, ports, backend, procs, sources, tw = sys.argv[1:]
n = int(n)
d = json.load(open(f"{out}/load.json"))
c, lat = d["connections"], d["latency_us"]["connect"]
# Live lines: "[   2.0s] open 28,000  established/s ..."; the ramp is from the last second with none
# open to the first with all open.
opens = [(float(t), int(o.replace(",", ""))) for t, o in re.findall(r"\[\s*([\d.]+)s\] open ([\d,]+)", open(f"{out}/load.err").read())]
full = min([t for t, o in opens if o >= n], default=None)
start = max([t for t, o in opens if o == 0 and (full is None or t < full)], default=0.0)
ramp = f"{full - start:.1f} s" if full is not None else "never all open"
sustained = f"{n / (full - start):,.0f}/s" if full is not None and full > start else "-"
k = {}
for line in open(f"{out}/nstat.txt"):
    f = line.split()
    if len(f) >= 2 and f[0][0].isalpha(): k[f[0]] = int(f[1])
fails = {f"{ph}.{o}": v for ph, os in d.get("outcomes", {}).items() for o, v in os.items() if v and not isinstance(v, dict)}
fails.update({f"{ph}.{o}": v for ph, os in d.get("outcomes", {}).items() for o, v in (os.get("other") or {}).items()})
print(f"n={n:,} rate={int(rate):,}/s local-ports={ports} backend={backend} processes={procs}x2 sources={sources} time_wait_before={tw}")
print(f"  established {c['established']:,}/{c['attempted']:,} peak {c['peak_open']:,}  ramp {ramp} (live lines, 1 s resolution)  sustained {sustained}")
per_second = re.findall(r"established/s ([\d,]+)", open(f"{out}/load.err").read())
print("  established per second (live lines): " + " ".join(p for p in per_second if p != "0"))
print(f"  generator max lag {d['generator']['max_lag_us']:,} us, ports in use at bind {d['generator'].get('ports_in_use', 0):,}")
print(f"  connect us p50 {lat['p50']:,} p90 {lat['p90']:,} p99 {lat['p99']:,} max {lat['max']:,}")
print("  nstat " + " ".join(f"{a}={b}" for a, b in k.items()) + f"  failures {fails}")
EOF
if [ -f "$out/perf.data" ]; then
  # Share of all samples (both cores, the first seconds of the ramp, self time) in the kernel's port
  # search and bind; `comm` exe is ringstorm's worker processes (spawned through /proc/self/exe).
  echo "  perf (self, % of all samples): $(perf report -i "$out/perf.data" --no-children -g none --sort symbol --stdio 2>/dev/null \
    | grep -E "inet_hash_connect|inet_check_established|inet_csk_bind_conflict|inet_csk_get_port|inet_bind2_bucket" \
    | awk '{printf "%s %s  ", $3, $1}')"
fi
echo "  files: $out" >&2
