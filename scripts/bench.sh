#!/usr/bin/env bash
# Side-by-side benchmarks, each variant against its baseline in one run,
# summarised with benchstat. Usage: scripts/bench.sh [count]
# Writes bench/transport.txt, bench/middleware.txt (Echo v4),
# bench/echov5.txt and bench/nethttp.txt, and prints the tables the README
# quotes: each server adapter against its own baselines (the bare
# framework, and the framework behind plain otelhttp). Run it on an
# otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-10}"
benchstat="go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"
mkdir -p bench
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/transport.test" ./transport
go test -c -o "$bin/middleware.test" ./middleware
go test -c -o "$bin/echov5.test" ./middleware/echov5
go test -c -o "$bin/nethttp.test" ./middleware/nethttp
# One round after another, each running every variant once: a machine
# whose speed drifts over the minutes of the run (a shared VM does) then
# shifts every variant alike, instead of the ones measured last.
: > bench/transport.txt
: > bench/middleware.txt
: > bench/echov5.txt
: > bench/nethttp.txt
for round in $(seq "$count"); do
	echo "round $round of $count" >&2
	(cd transport && "$bin/transport.test" -test.run '^$' -test.bench 'RoundTrip|HeldOpenBody' -test.benchmem -test.count 1) >> bench/transport.txt
	(cd middleware && "$bin/middleware.test" -test.run '^$' -test.bench 'Server' -test.benchmem -test.count 1) >> bench/middleware.txt
	(cd middleware/echov5 && "$bin/echov5.test" -test.run '^$' -test.bench 'Server' -test.benchmem -test.count 1) >> bench/echov5.txt
	(cd middleware/nethttp && "$bin/nethttp.test" -test.run '^$' -test.bench 'Server' -test.benchmem -test.count 1) >> bench/nethttp.txt
done

echo
echo "== transport: one GET of 2 KiB (rows: upstream, sampling; deltas against plain otelhttp) =="
$benchstat -filter '.name:RoundTrip' -row /upstream,/sampling -col '/transport@(otelhttp telltale bare)' bench/transport.txt
echo
echo "== transport: the same over loopback from 8 goroutines =="
$benchstat -filter '.name:RoundTripParallel' -row /sampling -col '/transport@(otelhttp telltale bare)' bench/transport.txt
echo
echo "== transport: heap held per open body =="
$benchstat -filter '.name:HeldOpenBody' -col '/transport@(otelhttp telltale bare)' bench/transport.txt
echo
echo "== middleware: every stack (rows: sampling) =="
$benchstat -row /sampling -col /stack bench/middleware.txt
echo
echo "== middleware: telltale's Trace alone and the full stack, against plain otelhttp =="
$benchstat -filter '/stack:(otelhttp OR trace OR telltale)' -row /sampling -col '/stack@(otelhttp trace telltale)' bench/middleware.txt
echo
echo "== middleware: Deadline alone, against bare Echo =="
$benchstat -filter '/stack:(bare OR deadline)' -row /sampling -col '/stack@(bare deadline)' bench/middleware.txt
echo
echo "== server adapters: the full stack and Trace alone, each against its framework bare and behind plain otelhttp =="
for adapter in middleware echov5 nethttp; do
	case $adapter in
	middleware) title="Echo v4 (package middleware)" ;;
	echov5) title="Echo v5 (package middleware/echov5)" ;;
	nethttp) title="net/http (package middleware/nethttp; otelhttp is otelhttp.NewHandler around the mux)" ;;
	esac
	echo
	echo "-- $title --"
	$benchstat -filter '/stack:(bare OR otelhttp OR trace OR telltale)' -row /sampling -col '/stack@(otelhttp bare trace telltale)' "bench/$adapter.txt"
done
