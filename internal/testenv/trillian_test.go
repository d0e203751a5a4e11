package testenv_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/lineage-audit/lineage/internal/testenv"
)

// TestStartTrillian brings a stack up, creates a tree through the admin API and finds it in
// MariaDB: the whole chain (binaries, database, schema, server) works.
func TestStartTrillian(t *testing.T) {
	tr := testenv.StartTrillian(t)
	id := tr.CreateTree(t)
	out := tr.SQL(t, "SELECT TreeType FROM Trees WHERE TreeId = "+itoa(id))
	if strings.TrimSpace(out) != "PREORDERED_LOG" {
		t.Fatalf("tree %d has type %q, want PREORDERED_LOG", id, out)
	}
	tr.StopSigner(t)
	tr.StartSigner(t)
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
