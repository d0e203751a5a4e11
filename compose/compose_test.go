// Package compose holds the docker-compose stack for Lineage at scale. Docker cannot run on the
// development machines, so this test checks what can be checked without it: every lineaged flag
// the stack passes exists, every secret and volume it names is declared, and the NATS payload
// limit matches the service's.
package compose

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lineage-audit/lineage/internal/service"
)

func TestComposeMatchesTheBinaries(t *testing.T) {
	y, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile("../cmd/lineaged/main.go")
	if err != nil {
		t.Fatal(err)
	}
	// Flags are registered by name in cmd/lineaged (fs.XxxVar(&…, "name", …)) or by shared
	// helpers (natsclient registers the nats-* client flags).
	nats, _ := os.ReadFile("../internal/natsclient/natsclient.go")
	known := string(main) + string(nats)
	i := strings.Index(string(y), "  lineaged-ingest:")
	j := strings.Index(string(y), "\nsecrets:")
	if i < 0 || j < i {
		t.Fatal("no lineaged-ingest service")
	}
	for _, m := range regexp.MustCompile(`"--([a-z0-9-]+)"`).FindAllStringSubmatch(string(y)[i:j], -1) {
		if !strings.Contains(known, `"`+m[1]+`"`) {
			t.Errorf("docker-compose.yml passes --%s, which lineaged does not define", m[1])
		}
	}
	for _, section := range []string{"secrets", "volumes"} {
		decl := regexp.MustCompile(`(?m)^` + section + `:\n((?:  .*\n)+)`).FindStringSubmatch(string(y))
		if decl == nil {
			t.Fatalf("no top-level %s section", section)
		}
		for _, m := range regexp.MustCompile(`(?m)^\s+`+section+`: \[([^\]]*)\]`).FindAllStringSubmatch(string(y), -1) {
			for _, name := range strings.Split(m[1], ",") {
				name = strings.Trim(strings.TrimSpace(name), `"`)
				if i := strings.IndexByte(name, ':'); i >= 0 {
					name = name[:i]
				}
				if name == "" || strings.HasPrefix(name, ".") {
					continue // a bind mount, not a named volume
				}
				if !strings.Contains(decl[1], "  "+name+":") {
					t.Errorf("%s %q is used but not declared", section, name)
				}
			}
		}
	}
	conf, err := os.ReadFile("nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if service.MaxNATSPayload != 139264 || !strings.Contains(string(conf), "max_payload: 139264") {
		t.Error("nats.conf max_payload must be 2 x (64 KiB + 4 KiB), as service.MaxNATSPayload")
	}
}

// TestAlertRulesAreValid runs Debian's promtool (scripts/deps-promtool.sh installs it) on the
// alerting rules: valid YAML, valid PromQL, every rule well formed. That each metric they name
// is served by lineaged is checked by internal/e2e/findings_test.go.
func TestAlertRulesAreValid(t *testing.T) {
	if out, err := exec.Command("../scripts/deps-promtool.sh").CombinedOutput(); err != nil {
		t.Fatalf("deps-promtool.sh: %v\n%s", err, out)
	}
	out, err := exec.Command("promtool", "check", "rules", "prometheus/alerts.yml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	// A broken rule is caught (the check is not a no-op).
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(lineage_findings_total[5m]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "rules", bad).CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted a broken rule:\n%s", out)
	}
}
