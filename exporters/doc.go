// Package exporters is the export service: it runs the compliance exports that package
// exporters/report builds (the EU AI Act record-keeping report and the Fannie Mae LL-2026-04
// disclosure, each with an evidence bundle that verify.VerifyBundle checks offline), on demand
// through the HTTP API (POST /v1/exports, mounted on the query API; http.go) and on a cron
// schedule (schedule.go, with exporters/cron) inside lineaged. Service (service.go) queues the
// exports as jobs, runs them one at a time with report.Exporter, keeps each job's status in
// job.json, exposes Prometheus metrics (metrics.go) and records each run as a decision record
// in the log (record.go).
//
// In cluster mode (Config.Cluster, for lineaged --ha; cluster.go) the jobs, the schedule state
// and the files live in NATS JetStream instead of the export directory: jobs in the KV bucket
// LINEAGE_EXPORT_JOBS, files in the object store LINEAGE_EXPORTS, the schedule state in the KV
// bucket LINEAGE_EXPORT_SCHEDULE, and submitted jobs wait on the work-queue stream
// LINEAGE_EXPORT_QUEUE. Every node serves the HTTP API from there; Run runs on the writer-lease
// holder only, claims each job with a compare-and-set on its KV revision, and acks it only once
// its outcome and decision record are stored, so a job whose node died is restarted by the next
// lease holder (Job.Attempts), never lost, never run again once finished, and recorded once.
//
// Like the report writer, it reads the log (ledger.Log), never the index. docs/EXPORTS.md
// documents the API, the formats, the bundle and its verification, and cluster mode.
package exporters
