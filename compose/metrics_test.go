package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/service"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/verify/witnesstest"
)

// metricNames are the metric names an alert rule or a dashboard query can name: Lineage's own and
// those of the Go and process collectors lineaged registers (internal/service/stores.go).
var metricNames = regexp.MustCompile(`\b(?:lineage|go|process)_[a-z0-9_]+\b`)

// TestMetricsAreServed checks every metric name in prometheus/alerts.yml and in the Grafana
// dashboard's queries against the /metrics of a live lineaged (the real service, in process, on
// its embedded defaults). The daemon is driven until every family the files name has a series:
// demo traffic with its failure modes (findings), one invalid record (quarantine), an export job,
// and a witness policy whose witness is unreachable (the witness series exist from the start).
func TestMetricsAreServed(t *testing.T) {
	dashboard := readDashboard(t)
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string][]string{} // metric → where
	for _, name := range metricNames.FindAllString(string(rules), -1) {
		used[name] = append(used[name], "prometheus/alerts.yml")
	}
	for _, p := range dashboard.Panels {
		for _, tg := range p.Targets {
			for _, name := range metricNames.FindAllString(tg.Expr, -1) {
				used[name] = append(used[name], "dashboard panel "+p.Title)
			}
		}
	}
	if len(used) < 30 {
		t.Fatalf("only %d metric names found in the alerts and the dashboard", len(used))
	}

	metrics := liveMetrics(t)
	var missing []string
	for name, where := range used {
		// A histogram's series are name_bucket, name_sum and name_count: a prefix match on
		// the line start covers both the family and its series.
		if !strings.Contains(metrics, "\n"+name) {
			missing = append(missing, fmt.Sprintf("%s (in %s)", name, strings.Join(slices.Compact(where), ", ")))
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("not served by lineaged's /metrics: %s", m)
	}
	// The check is not a no-op: a name lineaged does not serve is caught.
	if strings.Contains(metrics, "\nlineage_no_such_metric") {
		t.Fatal("the scrape serves a metric that does not exist")
	}
}

// dashboardJSON is the part of a Grafana dashboard the checks read.
type dashboardJSON struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboardJSON {
	t.Helper()
	b, err := os.ReadFile("grafana/dashboards/lineage.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardJSON
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/dashboards/lineage.json: %v", err)
	}
	return d
}

// TestDashboard: the dashboard parses, every panel has a unique id and queries the provisioned
// Prometheus data source, and it covers the areas docs/OPERATIONS.md names.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatal("the dashboard has no uid or title")
	}
	ds, err := os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int]bool{}
	var all strings.Builder
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource == nil || !strings.Contains(string(ds), "uid: "+p.Datasource.UID+"\n") {
			t.Errorf("panel %q does not use the provisioned data source", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") {
				t.Errorf("panel %q: unbalanced query %q", p.Title, tg.Expr)
			}
			all.WriteString(tg.Expr + "\n")
		}
	}
	for _, m := range []string{"lineage_ingest_appended_total", "lineage_ingest_lag_messages", "lineage_ingest_quarantined_total",
		"lineage_ingest_append_seconds", "lineage_witness_cosigned_size", "lineage_index_position", "lineage_findings_total",
		"lineage_export_jobs_total", "lineage_ha_writer", "lineage_ha_takeover_seconds", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if !strings.Contains(all.String(), m) {
			t.Errorf("no panel queries %s", m)
		}
	}
}

// liveMetrics runs lineaged in process, drives it, and returns its /metrics.
func liveMetrics(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	c := service.DefaultConfig()
	c.DataDir = dir
	c.NATSAddr, c.HTTPAddr = freeAddr(t), freeAddr(t)
	c.LogOrigin = "metrics.lineage.test"
	c.CheckpointInterval = 100 * time.Millisecond
	c.FindingsConfig = filepath.Join("..", "internal", "demo", "findings.json")
	// A witness nobody listens on: every witness series exists from the start (ledger/witness/
	// metrics.go), and --witness-mode open keeps serving.
	policy := filepath.Join(dir, "witnesses")
	w := witnesstest.New(t, "w1.lineage.test")
	if err := os.WriteFile(policy, []byte("witness w1 "+w.VKey+" http://"+freeAddr(t)+"\nquorum w1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.WitnessPolicy, c.WitnessMode = policy, "open"
	var logs testenv.SyncBuffer
	c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("lineaged: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("lineaged did not stop within 60 s")
		}
		if t.Failed() {
			t.Logf("lineaged warnings and errors:\n%s", logs.String())
		}
	})
	base := "http://" + c.HTTPAddr
	waitFor(t, 60*time.Second, "lineaged serving", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, done)

	// Demo traffic with its failure modes, over HTTP ingest, and one invalid record.
	const n = 2000
	g := demo.New(demo.Options{Seed: 1, FailureModes: true})
	var tenant string
	var accepted uint64
	for sent := 0; sent < n; {
		// A JSON array: NDJSON bodies over 64 KiB are corrupted by ingest/http.go's splitRecords
		// (it keeps bufio.Scanner slices that the next Scan overwrites).
		var batch []json.RawMessage
		for ; len(batch) < 500 && sent < n; sent++ {
			rec := g.Next()
			tenant = rec.Tenant
			b, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, b)
		}
		body, err := json.Marshal(batch)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Accepted uint64 `json:"accepted"`
		}
		if err := json.Unmarshal(post(t, base+"/v1/records", "application/json", body, http.StatusAccepted), &r); err != nil {
			t.Fatal(err)
		}
		accepted += r.Accepted
	}
	if accepted != n {
		t.Fatalf("HTTP ingest accepted %d of %d demo records", accepted, n)
	}
	post(t, base+"/v1/records", "application/json", []byte(`[{"schema":"lineage.decision/v1","id":"bad"}]`), http.StatusUnprocessableEntity)
	var h struct {
		IndexPosition    uint64 `json:"index_position"`
		FindingsPosition uint64 `json:"findings_position"`
		CheckpointSize   uint64 `json:"checkpoint_size"`
	}
	defer func() { t.Logf("%d of %d records accepted; healthz: %+v", accepted, n, h) }()
	waitFor(t, 90*time.Second, fmt.Sprintf("%d records indexed and checked for findings", accepted), func() bool {
		getJSON(t, base+"/healthz", &h)
		return h.IndexPosition >= accepted && h.FindingsPosition >= accepted
	}, done)

	// One export job, to its end (succeeded or failed: either is counted).
	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	req, _ := json.Marshal(map[string]string{"kind": "eu-ai-act", "tenant": tenant, "from": "2026-10-01", "to": "2026-12-01"})
	if err := json.Unmarshal(post(t, base+"/v1/exports", "application/json", req, http.StatusAccepted), &job); err != nil || job.ID == "" {
		t.Fatalf("POST /v1/exports: %v (%+v)", err, job)
	}
	waitFor(t, 90*time.Second, "the export job to end", func() bool {
		getJSON(t, base+"/v1/exports/"+job.ID, &job)
		return job.Status == "succeeded" || job.Status == "failed"
	}, done)

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return "\n" + string(b)
}

func post(t *testing.T, url, contentType string, body []byte, want int) []byte {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s = %d, want %d: %s", url, resp.StatusCode, want, b)
	}
	return b
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d: %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// waitFor polls cond until it holds, failing after timeout or when lineaged stops.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, done <-chan error) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("lineaged stopped while waiting for %s: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
