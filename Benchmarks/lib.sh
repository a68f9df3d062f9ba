# Benchmarks/lib.sh: the plumbing the benchmark scripts share, sourced by them
# (`. "$here/Benchmarks/lib.sh"`); not run on its own.

# need_release_build BINARY: stops the script (status 2) with the fix when BINARY is not there.
need_release_build() {
  [ -x "$1" ] || { echo "no release build at $1: run swift build -c release" >&2; exit 2; }
}

# need_yardsticks DIR: stops the script (status 2) when DIR holds no yardsticks (../shared/yardsticks).
need_yardsticks() {
  [ -x "$1/measure.sh" ] || { echo "no yardsticks at $1: set YARDSTICKS=DIR" >&2; exit 2; }
}

# wait_port PORT [TRIES]: waits until something accepts on 127.0.0.1:PORT, trying every 0.1 s, TRIES
# times (default 100: 10 s); status 1 if nothing did. Each try is a connection that closes at once.
wait_port() {
  local _
  for _ in $(seq "${2:-100}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# The listen and input queues a loopback ramp of tens of thousands of connects a second needs: a
# burst past net.core.somaxconn / tcp_max_syn_backlog is dropped at the listener, and past
# netdev_max_backlog (loopback packets queued per CPU) dropped before TCP; either comes back as a
# retransmission 1 s (SYN) or 200 ms (data) later, a latency that is the kernel's queue, not the server.
RAMP_SYSCTLS=(net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 net.core.netdev_max_backlog=16384)

# raise_sysctls NAME=VALUE...: raises each numeric sysctl to VALUE where it is lower, after saving
# its value for restore_sysctls (call that from the script's EXIT trap). Needs root.
declare -A saved_sysctls=()
raise_sysctls() {
  local kv k v
  for kv in "$@"; do
    k=${kv%%=*} v=${kv#*=}
    [ -n "${saved_sysctls[$k]+x}" ] || saved_sysctls[$k]=$(sysctl -n "$k" | tr -s '\t ' ' ')
    [ "$(sysctl -n "$k")" -ge "$v" ] || sysctl -qw "$k=$v"
  done
}

# set_sysctl NAME VALUE: sets a sysctl (any value, e.g. a port range), saving it for restore_sysctls.
set_sysctl() {
  [ -n "${saved_sysctls[$1]+x}" ] || saved_sysctls[$1]=$(sysctl -n "$1" | tr -s '\t ' ' ')
  sysctl -qw "$1=$2"
}

# restore_sysctls: puts back every sysctl raise_sysctls or set_sysctl changed, saying which it could not.
restore_sysctls() {
  local k
  for k in "${!saved_sysctls[@]}"; do
    sysctl -qw "$k=${saved_sysctls[$k]}" || echo "could not restore $k=${saved_sysctls[$k]}" >&2
  done
  saved_sysctls=()
}
