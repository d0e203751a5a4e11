#!/usr/bin/env bash
# lineaged CPU per record on the default path (embedded NATS, Tessera POSIX, SQLite, unsigned
# sources): starts bin/lineaged on a fresh data dir, publishes N records as fast as possible with
# bin/lineagebench, and reads lineaged's user+system CPU time from /proc/<pid>/stat from the first
# publish until the index has applied every record. The index position is sampled every 100 ms
# only (each sample is a request lineaged answers). Repeat with RUNS=k to see the spread.
#
#   scripts/cpu-per-record.sh [N]          N records (default 60000)
#   PROFILE=cpu.pprof scripts/...          also take a CPU profile (PROFILE_SECONDS, default 10)
#   BENCH_FLAGS="--batch-size 2000" ...    extra lineaged flags
#   LINEAGED=/tmp/old/lineaged ...         another build, to compare two under the same load
#   NAME=old ...                           the runs' name in their JSON reports (default cpu)
#   SIGNED=1 ...                           the signed-source path: every record carries an Ed25519
#                                          source signature that lineaged verifies (--source-keys)
#   ANSWERS=20 ...                         also time 20 lineage answers of each kind after the run
#
# Each run also reports lineaged's allocations and bytes allocated per record (from /metrics, read
# at the first publish and at the end) and the data dir's disk bytes per record by component.
#
# Each run's figures are also written as JSON to $BENCH_RESULTS (default bench-results/) as
# <UTC timestamp>-<NAME>-run<k>.json; compare two with `make bench-compare OLD=a.json NEW=b.json`.
set -euo pipefail
N=${1:-60000}
RUNS=${RUNS:-1}
LINEAGED=${LINEAGED:-bin/lineaged}
nats=127.0.0.1:${BENCH_NATS_PORT:-14222}
http=127.0.0.1:${BENCH_HTTP_PORT:-18080}
pprof=127.0.0.1:${BENCH_PPROF_PORT:-16060}
results=${BENCH_RESULTS:-bench-results}
name=${NAME:-cpu}
signed=${SIGNED:-0}
[ "$signed" = 0 ] && signed=""
[ -n "$signed" ] && [ -z "${NAME:-}" ] && name=cpu-signed
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$results"
keys=$(mktemp -d)
trap 'rm -rf "$keys"' EXIT
signflags=()
lineagedflags=()
if [ -n "$signed" ]; then
  # One Ed25519 key, registered for every (tenant, source) the generated records name, under the
  # key id bench-<source id> (a source key vouches for one source of one tenant; the key file
  # may hold one public key under several ids and tenants, ingest/signature.go).
  bin/lineagectl sourcekey create --tenant acme-bank --source-id gateway-eu-1 --key-id bench-gateway-eu-1 \
    --out "$keys/source.key" >/dev/null
  bin/lineagebench source-keys --sign-key "$keys/source.key" --sign-key-id 'bench-{source}' --n "$N" \
    --out "$keys/source-keys.json"
  signflags=(--sign-key "$keys/source.key" --sign-key-id 'bench-{source}')
  lineagedflags=(--source-keys "$keys/source-keys.json")
fi
for run in $(seq 1 "$RUNS"); do
  dir=$(mktemp -d)
  "$LINEAGED" serve --data-dir "$dir" --nats-addr "$nats" --http-addr "$http" --pprof-addr "$pprof" \
    --log-level warn "${lineagedflags[@]}" ${BENCH_FLAGS:-} >"$dir/lineaged.log" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir" "$keys"' EXIT
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/${http%:*}/${http#*:}") 2>/dev/null && break
    sleep 0.1
  done
  prof=""
  if [ -n "${PROFILE:-}" ]; then
    out=$PROFILE
    [ "$RUNS" -gt 1 ] && out="${PROFILE%.pprof}.$run.pprof"
    (sleep 1; curl -s -o "$out" "http://$pprof/debug/pprof/profile?seconds=${PROFILE_SECONDS:-10}") &
    prof=$!
  fi
  echo "== run $run: $N ${signed:+signed }records through $LINEAGED pid $pid (${BENCH_FLAGS:-default flags}${signed:+, --source-keys})"
  json="$results/$stamp-$name-run$run.json"
  bin/lineagebench --nats-url "nats://$nats" --api "http://$http" --n "$N" --pid "$pid" --sample-interval 100ms \
    --data-dir "$dir" --answers "${ANSWERS:-0}" "${signflags[@]}" \
    --json "$json" --name "$name-run$run" --note "$LINEAGED ${BENCH_FLAGS:-default flags}${signed:+ --source-keys (signed)}" \
    | grep -E '^(publish|end-to-end|lineaged|signed|disk|answers|  )'
  echo "figures: $json"
  [ -n "$prof" ] && wait "$prof"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  trap 'rm -rf "$keys"' EXIT
done
