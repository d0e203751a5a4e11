#!/usr/bin/env bash
# End-to-end load test: starts bin/lineaged on a fresh data dir (embedded NATS, Tessera POSIX,
# SQLite) and runs bin/lineagebench twice against it:
#   1. N records as fast as possible: records/s end to end, JetStream's accept rate, lineaged's
#      CPU-µs, allocations and bytes allocated per record, RSS, disk bytes per record by
#      component (log, index, NATS, other);
#   2. N/5 records at a steady rate, by default 80 % of the end-to-end records/s run 1 measured
#      (BENCH_RATE=R overrides): publish→queryable p50/p99 at 80 % of capacity, then
#      BENCH_ANSWERS (default 20; 0 skips) lineage answers of each kind: the busiest user's tree
#      without proofs, with every proof, and single records with their inclusion proof.
# Each run's figures are written as JSON to $BENCH_RESULTS (default bench-results/) as
# <UTC timestamp>-e2e.json and <UTC timestamp>-steady.json, with <UTC timestamp>.html showing
# both; the script ends with one table of every figure. Compare two runs with
# `make bench-compare OLD=a.json NEW=b.json`.
set -euo pipefail
N=${1:-100000}
results=${BENCH_RESULTS:-bench-results}
answers=${BENCH_ANSWERS:-20}
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
e2e=$results/$stamp-e2e.json
steady=$results/$stamp-steady.json
echo "== end-to-end: $N records through lineaged (embedded NATS → Tessera POSIX → SQLite), as fast as possible"
# The index position is sampled every 100 ms: each sample is a request lineaged answers, and
# at 2 ms the sampling itself cost lineaged ≈ 160 µs of CPU per record (docs/PERFORMANCE.md).
bin/lineagebench --nats-url "nats://$nats" --api "http://$http" --n "$N" --pid "$pid" --sample-interval 100ms \
  --data-dir "$dir" --json "$e2e" --note "bench.sh ${BENCH_FLAGS:-default flags}"
echo "figures: $e2e"
if [ -n "${BENCH_RATE:-}" ]; then
  RATE=$BENCH_RATE
  echo "== steady rate: $RATE records/s (BENCH_RATE)"
else
  rps=$(bin/lineagebench field "$e2e" figures.records_per_sec)
  RATE=$(( ${rps%.*} * 8 / 10 ))
  [ "$RATE" -ge 1 ] || RATE=1
  echo "== steady rate: $RATE records/s = 80 % of the ${rps%.*} records/s just measured end to end (BENCH_RATE overrides)"
fi
echo "== latency at a steady $RATE records/s: $((N / 5)) records, then $answers lineage answers of each kind"
# The default 2 ms sampling here: latency is this run's figure (its CPU per record would include
# the sampling's cost, so it is not measured).
bin/lineagebench --nats-url "nats://$nats" --api "http://$http" --n "$((N / 5))" --rate "$RATE" \
  --data-dir "$dir" --answers "$answers" --json "$steady" --note "bench.sh ${BENCH_FLAGS:-default flags}; 80 % of capacity unless BENCH_RATE"
echo "figures: $steady"
exec 3<>"/dev/tcp/${http%:*}/${http#*:}"; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; grep -E "^lineage_(ingest_append_seconds|index_batch_seconds)_(sum|count)" <&3 || true
echo "data dir size: $(du -sh "$dir" | cut -f1)"
html=$results/$stamp.html
bin/lineagebench report --ratio=false --out "$html" "$e2e" "$steady" >/dev/null
echo
echo "== summary (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
bin/lineagebench summary "$e2e" "$steady"
echo
echo "JSON: $e2e"
echo "      $steady"
echo "HTML: $html"
