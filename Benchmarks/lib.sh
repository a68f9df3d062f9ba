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
