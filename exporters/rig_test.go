package exporters

import (
	"os"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/exporters/report/reporttest"
)

// rig is a real Tessera log holding records, with its key (reporttest, shared with the report
// writer's tests).
type rig = reporttest.Rig

// getRig returns the rig holding the realistic traffic, built once for all the tests of the
// package.
func getRig(t *testing.T) *rig {
	return reporttest.Shared(t, func() []lineage.Record {
		return reporttest.Realistic(lineage.Source{ID: report.ExportSourceID, Type: report.ExportSourceType})
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	reporttest.Release()
	os.Exit(code)
}
