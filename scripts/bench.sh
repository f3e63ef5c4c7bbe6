#!/usr/bin/env bash
# Side-by-side benchmarks, each variant against its baseline in one run,
# summarised with benchstat. Usage: scripts/bench.sh [count]
# Writes bench/transport.txt, bench/middleware.txt and prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-10}"
benchstat="go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"
mkdir -p bench
go test -run '^$' -bench 'RoundTrip|HeldOpenBody' -benchmem -count "$count" ./transport | tee bench/transport.txt
if ls middleware/*_test.go >/dev/null 2>&1 && grep -q 'func BenchmarkServer' middleware/*_test.go; then
  go test -run '^$' -bench 'Server' -benchmem -count "$count" ./middleware | tee bench/middleware.txt
fi
echo
echo "== transport (columns: /transport; deltas against otelhttp) =="
$benchstat -col '/transport@(otelhttp telltale bare)' bench/transport.txt
if [ -f bench/middleware.txt ]; then
  echo
  echo "== middleware: every variant =="
  $benchstat -row /stack -col .name bench/middleware.txt
  echo
  echo "== middleware: telltale's Trace alone and the full stack, against plain otelhttp =="
  $benchstat -filter '/stack:(otelhttp OR trace OR telltale)' -col '/stack@(otelhttp trace telltale)' bench/middleware.txt
fi
