// Package service wires Lineage's parts into the running daemon. cmd/lineaged parses flags into
// a Config (its flag defaults come from DefaultConfig) and calls Run, which goes through three
// stages, each undone in reverse on shutdown:
//
//   - openStores (stores.go): the data dir lock, the signing key, the ledger (Tessera or
//     Trillian) and the index (SQLite or ClickHouse);
//   - startWorkers (workers.go): the indexer, NATS (embedded or external) with the ingester,
//     and the exporter service, as goroutines of one errgroup whose first failure stops all;
//   - serve (run.go): the HTTP API (httpserver.go), with HTTP ingest and exports mounted.
//
// RebuildIndex (rebuild.go) recreates the index from the log for `lineagectl rebuild-index`.
package service
