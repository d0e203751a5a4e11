package report

import (
	"os"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters/report/reporttest"
)

// rig is a real Tessera log holding records, with its key (reporttest, shared with the export
// service's tests).
type rig = reporttest.Rig

const rigOrigin = reporttest.Origin

func newRig(t testing.TB, recs []lineage.Record) *rig { return reporttest.New(t, recs) }

// getRig returns the rig holding realistic(), built once for all the tests of the package.
func getRig(t *testing.T) *rig { return reporttest.Shared(t, realistic) }

func TestMain(m *testing.M) {
	code := m.Run()
	reporttest.Release()
	os.Exit(code)
}

func testExporter(r *rig) *Exporter {
	return &Exporter{Log: r.Log, Signer: r.Signer, Verifier: r.Verifier, Generator: "lineage test"}
}

// realistic is reporttest.Realistic, whose one export record comes from this package's writer.
func realistic() []lineage.Record {
	return reporttest.Realistic(lineage.Source{ID: ExportSourceID, Type: ExportSourceType})
}

func june(kind Kind, system string) Request {
	return Request{
		Kind: kind, Tenant: "acme-bank", AISystem: system,
		From: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC),
	}
}
