package report

import (
	"slices"
	"testing"

	"github.com/lineage-audit/lineage/internal/depcheck"
)

// TestReportDependencies checks with `go list -deps` that package report links none of the
// server's dependencies (depcheck.ServerModules, the list cmd/lineage-verify/deps_test.go keeps
// the offline verifier from): it builds reports from a ledger.Log, so it needs no message bus,
// log or index driver, HTTP framework or metrics (the export service in package exporters adds
// those).
func TestReportDependencies(t *testing.T) {
	deps := depcheck.Deps(t, ".")
	depcheck.Forbidden(t, "exporters/report", deps, depcheck.ServerModules)
	if slices.Contains(deps, "github.com/lineage-audit/lineage/exporters") {
		t.Errorf("exporters/report depends on the export service (package exporters)")
	}
}
