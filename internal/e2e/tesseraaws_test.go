package e2e

import (
	"testing"

	"github.com/lineage-audit/lineage/internal/testenv"
)

// TestEndToEndTesseraAWS runs lineaged on --ledger tessera-aws: Tessera's AWS driver on MariaDB
// and an S3-compatible server (internal/testenv: gofakes3 by default). Records arrive over NATS,
// every answer verifies with the public key alone, a republished overlap adds nothing, and after
// a restart and an index rebuilt from the log alone the answers are the same (ledgerRoundTrip,
// trillian_test.go).
func TestEndToEndTesseraAWS(t *testing.T) {
	sl := testenv.StartSharedLog(t)
	dsn, bucket, prefix := sl.NewLog(t, "e2e")
	ledgerRoundTrip(t, "the Tessera AWS log", 23, 800, 1200,
		"--ledger", "tessera-aws", "--tessera-aws-dsn", dsn, "--s3-bucket", bucket, "--s3-prefix", prefix,
		"--s3-endpoint", sl.S3.Endpoint, "--s3-region", sl.Region, "--s3-access-key-id", sl.KeyID,
		"--s3-secret-access-key", sl.Secret, "--s3-path-style")
}
