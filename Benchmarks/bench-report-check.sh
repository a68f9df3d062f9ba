#!/usr/bin/env bash
# Benchmarks/bench-report-check.sh [OUT_DIR] [-- BENCH-ARGS...]
#
# Checks `ringstorm bench --html` as a person sees it: runs a bench (default: the command's defaults,
# about 25 s), renders the HTML report in headless Chromium to a PNG, checks the page has its four
# charts and the PNG is not blank, and prints where the PNG is, to be looked at. With SAVE_CHART=PATH
# it also writes the report's first chart (latency by percentile) there as a standalone SVG
# (Docs/images/bench-latency.svg is made this way).
#
# Needs: a release build (swift build -c release) and Chromium (apt-get install -y chromium).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Benchmarks/lib.sh"
out=${1:-/tmp/ringstorm-bench-report}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
ringstorm=${RINGSTORM:-$here/.build/release/ringstorm}
need_release_build "$ringstorm"
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "Chromium missing: apt-get install -y chromium" >&2; exit 2; }
mkdir -p "$out"
echo "+ ringstorm bench --json $out/bench.json --html $out/bench.html $*" >&2
"$ringstorm" bench --json "$out/bench.json" --html "$out/bench.html" "$@" | tee "$out/table.txt"
svgs=$(grep -c '<svg ' "$out/bench.html")
[ "$svgs" = 4 ] || { echo "FAIL: $svgs charts in $out/bench.html, expected 4" >&2; exit 1; }
! grep -q '<script' "$out/bench.html" || { echo "FAIL: the report holds a script" >&2; exit 1; }
timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$out/bench.png" \
  --window-size=1200,1600 "file://$out/bench.html" >/dev/null 2>&1
size=$(stat -c %s "$out/bench.png" 2>/dev/null || echo 0)
[ "$size" -gt 30000 ] || { echo "FAIL: $out/bench.png is $size bytes: blank or not rendered" >&2; exit 1; }
if [ -n "${SAVE_CHART:-}" ]; then
  python3 - "$out/bench.html" "$SAVE_CHART" <<'PY'
import sys
html = open(sys.argv[1], encoding="utf-8").read()
start = html.index("<svg ")
end = html.index("</svg>", start) + len("</svg>")
open(sys.argv[2], "w", encoding="utf-8").write(html[start:end] + "\n")
PY
  echo "chart: $SAVE_CHART" >&2
fi
echo "ok: 4 charts, rendered to $out/bench.png ($size bytes): look at it" >&2
