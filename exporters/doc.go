// Package exporters is the export service: it runs the compliance exports that package
// exporters/report builds (the EU AI Act record-keeping report and the Fannie Mae LL-2026-04
// disclosure, each with an evidence bundle that verify.VerifyBundle checks offline), on demand
// through the HTTP API (POST /v1/exports, mounted on the query API; http.go) and on a cron
// schedule (schedule.go, with exporters/cron) inside lineaged. Service (service.go) queues the
// exports as jobs, runs them one at a time with report.Exporter, keeps each job's status in
// job.json, exposes Prometheus metrics (metrics.go) and records each run as a decision record
// in the log (record.go).
//
// Like the report writer, it reads the log (ledger.Log), never the index. docs/EXPORTS.md
// documents the API, the formats, the bundle and its verification.
package exporters
