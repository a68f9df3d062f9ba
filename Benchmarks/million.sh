#!/usr/bin/env bash
# Benchmarks/million.sh [CONNECTIONS] [CONNECT_RATE]
#
# Issue 11, item 5: CONNECTIONS concurrent connections on loopback, `ringstorm serve --processes` and
# `ringstorm load --processes` with many source addresses, ramped at CONNECT_RATE and then held for
# HOLD seconds with one request every INTERVAL per connection (the default protocol: a REGISTER, then
# requests). Prints the time to ramp, established/accounted from the merged reports, failures, user and
# kernel memory per connection, CPU, syscalls per request and the kernel counters.
#
#   Benchmarks/million.sh 200000 10000
#   Benchmarks/million.sh 1000000 10000
#
# One process may hold 20,000 descriptors here (RLIMIT_NOFILE, fixed), so PROCESSES defaults to
# connections / 18,000 rounded up on each side (56 per side for a million; `--processes` allows 64).
# Before any work it refuses, naming the limit, where the machine cannot hold the run: RLIMIT_NOFILE,
# fs.nr_open, fs.file-max (both ends of every connection are descriptors on this machine), source
# ports, and memory: per connection ~5.5 kB of kernel memory per end (Slab, measured by
# Scripts/connection-cost, Docs/scaling.md) plus ~1.5 kB of user memory per end, plus ~30 MiB per process.
#
# Sysctls it sets for the run and restores on exit (root only): net.ipv4.ip_local_port_range
# (1024-65535: 64,512 ports per source address), net.core.somaxconn, net.ipv4.tcp_max_syn_backlog,
# net.core.netdev_max_backlog, net.ipv4.tcp_mem (its ceiling, in pages, raised to 2 per socket so that a
# million idle sockets' transient buffers cannot reach memory pressure), and
# net.netfilter.nf_conntrack_max where nf_conntrack is loaded (one entry per connection).
# Environment: PROCESSES, SOURCES (127.0.0.x source addresses, default: 50,000 connections each),
# SOURCE_BASE (first is 127.0.0.SOURCE_BASE, default 10), HOLD (s, default 60), INTERVAL (default 30s),
# BACKEND (uring|epoll), PORT (default 7850), OUT (directory for the JSON and samples), MEM_FLOOR_KB
# (the load is stopped if MemAvailable falls below it during the run; default 1.5 GiB),
# DRY_RUN=1 (checks and the plan only).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
R=${RINGSTORM:-$here/.build/release/ringstorm}
n=${1:-200000}
rate=${2:-10000}
hold=${HOLD:-60}
interval=${INTERVAL:-30s}
backend=${BACKEND:-uring}
port=${PORT:-7850}
fail() { echo "million.sh: $*" >&2; exit 2; }
[[ $n =~ ^[0-9]+$ && $n -ge 1000 ]] || fail "CONNECTIONS must be a whole number of at least 1000, not '$n'"
[[ $rate =~ ^[0-9]+$ && $rate -ge 100 ]] || fail "CONNECT_RATE must be a whole number of at least 100 a second, not '$rate'"
[ -x "$R" ] || fail "no release build at $R: run swift build -c release"
command -v nstat >/dev/null || fail "nstat missing (apt-get install -y iproute2)"
[ "$(id -u)" = 0 ] || fail "setting ip_local_port_range, somaxconn, tcp_mem and friends needs root"

# --- Limits, checked before any work -------------------------------------------------------------
limit=$(ulimit -n)
maxprocs=64  # LoadBudget.maximumProcesses
per_max=$(( limit - 2000 ))  # room for the engine's own descriptors and a reconnect's overlap
procs=${PROCESSES:-$(( (n + per_max - 1) / per_max ))}
per_process=$(( (n + procs - 1) / procs ))
[ "$per_process" -le "$per_max" ] || fail "each of $procs processes per side would hold $per_process connections but RLIMIT_NOFILE is $limit (keep 2,000 spare): set PROCESSES=$(( (n + per_max - 1) / per_max ))"
[ "$procs" -le "$maxprocs" ] || fail "$n connections need $procs processes per side at $per_max each (RLIMIT_NOFILE $limit), but --processes allows at most $maxprocs: at most $(( maxprocs * per_max )) connections on this machine"
nr_open=$(cat /proc/sys/fs/nr_open)
[ "$limit" -le "$nr_open" ] || fail "RLIMIT_NOFILE $limit is above fs.nr_open $nr_open"
read -r files_open _ file_max < /proc/sys/fs/file-nr
need_files=$(( 2 * n + 2 * procs * 64 + 10000 ))
[ $(( file_max - files_open )) -ge "$need_files" ] || fail "both ends of $n connections need about $need_files descriptors, fs.file-max $file_max leaves $(( file_max - files_open )) (raise fs.file-max)"
nsrc=${SOURCES:-$(( (n + 49999) / 50000 ))}
base=${SOURCE_BASE:-10}
[ $(( base + nsrc - 1 )) -le 254 ] || fail "SOURCE_BASE=$base with $nsrc sources passes 127.0.0.254"
ports_lo=1024; ports_hi=65535
[ $(( (n + nsrc - 1) / nsrc )) -le $(( ports_hi - ports_lo + 1 - 1000 )) ] || fail "$n connections from $nsrc source addresses need $(( n / nsrc )) ports each, more than the widened range $ports_lo-$ports_hi holds: set SOURCES=$(( n / 60000 + 1 ))"
sources="127.0.0.$base-127.0.0.$(( base + nsrc - 1 ))"
# Memory per end (socket) of a connection, measured (Docs/scaling.md, Docs/benchmarks.md "A million
# connections"): kernel ~5,500 B (Slab: tcp_sock, socket inode, dentry, file, io_uring's armed receive),
# user ~1,500 B on io_uring (server 0.3-1.4 kB, load generator ~1 kB) or 800 B on epoll; plus ~30 MiB
# per process (its tables and buffer ring). KERNEL_PER_END and USER_PER_END override them.
kernel_per=${KERNEL_PER_END:-5500}; user_per=${USER_PER_END:-$([ "$backend" = epoll ] && echo 800 || echo 1500)}
need_kb=$(( (2 * n * (kernel_per + user_per)) / 1024 + 2 * procs * 30 * 1024 ))
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
margin_kb=$(( 2 * 1024 * 1024 ))  # leave 2 GiB to everything else
if [ $(( need_kb + margin_kb )) -gt "$avail_kb" ]; then
  fit=$(( ((avail_kb - margin_kb - 2 * procs * 30 * 1024) * 1024) / (2 * (kernel_per + user_per)) ))
  fail "$n connections need about $(( need_kb / 1024 )) MiB ($(( kernel_per + user_per )) B per end: ${kernel_per} kernel + ${user_per} user; plus 30 MiB per process × $(( 2 * procs ))) and 2 GiB spare, but MemAvailable is $(( avail_kb / 1024 )) MiB: at most about $fit connections now"
fi

ramp_s=$(( (n + rate - 1) / rate ))
# The load runs until all are open and then HOLD seconds more (the script stops it with SIGTERM: it
# drains and writes its merged report), or at most MAX_RAMP seconds of ramp: a busy machine ramps
# slower than asked.
max_ramp=${MAX_RAMP:-$(( ramp_s * 4 + 30 ))}
load_s=$(( max_ramp + hold ))
echo "plan: $n connections, $procs processes per side ($per_process each), sources $sources, ramp ${ramp_s}s at $rate/s, hold ${hold}s, --interval $interval, backend $backend; need ~$(( need_kb / 1024 )) MiB of $(( avail_kb / 1024 )) MiB available"
[ "${DRY_RUN:-0}" = 1 ] && exit 0
out=${OUT:-$(mktemp -d /tmp/ringstorm-million.XXXXXX)}
mkdir -p "$out"

# --- Sysctls, set and restored -----------------------------------------------------------------
restore() {
  for p in ${sampler_pid:-} ${load_pid:-} ${server_pid:-}; do kill "$p" 2>/dev/null || true; done
  restore_sysctls
}
trap restore EXIT
trap 'exit 130' INT TERM
raise_sysctls "${RAMP_SYSCTLS[@]}"
set_sysctl net.ipv4.ip_local_port_range "$ports_lo $ports_hi"
read -r m_lo m_press m_hi <<< "$(sysctl -n net.ipv4.tcp_mem | tr -s '\t ' ' ')"
if [ "$m_hi" -lt $(( 4 * n )) ]; then
  set_sysctl net.ipv4.tcp_mem "$(( m_lo > n ? m_lo : n )) $(( 2 * n )) $(( 4 * n ))"
fi
if [ -w /proc/sys/net/netfilter/nf_conntrack_max ]; then
  raise_sysctls net.netfilter.nf_conntrack_max=$(( n + 100000 ))
fi

# --- Samples: every 2 s, system memory, sockets, CPU and the ringstorm processes' RSS and CPU ------
meminfo() { awk -v k="$1" '$1 == k":" {print $2}' /proc/meminfo; }
sample() {  # one python process: forking per sample and per process is slow on a loaded machine
  exec python3 - "$out" "$server_pid" "$1" <<'PY'
import os, sys, time
out, server, t0 = sys.argv[1], sys.argv[2], int(sys.argv[3])
floor_kb = int(os.environ.get("MEM_FLOOR_KB", 1536 * 1024))
def read(path):
    try:
        return open(path).read()
    except OSError:
        return ""
peak = 0
while True:
    time.sleep(2)
    roots = [server] + read(f"{out}/load.pid").split()
    pids = list(roots)
    for r in roots:
        pids += read(f"/proc/{r}/task/{r}/children").split()
    rss = ticks = 0
    for p in pids:
        st = read(f"/proc/{p}/status")
        rss += next((int(l.split()[1]) for l in st.splitlines() if l.startswith("VmRSS:")), 0)
        f = read(f"/proc/{p}/stat").rsplit(")", 1)[-1].split()
        if len(f) > 12:
            ticks += int(f[11]) + int(f[12])  # utime, stime of a live process
    mem = {l.split(":")[0]: int(l.split()[1]) for l in read("/proc/meminfo").splitlines() if l.split()}
    tcp = next((l.split() for l in read("/proc/net/sockstat").splitlines() if l.startswith("TCP:")), [])
    inuse, pages = int(tcp[2]), int(tcp[-1])
    print(f"{int(time.time() * 1000) - t0} slab_kb={mem['Slab']} sunreclaim_kb={mem['SUnreclaim']} tcp_inuse={inuse} "
          f"tcp_mem_pages={pages} rss_kb={rss} cpu_ticks={ticks} procs={len(pids)} {read('/proc/stat').splitlines()[0]}", flush=True)
    if mem["MemAvailable"] < floor_kb:
        # The machine is about to run out (kernel socket memory cannot be reclaimed): stop the load
        # before the OOM killer picks a process, ours or another session's.
        open(f"{out}/events.txt", "a").write(f"MemAvailable {mem['MemAvailable']} kB < {floor_kb} kB at {tcp[2]} TCP sockets: stopping the load\n")
        for p in read(f"{out}/load.pid").split():
            os.kill(int(p), 15)
    if inuse > peak:
        peak = inuse
        open(f"{out}/slabinfo.peak", "w").write(read("/proc/slabinfo"))
PY
}
sync; echo 2 > /proc/sys/vm/drop_caches 2>/dev/null || true  # reclaimable slab out of the baseline
cat /proc/slabinfo > "$out/slabinfo.before" 2>/dev/null || true
echo "before slab_kb=$(meminfo Slab) sunreclaim_kb=$(meminfo SUnreclaim) tcp_inuse=$(awk '/^TCP:/ {print $3}' /proc/net/sockstat)" > "$out/before.txt"
uptime > "$out/uptime.before"

"$R" serve --backend "$backend" --processes "$procs" --backlog 65535 --listen "127.0.0.1:$port" \
  --duration "$(( load_s + 20 ))s" --json "$out/server.json" > "$out/server.txt" 2> "$out/server.err" &
server_pid=$!
sleep 2
counters="TcpExtListenOverflows TcpExtListenDrops TcpExtTCPSynRetrans TcpRetransSegs TcpExtTCPAbortOnMemory \
  TcpExtTCPMemoryPressures TcpExtTCPAbortOnClose TcpExtTCPAbortOnTimeout TcpExtTCPReqQFullDrop TcpExtSyncookiesSent \
  TcpExtTCPAbortOnData TcpAttemptFails TcpEstabResets"
# Absolute values before and after, subtracted in the summary: nstat's own history file is shared with
# every other root session on the machine, so its deltas are not ours.
nstat -az $counters > "$out/nstat.before" || true
t0=$(( $(date +%s%N) / 1000000 ))
sample "$t0" > "$out/samples.txt" 2>/dev/null &
sampler_pid=$!
"$R" load --backend "$backend" --processes "$procs" --target "127.0.0.1:$port" -c "$n" --connect-rate "$rate" \
  --interval "$interval" --source "$sources" -d "${load_s}s" --json "$out/load.json" \
  > "$out/load.txt" 2> "$out/load.err" &
load_pid=$!
echo "$load_pid" > "$out/load.pid"
# Watch the live line ("[  12.0s] open 200,000  established/s 0 ..."): once every connection is open, or
# none has been established for 3 lines after the ramp began (some failed: the reports say why), hold,
# then stop.
while kill -0 "$load_pid" 2>/dev/null; do
  lines=$( (grep -o 'open [0-9,]*  established/s [0-9,]*' "$out/load.err" 2>/dev/null || true) | tr -d , | tail -3)
  open=$(tail -1 <<< "$lines" | awk '{print $2}')
  quiet=$(awk '$4 == 0 && $2 > 0' <<< "$lines" | wc -l)
  if [ "${open:-0}" -ge "$n" ] || [ "$quiet" -ge 3 ]; then
    echo "ramp over with ${open} open at $(( $(date +%s%N) / 1000000 - t0 )) ms; holding ${hold}s" >> "$out/events.txt"
    sleep "$hold"; kill -TERM "$load_pid" 2>/dev/null || true; break
  fi
  sleep 1
done
wait "$load_pid" || echo "load exited $?" >> "$out/exit.txt"; load_pid=
times > "$out/times.load"   # CPU of the children reaped so far: the load and its workers
nstat -az $counters > "$out/nstat.after" || true
sleep 10  # the server reads the clients' last FINs before it is stopped (else they count as open at its end)
kill "$server_pid" 2>/dev/null || true  # SIGTERM: the server drains and writes its report
wait "$server_pid" || true; server_pid=
times > "$out/times.both"   # ... and now the server and its workers too
kill "$sampler_pid" 2>/dev/null || true; sampler_pid=
uptime > "$out/uptime.after"
sleep 3
echo "after slab_kb=$(meminfo Slab) sunreclaim_kb=$(meminfo SUnreclaim) tcp_inuse=$(awk '/^TCP:/ {print $3}' /proc/net/sockstat)" > "$out/after.txt"

python3 "$(dirname "$0")/million_summary.py" "$out" "$n" "$rate" "$procs" "$sources" "$backend" "$interval" "$hold"
echo "files: $out" >&2
