#!/usr/bin/env bash
# End-to-end load test: starts bin/lineaged on a fresh data dir (embedded NATS, Tessera POSIX,
# SQLite), publishes N records with bin/lineagebench and prints throughput and latency. Each run's
# figures are also written as JSON to $BENCH_RESULTS (default bench-results/) as
# <UTC timestamp>-e2e.json and <UTC timestamp>-steady.json; compare two with
# `make bench-compare OLD=a.json NEW=b.json`.
set -euo pipefail
N=${1:-100000}
results=${BENCH_RESULTS:-bench-results}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$results"
dir=$(mktemp -d)
nats=127.0.0.1:${BENCH_NATS_PORT:-14222}
http=127.0.0.1:${BENCH_HTTP_PORT:-18080}
bin/lineaged serve --data-dir "$dir" --nats-addr "$nats" --http-addr "$http" --log-level warn ${BENCH_FLAGS:-} >"$dir/lineaged.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/${http%:*}/${http#*:}") 2>/dev/null && break
  sleep 0.1
done
echo "== end-to-end: $N records through lineaged (embedded NATS → Tessera POSIX → SQLite), as fast as possible"
bin/lineagebench --nats-url "nats://$nats" --api "http://$http" --n "$N" \
  --json "$results/$stamp-e2e.json" --note "bench.sh ${BENCH_FLAGS:-default flags}"
echo "figures: $results/$stamp-e2e.json"
RATE=${BENCH_RATE:-2000}
echo "== latency at a steady $RATE records/s (below capacity): $((N / 5)) records"
bin/lineagebench --nats-url "nats://$nats" --api "http://$http" --n "$((N / 5))" --rate "$RATE" \
  --json "$results/$stamp-steady.json" --note "bench.sh ${BENCH_FLAGS:-default flags}"
echo "figures: $results/$stamp-steady.json"
exec 3<>"/dev/tcp/${http%:*}/${http#*:}"; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; grep -E "^lineage_(ingest_append_seconds|index_batch_seconds)_(sum|count)" <&3 || true
echo "data dir size: $(du -sh "$dir" | cut -f1)"
