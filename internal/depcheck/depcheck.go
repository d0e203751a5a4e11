// Package depcheck keeps a package from linking what it must not: it lists the package's
// dependencies with `go list -deps` for the dependency tests of cmd/lineage-verify and
// exporters/report (their deps_test.go).
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// ServerModules are the module path prefixes of the server's dependencies: the message bus, the
// log drivers, the index drivers, the HTTP framework, metrics, QUIC and gRPC. The offline
// verifier and the report writer link none of them.
var ServerModules = []string{
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

// Deps lists with `go list -deps` the import paths pkg (a package pattern, "." for the one
// under test) depends on, itself and the standard library included. It skips the test under
// -short, since it runs the go command.
func Deps(t testing.TB, pkg string) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// Forbidden reports as errors of t, in the name of what (as "what depends on …"), every one
// of deps that is in one of the modules whose path prefixes are listed.
func Forbidden(t testing.TB, what string, deps, modules []string) {
	t.Helper()
	for _, d := range deps {
		for _, m := range modules {
			if strings.HasPrefix(d, m) {
				t.Errorf("%s depends on %s (module %s)", what, d, m)
			}
		}
	}
}
