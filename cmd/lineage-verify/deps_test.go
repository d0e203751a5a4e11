package main

import (
	"os/exec"
	"strings"
	"testing"
)

// serverModules are the module paths the offline verifier must never link: the message bus,
// the log drivers, the index drivers, the HTTP framework, metrics and QUIC.
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

// TestVerifierDependencies checks with `go list -deps` that lineage-verify (and so the verify
// package and internal/verifycmd it is built from) links none of the server's dependencies.
func TestVerifierDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, m := range serverModules {
			if strings.HasPrefix(d, m) {
				t.Errorf("lineage-verify depends on %s (module %s)", d, m)
			}
		}
	}
	if len(deps) > 300 {
		t.Errorf("lineage-verify has %d dependencies; the offline verifier should stay small", len(deps))
	}
}
