// Package report turns the ledger into compliance reports that a regulator or an examiner can
// check without access to Lineage: the EU AI Act record-keeping report (Art. 12 logs per use,
// Art. 14 human oversight, Art. 19 / 26(6) retention) and the Fannie Mae LL-2026-04 AI
// disclosure (AI tools, safeguards, and the natural person and delegation behind each
// AI-assisted decision), as JSON, CSV and a printable HTML workpaper, each with an evidence
// bundle: the cited ledger entries, their inclusion proofs against one signed checkpoint, and a
// manifest signed with the ledger's key, which verify.VerifyBundle checks offline with the
// public key alone. The bundle format (layout, manifest, records lines, CSV cells) is defined
// in verify/manifest.go, for this package's writer and that verifier alike.
//
// It reads the log (ledger.Log), never the index, so a report is the same on every index
// driver and provably complete (the scan re-derives the checkpoint's root from every entry).
// Exporter.Export does one export into a directory, from a checkpoint it pins: the scan
// (scan.go), the aggregates (aggregate.go, uses.go), the agent-identity findings of the period
// from the detection engine lineaged runs live (identity.go, package query/findings), the
// inclusion proofs (prover.go), the report files (export.go, csv.go, html.go) and the bundle
// (bundle.go). It keeps no job state and links no HTTP framework, metrics or server driver
// (deps_test.go): the export service that runs it on demand and on a schedule is package
// exporters.
package report
