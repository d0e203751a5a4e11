package query

import (
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/verify"
	"golang.org/x/mod/sumdb/note"
)

// The offline checks of the API's answers live in the verify package (verify/record.go,
// verify/answer.go), which an auditor can use without this package's server dependencies.
// These wrappers keep their names here.

// VerifyRecordProof checks an answer of GET /v1/records/{id} offline, trusting nothing but the
// log's public key v (see verify.VerifyRecordProof). It returns the verified checkpoint.
func VerifyRecordProof(rp *RecordProof, v note.Verifier) (ledger.Checkpoint, error) {
	return verify.VerifyRecordProof(rp, v)
}

// DecodeRecordProof parses a RecordProof strictly (as saved by `lineagectl verify --save`).
func DecodeRecordProof(b []byte) (*RecordProof, error) {
	return verify.DecodeRecordProof(b)
}

// VerifiedAnswer summarizes a lineage answer that passed VerifyAnswer.
type VerifiedAnswer = verify.VerifiedAnswer

// VerifyAnswer checks a lineage answer (the raw JSON of GET /v1/lineage/{kind}/{subject})
// offline with the log's public key v alone (see verify.VerifyAnswer).
func VerifyAnswer(kind, subject string, raw []byte, v note.Verifier) (VerifiedAnswer, error) {
	return verify.VerifyAnswer(kind, subject, raw, v)
}
