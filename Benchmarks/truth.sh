#!/usr/bin/env bash
# Benchmarks/truth.sh [SECONDS]
#
# Holds RingStorm's own numbers against outside witnesses, on loopback, and exits 1 if one disagrees:
#  (a) syscalls: the engines' counts (the JSON's syscalls.total) against perf's raw_syscalls:sys_enter
#      tracepoint, server and load, both backends, within 5%: perf's count of the kinds of call the
#      engine makes (per-syscall tracepoints: sockets, epoll, io_uring, close), since the whole process
#      also holds start-up and exit (printed beside). Open-loop load, 100 connections, a request every 5 ms.
#  (b) FIN and RST: the counts of both sides against a tcpdump capture on lo (connections whose first
#      FIN or RST came from the peer; Benchmarks/truth_capture.py reads the pcap), for peers that close
#      and peers that reset (a Python client: half close with FIN, half with SO_LINGER 0), for a server
#      that closes idle clients (ringstorm load --silent), and for the repro (ringstorm repro).
#  (c) requests/s: ringstorm load against the C yardstick client (c-echo-client) on the same ringstorm
#      echo server, 1,000 connections, closed loop, interleaved rounds, median ratio within 5%.
#      Server pinned to CPU 0, clients to CPU 1. The check means something only where the server, not
#      the client, sets the rate (otherwise it measures which client is cheaper per request), so the
#      server runs in a CPU cgroup capped at SERVER_CPU percent of one CPU (default 10: cgroup v2
#      cpu.max, or v1 cpu.cfs_quota_us where the cpu controller is mounted as v1; removed at exit),
#      far below what either client can drive: both must reach the server's capacity and agree.
#
# Needs: root (the cgroup), a release build (swift build -c release), perf, tcpdump, python3, taskset,
# and the C yardstick client (YARDSTICKS=DIR, default ../shared/yardsticks, built into /tmp/ringstorm-yardsticks).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
secs=${1:-4}
R=${RINGSTORM:-$here/.build/release/ringstorm}
yard=${YARDSTICKS:-$here/../shared/yardsticks}
[ -x "$R" ] || { echo "truth.sh: no release build at $R: run swift build -c release" >&2; exit 2; }
for tool in perf tcpdump python3 taskset bc; do
  command -v $tool >/dev/null || { echo "truth.sh: $tool missing (apt-get install -y linux-perf tcpdump python3 util-linux)" >&2; exit 2; }
done
[ -x "$yard/measure.sh" ] && [ -f "$yard/c-echo-client/client.c" ] || {
  echo "truth.sh: no C yardstick client at $yard (check (c) needs it): set YARDSTICKS=DIR holding c-echo-client/ and measure.sh" >&2; exit 2; }
"$yard/measure.sh" build >/dev/null || { echo "truth.sh: could not build the yardsticks from $yard" >&2; exit 2; }
client=${YARDSTICKS_BUILD:-/tmp/ringstorm-yardsticks}/c-echo-client
tmp=$(mktemp -d)
cgroup=
cleanup() {
  [ -n "${capped:-}" ] && kill "$capped" 2>/dev/null
  if [ -n "$cgroup" ] && [ -d "$cgroup" ]; then
    # A cgroup is removed only when empty: wait for the capped server to go.
    for _ in $(seq 50); do [ -s "$cgroup/cgroup.procs" ] || break; sleep 0.1; done
    rmdir "$cgroup" 2>/dev/null || echo "truth.sh: could not remove $cgroup" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
failed=0
port=$((7950 + RANDOM % 40))

verdict() { # name tool witness tolerance-percent
  python3 - "$@" <<'PY'
import sys
name, tool, witness, tol = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
diff = abs(tool - witness) / witness * 100 if witness else (0 if tool == 0 else 100)
ok = diff <= tol
print("%s %-58s ringstorm %12s  witness %12s  diff %5.2f%%" % ("PASS" if ok else "FAIL", name,
      format(int(tool), ",") if tool == int(tool) else "%.0f" % tool, format(int(witness), ",") if witness == int(witness) else "%.0f" % witness, diff))
sys.exit(0 if ok else 1)
PY
  [ $? -eq 0 ] || failed=1
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
perf_count() { grep raw_syscalls "$1" | cut -d, -f1; }

echo "== (a) syscalls: the engines' counts against perf stat -e raw_syscalls:sys_enter"
# perf counts the whole process: besides the engine, its start-up (the dynamic loader, the Swift
# runtime: openat, mmap, mprotect, ...), the main thread's waits, allocations and its exit, 400-700 calls
# that vary from run to run. So perf also counts, by tracepoint, the kinds of call the engine makes
# (sockets, epoll, io_uring, close); the check is the engine's total against those. Start-up's own
# close() calls (a few dozen) are in that witness too, so it errs against the tool.
kinds="socket shutdown sendto recvfrom listen connect bind setsockopt getsockopt getsockname accept4 close
       epoll_wait epoll_pwait epoll_pwait2 epoll_ctl epoll_create1 io_uring_enter io_uring_setup io_uring_register"
events=raw_syscalls:sys_enter
for k in $kinds; do events="$events,syscalls:sys_enter_$k"; done
engine_kinds() { grep 'syscalls:sys_enter_' "$1" | cut -d, -f1 | paste -sd+ | bc; }
for b in uring epoll; do
  port=$((port + 1))
  perf stat -e "$events" -x, -o "$tmp/perf-serve-$b" -- \
    "$R" serve --protocol echo --backend $b --listen 127.0.0.1:$port --duration $((secs + 2))s \
    --report-interval 0 --log-level warning --json "$tmp/serve-$b.json" >/dev/null &
  spid=$!
  wait_port $port || { echo "FAIL the $b server did not listen"; failed=1; continue; }
  perf stat -e "$events" -x, -o "$tmp/perf-load-$b" -- \
    "$R" load --target 127.0.0.1:$port --protocol echo --backend $b -c 100 --interval 5ms -d ${secs}s \
    --report-interval 0 --log-level warning --json "$tmp/load-$b.json" >/dev/null
  wait $spid
  for side in serve load; do
    all=$(perf_count "$tmp/perf-$side-$b")
    ours=$(json "$tmp/$side-$b.json" "d['syscalls']['total']")
    echo "$b $side: perf counts $all syscalls in the whole process, $(( all - ours )) more than the engine (start-up, main thread, exit)"
    verdict "$b $side syscalls (perf: the engine's kinds of call)" "$ours" "$(engine_kinds "$tmp/perf-$side-$b")" 5
  done
done

capture() { # file filter: starts tcpdump, sets cap_pid
  tcpdump -i lo -n -s 96 -B 16384 -U -w "$1" "$2" 2>"$1.log" &
  cap_pid=$!
  for _ in $(seq 50); do grep -q listening "$1.log" 2>/dev/null && break; sleep 0.1; done
}
stop_capture() { sleep 0.5; kill -INT "$cap_pid" 2>/dev/null; wait "$cap_pid" 2>/dev/null; }
flags='(tcp[tcpflags] & (tcp-fin|tcp-rst|tcp-syn) != 0)'

echo "== (b) FIN and RST counts against a tcpdump capture on lo"
for b in uring epoll; do
  port=$((port + 1))
  capture "$tmp/peers-$b.pcap" "tcp port $port and $flags"
  "$R" serve --protocol echo --backend $b --listen 127.0.0.1:$port --duration 4s --report-interval 0 \
    --log-level warning --json "$tmp/peers-serve-$b.json" >/dev/null &
  spid=$!
  wait_port $port
  python3 - $port <<'PY'
import socket, struct, sys, time
port = int(sys.argv[1])
socks = []
for i in range(60):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"x" * 64)
    got = b""
    while len(got) < 64:
        got += s.recv(64 - len(got))
    socks.append(s)
time.sleep(0.2)
for i, s in enumerate(socks):
    if i % 3 == 0:  # a peer that resets
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
PY
  wait $spid
  stop_capture
  seen=$(python3 "$here/Benchmarks/truth_capture.py" "$tmp/peers-$b.pcap" $port)
  # wait_port's probe connection closes with a FIN too: it is in both counts.
  verdict "$b server closed_by_peer (peers closing, FIN)" "$(json "$tmp/peers-serve-$b.json" "d['closed_by_peer']")" "$(python3 -c "import json;print(json.loads('$seen')['client_fin_first'])")" 0
  verdict "$b server reset_by_peer (peers resetting, RST)" "$(json "$tmp/peers-serve-$b.json" "d['reset_by_peer']")" "$(python3 -c "import json;print(json.loads('$seen')['client_rst_first'])")" 0

  port=$((port + 1))
  capture "$tmp/idle-$b.pcap" "tcp port $port and $flags"
  "$R" serve --protocol ringstorm --backend $b --listen 127.0.0.1:$port --idle-timeout 1s --register-timeout 1s --duration 5s \
    --report-interval 0 --log-level warning --json "$tmp/idle-serve-$b.json" >/dev/null &
  spid=$!
  wait_port $port
  "$R" load --target 127.0.0.1:$port --silent --backend $b -c 40 -d 3s --report-interval 0 --log-level warning \
    --json "$tmp/idle-load-$b.json" >/dev/null
  wait $spid
  stop_capture
  seen=$(python3 "$here/Benchmarks/truth_capture.py" "$tmp/idle-$b.pcap" $port)
  sum="sum(d['outcomes'][p][k] for p in d['outcomes'] for k in ['OUT'])"
  verdict "$b load closed (server closes silent clients, FIN)" "$(json "$tmp/idle-load-$b.json" "${sum/OUT/closed}")" "$(python3 -c "import json;print(json.loads('$seen')['server_fin_first'])")" 0
  verdict "$b load reset (RST from the server)" "$(json "$tmp/idle-load-$b.json" "${sum/OUT/reset}")" "$(python3 -c "import json;print(json.loads('$seen')['server_rst_first'])")" 0
done

capture "$tmp/repro.pcap" "tcp and $flags"
"$R" repro -d 5s --report-interval 0 --log-level warning --json "$tmp/repro.json" >/dev/null 2>&1
stop_capture
rport=$(json "$tmp/repro.json" "d['address'].rsplit(':',1)[1]")
seen=$(python3 "$here/Benchmarks/truth_capture.py" "$tmp/repro.pcap" "$rport")
sum() { json "$tmp/repro.json" "sum(d[g]['outcomes'][p]['$1'] for g in ['registering','silent'] for p in d[g]['outcomes'])"; }
field() { python3 -c "import json;print(json.loads('$seen')['$1'])"; }
verdict "repro: clients closed (FIN from the server)" "$(sum closed)" "$(field server_fin_first)" 0
verdict "repro: clients reset (RST from the server)" "$(sum reset)" "$(field server_rst_first)" 0
verdict "repro: server closed_by_peer (FIN from clients)" "$(json "$tmp/repro.json" "d['server_final']['closed_by_peer']")" "$(field client_fin_first)" 0
verdict "repro: server reset_by_peer (RST from clients)" "$(json "$tmp/repro.json" "d['server_final']['reset_by_peer']")" "$(field client_rst_first)" 0

server_cpu=${SERVER_CPU:-10}
# A CPU cgroup capping the server at server_cpu% of one CPU, in 10 ms periods (short, so the server is
# throttled in small steps, not for most of a 100 ms period).
make_cgroup() {
  local period=10000 quota=$(( 10000 * server_cpu / 100 ))
  if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    cgroup=/sys/fs/cgroup/ringstorm-truth-$$
    grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu > /sys/fs/cgroup/cgroup.subtree_control || return 1
    mkdir "$cgroup" && echo "$quota $period" > "$cgroup/cpu.max"
  elif [ -w /sys/fs/cgroup/cpu ]; then
    cgroup=/sys/fs/cgroup/cpu/ringstorm-truth-$$
    mkdir "$cgroup" && echo $period > "$cgroup/cpu.cfs_period_us" && echo $quota > "$cgroup/cpu.cfs_quota_us"
  else
    return 1
  fi
}
echo "== (c) requests/s: ringstorm load against the C yardstick client, same server (CPU 0, capped at ${server_cpu}% of it), clients on CPU 1"
if ! make_cgroup; then
  echo "FAIL could not make a CPU cgroup to cap the server (needs root and the cpu controller): set SERVER_CPU or run as root"
  failed=1
else
port=$((port + 1))
rounds=${ROUNDS:-5}
# Enough connections that, every period, more requests wait than the capped server can answer: it
# works its whole quota on full batches, whichever client sent them (with 200, a 1 ms quota emptied the
# queue and the rate followed how each client batched its sends).
conns=${CONNS:-1000}
# The server enters the cgroup before it execs, so all its threads are capped.
sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cgroup" taskset -c 0 "$R" serve --protocol echo --listen 127.0.0.1:$port \
  --duration $(( (secs + 3) * rounds * 2 + 10 ))s --report-interval 0 --log-level warning >/dev/null &
capped=$!
wait_port $port
ratios=()
for round in $(seq $rounds); do
  c_rate=$(taskset -c 1 "$client" -p $port -c $conns -m 64 -w 1 -d $((secs + 1)) | sed -n 's/.*rate=\([0-9.]*\)msg.*/\1/p')
  # The same window as the C client's: after a second of warm-up (its -w 1), whole intervals only
  # (the report's per-second series; the last, partial one holds the end of the run).
  taskset -c 1 "$R" load --target 127.0.0.1:$port --protocol echo -c $conns -d $((secs + 2))s --report-interval 0 \
    --log-level warning --json "$tmp/yard-load.json" >/dev/null
  r_rate=$(python3 - "$tmp/yard-load.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
steady = d['intervals'][1:-1]
print(round(sum(i['answered'] for i in steady) / (len(steady) * d['interval_ms'] / 1000)) if steady else 0)
PY
)
  echo "round $round: C client ${c_rate} msgs/s, the load generator ${r_rate} requests/s, ratio $(python3 -c "print('%.3f' % ($r_rate / $c_rate))")"
  ratios+=("$r_rate $c_rate")
done
kill $capped 2>/dev/null; wait $capped 2>/dev/null
capped=
median=$(printf '%s\n' "${ratios[@]}" | python3 -c "
import sys, statistics
pairs = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
r = statistics.median(a / b for a, b in pairs)
m = statistics.median(b for a, b in pairs)
print(r * m, m)")
verdict "requests/s, median over $rounds rounds (witness: C client)" ${median% *} ${median#* } 5
fi

echo
[ $failed -eq 0 ] && echo "all checks passed" || echo "some checks FAILED"
exit $failed
