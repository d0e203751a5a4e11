package main

import (
	"testing"

	"github.com/lineage-audit/lineage/internal/depcheck"
)

// TestVerifierDependencies checks with `go list -deps` that lineage-verify (and so the verify
// package and internal/verifycmd it is built from) links none of the server's dependencies
// (depcheck.ServerModules).
func TestVerifierDependencies(t *testing.T) {
	deps := depcheck.Deps(t, ".")
	depcheck.Forbidden(t, "lineage-verify", deps, depcheck.ServerModules)
	if len(deps) > 300 {
		t.Errorf("lineage-verify has %d dependencies; the offline verifier should stay small", len(deps))
	}
}
