// Package verify checks Lineage's evidence offline, trusting nothing but the log's public key
// (a golang.org/x/mod/sumdb/note verifier): a record with its inclusion proof (the answer of
// GET /v1/records/{id}), a lineage answer (GET /v1/lineage/{kind}/{subject}), a checkpoint and
// its consistency with an older one, and a compliance export's evidence bundle.
//
// It is the auditor's side of Lineage and is kept small on purpose: it depends on the standard
// library, the root lineage package (the record schema and the ledger entry format), ledger
// (checkpoints and Merkle proofs) and golang.org/x/mod/sumdb/note, never on the server (NATS,
// the log drivers, the index, the HTTP framework, metrics). TestVerifierDependencies
// (deps_test.go) enforces this for cmd/lineage-verify, the small binary built on it.
//
// It also defines the formats it checks, so that they are written in one place: the lineage
// answer types (answer.go, used by the query API in query/lineage_api.go) and the evidence
// bundle (manifest.go: layout, signed manifest, records lines and CSV cells, used by the
// writer in exporters/report/export.go).
package verify
