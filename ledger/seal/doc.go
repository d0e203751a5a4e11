// Package seal is the sealing core of erasure (issue #17, docs/ERASURE.md): personal fields of a
// record are replaced by hiding commitments and stored in the ledger entry encrypted under a
// per-subject key held outside the log, so that destroying the key erases the values while every
// entry, leaf hash and proof stays as it was.
//
//   - Seal and Open turn a canonical record into a redacted record plus sealed fields and back,
//     byte for byte (seal.go).
//   - NewEnvelopeV2 and DecodeEnvelopeV2 write and strictly read the v2 ledger entry
//     (envelope.go); v1 entries (envelope.go in the module root) are unchanged.
//   - The cryptography: commitments, openings (VerifyOpening), key-committing
//     XChaCha20-Poly1305 (crypto.go).
//   - KeyStore, the master key and the KMS boundary (keystore.go); the embedded key store with
//     tombstones and secure deletion is package ledger/seal/sqlitekeys (apart, so that the
//     offline verifiers, which use this package, link no SQLite).
//   - JSON pointers located in canonical JSON without re-serializing it (pointer.go).
//
// The wiring (ingest, the index, the API, the verifiers) is described in docs/ERASURE.md,
// "Wiring the embedded path".
package seal
