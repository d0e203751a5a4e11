# Lineage — make targets. `make run` serves on embedded defaults; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin
export CGO_ENABLED := 1

.PHONY: all build run test test-seaweedfs lint fuzz bench cpu-per-record bench-compare soak clean deps test-deps

all: build

## deps: the toolchain pieces a fresh Debian machine needs (gcc for the SQLite driver's cgo).
deps:
	@scripts/deps.sh

## test-deps: the servers the tests start for real, from Debian packages: MariaDB (Trillian's
## storage), ClickHouse, Chromium (the browser tests) and promtool (the alerting rules).
## Trillian itself and the test OpenID provider are built from the pinned Go modules by the tests.
test-deps:
	@scripts/deps-trillian.sh
	@scripts/deps-clickhouse.sh
	@scripts/deps-chromium.sh
	@scripts/deps-promtool.sh
	@scripts/deps-docker-compose.sh

build: deps
	$(GO) build -o $(BIN)/lineaged ./cmd/lineaged
	$(GO) build -o $(BIN)/lineagectl ./cmd/lineagectl
	$(GO) build -o $(BIN)/lineagebench ./cmd/lineagebench
	$(GO) build -o $(BIN)/lineage-verify ./cmd/lineage-verify

## run: the service on embedded defaults (NATS :4222, API :8080 on 127.0.0.1, state in ./data).
run: build
	$(BIN)/lineaged serve --findings-config internal/demo/findings.json

## lint: gofmt and go vet must be clean, and go.mod/go.sum tidy (`go mod tidy -diff` empty).
## internal/testenv/s3server (the tests' S3 server on gofakes3) is a module of its own, which
## ./... skips: it is checked on its own.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	@cd internal/testenv/s3server && GOWORK=off $(GO) mod tidy -diff || { echo "internal/testenv/s3server: go.mod/go.sum are not tidy"; exit 1; }
	cd internal/testenv/s3server && GOWORK=off $(GO) vet .

## test: lint, then every test (unit, conformance, end-to-end) with the race detector, and the
## tests' S3 server's own test (a module of its own, see lint).
test: deps test-deps lint
	cd internal/testenv/s3server && GOWORK=off $(GO) test -count=1 .
	$(GO) test -race -count=1 -timeout 20m ./...

## test-seaweedfs: the Tessera AWS driver's tests (ledger/tesseraaws) against SeaweedFS instead of
## gofakes3 (`make test` uses gofakes3). weed is built from its pinned Go module once per machine,
## about 20 minutes cold on two cores (docs/SHARED-LOG.md).
test-seaweedfs: deps test-deps
	LINEAGE_TEST_S3=seaweedfs $(GO) test -race -count=1 -timeout 60m ./ledger/tesseraaws/

## fuzz: run each decoder fuzzer for FUZZTIME (each corpus under <package>/testdata/fuzz is kept in git).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzCanonicalize$$' -fuzztime $(FUZZTIME) ./internal/ijson
	$(GO) test -run '^$$' -fuzz '^FuzzZipLayout$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzMapOPAEvent$$' -fuzztime $(FUZZTIME) ./ingest
	$(GO) test -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyBundle$$' -fuzztime $(FUZZTIME) ./exporters/report
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./exporters/cron
	$(GO) test -run '^$$' -fuzz '^FuzzTLogProof$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzWitnessPolicy$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeKeys$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzRotationStatement$$' -fuzztime $(FUZZTIME) ./ledger
	$(GO) test -run '^$$' -fuzz '^FuzzParseVerifiers$$' -fuzztime $(FUZZTIME) ./ledger
	$(GO) test -run '^$$' -fuzz '^FuzzParseTreeSize$$' -fuzztime $(FUZZTIME) ./ledger/witness
	$(GO) test -run '^$$' -fuzz '^FuzzParseSignatureLines$$' -fuzztime $(FUZZTIME) ./ledger/witness
	$(GO) test -run '^$$' -fuzz '^FuzzParsePolicy$$' -fuzztime $(FUZZTIME) ./ledger/witness
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $(FUZZTIME) ./query/findings
	$(GO) test -run '^$$' -fuzz '^FuzzLoadState$$' -fuzztime $(FUZZTIME) ./query/findings
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelopeV2$$' -fuzztime $(FUZZTIME) ./ledger/seal
	$(GO) test -run '^$$' -fuzz '^FuzzPointer$$' -fuzztime $(FUZZTIME) ./ledger/seal
	$(GO) test -run '^$$' -fuzz '^FuzzParseMasterKey$$' -fuzztime $(FUZZTIME) ./ledger/seal
	$(GO) test -run '^$$' -fuzz '^FuzzDecryptField$$' -fuzztime $(FUZZTIME) ./ledger/seal

## bench: Go benchmarks of the parts (with erasure's sealing cost, ingest/seal_bench_test.go), the same ingest load through lineaged on each ledger
## driver side by side, the UI in headless Chromium (a 10,000-action user tree interactive and
## verified, 1,000 proofs verified in the page), then BENCH_N records end to end through the
## embedded defaults (scripts/bench.sh: records/s, CPU-µs, allocations and disk bytes per record,
## RSS, publish→queryable at 80 % of capacity, lineage-answer latencies; JSON and HTML in
## bench-results/).
BENCH_N ?= 100000
bench: build test-deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s . ./ledger/... ./query/...
	$(GO) test -run '^$$' -bench IngestSealing -benchtime 10000x ./ingest/
	$(GO) test -run '^$$' -bench EndToEnd -benchtime 1x -timeout 30m ./internal/e2e/
	$(GO) test -run '^$$' -bench Export -benchtime 1x -timeout 60m ./exporters/report/
	$(GO) test -run '^$$' -bench 'UITree10k|BrowserVerify1000' -benchtime 1x ./web/...
	scripts/bench.sh $(BENCH_N)

## cpu-per-record: lineaged's CPU time (user+system, /proc/<pid>/stat) per record on the
## default path, CPU_N records as fast as possible, CPU_RUNS times (docs/PERFORMANCE.md);
## SIGNED=1 measures the signed-source path (records signed, lineaged --source-keys).
CPU_N ?= 60000
CPU_RUNS ?= 3
cpu-per-record: build
	RUNS=$(CPU_RUNS) scripts/cpu-per-record.sh $(CPU_N)

## bench-compare: one HTML page comparing two runs' JSON reports (scripts/bench.sh and
## scripts/cpu-per-record.sh write them to bench-results/): figures side by side with the ratio
## NEW/OLD, throughput over time and the latency histogram of each (docs/PERFORMANCE.md).
bench-compare:
	@if [ -z "$(OLD)" ] || [ -z "$(NEW)" ]; then echo "usage: make bench-compare OLD=a.json NEW=b.json"; exit 2; fi
	@mkdir -p bench-results
	@$(GO) build -o $(BIN)/lineagebench ./cmd/lineagebench
	@$(BIN)/lineagebench report --out bench-results/compare.html "$(OLD)" "$(NEW)"

## soak: the crash test at scale: 1,000,000 records while lineaged is SIGKILLed every 5-15 s and
## NATS restarts under it; prints records published, in log, duplicates, lost, quarantined and
## restarts survived.
SOAK_N ?= 1000000
soak: deps test-deps
	LINEAGE_CRASH_RECORDS=$(SOAK_N) LINEAGE_CRASH_RATE=0 LINEAGE_CRASH_KILLS=20 LINEAGE_CRASH_NATS_RESTARTS=5 \
	LINEAGE_CRASH_KILL_MIN_MS=5000 LINEAGE_CRASH_KILL_SPREAD_MS=10000 \
	$(GO) test -count=1 -v -run '^TestCrashSafety$$' -timeout 120m ./internal/e2e/

clean:
	rm -rf $(BIN)
