package report

import (
	"os/exec"
	"strings"
	"testing"
)

// serverModules are the module paths the report writer must never link: it builds reports
// from a ledger.Log, so it needs no message bus, log or index driver, HTTP framework or
// metrics (the export service in package exporters adds those). The list is the one
// cmd/lineage-verify/deps_test.go keeps the offline verifier from.
var serverModules = []string{
	"github.com/nats-io/", // nats-server, nats.go, jwt, nkeys
	"github.com/transparency-dev/tessera",
	"github.com/google/trillian",
	"github.com/ClickHouse/",
	"github.com/mattn/go-sqlite3",
	"modernc.org/sqlite",
	"github.com/gin-gonic/",
	"github.com/prometheus/",
	"github.com/quic-go/",
	"google.golang.org/grpc",
}

// TestReportDependencies checks with `go list -deps` that package report links none of the
// server's dependencies.
func TestReportDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, d := range strings.Fields(string(out)) {
		for _, m := range serverModules {
			if strings.HasPrefix(d, m) {
				t.Errorf("exporters/report depends on %s (module %s)", d, m)
			}
		}
		if d == "github.com/lineage-audit/lineage/exporters" {
			t.Errorf("exporters/report depends on the export service (package exporters)")
		}
	}
}
