// Package compose holds the docker-compose description of a highly available Lineage (3 NATS
// nodes, MariaDB + Trillian, ClickHouse, 3 lineaged nodes, Prometheus, Grafana). No Docker engine
// runs on the development machines, so these tests check what can be checked without one: Debian's
// docker-compose validates and resolves the file (`docker-compose config`, no engine needed), and
// the resolved topology is checked against the binaries (every flag exists), itself (every secret
// and volume declared, health checks, dependencies) and the real servers' own parsers (the NATS
// configuration, promtool for the Prometheus files). The same topology runs as native processes in
// the failover test (internal/e2e).
package compose

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/service"
	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
)

// composeFile is the subset of `docker-compose config` output the checks read.
type composeFile struct {
	Services map[string]struct {
		Image       string
		Entrypoint  []string
		Command     []string
		Environment map[string]string
		Profiles    []string
		Restart     string
		Healthcheck struct {
			Test []string
		}
		DependsOn map[string]struct {
			Condition string
		} `yaml:"depends_on"`
		Secrets []struct {
			Source, Target string
		}
		Volumes []string
	}
	Secrets map[string]struct{ File string }
	Volumes map[string]any
}

// dockerCompose runs Debian's docker-compose in this directory with env added to the environment
// (TRILLIAN_TREE_ID removed unless env sets it). A missing docker-compose fails the test: it is a
// test dependency, installed by `make test-deps`.
func dockerCompose(t *testing.T, env []string, args ...string) ([]byte, error) {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatalf("docker-compose is missing: run `make test-deps` (scripts/deps-docker-compose.sh installs Debian's docker-compose): %v", err)
	}
	cmd := exec.Command("docker-compose", append([]string{"-f", "docker-compose.yml"}, args...)...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TRILLIAN_TREE_ID=") && !strings.HasPrefix(e, "COMPOSE_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

// resolved returns the topology as docker-compose resolves it.
func resolved(t *testing.T) composeFile {
	t.Helper()
	out, err := dockerCompose(t, []string{"TRILLIAN_TREE_ID=42"}, "config")
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var f composeFile
	if err := yaml.Unmarshal(out, &f); err != nil {
		t.Fatalf("docker-compose config output: %v", err)
	}
	return f
}

// flagNames returns the flags a command defines, read from its sources: flags are registered by
// name (fs.XxxVar(&…, "name", …), fs.String("name", …)) in the command's files or by shared helpers
// (natsclient registers the nats-* client flags).
func flagNames(t *testing.T, files ...string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`fs\.[A-Za-z0-9]+\((?:&[^,]+, |\([^)]*\)\([^)]*\), )?"([a-z0-9-]+)"`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
	}
	if len(names) < 3 {
		t.Fatalf("found only %d flags in %v: the pattern no longer matches how flags are registered", len(names), files)
	}
	return names
}

func flagsOf(command []string) []string {
	var out []string
	for _, a := range command {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			out = append(out, name)
		}
	}
	return out
}

// value returns the argument after --name in command.
func value(command []string, name string) string {
	if i := slices.Index(command, "--"+name); i >= 0 && i+1 < len(command) {
		return command[i+1]
	}
	return ""
}

func TestComposeConfigValid(t *testing.T) {
	if out, err := dockerCompose(t, []string{"TRILLIAN_TREE_ID=42"}, "config", "-q"); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
	// Without the tree id the stack refuses to resolve, with a message saying what to do.
	out, err := dockerCompose(t, nil, "config", "-q")
	if err == nil || !strings.Contains(string(out), "set TRILLIAN_TREE_ID") {
		t.Fatalf("docker-compose config without TRILLIAN_TREE_ID: %v\n%s", err, out)
	}
	// The check is not a no-op: docker-compose refuses a broken file.
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("services:\n  x:\n    image: a\n    depends_on: {y: {condition: sometimes}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := dockerCompose(t, nil, "-f", bad, "config", "-q"); err == nil {
		t.Fatalf("docker-compose accepted a broken file:\n%s", out)
	}
}

func TestComposeTopology(t *testing.T) {
	f := resolved(t)
	lineagedFlags := flagNames(t, "../cmd/lineaged/main.go", "../internal/natsclient/natsclient.go")
	ctlFlags := flagNames(t, "../cmd/lineagectl/trillian.go")

	var nats, lineaged []string
	for name := range f.Services {
		switch {
		case strings.HasPrefix(name, "nats-"):
			nats = append(nats, name)
		case strings.HasPrefix(name, "lineaged-"):
			lineaged = append(lineaged, name)
		}
	}
	slices.Sort(nats)
	slices.Sort(lineaged)
	if !slices.Equal(nats, []string{"nats-1", "nats-2", "nats-3"}) {
		t.Errorf("NATS nodes %v, want nats-1..3", nats)
	}
	if !slices.Equal(lineaged, []string{"lineaged-1", "lineaged-2", "lineaged-3"}) {
		t.Errorf("lineaged nodes %v, want lineaged-1..3", lineaged)
	}
	for _, want := range []string{"mariadb", "trillian-log-server", "trillian-log-signer", "trillian-create-tree", "clickhouse", "prometheus", "grafana"} {
		if _, ok := f.Services[want]; !ok {
			t.Errorf("no %s service", want)
		}
	}
	for _, n := range nats {
		if got := value(f.Services[n].Command, "name"); got != n {
			t.Errorf("%s: --name %q, want its own name (JetStream needs unique server names)", n, got)
		}
	}

	// Every lineaged node: the HA flags, each known to the binary, the same on every node but
	// for --node-id.
	var first []string
	for _, n := range lineaged {
		s := f.Services[n]
		if len(s.Command) == 0 || s.Command[0] != "serve" {
			t.Fatalf("%s: command %q does not start with serve", n, s.Command)
		}
		for _, fl := range flagsOf(s.Command) {
			if !lineagedFlags[fl] {
				t.Errorf("%s passes --%s, which lineaged does not define", n, fl)
			}
		}
		for name, want := range map[string]string{"node-id": n, "ledger": "trillian", "index": "clickhouse", "stream-replicas": "3",
			"nats-url": "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", "trillian-tree-id": "42", "key-file": "/etc/lineage/keys/log.key"} {
			if got := value(s.Command, name); got != want {
				t.Errorf("%s: --%s %q, want %q", n, name, got, want)
			}
		}
		if !slices.Contains(s.Command, "--ha") {
			t.Errorf("%s: no --ha", n)
		}
		same := slices.Clone(s.Command)
		same[slices.Index(same, "--node-id")+1] = "N"
		if first == nil {
			first = same
		} else if !slices.Equal(first, same) {
			t.Errorf("%s's flags differ from %s's beyond --node-id:\n%q\n%q", n, lineaged[0], same, first)
		}
		for _, dep := range []string{"nats-1", "nats-2", "nats-3", "clickhouse", "trillian-log-server", "trillian-log-signer"} {
			if d, ok := s.DependsOn[dep]; !ok || d.Condition != "service_healthy" {
				t.Errorf("%s does not wait for %s to be healthy (%+v)", n, dep, s.DependsOn)
			}
		}
		// Secrets come through LINEAGE_<FLAG>_FROM_FILE (lineage-entrypoint.sh): each names a
		// flag and a mounted secret.
		for k, v := range s.Environment {
			flag, ok := strings.CutSuffix(k, "_FROM_FILE")
			if !ok {
				continue
			}
			known := false
			for fl := range lineagedFlags {
				known = known || cliflag.EnvName("LINEAGE_", fl) == flag
			}
			if !known {
				t.Errorf("%s: %s names no lineaged flag", n, k)
			}
			if !slices.ContainsFunc(s.Secrets, func(sec struct{ Source, Target string }) bool {
				return v == "/run/secrets/"+sec.Source && sec.Target == ""
			}) {
				t.Errorf("%s: %s=%s is not a secret mounted in the service", n, k, v)
			}
		}
		if !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "/healthz") {
			t.Errorf("%s: health check %q does not ask /healthz", n, s.Healthcheck.Test)
		}
	}
	if tree := f.Services["trillian-create-tree"]; !slices.Equal(tree.Profiles, []string{"setup"}) {
		t.Errorf("trillian-create-tree is in profiles %v: `docker-compose up` would create a second log", tree.Profiles)
	} else {
		for _, fl := range flagsOf(tree.Command) {
			if !ctlFlags[fl] {
				t.Errorf("trillian-create-tree passes --%s, which lineagectl trillian create-tree does not define", fl)
			}
		}
	}

	// Every long-running service: a health check and a restart policy; every secret and named
	// volume it uses is declared.
	for name, s := range f.Services {
		if len(s.Profiles) == 0 {
			if len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
				t.Errorf("%s: no health check", name)
			}
			if s.Restart != "unless-stopped" {
				t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := f.Secrets[sec.Source]; !ok {
				t.Errorf("%s uses secret %q, which is not declared", name, sec.Source)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "/") {
				continue // a bind mount
			}
			if _, ok := f.Volumes[src]; !ok {
				t.Errorf("%s uses volume %q, which is not declared", name, src)
			}
		}
	}
	for name, sec := range f.Secrets {
		if !strings.Contains(sec.File, "/compose/secrets/") {
			t.Errorf("secret %s is read from %s, not from compose/secrets/", name, sec.File)
		}
	}
	// The NATS nodes include their auth from the secrets nats.conf names.
	conf, err := os.ReadFile("nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`include "\.\./\.\./run/secrets/([^"]+)"`).FindAllStringSubmatch(string(conf), -1) {
		for _, n := range nats {
			if !slices.ContainsFunc(f.Services[n].Secrets, func(sec struct{ Source, Target string }) bool { return sec.Source == m[1] }) {
				t.Errorf("nats.conf includes /run/secrets/%s, which %s does not mount", m[1], n)
			}
		}
	}
}

// TestNATSConfig loads nats.conf with the NATS server's own parser, the secrets it includes laid
// out as in the containers (the example secrets of secrets-example/): the payload limit matches the
// service's, JetStream is on, the routes name the three nodes and carry credentials, and the
// users are the example's.
func TestNATSConfig(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/nats", "run/secrets"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, "nats.conf", filepath.Join(root, "etc/nats/nats.conf"))
	for _, s := range []string{"nats_auth.conf", "nats_cluster_auth.conf"} {
		copyFile(t, filepath.Join("secrets-example", s), filepath.Join(root, "run/secrets", s))
	}
	o, err := server.ProcessConfigFile(filepath.Join(root, "etc/nats/nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if o.MaxPayload != service.MaxNATSPayload {
		t.Errorf("max_payload %d, want service.MaxNATSPayload %d", o.MaxPayload, service.MaxNATSPayload)
	}
	if !o.JetStream || o.StoreDir != "/data" {
		t.Errorf("JetStream %v in %q, want on in /data (the nats-N volumes)", o.JetStream, o.StoreDir)
	}
	if o.Cluster.Name != "lineage" || o.Cluster.Port != 6222 || o.Cluster.Username == "" || o.Cluster.Password == "" {
		t.Errorf("cluster %q port %d user %q: want lineage on 6222 with route credentials", o.Cluster.Name, o.Cluster.Port, o.Cluster.Username)
	}
	var routes []string
	for _, r := range o.Routes {
		routes = append(routes, r.Host)
	}
	if !slices.Equal(routes, []string{"nats-1:6222", "nats-2:6222", "nats-3:6222"}) {
		t.Errorf("routes %v", routes)
	}
	var users []string
	for _, u := range o.Users {
		users = append(users, u.Username)
	}
	if !slices.Equal(users, []string{"lineaged", "publisher"}) {
		t.Errorf("users %v, want lineaged and publisher", users)
	}
	// The include really is read: without the secret the configuration does not load.
	if err := os.Remove(filepath.Join(root, "run/secrets/nats_auth.conf")); err != nil {
		t.Fatal(err)
	}
	if _, err := server.ProcessConfigFile(filepath.Join(root, "etc/nats/nats.conf")); err == nil {
		t.Error("nats.conf loaded without its auth secret")
	}
}

// TestEntrypoint runs lineage-entrypoint.sh: LINEAGE_X_FROM_FILE becomes LINEAGE_X with the
// file's contents (without the final newline), the _FROM_FILE variable is gone, and a file that
// cannot be read stops the start.
func TestEntrypoint(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(secret, []byte("clickhouse://u:p w@h:9000/db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("./lineage-entrypoint.sh", "env")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LINEAGE_CLICKHOUSE_DSN_FROM_FILE=" + secret, "LINEAGE_LOG_FORMAT=json"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("entrypoint: %v\n%s", err, out)
	}
	env := strings.Split(string(out), "\n")
	if !slices.Contains(env, "LINEAGE_CLICKHOUSE_DSN=clickhouse://u:p w@h:9000/db") || !slices.Contains(env, "LINEAGE_LOG_FORMAT=json") {
		t.Errorf("environment after the entrypoint:\n%s", out)
	}
	if strings.Contains(string(out), "_FROM_FILE") {
		t.Errorf("a _FROM_FILE variable is left:\n%s", out)
	}
	cmd = exec.Command("./lineage-entrypoint.sh", "env")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LINEAGE_NATS_PASSWORD_FROM_FILE=" + secret + ".missing"}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "cannot read") {
		t.Errorf("entrypoint with a missing secret: %v\n%s", err, out)
	}
}

// TestDockerfileTrillianVersion: the Trillian images are built from the version go.mod pins
// (the one the tests run).
func TestDockerfileTrillianVersion(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^\s*github\.com/google/trillian (v\S+)`).FindSubmatch(mod)
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	got := regexp.MustCompile(`(?m)^ARG TRILLIAN_VERSION=(\S+)$`).FindSubmatch(df)
	if want == nil || got == nil || string(got[1]) != string(want[1]) {
		t.Fatalf("Dockerfile TRILLIAN_VERSION %q, go.mod %q", got, want)
	}
}

// TestAlertRulesAreValid runs Debian's promtool (scripts/deps-promtool.sh installs it) on the
// alerting rules (valid YAML, valid PromQL, every rule well formed) and on the Prometheus
// configuration that loads them. That each metric they name is served by lineaged is checked by
// TestMetricsAreServed (metrics_test.go).
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
	// prometheus.yml, with the API key secret where the container has it.
	dir := t.TempDir()
	conf, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "prometheus_api_key")
	if err := os.WriteFile(key, []byte("lin_example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf = bytes.ReplaceAll(conf, []byte("/run/secrets/prometheus_api_key"), []byte(key))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "prometheus/alerts.yml", filepath.Join(dir, "alerts.yml"))
	out, err = exec.Command("promtool", "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rules found") {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
